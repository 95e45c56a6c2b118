//! `/v1/files`: upload (raw or multipart), list, show, delete, sign.

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    Json,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::{
    body::{limited, BodyLimits, HeaderBudget},
    extract::{ApiQuery, FileIdPath},
    AppState,
};
use crate::{
    catalog::{self, Access, FileCursor, FileRecord, Scope},
    delivery::{disposition, signature},
    error::{ApiError, BodyError},
    ids::FileId,
    storage::{ByteStream, ObjectKey, PutOutcome},
};

#[derive(Debug, Serialize)]
pub struct FileJson {
    pub id: FileId,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub access: Access,
    pub created_at: String,
    /// The delivery URL; a private file is served only with a signature added to it.
    pub url: String,
}

impl FileJson {
    fn new(record: &FileRecord, public_url: &str) -> Self {
        Self {
            id: record.id.clone(),
            filename: record.filename.clone(),
            content_type: record.content_type.clone(),
            size: record.size,
            sha256: record.sha256.clone(),
            access: record.access,
            created_at: rfc3339(record.created_at),
            url: format!("{public_url}/files/{}", record.id),
        }
    }
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("catalog times are formattable")
}

#[derive(Debug, Deserialize)]
pub struct UploadParams {
    filename: Option<String>,
    access: Option<String>,
    /// Also start a transcode of the upload (the answer then carries the media).
    #[serde(default)]
    transcode: bool,
}

pub(super) fn parse_access(value: Option<&str>) -> Result<Access, ApiError> {
    match value {
        None | Some("") => Ok(Access::default()),
        Some(v) => Access::parse(v).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_access",
                "access must be \"private\" or \"public\"",
            )
        }),
    }
}

/// What the client said about an upload, before its bytes are in.
struct Described {
    filename: Option<String>,
    content_type: Option<String>,
    access: Access,
}

/// Declared types that say nothing (curl's default for --data-binary among them) give way to
/// a guess from the filename.
const UNINFORMATIVE_TYPES: [&str; 3] = [
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

pub(super) fn content_type_for(declared: Option<&str>, filename: Option<&str>) -> String {
    let declared = declared.map(str::trim).filter(|t| {
        t.len() <= 255
            && t.parse::<mime_guess::Mime>().is_ok()
            && !UNINFORMATIVE_TYPES
                .iter()
                .any(|u| t.to_ascii_lowercase().starts_with(u))
    });
    if let Some(t) = declared {
        return t.to_owned();
    }
    filename
        .and_then(|name| mime_guess::from_path(name).first())
        .map(|m| m.essence_str().to_owned())
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

fn limits(state: &AppState, max_bytes: u64) -> BodyLimits {
    BodyLimits {
        max_bytes,
        idle: state.settings.body_idle_timeout,
        min_rate: state.settings.min_upload_rate,
    }
}

/// Streams the bytes to a fresh key. Nothing is visible until they are all durable.
async fn store_blob(state: &AppState, body: ByteStream) -> Result<(FileId, PutOutcome), ApiError> {
    let id = FileId::generate();
    let outcome = state.storage.put(&ObjectKey::file(&id), body).await?;
    Ok((id, outcome))
}

/// Writes the row for stored bytes; if that fails the bytes go too, so nothing is half-made.
async fn commit(
    state: &AppState,
    id: FileId,
    outcome: PutOutcome,
    described: Described,
) -> Result<FileRecord, ApiError> {
    let filename = described
        .filename
        .as_deref()
        .and_then(disposition::sanitize_filename);
    let record = FileRecord {
        content_type: content_type_for(described.content_type.as_deref(), filename.as_deref()),
        filename,
        id,
        size: outcome.size,
        sha256: outcome.sha256,
        access: described.access,
        created_at: catalog::now(),
    };
    if let Err(e) = state.catalog.insert_file(&record).await {
        discard(state, &record.id).await;
        return Err(e.into());
    }
    Ok(record)
}

async fn discard(state: &AppState, id: &FileId) {
    if let Err(e) = state.storage.delete(&ObjectKey::file(id)).await {
        // The sweeper removes it later: no row references it.
        tracing::warn!(file = %id, error = %e, "could not remove the bytes of a failed upload");
    }
}

/// `POST /v1/files`: a raw body (`?filename=&access=`, Content-Type) or multipart/form-data
/// with a `file` part. Either way the body streams to storage.
pub async fn create(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UploadParams>,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<serde_json::Value>), ApiError> {
    // The route needs files:write; starting a transcode is also a media write, checked here
    // before any byte is stored.
    if params.transcode
        && !request
            .extensions()
            .get::<super::auth::Caller>()
            .is_some_and(|caller| caller.may(Scope::MediaWrite))
    {
        return Err(ApiError::forbidden(format!(
            "this key lacks the {} scope needed to transcode",
            Scope::MediaWrite.as_str()
        )));
    }
    let max = state.settings.max_upload_bytes;
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let described = Described {
        filename: params.filename,
        content_type: content_type.clone(),
        access: parse_access(params.access.as_deref())?,
    };
    let boundary = content_type
        .as_deref()
        .and_then(|ct| multer::parse_boundary(ct).ok());

    let record = match boundary {
        Some(boundary) => {
            // Part headers and boundaries add a little to the file's own size.
            let envelope = max.saturating_add(MULTIPART_OVERHEAD);
            if declared_length.is_some_and(|n| n > envelope) {
                return Err(ApiError::payload_too_large(max));
            }
            let body = limited(request.into_body(), limits(&state, envelope));
            receive_multipart(&state, body, boundary, described).await?
        }
        None => {
            if declared_length.is_some_and(|n| n > max) {
                return Err(ApiError::payload_too_large(max));
            }
            let body = limited(request.into_body(), limits(&state, max));
            let (id, outcome) = store_blob(&state, body).await?;
            commit(&state, id, outcome, described).await?
        }
    };
    tracing::info!(file = %record.id, size = record.size, "file stored");
    let mut json = serde_json::to_value(FileJson::new(&record, &state.settings.public_url))
        .map_err(ApiError::internal)?;
    if params.transcode {
        let media = super::media::start_for_upload(&state, &record).await?;
        json["media"] = serde_json::to_value(media).map_err(ApiError::internal)?;
    }
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/files/{}", record.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(json)))
}

const MULTIPART_OVERHEAD: u64 = 1024 * 1024;
/// `file` plus a few small text fields; anything more is not a file upload.
const MAX_PARTS: usize = 8;
const MAX_TEXT_FIELD: u64 = 1024;

/// What went wrong with a multipart body, in the terms every body error uses.
fn body_error(e: multer::Error) -> BodyError {
    use multer::Error as M;
    match e {
        M::FieldSizeExceeded { limit, .. } | M::StreamSizeExceeded { limit } => {
            BodyError::TooLarge(limit)
        }
        // Our own body stream failed (limits, stalls, disconnects): pass its reason through.
        M::StreamReadFailed(inner) => match inner
            .downcast_ref::<std::io::Error>()
            .and_then(BodyError::from_io)
        {
            Some(BodyError::TooLarge(limit)) => BodyError::TooLarge(*limit),
            Some(BodyError::Idle) => BodyError::Idle,
            Some(BodyError::Malformed(m)) => BodyError::Malformed(m.clone()),
            Some(BodyError::Disconnected(m)) => BodyError::Disconnected(m.clone()),
            None => BodyError::Malformed(format!("malformed multipart body: {inner}")),
        },
        M::UnknownField { field_name } => BodyError::Malformed(format!(
            "unexpected multipart field {:?}: send the file in a part named \"file\"",
            field_name.unwrap_or_default()
        )),
        other => BodyError::Malformed(format!("malformed multipart body: {other}")),
    }
}

fn multipart_error(e: multer::Error) -> ApiError {
    body_error(e).into()
}

async fn receive_multipart(
    state: &AppState,
    body: ByteStream,
    boundary: String,
    mut described: Described,
) -> Result<FileRecord, ApiError> {
    let max = state.settings.max_upload_bytes;
    let budget = HeaderBudget::default();
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["file", "access", "filename"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(max.saturating_add(MULTIPART_OVERHEAD))
                .for_field("file", max)
                .for_field("access", MAX_TEXT_FIELD)
                .for_field("filename", MAX_TEXT_FIELD),
        );
    let mut multipart =
        multer::Multipart::with_constraints(budget.wrap(body), boundary, constraints);

    let mut stored: Option<(FileId, PutOutcome)> = None;
    let mut part_filename = None;
    let read = async {
        for part in 0.. {
            budget.open();
            let Some(field) = multipart.next_field().await.map_err(multipart_error)? else {
                return Ok(());
            };
            budget.close();
            if part >= MAX_PARTS {
                return Err(ApiError::bad_request(format!(
                    "a file upload has at most {MAX_PARTS} parts"
                )));
            }
            match field.name().unwrap_or_default() {
                "file" if stored.is_some() => {
                    return Err(ApiError::bad_request("send one file per request"))
                }
                "file" => {
                    part_filename = field.file_name().map(str::to_owned);
                    if let Some(ct) = field.content_type() {
                        described.content_type = Some(ct.to_string());
                    }
                    // Over either the file's limit or the envelope's, the client is told
                    // the file limit: that is the one it can act on.
                    let data = field
                        .map(move |r| {
                            r.map_err(|e| match body_error(e) {
                                BodyError::TooLarge(_) => BodyError::TooLarge(max).into_io(),
                                other => other.into_io(),
                            })
                        })
                        .boxed();
                    stored = Some(store_blob(state, data).await?);
                }
                "access" => {
                    let text = field.text().await.map_err(multipart_error)?;
                    described.access = parse_access(Some(text.trim()))?;
                }
                "filename" => {
                    let text = field.text().await.map_err(multipart_error)?;
                    described.filename.get_or_insert(text);
                }
                other => return Err(ApiError::bad_request(format!("unexpected field {other:?}"))),
            }
        }
        Ok(())
    }
    .await;

    match (read, stored) {
        (Err(e), Some((id, _))) => {
            discard(state, &id).await;
            Err(e)
        }
        (Err(e), None) => Err(e),
        (Ok(()), None) => Err(ApiError::bad_request(
            "the multipart body has no part named \"file\"",
        )),
        (Ok(()), Some((id, outcome))) => {
            if described.filename.is_none() {
                described.filename = part_filename;
            }
            commit(state, id, outcome, described).await
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    FileIdPath(id): FileIdPath,
) -> Result<Json<FileJson>, ApiError> {
    let record = state
        .catalog
        .get_file(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(FileJson::new(&record, &state.settings.public_url)))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FileList {
    items: Vec<FileJson>,
    next_cursor: Option<String>,
}

const MAX_PAGE: u32 = 1000;

/// A page size: 50 by default, 1-1000.
pub(super) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1-{MAX_PAGE}")));
    }
    Ok(limit)
}

pub(super) fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "the cursor is not one we issued",
    )
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<FileList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let cursor = match params.cursor.as_deref() {
        Some(c) => Some(FileCursor::decode(c).ok_or_else(invalid_cursor)?),
        None => None,
    };
    // One extra row tells whether another page exists.
    let mut rows = state.catalog.list_files(limit + 1, cursor.as_ref()).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| FileCursor::after(last).encode())
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|r| FileJson::new(r, &state.settings.public_url))
        .collect();
    Ok(Json(FileList { items, next_cursor }))
}

/// Deletes the row first, so delivery stops at once, then the bytes; bytes that outlive a
/// failure here have no row and the sweeper removes them.
pub async fn remove(
    State(state): State<AppState>,
    FileIdPath(id): FileIdPath,
) -> Result<StatusCode, ApiError> {
    // The size names the edge's cache slices; read before the row goes, when there are edges.
    let size = if state.purger.is_empty() {
        None
    } else {
        state.file_record(&id).await?.map(|r| r.size)
    };
    if !state.catalog.delete_file(&id).await? {
        return Err(ApiError::not_found());
    }
    state.file_cache.invalidate(&id).await;
    state.purger.purge(crate::purge::Subject::File {
        id: id.clone(),
        size: size.unwrap_or(0),
    });
    discard(&state, &id).await;
    tracing::info!(file = %id, "file deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub(super) expires_in: Option<u64>,
    pub(super) disposition: Option<String>,
    pub(super) filename: Option<String>,
}

impl SignRequest {
    /// An empty body means every default.
    pub(super) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))
    }

    /// Seconds the URL lives: 1 hour by default, at most the signature lifetime cap.
    pub(super) fn lifetime(&self) -> Result<u64, ApiError> {
        let lifetime = self.expires_in.unwrap_or(DEFAULT_URL_LIFETIME);
        let max = signature::MAX_LIFETIME.as_secs();
        if !(1..=max).contains(&lifetime) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_expires_in",
                format!("expires_in must be 1-{max} seconds"),
            ));
        }
        Ok(lifetime)
    }
}

#[derive(Debug, Serialize)]
pub struct SignedUrl {
    url: String,
    expires_at: String,
}

const DEFAULT_URL_LIFETIME: u64 = 3600;

pub async fn signed_url(
    State(state): State<AppState>,
    FileIdPath(id): FileIdPath,
    body: Bytes,
) -> Result<Json<SignedUrl>, ApiError> {
    let request = SignRequest::parse(&body)?;
    let lifetime = request.lifetime()?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(d) = request.disposition.as_deref() {
        if disposition::DispositionType::parse(d).is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_disposition",
                "disposition must be \"inline\" or \"attachment\"",
            ));
        }
        params.push(("disposition", d));
    }
    let filename = request
        .filename
        .as_deref()
        .map(|f| {
            disposition::sanitize_filename(f).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_filename",
                    "filename has no usable characters",
                )
            })
        })
        .transpose()?;
    if let Some(f) = filename.as_deref() {
        params.push(("filename", f));
    }
    if state.catalog.get_file(&id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let expires_at = signature::unix_now() + lifetime;
    let query = state
        .signer
        .sign(&crate::delivery::file_scope(&id), &params, expires_at);
    let expires =
        time::OffsetDateTime::from_unix_timestamp(expires_at as i64).map_err(ApiError::internal)?;
    Ok(Json(SignedUrl {
        url: format!("{}/files/{id}?{query}", state.settings.public_url),
        expires_at: rfc3339(expires),
    }))
}

#[cfg(test)]
mod tests {
    use super::content_type_for;

    #[test]
    fn declared_types_win_unless_they_say_nothing() {
        let cases = [
            (Some("image/png"), Some("x.txt"), "image/png"),
            (Some("application/octet-stream"), Some("a.mp4"), "video/mp4"),
            (
                Some("application/x-www-form-urlencoded"),
                Some("a.svg"),
                "image/svg+xml",
            ),
            (None, Some("a.html"), "text/html"),
            (None, None, "application/octet-stream"),
            (Some("not a type"), Some("a.pdf"), "application/pdf"),
            (
                Some("text/plain; charset=utf-8"),
                None,
                "text/plain; charset=utf-8",
            ),
        ];
        for (declared, name, expected) in cases {
            assert_eq!(
                content_type_for(declared, name),
                expected,
                "{declared:?} {name:?}"
            );
        }
    }
}
