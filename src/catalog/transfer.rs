//! Whole-catalog copies between engines (`reelay migrate-catalog`): every table read in pages
//! by primary key and written back in batches, so memory stays bounded by one page whatever the
//! catalog's size. Rows carry every column, ids and timestamps included.

use time::OffsetDateTime;

use super::{ApiKeyRecord, CatalogError, FileRecord, MediaFile, MediaRecord};
use crate::ids::MediaId;

/// The catalog's tables, in an order a copy can follow: media before the files that
/// reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Files,
    ApiKeys,
    Media,
    MediaFiles,
    Jobs,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Files,
        Table::ApiKeys,
        Table::Media,
        Table::MediaFiles,
        Table::Jobs,
    ];

    /// The SQL name, the same in every engine.
    pub fn name(self) -> &'static str {
        match self {
            Table::Files => "files",
            Table::ApiKeys => "api_keys",
            Table::Media => "media",
            Table::MediaFiles => "media_files",
            Table::Jobs => "jobs",
        }
    }

    /// The primary key's columns, which export pages are ordered by.
    pub fn key_columns(self) -> &'static str {
        match self {
            Table::MediaFiles => "media_id, path",
            _ => "id",
        }
    }

    /// Whether `key` can continue an export of this table.
    pub fn fits(self, key: &ExportKey) -> bool {
        matches!(
            (self, key),
            (
                Table::Files | Table::ApiKeys | Table::Media,
                ExportKey::Text(_)
            ) | (Table::MediaFiles, ExportKey::MediaFile { .. })
                | (Table::Jobs, ExportKey::Job(_))
        )
    }
}

/// A row's primary key: where the next export page starts (after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKey {
    Text(String),
    MediaFile { media_id: String, path: String },
    Job(i64),
}

/// One file of a media's output, with the media it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFileRow {
    pub media_id: MediaId,
    pub file: MediaFile,
}

/// A job with every column, lease included (`JobRecord` is the operator's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_token: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub run_after: OffsetDateTime,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Rows of one table, in primary-key order: what an export page returns and an import writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    Files(Vec<FileRecord>),
    ApiKeys(Vec<ApiKeyRecord>),
    Media(Vec<MediaRecord>),
    MediaFiles(Vec<MediaFileRow>),
    Jobs(Vec<JobRow>),
}

impl Batch {
    pub fn table(&self) -> Table {
        match self {
            Batch::Files(_) => Table::Files,
            Batch::ApiKeys(_) => Table::ApiKeys,
            Batch::Media(_) => Table::Media,
            Batch::MediaFiles(_) => Table::MediaFiles,
            Batch::Jobs(_) => Table::Jobs,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Batch::Files(rows) => rows.len(),
            Batch::ApiKeys(rows) => rows.len(),
            Batch::Media(rows) => rows.len(),
            Batch::MediaFiles(rows) => rows.len(),
            Batch::Jobs(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of the last row, to ask for the page after this one.
    pub fn last_key(&self) -> Option<ExportKey> {
        match self {
            Batch::Files(rows) => rows.last().map(|r| ExportKey::Text(r.id.to_string())),
            Batch::ApiKeys(rows) => rows.last().map(|r| ExportKey::Text(r.id.to_string())),
            Batch::Media(rows) => rows.last().map(|r| ExportKey::Text(r.id.to_string())),
            Batch::MediaFiles(rows) => rows.last().map(|r| ExportKey::MediaFile {
                media_id: r.media_id.to_string(),
                path: r.file.path.clone(),
            }),
            Batch::Jobs(rows) => rows.last().map(|r| ExportKey::Job(r.id)),
        }
    }
}

/// The error for an export asked to continue from another table's key.
pub(super) fn key_mismatch(table: Table, key: &ExportKey) -> CatalogError {
    CatalogError::Other(anyhow::anyhow!(
        "an export of {} cannot continue after {key:?}",
        table.name()
    ))
}
