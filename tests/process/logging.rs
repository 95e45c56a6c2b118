//! `--log-format json`: every line the server writes to stderr is one JSON object.

use std::time::Duration;

use serde_json::Value;

use crate::{
    common::ADMIN_KEY,
    harness::{client, Server},
};

#[tokio::test]
async fn log_format_json_writes_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &[], &["--log-format", "json"]).await;
    let stored = client()
        .post(server.url("/v1/files"))
        .query(&[("filename", "a.txt")])
        .bearer_auth(ADMIN_KEY)
        .body("logged")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).await.success());

    let log = server.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "too few log lines:\n{log}");
    let mut messages = Vec::new();
    for line in lines {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(entry.is_object(), "{line}");
        assert!(entry["level"].is_string(), "no level: {line}");
        assert!(entry["timestamp"].is_string(), "no timestamp: {line}");
        messages.extend(entry["fields"]["message"].as_str().map(str::to_owned));
    }
    for expected in ["listening", "file stored"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no {expected:?} in {messages:?}"
        );
    }
}
