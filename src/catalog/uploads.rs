//! The uploads and direct-uploads queries, written once for both engines: the SQL uses `$n`
//! placeholders in order of first use, which SQLite and PostgreSQL both accept, and the
//! engine's own `begin_write` (SQLite's `BEGIN IMMEDIATE`) and row type are plugged in.
//!
//! Locks and offsets are written with `begin_relaxed`: committed without waiting for the disk
//! (SQLite `synchronous=NORMAL`, PostgreSQL `synchronous_commit = off`). A power cut may then
//! lose the latest of them, which only moves an offset back to one saved earlier (the bytes were
//! made durable before each save, so an older offset is always backed by them) or frees a
//! lock; the client resends from the offset HEAD reports. Saves whose loss would strand the
//! upload are `durable` (on S3 a saved state lets the previous pending part object go; the
//! completing save, like every acknowledged upload). On fs each PATCH so avoids two synchronous
//! disk flushes while the connection sits idle.

/// Expands to the upload methods of `impl Catalog for ...`; the engine module provides
/// `self.pool`, `self.begin_write()`, `self.begin_relaxed()`, `db_error`, `corrupt` and the `$row` type.
macro_rules! upload_methods {
    ($catalog:ty, $row:ty) => {
        #[async_trait]
        impl $crate::catalog::Uploads for $catalog {
        async fn create_upload(
            &self,
            upload: &$crate::catalog::UploadRecord,
            now: time::OffsetDateTime,
        ) -> Result<bool, CatalogError> {
            let mut tx = self.begin_write().await?;
            if let Some(direct) = &upload.direct_upload_id {
                let claimed = sqlx::query(
                    "UPDATE direct_uploads SET upload_id = $1
                     WHERE id = $2 AND upload_id IS NULL AND cancelled = $3 AND expires_at > $4",
                )
                .bind(upload.id.as_str())
                .bind(direct.as_str())
                .bind(false)
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if claimed.rows_affected() == 0 {
                    return Ok(false);
                }
            }
            sqlx::query(
                "INSERT INTO uploads (id, state, upload_offset, upload_length, data,
                    direct_upload_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(upload.id.as_str())
            .bind(upload.state.as_str())
            .bind(upload.offset as i64)
            .bind(upload.length as i64)
            .bind($crate::catalog::uploads::data_json(&upload.data)?)
            .bind(upload.direct_upload_id.as_ref().map(|d| d.as_str().to_owned()))
            .bind(micros(upload.created_at))
            .bind(micros(upload.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(true)
        }

        async fn get_upload(
            &self,
            id: &$crate::ids::UploadId,
        ) -> Result<Option<$crate::catalog::UploadRecord>, CatalogError> {
            let row: Option<$row> = sqlx::query("SELECT * FROM uploads WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref().map(upload_from_row).transpose()
        }

        async fn lock_upload(
            &self,
            id: &$crate::ids::UploadId,
            token: &str,
            until: time::OffsetDateTime,
            now: time::OffsetDateTime,
        ) -> Result<Option<$crate::catalog::UploadRecord>, CatalogError> {
            let mut tx = self.begin_relaxed().await?;
            let row: Option<$row> = sqlx::query(
                "UPDATE uploads SET lock_token = $1, lock_until = $2
                 WHERE id = $3 AND state = 'active'
                   AND (lock_token IS NULL OR lock_token = $1 OR lock_until < $4)
                 RETURNING *",
            )
            .bind(token)
            .bind(micros(until))
            .bind(id.as_str())
            .bind(micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            row.as_ref().map(upload_from_row).transpose()
        }

        async fn save_upload(
            &self,
            upload: &$crate::catalog::UploadRecord,
            token: &str,
            lock_until: Option<time::OffsetDateTime>,
            durable: bool,
        ) -> Result<bool, CatalogError> {
            let mut tx = if durable {
                self.begin_write().await?
            } else {
                self.begin_relaxed().await?
            };
            let keep = lock_until.map(|_| token.to_owned());
            let done = sqlx::query(
                "UPDATE uploads SET upload_offset = $1, state = $2, data = $3,
                    lock_token = $4, lock_until = $5
                 WHERE id = $6 AND state = 'active' AND lock_token = $7",
            )
            .bind(upload.offset as i64)
            .bind(upload.state.as_str())
            .bind($crate::catalog::uploads::data_json(&upload.data)?)
            .bind(keep)
            .bind(lock_until.map(micros))
            .bind(upload.id.as_str())
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(done.rows_affected() > 0)
        }

        async fn end_upload(
            &self,
            id: &$crate::ids::UploadId,
            state: $crate::catalog::UploadState,
        ) -> Result<bool, CatalogError> {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "UPDATE uploads SET state = $1, lock_token = NULL, lock_until = NULL
                 WHERE id = $2 AND state = 'active'",
            )
            .bind(state.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(done.rows_affected() > 0)
        }

        async fn expired_uploads(
            &self,
            now: time::OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<$crate::catalog::UploadRecord>, CatalogError> {
            let rows: Vec<$row> = sqlx::query(
                "SELECT * FROM uploads
                 WHERE state = 'active' AND expires_at < $1
                   AND (lock_token IS NULL OR lock_until < $1)
                 ORDER BY expires_at LIMIT $2",
            )
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(upload_from_row).collect()
        }

        async fn active_upload_files(&self) -> Result<Vec<String>, CatalogError> {
            let rows: Vec<$row> = sqlx::query("SELECT data FROM uploads WHERE state = 'active'")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    let data: String = row.get("data");
                    serde_json::from_str::<$crate::catalog::UploadData>(&data)
                        .map(|d| d.file_id)
                        .map_err(|_| corrupt("upload data"))
                })
                .collect()
        }

        async fn insert_direct_upload(
            &self,
            direct: &$crate::catalog::DirectUploadRecord,
        ) -> Result<(), CatalogError> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "INSERT INTO direct_uploads (id, token_sha256, max_size, access, transcode,
                    cors_origin, upload_id, cancelled, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(direct.id.as_str())
            .bind(&direct.token_sha256)
            .bind(direct.max_size as i64)
            .bind(direct.access.as_str())
            .bind(direct.transcode)
            .bind(direct.cors_origin.as_deref())
            .bind(direct.upload_id.as_ref().map(|u| u.as_str().to_owned()))
            .bind(direct.cancelled)
            .bind(micros(direct.created_at))
            .bind(micros(direct.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(())
        }

        async fn get_direct_upload(
            &self,
            id: &$crate::ids::DirectUploadId,
        ) -> Result<Option<$crate::catalog::DirectUploadRecord>, CatalogError> {
            let row: Option<$row> = sqlx::query("SELECT * FROM direct_uploads WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref().map(direct_upload_from_row).transpose()
        }

        async fn direct_upload_by_token(
            &self,
            token_sha256: &str,
        ) -> Result<Option<$crate::catalog::DirectUploadRecord>, CatalogError> {
            let row: Option<$row> =
                sqlx::query("SELECT * FROM direct_uploads WHERE token_sha256 = $1")
                    .bind(token_sha256)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?;
            row.as_ref().map(direct_upload_from_row).transpose()
        }

        async fn cancel_direct_upload(
            &self,
            id: &$crate::ids::DirectUploadId,
        ) -> Result<bool, CatalogError> {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "UPDATE direct_uploads SET cancelled = $1
                 WHERE id = $2 AND upload_id IS NULL AND cancelled = $3",
            )
            .bind(true)
            .bind(id.as_str())
            .bind(false)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(done.rows_affected() > 0)
        }
        }
    };
}

/// Expands to `upload_from_row` and `direct_upload_from_row` for the engine's row type.
macro_rules! upload_rows {
    ($row:ty) => {
        fn upload_from_row(row: &$row) -> Result<$crate::catalog::UploadRecord, CatalogError> {
            use $crate::ids::{DirectUploadId, UploadId};
            let id: String = row.get("id");
            let state: String = row.get("state");
            let offset: i64 = row.get("upload_offset");
            let length: i64 = row.get("upload_length");
            let data: String = row.get("data");
            let direct: Option<String> = row.get("direct_upload_id");
            Ok($crate::catalog::UploadRecord {
                id: UploadId::parse(&id).ok_or_else(|| corrupt("upload id"))?,
                state: $crate::catalog::UploadState::parse(&state)
                    .ok_or_else(|| corrupt("upload state"))?,
                offset: u64::try_from(offset).map_err(|_| corrupt("upload offset"))?,
                length: u64::try_from(length).map_err(|_| corrupt("upload length"))?,
                data: serde_json::from_str(&data).map_err(|_| corrupt("upload data"))?,
                direct_upload_id: match direct {
                    Some(d) => Some(DirectUploadId::parse(&d).ok_or_else(|| corrupt("direct id"))?),
                    None => None,
                },
                created_at: from_micros(row.get("created_at"))
                    .ok_or_else(|| corrupt("created_at"))?,
                expires_at: from_micros(row.get("expires_at"))
                    .ok_or_else(|| corrupt("expires_at"))?,
            })
        }

        fn direct_upload_from_row(
            row: &$row,
        ) -> Result<$crate::catalog::DirectUploadRecord, CatalogError> {
            use $crate::ids::{DirectUploadId, UploadId};
            let id: String = row.get("id");
            let access: String = row.get("access");
            let max_size: i64 = row.get("max_size");
            let upload: Option<String> = row.get("upload_id");
            Ok($crate::catalog::DirectUploadRecord {
                id: DirectUploadId::parse(&id).ok_or_else(|| corrupt("direct upload id"))?,
                token_sha256: row.get("token_sha256"),
                max_size: u64::try_from(max_size).map_err(|_| corrupt("max_size"))?,
                access: Access::parse(&access).ok_or_else(|| corrupt("access"))?,
                transcode: row.get("transcode"),
                cors_origin: row.get("cors_origin"),
                upload_id: match upload {
                    Some(u) => Some(UploadId::parse(&u).ok_or_else(|| corrupt("upload id"))?),
                    None => None,
                },
                cancelled: row.get("cancelled"),
                created_at: from_micros(row.get("created_at"))
                    .ok_or_else(|| corrupt("created_at"))?,
                expires_at: from_micros(row.get("expires_at"))
                    .ok_or_else(|| corrupt("expires_at"))?,
            })
        }
    };
}

pub fn data_json(data: &super::UploadData) -> Result<String, super::CatalogError> {
    serde_json::to_string(data).map_err(|e| super::CatalogError::Other(e.into()))
}
