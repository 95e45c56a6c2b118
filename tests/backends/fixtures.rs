//! Backends under test. A fixture owns whatever keeps its backend alive (a temp dir today; a
//! bucket or a database to drop later) and, for storage, a view of what unfinished writes leave
//! behind, which only the backend itself can show (fs: temp files; S3: multipart uploads).

use std::path::PathBuf;

use async_trait::async_trait;
use reelay::{
    catalog::{DynCatalog, SqliteCatalog},
    storage::{DynStorage, FsStorage, ObjectKey, S3Storage},
};

use crate::common::seaweed::Seaweed;

pub struct StorageFixture {
    pub storage: DynStorage,
    pub incomplete: Box<dyn Incomplete>,
    _keep: Box<dyn Send + Sync>,
}

pub struct CatalogFixture {
    pub catalog: DynCatalog,
    _keep: Box<dyn Send + Sync>,
}

/// The backend's own record of writes that never finished.
#[async_trait]
pub trait Incomplete: Send + Sync {
    /// Every leftover of an unfinished write, by name.
    async fn list(&self) -> Vec<String>;
    /// Leaves behind an unfinished write, started now.
    async fn plant(&self);
}

pub async fn fs_storage() -> StorageFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("objects");
    let storage = FsStorage::open(&root).await.expect("fs storage opens");
    StorageFixture {
        storage: std::sync::Arc::new(storage),
        incomplete: Box::new(FsTempFiles { root }),
        _keep: Box::new(dir),
    }
}

pub async fn sqlite_catalog() -> CatalogFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let catalog = SqliteCatalog::open(&url)
        .await
        .expect("sqlite catalog opens");
    CatalogFixture {
        catalog: std::sync::Arc::new(catalog),
        _keep: Box::new(dir),
    }
}

/// FsStorage writes `.<name>.tmp-<random>` beside the target; no key starts with '.'.
struct FsTempFiles {
    root: PathBuf,
}

#[async_trait]
impl Incomplete for FsTempFiles {
    async fn list(&self) -> Vec<String> {
        crate::common::files_under(&self.root)
            .into_iter()
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
            })
            .map(|path| path.strip_prefix(&self.root).unwrap().display().to_string())
            .collect()
    }

    async fn plant(&self) {
        let dir = self.root.join("files");
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!(".x.tmp-{}", reelay::ids::random_secret(6));
        let file = std::fs::File::create(dir.join(name)).unwrap();
        std::io::Write::write_all(&mut &file, b"half an upload").unwrap();
    }
}

/// A fresh schema on the test PostgreSQL server.
pub async fn postgres_catalog() -> CatalogFixture {
    let (options, _) = crate::common::postgres::fresh_schema().await;
    let catalog = reelay::catalog::PostgresCatalog::open_with(options)
        .await
        .expect("postgres catalog opens");
    CatalogFixture {
        catalog: std::sync::Arc::new(catalog),
        _keep: Box::new(()),
    }
}

/// A fresh bucket on the shared SeaweedFS server.
pub async fn s3_storage() -> StorageFixture {
    let storage = std::sync::Arc::new(Seaweed::shared().bucket().await);
    StorageFixture {
        storage: storage.clone(),
        incomplete: Box::new(S3MultipartUploads { storage }),
        _keep: Box::new(()),
    }
}

/// S3's unfinished writes are multipart uploads that were never completed or aborted.
struct S3MultipartUploads {
    storage: std::sync::Arc<S3Storage>,
}

#[async_trait]
impl Incomplete for S3MultipartUploads {
    async fn list(&self) -> Vec<String> {
        let page = self
            .storage
            .client()
            .list_multipart_uploads()
            .bucket(self.storage.bucket())
            .send()
            .await
            .expect("list multipart uploads");
        page.uploads()
            .iter()
            .map(|u| {
                format!(
                    "{}#{}",
                    u.key().unwrap_or_default(),
                    u.upload_id().unwrap_or_default()
                )
            })
            .collect()
    }

    async fn plant(&self) {
        let key = ObjectKey::file(&reelay::ids::FileId::generate());
        self.storage
            .client()
            .create_multipart_upload()
            .bucket(self.storage.bucket())
            .key(key.as_str())
            .send()
            .await
            .expect("create multipart upload");
    }
}
