//! Headers that keep user content and the API safe (DESIGN.md "Header policy for delivery"):
//! user content is sandboxed and never sniffed, API answers are never stored, errors are JSON
//! without internals, and only delivery is open to every origin.

use reqwest::{header::HeaderMap, Method, Response};
use serde_json::{json, Value};

use crate::{
    common::{TestApp, ADMIN_KEY},
    support::{error_shape, expect_error, one_header, raw_request},
};

const USER_CONTENT_CSP: &str = "default-src 'none'; sandbox";

async fn upload_typed(app: &TestApp, content_type: &str, name: &str, access: &str) -> Value {
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", name), ("access", access)])
        .header("content-type", content_type)
        .body("<html><script>alert(document.cookie)</script></html>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn assert_sandboxed(headers: &HeaderMap, what: &str) {
    assert_eq!(
        one_header(headers, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(
        one_header(headers, "content-security-policy"),
        USER_CONTENT_CSP,
        "{what}"
    );
}

#[tokio::test]
async fn html_and_svg_uploads_are_sandboxed_attachments_that_are_never_sniffed() {
    let app = TestApp::spawn().await;
    for (content_type, name) in [("text/html", "x.html"), ("image/svg+xml", "x.svg")] {
        let file = upload_typed(&app, content_type, name, "public").await;
        let url = file["url"].as_str().unwrap();
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(one_header(response.headers(), "content-type"), content_type);
        assert!(
            one_header(response.headers(), "content-disposition").starts_with("attachment;"),
            "{content_type}"
        );
        assert_sandboxed(response.headers(), content_type);

        let partial = app
            .client
            .get(url)
            .header("range", "bytes=0-5")
            .send()
            .await
            .unwrap();
        assert_eq!(partial.status(), 206);
        assert_sandboxed(partial.headers(), "206");

        // Even when a signed URL asks for inline, the sandbox stays.
        let private = upload_typed(&app, content_type, name, "private").await;
        let signed = app
            .signed_url(
                private["id"].as_str().unwrap(),
                json!({ "disposition": "inline" }),
            )
            .await;
        let response = app.client.get(&signed).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(one_header(response.headers(), "content-disposition").starts_with("inline;"));
        assert_sandboxed(response.headers(), "signed inline");
    }
    app.stop().await;
}

/// Requests of every kind, with what each answered.
async fn assorted_responses(app: &TestApp) -> Vec<(String, u16, HeaderMap)> {
    let public = app.upload("public", "p.txt", "public").await;
    let private = app.upload("private", "q.txt", "private").await;
    let public_url = public["url"].as_str().unwrap().to_owned();
    let private_url = private["url"].as_str().unwrap().to_owned();
    let etag = format!("\"{}\"", public["sha256"].as_str().unwrap());
    let id = public["id"].as_str().unwrap().to_owned();
    let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("healthz", app.client.get(app.url("/healthz"))),
        ("readyz", app.client.get(app.url("/readyz"))),
        ("metrics", app.client.get(app.url("/metrics"))),
        ("list", app.api(Method::GET, "/v1/files")),
        ("show", app.api(Method::GET, &format!("/v1/files/{id}"))),
        (
            "sign",
            app.api(Method::POST, &format!("/v1/files/{id}/signed-url")),
        ),
        ("upload", app.api(Method::POST, "/v1/files").body("another")),
        ("api 401", app.client.get(app.url("/v1/files"))),
        (
            "api 401 wrong key",
            app.client.get(app.url("/v1/files")).bearer_auth("nope"),
        ),
        (
            "api 404",
            app.api(Method::GET, "/v1/files/fil_00000000000000000000"),
        ),
        ("api 400", app.api(Method::GET, "/v1/files/nope")),
        ("api 400 query", app.api(Method::GET, "/v1/files?limit=x")),
        (
            "api 400 json",
            app.api(Method::POST, &format!("/v1/files/{id}/signed-url"))
                .body("{not json"),
        ),
        ("api 405", app.api(Method::PUT, &format!("/v1/files/{id}"))),
        ("fallback 404", app.client.get(app.url("/nothing/here"))),
        ("delivery 200", app.client.get(&public_url)),
        (
            "delivery 206",
            app.client.get(&public_url).header("range", "bytes=0-0"),
        ),
        (
            "delivery 304",
            app.client.get(&public_url).header("if-none-match", &etag),
        ),
        (
            "delivery 412",
            app.client.get(&public_url).header("if-match", "\"x\""),
        ),
        (
            "delivery 416",
            app.client.get(&public_url).header("range", "bytes=999-"),
        ),
        ("delivery 403", app.client.get(&private_url)),
        (
            "delivery 404",
            app.client.get(app.url("/files/fil_00000000000000000000")),
        ),
        ("delivery 400", app.client.get(app.url("/files/nope"))),
        ("delivery 405", app.client.post(&public_url)),
    ];
    let mut out = Vec::new();
    for (name, request) in requests {
        let response = request.send().await.unwrap();
        out.push((
            name.to_owned(),
            response.status().as_u16(),
            response.headers().clone(),
        ));
    }
    out
}

#[tokio::test]
async fn every_response_says_nosniff_and_every_api_response_is_no_store() {
    let app = TestApp::spawn().await;
    for (name, status, headers) in assorted_responses(&app).await {
        assert_eq!(
            one_header(&headers, "x-content-type-options"),
            "nosniff",
            "{name} ({status})"
        );
        if name.starts_with("list")
            || name.starts_with("show")
            || name.starts_with("sign")
            || name.starts_with("upload")
            || name.starts_with("api")
        {
            assert_eq!(one_header(&headers, "cache-control"), "no-store", "{name}");
        }
    }
    // DELETE's 204 too.
    let file = app.upload("bye", "bye.txt", "public").await;
    let response = app
        .api(
            Method::DELETE,
            &format!("/v1/files/{}", file["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(one_header(response.headers(), "cache-control"), "no-store");
    assert_eq!(
        one_header(response.headers(), "x-content-type-options"),
        "nosniff"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_are_json_with_only_a_code_and_a_message() {
    let app = TestApp::spawn().await;
    let file = app.upload("x", "x.txt", "public").await;
    let id = file["id"].as_str().unwrap();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (app.client.get(app.url("/v1/files")), 401, "unauthorized"),
        (app.api(Method::GET, "/v1/files/nope"), 400, "invalid_id"),
        (
            app.api(Method::GET, "/v1/files/fil_00000000000000000000"),
            404,
            "not_found",
        ),
        (app.client.get(app.url("/no/such/route")), 404, "not_found"),
        (
            app.api(Method::PUT, &format!("/v1/files/{id}")),
            405,
            "method_not_allowed",
        ),
        (
            app.api(Method::POST, &format!("/v1/files/{id}/signed-url"))
                .body("[1,2"),
            400,
            "invalid_json",
        ),
        (
            app.client
                .get(file["url"].as_str().unwrap())
                .header("range", "bytes=5-"),
            416,
            "range_not_satisfiable",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        let (_, actual) = expect_error(response, status).await;
        assert_eq!(actual, code);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_internal_error_is_an_opaque_500_without_internals() {
    if crate::common::on_s3() {
        // The fault below is made on the fs backend's directory; S3's own faults are in tests/s3.
        return;
    }
    let app = TestApp::spawn().await;
    // A regular file where fs storage needs its `files/` directory: every write fails inside
    // the server, through no fault of the client.
    let blocker = app.objects_dir().join("files");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", "x.txt")])
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(one_header(response.headers(), "cache-control"), "no-store");
    let text = response.text().await.unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error_shape(&json), "internal");
    let data_dir = app.data_dir.path().to_str().unwrap().to_owned();
    for secret in [
        data_dir.as_str(),
        "objects",
        "files/",
        "os error",
        "exists",
        "directory",
        "sqlite",
        ".tmp",
    ] {
        assert!(!text.contains(secret), "500 body leaks {secret:?}: {text}");
    }
    app.stop().await;
}

fn list_of(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn assert_exposes_range_headers(headers: &HeaderMap, what: &str) {
    let exposed = list_of(headers, "access-control-expose-headers");
    for name in ["content-range", "etag", "accept-ranges", "content-length"] {
        assert!(
            exposed.iter().any(|e| e == name),
            "{what}: {name} not in {exposed:?}"
        );
    }
}

#[tokio::test]
async fn delivery_answers_any_origin_and_exposes_the_range_headers() {
    let app = TestApp::spawn().await;
    let file = app.upload("0123456789", "cors.bin", "public").await;
    let url = file["url"].as_str().unwrap();
    for range in [None, Some("bytes=0-3")] {
        let mut request = app
            .client
            .get(url)
            .header("origin", "https://player.example");
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), if range.is_some() { 206 } else { 200 });
        assert_eq!(
            one_header(response.headers(), "access-control-allow-origin"),
            "*"
        );
        assert_exposes_range_headers(response.headers(), &format!("{range:?}"));
    }
    app.stop().await;
}

async fn preflight(
    app: &TestApp,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delivery_preflight_for_range_is_allowed() {
    let app = TestApp::spawn().await;
    let file = app.upload("0123456789", "cors.bin", "private").await;
    let id = file["id"].as_str().unwrap();
    for path in [format!("/files/{id}"), format!("/files/{id}/cors.bin")] {
        let response = preflight(&app, &path, "https://player.example", "GET", "range").await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let headers = response.headers();
        assert_eq!(one_header(headers, "access-control-allow-origin"), "*");
        let methods = list_of(headers, "access-control-allow-methods");
        assert!(methods.iter().any(|m| m == "get"), "{methods:?}");
        let allowed = list_of(headers, "access-control-allow-headers");
        assert!(allowed.iter().any(|h| h == "range"), "{allowed:?}");
        assert!(headers.get("access-control-max-age").is_some());
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_does_not_answer_an_arbitrary_origin() {
    let app = TestApp::spawn().await;
    let response = app
        .api(Method::GET, "/v1/files")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let response = preflight(
        &app,
        "/v1/files",
        "https://evil.example",
        "POST",
        "authorization,content-type",
    )
    .await;
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert!(response
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    app.stop().await;
}

#[tokio::test]
async fn the_api_answers_only_its_configured_origins() {
    let app = TestApp::spawn_with(|config| {
        config.api_cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let response = app
        .api(Method::GET, "/v1/files")
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        one_header(response.headers(), "access-control-allow-origin"),
        "https://app.example"
    );

    // A browser sends Authorization, so every real call is preflighted.
    let response = preflight(
        &app,
        "/v1/files",
        "https://app.example",
        "POST",
        "authorization,content-type",
    )
    .await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        one_header(response.headers(), "access-control-allow-origin"),
        "https://app.example"
    );
    let allowed = list_of(response.headers(), "access-control-allow-headers");
    assert!(allowed.iter().any(|h| h == "authorization"), "{allowed:?}");

    for origin in [
        "https://evil.example",
        "https://app.example.evil.example",
        "null",
    ] {
        let response = app
            .api(Method::GET, "/v1/files")
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_head_of_user_content_is_sandboxed_too() {
    let app = TestApp::spawn().await;
    let file = upload_typed(&app, "text/html", "x.html", "public").await;
    let path = format!("/files/{}", file["id"].as_str().unwrap());
    let response = raw_request(
        app.addr,
        "HEAD",
        &path,
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-security-policy"),
        Some(USER_CONTENT_CSP)
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert!(response.raw_body.is_empty());
    app.stop().await;
}

/// The name in `/files/{id}/{name}` is cosmetic, but one that decodes to a path (an edge that
/// normalizes paths could read it as another file's URL) is refused rather than served.
#[tokio::test]
async fn a_cosmetic_name_that_decodes_to_a_path_is_refused() {
    let app = TestApp::spawn().await;
    let file = app
        .upload(b"public bytes".to_vec(), "a.txt", "public")
        .await;
    let id = file["id"].as_str().unwrap();
    let ok = app
        .client
        .get(app.url(&format!("/files/{id}/report.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for name in [
        "x%2f..%2f..%2ffil_00000000000000000000",
        "%2e%2e",
        "%2e",
        "a%2Fb",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/files/{id}/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{name}");
        let r = app
            .client
            .get(app.url(&format!("/edge/check/files/{id}/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "check {name}");
    }
}
