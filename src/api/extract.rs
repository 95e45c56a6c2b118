//! Extractors whose rejections are our JSON errors, and the id check every path goes through.

use std::collections::HashMap;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::{
    error::ApiError,
    ids::{DirectUploadId, FileId, Id, MediaId},
};

/// The `{id}` of a path, checked against the file id grammar before any lookup.
pub struct FileIdPath(pub FileId);

/// The `{id}` of a path, checked against the media id grammar before any lookup.
pub struct MediaIdPath(pub MediaId);

async fn path_id<I: Id, S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<I, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|_| invalid_id())?;
    params
        .get("id")
        .and_then(|id| I::parse(id))
        .ok_or_else(invalid_id)
}

impl<S: Send + Sync> FromRequestParts<S> for FileIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state).await.map(FileIdPath)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MediaIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state).await.map(MediaIdPath)
    }
}

/// The cosmetic `{name}` of `/files/{id}/{name}`, when there is one. It names nothing, but an
/// edge that normalizes paths may read `/files/A/x%2f..%2f..%2fB` as file B's URL, so a name
/// that decodes to a path (a `/`, or a dot segment) is refused (404) rather than served as A.
pub struct CosmeticName;

impl<S: Send + Sync> FromRequestParts<S> for CosmeticName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        match params.get("name").map(String::as_str) {
            Some(name) if name.contains('/') || name == "." || name == ".." => {
                Err(ApiError::not_found())
            }
            _ => Ok(CosmeticName),
        }
    }
}

/// The `{id}` of a path, checked against the direct upload id grammar before any lookup.
pub struct DirectUploadIdPath(pub DirectUploadId);

impl<S: Send + Sync> FromRequestParts<S> for DirectUploadIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state).await.map(DirectUploadIdPath)
    }
}

/// The `{*path}` under a media, made of safe segments (it is then looked up in the catalog's
/// list of the media's files, never used as a path as such).
pub struct MediaPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for MediaPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        params
            .get("path")
            .filter(|p| p.len() <= 256 && crate::storage::is_safe_path(p))
            .map(|p| MediaPath(p.clone()))
            .ok_or_else(crate::delivery::not_found)
    }
}

fn invalid_id() -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "invalid_id",
        "the id in the path is not a valid id",
    )
}

/// `axum::extract::Query` with JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| {
                ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "invalid_query",
                    rejection.body_text(),
                )
            })
    }
}
