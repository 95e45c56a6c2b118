//! Direct uploads: an app asks for a one-time upload URL with its API key and hands it to an
//! end user's device, which uploads with tus and never holds a key (as Mux direct uploads and
//! Cloudflare's direct creator uploads do).
//!
//! The URL is `/v1/uploads?token=...`: the token creates exactly one tus upload, before
//! `expires_at`, of at most `max_size` bytes, with the access and transcode settings the app
//! chose. It is not an API key: every other route refuses it. The upload it starts then lives
//! like any other (its own `Upload-Expires`).

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    Extension, Json,
};
use serde::{Deserialize, Serialize};

use super::{
    auth::{self, hash_token},
    extract::DirectUploadIdPath,
    files::rfc3339,
    AppState,
};
use crate::{
    catalog::{self, Access, DirectUploadRecord, Scope, UploadState},
    error::ApiError,
    ids::DirectUploadId,
};

const DEFAULT_EXPIRES_IN: u64 = 3600;
const MAX_EXPIRES_IN: u64 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    max_size: Option<u64>,
    expires_in: Option<u64>,
    access: Option<String>,
    #[serde(default)]
    transcode: bool,
    cors_origin: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DirectUploadJson {
    id: DirectUploadId,
    /// A tus creation URL (`POST` with `Tus-Resumable` and `Upload-Length`).
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_url: Option<String>,
    status: &'static str,
    max_size: u64,
    access: Access,
    transcode: bool,
    cors_origin: Option<String>,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// `POST /v1/direct-uploads` (files:write; media:write too to transcode).
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<auth::Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<DirectUploadJson>), ApiError> {
    let request: CreateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?
    };
    // The route's middleware checked files:write and left the caller for this check.
    if request.transcode && !caller.may(Scope::MediaWrite) {
        return Err(ApiError::forbidden(format!(
            "this key lacks the {} scope needed to transcode",
            Scope::MediaWrite.as_str()
        )));
    }
    let limit = state.settings.max_upload_bytes;
    let max_size = request.max_size.unwrap_or(limit);
    if !(1..=limit).contains(&max_size) {
        return Err(unprocessable(
            "invalid_max_size",
            format!("max_size must be 1-{limit} bytes"),
        ));
    }
    let expires_in = request.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
    if !(1..=MAX_EXPIRES_IN).contains(&expires_in) {
        return Err(unprocessable(
            "invalid_expires_in",
            format!("expires_in must be 1-{MAX_EXPIRES_IN} seconds"),
        ));
    }
    let cors_origin = match request.cors_origin.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(origin) if is_origin(origin) => Some(origin.to_owned()),
        Some(_) => {
            return Err(unprocessable(
                "invalid_cors_origin",
                "cors_origin must be an origin such as https://app.example.com",
            ))
        }
    };
    let token = format!("dut_{}", crate::ids::random_secret(32));
    let now = catalog::now();
    let record = DirectUploadRecord {
        id: DirectUploadId::generate(),
        token_sha256: hex::encode(hash_token(&token)),
        max_size,
        access: super::files::parse_access(request.access.as_deref())?,
        transcode: request.transcode,
        cors_origin,
        upload_id: None,
        cancelled: false,
        created_at: now,
        expires_at: now + std::time::Duration::from_secs(expires_in),
    };
    state.catalog.insert_direct_upload(&record).await?;
    let mut json = describe(&state, &record).await?;
    json.upload_url = Some(format!(
        "{}/v1/uploads?token={token}",
        state.settings.public_url
    ));
    Ok((StatusCode::CREATED, Json(json)))
}

/// `scheme://host[:port]`, nothing more.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// `GET /v1/direct-uploads/{id}` (files:read).
pub async fn show(
    State(state): State<AppState>,
    DirectUploadIdPath(id): DirectUploadIdPath,
) -> Result<Json<DirectUploadJson>, ApiError> {
    let record = state
        .catalog
        .get_direct_upload(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(describe(&state, &record).await?))
}

/// `DELETE /v1/direct-uploads/{id}` (files:write): an unused one can no longer be used; one
/// in progress is terminated; a completed one is left alone (its file is an ordinary file).
pub async fn cancel(
    State(state): State<AppState>,
    DirectUploadIdPath(id): DirectUploadIdPath,
) -> Result<StatusCode, ApiError> {
    let record = state
        .catalog
        .get_direct_upload(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if state.catalog.cancel_direct_upload(&id).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    if let Some(upload_id) = &record.upload_id {
        if let Some(upload) = state.catalog.get_upload(upload_id).await? {
            if upload.state == UploadState::Completed {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "direct_upload_completed",
                    "this direct upload has completed; delete its file instead",
                ));
            }
            if state
                .catalog
                .end_upload(upload_id, UploadState::Terminated)
                .await?
            {
                super::uploads::abandon(&state, &upload).await;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn describe(
    state: &AppState,
    record: &DirectUploadRecord,
) -> Result<DirectUploadJson, ApiError> {
    let now = catalog::now();
    let mut json = DirectUploadJson {
        id: record.id.clone(),
        upload_url: None,
        status: "waiting",
        max_size: record.max_size,
        access: record.access,
        transcode: record.transcode,
        cors_origin: record.cors_origin.clone(),
        expires_at: rfc3339(record.expires_at),
        file_id: None,
        media_id: None,
        offset: None,
        length: None,
    };
    let upload = match &record.upload_id {
        Some(id) => state.catalog.get_upload(id).await?,
        None => None,
    };
    json.status = match (&upload, record.cancelled) {
        (_, true) => "cancelled",
        (None, false) if record.expires_at <= now => "expired",
        (None, false) => "waiting",
        (Some(upload), false) => {
            json.offset = Some(upload.offset);
            json.length = Some(upload.length);
            match upload.state {
                UploadState::Active => "uploading",
                UploadState::Completed => {
                    json.file_id = Some(upload.data.file_id.clone());
                    json.media_id = upload.data.media_id.clone();
                    "completed"
                }
                UploadState::Terminated => "cancelled",
                UploadState::Expired => "expired",
            }
        }
    };
    Ok(json)
}

/// The direct upload a token names, if it may still start its upload.
pub(super) async fn usable(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
) -> Result<DirectUploadRecord, ApiError> {
    let record = state
        .catalog
        .direct_upload_by_token(&hex::encode(hash_token(token)))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if record.cancelled {
        return Err(ApiError::new(
            StatusCode::GONE,
            "direct_upload_cancelled",
            "this upload URL was cancelled",
        ));
    }
    if record.upload_id.is_some() {
        return Err(used());
    }
    if record.expires_at <= catalog::now() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "direct_upload_expired",
            "this upload URL has expired",
        ));
    }
    // A browser upload must come from the page the app named.
    if let (Some(allowed), Some(origin)) = (&record.cors_origin, headers.get(http::header::ORIGIN))
    {
        if origin.as_bytes() != allowed.as_bytes() {
            return Err(ApiError::forbidden(
                "this upload URL is not valid from this origin",
            ));
        }
    }
    Ok(record)
}

pub(super) fn used() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "direct_upload_used",
        "this upload URL has already been used",
    )
}
