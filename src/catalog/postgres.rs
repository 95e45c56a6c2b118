//! The production catalog: PostgreSQL, shared by many API nodes and workers. Same behaviour
//! as SQLite (one shared test suite), with row locks where SQLite has its single writer:
//! claims take `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's rows.

use std::{collections::HashSet, str::FromStr, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
    query_builder::Separated,
    PgPool, Postgres, QueryBuilder, Row,
};

use super::{
    from_micros, micros, now, transfer::key_mismatch, Access, ApiKeyRecord, Batch, Catalog,
    CatalogError, ClaimedJob, ExportKey, FileCursor, FileRecord, JobRecord, JobRow, Lease,
    MediaCursor, MediaFile, MediaFileRow, MediaId, MediaOutput, MediaRecord, MediaState, Scope,
    Table, TRANSCODE_JOB,
};
use crate::ids::{FileId, KeyId};

pub struct PostgresCatalog {
    pool: PgPool,
}

impl PostgresCatalog {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
        Self::open_with(options).await
    }

    pub async fn open_with(options: PgConnectOptions) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            // A request waits at most this long for a connection; past it the catalog is
            // reported unavailable (503) rather than hanging.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .context("migrating the PostgreSQL catalog")?;
        Ok(Self { pool })
    }
}

impl PostgresCatalog {
    /// A write transaction (SQLite: `BEGIN IMMEDIATE`, so writers queue instead of failing).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, CatalogError> {
        self.pool.begin().await.map_err(db_error)
    }

    /// A write transaction whose commit does not wait for the WAL to reach the disk.
    async fn begin_relaxed(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("SET LOCAL synchronous_commit TO OFF")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(tx)
    }
}

upload_rows!(PgRow);
upload_methods!(PostgresCatalog, PgRow);

fn db_error(e: sqlx::Error) -> CatalogError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            CatalogError::Unavailable(e.into())
        }
        sqlx::Error::Database(ref db) if db.is_unique_violation() => {
            CatalogError::Conflict("a record with this id already exists".into())
        }
        // 57P01 admin_shutdown, 57P03 cannot_connect_now, class 08: connection exceptions.
        sqlx::Error::Database(ref db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P03") =>
        {
            CatalogError::Unavailable(e.into())
        }
        other => CatalogError::Other(other.into()),
    }
}

fn corrupt(what: &str) -> CatalogError {
    CatalogError::Other(anyhow::anyhow!("catalog row has an invalid {what}"))
}

fn file_from_row(row: &PgRow) -> Result<FileRecord, CatalogError> {
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

fn media_from_row(row: &PgRow) -> Result<MediaRecord, CatalogError> {
    let id: String = row.get("id");
    let file_id: String = row.get("file_id");
    let access: String = row.get("access");
    let state: String = row.get("state");
    let progress: i32 = row.get("progress");
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

fn job_from_row(row: &PgRow) -> Result<JobRecord, CatalogError> {
    let attempts: i32 = row.get("attempts");
    let max_attempts: i32 = row.get("max_attempts");
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

fn media_file_from_row(row: &PgRow) -> Result<MediaFile, CatalogError> {
    let size: i64 = row.get("size");
    Ok(MediaFile {
        path: row.get("path"),
        size: u64::try_from(size).map_err(|_| corrupt("size"))?,
        sha256: row.get("sha256"),
        content_type: row.get("content_type"),
    })
}

fn media_file_row_from_row(row: &PgRow) -> Result<MediaFileRow, CatalogError> {
    let media_id: String = row.get("media_id");
    Ok(MediaFileRow {
        media_id: MediaId::parse(&media_id).ok_or_else(|| corrupt("media id"))?,
        file: media_file_from_row(row)?,
    })
}

fn job_row_from_row(row: &PgRow) -> Result<JobRow, CatalogError> {
    let attempts: i32 = row.get("attempts");
    let max_attempts: i32 = row.get("max_attempts");
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

fn key_from_row(row: &PgRow) -> Result<ApiKeyRecord, CatalogError> {
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

/// Seconds to wait before retrying a job after its `attempt`-th failure.
fn backoff(attempt: i32) -> Duration {
    Duration::from_secs((5 * attempt.max(1) as u64).min(300))
}

fn strings<I: crate::ids::Id>(ids: &[I]) -> Vec<String> {
    ids.iter().map(|id| id.as_str().to_owned()).collect()
}

impl PostgresCatalog {
    /// A page of `table` newest first, after the (created_at, id) of the previous page's last
    /// row: keyset pagination, correct while rows are added. `table` is one of ours, never input.
    async fn newest_first(
        &self,
        table: &str,
        limit: u32,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<PgRow>, CatalogError> {
        match after {
            Some((created_at, id)) => {
                sqlx::query(&format!(
                    "SELECT * FROM {table} WHERE (created_at, id) < ($1, $2)
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                ))
                .bind(created_at)
                .bind(id)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT * FROM {table} ORDER BY created_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db_error)
    }

    async fn media_progress_state(
        &self,
        lease: &Lease,
        id: &MediaId,
        progress: u8,
        state: MediaState,
    ) -> Result<bool, CatalogError> {
        let done = sqlx::query(
            "UPDATE media SET state = $1, progress = $2, updated_at = $3
             WHERE id = $4 AND EXISTS (SELECT 1 FROM jobs WHERE id = $5 AND lease_token = $6
                                       AND state = 'running')",
        )
        .bind(state.as_str())
        .bind(progress as i32)
        .bind(micros(now()))
        .bind(id.as_str())
        .bind(lease.job_id)
        .bind(lease.token)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }
}

/// The channel `NOTIFY` announces queued jobs on.
const JOBS_CHANNEL: &str = "reelay_jobs";

#[async_trait]
impl Catalog for PostgresCatalog {
    fn watch_queue(&self, wakeup: std::sync::Arc<tokio::sync::Notify>) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let listening = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(JOBS_CHANNEL).await?;
                    loop {
                        listener.recv().await?;
                        wakeup.notify_one();
                    }
                };
                let result: Result<std::convert::Infallible, sqlx::Error> = listening.await;
                let Err(e) = result;
                tracing::debug!(error = %e, "job notifications interrupted; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT count(*) FROM files WHERE false")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| CatalogError::Unavailable(e.into()))?;
        Ok(())
    }

    async fn insert_file(&self, file: &FileRecord) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO files (id, filename, content_type, size, sha256, access, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(file.id.as_str())
        .bind(file.filename.as_deref())
        .bind(&file.content_type)
        .bind(file.size as i64)
        .bind(&file.sha256)
        .bind(file.access.as_str())
        .bind(micros(file.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_file(&self, id: &FileId) -> Result<Option<FileRecord>, CatalogError> {
        sqlx::query("SELECT * FROM files WHERE id = $1")
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
        let done = sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn existing_files(&self, ids: &[FileId]) -> Result<HashSet<FileId>, CatalogError> {
        let rows = sqlx::query("SELECT id FROM files WHERE id = ANY($1)")
            .bind(strings(ids))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .filter_map(|row| FileId::parse(row.get::<&str, _>("id")))
            .collect())
    }

    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), CatalogError> {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, name, token_sha256, scopes, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.as_str())
        .bind(&key.name)
        .bind(&key.token_sha256)
        .bind(scopes.join(" "))
        .bind(micros(key.created_at))
        .bind(key.revoked_at.map(micros))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>, CatalogError> {
        sqlx::query("SELECT * FROM api_keys WHERE id = $1")
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

    async fn revoke_key(&self, id: &KeyId) -> Result<bool, CatalogError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(micros(now()))
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_media(
        &self,
        media: &MediaRecord,
        max_attempts: u32,
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let at = micros(media.created_at);
        sqlx::query(
            "INSERT INTO media (id, file_id, access, state, progress, renditions, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 0, '[]', $5, $5)",
        )
        .bind(media.id.as_str())
        .bind(media.file_id.as_str())
        .bind(media.access.as_str())
        .bind(media.state.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO jobs (kind, subject, state, max_attempts, run_after, created_at, updated_at)
             VALUES ($1, $2, 'queued', $3, $4, $4, $4)",
        )
        .bind(TRANSCODE_JOB)
        .bind(media.id.as_str())
        .bind(max_attempts as i32)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        notify_job(&mut tx).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<MediaRecord>, CatalogError> {
        sqlx::query("SELECT * FROM media WHERE id = $1")
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("DELETE FROM jobs WHERE subject = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM media WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn media_files(&self, id: &MediaId) -> Result<Vec<MediaFile>, CatalogError> {
        let rows = sqlx::query("SELECT * FROM media_files WHERE media_id = $1 ORDER BY path")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(media_file_from_row).collect()
    }

    async fn existing_media(&self, ids: &[MediaId]) -> Result<HashSet<MediaId>, CatalogError> {
        let rows = sqlx::query("SELECT id FROM media WHERE id = ANY($1)")
            .bind(strings(ids))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .filter_map(|row| MediaId::parse(row.get::<&str, _>("id")))
            .collect())
    }

    async fn served_prefixes(&self, ids: &[MediaId]) -> Result<HashSet<String>, CatalogError> {
        let rows = sqlx::query(
            "SELECT output_prefix FROM media WHERE output_prefix IS NOT NULL AND id = ANY($1)",
        )
        .bind(strings(ids))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.iter().map(|row| row.get("output_prefix")).collect())
    }

    async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, CatalogError> {
        let at = micros(now());
        let row = sqlx::query(
            "UPDATE jobs
             SET state = 'running', attempts = attempts + 1, lease_token = lease_token + 1,
                 lease_owner = $1, lease_expires_at = $2, updated_at = $3
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= $3
                         ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, lease_token, kind, subject, attempts, max_attempts",
        )
        .bind(owner)
        .bind(at + lease.as_micros() as i64)
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|row| {
            let attempts: i32 = row.get("attempts");
            let max_attempts: i32 = row.get("max_attempts");
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
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2
             WHERE id = $3 AND lease_token = $4 AND state = 'running'",
        )
        .bind(at + duration.as_micros() as i64)
        .bind(at)
        .bind(lease.job_id)
        .bind(lease.token)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The row lock taken here holds until commit: no rescue can slip in between.
        let fenced = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires_at = NULL, updated_at = $1
             WHERE id = $2 AND lease_token = $3 AND state = 'running'",
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
        sqlx::query("DELETE FROM media_files WHERE media_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for file in &output.files {
            sqlx::query(
                "INSERT INTO media_files (media_id, path, size, sha256, content_type)
                 VALUES ($1, $2, $3, $4, $5)",
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
            "UPDATE media SET state = 'ready', progress = 100, error = NULL, output_prefix = $1,
                 renditions = $2, duration = $3, updated_at = $4
             WHERE id = $5",
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(
            "SELECT subject, attempts, max_attempts FROM jobs
             WHERE id = $1 AND lease_token = $2 AND state = 'running' FOR UPDATE",
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
        let attempts: i32 = row.get("attempts");
        let max_attempts: i32 = row.get("max_attempts");
        if retry && attempts < max_attempts {
            requeue(
                &mut tx,
                lease.job_id,
                &subject,
                reason,
                at + backoff(attempts).as_micros() as i64,
                at,
            )
            .await?;
        } else {
            fail(&mut tx, lease.job_id, &subject, reason, at).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn rescue_expired(&self) -> Result<u64, CatalogError> {
        let at = micros(now());
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // SKIP LOCKED: two rescuers never handle the same job; a job being completed is skipped.
        let expired = sqlx::query(
            "SELECT id, subject, attempts, max_attempts FROM jobs
             WHERE state = 'running' AND lease_expires_at < $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(at)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for row in &expired {
            let id: i64 = row.get("id");
            let subject: String = row.get("subject");
            let attempts: i32 = row.get("attempts");
            let max_attempts: i32 = row.get("max_attempts");
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
        let rows = match state {
            Some(state) => sqlx::query(
                "SELECT * FROM jobs WHERE state = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
            )
            .bind(state)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await,
            None => {
                sqlx::query("SELECT * FROM jobs ORDER BY updated_at DESC, id DESC LIMIT $1")
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let media = sqlx::query(
            "UPDATE media SET state = 'queued', progress = 0, error = NULL, updated_at = $1
                 WHERE id = $2 AND state = 'failed'",
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
            "UPDATE jobs SET state = 'queued', attempts = 0, max_attempts = $1, run_after = $2,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
             WHERE subject = $3 AND state = 'failed'",
        )
        .bind(max_attempts as i32)
        .bind(at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if requeued.rows_affected() == 0 {
            sqlx::query("INSERT INTO jobs (kind, subject, state, max_attempts, run_after, created_at, updated_at)
                 VALUES ($1, $2, 'queued', $3, $4, $4, $4)")
                .bind(TRANSCODE_JOB).bind(id.as_str()).bind(max_attempts as i32).bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        notify_job(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn export_page(
        &self,
        table: Table,
        after: Option<&ExportKey>,
        limit: u32,
    ) -> Result<Batch, CatalogError> {
        let (name, key) = (table.name(), table.key_columns());
        let rows = match after {
            Some(after) if !table.fits(after) => return Err(key_mismatch(table, after)),
            None => {
                sqlx::query(&format!("SELECT * FROM {name} ORDER BY {key} LIMIT $1"))
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(ExportKey::Text(id)) => {
                sqlx::query(&format!(
                    "SELECT * FROM {name} WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(id)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
            Some(ExportKey::Job(id)) => {
                sqlx::query("SELECT * FROM jobs WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(id)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(ExportKey::MediaFile { media_id, path }) => {
                sqlx::query(
                    "SELECT * FROM media_files WHERE (media_id, path) > ($1, $2)
                     ORDER BY media_id, path LIMIT $3",
                )
                .bind(media_id)
                .bind(path)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        match batch {
            Batch::Files(files) => {
                upsert(&mut tx, Table::Files, FILE_COLUMNS, files, |row, file| {
                    row.push_bind(file.id.as_str())
                        .push_bind(file.filename.as_deref())
                        .push_bind(&file.content_type)
                        .push_bind(file.size as i64)
                        .push_bind(&file.sha256)
                        .push_bind(file.access.as_str())
                        .push_bind(micros(file.created_at));
                })
                .await?
            }
            Batch::ApiKeys(keys) => {
                upsert(&mut tx, Table::ApiKeys, KEY_COLUMNS, keys, |row, key| {
                    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                    row.push_bind(key.id.as_str())
                        .push_bind(&key.name)
                        .push_bind(&key.token_sha256)
                        .push_bind(scopes.join(" "))
                        .push_bind(micros(key.created_at))
                        .push_bind(key.revoked_at.map(micros));
                })
                .await?
            }
            Batch::Media(media) => {
                let rows = media
                    .iter()
                    .map(|m| Ok((m, serde_json::to_string(&m.renditions)?)))
                    .collect::<Result<Vec<_>, serde_json::Error>>()
                    .map_err(|e| CatalogError::Other(e.into()))?;
                upsert(
                    &mut tx,
                    Table::Media,
                    MEDIA_COLUMNS,
                    &rows,
                    |row, (media, renditions)| {
                        row.push_bind(media.id.as_str())
                            .push_bind(media.file_id.as_str())
                            .push_bind(media.access.as_str())
                            .push_bind(media.state.as_str())
                            .push_bind(media.progress as i32)
                            .push_bind(media.error.as_deref())
                            .push_bind(media.output_prefix.as_deref())
                            .push_bind(renditions.as_str())
                            .push_bind(media.duration)
                            .push_bind(micros(media.created_at))
                            .push_bind(micros(media.updated_at));
                    },
                )
                .await?
            }
            Batch::MediaFiles(files) => {
                upsert(
                    &mut tx,
                    Table::MediaFiles,
                    MEDIA_FILE_COLUMNS,
                    files,
                    |row, f| {
                        row.push_bind(f.media_id.as_str())
                            .push_bind(&f.file.path)
                            .push_bind(f.file.size as i64)
                            .push_bind(&f.file.sha256)
                            .push_bind(&f.file.content_type);
                    },
                )
                .await?
            }
            Batch::Jobs(jobs) => {
                upsert(&mut tx, Table::Jobs, JOB_COLUMNS, jobs, |row, job| {
                    row.push_bind(job.id)
                        .push_bind(&job.kind)
                        .push_bind(&job.subject)
                        .push_bind(&job.state)
                        .push_bind(job.attempts as i32)
                        .push_bind(job.max_attempts as i32)
                        .push_bind(job.lease_token)
                        .push_bind(job.lease_owner.as_deref())
                        .push_bind(job.lease_expires_at.map(micros))
                        .push_bind(micros(job.run_after))
                        .push_bind(job.last_error.as_deref())
                        .push_bind(micros(job.created_at))
                        .push_bind(micros(job.updated_at));
                })
                .await?;
                // Ids given explicitly leave the sequence behind; never move it back, or a new
                // job could take the id (and a stale lease's fencing token) of a deleted one.
                if let Some(max) = jobs.iter().map(|job| job.id).max() {
                    sqlx::query(
                        "SELECT setval(pg_get_serial_sequence('jobs', 'id'),
                                       GREATEST($1, nextval(pg_get_serial_sequence('jobs', 'id'))))",
                    )
                    .bind(max)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                if jobs.iter().any(|job| job.state == "queued") {
                    notify_job(&mut tx).await?;
                }
            }
        }
        tx.commit().await.map_err(db_error)
    }

    async fn count_rows(&self, table: Table) -> Result<u64, CatalogError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table.name()))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn job_counts(&self) -> Result<Vec<(String, u64)>, CatalogError> {
        let rows =
            sqlx::query("SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state")
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
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

const FILE_COLUMNS: &[&str] = &[
    "id",
    "filename",
    "content_type",
    "size",
    "sha256",
    "access",
    "created_at",
];
const KEY_COLUMNS: &[&str] = &[
    "id",
    "name",
    "token_sha256",
    "scopes",
    "created_at",
    "revoked_at",
];
const MEDIA_COLUMNS: &[&str] = &[
    "id",
    "file_id",
    "access",
    "state",
    "progress",
    "error",
    "output_prefix",
    "renditions",
    "duration",
    "created_at",
    "updated_at",
];
const MEDIA_FILE_COLUMNS: &[&str] = &["media_id", "path", "size", "sha256", "content_type"];
const JOB_COLUMNS: &[&str] = &[
    "id",
    "kind",
    "subject",
    "state",
    "attempts",
    "max_attempts",
    "lease_token",
    "lease_owner",
    "lease_expires_at",
    "run_after",
    "last_error",
    "created_at",
    "updated_at",
];

/// PostgreSQL's limit on bind parameters in one statement.
const MAX_BINDS: usize = u16::MAX as usize;

/// Multi-row `INSERT .. ON CONFLICT (key) DO UPDATE` of `rows` into `table`, whose `columns`
/// `bind` fills in order; chunked to stay under the bind-parameter limit.
async fn upsert<'r, T>(
    tx: &mut Tx<'_>,
    table: Table,
    columns: &[&str],
    rows: &'r [T],
    mut bind: impl FnMut(&mut Separated<'_, 'r, Postgres, &'static str>, &'r T),
) -> Result<(), CatalogError> {
    let overwrite: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    for chunk in rows.chunks(MAX_BINDS / columns.len()) {
        let mut insert = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {} ({}) ",
            table.name(),
            columns.join(", ")
        ));
        insert.push_values(chunk, |mut row, record| bind(&mut row, record));
        insert.push(format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            table.key_columns(),
            overwrite.join(", ")
        ));
        insert.build().execute(&mut **tx).await.map_err(db_error)?;
    }
    Ok(())
}

/// Delivered to listeners when the transaction commits, and only then.
async fn notify_job(tx: &mut Tx<'_>) -> Result<(), CatalogError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

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
             run_after = $1, last_error = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(run_after)
    .bind(reason)
    .bind(at)
    .bind(job)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE media SET state = 'queued', progress = 0, updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(subject)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn fail(
    tx: &mut Tx<'_>,
    job: i64,
    subject: &str,
    reason: &str,
    at: i64,
) -> Result<(), CatalogError> {
    sqlx::query(
        "UPDATE jobs SET state = 'failed', lease_expires_at = NULL, last_error = $1,
             updated_at = $2 WHERE id = $3",
    )
    .bind(reason)
    .bind(at)
    .bind(job)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE media SET state = 'failed', error = $1, updated_at = $2 WHERE id = $3")
        .bind(reason)
        .bind(at)
        .bind(subject)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}
