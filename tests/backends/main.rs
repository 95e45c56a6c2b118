//! One storage suite and one catalog suite, written once and run against every backend
//! (STYLE.md 14). A backend joins with one line per suite; each line expands to one
//! `#[tokio::test]` per case, in a module named after the backend (`fs::ranged_get`, ...).
//!
//! Adding S3 or PostgreSQL later:
//!
//! ```ignore
//! storage_suite!(s3, s3_storage().await);
//! catalog_suite!(postgres, postgres_catalog().await);
//! sweeper_suite!(s3_postgres, s3_storage().await, postgres_catalog().await);
//! ```

#[path = "../common/mod.rs"]
mod common;

mod fixtures;
#[macro_use]
mod storage;
#[macro_use]
mod catalog;
#[macro_use]
mod sweeper;
#[macro_use]
mod jobs;
mod migrate;
#[macro_use]
mod resumable;
#[macro_use]
mod uploads;

use fixtures::{fs_storage, postgres_catalog, s3_storage, sqlite_catalog};

storage_suite!(fs, fs_storage().await);
storage_suite!(s3, s3_storage().await);
catalog_suite!(sqlite, sqlite_catalog().await);
jobs_suite!(sqlite_jobs, sqlite_catalog().await);
catalog_suite!(postgres, postgres_catalog().await);
jobs_suite!(postgres_jobs, postgres_catalog().await);
sweeper_suite!(fs_sqlite, fs_storage().await, sqlite_catalog().await);
sweeper_suite!(s3_postgres, s3_storage().await, postgres_catalog().await);
resumable_suite!(fs_resumable, fs_storage().await);
resumable_suite!(s3_resumable, s3_storage().await);
uploads_suite!(sqlite_uploads, sqlite_catalog().await);
uploads_suite!(postgres_uploads, postgres_catalog().await);
