//! Every id in a path is checked against the server's own grammar before any lookup
//! (DESIGN.md "Hostile input"): traversal, encodings, NUL, overlong UTF-8, wrong case and wrong
//! length are a 400 or 404 JSON error on every route, and nothing outside the data dir is
//! ever read (canary files) or removed.

use std::path::PathBuf;

use crate::{
    common::{sha256_hex, TestApp, ADMIN_KEY},
    support::{raw, RawOutcome, RawResponse},
};

/// Unique files outside the data dir whose contents must never appear in a response.
struct Canaries {
    content: String,
    /// In a temp dir of its own, away from the data dir.
    outside: PathBuf,
    /// Next to the data dir, in its parent.
    beside: PathBuf,
    _dir: tempfile::TempDir,
}

impl Canaries {
    fn plant(app: &TestApp) -> Self {
        let content = format!(
            "REELAY-CANARY-{}",
            sha256_hex(format!("{:?}", std::time::SystemTime::now()).as_bytes())
        );
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("canary.txt");
        std::fs::write(&outside, &content).unwrap();
        let parent = app.data_dir.path().parent().expect("data dir has a parent");
        let beside = parent.join(format!("{}.txt", &content[..40]));
        std::fs::write(&beside, &content).unwrap();
        Self {
            content,
            outside,
            beside,
            _dir: dir,
        }
    }

    fn assert_absent(&self, what: &str, bytes: &[u8]) {
        let needle = self.content.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{what} leaked a canary"
        );
    }

    fn assert_untouched(&self) {
        for path in [&self.outside, &self.beside] {
            assert_eq!(std::fs::read_to_string(path).unwrap(), self.content);
        }
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.beside);
    }
}

/// Encodes every '/' of a path as %2f so it stays inside one path segment.
fn one_segment(path: &str) -> String {
    path.replace('/', "%2f")
}

/// Ids that must never name anything, each as it appears in the request target.
fn hostile_ids(canaries: &Canaries) -> Vec<String> {
    let beside_name = canaries
        .beside
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let outside = canaries.outside.to_str().unwrap().to_owned();
    let mut ids = vec![
        "..".to_owned(),
        ".".to_owned(),
        "%2e%2e".to_owned(),
        "..%2f..%2f..%2fetc%2fpasswd".to_owned(),
        "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".to_owned(),
        "..\\..\\..\\etc\\passwd".to_owned(),
        "..%5c..%5c..%5cetc%5cpasswd".to_owned(),
        "%00".to_owned(),
        "fil_abcdefghijklmnopqrs%00".to_owned(),
        "fil_abcdefghijklmnopqrst%00.txt".to_owned(),
        "%c0%ae%c0%ae%2f".to_owned(),
        "%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc%c0%afpasswd".to_owned(),
        "%e0%80%ae%e0%80%ae%2f".to_owned(),
        "FIL_ABCDEFGHIJKLMNOPQRST".to_owned(),
        "fil_ABCDEFGHIJKLMNOPQRST".to_owned(),
        "fil_abcdefghijklmnopqrs".to_owned(),
        "fil_abcdefghijklmnopqrstu".to_owned(),
        format!("fil_{}", "a".repeat(4000)),
        "key_abcdefghijklmnopqrst".to_owned(),
        "fil_abcdefghijklmnopqrs%c3%a9".to_owned(),
        "fil_abcdefghijklmnopqr%2f%2e".to_owned(),
        "reelay.db".to_owned(),
        "..%2freelay.db".to_owned(),
        "..%2f..%2freelay.db".to_owned(),
        one_segment(&outside),
        format!("%2f%2f{}", one_segment(outside.trim_start_matches('/'))),
    ];
    // From objects/files/<id>, the canary beside the data dir is three levels up.
    for depth in 1..=6 {
        ids.push(one_segment(&format!(
            "{}{beside_name}",
            "../".repeat(depth)
        )));
        ids.push(format!("{}{beside_name}", "%2e%2e%5c".repeat(depth)));
        ids.push(format!(
            "fil_abcdefghijklmnopqrst%2f{}{beside_name}",
            "..%2f".repeat(depth)
        ));
    }
    ids
}

/// The routes that take an id, as (method, target) for a given id segment.
fn routes(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GET", format!("/files/{id}")),
        ("HEAD", format!("/files/{id}")),
        ("GET", format!("/files/{id}/name.txt")),
        ("GET", format!("/v1/files/{id}")),
        ("DELETE", format!("/v1/files/{id}")),
        ("POST", format!("/v1/files/{id}/signed-url")),
    ]
}

async fn send(app: &TestApp, method: &str, target: &str) -> RawResponse {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", app.addr);
    if target.starts_with("/v1/") {
        request.push_str(&format!("Authorization: Bearer {ADMIN_KEY}\r\n"));
    }
    let body = if method == "POST" { "{}" } else { "" };
    if method == "POST" {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    match raw(app.addr, request.as_bytes()).await {
        RawOutcome::Response(response) => response,
        RawOutcome::Closed { received } => panic!(
            "{method} {target}: closed without an answer ({:?})",
            String::from_utf8_lossy(&received)
        ),
    }
}

/// A 400 or 404 with our JSON error (for HEAD: no body at all).
fn assert_refused(canaries: &Canaries, method: &str, target: &str, response: &RawResponse) {
    let what = format!("{method} {target}");
    canaries.assert_absent(&what, &response.raw_body);
    assert!(
        response.status == 400 || response.status == 404,
        "{what}: status {}",
        response.status
    );
    if method == "HEAD" {
        assert!(response.raw_body.is_empty(), "{what}");
    } else {
        let code = response.error_code();
        assert!(
            ["invalid_id", "not_found"].contains(&code.as_str()),
            "{what}: code {code}"
        );
    }
}

#[tokio::test]
async fn hostile_ids_are_400_or_404_json_on_every_route_and_read_nothing_outside() {
    let app = TestApp::spawn().await;
    let canaries = Canaries::plant(&app);
    let kept = app.upload("still here", "kept.txt", "public").await;

    let mut checked = 0;
    for id in hostile_ids(&canaries) {
        for (method, target) in routes(&id) {
            let response = send(&app, method, &target).await;
            assert_refused(&canaries, method, &target, &response);
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");

    canaries.assert_untouched();
    let response = app
        .client
        .get(kept["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "still here");
    app.stop().await;
}

#[tokio::test]
async fn an_id_of_the_right_shape_that_is_not_ours_is_400_for_ids_of_another_kind_and_404_otherwise(
) {
    let app = TestApp::spawn().await;
    let canaries = Canaries::plant(&app);
    for (id, status, code) in [
        ("fil_abcdefghijklmnopqrst", 404, "not_found"),
        ("fil_00000000000000000000", 404, "not_found"),
        ("key_abcdefghijklmnopqrst", 400, "invalid_id"),
        ("FIL_ABCDEFGHIJKLMNOPQRST", 400, "invalid_id"),
        ("fil_abcdefghijklmnopqrs", 400, "invalid_id"),
        ("..%2f..%2fetc%2fpasswd", 400, "invalid_id"),
        ("%c0%ae%c0%ae%2f", 400, "invalid_id"),
        ("%00", 400, "invalid_id"),
    ] {
        for (method, target) in routes(id) {
            let response = send(&app, method, &target).await;
            assert_eq!(response.status, status, "{method} {target}");
            if method != "HEAD" {
                assert_eq!(response.error_code(), code, "{method} {target}");
            }
            canaries.assert_absent(&target, &response.raw_body);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn traversal_across_path_segments_finds_no_route_and_no_file() {
    let app = TestApp::spawn().await;
    let canaries = Canaries::plant(&app);
    let beside = canaries
        .beside
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let outside = canaries.outside.to_str().unwrap().to_owned();
    let mut targets = vec![
        "/files/../../../../etc/passwd".to_owned(),
        "/files/fil_abcdefghijklmnopqrst/../../../../etc/passwd".to_owned(),
        "/v1/files/../../etc/passwd".to_owned(),
        "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/files/..;/..;/etc/passwd".to_owned(),
        format!("/files/{}", outside.trim_start_matches('/')),
        format!("/files/{outside}"),
        format!("/files//{}", outside.trim_start_matches('/')),
        "/objects/files".to_owned(),
        "/reelay.db".to_owned(),
        "/files/".to_owned(),
        "/files".to_owned(),
    ];
    for depth in 1..=6 {
        targets.push(format!("/files/{}{beside}", "../".repeat(depth)));
        targets.push(format!("/files/x/{}{beside}", "..%2f".repeat(depth)));
    }
    for target in &targets {
        for method in ["GET", "DELETE"] {
            let response = send(&app, method, target).await;
            let what = format!("{method} {target}");
            canaries.assert_absent(&what, &response.raw_body);
            assert!(
                [400, 404, 405].contains(&response.status),
                "{what}: {}",
                response.status
            );
            let code = response.error_code();
            assert!(
                ["invalid_id", "not_found", "method_not_allowed"].contains(&code.as_str()),
                "{what}: {code}"
            );
        }
    }
    canaries.assert_untouched();
    app.stop().await;
}

#[tokio::test]
async fn a_raw_nul_or_control_byte_in_the_request_line_is_refused_before_any_handler() {
    let app = TestApp::spawn().await;
    let canaries = Canaries::plant(&app);
    let file = app.upload("nul test", "n.txt", "public").await;
    let id = file["id"].as_str().unwrap();
    for target in [
        format!("/files/{id}\0"),
        format!("/files/{id}\0/../../etc/passwd"),
        "/files/fil_\0abcdefghijklmnopqrs".to_owned(),
        format!("/files/{id}\x7f"),
        format!("/files/{id}\r"),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            app.addr
        );
        match raw(app.addr, request.as_bytes()).await {
            RawOutcome::Response(response) => {
                canaries.assert_absent(&target, &response.raw_body);
                assert_eq!(response.status, 400, "{target:?}");
            }
            // Dropping the connection is also a refusal.
            RawOutcome::Closed { received } => canaries.assert_absent(&target, &received),
        }
    }
    canaries.assert_untouched();
    app.stop().await;
}
