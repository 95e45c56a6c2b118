//! Cache policy for browsers and CDNs. Content under an id never changes, so what is public is
//! cacheable forever; what is signed is private to browsers and cached by an edge only as
//! long as the signature lives (RFC 9213 `CDN-Cache-Control`).

use http::{HeaderMap, HeaderName, HeaderValue};

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// API responses and errors that must never be stored.
pub const ERROR_CACHE_CONTROL: &str = "no-store";
/// A delivery 404: an id may be deleted, so a miss is remembered only briefly.
pub const NOT_FOUND: &str = "public, max-age=5";

pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Public, never-changing content.
    Immutable,
    /// Served under a signature that lives `remaining` more seconds.
    Signed { remaining: u64 },
}

impl CachePolicy {
    pub fn apply(self, headers: &mut HeaderMap) {
        match self {
            CachePolicy::Immutable => {
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static(IMMUTABLE),
                );
            }
            CachePolicy::Signed { remaining } => {
                let browser = format!("private, max-age={remaining}");
                // An edge keyed on the full URL stops serving the copy when the signature
                // expires; an edge that checks signatures itself may override this.
                let edge = format!("public, max-age={remaining}");
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_str(&browser).expect("ascii"),
                );
                headers.insert(
                    CDN_CACHE_CONTROL.clone(),
                    HeaderValue::from_str(&edge).expect("ascii"),
                );
            }
        }
    }
}
