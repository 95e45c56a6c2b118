//! Resumable uploads with the reference client, tus-js-client (tests/tus-node/resume.mjs): an
//! upload interrupted past 20 MiB, resumed by a new client from the server's offset, ends as a
//! file whose bytes are the source's. Once with the API key, once through a direct-upload URL
//! with no key at all.

use std::{path::PathBuf, time::Duration};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, sha256_hex, TestApp, ADMIN_KEY};

const MIB: usize = 1024 * 1024;
const FILE_SIZE: usize = 50 * MIB;
const CHUNK_SIZE: usize = 8 * MIB;
const INTERRUPT_AT: usize = 20 * MIB;

fn tus_node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tus-node")
}

/// What resume.mjs prints.
#[derive(Debug, serde::Deserialize)]
struct Resumed {
    upload_url: String,
    offset_at_interrupt: u64,
    offset_before_resume: u64,
    resumed_from: u64,
    /// The offset the resumed client's own HEAD got.
    resume_head_offset: u64,
    file_id: Option<String>,
    file_id_from_head: Option<String>,
    bytes: u64,
}

/// Writes the 50 MiB source next to the app's data and returns its path and SHA-256.
fn source_file(app: &TestApp, seed: u64) -> (PathBuf, String) {
    let body = pattern(seed, FILE_SIZE);
    let path = app.data_dir.path().join("source.bin");
    std::fs::write(&path, &body).expect("source file written");
    (path, sha256_hex(&body))
}

/// Runs resume.mjs and parses its JSON line; panics with its stderr when it fails.
async fn resume_with_tus_js(
    endpoint: &str,
    authorization: Option<&str>,
    file: &std::path::Path,
    extra: &[&str],
) -> Resumed {
    let dir = tus_node_dir();
    assert!(
        dir.join("node_modules/tus-js-client").is_dir(),
        "{}/node_modules is missing: run scripts/test, which installs it (npm ci in tests/tus-node)",
        dir.display()
    );
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(&dir)
        .arg("resume.mjs")
        .args(["--endpoint", endpoint])
        .arg("--file")
        .arg(file)
        .args(["--chunk-size", &CHUNK_SIZE.to_string()])
        .args(["--interrupt-at", &INTERRUPT_AT.to_string()])
        .args([
            "--access",
            "private",
            "--filetype",
            "application/octet-stream",
        ])
        .args(extra)
        .kill_on_drop(true);
    if let Some(authorization) = authorization {
        command.args(["--authorization", authorization]);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("resume.mjs finished within 2 minutes")
        .expect("node runs (is Node.js on PATH? scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "resume.mjs failed ({}):\n{}{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("resume.mjs printed {stdout:?}: {e}"))
}

/// The resumed upload started where the server said it stood, and the file it made holds
/// exactly the source's bytes.
async fn assert_resumed_into_file(app: &TestApp, resumed: &Resumed, sha256: &str) {
    let size = FILE_SIZE as u64;
    assert_eq!(resumed.bytes, size);
    assert!(
        resumed.upload_url.starts_with(&app.url("/v1/uploads/upl_")),
        "upload URL {}",
        resumed.upload_url
    );
    assert!(
        resumed.offset_at_interrupt >= INTERRUPT_AT as u64,
        "{resumed:?}"
    );
    assert!(
        resumed.offset_before_resume > 0 && resumed.offset_before_resume <= size,
        "the server lost the interrupted upload: {resumed:?}"
    );
    assert!(
        resumed.offset_before_resume >= resumed.offset_at_interrupt,
        "the server forgot acknowledged bytes: {resumed:?}"
    );
    // A cut PATCH may still be saving when the first HEAD asks: the offset can only grow
    // from there, and the new client continues from what its own HEAD was told.
    assert!(
        resumed.resume_head_offset >= resumed.offset_before_resume,
        "the server's offset went back: {resumed:?}"
    );
    assert_eq!(
        resumed.resumed_from, resumed.resume_head_offset,
        "the new client did not continue from the server's offset"
    );
    let file_id = resumed
        .file_id
        .as_deref()
        .expect("the completing PATCH carries Reelay-File-Id");
    assert_eq!(
        resumed.file_id_from_head.as_deref(),
        Some(file_id),
        "a HEAD after completion names the same file"
    );

    let response = app
        .api(Method::GET, &format!("/v1/files/{file_id}"))
        .send()
        .await
        .expect("file fetched");
    assert_eq!(response.status(), 200);
    let file: Value = response.json().await.unwrap();
    assert_eq!(file["size"], json!(size), "{file}");
    assert_eq!(file["sha256"], json!(sha256), "{file}");
    assert_eq!(file["filename"], json!("source.bin"), "{file}");
    assert_eq!(file["access"], json!("private"), "{file}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_with_the_api_key_after_an_interruption() {
    let app = TestApp::spawn().await;
    let (file, sha256) = source_file(&app, 81);
    let resumed = resume_with_tus_js(
        &app.url("/v1/uploads"),
        Some(&format!("Bearer {ADMIN_KEY}")),
        &file,
        &[],
    )
    .await;
    assert_resumed_into_file(&app, &resumed, &sha256).await;
}

/// A PATCH cut off halfway: the server may keep what it received (tus 1.0 says it SHOULD),
/// and whatever offset it then reports is where the client continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_after_a_patch_cut_off_mid_body() {
    let app = TestApp::spawn().await;
    let (file, sha256) = source_file(&app, 82);
    let resumed = resume_with_tus_js(
        &app.url("/v1/uploads"),
        Some(&format!("Bearer {ADMIN_KEY}")),
        &file,
        &["--abort", "mid-chunk"],
    )
    .await;
    assert_resumed_into_file(&app, &resumed, &sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_through_a_direct_upload_url_without_a_key() {
    let app = TestApp::spawn().await;
    let (file, sha256) = source_file(&app, 83);
    let response = app
        .api(Method::POST, "/v1/direct-uploads")
        .json(&json!({
            "max_size": FILE_SIZE,
            "expires_in": 3600,
            "access": "private",
            "transcode": false,
            "cors_origin": "https://app.example",
        }))
        .send()
        .await
        .expect("direct upload created");
    let status = response.status();
    let direct: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {direct}");
    let upload_url = direct["upload_url"]
        .as_str()
        .expect("upload_url")
        .to_owned();
    assert!(
        upload_url.starts_with(&app.url("/v1/uploads")),
        "upload_url {upload_url}"
    );

    // The first chunk rides on the creation POST (creation-with-upload), as browsers do.
    let resumed = resume_with_tus_js(&upload_url, None, &file, &["--data-during-creation"]).await;
    assert_resumed_into_file(&app, &resumed, &sha256).await;
}
