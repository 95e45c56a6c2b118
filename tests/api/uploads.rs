//! POST /v1/files (raw and multipart), GET /v1/files (pagination), GET and DELETE
//! /v1/files/{id}: what goes in comes back out, byte for byte, and what is refused leaves
//! nothing behind.

use bytes::Bytes;
use futures::{stream, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    common::{big_body, pattern, sha256_hex, TestApp},
    support::{
        assert_nothing_stored, expect_error, is_file_id, multipart_body, multipart_content_type,
        multipart_tail, part_head, raw_with_body, stream_sha256, Part,
    },
};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// Checks every field of the File JSON and that nothing else is in it.
fn assert_file_json(
    app: &TestApp,
    file: &Value,
    filename: Option<&str>,
    content_type: &str,
    body: &[u8],
    access: &str,
) {
    let object = file.as_object().expect("file JSON is an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access",
            "content_type",
            "created_at",
            "filename",
            "id",
            "sha256",
            "size",
            "url"
        ]
    );
    let id = file["id"].as_str().expect("id is a string");
    assert!(is_file_id(id), "id {id:?} follows the grammar");
    assert_eq!(file["filename"], json!(filename));
    assert_eq!(file["content_type"], content_type);
    assert_eq!(file["size"], body.len() as u64);
    assert_eq!(file["sha256"], sha256_hex(body));
    assert_eq!(file["access"], access);
    assert_eq!(file["url"], app.url(&format!("/files/{id}")));
    let created = OffsetDateTime::parse(file["created_at"].as_str().unwrap(), &Rfc3339)
        .expect("created_at is RFC 3339");
    let age = OffsetDateTime::now_utc() - created;
    assert!(
        age >= time::Duration::seconds(-2) && age < time::Duration::seconds(60),
        "created_at {created} is now"
    );
}

/// The URL that serves `file`: its own URL when public, a signed one when private.
async fn delivery_url(app: &TestApp, file: &Value) -> String {
    let id = file["id"].as_str().unwrap();
    match file["access"].as_str().unwrap() {
        "public" => file["url"].as_str().unwrap().to_owned(),
        _ => app.signed_url(id, json!({})).await,
    }
}

/// Downloads `file` and asserts the delivered bytes are exactly `body`.
async fn assert_delivers(app: &TestApp, file: &Value, body: &[u8]) {
    let response = app
        .client
        .get(delivery_url(app, file).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        body.len().to_string().as_str()
    );
    assert_eq!(
        response.headers()["content-type"],
        file["content_type"].as_str().unwrap()
    );
    let delivered = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&delivered), file["sha256"].as_str().unwrap());
    assert_eq!(&delivered[..], body);
}

/// Asserts a 201 (showing the error body otherwise) and returns the File JSON.
async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).expect("File JSON")
}

async fn upload_multipart(app: &TestApp, body: Vec<u8>) -> reqwest::Response {
    app.api(Method::POST, "/v1/files")
        .header("content-type", multipart_content_type())
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app
        .api(Method::GET, &format!("/v1/files{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn raw_upload_answers_201_with_the_file_json_and_its_location() {
    let app = TestApp::spawn().await;
    let body = pattern(1, 1000);
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", "notes.bin")])
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let file: Value = response.json().await.unwrap();
    assert_file_json(
        &app,
        &file,
        Some("notes.bin"),
        "application/octet-stream",
        &body,
        "private",
    );
    let id = file["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/files/{id}"));

    let shown = app.api(Method::GET, &location).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    assert_eq!(shown.json::<Value>().await.unwrap(), file);
    app.stop().await;
}

#[tokio::test]
async fn raw_uploads_of_empty_and_small_bodies_round_trip_byte_for_byte() {
    let app = TestApp::spawn().await;
    let cases: [(&[u8], &str); 4] = [
        (b"", "private"),
        (b"", "public"),
        (b"x", "private"),
        (&pattern(2, 70_001), "public"),
    ];
    for (body, access) in cases {
        let file = app.upload(body.to_vec(), "data.bin", access).await;
        assert_file_json(
            &app,
            &file,
            Some("data.bin"),
            "application/octet-stream",
            body,
            access,
        );
        assert_delivers(&app, &file, body).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_raw_upload_without_filename_or_access_is_private_and_unnamed() {
    let app = TestApp::spawn().await;
    let response = app
        .api(Method::POST, "/v1/files")
        .body("anonymous")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.unwrap();
    assert_file_json(
        &app,
        &file,
        None,
        "application/octet-stream",
        b"anonymous",
        "private",
    );
    assert_delivers(&app, &file, b"anonymous").await;
    app.stop().await;
}

#[tokio::test]
async fn multipart_uploads_of_empty_and_small_bodies_round_trip_byte_for_byte() {
    let app = TestApp::spawn().await;
    // A body that contains CRLF and dashes, so a parser that trims or splits early shows.
    let tricky = b"line one\r\n--not-the-boundary\r\n\r\n--\r\n".to_vec();
    let cases: [(&[u8], Option<&str>); 4] = [
        (b"", Some("public")),
        (b"", None),
        (&tricky, Some("public")),
        (&pattern(3, 200_003), Some("private")),
    ];
    for (data, access) in cases {
        let mut parts = vec![Part::file("part.bin", None, data)];
        if let Some(access) = access {
            parts.push(Part::field("access", access.as_bytes()));
        }
        let file = created(upload_multipart(&app, multipart_body(&parts)).await).await;
        let access = access.unwrap_or("private");
        assert_file_json(
            &app,
            &file,
            Some("part.bin"),
            "application/octet-stream",
            data,
            access,
        );
        assert_delivers(&app, &file, data).await;
    }
    app.stop().await;
}

/// Streams the delivery of a big file and checks its length and SHA-256 chunk by chunk.
async fn assert_big_delivery(app: &TestApp, file: &Value, size: u64, sha256: &str) {
    let response = app
        .client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        size.to_string().as_str()
    );
    let (len, digest) = stream_sha256(response).await;
    assert_eq!(len, size);
    assert_eq!(digest, sha256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_upload_of_one_gib_round_trips_with_its_sha256() {
    let app = TestApp::spawn().await;
    let (body, sha256) = big_body(GIB, 11);
    let file = app
        .upload(reqwest::Body::wrap_stream(body), "big.bin", "public")
        .await;
    assert_eq!(file["size"], GIB);
    assert_eq!(file["sha256"], sha256);
    assert_big_delivery(&app, &file, GIB, &sha256).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_of_one_gib_round_trips_with_its_sha256() {
    let app = TestApp::spawn().await;
    let (data, sha256) = big_body(GIB, 12);
    let head = part_head(&Part::file(
        "big.mp4",
        Some("application/octet-stream"),
        b"",
    ));
    let access = part_head(&Part::field("access", b""));
    let mut closing = b"\r\n".to_vec();
    closing.extend(access);
    closing.extend_from_slice(b"public\r\n");
    closing.extend(multipart_tail());
    let body = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
        .chain(data)
        .chain(stream::once(async move { Ok(Bytes::from(closing)) }));
    let response = app
        .api(Method::POST, "/v1/files")
        .header("content-type", multipart_content_type())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.unwrap();
    assert_eq!(file["size"], GIB);
    assert_eq!(file["sha256"], sha256);
    assert_eq!(file["filename"], "big.mp4");
    assert_eq!(file["content_type"], "video/mp4");
    assert_eq!(file["access"], "public");
    assert_big_delivery(&app, &file, GIB, &sha256).await;
    app.stop().await;
}

#[tokio::test]
async fn content_type_comes_from_the_upload_or_is_guessed_from_the_filename() {
    let app = TestApp::spawn().await;
    // (declared Content-Type, filename, stored and served type)
    let raw_cases: [(Option<&str>, Option<&str>, &str); 6] = [
        (Some("image/png"), Some("x.txt"), "image/png"),
        (
            Some("text/plain; charset=utf-8"),
            None,
            "text/plain; charset=utf-8",
        ),
        (
            Some("application/octet-stream"),
            Some("clip.mp4"),
            "video/mp4",
        ),
        (None, Some("page.html"), "text/html"),
        (None, Some("archive.unknownext"), "application/octet-stream"),
        (None, None, "application/octet-stream"),
    ];
    for (declared, filename, expected) in raw_cases {
        let mut request = app
            .api(Method::POST, "/v1/files")
            .query(&[("access", "public")]);
        if let Some(name) = filename {
            request = request.query(&[("filename", name)]);
        }
        if let Some(ct) = declared {
            request = request.header("content-type", ct);
        }
        let response = request.body("typed").send().await.unwrap();
        assert_eq!(response.status(), 201, "{declared:?} {filename:?}");
        let file: Value = response.json().await.unwrap();
        assert_eq!(file["content_type"], expected, "{declared:?} {filename:?}");
        assert_delivers(&app, &file, b"typed").await;
    }

    // Multipart: the part's own Content-Type, else a guess from the part's filename.
    let multipart_cases: [(Option<&str>, &str, &str); 3] = [
        (Some("audio/mpeg"), "a.bin", "audio/mpeg"),
        (None, "image.png", "image/png"),
        (
            Some("application/octet-stream"),
            "doc.pdf",
            "application/pdf",
        ),
    ];
    for (declared, filename, expected) in multipart_cases {
        let body = multipart_body(&[
            Part::file(filename, declared, b"typed"),
            Part::field("access", b"public"),
        ]);
        let response = upload_multipart(&app, body).await;
        assert_eq!(response.status(), 201);
        let file: Value = response.json().await.unwrap();
        assert_eq!(file["content_type"], expected, "{declared:?} {filename:?}");
        assert_delivers(&app, &file, b"typed").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_access_value_is_422() {
    let app = TestApp::spawn().await;
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("access", "everyone")])
        .body("x")
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(response, 422).await;
    assert_eq!(code, "invalid_access");
    assert_nothing_stored(&app).await;
    app.stop().await;
}

async fn small_limit_app() -> TestApp {
    TestApp::spawn_with(|config| config.max_upload_bytes = MIB).await
}

fn upload_head(app: &TestApp, content_type: &str, framing: &str) -> String {
    format!(
        "POST /v1/files?filename=big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n",
        app.addr,
        crate::common::ADMIN_KEY
    )
}

/// `len` bytes as HTTP/1.1 chunks of 64 KiB, with the terminating chunk.
fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        out.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn assert_413(outcome: crate::support::RawOutcome) {
    let response = outcome.response();
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.error_code(), "payload_too_large");
}

#[tokio::test]
async fn a_raw_upload_declaring_a_length_over_the_limit_is_413_before_its_body_and_leaves_nothing()
{
    let app = small_limit_app().await;
    let declared = 2 * MIB;
    let head = upload_head(
        &app,
        "application/octet-stream",
        &format!("Content-Length: {declared}"),
    );
    // Only a sliver of the body is ever sent: the answer must not wait for the rest.
    let outcome = raw_with_body(app.addr, head, pattern(4, 4096)).await;
    assert_413(outcome);
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_chunked_raw_upload_over_the_limit_is_413_and_leaves_nothing() {
    let app = small_limit_app().await;
    let head = upload_head(
        &app,
        "application/octet-stream",
        "Transfer-Encoding: chunked",
    );
    let body = chunked(&pattern(5, (MIB + 64 * 1024) as usize));
    assert_413(raw_with_body(app.addr, head, body).await);
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_multipart_upload_over_the_limit_is_413_with_or_without_a_length_and_leaves_nothing() {
    let app = small_limit_app().await;
    let data = pattern(6, (MIB + 1) as usize);
    let body = multipart_body(&[Part::file("big.bin", None, &data)]);

    let head = upload_head(
        &app,
        &multipart_content_type(),
        "Transfer-Encoding: chunked",
    );
    assert_413(raw_with_body(app.addr, head, chunked(&body)).await);
    assert_nothing_stored(&app).await;

    // A declared length past the limit plus any multipart envelope is refused up front.
    let head = upload_head(
        &app,
        &multipart_content_type(),
        &format!("Content-Length: {}", 4 * MIB),
    );
    assert_413(raw_with_body(app.addr, head, body[..4096].to_vec()).await);
    assert_nothing_stored(&app).await;

    // Within the envelope but with a file part one byte too big: refused while streaming.
    let head = upload_head(
        &app,
        &multipart_content_type(),
        &format!("Content-Length: {}", body.len()),
    );
    assert_413(raw_with_body(app.addr, head, body).await);
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_upload_of_exactly_the_limit_is_accepted() {
    let app = small_limit_app().await;
    let data = pattern(7, MIB as usize);
    let file = app.upload(data.clone(), "edge.bin", "public").await;
    assert_eq!(file["size"], MIB);
    assert_delivers(&app, &file, &data).await;

    let body = multipart_body(&[
        Part::file("edge.bin", None, &data),
        Part::field("access", b"public"),
    ]);
    let file = created(upload_multipart(&app, body).await).await;
    assert_delivers(&app, &file, &data).await;
    app.stop().await;
}

async fn upload_numbered(app: &TestApp, name: &str) -> String {
    let file = app.upload(name.to_owned(), name, "public").await;
    file["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_listing_is_newest_first_and_a_cursor_continues_it_to_the_end() {
    let app = TestApp::spawn().await;
    assert_nothing_stored(&app).await;
    let mut uploaded = Vec::new();
    for i in 0..6 {
        uploaded.push(upload_numbered(&app, &format!("f{i}.txt")).await);
    }
    let newest_first: Vec<String> = uploaded.iter().rev().cloned().collect();

    let all = list(&app, "").await;
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["items"][0]["filename"], "f5.txt");

    let first = list(&app, "?limit=4").await;
    assert_eq!(ids(&first), newest_first[..4]);
    let cursor = first["next_cursor"].as_str().expect("a cursor for more");
    let second = list(&app, &format!("?limit=4&cursor={cursor}")).await;
    assert_eq!(ids(&second), newest_first[4..]);
    assert_eq!(second["next_cursor"], Value::Null);

    // A page that ends exactly at the last file says there is nothing more.
    let first = list(&app, "?limit=3").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(&app, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&second), newest_first[3..]);
    assert_eq!(second["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn pagination_neither_repeats_nor_skips_while_files_are_added_between_pages() {
    let app = TestApp::spawn().await;
    let mut before = Vec::new();
    for i in 0..7 {
        before.push(upload_numbered(&app, &format!("old{i}.txt")).await);
    }
    before.reverse();

    let mut seen = Vec::new();
    let mut added = Vec::new();
    let mut page = list(&app, "?limit=3").await;
    loop {
        seen.extend(ids(&page));
        // New files land in front of the listing, never in the pages still to come.
        for i in 0..2 {
            added.push(upload_numbered(&app, &format!("new{}-{i}.txt", added.len())).await);
        }
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        page = list(&app, &format!("?limit=3&cursor={cursor}")).await;
    }
    assert_eq!(seen, before, "every old file exactly once, newest first");

    let fresh = list(&app, "?limit=1000").await;
    let mut expected: Vec<String> = added.iter().rev().cloned().collect();
    expected.extend(before);
    assert_eq!(ids(&fresh), expected);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_limit_or_a_forged_cursor_is_400() {
    let app = TestApp::spawn().await;
    upload_numbered(&app, "one.txt").await;
    for (query, code) in [
        ("?limit=0", "bad_request"),
        ("?limit=1001", "bad_request"),
        ("?limit=ten", "invalid_query"),
        ("?cursor=not-a-cursor", "invalid_cursor"),
        ("?cursor=MTIzLmZpbF8uLi8uLi8", "invalid_cursor"),
    ] {
        let response = app
            .api(Method::GET, &format!("/v1/files{query}"))
            .send()
            .await
            .unwrap();
        let (_, actual) = expect_error(response, 400).await;
        assert_eq!(actual, code, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn delete_removes_the_record_the_bytes_and_delivery_even_after_a_cached_serve() {
    let app = TestApp::spawn().await;
    let public = app.upload("public bytes", "a.txt", "public").await;
    let private = app.upload("private bytes", "b.txt", "private").await;
    let public_id = public["id"].as_str().unwrap();
    let private_id = private["id"].as_str().unwrap();
    let signed = app.signed_url(private_id, json!({})).await;

    // Served once each, so the in-process metadata cache holds both records.
    for url in [public["url"].as_str().unwrap(), signed.as_str()] {
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.stored().await.len(), 2);

    for id in [public_id, private_id] {
        let response = app
            .api(Method::DELETE, &format!("/v1/files/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.unwrap().is_empty());
    }

    let named = format!("{}/a.txt", public["url"].as_str().unwrap());
    for url in [
        public["url"].as_str().unwrap(),
        named.as_str(),
        signed.as_str(),
    ] {
        let response = app.client.get(url).send().await.unwrap();
        let (headers, code) = expect_error(response, 404).await;
        assert_eq!(code, "not_found", "{url}");
        let cache = headers["cache-control"].to_str().unwrap();
        let max_age: u64 = cache
            .strip_prefix("public, max-age=")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a short public max-age on a delivery 404: {cache}"));
        assert!((1..=10).contains(&max_age), "{cache}");
        let head = app.client.head(url).send().await.unwrap();
        assert_eq!(head.status(), 404);
    }
    for id in [public_id, private_id] {
        let shown = app
            .api(Method::GET, &format!("/v1/files/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(expect_error(shown, 404).await.1, "not_found");
        let again = app
            .api(Method::DELETE, &format!("/v1/files/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(expect_error(again, 404).await.1, "not_found");
    }
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn deleting_one_file_leaves_the_others_served() {
    let app = TestApp::spawn().await;
    let keep = app.upload("keep me", "keep.txt", "public").await;
    let drop = app.upload("drop me", "drop.txt", "public").await;
    let response = app
        .api(
            Method::DELETE,
            &format!("/v1/files/{}", drop["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_delivers(&app, &keep, b"keep me").await;
    assert_eq!(ids(&list(&app, "").await), [keep["id"].as_str().unwrap()]);
    let left = app.stored().await;
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with(keep["id"].as_str().unwrap()), "{left:?}");
    app.stop().await;
}
