//! Direct uploads: a one-time, expiring upload URL for a device that holds no API key.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    common::{pattern, sha256_hex, TestApp},
    support::*,
};

async fn direct(app: &TestApp, request: Value) -> Value {
    let r = app
        .api(Method::POST, "/v1/direct-uploads")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn status(app: &TestApp, id: &str) -> Value {
    let r = app
        .api(Method::GET, &format!("/v1/direct-uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// tus creation through the URL, no Authorization header.
async fn create_with(app: &TestApp, upload_url: &str, length: u64) -> reqwest::Response {
    app.client
        .post(upload_url)
        .header("Tus-Resumable", TUS)
        .header("Upload-Length", length.to_string())
        .header(
            "Upload-Metadata",
            metadata(&[("filename", "phone.mov"), ("access", "public")]),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_token_uploads_once_and_reports_its_progress() {
    let app = TestApp::spawn().await;
    let d = direct(
        &app,
        json!({"max_size": 10_000, "expires_in": 600, "access": "private"}),
    )
    .await;
    let id = d["id"].as_str().unwrap();
    let url = d["upload_url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/v1/uploads?token=")), "{url}");
    assert_eq!(status(&app, id).await["status"], "waiting");
    // The URL is not shown again.
    assert!(status(&app, id).await.get("upload_url").is_none());

    let data = pattern(11, 6000);
    let r = create_with(&app, url, 6000).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let upload = header(&r, "location").unwrap().to_owned();
    assert_eq!(
        patch(&app, &upload, 0, data[..1000].to_vec())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let s = status(&app, id).await;
    assert_eq!(s["status"], "uploading");
    assert_eq!(s["offset"], 1000);

    // A second upload with the same URL is refused, while the first goes on.
    let again = create_with(&app, url, 10).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let r = finish(&app, &upload, &data).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let s = status(&app, id).await;
    assert_eq!(s["status"], "completed");
    let file = file_json(&app, s["file_id"].as_str().unwrap()).await;
    assert_eq!(file["sha256"], sha256_hex(&data));
    // The app's settings win over the device's metadata.
    assert_eq!(file["access"], "private");
    assert_eq!(file["filename"], "phone.mov");
    assert_eq!(
        create_with(&app, url, 10).await.status(),
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn refused_past_expiry_and_over_max_size() {
    let app = TestApp::spawn().await;
    let d = direct(&app, json!({"max_size": 100, "expires_in": 1})).await;
    let url = d["upload_url"].as_str().unwrap();
    let r = create_with(&app, url, 101).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = create_with(&app, url, 50).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert_eq!(
        status(&app, d["id"].as_str().unwrap()).await["status"],
        "expired"
    );
    // A made-up token is simply unauthorized.
    let r = create_with(&app, &app.url("/v1/uploads?token=dut_made_up"), 50).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_token_is_refused_on_every_management_route() {
    let app = TestApp::spawn().await;
    let uploaded = app.upload(b"secret".to_vec(), "a.txt", "private").await;
    let file_id = uploaded["id"].as_str().unwrap();
    let d = direct(&app, json!({})).await;
    let token = d["upload_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let id = d["id"].as_str().unwrap();
    let routes = [
        (Method::GET, "/v1/files".to_string()),
        (Method::POST, "/v1/files".to_string()),
        (Method::GET, format!("/v1/files/{file_id}")),
        (Method::DELETE, format!("/v1/files/{file_id}")),
        (Method::POST, format!("/v1/files/{file_id}/signed-url")),
        (Method::GET, "/v1/media".to_string()),
        (Method::POST, "/v1/direct-uploads".to_string()),
        (Method::GET, format!("/v1/direct-uploads/{id}")),
        (Method::DELETE, format!("/v1/direct-uploads/{id}")),
        (Method::GET, "/v1/jobs".to_string()),
    ];
    for (method, path) in routes {
        let r = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        // Nor as a query parameter.
        let r = app
            .client
            .request(method.clone(), app.url(&format!("{path}?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}?token"
        );
    }
    // Delivery of a private file needs a signature, whatever the token.
    let r = app
        .client
        .get(app.url(&format!("/files/{file_id}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The direct upload is still unused.
    assert_eq!(status(&app, id).await["status"], "waiting");
}

#[tokio::test]
async fn cancelled_and_validated() {
    let app = TestApp::spawn().await;
    let d = direct(&app, json!({})).await;
    let id = d["id"].as_str().unwrap();
    let r = app
        .api(Method::DELETE, &format!("/v1/direct-uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&app, id).await["status"], "cancelled");
    let r = create_with(&app, d["upload_url"].as_str().unwrap(), 10).await;
    assert_eq!(r.status(), StatusCode::GONE);

    // Cancelling one in progress terminates its upload.
    let d = direct(&app, json!({})).await;
    let id = d["id"].as_str().unwrap();
    let upload = create_with(&app, d["upload_url"].as_str().unwrap(), 10).await;
    let upload = header(&upload, "location").unwrap().to_owned();
    let r = app
        .api(Method::DELETE, &format!("/v1/direct-uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&app, id).await["status"], "cancelled");
    assert_eq!(head(&app, &upload).await.status(), StatusCode::GONE);

    for bad in [
        json!({"max_size": 0}),
        json!({"expires_in": 0}),
        json!({"expires_in": 8 * 86400}),
        json!({"access": "everyone"}),
        json!({"cors_origin": "javascript:alert(1)"}),
    ] {
        let r = app
            .api(Method::POST, "/v1/direct-uploads")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let r = app
        .api(Method::POST, "/v1/direct-uploads")
        .json(&json!({"surprise": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .api(Method::GET, "/v1/direct-uploads/dup_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .api(Method::GET, "/v1/direct-uploads/dup_00000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_origin_pins_browser_uploads() {
    let app = TestApp::spawn().await;
    let d = direct(&app, json!({"cors_origin": "https://app.example"})).await;
    let url = d["upload_url"].as_str().unwrap();
    let from = |origin: &'static str| {
        app.client
            .post(url)
            .header("Origin", origin)
            .header("Tus-Resumable", TUS)
            .header("Upload-Length", "10")
            .send()
    };
    let r = from("https://evil.example").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = from("https://app.example").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
}
