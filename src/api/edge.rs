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
    delivery::{verify_if_signed, Lookup},
    extract::{CosmeticName, FileIdPath, MediaIdPath},
    AppState,
};
use crate::{
    catalog::Access,
    delivery::{self, signature},
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
    let query = query.unwrap_or_default();
    let now = signature::unix_now();
    let decision = async {
        let signed = verify_if_signed(&state, &delivery::file_scope(&id), &query, now)?;
        let record = state
            .file_record(&id)
            .await?
            .ok_or_else(delivery::not_found)?;
        Ok::<_, ApiError>((record.access, signed.map(|s| s.expires_at)))
    }
    .await;
    answer(decision, now)
}

pub async fn media(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let now = signature::unix_now();
    let decision = async {
        let signed = verify_if_signed(&state, &delivery::media_scope(&id), &query, now)?;
        let access = match state.ready_media(&id).await? {
            Lookup::Ready(ready) => ready.record.access,
            // Not ready yet: the origin gives the player its "not ready" answer.
            Lookup::NotReady(access, _) => access,
            Lookup::Missing => return Err(delivery::not_found()),
        };
        Ok((access, signed.map(|s| s.expires_at)))
    }
    .await;
    answer(decision, now)
}

fn answer(decision: Result<(Access, Option<u64>), ApiError>, now: u64) -> Response {
    let ttl = match decision {
        Ok((Access::Private, None)) => {
            return refused(
                "forbidden",
                delivery::signature_refused(signature::SignatureError::Missing),
            );
        }
        // An allowed signed request is remembered no longer than its signature lives.
        Ok((_, Some(expires_at))) => ANSWER_TTL.min(expires_at.saturating_sub(now)),
        Ok((_, None)) => ANSWER_TTL,
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
