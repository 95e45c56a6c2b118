//! `/v1/media`: start a transcode of a stored file, follow it, list, delete, sign.

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{
    extract::{ApiQuery, MediaIdPath},
    files::{parse_access, rfc3339, SignRequest},
    AppState,
};
use crate::{
    catalog::{self, Access, FileRecord, MediaCursor, MediaRecord, MediaState, Rendition},
    delivery::{self, signature},
    error::ApiError,
    ids::{FileId, MediaId},
    storage::ObjectKey,
};

#[derive(Debug, Serialize)]
pub struct MediaJson {
    pub id: MediaId,
    pub file_id: FileId,
    pub access: Access,
    pub state: MediaState,
    pub progress: u8,
    pub error: Option<String>,
    pub duration: Option<f64>,
    pub renditions: Vec<Rendition>,
    /// Delivery URLs once ready; a private media plays only with a signed URL.
    pub hls_url: Option<String>,
    pub dash_url: Option<String>,
    pub poster_url: Option<String>,
    pub created_at: String,
}

impl MediaJson {
    pub fn new(media: &MediaRecord, public_url: &str) -> Self {
        let ready = media.state == MediaState::Ready;
        let url = |name: &str| ready.then(|| format!("{public_url}/media/{}/{name}", media.id));
        let has_video = media.renditions.iter().any(|r| r.kind == "video");
        Self {
            id: media.id.clone(),
            file_id: media.file_id.clone(),
            access: media.access,
            state: media.state,
            progress: media.progress,
            error: media.error.clone(),
            duration: media.duration,
            renditions: media.renditions.clone(),
            hls_url: url("master.m3u8"),
            dash_url: url("manifest.mpd"),
            poster_url: if has_video { url("poster.jpg") } else { None },
            created_at: rfc3339(media.created_at),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMedia {
    file_id: String,
    access: Option<String>,
}

/// Queues a transcode of a stored file. Used by `POST /v1/media` and `POST /v1/files?transcode=true`.
pub async fn start(
    state: &AppState,
    file: &FileRecord,
    access: Access,
) -> Result<MediaRecord, ApiError> {
    let now = catalog::now();
    let media = MediaRecord {
        id: MediaId::generate(),
        file_id: file.id.clone(),
        access,
        state: MediaState::Queued,
        progress: 0,
        error: None,
        output_prefix: None,
        renditions: Vec::new(),
        duration: None,
        created_at: now,
        updated_at: now,
    };
    state
        .catalog
        .create_media(&media, state.settings.job_max_attempts)
        .await?;
    state.job_wakeup.notify_one();
    tracing::info!(media = %media.id, file = %file.id, "transcode queued");
    Ok(media)
}

fn accepted(state: &AppState, media: &MediaRecord) -> (StatusCode, HeaderMap, Json<MediaJson>) {
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/media/{}", media.id)) {
        headers.insert(header::LOCATION, location);
    }
    (
        StatusCode::ACCEPTED,
        headers,
        Json(MediaJson::new(media, &state.settings.public_url)),
    )
}

pub async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Json<MediaJson>), ApiError> {
    let request: CreateMedia = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    let file_id = FileId::parse(&request.file_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_id",
            "file_id is not a file id",
        )
    })?;
    let file = state.catalog.get_file(&file_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_file",
            "no stored file has this file_id",
        )
    })?;
    let access = match request.access.as_deref() {
        Some(a) => parse_access(Some(a))?,
        None => file.access,
    };
    let media = start(&state, &file, access).await?;
    Ok(accepted(&state, &media))
}

/// The `(202, media)` answer for an upload made with `?transcode=true`.
pub async fn start_for_upload(state: &AppState, file: &FileRecord) -> Result<MediaJson, ApiError> {
    let media = start(state, file, file.access).await?;
    Ok(MediaJson::new(&media, &state.settings.public_url))
}

pub async fn show(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
) -> Result<Json<MediaJson>, ApiError> {
    let media = state
        .catalog
        .get_media(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(MediaJson::new(&media, &state.settings.public_url)))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MediaList {
    items: Vec<MediaJson>,
    next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<MediaList>, ApiError> {
    let limit = super::files::page_limit(params.limit)?;
    let cursor = match params.cursor.as_deref() {
        Some(c) => Some(MediaCursor::decode(c).ok_or_else(super::files::invalid_cursor)?),
        None => None,
    };
    let mut rows = state.catalog.list_media(limit + 1, cursor.as_ref()).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| MediaCursor::after(last).encode())
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|m| MediaJson::new(m, &state.settings.public_url))
        .collect();
    Ok(Json(MediaList { items, next_cursor }))
}

/// Removes the record (delivery stops at once, a running transcode is fenced out), then every
/// stored output of every run.
pub async fn remove(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
) -> Result<StatusCode, ApiError> {
    // The paths name the edge's cache entries; read before the rows go.
    let paths = if state.purger.is_empty() {
        Vec::new()
    } else {
        state
            .catalog
            .media_files(&id)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect()
    };
    if !state.catalog.delete_media(&id).await? {
        return Err(ApiError::not_found());
    }
    state.media_cache.invalidate(&id).await;
    state.purger.purge(crate::purge::Subject::Media {
        id: id.clone(),
        paths,
    });
    if let Err(e) = state
        .storage
        .delete_prefix(&ObjectKey::media_prefix(&id))
        .await
    {
        tracing::warn!(media = %id, error = %e, "could not remove a deleted media's outputs; the sweeper will");
    }
    tracing::info!(media = %id, "media deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct SignedMedia {
    /// The HLS master playlist; every URI it references carries the same token.
    url: String,
    dash_url: String,
    poster_url: Option<String>,
    expires_at: String,
}

/// One signature over the media's whole path prefix.
pub async fn signed_url(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
    body: Bytes,
) -> Result<Json<SignedMedia>, ApiError> {
    let request = SignRequest::parse(&body)?;
    if request.disposition.is_some() || request.filename.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            "a media signature takes only expires_in",
        ));
    }
    let lifetime = request.lifetime()?;
    let media = state
        .catalog
        .get_media(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let expires_at = signature::unix_now() + lifetime;
    let query = state
        .signer
        .sign(&delivery::media_scope(&id), &[], expires_at);
    let base = format!("{}/media/{id}", state.settings.public_url);
    let has_video =
        media.renditions.iter().any(|r| r.kind == "video") || media.state != MediaState::Ready;
    Ok(Json(SignedMedia {
        url: format!("{base}/master.m3u8?{query}"),
        dash_url: format!("{base}/manifest.mpd?{query}"),
        poster_url: has_video.then(|| format!("{base}/poster.jpg?{query}")),
        expires_at: rfc3339(
            time::OffsetDateTime::from_unix_timestamp(expires_at as i64)
                .map_err(ApiError::internal)?,
        ),
    }))
}

/// `POST /v1/media/{id}/retry`: queues a failed media again with a fresh set of attempts.
pub async fn retry(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
) -> Result<(StatusCode, HeaderMap, Json<MediaJson>), ApiError> {
    if !state
        .catalog
        .retry_media(&id, state.settings.job_max_attempts)
        .await?
    {
        return match state.catalog.get_media(&id).await? {
            None => Err(ApiError::not_found()),
            Some(media) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_failed",
                format!(
                    "only a failed media can be retried; this one is {}",
                    media.state.as_str()
                ),
            )),
        };
    }
    state.job_wakeup.notify_one();
    let media = state
        .catalog
        .get_media(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(media = %id, "transcode retried");
    Ok(accepted(&state, &media))
}
