//! Bearer API keys. A key is `rly.<key id>.<secret>`; only its SHA-256 is stored, and every
//! comparison is constant-time. Each route names the one scope it needs (see `router`).

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::header;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::{
    catalog::Scope,
    error::ApiError,
    ids::{random_secret, KeyId},
};

const TOKEN_PREFIX: &str = "rly.";

/// A new key id and the bearer token to hand out once.
pub fn new_token() -> (KeyId, String) {
    let id = KeyId::generate();
    let token = format!("{TOKEN_PREFIX}{id}.{}", random_secret(32));
    (id, token)
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What the caller may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scopes: Vec<Scope>,
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let presented = hash_token(token);
    if let Some(admin) = &state.settings.admin_key_sha256 {
        if bool::from(admin.ct_eq(&presented)) {
            return Ok(Caller {
                scopes: vec![Scope::Admin],
            });
        }
    }
    let id = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(id, _)| KeyId::parse(id))
        .ok_or_else(ApiError::unauthorized)?;
    let record = state
        .catalog
        .get_key(&id)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or_else(ApiError::unauthorized)?;
    let stored = hex::decode(&record.token_sha256).map_err(ApiError::internal)?;
    if !bool::from(stored.as_slice().ct_eq(presented.as_slice())) {
        return Err(ApiError::unauthorized());
    }
    Ok(Caller {
        scopes: record.scopes,
    })
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The caller an `Authorization` header names: None without one, 401 for a bad one.
pub async fn caller(
    state: &AppState,
    headers: &http::HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    authenticate(state, token).await.map(Some)
}

/// Route middleware: 401 without a valid key, 403 without `scope`.
pub async fn require(
    State((state, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(&request).ok_or_else(ApiError::unauthorized)?;
    let caller = authenticate(&state, token).await?;
    if !caller.may(scope) {
        return Err(ApiError::forbidden(format!(
            "this key lacks the {} scope",
            scope.as_str()
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
