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
    from_micros, micros, Access, ApiKeyRecord, Catalog, CatalogError, FileCursor, FileRecord, Scope,
};
use crate::ids::{FileId, KeyId};

pub struct SqliteCatalog {
    pool: SqlitePool,
}

impl SqliteCatalog {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing catalog URL {url}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged upload's row survives a power cut, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("opening the SQLite catalog")?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("migrating the SQLite catalog")?;
        Ok(Self { pool })
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
        let rows = match after {
            Some(cursor) => {
                sqlx::query(
                    "SELECT * FROM files
                     WHERE created_at < ?1 OR (created_at = ?1 AND id < ?2)
                     ORDER BY created_at DESC, id DESC LIMIT ?3",
                )
                .bind(micros(cursor.created_at))
                .bind(cursor.id.as_str())
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query("SELECT * FROM files ORDER BY created_at DESC, id DESC LIMIT ?")
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_error)?;
        rows.iter().map(file_from_row).collect()
    }

    async fn delete_file(&self, id: &FileId) -> Result<bool, CatalogError> {
        let n = self
            .write(sqlx::query("DELETE FROM files WHERE id = ?").bind(id.as_str()))
            .await?;
        Ok(n > 0)
    }

    async fn existing_files(&self, ids: &[FileId]) -> Result<HashSet<FileId>, CatalogError> {
        let mut found = HashSet::new();
        // Stay well under SQLite's bound-parameter limit.
        for chunk in ids.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT id FROM files WHERE id IN ({placeholders})");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.pool).await.map_err(db_error)? {
                let id: String = row.get("id");
                found.extend(FileId::parse(&id));
            }
        }
        Ok(found)
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
