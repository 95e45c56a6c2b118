//! What the edge must not keep: API answers (never, even when the origin calls them
//! cacheable), 403s and 5xx from the origin (never), and 404s (no longer than the config says:
//! nginx 2 s, Varnish 5 s). A scripted origin makes every answer say `max-age=600`, so only the
//! edge's own rules can keep an answer short.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::State,
    http::{header, StatusCode, Uri},
    response::{IntoResponse, Response},
};

use crate::{
    harness::{client, free_port},
    support::{Edge, Kind, Stack},
};

/// An origin that counts requests by path and answers from a script.
#[derive(Clone, Default)]
struct Scripted {
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

impl Scripted {
    async fn start() -> (Self, SocketAddr) {
        let scripted = Scripted::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(scripted.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (scripted, addr)
    }

    fn seen(&self, path: &str) -> u32 {
        self.seen.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn answer(State(scripted): State<Scripted>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let n = {
        let mut seen = scripted.seen.lock().unwrap();
        let count = seen.entry(path.clone()).or_default();
        *count += 1;
        *count
    };
    if path.starts_with("/edge/check/") {
        let allowed = [(header::CACHE_CONTROL, "public, max-age=5")];
        return (StatusCode::NO_CONTENT, allowed).into_response();
    }
    let cacheable = [(header::CACHE_CONTROL, "public, max-age=600")];
    match path.as_str() {
        "/healthz" | "/readyz" => StatusCode::OK.into_response(),
        "/files/fil_flaky" | "/media/med_flaky/seg-1.m4s" if n == 1 => {
            (StatusCode::INTERNAL_SERVER_ERROR, cacheable, "boom").into_response()
        }
        "/files/fil_refused" if n == 1 => (StatusCode::FORBIDDEN, cacheable, "no").into_response(),
        "/files/fil_missing" => (StatusCode::NOT_FOUND, cacheable, "{}").into_response(),
        _ => (StatusCode::OK, cacheable, format!("answer {n}")).into_response(),
    }
}

async fn nothing_kept_beyond_the_config(kind: Kind, not_found_bound: Duration) {
    let (origin, addr) = Scripted::start().await;
    let edge = Edge::start(kind, free_port(), &[addr]).await;
    let client = client();
    let get = |path: &str| {
        let request = client.get(edge.url(path)).send();
        async move {
            let response = request.await.expect("edge answers");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            (status, body)
        }
    };

    for n in 1..=3 {
        assert_eq!(get("/v1/files").await.0, 200);
        assert_eq!(
            origin.seen("/v1/files"),
            n,
            "every API request reaches the origin"
        );
    }

    for (path, first) in [
        ("/files/fil_flaky", 500),
        ("/media/med_flaky/seg-1.m4s", 500),
        ("/files/fil_refused", 403),
    ] {
        assert_eq!(get(path).await.0, first, "{path}");
        let (status, body) = get(path).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "answer 2"),
            "{path} asked again"
        );
        // The good answer is kept.
        assert_eq!(get(path).await.1, "answer 2", "{path}");
        assert_eq!(origin.seen(path), 2, "{path}");
    }

    assert_eq!(get("/files/fil_missing").await.0, 404);
    let cached_at = Instant::now();
    while origin.seen("/files/fil_missing") < 2 {
        assert!(
            cached_at.elapsed() < not_found_bound + Duration::from_millis(1500),
            "a 404 kept longer than {not_found_bound:?}"
        );
        assert_eq!(get("/files/fil_missing").await.0, 404);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cached_at.elapsed() > not_found_bound / 2,
        "the 404 was kept for a moment ({:?}), as the config says",
        cached_at.elapsed()
    );
}

#[tokio::test]
async fn nginx_never_keeps_api_answers_or_errors_beyond_the_config() {
    nothing_kept_beyond_the_config(Kind::Nginx, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn varnish_never_keeps_api_answers_or_errors_beyond_the_config() {
    nothing_kept_beyond_the_config(Kind::Varnish, Duration::from_secs(5)).await;
}

/// URLs Reelay does not know are refused as Reelay refuses them, and with no origin to ask,
/// the edge refuses even what it holds (the check fails closed).
async fn unknown_urls_and_no_origin(kind: Kind) {
    let mut stack = Stack::start(kind).await;
    let unknown = reelay::ids::FileId::generate();
    for (path, status, code) in [
        ("/files/not-an-id".to_owned(), 400, "invalid_id"),
        ("/media/med_x/master.m3u8".to_owned(), 400, "invalid_id"),
        (format!("/files/{unknown}"), 404, "not_found"),
    ] {
        let got = stack.get(&path).await;
        assert_eq!(got.status, status, "{path}: {}", got.text());
        assert_eq!(got.error_code(), code, "{path}");
        assert_eq!(got.header("retry-after"), None, "{path}");
    }

    let id = stack.upload(vec![1; 1000], "public").await;
    stack.get_ok(&format!("/files/{id}")).await;
    assert_eq!(stack.get(&format!("/files/{id}")).await.cache, "HIT");
    stack.origin.kill_9();
    // An access answer already cached is used for its few seconds; a request the edge has no
    // answer for is refused, although the bytes are cached.
    let refused = stack.get(&format!("/files/{id}?viewer=2")).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "unavailable");
    assert_eq!(refused.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn nginx_refuses_unknown_urls_like_reelay_and_fails_closed() {
    unknown_urls_and_no_origin(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_refuses_unknown_urls_like_reelay_and_fails_closed() {
    unknown_urls_and_no_origin(Kind::Varnish).await;
}
