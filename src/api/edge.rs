//! `GET /edge/check/files/...` and `/edge/check/media/...`: the access decision of a delivery
//! request without its bytes. An edge that keys cached segments without the signature (so every
//! viewer shares one copy) asks here before serving each request: nginx through `auth_request`,
//! Varnish through a restart. The answer is cached by the edge for a few seconds under the full
//! request URI, so a token costs one check per edge per few seconds, not one per segment.
//!
//! Allowed: 204. Refused: 403 with `X-Reelay-Check: forbidden` (no or bad signature) or `gone`
//! (unknown or deleted id, so the edge answers 404 even when it still holds the bytes). nginx's
//! `auth_request` only understands 2xx, 401 and 403, hence one status and a reason header.

use axum::{
    extract::{RawQuery, State},
    response::{IntoResponse, Response},
};
use http::{header, HeaderName, HeaderValue, StatusCode};

use super::{
    delivery::{authorize_file, authorize_media},
    extract::{CosmeticName, FileIdPath, MediaIdPath},
    AppState,
};
use crate::{
    delivery::signature::{self, SignedParams},
    error::ApiError,
};

pub static CHECK_REASON: HeaderName = HeaderName::from_static("x-reelay-check");

/// How long an edge may reuse an answer. Short, because a delete or an expiry must reach the
/// edge quickly; long enough that a viewer's stream of segment requests costs few checks.
const ANSWER_TTL: u64 = 5;

pub async fn file(
    State(state): State<AppState>,
    FileIdPath(id): FileIdPath,
    _name: CosmeticName,
    RawQuery(query): RawQuery,
) -> Response {
    let now = signature::unix_now();
    let decision = authorize_file(&state, &id, &query.unwrap_or_default(), now).await;
    answer(decision.map(|(_, signed)| signed), now)
}

pub async fn media(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
    RawQuery(query): RawQuery,
) -> Response {
    let now = signature::unix_now();
    // A media not ready yet is allowed: the origin gives the player its "not ready" answer.
    let decision = authorize_media(&state, &id, &query.unwrap_or_default(), now).await;
    answer(decision.map(|(_, signed)| signed), now)
}

fn answer(decision: Result<Option<SignedParams>, ApiError>, now: u64) -> Response {
    let ttl = match decision {
        // An allowed signed request is remembered no longer than its signature lives.
        Ok(Some(signed)) => ANSWER_TTL.min(signed.expires_at.saturating_sub(now)),
        Ok(None) => ANSWER_TTL,
        Err(e) if e.status == StatusCode::NOT_FOUND => return refused("gone", e),
        Err(e) if e.status == StatusCode::FORBIDDEN => return refused("forbidden", e),
        // Catalog or storage trouble: the edge reports an error rather than guessing.
        Err(e) => return e.into_response(),
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={ttl}")).expect("ascii"),
    );
    response
}

fn refused(reason: &'static str, error: ApiError) -> Response {
    let mut response = error.into_response();
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(CHECK_REASON.clone(), HeaderValue::from_static(reason));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={ANSWER_TTL}")).expect("ascii"),
    );
    response
}
