//! Case 6: the media API's refusals: bad bodies and unknown files (422 JSON), ids checked
//! before any lookup, 401 without a key and 403 without the route's scope. Keys are made with
//! the real `reelay keys` CLI on the server's own catalog, as tests/api/auth.rs does.

use std::path::Path;

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::{
    common::TestApp,
    corpus::create_media,
    support::{client, expect_error},
};

/// A bearer token made by `reelay keys create` with `scopes` (comma-separated).
async fn cli_key(data_dir: &Path, scopes: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelay"))
        .args(["keys", "create", "--data-dir", data_dir.to_str().unwrap()])
        .args(["--scope", scopes])
        .env_remove("REELAY_DATABASE_URL")
        .env_remove("REELAY_DATA_DIR")
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("reelay runs");
    assert!(
        output.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("rly.key_"), "{token}");
    token
}

async fn media_count(app: &TestApp) -> usize {
    let listed = app
        .api(Method::GET, "/v1/media?limit=1000")
        .send()
        .await
        .unwrap();
    let listed: Value = listed.json().await.unwrap();
    listed["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn creating_a_media_refuses_bad_requests_with_json_errors() {
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let file = app.upload("bytes", "v.mp4", "private").await;
    let id = file["id"].as_str().unwrap();
    let gone = app.upload("deleted", "d.mp4", "private").await;
    let gone_id = gone["id"].as_str().unwrap();
    let deleted = app
        .api(Method::DELETE, &format!("/v1/files/{gone_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    let cases: Vec<(String, u16, &str)> = vec![
        (
            json!({ "file_id": "nope" }).to_string(),
            422,
            "invalid_file_id",
        ),
        (json!({ "file_id": "" }).to_string(), 422, "invalid_file_id"),
        (
            json!({ "file_id": id.to_uppercase() }).to_string(),
            422,
            "invalid_file_id",
        ),
        (
            json!({ "file_id": format!("{id}x") }).to_string(),
            422,
            "invalid_file_id",
        ),
        (
            json!({ "file_id": "fil_../../../etc/passwd" }).to_string(),
            422,
            "invalid_file_id",
        ),
        (
            json!({ "file_id": id.replace("fil_", "med_") }).to_string(),
            422,
            "invalid_file_id",
        ),
        (
            json!({ "file_id": "fil_00000000000000000000" }).to_string(),
            422,
            "unknown_file",
        ),
        (
            json!({ "file_id": gone_id }).to_string(),
            422,
            "unknown_file",
        ),
        (
            json!({ "file_id": id, "access": "secret" }).to_string(),
            422,
            "invalid_access",
        ),
        (json!({ "file_id": 5 }).to_string(), 400, "invalid_json"),
        (json!({}).to_string(), 400, "invalid_json"),
        (
            json!({ "file_id": id, "transcode": true }).to_string(),
            400,
            "invalid_json",
        ),
        ("not json".to_owned(), 400, "invalid_json"),
        (String::new(), 400, "invalid_json"),
        (format!("{{\"file_id\": \"{id}\""), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let response = app
            .api(Method::POST, "/v1/media")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (headers, actual) = expect_error(response, status).await;
        assert_eq!(actual, code, "{body}");
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{body}"
        );
    }
    let huge = json!({ "file_id": id, "pad": "x".repeat(100 * 1024) }).to_string();
    let response = app
        .api(Method::POST, "/v1/media")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        media_count(&app).await,
        0,
        "no refused request made a media"
    );

    // And the good request, for contrast.
    let media = create_media(&app, id, Some("public")).await;
    assert_eq!(media["access"], "public");
    assert_eq!(media_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn media_ids_are_checked_before_any_lookup() {
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let client = client();
    let file = app.upload("bytes", "v.mp4", "public").await;
    let file_id = file["id"].as_str().unwrap();
    for bad in [
        "nope".to_owned(),
        file_id.to_owned(),
        "med_0000000000000000000".to_owned(),
        "med_000000000000000000000".to_owned(),
        "MED_00000000000000000000".to_owned(),
        "med_0000000000000000000A".to_owned(),
    ] {
        for (method, path) in [
            (Method::GET, format!("/v1/media/{bad}")),
            (Method::DELETE, format!("/v1/media/{bad}")),
            (Method::POST, format!("/v1/media/{bad}/signed-url")),
        ] {
            let response = app
                .api(method.clone(), &path)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let (_, code) = expect_error(response, 400).await;
            assert_eq!(code, "invalid_id", "{method} {path}");
        }
        let response = client
            .get(app.url(&format!("/media/{bad}/master.m3u8")))
            .send()
            .await
            .unwrap();
        let (_, code) = expect_error(response, 400).await;
        assert_eq!(code, "invalid_id", "/media/{bad}/master.m3u8");
    }
    let unknown = "med_00000000000000000000";
    for (method, path) in [
        (Method::GET, format!("/v1/media/{unknown}")),
        (Method::DELETE, format!("/v1/media/{unknown}")),
        (Method::POST, format!("/v1/media/{unknown}/signed-url")),
    ] {
        let response = app
            .api(method.clone(), &path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (_, code) = expect_error(response, 404).await;
        assert_eq!(code, "not_found", "{method} {path}");
    }
    app.stop().await;
}

/// Every media route, with a body where it takes one.
fn media_routes(app: &TestApp, media_id: &str, file_id: &str) -> Vec<(String, RequestBuilder)> {
    let c = &app.client;
    vec![
        (
            "POST /v1/media".into(),
            c.post(app.url("/v1/media"))
                .json(&json!({ "file_id": file_id })),
        ),
        ("GET /v1/media".into(), c.get(app.url("/v1/media"))),
        (
            "GET /v1/media/{id}".into(),
            c.get(app.url(&format!("/v1/media/{media_id}"))),
        ),
        (
            "POST /v1/media/{id}/signed-url".into(),
            c.post(app.url(&format!("/v1/media/{media_id}/signed-url")))
                .json(&json!({ "expires_in": 60 })),
        ),
        (
            "DELETE /v1/media/{id}".into(),
            c.delete(app.url(&format!("/v1/media/{media_id}"))),
        ),
    ]
}

#[tokio::test]
async fn media_routes_need_a_key() {
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let file = app.upload("bytes", "v.mp4", "private").await;
    let file_id = file["id"].as_str().unwrap();
    let media = create_media(&app, file_id, None).await;
    let media_id = media["id"].as_str().unwrap();
    for credential in [
        None,
        Some("Bearer wrong"),
        Some("Basic abc"),
        Some("Bearer rly.key_00000000000000000000.secret"),
    ] {
        for (route, request) in media_routes(&app, media_id, file_id) {
            let request = match credential {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            let response = request.send().await.unwrap();
            let (headers, code) = expect_error(response, 401).await;
            assert_eq!(code, "unauthorized", "{route} {credential:?}");
            assert_eq!(
                headers.get("www-authenticate").unwrap(),
                "Bearer",
                "{route}"
            );
        }
    }
    let response = app
        .client
        .post(app.url("/v1/files"))
        .query(&[("transcode", "true")])
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(response, 401).await;
    assert_eq!(media_count(&app).await, 1, "the media is still there");
    app.stop().await;
}

#[tokio::test]
async fn media_routes_need_their_scopes() {
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let file = app.upload("bytes", "v.mp4", "private").await;
    let file_id = file["id"].as_str().unwrap();
    let media = create_media(&app, file_id, None).await;
    let media_id = media["id"].as_str().unwrap();
    let files_read = cli_key(app.data_dir.path(), "files:read").await;
    let media_read = cli_key(app.data_dir.path(), "media:read").await;
    let media_write = cli_key(app.data_dir.path(), "media:write").await;

    // A files:read key may do nothing with media.
    for (route, request) in media_routes(&app, media_id, file_id) {
        let response = request.bearer_auth(&files_read).send().await.unwrap();
        let (_, code) = expect_error(response, 403).await;
        assert_eq!(code, "forbidden", "files:read on {route}");
    }
    // media:read reads and signs; media:write creates and deletes.
    for (route, request) in media_routes(&app, media_id, file_id) {
        let may = !route.starts_with("POST /v1/media") || route.contains("signed-url");
        let may = may && !route.starts_with("DELETE");
        let response = request.bearer_auth(&media_read).send().await.unwrap();
        if may {
            assert!(
                response.status().is_success(),
                "media:read on {route}: {}",
                response.status()
            );
        } else {
            let (_, code) = expect_error(response, 403).await;
            assert_eq!(code, "forbidden", "media:read on {route}");
        }
    }
    assert_eq!(media_count(&app).await, 1);
    let created = app
        .client
        .post(app.url("/v1/media"))
        .bearer_auth(&media_write)
        .json(&json!({ "file_id": file_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202);
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/media/{media_id}")))
        .bearer_auth(&media_write)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(media_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_may_start_a_transcode_only_with_media_write() {
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let files_write = cli_key(app.data_dir.path(), "files:write").await;
    let both = cli_key(app.data_dir.path(), "files:write,media:write").await;

    let refused = app
        .client
        .post(app.url("/v1/files"))
        .query(&[("filename", "v.mp4"), ("transcode", "true")])
        .bearer_auth(&files_write)
        .body("bytes")
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(refused, 403).await;
    assert_eq!(code, "forbidden");
    assert_eq!(media_count(&app).await, 0, "no media without media:write");
    let stored = app.stored().await;
    assert!(
        stored.is_empty(),
        "a refused upload stored bytes: {stored:?}"
    );

    // Without transcode the same key uploads; with both scopes it may transcode.
    let plain = app
        .client
        .post(app.url("/v1/files"))
        .query(&[("filename", "v.mp4")])
        .bearer_auth(&files_write)
        .body("bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 201);
    let answer: Value = plain.json().await.unwrap();
    assert!(answer.get("media").is_none(), "{answer}");
    let accepted = app
        .client
        .post(app.url("/v1/files"))
        .query(&[("filename", "v.mp4"), ("transcode", "true")])
        .bearer_auth(&both)
        .body("bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(answer["media"]["state"], "queued", "{answer}");
    assert_eq!(media_count(&app).await, 1);
    app.stop().await;
}
