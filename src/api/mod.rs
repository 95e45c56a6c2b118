//! HTTP routes. Handlers are thin: extractors parse and validate, `auth` checks scopes once per
//! route, `delivery` owns HTTP semantics, storage and catalog own bytes and rows.

mod auth;
mod body;
mod delivery;
mod direct_uploads;
mod edge;
mod extract;
mod files;
mod jobs;
mod media;
mod ops;
mod ratelimit;
mod uploads;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    middleware,
    routing::{get, post},
    Router,
};
use http::{header, HeaderValue, Method};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
};

pub use self::auth::{hash_token, new_token};
pub use self::ratelimit::{Limit, RateLimiter};
pub use self::uploads::expire_uploads;
use crate::{
    catalog::{DynCatalog, FileRecord, MediaFile, MediaRecord, Scope},
    delivery::signature::Signer,
    error::ApiError,
    ids::{FileId, MediaId},
    storage::DynStorage,
};

/// Settings the handlers need, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub public_url: String,
    pub max_upload_bytes: u64,
    pub body_idle_timeout: Duration,
    pub min_upload_rate: u64,
    /// SHA-256 of REELAY_ADMIN_KEY; the key itself is not kept.
    pub admin_key_sha256: Option<[u8; 32]>,
    pub api_cors_origins: Vec<String>,
    pub delivery_cors_origins: Vec<String>,
    pub job_max_attempts: u32,
    pub rate_limit_api_key: Limit,
    pub rate_limit_api_ip: Limit,
    pub rate_limit_delivery_ip: Limit,
    pub trust_forwarded_for: bool,
    /// How long a resumable upload lives (`Upload-Expires`).
    pub upload_lifetime: Duration,
}

/// A ready media and its files by path, as the delivery path caches them.
#[derive(Debug)]
pub struct ReadyMedia {
    pub record: MediaRecord,
    pub files: std::collections::HashMap<String, MediaFile>,
}

/// Shared by every handler; one `Arc`, so the per-request clone that axum's `State` makes is a
/// single reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub storage: DynStorage,
    pub catalog: DynCatalog,
    pub signer: Arc<Signer>,
    pub settings: Arc<Settings>,
    pub metrics: PrometheusHandle,
    /// File records for the delivery hot path. Content under an id never changes, so an entry
    /// is only ever invalidated by a delete.
    pub file_cache: moka::future::Cache<FileId, Arc<FileRecord>>,
    /// Ready media for the delivery hot path; ready output never changes, a delete invalidates.
    pub media_cache: moka::future::Cache<MediaId, Arc<ReadyMedia>>,
    /// Wakes this process's idle workers when a job is queued here.
    pub job_wakeup: Arc<tokio::sync::Notify>,
    pub rate_limiter: Arc<RateLimiter>,
    pub purger: crate::purge::Purger,
}

impl AppState {
    /// The file's record from the in-process cache, or from the catalog on a miss. Misses are
    /// not cached, so a file is served as soon as its row exists.
    pub async fn file_record(&self, id: &FileId) -> Result<Option<Arc<FileRecord>>, ApiError> {
        if let Some(record) = self.file_cache.get(id).await {
            return Ok(Some(record));
        }
        let Some(record) = self.catalog.get_file(id).await? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.file_cache.insert(id.clone(), record.clone()).await;
        Ok(Some(record))
    }
}

/// JSON request bodies (signed-URL requests, ...) are small.
const JSON_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let require = |scope| middleware::from_fn_with_state((state.clone(), scope), auth::require);
    let rate_limit = |group, per_key, per_ip| {
        middleware::from_fn_with_state(
            ratelimit::RateLimitState {
                limiter: state.rate_limiter.clone(),
                limits: ratelimit::GroupLimits {
                    group,
                    per_key,
                    per_ip,
                },
                trust_forwarded_for: state.settings.trust_forwarded_for,
            },
            ratelimit::limit,
        )
    };
    let off = Limit {
        per_second: 0.0,
        burst: 0,
    };

    // OPTIONS is routed so that the CORS layer sees preflights, as for delivery below.
    let api = Router::new()
        .route(
            "/v1/files",
            post(files::create)
                .layer(DefaultBodyLimit::disable())
                .route_layer(require(Scope::FilesWrite))
                .merge(get(files::list).route_layer(require(Scope::FilesRead)))
                // Outside the auth layers: a CORS preflight carries no credentials.
                .options(ops::no_content),
        )
        .route(
            "/v1/files/{id}",
            get(files::show)
                .route_layer(require(Scope::FilesRead))
                .merge(axum::routing::delete(files::remove).route_layer(require(Scope::FilesWrite)))
                .options(ops::no_content),
        )
        .route(
            "/v1/files/{id}/signed-url",
            post(files::signed_url)
                .route_layer(require(Scope::FilesRead))
                .options(ops::no_content),
        )
        .route(
            "/v1/media",
            post(media::create)
                .route_layer(require(Scope::MediaWrite))
                .merge(get(media::list).route_layer(require(Scope::MediaRead)))
                .options(ops::no_content),
        )
        .route(
            "/v1/media/{id}",
            get(media::show)
                .route_layer(require(Scope::MediaRead))
                .merge(axum::routing::delete(media::remove).route_layer(require(Scope::MediaWrite)))
                .options(ops::no_content),
        )
        .route(
            "/v1/media/{id}/signed-url",
            post(media::signed_url)
                .route_layer(require(Scope::MediaRead))
                .options(ops::no_content),
        )
        .route(
            "/v1/media/{id}/retry",
            post(media::retry)
                .route_layer(require(Scope::MediaWrite))
                .options(ops::no_content),
        )
        .route(
            "/v1/direct-uploads",
            post(direct_uploads::create)
                .route_layer(require(Scope::FilesWrite))
                .options(ops::no_content),
        )
        .route(
            "/v1/direct-uploads/{id}",
            get(direct_uploads::show)
                .route_layer(require(Scope::FilesRead))
                .merge(
                    axum::routing::delete(direct_uploads::cancel)
                        .route_layer(require(Scope::FilesWrite)),
                )
                .options(ops::no_content),
        )
        .route(
            "/v1/jobs",
            get(jobs::list)
                .route_layer(require(Scope::Admin))
                .options(ops::no_content),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(rate_limit(
            "api",
            state.settings.rate_limit_api_key,
            state.settings.rate_limit_api_ip,
        ))
        .layer(api_cors(&state.settings.api_cors_origins));

    // tus: each handler authorizes itself (an API key or a direct-upload token creates; an
    // upload's URL is its own capability), and browsers on any origin may call it.
    let uploads = Router::new()
        .route(
            "/v1/uploads",
            post(uploads::create).options(ops::no_content),
        )
        .route(
            "/v1/uploads/{id}",
            axum::routing::head(uploads::head)
                .patch(uploads::patch)
                .delete(uploads::terminate)
                .options(ops::no_content),
        )
        .layer(DefaultBodyLimit::disable())
        .layer(SetResponseHeaderLayer::overriding(
            uploads::TUS_RESUMABLE.clone(),
            HeaderValue::from_static(uploads::TUS_VERSION),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(rate_limit(
            "api",
            state.settings.rate_limit_api_key,
            state.settings.rate_limit_api_ip,
        ))
        .layer(middleware::map_response(uploads::reason_phrase))
        .layer(upload_cors())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            uploads::discovery,
        ));

    let delivery = Router::new()
        // OPTIONS is routed so that the CORS layer sees preflights (axum layers wrap handlers).
        .route("/files/{id}", get(delivery::file).options(ops::no_content))
        .route(
            "/files/{id}/{name}",
            get(delivery::file).options(ops::no_content),
        )
        .route(
            "/media/{id}/{*path}",
            get(delivery::media).options(ops::no_content),
        )
        .layer(rate_limit(
            "delivery",
            off,
            state.settings.rate_limit_delivery_ip,
        ))
        .layer(delivery_cors(&state.settings.delivery_cors_origins));

    // Asked by an edge, not a viewer: not rate limited per IP, since every check comes from the
    // edge's few addresses.
    let edge = Router::new()
        .route("/edge/check/files/{id}", get(edge::file))
        .route("/edge/check/files/{id}/{name}", get(edge::file))
        .route("/edge/check/media/{id}/{*path}", get(edge::media));

    let ops = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));

    Router::new()
        .merge(api)
        .merge(uploads)
        .merge(delivery)
        .merge(edge)
        .merge(ops)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

fn origins(list: &[String]) -> Vec<HeaderValue> {
    list.iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect()
}

/// Delivery answers cross-origin reads so players and web apps on another origin can fetch.
fn delivery_cors(allowed: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([
            header::RANGE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
        ])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ETAG,
            header::ACCEPT_RANGES,
            header::CONTENT_DISPOSITION,
            header::LAST_MODIFIED,
        ])
        .max_age(Duration::from_secs(86400));
    if allowed.iter().any(|o| o.trim() == "*") {
        // One cached copy serves every origin: no Vary: Origin to split an edge's cache.
        layer.allow_origin(AllowOrigin::any()).vary([])
    } else {
        layer.allow_origin(AllowOrigin::list(origins(allowed)))
    }
}

/// The management API is called from browsers only on the configured origins.
fn api_cors(allowed: &[String]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins(allowed)))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// Browser uploads come from the apps' own pages, on any origin: an upload needs an API key
/// or a direct-upload token (which can pin its origin), never a cookie.
fn upload_cors() -> CorsLayer {
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| http::HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    let mut allow = names(&uploads::REQUEST_HEADERS);
    allow.extend([header::AUTHORIZATION, header::CONTENT_TYPE]);
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([
            Method::POST,
            Method::HEAD,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(allow)
        .expose_headers(names(&uploads::RESPONSE_HEADERS))
        .max_age(Duration::from_secs(86400))
}
