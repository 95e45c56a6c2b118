//! The embedded catalog: SQLite under the data dir, WAL mode, writes in `BEGIN IMMEDIATE`
//! transactions so two writers queue on the lock instead of failing halfway with SQLITE_BUSY.

use std::{collections::HashSet, str::FromStr, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqlitePool,
};

use super::{
    from_micros, micros, now, transfer::key_mismatch, Access, ApiKeyRecord, Batch, Catalog,
    CatalogError, ClaimedJob, ExportKey, FileCursor, FileRecord, JobRecord, JobRow, Lease,
    MediaCursor, MediaFile, MediaFileRow, MediaId, MediaOutput, MediaRecord, MediaState, Scope,
    Table, TRANSCODE_JOB,
};
use crate::ids::{FileId, KeyId};

pub struct SqliteCatalog {
    pool: SqlitePool,
    /// Connections with `synchronous=NORMAL`, for writes a power cut may lose (upload locks
    /// and offsets; see catalog/uploads.rs).
    relaxed: SqlitePool,
}

impl SqliteCatalog {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        Self::connect(url, true).await
    }

    /// Opens a catalog that must already exist (a source to copy from, never a new empty one).
    pub async fn open_existing(url: &str) -> anyhow::Result<Self> {
        Self::connect(url, false).await
    }

    async fn connect(url: &str, create: bool) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing catalog URL {url}"))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged upload's row survives a power cut, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .context("opening the SQLite catalog")?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("migrating the SQLite catalog")?;
        let relaxed = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await
            .context("opening the SQLite catalog")?;
        Ok(Self { pool, relaxed })
    }

    /// A page of `table` newest first, after the (created_at, id) of the previous page's last
    /// row: keyset pagination, correct while rows are added. `table` is one of ours, never input.
    async fn newest_first(
        &self,
        table: &str,
        limit: u32,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<SqliteRow>, CatalogError> {
        match after {
            Some((created_at, id)) => {
                sqlx::query(&format!(
                    "SELECT * FROM {table}
                     WHERE created_at < ?1 OR (created_at = ?1 AND id < ?2)
                     ORDER BY created_at DESC, id DESC LIMIT ?3"
                ))
                .bind(created_at)
                .bind(id)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT * FROM {table} ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db_error)
    }

    /// Runs `select` (ending in `IN`) over `ids` in chunks that stay well under SQLite's
    /// bound-parameter limit, collecting the first column.
    async fn column_for_ids<I: crate::ids::Id>(
        &self,
        select: &str,
        ids: &[I],
    ) -> Result<HashSet<String>, CatalogError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(500) {
            let sql = format!("{select} ({})", vec!["?"; chunk.len()].join(","));
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.pool).await.map_err(db_error)? {
                found.insert(row.get::<String, _>(0));
            }
        }
        Ok(found)
    }

    /// Runs one write statement inside `BEGIN IMMEDIATE`.
    async fn write<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<u64, CatalogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let done = query.execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected())
    }
}

impl SqliteCatalog {
    /// Fenced: moves the media to `state` with `progress` if the lease is still current.
    async fn media_progress_state(
        &self,
        lease: &Lease,
        id: &MediaId,
        progress: u8,
        state: MediaState,
    ) -> Result<bool, CatalogError> {
        let n = self
            .write(
                sqlx::query(
                    "UPDATE media SET state = ?, progress = ?, updated_at = ?
                     WHERE id = ? AND EXISTS (SELECT 1 FROM jobs WHERE id = ? AND lease_token = ?
                                              AND state = 'running')",
                )
                .bind(state.as_str())
                .bind(progress as i64)
                .bind(micros(now()))
                .bind(id.as_str())
                .bind(lease.job_id)
                .bind(lease.token),
            )
            .await?;
        Ok(n > 0)
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// Returns a job to the queue (runnable from `run_after`) and its media to `queued`.
async fn requeue(
    tx: &mut Tx<'_>,
    job: i64,
    subject: &str,
    reason: &str,
    run_after: i64,
    at: i64,
) -> Result<(), CatalogError> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
             run_after = ?, last_error = ?, updated_at = ? WHERE id = ?",
    )
    .bind(run_after)
    .bind(reason)
    .bind(at)
    .bind(job)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE media SET state = 'queued', progress = 0, updated_at = ? WHERE id = ?")
        .bind(at)
        .bind(subject)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Fails a job and its media for good, with `reason`.
async fn fail(
    tx: &mut Tx<'_>,
    job: i64,
    subject: &str,
    reason: &str,
    at: i64,
) -> Result<(), CatalogError> {
    sqlx::query(
        "UPDATE jobs SET state = 'failed', lease_expires_at = NULL, last_error = ?,
             updated_at = ? WHERE id = ?",
    )
    .bind(reason)
    .bind(at)
    .bind(job)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE media SET state = 'failed', error = ?, updated_at = ? WHERE id = ?")
        .bind(reason)
        .bind(at)
        .bind(subject)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl SqliteCatalog {
    /// A write transaction (SQLite: `BEGIN IMMEDIATE`, so writers queue instead of failing).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, CatalogError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }

    /// A write transaction whose commit does not wait for the disk.
    async fn begin_relaxed(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, CatalogError> {
        self.relaxed
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }
}

upload_rows!(SqliteRow);
upload_methods!(SqliteCatalog, SqliteRow);

fn db_error(e: sqlx::Error) -> CatalogError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            CatalogError::Unavailable(e.into())
        }
        sqlx::Error::Database(ref db) if db.is_unique_violation() => {
            CatalogError::Conflict("a record with this id already exists".into())
        }
        other => CatalogError::Other(other.into()),
    }
}

fn corrupt(what: &str) -> CatalogError {
    CatalogError::Other(anyhow::anyhow!("catalog row has an invalid {what}"))
}

fn file_from_row(row: &SqliteRow) -> Result<FileRecord, CatalogError> {
    let id: String = row.get("id");
    let access: String = row.get("access");
    let size: i64 = row.get("size");
    Ok(FileRecord {
        id: FileId::parse(&id).ok_or_else(|| corrupt("file id"))?,
        filename: row.get("filename"),
        content_type: row.get("content_type"),
        size: u64::try_from(size).map_err(|_| corrupt("size"))?,
        sha256: row.get("sha256"),
        access: Access::parse(&access).ok_or_else(|| corrupt("access"))?,
        created_at: from_micros(row.get("created_at")).ok_or_else(|| corrupt("created_at"))?,
    })
}

fn media_from_row(row: &SqliteRow) -> Result<MediaRecord, CatalogError> {
    let id: String = row.get("id");
    let file_id: String = row.get("file_id");
    let access: String = row.get("access");
    let state: String = row.get("state");
    let progress: i64 = row.get("progress");
    let renditions: String = row.get("renditions");
    Ok(MediaRecord {
        id: MediaId::parse(&id).ok_or_else(|| corrupt("media id"))?,
        file_id: FileId::parse(&file_id).ok_or_else(|| corrupt("file id"))?,
        access: Access::parse(&access).ok_or_else(|| corrupt("access"))?,
        state: MediaState::parse(&state).ok_or_else(|| corrupt("state"))?,
        progress: progress.clamp(0, 100) as u8,
        error: row.get("error"),
        output_prefix: row.get("output_prefix"),
        renditions: serde_json::from_str(&renditions).map_err(|_| corrupt("renditions"))?,
        duration: row.get("duration"),
        created_at: from_micros(row.get("created_at")).ok_or_else(|| corrupt("created_at"))?,
        updated_at: from_micros(row.get("updated_at")).ok_or_else(|| corrupt("updated_at"))?,
    })
}

/// Seconds to wait before retrying a job after its `attempt`-th failure.
fn backoff(attempt: i64) -> Duration {
    Duration::from_secs((5 * attempt.max(1) as u64).min(300))
}

fn job_from_row(row: &SqliteRow) -> Result<JobRecord, CatalogError> {
    let attempts: i64 = row.get("attempts");
    let max_attempts: i64 = row.get("max_attempts");
    Ok(JobRecord {
        id: row.get("id"),
        kind: row.get("kind"),
        subject: row.get("subject"),
        state: row.get("state"),
        attempts: attempts as u32,
        max_attempts: max_attempts as u32,
        lease_owner: row.get("lease_owner"),
        last_error: row.get("last_error"),
        updated_at: from_micros(row.get("updated_at")).ok_or_else(|| corrupt("updated_at"))?,
    })
}

fn media_file_from_row(row: &SqliteRow) -> Result<MediaFile, CatalogError> {
    let size: i64 = row.get("size");
    Ok(MediaFile {
        path: row.get("path"),
        size: u64::try_from(size).map_err(|_| corrupt("size"))?,
        sha256: row.get("sha256"),
        content_type: row.get("content_type"),
    })
}

fn media_file_row_from_row(row: &SqliteRow) -> Result<MediaFileRow, CatalogError> {
    let media_id: String = row.get("media_id");
    Ok(MediaFileRow {
        media_id: MediaId::parse(&media_id).ok_or_else(|| corrupt("media id"))?,
        file: media_file_from_row(row)?,
    })
}

fn job_row_from_row(row: &SqliteRow) -> Result<JobRow, CatalogError> {
    let attempts: i64 = row.get("attempts");
    let max_attempts: i64 = row.get("max_attempts");
    let lease_expires_at: Option<i64> = row.get("lease_expires_at");
    Ok(JobRow {
        id: row.get("id"),
        kind: row.get("kind"),
        subject: row.get("subject"),
        state: row.get("state"),
        attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts"))?,
        max_attempts: u32::try_from(max_attempts).map_err(|_| corrupt("max_attempts"))?,
        lease_token: row.get("lease_token"),
        lease_owner: row.get("lease_owner"),
        lease_expires_at: match lease_expires_at {
            Some(us) => Some(from_micros(us).ok_or_else(|| corrupt("lease_expires_at"))?),
            None => None,
        },
        run_after: from_micros(row.get("run_after")).ok_or_else(|| corrupt("run_after"))?,
        last_error: row.get("last_error"),
        created_at: from_micros(row.get("created_at")).ok_or_else(|| corrupt("created_at"))?,
        updated_at: from_micros(row.get("updated_at")).ok_or_else(|| corrupt("updated_at"))?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord, CatalogError> {
    let id: String = row.get("id");
    let scopes: String = row.get("scopes");
    let revoked_at: Option<i64> = row.get("revoked_at");
    Ok(ApiKeyRecord {
        id: KeyId::parse(&id).ok_or_else(|| corrupt("key id"))?,
        name: row.get("name"),
        token_sha256: row.get("token_sha256"),
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| corrupt("scope")))
            .collect::<Result<_, _>>()?,
        created_at: from_micros(row.get("created_at")).ok_or_else(|| corrupt("created_at"))?,
        revoked_at: match revoked_at {
            Some(us) => Some(from_micros(us).ok_or_else(|| corrupt("revoked_at"))?),
            None => None,
        },
    })
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT count(*) FROM files WHERE 0")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| CatalogError::Unavailable(e.into()))?;
        Ok(())
    }

    async fn insert_file(&self, file: &FileRecord) -> Result<(), CatalogError> {
        self.write(
            sqlx::query(
                "INSERT INTO files (id, filename, content_type, size, sha256, access, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(file.id.as_str())
            .bind(file.filename.as_deref())
            .bind(&file.content_type)
            .bind(file.size as i64)
            .bind(&file.sha256)
            .bind(file.access.as_str())
            .bind(micros(file.created_at)),
        )
        .await?;
        Ok(())
    }

    async fn get_file(&self, id: &FileId) -> Result<Option<FileRecord>, CatalogError> {
        sqlx::query("SELECT * FROM files WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(file_from_row)
            .transpose()
    }

    async fn list_files(
        &self,
        limit: u32,
        after: Option<&FileCursor>,
    ) -> Result<Vec<FileRecord>, CatalogError> {
        let after = after.map(|c| (micros(c.created_at), c.id.as_str()));
        let rows = self.newest_first("files", limit, after).await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn delete_file(&self, id: &FileId) -> Result<bool, CatalogError> {
        let n = self
            .write(sqlx::query("DELETE FROM files WHERE id = ?").bind(id.as_str()))
            .await?;
        Ok(n > 0)
    }

    async fn existing_files(&self, ids: &[FileId]) -> Result<HashSet<FileId>, CatalogError> {
        let found = self
            .column_for_ids("SELECT id FROM files WHERE id IN", ids)
            .await?;
        Ok(found.iter().filter_map(|id| FileId::parse(id)).collect())
    }

    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), CatalogError> {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        self.write(
            sqlx::query(
                "INSERT INTO api_keys (id, name, token_sha256, scopes, created_at, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(key.id.as_str())
            .bind(&key.name)
            .bind(&key.token_sha256)
            .bind(scopes.join(" "))
            .bind(micros(key.created_at))
            .bind(key.revoked_at.map(micros)),
        )
        .await?;
        Ok(())
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>, CatalogError> {
        sqlx::query("SELECT * FROM api_keys WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, CatalogError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn create_media(
        &self,
        media: &MediaRecord,
        max_attempts: u32,
    ) -> Result<(), CatalogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let at = micros(media.created_at);
        sqlx::query(
            "INSERT INTO media (id, file_id, access, state, progress, renditions, created_at, updated_at)
             VALUES (?, ?, ?, ?, 0, '[]', ?, ?)",
        )
        .bind(media.id.as_str())
        .bind(media.file_id.as_str())
        .bind(media.access.as_str())
        .bind(media.state.as_str())
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO jobs (kind, subject, state, max_attempts, run_after, created_at, updated_at)
             VALUES (?, ?, 'queued', ?, ?, ?, ?)",
        )
        .bind(TRANSCODE_JOB)
        .bind(media.id.as_str())
        .bind(max_attempts as i64)
        .bind(at)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<MediaRecord>, CatalogError> {
        sqlx::query("SELECT * FROM media WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(media_from_row)
            .transpose()
    }

    async fn list_media(
        &self,
        limit: u32,
        after: Option<&MediaCursor>,
    ) -> Result<Vec<MediaRecord>, CatalogError> {
        let after = after.map(|c| (micros(c.created_at), c.id.as_str()));
        let rows = self.newest_first("media", limit, after).await?;
        rows.iter().map(media_from_row).collect()
    }

    async fn delete_media(&self, id: &MediaId) -> Result<bool, CatalogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM jobs WHERE subject = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM media_files WHERE media_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM media WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn media_files(&self, id: &MediaId) -> Result<Vec<MediaFile>, CatalogError> {
        let rows = sqlx::query("SELECT * FROM media_files WHERE media_id = ? ORDER BY path")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(media_file_from_row).collect()
    }

    async fn existing_media(&self, ids: &[MediaId]) -> Result<HashSet<MediaId>, CatalogError> {
        let found = self
            .column_for_ids("SELECT id FROM media WHERE id IN", ids)
            .await?;
        Ok(found.iter().filter_map(|id| MediaId::parse(id)).collect())
    }

    async fn served_prefixes(&self, ids: &[MediaId]) -> Result<HashSet<String>, CatalogError> {
        self.column_for_ids(
            "SELECT output_prefix FROM media WHERE output_prefix IS NOT NULL AND id IN",
            ids,
        )
        .await
    }

    async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, CatalogError> {
        let at = micros(now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let row = sqlx::query(
            "UPDATE jobs
             SET state = 'running', attempts = attempts + 1, lease_token = lease_token + 1,
                 lease_owner = ?1, lease_expires_at = ?2, updated_at = ?3
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ?3
                         ORDER BY run_after, id LIMIT 1)
             RETURNING id, lease_token, kind, subject, attempts, max_attempts",
        )
        .bind(owner)
        .bind(at + lease.as_micros() as i64)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(row.map(|row| {
            let attempts: i64 = row.get("attempts");
            let max_attempts: i64 = row.get("max_attempts");
            ClaimedJob {
                lease: Lease {
                    job_id: row.get("id"),
                    token: row.get("lease_token"),
                },
                kind: row.get("kind"),
                subject: row.get("subject"),
                attempt: attempts as u32,
                max_attempts: max_attempts as u32,
            }
        }))
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<bool, CatalogError> {
        let at = micros(now());
        let n = self
            .write(
                sqlx::query(
                    "UPDATE jobs SET lease_expires_at = ?, updated_at = ?
                     WHERE id = ? AND lease_token = ? AND state = 'running'",
                )
                .bind(at + duration.as_micros() as i64)
                .bind(at)
                .bind(lease.job_id)
                .bind(lease.token),
            )
            .await?;
        Ok(n > 0)
    }

    async fn start_media(&self, lease: &Lease, id: &MediaId) -> Result<bool, CatalogError> {
        self.media_progress_state(lease, id, 0, MediaState::Processing)
            .await
    }

    async fn media_progress(
        &self,
        lease: &Lease,
        id: &MediaId,
        progress: u8,
    ) -> Result<bool, CatalogError> {
        self.media_progress_state(lease, id, progress, MediaState::Processing)
            .await
    }

    async fn complete_media(
        &self,
        lease: &Lease,
        id: &MediaId,
        output: &MediaOutput,
    ) -> Result<bool, CatalogError> {
        let at = micros(now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let fenced = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires_at = NULL, updated_at = ?
             WHERE id = ? AND lease_token = ? AND state = 'running'",
        )
        .bind(at)
        .bind(lease.job_id)
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if fenced.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM media_files WHERE media_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for file in &output.files {
            sqlx::query(
                "INSERT INTO media_files (media_id, path, size, sha256, content_type)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(&file.path)
            .bind(file.size as i64)
            .bind(&file.sha256)
            .bind(&file.content_type)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let renditions =
            serde_json::to_string(&output.renditions).map_err(|e| CatalogError::Other(e.into()))?;
        let updated = sqlx::query(
            "UPDATE media SET state = 'ready', progress = 100, error = NULL, output_prefix = ?,
                 renditions = ?, duration = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&output.prefix)
        .bind(renditions)
        .bind(output.duration)
        .bind(at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            // The media was deleted while it was transcoding; nothing to mark ready.
            return Ok(false);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn fail_job(
        &self,
        lease: &Lease,
        reason: &str,
        retry: bool,
    ) -> Result<bool, CatalogError> {
        let at = micros(now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let row = sqlx::query(
            "SELECT subject, attempts, max_attempts FROM jobs
             WHERE id = ? AND lease_token = ? AND state = 'running'",
        )
        .bind(lease.job_id)
        .bind(lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let subject: String = row.get("subject");
        let attempts: i64 = row.get("attempts");
        let max_attempts: i64 = row.get("max_attempts");
        if retry && attempts < max_attempts {
            let run_after = at + backoff(attempts).as_micros() as i64;
            requeue(&mut tx, lease.job_id, &subject, reason, run_after, at).await?;
        } else {
            fail(&mut tx, lease.job_id, &subject, reason, at).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn rescue_expired(&self) -> Result<u64, CatalogError> {
        let at = micros(now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let expired = sqlx::query(
            "SELECT id, subject, attempts, max_attempts FROM jobs
             WHERE state = 'running' AND lease_expires_at < ?",
        )
        .bind(at)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for row in &expired {
            let id: i64 = row.get("id");
            let subject: String = row.get("subject");
            let attempts: i64 = row.get("attempts");
            let max_attempts: i64 = row.get("max_attempts");
            if attempts < max_attempts {
                requeue(
                    &mut tx,
                    id,
                    &subject,
                    "the worker stopped answering",
                    at,
                    at,
                )
                .await?;
            } else {
                let reason = format!(
                    "the worker processing this media stopped answering {attempts} times; giving up"
                );
                fail(&mut tx, id, &subject, &reason, at).await?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(expired.len() as u64)
    }

    async fn list_jobs(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, CatalogError> {
        let rows =
            match state {
                Some(state) => sqlx::query(
                    "SELECT * FROM jobs WHERE state = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
                )
                .bind(state)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await,
                None => {
                    sqlx::query("SELECT * FROM jobs ORDER BY updated_at DESC, id DESC LIMIT ?")
                        .bind(limit as i64)
                        .fetch_all(&self.pool)
                        .await
                }
            }
            .map_err(db_error)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn retry_media(&self, id: &MediaId, max_attempts: u32) -> Result<bool, CatalogError> {
        let at = micros(now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let media = sqlx::query(
            "UPDATE media SET state = 'queued', progress = 0, error = NULL, updated_at = ?
                 WHERE id = ? AND state = 'failed'",
        )
        .bind(at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if media.rows_affected() == 0 {
            return Ok(false);
        }
        let requeued = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, max_attempts = ?, run_after = ?,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
             WHERE subject = ? AND state = 'failed'",
        )
        .bind(max_attempts as i64)
        .bind(at)
        .bind(at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if requeued.rows_affected() == 0 {
            sqlx::query("INSERT INTO jobs (kind, subject, state, max_attempts, run_after, created_at, updated_at)
                 VALUES (?, ?, 'queued', ?, ?, ?, ?)")
                .bind(TRANSCODE_JOB).bind(id.as_str()).bind(max_attempts as i64).bind(at).bind(at).bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn job_counts(&self) -> Result<Vec<(String, u64)>, CatalogError> {
        let rows = sqlx::query("SELECT state, count(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| {
                let n: i64 = row.get("n");
                (row.get("state"), n as u64)
            })
            .collect())
    }

    async fn export_page(
        &self,
        table: Table,
        after: Option<&ExportKey>,
        limit: u32,
    ) -> Result<Batch, CatalogError> {
        let (name, key) = (table.name(), table.key_columns());
        let rows =
            match after {
                Some(after) if !table.fits(after) => return Err(key_mismatch(table, after)),
                None => {
                    sqlx::query(&format!("SELECT * FROM {name} ORDER BY {key} LIMIT ?"))
                        .bind(limit as i64)
                        .fetch_all(&self.pool)
                        .await
                }
                Some(ExportKey::Text(id)) => {
                    sqlx::query(&format!(
                        "SELECT * FROM {name} WHERE id > ? ORDER BY id LIMIT ?"
                    ))
                    .bind(id)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await
                }
                Some(ExportKey::Job(id)) => {
                    sqlx::query("SELECT * FROM jobs WHERE id > ? ORDER BY id LIMIT ?")
                        .bind(id)
                        .bind(limit as i64)
                        .fetch_all(&self.pool)
                        .await
                }
                Some(ExportKey::MediaFile { media_id, path }) => sqlx::query(
                    "SELECT * FROM media_files WHERE media_id > ?1 OR (media_id = ?1 AND path > ?2)
                     ORDER BY media_id, path LIMIT ?3",
                )
                .bind(media_id)
                .bind(path)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await,
            }
            .map_err(db_error)?;
        Ok(match table {
            Table::Files => Batch::Files(rows.iter().map(file_from_row).collect::<Result<_, _>>()?),
            Table::ApiKeys => {
                Batch::ApiKeys(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
            }
            Table::Media => {
                Batch::Media(rows.iter().map(media_from_row).collect::<Result<_, _>>()?)
            }
            Table::MediaFiles => Batch::MediaFiles(
                rows.iter()
                    .map(media_file_row_from_row)
                    .collect::<Result<_, _>>()?,
            ),
            Table::Jobs => Batch::Jobs(
                rows.iter()
                    .map(job_row_from_row)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    async fn import(&self, batch: &Batch) -> Result<(), CatalogError> {
        let _ = batch;
        Err(CatalogError::Other(anyhow::anyhow!(
            "import into SQLite is not supported: it is only a source for migrate-catalog"
        )))
    }

    async fn count_rows(&self, table: Table) -> Result<u64, CatalogError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table.name()))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn revoke_key(&self, id: &KeyId) -> Result<bool, CatalogError> {
        let n = self
            .write(
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                )
                .bind(micros(super::now()))
                .bind(id.as_str()),
            )
            .await?;
        Ok(n > 0)
    }
}
