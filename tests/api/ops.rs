//! Operations endpoints and the server's protection against slow clients: /healthz,
//! /readyz, /metrics (Prometheus text), the header-read timeout and the body-idle timeout.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    common::{pattern, TestApp, ADMIN_KEY},
    support::{
        assert_nothing_stored, multipart_content_type, one_header, raw_with_body, RawOutcome,
    },
};

#[tokio::test]
async fn healthz_says_ok() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );
    app.stop().await;
}

#[tokio::test]
async fn readyz_checks_catalog_and_storage_and_leaves_no_probe_behind() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let response = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(one_header(response.headers(), "cache-control"), "no-store");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({ "status": "ready", "catalog": "ok", "storage": "ok" })
        );
    }
    let leftovers = app.stored().await;
    assert!(leftovers.is_empty(), "{leftovers:?}");
    app.stop().await;
}

/// One sample of Prometheus text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Reads the text exposition format line by line; label values may hold braces and commas
/// (`route="/files/{id}"`), so they are scanned quote to quote.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a metric name");
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = rest.find('=').expect("label=");
                let key = rest[..eq].trim_start_matches(',').to_owned();
                let quoted = rest[eq + 1..]
                    .strip_prefix('"')
                    .expect("quoted label value");
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next().expect("closing quote") {
                        (_, '\\') => value.push(chars.next().expect("escape").1),
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(key, value);
                rest = quoted[end + 1..].trim_start_matches(',');
            }
        }
        let value = rest.trim().split(' ').next().unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("a number in {line:?}")),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

async fn metrics(app: &TestApp) -> Vec<Sample> {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = one_header(response.headers(), "content-type").to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_metrics(&response.text().await.unwrap())
}

fn total(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_bytes_and_latency() {
    let app = TestApp::spawn().await;
    // The recorder is process-wide and other tests run at the same time: counters are
    // compared before and after, and only ever grow.
    let before = metrics(&app).await;
    let body = pattern(51, 300_000);
    let file = app.upload(body.clone(), "m.bin", "public").await;
    let url = file["url"].as_str().unwrap();
    for _ in 0..2 {
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap().len(), body.len());
    }
    let missing = app
        .client
        .get(app.url("/files/fil_00000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let after = metrics(&app).await;

    let requests = "reelay_http_requests_total";
    let delivered = find(
        &after,
        requests,
        &[
            ("route", "/files/{id}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    );
    assert_eq!(
        delivered.len(),
        1,
        "one series per route, method and status"
    );
    let delivered_before = find(
        &before,
        requests,
        &[
            ("route", "/files/{id}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    )
    .first()
    .map_or(0.0, |s| s.value);
    assert!(delivered[0].value >= delivered_before + 2.0);
    assert_eq!(
        find(
            &after,
            requests,
            &[
                ("route", "/files/{id}"),
                ("method", "GET"),
                ("status", "404")
            ]
        )
        .len(),
        1
    );
    assert_eq!(
        find(
            &after,
            requests,
            &[
                ("route", "/v1/files"),
                ("method", "POST"),
                ("status", "201")
            ]
        )
        .len(),
        1
    );
    assert!(
        !after
            .iter()
            .any(|s| s.labels.get("route").is_some_and(|r| r.contains("fil_"))),
        "routes are templates, never raw ids"
    );

    let grew = |name: &str| total(&after, name) - total(&before, name);
    assert!(grew("reelay_delivered_bytes_total") >= 2.0 * body.len() as f64);
    assert!(grew("reelay_uploaded_bytes_total") >= body.len() as f64);

    let buckets = find(
        &after,
        "reelay_http_request_duration_seconds_bucket",
        &[("route", "/files/{id}")],
    );
    assert!(buckets.len() >= 5, "latency buckets: {buckets:?}");
    let inf = buckets
        .iter()
        .find(|s| s.labels.get("le").map(String::as_str) == Some("+Inf"))
        .expect("a +Inf bucket");
    let count = find(
        &after,
        "reelay_http_request_duration_seconds_count",
        &[("route", "/files/{id}")],
    );
    assert_eq!(count.len(), 1);
    assert_eq!(inf.value, count[0].value, "+Inf counts every observation");
    assert!(count[0].value >= 3.0);
    assert_eq!(
        find(
            &after,
            "reelay_http_request_duration_seconds_sum",
            &[("route", "/files/{id}")]
        )
        .len(),
        1
    );
    app.stop().await;
}

/// Reads until the server closes the connection; returns what arrived and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("still connected after {limit:?}"));
    (received, started.elapsed())
}

/// The header timeout is 1 s; a busy 2-core machine gets some slack on top.
const CUT_WITHIN: Duration = Duration::from_secs(4);

/// A connection cut by the header timeout: nothing, or at most a 408, then EOF.
fn assert_cut(received: &[u8], elapsed: Duration, what: &str) {
    assert!(
        received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
        "{what}: {:?}",
        String::from_utf8_lossy(received)
    );
    assert!(
        elapsed >= Duration::from_millis(500),
        "{what}: closed at once ({elapsed:?})"
    );
}

#[tokio::test]
async fn a_client_that_sends_no_headers_is_disconnected_after_the_header_timeout() {
    let app = TestApp::spawn_with(|config| config.header_timeout_secs = 1).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let (received, elapsed) = read_until_closed(&mut silent, CUT_WITHIN).await;
    assert_cut(&received, elapsed, "silent client");

    // Slowloris: a request line and one header, then nothing.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (received, elapsed) = read_until_closed(&mut slow, CUT_WITHIN).await;
    assert_cut(&received, elapsed, "slow headers");

    // A prompt client is served normally.
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_body_is_cut_after_the_idle_timeout_and_leaves_nothing() {
    let app = TestApp::spawn_with(|config| config.body_idle_timeout_secs = 1).await;
    for content_type in [
        "application/octet-stream".to_owned(),
        multipart_content_type(),
    ] {
        let head = format!(
            "POST /v1/files?filename=stall.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n",
            app.addr
        );
        // A few bytes of the promised megabyte (a part's start for multipart), then silence.
        let start = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.bin\"\r\n\r\nabc",
            crate::support::BOUNDARY
        );
        let started = Instant::now();
        let outcome = raw_with_body(app.addr, head, start.into_bytes()).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(6),
            "{content_type}: cut after {elapsed:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(900),
            "{content_type}: {elapsed:?}"
        );
        match outcome {
            RawOutcome::Response(response) => {
                assert_eq!(response.status, 408, "{content_type}: {response:?}");
                assert_eq!(response.error_code(), "request_timeout");
            }
            RawOutcome::Closed { received } => {
                assert!(
                    received.is_empty(),
                    "{:?}",
                    String::from_utf8_lossy(&received)
                );
            }
        }
        // The server cleans up before it answers; allow a moment when it only hung up.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !app.stored().await.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_nothing_stored(&app).await;
    }
    let response = app.api(Method::GET, "/v1/files").send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}
