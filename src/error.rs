//! The one place where errors become HTTP: `{ "error": { "code", "message" } }` with the right
//! status. Client mistakes carry a message meant for the client; our own failures are logged
//! with their cause and answered with an opaque message.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderName, HeaderValue, StatusCode};

use crate::{catalog::CatalogError, storage::StorageError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable code such as `not_found` or `range_not_satisfiable`.
    pub code: &'static str,
    pub message: String,
    /// Extra response headers, such as `Content-Range` on a 416 (a Vec keeps the error small).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what} is unavailable; try again shortly"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// Our fault: the cause goes to the log, the client gets no detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(crate::delivery::cache::ERROR_CACHE_CONTROL),
        );
        // Set after the default so that an error may say how long it may be cached.
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::not_found(),
            StorageError::Body(body) => body.into(),
            StorageError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable; try again shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            }
            StorageError::Full => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "the storage backend is out of space",
            ),
            StorageError::Other(cause) => ApiError::internal(format!("storage: {cause:#}")),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "catalog unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "catalog_unavailable",
                    "the catalog is unavailable; try again shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            }
            CatalogError::Conflict(what) => ApiError::new(StatusCode::CONFLICT, "conflict", what),
            CatalogError::Other(cause) => ApiError::internal(format!("catalog: {cause:#}")),
        }
    }
}

/// Why a request body could not be read to the end. Carried inside `std::io::Error` while the
/// body flows through storage, and turned back into a status here.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds {0} bytes")]
    TooLarge(u64),
    #[error("body stalled for longer than the idle timeout")]
    Idle,
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("client disconnected: {0}")]
    Disconnected(String),
}

impl BodyError {
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// Finds a `BodyError` inside an io::Error produced by a body stream.
    pub fn from_io(e: &std::io::Error) -> Option<&BodyError> {
        e.get_ref()?.downcast_ref::<BodyError>()
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => ApiError::payload_too_large(limit),
            BodyError::Idle => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body stalled",
            ),
            BodyError::Malformed(m) => ApiError::bad_request(m),
            BodyError::Disconnected(m) => ApiError::bad_request(format!("body not received: {m}")),
        }
    }
}
