//! Backends under test. A fixture owns whatever keeps its backend alive (a temp dir today; a
//! bucket or a database to drop later) and, for storage, a view of what unfinished writes leave
//! behind, which only the backend itself can show (fs: temp files; S3: multipart uploads).

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use reelay::{
    catalog::{DynCatalog, SqliteCatalog},
    storage::{DynStorage, FsStorage},
};

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
    /// Leaves behind an unfinished write that looks `age` old.
    async fn plant(&self, age: Duration);
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

    async fn plant(&self, age: Duration) {
        let dir = self.root.join("files");
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!(".x.tmp-{}", reelay::ids::random_secret(6));
        let file = std::fs::File::create(dir.join(name)).unwrap();
        std::io::Write::write_all(&mut &file, b"half an upload").unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }
}
