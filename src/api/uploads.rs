//! tus 1.0 resumable uploads at `/v1/uploads` (core, creation, creation-with-upload,
//! termination, checksum, expiration). https://tus.io/protocols/resumable-upload
//!
//! The catalog row is the upload's whole state, so any node can take the next request. A
//! PATCH holds the row's lock for its duration (a second PATCH gets 423), writes through the
//! storage backend's resumable write, and every few seconds checkpoints: the bytes are made
//! durable, then the offset is saved under the lock. A connection cut mid-PATCH keeps what was
//! received; a crash loses at most the bytes since the last checkpoint, and HEAD never reports
//! an offset past what is durable. The last byte turns the upload into an ordinary file at the
//! key chosen when it was created, so nothing partial is ever visible.
//!
//! An upload's URL is a capability, as with tusd or S3 presigned multipart: the id (103 random
//! bits) is what lets a client continue it. Creating one needs an API key with `files:write`
//! or a direct-upload token.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use base64::{engine::general_purpose::STANDARD, Engine};
use futures::StreamExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha1::Digest as _;
use time::OffsetDateTime;

use super::{
    auth,
    body::{limited, BodyLimits},
    files::content_type_for,
    AppState,
};
use crate::{
    catalog::{
        self, Access, DirectUploadRecord, FileRecord, Scope, UploadData, UploadRecord, UploadState,
    },
    delivery::disposition,
    error::{ApiError, BodyError},
    ids::{FileId, UploadId},
    storage::{ObjectKey, PutOutcome, Resumable, StorageError},
};

pub const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,expiration";
const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// A PATCH's hold on its upload. Renewed every `CHECKPOINT_EVERY`, so only a dead or
/// partitioned node loses it; a client then waits at most this long to resume elsewhere.
const LOCK_TTL: Duration = Duration::from_secs(15);
const CHECKPOINT_EVERY: Duration = Duration::from_secs(3);

pub static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
static TUS_VERSION_H: HeaderName = HeaderName::from_static("tus-version");
static TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
static TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
static TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
static UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
static UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
static UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
static UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
pub static REELAY_FILE_ID: HeaderName = HeaderName::from_static("reelay-file-id");
pub static REELAY_MEDIA_ID: HeaderName = HeaderName::from_static("reelay-media-id");

/// Every tus header a browser client sends or must be allowed to read (CORS).
pub const REQUEST_HEADERS: [&str; 8] = [
    "tus-resumable",
    "upload-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
    "upload-defer-length",
    "upload-concat",
    "x-http-method-override",
];
pub const RESPONSE_HEADERS: [&str; 12] = [
    "location",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "reelay-file-id",
    "reelay-media-id",
];

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values we make are ASCII")
}

fn tus_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// Every request but OPTIONS names the protocol version; we speak exactly one.
fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        other => Err(tus_error(
            StatusCode::PRECONDITION_FAILED,
            "unsupported_tus_version",
            match other {
                Some(v) => {
                    format!("tus version {v:?} is not supported; this server speaks {TUS_VERSION}")
                }
                None => "the Tus-Resumable header is missing".to_owned(),
            },
        )
        .with_header(TUS_VERSION_H.clone(), value(TUS_VERSION))),
    }
}

fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative integer"))),
    }
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).
fn parse_metadata(raw: &str) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut parts = pair.split(' ');
        let key = parts.next().unwrap_or_default();
        let encoded = parts.next();
        if key.is_empty() || parts.next().is_some() || out.iter().any(|(k, _)| k == key) {
            return Err(ApiError::bad_request("Upload-Metadata is malformed"));
        }
        let decoded = match encoded {
            Some(e) => {
                let bytes = STANDARD.decode(e).map_err(|_| {
                    ApiError::bad_request(format!("Upload-Metadata {key:?} is not base64"))
                })?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request(format!("Upload-Metadata {key:?} is not UTF-8"))
                })?)
            }
            None => None,
        };
        out.push((key.to_owned(), decoded));
    }
    Ok(out)
}

fn meta<'a>(metadata: &'a [(String, Option<String>)], key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
}

fn http_date(t: OffsetDateTime) -> HeaderValue {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64);
    value(&httpdate::fmt_http_date(at))
}

/// The headers every answer about an upload carries.
fn upload_headers(upload: &UploadRecord) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(UPLOAD_OFFSET.clone(), value(&upload.offset.to_string()));
    headers.insert(UPLOAD_LENGTH.clone(), value(&upload.length.to_string()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match upload.state {
        UploadState::Active => {
            headers.insert(UPLOAD_EXPIRES.clone(), http_date(upload.expires_at));
        }
        UploadState::Completed => {
            if let Ok(v) = HeaderValue::from_str(&upload.data.file_id) {
                headers.insert(REELAY_FILE_ID.clone(), v);
            }
            if let Some(v) = upload
                .data
                .media_id
                .as_deref()
                .and_then(|m| HeaderValue::from_str(m).ok())
            {
                headers.insert(REELAY_MEDIA_ID.clone(), v);
            }
        }
        _ => {}
    }
    headers
}

/// `OPTIONS /v1/uploads` (and `/v1/uploads/{id}`): what this server supports. A middleware
/// outside the CORS layer, which answers every OPTIONS itself as a preflight: the tus headers
/// are added to that answer.
pub async fn discovery(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_options = request.method() == http::Method::OPTIONS;
    let mut response = next.run(request).await;
    if is_options {
        let headers = response.headers_mut();
        headers.insert(TUS_VERSION_H.clone(), value(TUS_VERSION));
        headers.insert(TUS_EXTENSION.clone(), value(EXTENSIONS));
        headers.insert(
            TUS_MAX_SIZE.clone(),
            value(&state.settings.max_upload_bytes.to_string()),
        );
        headers.insert(TUS_CHECKSUM_ALGORITHM.clone(), value(CHECKSUM_ALGORITHMS));
        if response.status() == StatusCode::OK {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
    }
    response
}

#[derive(Debug, serde::Deserialize)]
pub struct CreateQuery {
    /// A direct upload's token, in place of an API key.
    token: Option<String>,
}

/// Who may create this upload, and on what terms.
struct Grant {
    max_size: u64,
    access: Option<Access>,
    transcode: Option<bool>,
    may_transcode: bool,
    direct: Option<DirectUploadRecord>,
}

async fn grant(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<Grant, ApiError> {
    if let Some(token) = token {
        let direct = super::direct_uploads::usable(state, token, headers).await?;
        return Ok(Grant {
            max_size: direct.max_size,
            access: Some(direct.access),
            transcode: Some(direct.transcode),
            may_transcode: true,
            direct: Some(direct),
        });
    }
    let caller = auth::caller(state, headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !caller.may(Scope::FilesWrite) {
        return Err(ApiError::forbidden(format!(
            "this key lacks the {} scope",
            Scope::FilesWrite.as_str()
        )));
    }
    Ok(Grant {
        max_size: state.settings.max_upload_bytes,
        access: None,
        transcode: None,
        may_transcode: caller.may(Scope::MediaWrite),
        direct: None,
    })
}

/// `POST /v1/uploads`: creation, and creation-with-upload when a body comes along.
pub async fn create(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<CreateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let grant = grant(&state, &headers, query.token.as_deref()).await?;
    let Some(length) = number(&headers, &UPLOAD_LENGTH)? else {
        return Err(if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
            ApiError::bad_request("deferred lengths are not supported: send Upload-Length")
        } else {
            ApiError::bad_request("Upload-Length is required")
        });
    };
    if length > grant.max_size {
        return Err(ApiError::payload_too_large(grant.max_size));
    }
    let raw_metadata = headers
        .get(&UPLOAD_METADATA)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::bad_request("Upload-Metadata is malformed"))?
        .unwrap_or_default();
    let metadata = parse_metadata(&raw_metadata)?;
    let access = match grant.access {
        Some(access) => access,
        None => super::files::parse_access(meta(&metadata, "access"))?,
    };
    let transcode = grant
        .transcode
        .unwrap_or_else(|| matches!(meta(&metadata, "transcode"), Some("true" | "1")));
    if transcode && !grant.may_transcode {
        return Err(ApiError::forbidden(format!(
            "this key lacks the {} scope needed to transcode",
            Scope::MediaWrite.as_str()
        )));
    }
    let now = catalog::now();
    let mut upload = UploadRecord {
        id: UploadId::generate(),
        state: UploadState::Active,
        offset: 0,
        length,
        data: UploadData {
            file_id: FileId::generate().to_string(),
            filename: meta(&metadata, "filename").map(str::to_owned),
            content_type: meta(&metadata, "filetype")
                .or_else(|| meta(&metadata, "content_type"))
                .map(str::to_owned),
            access,
            transcode,
            metadata: raw_metadata,
            storage: String::new(),
            media_id: None,
        },
        direct_upload_id: grant.direct.as_ref().map(|d| d.id.clone()),
        created_at: now,
        expires_at: now + state.settings.upload_lifetime,
    };
    if !state.catalog.create_upload(&upload, now).await? {
        return Err(super::direct_uploads::used());
    }
    tracing::info!(upload = %upload.id, length, "upload created");

    let with_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.eq_ignore_ascii_case(OFFSET_OCTET_STREAM));
    if length == 0 {
        upload = complete_empty(&state, upload).await?;
    } else if with_body {
        // creation-with-upload: the body is the first PATCH. Whatever it achieves, the upload
        // exists now, so the answer is 201 with the offset reached.
        upload = match patch_locked(&state, &upload.id, 0, &headers, body).await {
            Ok(done) => done,
            Err(e) if e.status == StatusCode::INTERNAL_SERVER_ERROR => return Err(e),
            Err(e) => {
                tracing::info!(upload = %upload.id, error = %e.message, "creation-with-upload body not taken whole");
                state
                    .catalog
                    .get_upload(&upload.id)
                    .await?
                    .unwrap_or(upload)
            }
        };
    }
    let mut response_headers = upload_headers(&upload);
    response_headers.insert(
        header::LOCATION,
        value(&format!(
            "{}/v1/uploads/{}",
            state.settings.public_url, upload.id
        )),
    );
    Ok((StatusCode::CREATED, response_headers).into_response())
}

/// The upload in the path; unknown ids are 404, ended ones 410.
async fn find(state: &AppState, id: &str) -> Result<UploadRecord, ApiError> {
    let id = UploadId::parse(id).ok_or_else(ApiError::not_found)?;
    let upload = state
        .catalog
        .get_upload(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    match upload.state {
        UploadState::Terminated => Err(tus_error(
            StatusCode::GONE,
            "upload_terminated",
            "this upload was terminated",
        )),
        UploadState::Expired => Err(tus_error(
            StatusCode::GONE,
            "upload_expired",
            "this upload expired before it was finished",
        )),
        _ => Ok(upload),
    }
}

/// `HEAD /v1/uploads/{id}`: the offset to resume from.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let upload = find(&state, &id).await?;
    let mut out = upload_headers(&upload);
    if !upload.data.metadata.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&upload.data.metadata) {
            out.insert(UPLOAD_METADATA.clone(), v);
        }
    }
    Ok((StatusCode::OK, out).into_response())
}

/// `DELETE /v1/uploads/{id}`: termination. The bytes go; the id answers 410 from now on.
pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let upload = find(&state, &id).await?;
    if upload.state == UploadState::Completed {
        return Err(tus_error(
            StatusCode::CONFLICT,
            "upload_completed",
            format!(
                "this upload is complete; delete the file with DELETE /v1/files/{}",
                upload.data.file_id
            ),
        ));
    }
    if state
        .catalog
        .end_upload(&upload.id, UploadState::Terminated)
        .await?
    {
        abandon(&state, &upload).await;
        tracing::info!(upload = %upload.id, "upload terminated");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes an ended upload's partial bytes; the sweeper's storage cleanup catches failures.
pub async fn abandon(state: &AppState, upload: &UploadRecord) {
    if let Err(e) = abandon_bytes(&state.storage, upload).await {
        tracing::warn!(upload = %upload.id, error = %e, "could not remove an ended upload's bytes");
    }
}

async fn abandon_bytes(
    storage: &crate::storage::DynStorage,
    upload: &UploadRecord,
) -> Result<(), StorageError> {
    let Some(file_id) = FileId::parse(&upload.data.file_id) else {
        return Ok(());
    };
    storage
        .abandon(
            &ObjectKey::file(&file_id),
            upload.id.as_str(),
            &upload.data.storage,
        )
        .await
}

/// `PATCH /v1/uploads/{id}`: bytes at `Upload-Offset`.
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(|ct| ct.eq_ignore_ascii_case(OFFSET_OCTET_STREAM)) {
        return Err(tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a PATCH body must be {OFFSET_OCTET_STREAM}"),
        ));
    }
    let offset = number(&headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| ApiError::bad_request("Upload-Offset is required"))?;
    let id = UploadId::parse(&id).ok_or_else(ApiError::not_found)?;
    let upload = patch_locked(&state, &id, offset, &headers, body).await?;
    Ok((StatusCode::NO_CONTENT, upload_headers(&upload)).into_response())
}

fn offset_mismatch(upload: &UploadRecord) -> ApiError {
    tus_error(
        StatusCode::CONFLICT,
        "offset_mismatch",
        format!("the upload is at offset {}", upload.offset),
    )
    .with_header(UPLOAD_OFFSET.clone(), value(&upload.offset.to_string()))
}

/// Why an upload's lock could not be taken: unknown (404), ended (410), at another offset
/// (409), busy (423). A completed upload takes an empty PATCH at its end (a client repeating
/// its last request) and answers as the last PATCH did.
async fn not_writable(
    state: &AppState,
    id: &UploadId,
    offset: u64,
    declared: Option<u64>,
) -> Result<UploadRecord, ApiError> {
    let upload = find(state, id.as_str()).await?;
    if offset != upload.offset {
        return Err(offset_mismatch(&upload));
    }
    match upload.state {
        UploadState::Completed if declared.unwrap_or(0) == 0 => Ok(upload),
        UploadState::Completed => Err(ApiError::payload_too_large(0)
            .with_header(UPLOAD_OFFSET.clone(), value(&upload.offset.to_string()))),
        _ => Err(locked()),
    }
}

/// A per-request `Upload-Checksum`, checked before any of the request's bytes count.
enum Checksum {
    Sha1(sha1::Sha1, Vec<u8>),
    Sha256(sha2::Sha256, Vec<u8>),
}

impl Checksum {
    fn parse(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(raw) = headers.get(&UPLOAD_CHECKSUM) else {
            return Ok(None);
        };
        let raw = raw
            .to_str()
            .map_err(|_| ApiError::bad_request("Upload-Checksum is malformed"))?;
        let (algorithm, digest) = raw
            .split_once(' ')
            .ok_or_else(|| ApiError::bad_request("Upload-Checksum is `<algorithm> <base64>`"))?;
        let expected = STANDARD
            .decode(digest.trim())
            .map_err(|_| ApiError::bad_request("Upload-Checksum's digest is not base64"))?;
        match algorithm.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Some(Checksum::Sha1(sha1::Sha1::new(), expected))),
            "sha256" => Ok(Some(Checksum::Sha256(sha2::Sha256::new(), expected))),
            other => Err(ApiError::bad_request(format!(
                "checksum algorithm {other:?} is not supported (use one of {CHECKSUM_ALGORITHMS})"
            ))),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Checksum::Sha1(h, _) => h.update(bytes),
            Checksum::Sha256(h, _) => sha2::Digest::update(h, bytes),
        }
    }

    fn matches(self) -> bool {
        match self {
            Checksum::Sha1(h, expected) => h.finalize().as_slice() == expected.as_slice(),
            Checksum::Sha256(h, expected) => {
                sha2::Digest::finalize(h).as_slice() == expected.as_slice()
            }
        }
    }
}

/// HTTP/1 status lines name their status; hyper knows none for tus's own 460.
pub async fn reason_phrase(mut response: Response) -> Response {
    if response.status().as_u16() == 460 {
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Checksum Mismatch"));
    }
    response
}

fn checksum_mismatch() -> ApiError {
    ApiError::new(
        StatusCode::from_u16(460).expect("valid status"),
        "checksum_mismatch",
        "the body does not match Upload-Checksum; nothing of it was kept",
    )
}

fn lock_lost() -> ApiError {
    tus_error(
        StatusCode::CONFLICT,
        "upload_lock_lost",
        "the upload was terminated or taken over while this request ran",
    )
}

fn locked() -> ApiError {
    tus_error(
        StatusCode::LOCKED,
        "upload_locked",
        "another request is writing to this upload; retry after it ends",
    )
}

/// Takes the upload's lock, writes the body at its offset and checkpoints; completes the
/// upload when the last byte is in. Returns the upload as saved.
async fn patch_locked(
    state: &AppState,
    id: &UploadId,
    offset: u64,
    headers: &HeaderMap,
    body: Body,
) -> Result<UploadRecord, ApiError> {
    let checksum = Checksum::parse(headers)?;
    let declared = number(headers, &header::CONTENT_LENGTH)?;
    // One catalog round trip before the body flows (a client waiting on `Expect:
    // 100-continue` waits for exactly this): the lock, and the upload as it stands.
    let Some((mut lock, mut upload)) = Lock::take(state, id).await? else {
        return not_writable(state, id, offset, declared).await;
    };
    if upload.offset != offset {
        lock.release().await;
        return Err(offset_mismatch(&upload));
    }
    let remaining = upload.length - upload.offset;
    if declared == Some(0) && remaining > 0 {
        // Nothing to write (a client probing, or repeating an empty request).
        lock.release().await;
        return Ok(upload);
    }
    if declared.is_some_and(|n| n > remaining) {
        lock.release().await;
        return Err(ApiError::payload_too_large(remaining)
            .with_header(UPLOAD_OFFSET.clone(), value(&upload.offset.to_string())));
    }
    let file_id = file_of(&upload)?;
    let key = ObjectKey::file(&file_id);

    if upload.offset == upload.length {
        // A completion interrupted after its last checkpoint: finish it now.
        return finish_existing(state, upload, &key, lock).await;
    }
    let mut writer = state
        .storage
        .resume(
            &key,
            upload.id.as_str(),
            &upload.data.storage,
            upload.offset,
        )
        .await?;
    let limits = BodyLimits {
        max_bytes: remaining,
        idle: state.settings.body_idle_timeout,
        min_rate: state.settings.min_upload_rate,
    };
    let mut stream = limited(body, limits);
    let mut checksum = checksum;
    let mut failure: Option<ApiError> = None;
    let mut last_checkpoint = Instant::now();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                failure = Some(match StorageError::from_io(e) {
                    StorageError::Body(BodyError::TooLarge(_)) => {
                        ApiError::payload_too_large(remaining)
                    }
                    other => other.into(),
                });
                break;
            }
        };
        if let Some(c) = &mut checksum {
            c.update(&chunk);
        }
        received += chunk.len() as u64;
        writer.write(chunk).await?;
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            // A checksummed body counts only once verified whole: just keep the lock.
            let kept = if checksum.is_some() {
                lock.renew().await?
            } else {
                checkpoint(state, &mut upload, writer.as_mut(), &lock, true).await?
            };
            if !kept {
                return Err(lock_lost());
            }
        }
    }
    let keep = match (&failure, checksum) {
        // Too large: nothing more of this request counts, as with a bad checksum.
        (Some(e), _) if e.status == StatusCode::PAYLOAD_TOO_LARGE => false,
        (Some(_), Some(_)) => false,
        (None, Some(c)) => {
            if !c.matches() {
                lock.release().await;
                return Err(checksum_mismatch());
            }
            true
        }
        (_, None) => true,
    };
    if !keep {
        lock.release().await;
        return Err(failure.expect("only failures are not kept"));
    }
    // The lock stays only when the upload is about to be completed under it.
    let reached_end = failure.is_none() && received == remaining;
    if !checkpoint(state, &mut upload, writer.as_mut(), &lock, reached_end).await? {
        return Err(lock_lost());
    }
    if !reached_end {
        lock.held = false;
        // A cut connection keeps what arrived; the client resumes from the saved offset.
        return match failure {
            Some(e) => Err(e),
            None => Ok(upload),
        };
    }
    let outcome = writer.finish().await?;
    complete_upload(state, upload, outcome, lock).await
}

/// Makes the written bytes durable and saves the offset under the lock (kept when `keep`).
async fn checkpoint(
    state: &AppState,
    upload: &mut UploadRecord,
    writer: &mut dyn Resumable,
    lock: &Lock,
    keep: bool,
) -> Result<bool, ApiError> {
    let (offset, storage_state) = writer.checkpoint().await?;
    let mut next = upload.clone();
    next.offset = offset;
    next.data.storage = storage_state;
    let until = keep.then(|| catalog::now() + LOCK_TTL);
    if !state
        .catalog
        .save_upload(&next, &lock.token, until, writer.durable_commits())
        .await?
    {
        return Ok(false);
    }
    writer.committed().await;
    *upload = next;
    Ok(true)
}

/// The last byte is in and at the file's key: the file row, the media if asked, and the
/// upload marked completed, in that order. Each step can be redone if a crash interrupts.
async fn complete_upload(
    state: &AppState,
    mut upload: UploadRecord,
    outcome: PutOutcome,
    mut lock: Lock,
) -> Result<UploadRecord, ApiError> {
    if outcome.size != upload.length {
        return Err(ApiError::internal(format!(
            "the stored upload holds {} bytes, not {}",
            outcome.size, upload.length
        )));
    }
    let file_id = file_of(&upload)?;
    let filename = upload
        .data
        .filename
        .as_deref()
        .and_then(disposition::sanitize_filename);
    let record = FileRecord {
        content_type: content_type_for(upload.data.content_type.as_deref(), filename.as_deref()),
        filename,
        id: file_id,
        size: outcome.size,
        sha256: outcome.sha256.clone(),
        access: upload.data.access,
        created_at: catalog::now(),
    };
    match state.catalog.insert_file(&record).await {
        Ok(()) | Err(catalog::CatalogError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if upload.data.transcode && upload.data.media_id.is_none() {
        let media = super::media::start_for_upload(state, &record).await?;
        upload.data.media_id = Some(media.id.to_string());
    }
    upload.state = UploadState::Completed;
    if !state
        .catalog
        .save_upload(&upload, &lock.token, None, true)
        .await?
    {
        return Err(lock_lost());
    }
    lock.held = false;
    tracing::info!(upload = %upload.id, file = %record.id, size = record.size, "upload completed");
    Ok(upload)
}

/// Finishes an upload whose bytes were all saved but whose completion did not end: the
/// object is already at its key (then it is hashed again), or the storage finishes now.
async fn finish_existing(
    state: &AppState,
    upload: UploadRecord,
    key: &ObjectKey,
    lock: Lock,
) -> Result<UploadRecord, ApiError> {
    let outcome = match state.storage.head(key).await {
        Ok(_) => {
            let mut hasher = crate::storage::Hashing::new(state.storage.get(key, None).await?);
            while let Some(chunk) = hasher.next().await {
                chunk.map_err(|e| ApiError::from(StorageError::from_io(e)))?;
            }
            hasher.finish()
        }
        Err(StorageError::NotFound) => {
            let writer = state
                .storage
                .resume(key, upload.id.as_str(), &upload.data.storage, upload.offset)
                .await?;
            writer.finish().await?
        }
        Err(e) => return Err(e.into()),
    };
    complete_upload(state, upload, outcome, lock).await
}

/// An empty upload is complete at creation.
async fn complete_empty(state: &AppState, upload: UploadRecord) -> Result<UploadRecord, ApiError> {
    let file_id = file_of(&upload)?;
    let (lock, upload) = Lock::take(state, &upload.id).await?.ok_or_else(locked)?;
    let empty: crate::storage::ByteStream = Box::pin(futures::stream::empty());
    let outcome = state.storage.put(&ObjectKey::file(&file_id), empty).await?;
    complete_upload(state, upload, outcome, lock).await
}

fn file_of(upload: &UploadRecord) -> Result<FileId, ApiError> {
    FileId::parse(&upload.data.file_id)
        .ok_or_else(|| ApiError::internal("an upload names an invalid file id"))
}

/// A PATCH's lock on its upload, released when the request ends without saving.
struct Lock {
    state: AppState,
    token: String,
    id: UploadId,
    held: bool,
}

impl Lock {
    /// Takes an active upload's lock and returns it with the upload as it stands; None when
    /// the upload is not active or another request holds it.
    async fn take(
        state: &AppState,
        id: &UploadId,
    ) -> Result<Option<(Self, UploadRecord)>, ApiError> {
        let token = crate::ids::random_secret(16);
        let now = catalog::now();
        let Some(upload) = state
            .catalog
            .lock_upload(id, &token, now + LOCK_TTL, now)
            .await?
        else {
            return Ok(None);
        };
        let lock = Self {
            state: state.clone(),
            token,
            id: id.clone(),
            held: true,
        };
        Ok(Some((lock, upload)))
    }

    /// Extends the lock; false when it was lost (the upload ended or was taken over).
    async fn renew(&self) -> Result<bool, ApiError> {
        let now = catalog::now();
        Ok(extend(&self.state, &self.id, &self.token, now + LOCK_TTL).await?)
    }

    /// Gives the lock up, leaving the upload as it was last saved.
    async fn release(&mut self) {
        if self.held {
            self.held = false;
            if let Err(e) = extend(&self.state, &self.id, &self.token, catalog::now()).await {
                tracing::warn!(upload = %self.id, error = %e, "could not release an upload's lock; it expires");
            }
        }
    }
}

/// Moves the lock's expiry to `until`; an expiry of now releases it (the next request finds
/// it expired), with no read and no write of the upload itself.
async fn extend(
    state: &AppState,
    id: &UploadId,
    token: &str,
    until: OffsetDateTime,
) -> Result<bool, catalog::CatalogError> {
    Ok(state
        .catalog
        .lock_upload(id, token, until, catalog::now())
        .await?
        .is_some())
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        // An error path that did not release: give the lock up in the background rather
        // than make the next request wait for it to expire.
        let state = self.state.clone();
        let token = std::mem::take(&mut self.token);
        let id = self.id.clone();
        tokio::spawn(async move {
            let _ = extend(&state, &id, &token, catalog::now()).await;
        });
    }
}

/// Expired uploads' bytes go; their ids answer 410. Run by the sweeper.
pub async fn expire_uploads(
    storage: &crate::storage::DynStorage,
    catalog: &crate::catalog::DynCatalog,
) -> anyhow::Result<u64> {
    let mut expired = 0;
    loop {
        let batch = catalog.expired_uploads(catalog::now(), 100).await?;
        if batch.is_empty() {
            return Ok(expired);
        }
        for upload in batch {
            if catalog.end_upload(&upload.id, UploadState::Expired).await? {
                abandon_bytes(storage, &upload).await?;
                expired += 1;
                tracing::info!(upload = %upload.id, "expired upload removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parses_pairs_and_bare_keys() {
        let parsed =
            parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
                .unwrap();
        assert_eq!(
            parsed,
            vec![
                (
                    "filename".to_string(),
                    Some("world_domination_plan.pdf".to_string())
                ),
                ("is_confidential".to_string(), None)
            ]
        );
        assert!(parse_metadata("").unwrap().is_empty());
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata("a YQ==,a YQ==").is_err());
        assert!(parse_metadata("a YQ== extra").is_err());
    }

    #[test]
    fn version_must_be_exactly_ours() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            check_version(&headers).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        headers.insert(&TUS_RESUMABLE, HeaderValue::from_static("0.2.2"));
        let err = check_version(&headers).unwrap_err();
        assert_eq!(err.status, StatusCode::PRECONDITION_FAILED);
        assert!(err
            .headers
            .iter()
            .any(|(n, v)| n == TUS_VERSION_H && v == TUS_VERSION));
        headers.insert(&TUS_RESUMABLE, HeaderValue::from_static("1.0.0"));
        assert!(check_version(&headers).is_ok());
    }

    #[test]
    fn checksums_verify_sha1_and_sha256() {
        let mut headers = HeaderMap::new();
        headers.insert(
            &UPLOAD_CHECKSUM,
            HeaderValue::from_static("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        );
        let mut c = Checksum::parse(&headers).unwrap().unwrap();
        c.update(b"hello world");
        assert!(c.matches());
        let mut c = Checksum::parse(&headers).unwrap().unwrap();
        c.update(b"hello worle");
        assert!(!c.matches());
        headers.insert(&UPLOAD_CHECKSUM, HeaderValue::from_static("md5 AAAA"));
        assert!(Checksum::parse(&headers).is_err());
        headers.insert(
            &UPLOAD_CHECKSUM,
            HeaderValue::from_static("sha256 uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
        );
        let mut c = Checksum::parse(&headers).unwrap().unwrap();
        c.update(b"hello world");
        assert!(c.matches());
    }
}
