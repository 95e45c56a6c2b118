//! Object bytes. One trait, several backends (`fs` now; `s3` next), one shared test suite
//! (tests/backends). Bodies are streams end to end: a backend never holds a whole object.

mod fs;
mod keys;
mod resumable;
mod s3;

use std::{io, ops::Range, pin::Pin, sync::Arc, task::Poll, time::SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{stream::BoxStream, Stream};
use sha2::{Digest, Sha256};

pub use self::fs::FsStorage;
pub use self::keys::{is_safe_path, ObjectKey};
pub use self::resumable::{HashState, Resumable};
pub use self::s3::{S3Settings, S3Storage, MIN_PART_SIZE};
use crate::error::BodyError;

pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes, computed while they streamed through.
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    /// The body being written failed (too large, stalled, malformed, client gone).
    #[error("body: {0}")]
    Body(BodyError),
    #[error("storage unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("storage is full")]
    Full,
    #[error(transparent)]
    Other(anyhow::Error),
}

impl StorageError {
    /// Classifies an io::Error from writing: the body's own failure, a full disk, or ours.
    pub fn from_io(e: io::Error) -> Self {
        if BodyError::from_io(&e).is_some() {
            let inner = e.into_inner().expect("checked above");
            return StorageError::Body(*inner.downcast::<BodyError>().expect("checked above"));
        }
        match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound,
            io::ErrorKind::StorageFull => StorageError::Full,
            _ => StorageError::Other(e.into()),
        }
    }
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Stores `body` under `key`, all or nothing: until the whole body is durable, no reader
    /// sees the key; on error nothing is left behind.
    async fn put(&self, key: &ObjectKey, body: ByteStream) -> Result<PutOutcome, StorageError>;

    /// Streams the object, or `range` of it (the caller has already checked it against the size).
    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError>;

    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError>;

    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Removes every object whose key starts with `prefix` (a server-made prefix ending in '/').
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError>;

    /// Every complete object under `prefix`, for the sweeper.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Removes leftovers of writes that never finished (temp files, multipart uploads) older
    /// than `older_than`, so that a crash mid-upload costs no space for long. Writes to the
    /// keys in `keep` are resumable uploads still in progress and stay.
    async fn cleanup_incomplete(
        &self,
        older_than: std::time::Duration,
        keep: &std::collections::HashSet<String>,
    ) -> Result<u64, StorageError>;

    /// A real round trip to the backend, for /readyz.
    async fn check(&self) -> Result<(), StorageError>;

    /// Opens the resumable write `upload` (a server-made id) of the object `key` at `offset`,
    /// from the state the last checkpoint returned (empty for a new one).
    async fn resume(
        &self,
        key: &ObjectKey,
        upload: &str,
        state: &str,
        offset: u64,
    ) -> Result<Box<dyn Resumable>, StorageError>;

    /// Drops everything a resumable write left (partial data, multipart upload).
    async fn abandon(&self, key: &ObjectKey, upload: &str, state: &str)
        -> Result<(), StorageError>;
}

pub type DynStorage = Arc<dyn Storage>;

/// Wraps a body so that its size and SHA-256 are known once it has been read to the end.
pub struct Hashing<S> {
    inner: S,
    hasher: Sha256,
    size: u64,
}

impl<S> Hashing<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    pub fn finish(self) -> PutOutcome {
        PutOutcome {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

impl<S> Stream for Hashing<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = futures::ready!(Pin::new(&mut this.inner).poll_next(cx));
        if let Some(Ok(chunk)) = &item {
            this.hasher.update(chunk);
            this.size += chunk.len() as u64;
        }
        Poll::Ready(item)
    }
}

/// Opens the backend the config names.
pub async fn open(config: &crate::config::StoreConfig) -> anyhow::Result<DynStorage> {
    Ok(match config.storage {
        crate::config::StorageKind::Fs => Arc::new(FsStorage::open(config.objects_dir()).await?),
        crate::config::StorageKind::S3 => Arc::new(S3Storage::connect(config.s3.settings()).await?),
    })
}
