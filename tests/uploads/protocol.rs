//! The tus 1.0 status codes, method by method, on whichever backend the suite runs on
//! (fs by default; S3 with REELAY_TEST_STORAGE=s3).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{
    common::{pattern, sha256_hex, TestApp, ADMIN_KEY},
    support::*,
};

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("JSON error");
    body["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

#[tokio::test]
async fn options_advertises_version_extensions_and_limits() {
    let app = TestApp::spawn_with(|c| c.max_upload_bytes = 12345).await;
    let response = app
        .client
        .request(Method::OPTIONS, app.url("/v1/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&response, "tus-version"), Some("1.0.0"));
    assert_eq!(header(&response, "tus-max-size"), Some("12345"));
    assert_eq!(
        header(&response, "tus-checksum-algorithm"),
        Some("sha1,sha256")
    );
    let extensions = header(&response, "tus-extension").unwrap();
    for ext in [
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    ] {
        assert!(
            extensions.split(',').any(|e| e == ext),
            "{ext} missing from {extensions}"
        );
    }
}

#[tokio::test]
async fn post_statuses() {
    let app = TestApp::spawn_with(|c| c.max_upload_bytes = 1000).await;
    let post = |version: Option<&'static str>, length: Option<&'static str>, auth: bool| {
        let mut r = app.client.post(app.url("/v1/uploads"));
        if let Some(v) = version {
            r = r.header("Tus-Resumable", v);
        }
        if let Some(l) = length {
            r = r.header("Upload-Length", l);
        }
        if auth {
            r = r.bearer_auth(ADMIN_KEY);
        }
        r
    };
    // 412 names the version we speak.
    let r = post(None, Some("10"), true).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = post(Some("0.2.2"), Some("10"), true).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(&r, "tus-version"), Some("1.0.0"));
    assert_eq!(error_code(r).await, "unsupported_tus_version");
    // Credentials.
    let r = post(Some(TUS), Some("10"), false).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(Some(TUS), Some("10"), false)
        .bearer_auth("rly.key_nope.nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Length: required, numeric, within the maximum.
    let r = post(Some(TUS), None, true).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(Some(TUS), Some("-1"), true).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(Some(TUS), Some("1001"), true).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = post(Some(TUS), None, true)
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Metadata must be key/base64 pairs.
    let r = post(Some(TUS), Some("10"), true)
        .header("Upload-Metadata", "filename not*base64")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(Some(TUS), Some("10"), true)
        .header("Upload-Metadata", metadata(&[("access", "sideways")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Created: an absolute Location under /v1/uploads, offset 0, an expiry.
    let r = post(Some(TUS), Some("10"), true).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    let location = header(&r, "location").unwrap();
    assert!(
        location.starts_with(&app.url("/v1/uploads/upl_")),
        "{location}"
    );
    assert_eq!(header(&r, "upload-offset"), Some("0"));
    let expires = header(&r, "upload-expires").unwrap();
    assert!(httpdate::parse_http_date(expires).is_ok(), "{expires}");
}

#[tokio::test]
async fn a_key_without_files_write_cannot_create() {
    let app = TestApp::spawn().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reelay"))
        .args(["keys", "create", "--scope", "files:read", "--data-dir"])
        .arg(app.data_dir.path())
        .env_remove("REELAY_DATABASE_URL")
        .env_remove("REELAY_DATA_DIR")
        .output()
        .expect("reelay keys create runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = app
        .client
        .post(app.url("/v1/uploads"))
        .bearer_auth(&token)
        .header("Tus-Resumable", TUS)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn head_statuses() {
    let app = TestApp::spawn().await;
    let url = create(&app, 10, &[("filename", "a.txt")]).await;
    let r = head(&app, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "upload-offset"), Some("0"));
    assert_eq!(header(&r, "upload-length"), Some("10"));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert_eq!(
        header(&r, "upload-metadata"),
        Some(metadata(&[("filename", "a.txt")]).as_str())
    );
    let r = app.client.head(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = head(&app, &app.url("/v1/uploads/upl_00000000000000000000")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = head(&app, &app.url("/v1/uploads/not-an-id")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patch_statuses_leave_the_upload_unchanged() {
    let app = TestApp::spawn().await;
    let data = pattern(1, 100);
    let url = create(&app, 100, &[]).await;
    // 415: not application/offset+octet-stream.
    let r = app
        .client
        .patch(&url)
        .header("Tus-Resumable", TUS)
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", "0")
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // 412: no version.
    let r = app
        .client
        .patch(&url)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // 400: no offset.
    let r = app
        .client
        .patch(&url)
        .header("Tus-Resumable", TUS)
        .header("Content-Type", OCTETS)
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // 409: wrong offset, and the answer names the right one.
    let r = patch(&app, &url, 5, data[5..10].to_vec()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(offset_of(&r), 0);
    // 413: past the declared length.
    let r = patch(&app, &url, 0, pattern(2, 101)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(offset_of(&head(&app, &url).await), 0);

    // 204 with the new offset; then a 409 for the stale offset.
    let r = patch(&app, &url, 0, data[..40].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&r), 40);
    let r = patch(&app, &url, 0, data[..40].to_vec()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(offset_of(&head(&app, &url).await), 40);

    // 404 for unknown uploads.
    let r = patch(
        &app,
        &app.url("/v1/uploads/upl_00000000000000000000"),
        0,
        vec![1u8],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The rest completes it into a file with the right bytes.
    let r = patch(&app, &url, 40, data[40..].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&r), 100);
    let file_id = header(&r, "reelay-file-id").expect("file id").to_owned();
    let file = file_json(&app, &file_id).await;
    assert_eq!(file["size"], 100);
    assert_eq!(file["sha256"], sha256_hex(&data));
    // A completed upload takes no more bytes; an empty PATCH at its end (a client repeating
    // its last request) answers as the last one did.
    let r = patch(&app, &url, 40, data[40..].to_vec()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = patch(&app, &url, 100, Vec::new()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "reelay-file-id"), Some(file_id.as_str()));
    let r = patch(&app, &url, 100, vec![1u8]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn checksum_mismatch_is_460_and_appends_nothing() {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use sha2::Digest;
    let app = TestApp::spawn().await;
    let data = pattern(3, 64 * 1024);
    let url = create(&app, data.len() as u64, &[]).await;
    let good_sha1 = STANDARD.encode(sha1_digest(&data[..1000]));
    let good_sha256 = STANDARD.encode(sha2::Sha256::digest(&data[1000..2000]));
    let send = |offset: u64, body: Vec<u8>, checksum: String| {
        app.client
            .patch(&url)
            .header("Tus-Resumable", TUS)
            .header("Content-Type", OCTETS)
            .header("Upload-Offset", offset.to_string())
            .header("Upload-Checksum", checksum)
            .body(body)
            .send()
    };
    // A wrong sha1: 460, offset unchanged.
    let r = send(
        0,
        data[..1000].to_vec(),
        format!("sha1 {}", STANDARD.encode([0u8; 20])),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 460);
    assert_eq!(offset_of(&head(&app, &url).await), 0);
    // Right sha1, then a corrupted body under a right sha256.
    let r = send(0, data[..1000].to_vec(), format!("sha1 {good_sha1}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let mut corrupted = data[1000..2000].to_vec();
    corrupted[500] ^= 1;
    let r = send(1000, corrupted, format!("sha256 {good_sha256}"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 460);
    assert_eq!(offset_of(&head(&app, &url).await), 1000);
    // Unknown algorithm: 400.
    let r = send(1000, data[1000..2000].to_vec(), "md5 AAAA".into())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(
        1000,
        data[1000..2000].to_vec(),
        format!("sha256 {good_sha256}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The file is exactly the source: the refused bodies left no trace.
    let r = finish(&app, &url, &data).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let file = file_json(&app, header(&r, "reelay-file-id").unwrap()).await;
    assert_eq!(file["sha256"], sha256_hex(&data));
}

fn sha1_digest(bytes: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(bytes).to_vec()
}

#[tokio::test]
async fn termination_then_410_everywhere() {
    let app = TestApp::spawn().await;
    let url = create(&app, 100, &[]).await;
    assert_eq!(
        patch(&app, &url, 0, vec![7u8; 30]).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = delete(&app, &url).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(head(&app, &url).await.status(), StatusCode::GONE);
    assert_eq!(
        patch(&app, &url, 30, vec![7u8; 10]).await.status(),
        StatusCode::GONE
    );
    assert_eq!(delete(&app, &url).await.status(), StatusCode::GONE);
    let r = delete(&app, &app.url("/v1/uploads/upl_00000000000000000000")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.client.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // No partial bytes remain, and nothing became a file.
    if app.s3.is_none() {
        let uploads = app.objects_dir().join("uploads");
        let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "partial files remain in {}", uploads.display());
    }
    assert!(app.stored().await.is_empty(), "{:?}", app.stored().await);
}

#[tokio::test]
async fn a_completed_upload_cannot_be_terminated() {
    let app = TestApp::spawn().await;
    let url = create(&app, 3, &[]).await;
    assert_eq!(
        patch(&app, &url, 0, b"abc".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = delete(&app, &url).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = head(&app, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "reelay-file-id").is_some());
}

#[tokio::test]
async fn creation_with_upload_and_empty_uploads() {
    let app = TestApp::spawn().await;
    let data = pattern(4, 5000);
    let r = app
        .client
        .post(app.url("/v1/uploads"))
        .bearer_auth(ADMIN_KEY)
        .header("Tus-Resumable", TUS)
        .header("Upload-Length", "5000")
        .header("Content-Type", OCTETS)
        .body(data[..2000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(offset_of(&r), 2000);
    let url = header(&r, "location").unwrap().to_owned();
    let r = finish(&app, &url, &data).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let file = file_json(&app, header(&r, "reelay-file-id").unwrap()).await;
    assert_eq!(file["sha256"], sha256_hex(&data));

    // Length 0: complete on creation.
    let r = create_raw(&app, 0, &[("filename", "empty.txt")]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let file = file_json(
        &app,
        header(&r, "reelay-file-id").expect("complete at once"),
    )
    .await;
    assert_eq!(file["size"], 0);
    assert_eq!(file["filename"], "empty.txt");
    assert_eq!(file["content_type"], "text/plain");
}

#[tokio::test]
async fn a_finished_upload_is_an_ordinary_file_and_can_start_a_transcode() {
    let app = TestApp::spawn_with(|c| c.worker.workers = 0).await;
    let data = pattern(5, 3000);
    let url = create(
        &app,
        3000,
        &[
            ("filename", "clip.mp4"),
            ("filetype", "video/mp4"),
            ("access", "public"),
            ("transcode", "true"),
        ],
    )
    .await;
    let r = patch(&app, &url, 0, data.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let file_id = header(&r, "reelay-file-id").unwrap().to_owned();
    let media_id = header(&r, "reelay-media-id")
        .expect("a media was started")
        .to_owned();
    let file = file_json(&app, &file_id).await;
    assert_eq!(file["filename"], "clip.mp4");
    assert_eq!(file["content_type"], "video/mp4");
    assert_eq!(file["access"], "public");
    // Served like any upload.
    let body = app
        .client
        .get(app.url(&format!("/files/{file_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), StatusCode::OK);
    assert_eq!(body.bytes().await.unwrap().as_ref(), data.as_slice());
    let media = app
        .api(Method::GET, &format!("/v1/media/{media_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    let media: Value = media.json().await.unwrap();
    assert_eq!(media["file_id"], file_id.as_str());
}

#[tokio::test]
async fn concurrent_patches_never_interleave() {
    let app = TestApp::spawn().await;
    let length = 4 * 1024 * 1024u64;
    let a = pattern(6, length as usize);
    let b = pattern(7, length as usize);
    let url = create(&app, length, &[]).await;
    // A slow PATCH (a's first 2 MiB, in two pieces) and a quick one (b's first MiB) meet on
    // one upload: exactly one is taken, the other is refused (423, or 409 once the offset
    // moved; a refused streaming body may also see its connection closed).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let slow = {
        let client = app.client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            client
                .patch(&url)
                .header("Tus-Resumable", TUS)
                .header("Content-Type", OCTETS)
                .header("Upload-Offset", "0")
                .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
                .send()
                .await
                .map(|r| r.status())
        })
    };
    let _ = tx
        .send(Ok(bytes::Bytes::copy_from_slice(&a[..1024 * 1024])))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = patch(&app, &url, 0, b[..1024 * 1024].to_vec())
        .await
        .status();
    let _ = tx
        .send(Ok(bytes::Bytes::copy_from_slice(
            &a[1024 * 1024..2 * 1024 * 1024],
        )))
        .await;
    drop(tx);
    let slow = slow.await.unwrap();
    let refused = |s: StatusCode| matches!(s, StatusCode::LOCKED | StatusCode::CONFLICT);
    let (winner, offset) = match (slow, quick) {
        (Ok(StatusCode::NO_CONTENT), q) if refused(q) => (&a, 2 * 1024 * 1024),
        (Ok(s), StatusCode::NO_CONTENT) if refused(s) => (&b, 1024 * 1024),
        (Err(_), StatusCode::NO_CONTENT) => (&b, 1024 * 1024),
        other => panic!("one PATCH must win and one be refused: {other:?}"),
    };
    assert_eq!(offset_of(&head(&app, &url).await), offset);
    // The winner's bytes only: finishing with them gives exactly them.
    let r = finish(&app, &url, winner).await;
    let file = file_json(&app, header(&r, "reelay-file-id").unwrap()).await;
    assert_eq!(file["sha256"], sha256_hex(winner));
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn expired_uploads_are_swept_and_answer_410() {
    let app = TestApp::spawn_with(|c| {
        c.upload_expiry_secs = 1;
        c.sweep_interval_secs = 1;
    })
    .await;
    let url = create(&app, 100, &[]).await;
    assert_eq!(
        patch(&app, &url, 0, vec![1u8; 50]).await.status(),
        StatusCode::NO_CONTENT
    );
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = head(&app, &url).await.status();
        if status == StatusCode::GONE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        patch(&app, &url, 50, vec![1u8; 50]).await.status(),
        StatusCode::GONE
    );
    if app.s3.is_none() {
        let left = std::fs::read_dir(app.objects_dir().join("uploads"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0);
    }
}

#[tokio::test]
async fn browsers_may_upload_from_any_origin() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/v1/uploads"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "tus-resumable,upload-length,upload-metadata,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = app
        .client
        .post(app.url("/v1/uploads"))
        .bearer_auth(ADMIN_KEY)
        .header("Origin", "https://app.example")
        .header("Tus-Resumable", TUS)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    let exposed = header(&r, "access-control-expose-headers").unwrap();
    for h in [
        "location",
        "upload-offset",
        "tus-resumable",
        "upload-expires",
    ] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
}
