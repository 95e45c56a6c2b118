//! A minimal tus client over reqwest, for protocol tables where every header must be exact.

use base64::{engine::general_purpose::STANDARD, Engine};
use reqwest::{Method, Response, StatusCode};

use crate::common::{TestApp, ADMIN_KEY};

pub const TUS: &str = "1.0.0";
pub const OCTETS: &str = "application/offset+octet-stream";

pub fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn offset_of(response: &Response) -> u64 {
    header(response, "upload-offset")
        .expect("Upload-Offset present")
        .parse()
        .expect("Upload-Offset is a number")
}

/// `POST /v1/uploads` with the admin key; returns the response.
pub async fn create_raw(app: &TestApp, length: u64, meta: &[(&str, &str)]) -> Response {
    app.client
        .post(app.url("/v1/uploads"))
        .bearer_auth(ADMIN_KEY)
        .header("Tus-Resumable", TUS)
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata(meta))
        .send()
        .await
        .expect("POST /v1/uploads")
}

/// Creates an upload and returns its URL; panics unless 201.
pub async fn create(app: &TestApp, length: u64, meta: &[(&str, &str)]) -> String {
    let response = create_raw(app, length, meta).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{:?}",
        response.text().await
    );
    header(&response, "location").expect("Location").to_owned()
}

pub async fn patch(
    app: &TestApp,
    url: &str,
    offset: u64,
    body: impl Into<reqwest::Body>,
) -> Response {
    app.client
        .patch(url)
        .header("Tus-Resumable", TUS)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", offset.to_string())
        .body(body)
        .send()
        .await
        .expect("PATCH")
}

pub async fn head(app: &TestApp, url: &str) -> Response {
    app.client
        .request(Method::HEAD, url)
        .header("Tus-Resumable", TUS)
        .send()
        .await
        .expect("HEAD")
}

pub async fn delete(app: &TestApp, url: &str) -> Response {
    app.client
        .delete(url)
        .header("Tus-Resumable", TUS)
        .send()
        .await
        .expect("DELETE")
}

/// The file an upload became, by the id its last answer named.
pub async fn file_json(app: &TestApp, file_id: &str) -> serde_json::Value {
    let response = app
        .api(Method::GET, &format!("/v1/files/{file_id}"))
        .send()
        .await
        .expect("GET file");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("file JSON")
}

/// PATCHes `data` from the server's offset to the end, retrying while another request holds
/// the upload (423); returns the completing response.
pub async fn finish(app: &TestApp, url: &str, data: &[u8]) -> Response {
    for _ in 0..200 {
        let offset = offset_of(&head(app, url).await);
        let response = patch(app, url, offset, data[offset as usize..].to_vec()).await;
        match response.status() {
            StatusCode::LOCKED | StatusCode::CONFLICT => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            _ => return response,
        }
    }
    panic!("the upload stayed locked");
}
