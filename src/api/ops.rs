//! Operations endpoints and the JSON answers for unknown routes.

use axum::{extract::State, response::IntoResponse, Json};
use http::{header, StatusCode};

use super::AppState;
use crate::error::ApiError;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the catalog answers a query and storage completes a write/read/delete round trip.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (catalog, storage) = tokio::join!(state.catalog.ping(), state.storage.check());
    let report = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let catalog = catalog.map_err(|e| e.to_string());
    let storage = storage.map_err(|e| e.to_string());
    let ready = catalog.is_ok() && storage.is_ok();
    if !ready {
        tracing::warn!(catalog = %report(&catalog), storage = %report(&storage), "not ready");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "unavailable" };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "status": if ready { "ready" } else { "unavailable" },
            "catalog": word(&catalog),
            "storage": word(&storage),
        })),
    )
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Queue depth is a fact of the shared catalog, read fresh at each scrape.
    match state.catalog.job_counts().await {
        Ok(counts) => {
            for s in crate::catalog::JOB_STATES {
                let n = counts
                    .iter()
                    .find(|(state, _)| state == s)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("reelay_jobs", "state" => s).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue depth unavailable for /metrics"),
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this path",
    )
}

pub async fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}
