//! Metadata in SQL. One trait, two engines (SQLite now, PostgreSQL for scale-out), one shared
//! test suite (tests/backends). Write order everywhere: bytes durable first, then the row.

#[macro_use]
mod uploads;
mod postgres;
mod sqlite;
mod transfer;

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use self::postgres::PostgresCatalog;
pub use self::sqlite::SqliteCatalog;
pub use self::transfer::{Batch, ExportKey, JobRow, MediaFileRow, Table};
use crate::ids::{DirectUploadId, FileId, Id, KeyId, MediaId, UploadId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Private,
    Public,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Private => "private",
            Access::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Access::Private),
            "public" => Some(Access::Public),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: FileId,
    /// The client's name for the file, sanitized; never used in a key or a path.
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub access: Access,
    pub created_at: OffsetDateTime,
}

/// Where a page of a newest-first listing ended: the last row's (created_at, id). Keyset
/// pagination stays correct while rows are added, unlike OFFSET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor<I> {
    pub created_at: OffsetDateTime,
    pub id: I,
}

pub type FileCursor = Cursor<FileId>;
pub type MediaCursor = Cursor<MediaId>;

impl FileCursor {
    pub fn after(record: &FileRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.id.clone(),
        }
    }
}

impl MediaCursor {
    pub fn after(record: &MediaRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.id.clone(),
        }
    }
}

impl<I: Id> Cursor<I> {
    pub fn encode(&self) -> String {
        use base64::Engine;
        let raw = format!("{}.{}", micros(self.created_at), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine;
        if s.len() > 128 {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (at, id) = raw.split_once('.')?;
        Some(Self {
            created_at: from_micros(at.parse().ok()?)?,
            id: I::parse(id)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaState {
    Queued,
    Processing,
    Ready,
    Failed,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Queued => "queued",
            MediaState::Processing => "processing",
            MediaState::Ready => "ready",
            MediaState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Processing, Self::Ready, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// One rendition of a ready media, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    /// `video` or `audio`.
    pub kind: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bandwidth: u64,
    pub codecs: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaRecord {
    pub id: MediaId,
    pub file_id: FileId,
    pub access: Access,
    pub state: MediaState,
    pub progress: u8,
    /// Why the media failed, in words a user can act on.
    pub error: Option<String>,
    /// Storage prefix (ending in '/') of the run whose output is served, once ready.
    pub output_prefix: Option<String>,
    pub renditions: Vec<Rendition>,
    pub duration: Option<f64>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One file of a ready media's output, relative to its output prefix (e.g. `seg-0-00001.m4s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
}

/// What a finished transcode run hands to the catalog in one write.
#[derive(Debug, Clone)]
pub struct MediaOutput {
    pub prefix: String,
    pub renditions: Vec<Rendition>,
    pub duration: Option<f64>,
    pub files: Vec<MediaFile>,
}

/// A worker's hold on a job: the job and the fencing token of this claim. Every write of
/// results names it, and the catalog refuses writes whose token is no longer current.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job_id: i64,
    pub token: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub lease: Lease,
    pub kind: String,
    pub subject: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_attempts: u32,
}

pub const TRANSCODE_JOB: &str = "transcode";

/// A job as operators see it (`GET /v1/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub updated_at: OffsetDateTime,
}

pub const JOB_STATES: [&str; 4] = ["queued", "running", "done", "failed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Scope {
    #[serde(rename = "files:read")]
    FilesRead,
    #[serde(rename = "files:write")]
    FilesWrite,
    #[serde(rename = "media:read")]
    MediaRead,
    #[serde(rename = "media:write")]
    MediaWrite,
    /// Every right, including key management.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::FilesRead,
        Scope::FilesWrite,
        Scope::MediaRead,
        Scope::MediaWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::FilesRead => "files:read",
            Scope::FilesWrite => "files:write",
            Scope::MediaRead => "media:read",
            Scope::MediaWrite => "media:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub name: String,
    /// Hex SHA-256 of the whole bearer token; the token itself is never stored.
    pub token_sha256: String,
    pub scopes: Vec<Scope>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    Active,
    Completed,
    Terminated,
    Expired,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Active => "active",
            UploadState::Completed => "completed",
            UploadState::Terminated => "terminated",
            UploadState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Active,
            Self::Completed,
            Self::Terminated,
            Self::Expired,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// A resumable upload: where it stands, and what it becomes when the last byte is in.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    pub id: UploadId,
    pub state: UploadState,
    pub offset: u64,
    pub length: u64,
    pub data: UploadData,
    pub direct_upload_id: Option<DirectUploadId>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The parts of an upload's state no query looks into, kept as one JSON column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadData {
    /// The file the upload becomes; chosen up front so the bytes go to their final key.
    pub file_id: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub access: Access,
    pub transcode: bool,
    /// `Upload-Metadata` as the client sent it, echoed by HEAD.
    pub metadata: String,
    /// The storage backend's resumable state at `offset` (hash state, parts, pending bytes).
    pub storage: String,
    pub media_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUploadRecord {
    pub id: DirectUploadId,
    /// Hex SHA-256 of the URL's token; the token itself is never stored.
    pub token_sha256: String,
    pub max_size: u64,
    pub access: Access,
    pub transcode: bool,
    pub cors_origin: Option<String>,
    pub upload_id: Option<UploadId>,
    pub cancelled: bool,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(anyhow::Error),
}

/// Resumable uploads and direct uploads, a part of every catalog.
#[async_trait]
pub trait Uploads: Send + Sync + 'static {
    /// Creates the upload. One made through a direct upload also claims it, in the same
    /// transaction: false (and nothing written) when the direct upload was already used,
    /// cancelled or expired at `now`.
    async fn create_upload(
        &self,
        upload: &UploadRecord,
        now: OffsetDateTime,
    ) -> Result<bool, CatalogError>;
    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>, CatalogError>;
    /// Takes the lock of an active upload for `token` until `until`, unless another holder's
    /// lock is still live at `now`, and returns the upload as it stands. Taking it again with
    /// the same token extends it. None when not active or held by another.
    async fn lock_upload(
        &self,
        id: &UploadId,
        token: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<UploadRecord>, CatalogError>;
    /// Fenced by `token`: writes offset, state and data of a still-active upload. The lock is
    /// kept until `lock_until`, or released when that is None. False when the lock was lost.
    /// Unless `durable`, the commit does not wait for the disk (see catalog/uploads.rs).
    async fn save_upload(
        &self,
        upload: &UploadRecord,
        token: &str,
        lock_until: Option<OffsetDateTime>,
        durable: bool,
    ) -> Result<bool, CatalogError>;
    /// Ends an active upload (`Terminated` or `Expired`), breaking any lock, so a PATCH in
    /// flight cannot save. False when it was not active.
    async fn end_upload(&self, id: &UploadId, state: UploadState) -> Result<bool, CatalogError>;
    /// Active uploads whose expiry has passed and which no live PATCH holds.
    async fn expired_uploads(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UploadRecord>, CatalogError>;

    /// The file ids active uploads write to (the sweeper keeps their multipart uploads).
    async fn active_upload_files(&self) -> Result<Vec<String>, CatalogError>;

    async fn insert_direct_upload(&self, direct: &DirectUploadRecord) -> Result<(), CatalogError>;
    async fn get_direct_upload(
        &self,
        id: &DirectUploadId,
    ) -> Result<Option<DirectUploadRecord>, CatalogError>;
    async fn direct_upload_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<DirectUploadRecord>, CatalogError>;
    /// Cancels a direct upload nobody has used yet; false otherwise.
    async fn cancel_direct_upload(&self, id: &DirectUploadId) -> Result<bool, CatalogError>;
}

#[async_trait]
pub trait Catalog: Uploads {
    /// A real query, for /readyz.
    async fn ping(&self) -> Result<(), CatalogError>;

    async fn insert_file(&self, file: &FileRecord) -> Result<(), CatalogError>;
    async fn get_file(&self, id: &FileId) -> Result<Option<FileRecord>, CatalogError>;
    /// Newest first; `after` continues a previous page.
    async fn list_files(
        &self,
        limit: u32,
        after: Option<&FileCursor>,
    ) -> Result<Vec<FileRecord>, CatalogError>;
    /// Removes the row; false when there was none.
    async fn delete_file(&self, id: &FileId) -> Result<bool, CatalogError>;
    /// Which of `ids` have a row (the sweeper asks before removing blobs).
    async fn existing_files(&self, ids: &[FileId]) -> Result<HashSet<FileId>, CatalogError>;

    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), CatalogError>;
    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>, CatalogError>;
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, CatalogError>;
    /// Marks the key revoked; false when no such live key exists.
    async fn revoke_key(&self, id: &KeyId) -> Result<bool, CatalogError>;

    /// Creates a queued media and its transcode job, in one transaction.
    async fn create_media(
        &self,
        media: &MediaRecord,
        max_attempts: u32,
    ) -> Result<(), CatalogError>;
    async fn get_media(&self, id: &MediaId) -> Result<Option<MediaRecord>, CatalogError>;
    async fn list_media(
        &self,
        limit: u32,
        after: Option<&MediaCursor>,
    ) -> Result<Vec<MediaRecord>, CatalogError>;
    /// Removes the media, its file list and its jobs; false when there was none.
    async fn delete_media(&self, id: &MediaId) -> Result<bool, CatalogError>;
    async fn media_files(&self, id: &MediaId) -> Result<Vec<MediaFile>, CatalogError>;
    /// Which media ids exist among `ids` (the sweeper asks before removing outputs).
    async fn existing_media(&self, ids: &[MediaId]) -> Result<HashSet<MediaId>, CatalogError>;
    /// The output prefix each ready media serves (the sweeper keeps those, removes other runs).
    async fn served_prefixes(&self, ids: &[MediaId]) -> Result<HashSet<String>, CatalogError>;

    /// Claims the oldest runnable queued job for `lease` from now, in a short transaction;
    /// the job then runs outside any transaction.
    async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, CatalogError>;
    /// Extends the lease; false when it is no longer ours (rescued and claimed again).
    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<bool, CatalogError>;
    /// Fenced: the media goes to `processing` at 0%.
    async fn start_media(&self, lease: &Lease, id: &MediaId) -> Result<bool, CatalogError>;
    /// Fenced progress update.
    async fn media_progress(
        &self,
        lease: &Lease,
        id: &MediaId,
        progress: u8,
    ) -> Result<bool, CatalogError>;
    /// Fenced: records the output, marks the media ready and the job done, in one transaction.
    async fn complete_media(
        &self,
        lease: &Lease,
        id: &MediaId,
        output: &MediaOutput,
    ) -> Result<bool, CatalogError>;
    /// Fenced: requeues the job (with backoff) when `retry` and attempts remain; otherwise the
    /// job and its media fail with `reason`.
    async fn fail_job(
        &self,
        lease: &Lease,
        reason: &str,
        retry: bool,
    ) -> Result<bool, CatalogError>;
    /// Returns jobs whose lease expired to the queue (attempts count), or fails them once
    /// their attempts are spent. Safe to run from every worker at once. Returns how many.
    async fn rescue_expired(&self) -> Result<u64, CatalogError>;
    /// Jobs by state, for metrics.
    async fn job_counts(&self) -> Result<Vec<(String, u64)>, CatalogError>;
    /// The most recently updated jobs, optionally in one state.
    async fn list_jobs(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, CatalogError>;
    /// Queues a failed media again with a fresh set of attempts; false unless it had failed.
    async fn retry_media(&self, id: &MediaId, max_attempts: u32) -> Result<bool, CatalogError>;

    /// Rows of `table` in primary-key order, at most `limit`, after `after` (the previous
    /// page's `Batch::last_key`). An empty batch ends the table.
    async fn export_page(
        &self,
        table: Table,
        after: Option<&ExportKey>,
        limit: u32,
    ) -> Result<Batch, CatalogError>;
    /// Writes `batch` in one transaction, as is: ids, timestamps and job leases included. A row
    /// whose primary key exists is overwritten, so importing the same batch twice is harmless.
    /// Imported jobs push the job id sequence past their ids.
    async fn import(&self, batch: &Batch) -> Result<(), CatalogError>;
    /// How many rows `table` holds.
    async fn count_rows(&self, table: Table) -> Result<u64, CatalogError>;

    /// Pokes `wakeup` whenever any node queues a job, where the engine can tell (PostgreSQL
    /// LISTEN/NOTIFY). Workers poll anyway; this only shortens the wait. The default does nothing.
    fn watch_queue(&self, wakeup: Arc<tokio::sync::Notify>) {
        let _ = wakeup;
    }
}

pub type DynCatalog = Arc<dyn Catalog>;

/// Opens the catalog a URL names and runs its migrations.
pub async fn open(url: &str) -> anyhow::Result<DynCatalog> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteCatalog::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresCatalog::open(url).await?))
    } else {
        anyhow::bail!(
            "unsupported catalog URL {:?}: expected sqlite://PATH or postgres://...",
            url.split(':').next().unwrap_or_default()
        )
    }
}

/// Timestamps are stored as integer microseconds since the epoch in every engine, so ordering
/// and cursors behave identically.
pub fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub fn from_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000).ok()
}

/// Now, truncated to the microsecond precision the catalog keeps.
pub fn now() -> OffsetDateTime {
    from_micros(micros(OffsetDateTime::now_utc())).expect("now is representable")
}
