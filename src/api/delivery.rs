//! `GET`/`HEAD /files/{id}` and `/files/{id}/{any-name}`: find the record, check access, hand
//! over to the delivery module.

use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use http::{HeaderMap, Method};

use super::{extract::FileIdPath, AppState};
use crate::{
    catalog::Access,
    delivery::{self, signature, Source},
    error::ApiError,
    storage::ObjectKey,
};

pub async fn file(
    State(state): State<AppState>,
    FileIdPath(id): FileIdPath,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let now = signature::unix_now();
    // A signature is checked before any lookup, so forged URLs cost no catalog query.
    let signed = if signature::Signer::looks_signed(&query) {
        Some(
            state
                .signer
                .verify(&delivery::file_scope(&id), &query, now)
                .map_err(delivery::signature_refused)?,
        )
    } else {
        None
    };
    let record = state
        .file_record(&id)
        .await?
        .ok_or_else(delivery::not_found)?;
    if record.access == Access::Private && signed.is_none() {
        return Err(delivery::signature_refused(
            signature::SignatureError::Missing,
        ));
    }
    let representation = delivery::file_representation(&record, signed.as_ref(), now)?;
    let source = Source {
        storage: state.storage.clone(),
        key: ObjectKey::file(&id),
    };
    match delivery::respond(&method, &headers, &representation, source).await {
        Err(e) if e.status == http::StatusCode::NOT_FOUND => {
            // The catalog lists it but the bytes are gone: an inconsistency to look into.
            tracing::error!(file = %id, "catalog row without bytes");
            Err(delivery::not_found())
        }
        other => other,
    }
}
