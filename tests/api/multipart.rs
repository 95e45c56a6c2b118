//! Malformed and hostile multipart/form-data uploads are refused quickly, with a 400 (or
//! 413), and leave no bytes and no row behind; well-formed ones work whatever the network
//! does to their chunking.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::{
    common::{pattern, TestApp, ADMIN_KEY},
    support::{
        assert_nothing_stored, expect_error, multipart_body, multipart_content_type,
        multipart_tail, part_head, raw_with_body, read_response, Part, BOUNDARY,
    },
};

/// A generous bound for a debug build on a busy machine; a parser that reads every part or
/// buffers every header takes far longer.
const FAST: Duration = Duration::from_secs(20);

async fn post_multipart(app: &TestApp, body: Vec<u8>) -> reqwest::Response {
    app.api(Method::POST, "/v1/files")
        .header("content-type", multipart_content_type())
        .body(body)
        .send()
        .await
        .unwrap()
}

fn head(app: &TestApp, length: usize) -> String {
    format!(
        "POST /v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: {}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        app.addr,
        multipart_content_type()
    )
}

/// Sends a body the server may refuse before reading it all; returns the status and code.
async fn refused_fast(app: &TestApp, body: Vec<u8>) -> (u16, String) {
    let started = Instant::now();
    let response = raw_with_body(app.addr, head(app, body.len()), body)
        .await
        .response();
    let elapsed = started.elapsed();
    assert!(elapsed < FAST, "took {elapsed:?}");
    (response.status, response.error_code())
}

#[tokio::test]
async fn a_body_without_its_final_boundary_is_400_and_leaves_nothing() {
    let app = TestApp::spawn().await;
    let file = Part::file("a.txt", None, b"");
    let mut cut_after_data = part_head(&file);
    cut_after_data.extend_from_slice(b"hello\r\n");
    let mut cut_mid_data = part_head(&file);
    cut_mid_data.extend(pattern(41, 100_000));
    let mut cut_after_delimiter = multipart_body(&[Part::file("a.txt", None, b"hello")]);
    cut_after_delimiter.truncate(cut_after_delimiter.len() - multipart_tail().len());
    cut_after_delimiter.extend_from_slice(format!("--{BOUNDARY}").as_bytes());
    for (what, body) in [
        ("cut after the data", cut_after_data),
        ("cut in the middle of the data", cut_mid_data),
        ("cut after a delimiter", cut_after_delimiter),
        ("not multipart at all", b"hello world".to_vec()),
        (
            "a delimiter and nothing else",
            format!("--{BOUNDARY}\r\n").into_bytes(),
        ),
    ] {
        let response = post_multipart(&app, body).await;
        let (_, code) = expect_error(response, 400).await;
        assert_eq!(code, "bad_request", "{what}");
        assert_nothing_stored(&app).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_thousand_tiny_parts_are_refused_fast_and_leave_nothing() {
    let app = TestApp::spawn().await;
    let tiny = multipart_body(&[Part::field("access", b"public")]);
    let tiny = &tiny[..tiny.len() - multipart_tail().len()];
    for file_first in [false, true] {
        let mut body = Vec::new();
        if file_first {
            // A stored file must be discarded when a later part is refused.
            let file = multipart_body(&[Part::file("a.bin", None, &pattern(42, 10_000))]);
            body.extend_from_slice(&file[..file.len() - multipart_tail().len()]);
        }
        for _ in 0..100_000 {
            body.extend_from_slice(tiny);
        }
        body.extend(multipart_tail());
        let (status, code) = refused_fast(&app, body).await;
        assert!(status == 400 || status == 413, "{status}");
        assert!(
            code == "bad_request" || code == "payload_too_large",
            "{code}"
        );
        assert_nothing_stored(&app).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_megabyte_of_part_headers_is_refused_fast_and_leaves_nothing() {
    let app = TestApp::spawn().await;
    let padding = "a".repeat(1_000_000);
    let huge_header = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
         X-Padding: {padding}\r\n\r\nhello\r\n"
    );
    let endless_header = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{padding}"
    );
    let many_headers: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
         {many_headers}\r\nhello\r\n"
    );
    let stored_first = multipart_body(&[Part::file("a.bin", None, &pattern(43, 200_000))]);
    let stored_first = &stored_first[..stored_first.len() - multipart_tail().len()];
    for (what, prefix, part) in [
        ("a 1 MB header line", &b""[..], &huge_header),
        ("a header that never ends", &b""[..], &endless_header),
        ("ten thousand header lines", &b""[..], &many_headers),
        (
            "a 1 MB header after a stored file",
            stored_first,
            &huge_header,
        ),
    ] {
        let mut body = prefix.to_vec();
        body.extend_from_slice(part.as_bytes());
        body.extend(multipart_tail());
        let (status, code) = refused_fast(&app, body).await;
        assert!(status == 400 || status == 413, "{what}: {status}");
        assert!(
            code == "bad_request" || code == "payload_too_large",
            "{what}: {code}"
        );
        assert_nothing_stored(&app).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_a_file_part_is_400() {
    let app = TestApp::spawn().await;
    for (what, body) in [
        (
            "only an access field",
            multipart_body(&[Part::field("access", b"public")]),
        ),
        (
            "only a filename field",
            multipart_body(&[Part::field("filename", b"a.txt")]),
        ),
        ("no parts at all", multipart_tail()),
    ] {
        let response = post_multipart(&app, body).await;
        let (_, code) = expect_error(response, 400).await;
        assert_eq!(code, "bad_request", "{what}");
        assert_nothing_stored(&app).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn two_file_parts_are_400_and_keep_neither() {
    let app = TestApp::spawn().await;
    let body = multipart_body(&[
        Part::file("one.txt", None, &pattern(44, 50_000)),
        Part::file("two.txt", None, b"second"),
    ]);
    let (_, code) = expect_error(post_multipart(&app, body).await, 400).await;
    assert_eq!(code, "bad_request");
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_field_or_access_value_is_refused_and_keeps_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            multipart_body(&[
                Part::file("a.txt", None, b"data"),
                Part::field("owner", b"someone"),
            ]),
            400,
            "bad_request",
        ),
        (
            multipart_body(&[
                Part::file("a.txt", None, b"data"),
                Part::field("access", b"world"),
            ]),
            422,
            "invalid_access",
        ),
        (
            multipart_body(&[
                Part::field("access", &[b'x'; 5000]),
                Part::file("a.txt", None, b"data"),
            ]),
            413,
            "payload_too_large",
        ),
    ];
    for (body, status, code) in cases {
        let (_, actual) = expect_error(post_multipart(&app, body).await, status).await;
        assert_eq!(actual, code);
        assert_nothing_stored(&app).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_access_field_sets_access_before_or_after_the_file() {
    let app = TestApp::spawn().await;
    let cases: [(Vec<Part>, &str); 3] = [
        (
            vec![
                Part::field("access", b"public"),
                Part::file("a.txt", None, b"before"),
            ],
            "public",
        ),
        (
            vec![
                Part::file("b.txt", None, b"after"),
                Part::field("access", b"public"),
            ],
            "public",
        ),
        (vec![Part::file("c.txt", None, b"none")], "private"),
    ];
    for (parts, access) in cases {
        let response = post_multipart(&app, multipart_body(&parts)).await;
        assert_eq!(response.status(), 201);
        let file: Value = response.json().await.unwrap();
        assert_eq!(file["access"], access);
        let delivered = app
            .client
            .get(file["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let expected = if access == "public" { 200 } else { 403 };
        assert_eq!(delivered.status(), expected, "{access}");
    }
    app.stop().await;
}

/// Regression: a part header search used to count every byte that arrived while it ran, so a
/// first network read carrying the header and 64 KiB+ of file data (as on a warm keep-alive
/// connection) was refused as an oversized header.
#[tokio::test]
async fn a_multipart_upload_whose_first_read_carries_much_file_data_is_accepted() {
    let app = TestApp::spawn().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let warm = pattern(45, 1024 * 1024);
    let request = format!(
        "POST /v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Length: {}\r\n\r\n",
        app.addr,
        warm.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&warm).await.unwrap();
    let first = read_response(&mut stream, false).await.response();
    assert_eq!(first.status, 201);

    let data = pattern(46, 1024 * 1024);
    let body = multipart_body(&[Part::file("big.bin", None, &data)]);
    let mut request = format!(
        "POST /v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        multipart_content_type(),
        body.len()
    )
    .into_bytes();
    request.extend(body);
    stream.write_all(&request).await.unwrap();
    let second = read_response(&mut stream, false).await.response();
    assert_eq!(
        second.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&second.body)
    );
    let file = second.json();
    assert_eq!(file["size"], data.len());
    assert_eq!(file["sha256"], crate::common::sha256_hex(&data));
    app.stop().await;
}
