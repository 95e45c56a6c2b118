//! Rate limits: token buckets per key and per IP, 429 with Retry-After and RateLimit-*, shared
//! through Redis across nodes, and per-node when Redis is gone.

use reqwest::Method;
use serde_json::Value;

use crate::common::TestApp;

fn redis_url() -> String {
    std::env::var("REELAY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn namespace() -> String {
    format!(
        "test-{}",
        reelay::ids::random_secret(9).replace(['-', '_'], "0")
    )
}

async fn list_status(app: &TestApp) -> reqwest::Response {
    app.api(Method::GET, "/v1/files").send().await.unwrap()
}

#[tokio::test]
async fn a_key_gets_its_burst_then_429_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_api_key = "1/m:3".parse().unwrap();
        c.rate_limit_api_ip = "off".parse().unwrap();
    })
    .await;
    for n in 0..3 {
        let response = list_status(&app).await;
        assert_eq!(response.status(), 200, "request {n}");
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(
            response.headers()["ratelimit-remaining"].to_str().unwrap(),
            (2 - n).to_string()
        );
    }
    let refused = list_status(&app).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let json: Value = refused.json().await.unwrap();
    assert_eq!(json["error"]["code"], "rate_limited");

    // Another key has its own bucket.
    let other = app
        .client
        .get(app.url("/v1/files"))
        .bearer_auth("rly.key_abcdefghijklmnopqrst.whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        401,
        "limited per key: an unknown key reaches auth"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_ip_limit_counts_requests_with_any_key_or_none() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_api_key = "off".parse().unwrap();
        c.rate_limit_api_ip = "1/m:3".parse().unwrap();
    })
    .await;
    let file = app.upload("public bytes", "p.txt", "public").await;
    assert_eq!(list_status(&app).await.status(), 200);
    let anonymous = app.client.get(app.url("/v1/files")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let fourth = app.client.get(app.url("/v1/files")).send().await.unwrap();
    assert_eq!(
        fourth.status(),
        429,
        "the IP's bucket is empty, before auth is even tried"
    );
    // Delivery is not limited by default: a CDN's few addresses carry every viewer.
    for _ in 0..5 {
        let response = app
            .client
            .get(file["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_limit_holds_across_two_nodes_through_redis() {
    let ns = namespace();
    let configure = |c: &mut reelay::config::ServeConfig| {
        c.redis_url = Some(redis_url());
        c.rate_limit_namespace = ns.clone();
        c.rate_limit_api_key = "1/m:4".parse().unwrap();
        c.rate_limit_api_ip = "off".parse().unwrap();
    };
    let a = TestApp::spawn_with(configure).await;
    let b = TestApp::spawn_with(configure).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let node = if n % 2 == 0 { &a } else { &b };
        statuses.push(list_status(node).await.status().as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "one bucket for the cluster"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn with_redis_gone_each_node_keeps_serving_with_its_own_limits() {
    let app = TestApp::spawn_with(|c| {
        // Nothing listens on port 1: every Redis call fails at once.
        c.redis_url = Some("redis://127.0.0.1:1".into());
        c.rate_limit_api_key = "1/m:2".parse().unwrap();
        c.rate_limit_api_ip = "off".parse().unwrap();
    })
    .await;
    assert_eq!(list_status(&app).await.status(), 200);
    assert_eq!(list_status(&app).await.status(), 200);
    assert_eq!(
        list_status(&app).await.status(),
        429,
        "the node's own bucket still limits"
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("reelay_ratelimit_redis_errors_total"),
        "the fallback is counted"
    );
    app.stop().await;
}
