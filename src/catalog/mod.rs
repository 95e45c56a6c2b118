//! Metadata in SQL. One trait, two engines (SQLite now, PostgreSQL for scale-out), one shared
//! test suite (tests/backends). Write order everywhere: bytes durable first, then the row.

mod sqlite;

use std::{collections::HashSet, sync::Arc};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use self::sqlite::SqliteCatalog;
use crate::ids::{FileId, KeyId};

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

/// Where a page of the newest-first listing ended: the last row's (created_at, id). Keyset
/// pagination stays correct while rows are added, unlike OFFSET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCursor {
    pub created_at: OffsetDateTime,
    pub id: FileId,
}

impl FileCursor {
    pub fn after(record: &FileRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.id.clone(),
        }
    }

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
            id: FileId::parse(id)?,
        })
    }
}

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

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(anyhow::Error),
}

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
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
}

pub type DynCatalog = Arc<dyn Catalog>;

/// Opens the catalog a URL names and runs its migrations.
pub async fn open(url: &str) -> anyhow::Result<DynCatalog> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteCatalog::open(url).await?))
    } else {
        anyhow::bail!(
            "unsupported catalog URL {:?}: expected sqlite://PATH",
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
