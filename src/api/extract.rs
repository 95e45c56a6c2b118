//! Extractors whose rejections are our JSON errors, and the id check every path goes through.

use std::collections::HashMap;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, ids::FileId};

/// The `{id}` of a path, checked against the file id grammar before any lookup.
pub struct FileIdPath(pub FileId);

impl<S: Send + Sync> FromRequestParts<S> for FileIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid_id())?;
        params
            .get("id")
            .and_then(|id| FileId::parse(id))
            .map(FileIdPath)
            .ok_or_else(invalid_id)
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
