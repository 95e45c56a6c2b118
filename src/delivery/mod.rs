//! HTTP semantics for every download path (files now, media later): ranges, preconditions,
//! Content-Disposition, cache policy and signatures as small pure functions, and one response
//! builder that puts them together. Handlers only look up what to serve and call `respond`.

pub mod cache;
pub mod conditional;
pub mod disposition;
pub mod playlist;
pub mod range;
mod response;
pub mod signature;

pub use response::{respond, Representation, Source};

use std::time::SystemTime;

use http::StatusCode;

use self::{
    cache::CachePolicy,
    disposition::{content_disposition, default_disposition, DispositionType},
    signature::SignedParams,
};
use crate::{
    catalog::{FileRecord, MediaFile, MediaRecord},
    error::ApiError,
    ids::{FileId, MediaId},
};

/// What a file signature covers: the file's path, whatever name follows it.
pub fn file_scope(id: &FileId) -> String {
    format!("/files/{id}")
}

/// How a stored file is served; `signed` are the parameters of a verified signature, if any.
/// Response-shaping parameters count only when signed.
pub fn file_representation(
    record: &FileRecord,
    signed: Option<&SignedParams>,
    now: u64,
) -> Result<Representation, ApiError> {
    let param = |name: &str| signed.and_then(|s| s.params.get(name)).map(String::as_str);
    let kind = match param("disposition") {
        Some(value) => DispositionType::parse(value).ok_or_else(|| {
            ApiError::bad_request("disposition must be \"inline\" or \"attachment\"")
        })?,
        None => default_disposition(&record.content_type),
    };
    let filename = param("filename")
        .or(record.filename.as_deref())
        .unwrap_or(record.id.as_str());
    let cache = match signed {
        Some(s) => CachePolicy::Signed {
            remaining: s.expires_at.saturating_sub(now),
        },
        None => CachePolicy::Immutable,
    };
    Ok(Representation {
        size: record.size,
        etag: conditional::strong_etag_from_sha256(&record.sha256),
        last_modified: SystemTime::from(record.created_at),
        content_type: record.content_type.clone(),
        content_disposition: Some(content_disposition(kind, filename)),
        cache,
        surrogate_key: record.id.to_string(),
    })
}

/// What a media signature covers: every path under the media, so one token plays it all.
pub fn media_scope(id: &MediaId) -> String {
    format!("/media/{id}/")
}

/// How one file of a ready media is served. Media files are shown inline (players fetch
/// them); `sha256` is the served body's, which differs from the stored one when a playlist
/// was rewritten to carry a viewer's token.
pub fn media_representation(
    media: &MediaRecord,
    file: &MediaFile,
    size: u64,
    sha256: &str,
    signed: Option<&SignedParams>,
    now: u64,
) -> Representation {
    let cache = match signed {
        Some(s) => CachePolicy::Signed {
            remaining: s.expires_at.saturating_sub(now),
        },
        None => CachePolicy::Immutable,
    };
    Representation {
        size,
        etag: conditional::strong_etag_from_sha256(sha256),
        last_modified: SystemTime::from(media.updated_at),
        content_type: file.content_type.clone(),
        content_disposition: None,
        cache,
        surrogate_key: media.id.to_string(),
    }
}

/// A media that exists but is not ready yet: a player may poll, so a miss lives 2 s at most.
pub fn media_not_ready() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "media_not_ready",
        "this media is not ready yet",
    )
    .with_header(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=2"),
    )
}

/// A delivery miss: cacheable for a few seconds, since the id may have been deleted.
pub fn not_found() -> ApiError {
    ApiError::not_found().with_header(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(cache::NOT_FOUND),
    )
}

pub fn signature_refused(e: signature::SignatureError) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
}
