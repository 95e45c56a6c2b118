//! The S3 backend's own behaviour against a real SeaweedFS: multipart uploads, faults of the S3
//! server itself, key hygiene, and the `storage` subcommands. (The storage suite in
//! tests/backends and the whole API suite with REELAY_TEST_STORAGE=s3 cover the rest.)

#[path = "../common/mod.rs"]
mod common;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{big_body, pattern, seaweed::Seaweed, sha256_hex, TestApp};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

async fn incomplete_uploads(app: &TestApp) -> Vec<String> {
    let s3 = app.s3.as_ref().unwrap();
    let page = s3
        .client()
        .list_multipart_uploads()
        .bucket(s3.bucket())
        .send()
        .await
        .unwrap();
    page.uploads()
        .iter()
        .map(|u| u.key().unwrap_or_default().to_owned())
        .collect()
}

async fn bucket_keys(app: &TestApp) -> Vec<String> {
    use reelay::storage::Storage;
    let s3 = app.s3.as_ref().unwrap();
    let mut keys: Vec<String> = s3
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_body_larger_than_one_part_goes_up_as_a_multipart_upload() {
    let app = TestApp::spawn_on_s3(Seaweed::shared(), |_| {}).await;
    let (body, digest) = big_body(23 * 1024 * 1024, 7);
    let file = app
        .upload(reqwest::Body::wrap_stream(body), "big.bin", "public")
        .await;
    assert_eq!(file["sha256"], digest);
    let s3 = app.s3.as_ref().unwrap();
    let head = s3
        .client()
        .head_object()
        .bucket(s3.bucket())
        .key(format!("files/{}", file["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(23 * 1024 * 1024));
    // A multipart object's ETag is "<md5 of part md5s>-<part count>": 23 MiB in 5 MiB parts.
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    assert!(
        etag.ends_with("-5"),
        "not a 5-part multipart object: {etag}"
    );
    assert!(incomplete_uploads(&app).await.is_empty());

    let small = app.upload("tiny", "t.txt", "public").await;
    let head = s3
        .client()
        .head_object()
        .bucket(s3.bucket())
        .key(format!("files/{}", small["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(
        !head.e_tag().unwrap_or_default().contains('-'),
        "a small body is one PutObject"
    );
    app.stop().await;
}

#[tokio::test]
async fn client_filenames_never_reach_bucket_keys() {
    let app = TestApp::spawn_on_s3(Seaweed::shared(), |_| {}).await;
    let mut ids = Vec::new();
    for name in [
        "a//b",
        "./x",
        "..",
        "%2F",
        "+ space",
        "../../etc/passwd",
        "files/evil",
    ] {
        let response = app
            .api(Method::POST, "/v1/files")
            .query(&[("filename", name)])
            .body(name.as_bytes().to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{name:?}");
        let json: Value = response.json().await.unwrap();
        ids.push(format!("files/{}", json["id"].as_str().unwrap()));
    }
    ids.sort();
    assert_eq!(bucket_keys(&app).await, ids);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_object_the_catalog_lists_is_a_404_not_a_500() {
    let app = TestApp::spawn_on_s3(Seaweed::shared(), |_| {}).await;
    let file = app.upload("soon gone", "g.txt", "public").await;
    let s3 = app.s3.as_ref().unwrap();
    s3.client()
        .delete_object()
        .bucket(s3.bucket())
        .key(format!("files/{}", file["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    let response = app
        .client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn killing_s3_mid_multipart_gives_503_no_row_and_no_incomplete_upload_once_it_is_back() {
    let mut weed = Seaweed::start();
    let app = TestApp::spawn_on_s3(&weed, |_| {}).await;
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let (body, _) = big_body(400 * 1024 * 1024, 9);
    // Paced so that S3 dies while parts are still going up.
    let body = body.then(move |chunk| {
        let counter = counter.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(c) = &chunk {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
            chunk
        }
    });
    let request = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", "doomed.bin")])
        .header("content-length", 400u64 * 1024 * 1024)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(request);
    while sent.load(Ordering::Relaxed) < 30 * 1024 * 1024 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s3 = app.s3.clone().unwrap();
    let started = s3
        .client()
        .list_multipart_uploads()
        .bucket(s3.bucket())
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.uploads().len(),
        1,
        "the upload is a multipart upload by now"
    );
    weed.kill();

    let response = upload
        .await
        .unwrap()
        .expect("the server answers before hanging up");
    assert_eq!(response.status(), 503);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "storage_unavailable");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readyz reports S3 down");
    let listed: Value = app
        .api(Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["items"],
        serde_json::json!([]),
        "no row for a failed upload"
    );

    weed.restart();
    // The service recovers by itself, and the abort it could not send is retried until it lands.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200;
        let clean = ready && incomplete_uploads(&app).await.is_empty();
        if clean {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still unready or an incomplete upload remains"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let file = app.upload("after the storm", "ok.txt", "public").await;
    assert_eq!(file["sha256"], sha256_hex(b"after the storm"));
    app.stop().await;
}

#[tokio::test]
async fn head_and_304_are_answered_from_the_catalog_while_s3_is_down() {
    let mut weed = Seaweed::start();
    let app = TestApp::spawn_on_s3(&weed, |_| {}).await;
    let data = pattern(3, 100_000);
    let file = app.upload(data.clone(), "p.bin", "public").await;
    let url = file["url"].as_str().unwrap().to_owned();
    // Served once so the record is cached; then S3 goes away.
    assert_eq!(
        app.client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    weed.kill();

    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "100000");
    let etag = format!("\"{}\"", file["sha256"].as_str().unwrap());
    let not_modified = app
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    let get = app.client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 503);
    let json: Value = get.json().await.unwrap();
    assert_eq!(json["error"]["code"], "storage_unavailable");
    app.stop().await;
}

fn reelay() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelay"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn s3_args(weed: &Seaweed, bucket: &str) -> Vec<String> {
    vec![
        "--storage".into(),
        "s3".into(),
        "--s3-endpoint".into(),
        weed.endpoint.clone(),
        "--s3-bucket".into(),
        bucket.into(),
        "--s3-path-style".into(),
        "true".into(),
    ]
}

#[tokio::test]
async fn storage_check_says_what_is_wrong_in_plain_words() {
    let weed = Seaweed::shared();
    let bucket = weed.bucket().await;
    let run = |args: Vec<String>, secret: &'static str| {
        let mut command = reelay();
        command
            .env("AWS_ACCESS_KEY_ID", common::seaweed::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .arg("storage")
            .args(args)
            .arg("check");
        command
    };
    let good = run(s3_args(weed, bucket.bucket()), common::seaweed::SECRET_KEY)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(stdout.contains("storage works"), "{stdout}");

    let missing = run(
        s3_args(weed, "no-such-bucket-here"),
        common::seaweed::SECRET_KEY,
    )
    .output()
    .await
    .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no-such-bucket-here"), "{stderr}");
    assert!(stderr.contains("create the bucket"), "{stderr}");

    let refused = run(s3_args(weed, bucket.bucket()), "wrong-secret-0123456789")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not reachable") || stderr.contains("cannot"),
        "{stderr}"
    );
    assert!(
        stderr.contains("secret key is wrong") || stderr.contains("credentials were refused"),
        "{stderr}"
    );

    let mut unreachable = s3_args(weed, bucket.bucket());
    unreachable[3] = "http://127.0.0.1:9".into();
    let down = run(unreachable, common::seaweed::SECRET_KEY)
        .output()
        .await
        .unwrap();
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("REELAY_S3_ENDPOINT"), "{stderr}");
}

#[tokio::test]
async fn storage_migrate_copies_an_fs_data_dir_to_s3_and_the_files_keep_serving() {
    // Files uploaded on the embedded default...
    let fs_app = TestApp::spawn_with(|c| {
        c.store.storage = reelay::config::StorageKind::Fs;
    })
    .await;
    if fs_app.s3.is_some() {
        return; // this case starts from fs on purpose
    }
    let mut files = Vec::new();
    for (i, size) in [0usize, 10, 6 * 1024 * 1024].into_iter().enumerate() {
        let data = pattern(i as u64 + 20, size);
        files.push((fs_app.upload(data.clone(), "m.bin", "public").await, data));
    }
    // A copy of the data dir outlives the app (its temp dir goes with it); the server is idle.
    let keep_dir = tempfile::tempdir().unwrap();
    let moved = keep_dir.path().join("data");
    copy_dir(fs_app.data_dir.path(), &moved);
    fs_app.stop().await;

    // ...are copied to a bucket and verified...
    let weed = Seaweed::shared();
    let bucket = weed.bucket().await;
    let out = reelay()
        .env("AWS_ACCESS_KEY_ID", common::seaweed::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", common::seaweed::SECRET_KEY)
        .arg("storage")
        .args(s3_args(weed, bucket.bucket()))
        .args([
            "--data-dir",
            moved.to_str().unwrap(),
            "migrate",
            "--to",
            "s3",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied and verified 3 objects"), "{stdout}");

    // ...and a server on the same catalog with REELAY_STORAGE=s3 serves them byte for byte.
    let settings = weed.settings(bucket.bucket());
    let app = TestApp::spawn_with(|c| {
        c.store.data_dir = moved.clone();
        c.store.storage = reelay::config::StorageKind::S3;
        c.store.s3.endpoint = settings.endpoint.clone();
        c.store.s3.bucket = settings.bucket.clone();
        c.store.s3.path_style = true;
        c.store.s3.access_key_id = Some(reelay::config::Secret(common::seaweed::ACCESS_KEY.into()));
        c.store.s3.secret_access_key =
            Some(reelay::config::Secret(common::seaweed::SECRET_KEY.into()));
    })
    .await;
    for (file, data) in files {
        let url = format!("{}/files/{}", app.base, file["id"].as_str().unwrap());
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap(), data);
    }
    app.stop().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
