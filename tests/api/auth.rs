//! Bearer API keys: 401 without a valid key, 403 without the route's scope. Keys are made,
//! listed and revoked with the real `reelay keys` CLI on the server's own catalog.

use std::path::Path;

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use crate::{
    common::{TestApp, ADMIN_KEY},
    support::{assert_nothing_stored, expect_error, one_header},
};

struct CliOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the `reelay` binary built with these tests.
async fn reelay(args: &[&str]) -> CliOutput {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelay"))
        .args(args)
        .env_remove("REELAY_DATABASE_URL")
        .env_remove("REELAY_DATA_DIR")
        // An error exit would otherwise symbolize a backtrace of the debug binary.
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("reelay runs");
    CliOutput {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

struct Key {
    token: String,
    id: String,
    secret: String,
}

async fn create_key(data_dir: &Path, scopes: &str) -> Key {
    let dir = data_dir.to_str().unwrap();
    let out = reelay(&["keys", "create", "--data-dir", dir, "--scope", scopes]).await;
    assert!(out.success, "keys create failed: {}", out.stderr);
    let token = out.stdout.trim().to_owned();
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the key on stdout: {:?}",
        out.stdout
    );
    let (id, secret) = token
        .strip_prefix("rly.")
        .and_then(|rest| rest.split_once('.'))
        .unwrap_or_else(|| panic!("rly.<id>.<secret>, got {token:?}"));
    assert!(id.starts_with("key_"), "{id}");
    assert!(secret.len() >= 32, "a long secret");
    assert!(
        !out.stderr.contains(secret),
        "the secret is printed once, on stdout"
    );
    Key {
        id: id.to_owned(),
        secret: secret.to_owned(),
        token,
    }
}

async fn keys_list(data_dir: &Path) -> String {
    let out = reelay(&["keys", "list", "--data-dir", data_dir.to_str().unwrap()]).await;
    assert!(out.success, "keys list failed: {}", out.stderr);
    format!("{}{}", out.stdout, out.stderr)
}

fn as_key(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.bearer_auth(token)
}

#[tokio::test]
async fn a_request_without_a_valid_key_is_401_with_www_authenticate_bearer() {
    let app = TestApp::spawn().await;
    let file = app.upload("x", "x.txt", "private").await;
    let id = file["id"].as_str().unwrap();
    let routes = [
        (Method::GET, "/v1/files".to_owned()),
        (Method::POST, "/v1/files".to_owned()),
        (Method::GET, format!("/v1/files/{id}")),
        (Method::DELETE, format!("/v1/files/{id}")),
        (Method::POST, format!("/v1/files/{id}/signed-url")),
    ];
    let made_up = format!("rly.key_abcdefghijklmnopqrst.{}", "s".repeat(43));
    let credentials: [Option<String>; 8] = [
        None,
        Some(String::new()),
        Some("Bearer ".into()),
        Some("Bearer wrong-key".into()),
        Some(format!("Bearer {ADMIN_KEY}x")),
        Some(format!("Bearer {}", &ADMIN_KEY[..ADMIN_KEY.len() - 1])),
        Some(format!("Basic {ADMIN_KEY}")),
        Some(format!("Bearer {made_up}")),
    ];
    for (method, path) in &routes {
        for credential in &credentials {
            let mut request = app.client.request(method.clone(), app.url(path));
            if let Some(value) = credential {
                request = request.header("authorization", value);
            }
            let response = request.body("payload").send().await.unwrap();
            let (headers, code) = expect_error(response, 401).await;
            assert_eq!(code, "unauthorized", "{method} {path} {credential:?}");
            assert_eq!(one_header(&headers, "www-authenticate"), "Bearer");
        }
    }
    // Nothing was uploaded or deleted by any of them.
    let listed = app.api(Method::GET, "/v1/files").send().await.unwrap();
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_files_read_key_from_the_cli_reads_but_may_not_write() {
    let app = TestApp::spawn().await;
    let key = create_key(app.data_dir.path(), "files:read").await;
    let file = app.upload("readable", "r.txt", "private").await;
    let id = file["id"].as_str().unwrap();

    let list = as_key(app.client.get(app.url("/v1/files")), &key.token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let show = as_key(
        app.client.get(app.url(&format!("/v1/files/{id}"))),
        &key.token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(show.status(), 200);
    let sign = as_key(
        app.client
            .post(app.url(&format!("/v1/files/{id}/signed-url"))),
        &key.token,
    )
    .json(&json!({ "expires_in": 60 }))
    .send()
    .await
    .unwrap();
    assert_eq!(sign.status(), 200);

    let upload = as_key(app.client.post(app.url("/v1/files")), &key.token)
        .body("not allowed")
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(upload, 403).await;
    assert_eq!(code, "forbidden");
    let delete = as_key(
        app.client.delete(app.url(&format!("/v1/files/{id}"))),
        &key.token,
    )
    .send()
    .await
    .unwrap();
    let (_, code) = expect_error(delete, 403).await;
    assert_eq!(code, "forbidden");

    // The file is still there and nothing else was stored.
    let listed = app.api(Method::GET, "/v1/files").send().await.unwrap();
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], id);
    app.stop().await;
}

#[tokio::test]
async fn a_files_write_key_from_the_cli_uploads_and_deletes() {
    let app = TestApp::spawn().await;
    let key = create_key(app.data_dir.path(), "files:write").await;
    let upload = as_key(app.client.post(app.url("/v1/files")), &key.token)
        .query(&[("filename", "w.txt")])
        .body("written")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let file: serde_json::Value = upload.json().await.unwrap();
    let id = file["id"].as_str().unwrap();
    let delete = as_key(
        app.client.delete(app.url(&format!("/v1/files/{id}"))),
        &key.token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(delete.status(), 204);
    assert_nothing_stored(&app).await;

    let both = create_key(app.data_dir.path(), "files:read,files:write").await;
    for (method, path) in [(Method::GET, "/v1/files"), (Method::POST, "/v1/files")] {
        let response = as_key(
            app.client.request(method.clone(), app.url(path)),
            &both.token,
        )
        .body("both")
        .send()
        .await
        .unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_401_and_keys_list_never_prints_a_secret() {
    let app = TestApp::spawn().await;
    let key = create_key(app.data_dir.path(), "files:read").await;
    let other = create_key(app.data_dir.path(), "files:write").await;
    let get = || as_key(app.client.get(app.url("/v1/files")), &key.token).send();
    assert_eq!(get().await.unwrap().status(), 200);

    let listed = keys_list(app.data_dir.path()).await;
    for k in [&key, &other] {
        assert!(listed.contains(&k.id), "{listed}");
        assert!(
            !listed.contains(&k.secret),
            "keys list printed a secret: {listed}"
        );
        assert!(
            !listed.contains(&k.token),
            "keys list printed a token: {listed}"
        );
    }
    let line = listed.lines().find(|l| l.contains(&key.id)).unwrap();
    assert!(
        line.contains("active") && line.contains("files:read"),
        "{line}"
    );

    let dir = app.data_dir.path().to_str().unwrap();
    let revoked = reelay(&["keys", "revoke", "--data-dir", dir, &key.id]).await;
    assert!(revoked.success, "{}", revoked.stderr);
    assert!(!revoked.stdout.contains(&key.secret) && !revoked.stderr.contains(&key.secret));

    let (headers, code) = expect_error(get().await.unwrap(), 401).await;
    assert_eq!(code, "unauthorized");
    assert_eq!(one_header(&headers, "www-authenticate"), "Bearer");
    // Revoking one key leaves the others working.
    let upload = as_key(app.client.post(app.url("/v1/files")), &other.token)
        .body("still works")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);

    let listed = keys_list(app.data_dir.path()).await;
    let line = listed.lines().find(|l| l.contains(&key.id)).unwrap();
    assert!(line.contains("revoked"), "{line}");
    assert!(!listed.contains(&key.secret) && !listed.contains(&other.secret));

    let again = reelay(&["keys", "revoke", "--data-dir", dir, &key.id]).await;
    assert!(!again.success, "revoking twice is an error");
    let unknown = reelay(&["keys", "revoke", "--data-dir", dir, "../../etc"]).await;
    assert!(!unknown.success);
    app.stop().await;
}

#[tokio::test]
async fn a_key_with_a_known_id_but_the_wrong_secret_or_another_catalog_is_401() {
    let app = TestApp::spawn().await;
    let key = create_key(app.data_dir.path(), "admin").await;
    let ok = as_key(app.client.get(app.url("/v1/files")), &key.token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let mut flipped = key.secret.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let wrong_secret = format!("rly.{}.{}", key.id, String::from_utf8(flipped).unwrap());
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = create_key(elsewhere.path(), "admin").await;
    for token in [
        wrong_secret,
        foreign.token,
        format!("rly.{}.", key.id),
        format!("rly.{}", key.id),
    ] {
        let response = as_key(app.client.get(app.url("/v1/files")), &token)
            .send()
            .await
            .unwrap();
        let (_, code) = expect_error(response, 401).await;
        assert_eq!(code, "unauthorized", "{token}");
    }
    app.stop().await;
}
