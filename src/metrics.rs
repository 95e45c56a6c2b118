//! Prometheus metrics: requests by route and status, latency, bytes served and uploaded.
//! The recorder is process-wide (the `metrics` facade has one global recorder), so several
//! servers in one test process share it.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("reelay_http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .expect("buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program; then our
            // handle renders only what we record through it, which is still correct output.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "reelay_http_requests_total",
        "HTTP requests by route, method and status"
    );
    metrics::describe_histogram!(
        "reelay_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to the response head, by route"
    );
    metrics::describe_counter!(
        "reelay_delivered_bytes_total",
        metrics::Unit::Bytes,
        "Body bytes sent by delivery"
    );
    metrics::describe_counter!(
        "reelay_uploaded_bytes_total",
        metrics::Unit::Bytes,
        "Upload body bytes received"
    );
    metrics::describe_counter!(
        "reelay_swept_blobs_total",
        "Blobs removed because no catalog row referenced them"
    );
}

/// Records every request under its route template, never its raw path, so ids do not explode
/// the label set.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("reelay_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("reelay_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
