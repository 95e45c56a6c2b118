//! `GET`/`HEAD /files/{id}` and `/files/{id}/{any-name}`: find the record, check access, hand
//! over to the delivery module.

use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use http::{HeaderMap, Method};

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use super::{
    extract::{CosmeticName, FileIdPath, MediaIdPath, MediaPath},
    AppState, ReadyMedia,
};
use crate::{
    catalog::{Access, FileRecord, MediaState},
    delivery::{self, playlist, signature, Source},
    error::ApiError,
    ids::{FileId, MediaId},
    storage::ObjectKey,
};

/// A request that carries signature parameters must carry a valid signature for `scope`,
/// checked before any lookup, so forged URLs cost no catalog query.
fn verify_if_signed(
    state: &AppState,
    scope: &str,
    query: &str,
    now: u64,
) -> Result<Option<signature::SignedParams>, ApiError> {
    if !signature::Signer::looks_signed(query) {
        return Ok(None);
    }
    state
        .signer
        .verify(scope, query, now)
        .map(Some)
        .map_err(delivery::signature_refused)
}

/// The access decision of a file request, shared by delivery and the edge check: a signature,
/// if any, is valid; the file exists; a private file came with a signature.
pub(super) async fn authorize_file(
    state: &AppState,
    id: &FileId,
    query: &str,
    now: u64,
) -> Result<(Arc<FileRecord>, Option<signature::SignedParams>), ApiError> {
    let signed = verify_if_signed(state, &delivery::file_scope(id), query, now)?;
    let record = state
        .file_record(id)
        .await?
        .ok_or_else(delivery::not_found)?;
    refuse_unsigned_private(record.access, &signed)?;
    Ok((record, signed))
}

/// The access decision of a media request, as for files; the media may not be ready yet
/// (never `Lookup::Missing`: that is a 404).
pub(super) async fn authorize_media(
    state: &AppState,
    id: &MediaId,
    query: &str,
    now: u64,
) -> Result<(Lookup, Option<signature::SignedParams>), ApiError> {
    let signed = verify_if_signed(state, &delivery::media_scope(id), query, now)?;
    let lookup = state.ready_media(id).await?;
    let access = match &lookup {
        Lookup::Ready(ready) => ready.record.access,
        Lookup::NotReady(access, _) => *access,
        Lookup::Missing => return Err(delivery::not_found()),
    };
    refuse_unsigned_private(access, &signed)?;
    Ok((lookup, signed))
}

fn refuse_unsigned_private(
    access: Access,
    signed: &Option<signature::SignedParams>,
) -> Result<(), ApiError> {
    if access == Access::Private && signed.is_none() {
        return Err(delivery::signature_refused(
            signature::SignatureError::Missing,
        ));
    }
    Ok(())
}

pub async fn file(
    State(state): State<AppState>,
    FileIdPath(id): FileIdPath,
    _name: CosmeticName,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let now = signature::unix_now();
    let (record, signed) = authorize_file(&state, &id, &query, now).await?;
    let representation = delivery::file_representation(&record, signed.as_ref(), now)?;
    let source = Source::storage(state.storage.clone(), ObjectKey::file(&id));
    delivery::respond(&method, &headers, &representation, source).await
}

/// Manifests are small; a rewritten one is built in memory, within this bound.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// `GET`/`HEAD /media/{id}/{path}`: playlists, manifests, init and media segments, poster.
pub async fn media(
    State(state): State<AppState>,
    MediaIdPath(id): MediaIdPath,
    MediaPath(path): MediaPath,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let now = signature::unix_now();
    let (lookup, signed) = authorize_media(&state, &id, &query, now).await?;
    let ready: Arc<ReadyMedia> = match lookup {
        Lookup::Ready(ready) => ready,
        // A failed media will never be ready: no reason for a player to keep polling.
        Lookup::NotReady(_, MediaState::Failed) | Lookup::Missing => {
            return Err(delivery::not_found())
        }
        Lookup::NotReady(..) => return Err(delivery::media_not_ready()),
    };
    let file = ready.files.get(&path).ok_or_else(delivery::not_found)?;
    let prefix = ready
        .record
        .output_prefix
        .as_deref()
        .ok_or_else(|| ApiError::internal("a ready media has no output prefix"))?;
    let key = ObjectKey::media_file(prefix, &path).ok_or_else(delivery::not_found)?;
    let source = Source::storage(state.storage.clone(), key);

    let is_manifest = path.ends_with(".m3u8") || path.ends_with(".mpd");
    let (source, size, sha256) = match (&signed, is_manifest) {
        (Some(_), true) if file.size <= MAX_MANIFEST_BYTES => {
            // The viewer's token goes onto every URI the manifest references.
            let token = token_query(&query);
            let text = read_small(&source).await?;
            let text = String::from_utf8_lossy(&text);
            let rewritten = if path.ends_with(".m3u8") {
                playlist::sign_m3u8(&text, &token)
            } else {
                playlist::sign_mpd(&text, &token)
            };
            let bytes = Bytes::from(rewritten);
            let sha256 = hex::encode(Sha256::digest(&bytes));
            (Source::Memory(bytes.clone()), bytes.len() as u64, sha256)
        }
        _ => (source, file.size, file.sha256.clone()),
    };
    let representation =
        delivery::media_representation(&ready.record, file, size, &sha256, signed.as_ref(), now);
    delivery::respond(&method, &headers, &representation, source).await
}

/// The signature parameters of a request, in the order they came, to append to manifest URIs.
fn token_query(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| matches!(k.as_ref(), "exp" | "kid" | "sig"))
        .fold(
            form_urlencoded::Serializer::new(String::new()),
            |mut out, (k, v)| {
                out.append_pair(&k, &v);
                out
            },
        )
        .finish()
}

async fn read_small(source: &Source) -> Result<Vec<u8>, ApiError> {
    let Source::Storage { storage, key } = source else {
        return Err(ApiError::internal("manifest source is not storage"));
    };
    let chunks: Vec<Bytes> = storage
        .get(key, None)
        .await?
        .try_collect()
        .await
        .map_err(|e| ApiError::from(crate::storage::StorageError::from_io(e)))?;
    Ok(chunks.concat())
}

/// What the delivery path knows about a media.
pub enum Lookup {
    Ready(Arc<ReadyMedia>),
    NotReady(Access, MediaState),
    Missing,
}

impl AppState {
    /// A ready media with its file list, from the in-process cache (ready output never
    /// changes; a delete invalidates it) or the catalog. Media not yet ready are not cached.
    pub async fn ready_media(&self, id: &MediaId) -> Result<Lookup, ApiError> {
        if let Some(ready) = self.media_cache.get(id).await {
            return Ok(Lookup::Ready(ready));
        }
        let Some(record) = self.catalog.get_media(id).await? else {
            return Ok(Lookup::Missing);
        };
        if record.state != MediaState::Ready {
            return Ok(Lookup::NotReady(record.access, record.state));
        }
        let files = self
            .catalog
            .media_files(id)
            .await?
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let ready = Arc::new(ReadyMedia { record, files });
        self.media_cache.insert(id.clone(), ready.clone()).await;
        Ok(Lookup::Ready(ready))
    }
}
