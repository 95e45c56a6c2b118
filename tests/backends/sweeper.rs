//! `sweeper::sweep_once` over a storage and a catalog: a blob no row references goes once it
//! is older than the grace period; a referenced or young blob stays.

use std::time::Duration;

use futures::{stream, StreamExt, TryStreamExt};
use reelay::{
    catalog::{self, Access, DynCatalog, FileRecord},
    ids::FileId,
    storage::{DynStorage, ObjectKey, StorageError},
    sweeper::{sweep_once, SweepReport},
};

use crate::common::sha256_hex;

/// `sweeper_suite!(name, storage fixture, catalog fixture)`.
macro_rules! sweeper_suite {
    ($backends:ident, $storage:expr, $catalog:expr) => {
        mod $backends {
            #[allow(unused_imports)]
            use super::*;

            sweeper_suite!(@cases $storage, $catalog;
                no_grace_removes_unreferenced_blobs_only,
                a_long_grace_keeps_young_blobs
            );
        }
    };
    (@cases $storage:expr, $catalog:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let storage = $storage;
                let catalog = $catalog;
                $crate::sweeper::$case(storage.storage.clone(), catalog.catalog.clone()).await;
            }
        )*
    };
}

/// One blob with a row and one without.
async fn referenced_and_orphan(storage: &DynStorage, catalog: &DynCatalog) -> (FileId, FileId) {
    let mut ids = Vec::new();
    for body in ["referenced", "orphan"] {
        let id = FileId::generate();
        let bytes = bytes::Bytes::from_static(body.as_bytes());
        let chunks = stream::once(async move { Ok(bytes) }).boxed();
        storage.put(&ObjectKey::file(&id), chunks).await.unwrap();
        ids.push(id);
    }
    catalog
        .insert_file(&FileRecord {
            id: ids[0].clone(),
            filename: None,
            content_type: "text/plain".into(),
            size: 10,
            sha256: sha256_hex(b"referenced"),
            access: Access::Private,
            created_at: catalog::now(),
        })
        .await
        .unwrap();
    // Modification times must fall strictly before the sweep's cutoff.
    tokio::time::sleep(Duration::from_millis(20)).await;
    (ids[0].clone(), ids[1].clone())
}

async fn exists(storage: &DynStorage, id: &FileId) -> bool {
    match storage.get(&ObjectKey::file(id), None).await {
        Ok(body) => {
            let _: Vec<_> = body.try_collect().await.unwrap();
            true
        }
        Err(StorageError::NotFound) => false,
        Err(e) => panic!("get: {e:?}"),
    }
}

pub async fn no_grace_removes_unreferenced_blobs_only(storage: DynStorage, catalog: DynCatalog) {
    let (referenced, orphan) = referenced_and_orphan(&storage, &catalog).await;
    let report = sweep_once(&storage, &catalog, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        report,
        SweepReport {
            incomplete_removed: 0,
            orphans_removed: 1,
            uploads_expired: 0,
        }
    );
    assert!(exists(&storage, &referenced).await);
    assert!(!exists(&storage, &orphan).await);
    assert!(catalog.get_file(&referenced).await.unwrap().is_some());

    let again = sweep_once(&storage, &catalog, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again, SweepReport::default());
    assert!(exists(&storage, &referenced).await);
}

pub async fn a_long_grace_keeps_young_blobs(storage: DynStorage, catalog: DynCatalog) {
    let (referenced, orphan) = referenced_and_orphan(&storage, &catalog).await;
    let report = sweep_once(&storage, &catalog, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());
    assert!(exists(&storage, &referenced).await);
    assert!(exists(&storage, &orphan).await);
}
