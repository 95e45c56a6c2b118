//! The uploads part of the catalog (`reelay::catalog::Uploads`) on every engine: locks that
//! fence, saves that fail once the lock is lost, ends that break locks, expiry, and direct
//! uploads that allow exactly one upload.

use std::time::Duration;

use reelay::{
    catalog::{
        self, Access, DirectUploadRecord, DynCatalog, UploadData, UploadRecord, UploadState,
    },
    ids::{DirectUploadId, FileId, UploadId},
};

macro_rules! uploads_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            uploads_suite!(@cases $fixture;
                an_upload_round_trips,
                locks_fence_saves,
                ending_breaks_the_lock,
                expired_uploads_are_listed_unless_held,
                a_direct_upload_allows_one_upload
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::uploads::$case(fixture.catalog.clone()).await;
            }
        )*
    };
}

fn upload(expires_in: i64, direct: Option<DirectUploadId>) -> UploadRecord {
    let now = catalog::now();
    UploadRecord {
        id: UploadId::generate(),
        state: UploadState::Active,
        offset: 0,
        length: 1000,
        data: UploadData {
            file_id: FileId::generate().to_string(),
            filename: Some("a.bin".into()),
            content_type: None,
            access: Access::Public,
            transcode: false,
            metadata: "filename YS5iaW4=".into(),
            storage: String::new(),
            media_id: None,
        },
        direct_upload_id: direct,
        created_at: now,
        expires_at: now + time::Duration::seconds(expires_in),
    }
}

fn later(seconds: u64) -> time::OffsetDateTime {
    catalog::now() + Duration::from_secs(seconds)
}

pub async fn an_upload_round_trips(catalog: DynCatalog) {
    let u = upload(3600, None);
    assert!(catalog.create_upload(&u, catalog::now()).await.unwrap());
    assert_eq!(catalog.get_upload(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        catalog.get_upload(&UploadId::generate()).await.unwrap(),
        None
    );
    assert_eq!(
        catalog.active_upload_files().await.unwrap(),
        vec![u.data.file_id.clone()]
    );
}

pub async fn locks_fence_saves(catalog: DynCatalog) {
    let mut u = upload(3600, None);
    catalog.create_upload(&u, catalog::now()).await.unwrap();
    let now = catalog::now();
    assert!(catalog
        .lock_upload(&u.id, "a", later(15), now)
        .await
        .unwrap()
        .is_some());
    assert!(
        catalog
            .lock_upload(&u.id, "b", later(15), now)
            .await
            .unwrap()
            .is_none(),
        "held by a"
    );
    // The holder may extend its own lock.
    assert!(catalog
        .lock_upload(&u.id, "a", later(15), now)
        .await
        .unwrap()
        .is_some());
    // Past a's expiry, b takes over, and a's save is refused.
    assert!(catalog
        .lock_upload(&u.id, "b", later(30), later(20))
        .await
        .unwrap()
        .is_some());
    u.offset = 500;
    assert!(!catalog.save_upload(&u, "a", None, false).await.unwrap());
    assert_eq!(catalog.get_upload(&u.id).await.unwrap().unwrap().offset, 0);
    assert!(catalog
        .save_upload(&u, "b", Some(later(15)), true)
        .await
        .unwrap());
    assert_eq!(
        catalog.get_upload(&u.id).await.unwrap().unwrap().offset,
        500
    );
    // Released: anyone may take it.
    assert!(catalog.save_upload(&u, "b", None, false).await.unwrap());
    assert!(catalog
        .lock_upload(&u.id, "c", later(15), catalog::now())
        .await
        .unwrap()
        .is_some());
    // Completed: no further lock.
    u.state = UploadState::Completed;
    u.offset = 1000;
    assert!(catalog.save_upload(&u, "c", None, false).await.unwrap());
    assert!(catalog
        .lock_upload(&u.id, "d", later(15), catalog::now())
        .await
        .unwrap()
        .is_none());
    assert!(catalog.active_upload_files().await.unwrap().is_empty());
}

pub async fn ending_breaks_the_lock(catalog: DynCatalog) {
    let u = upload(3600, None);
    catalog.create_upload(&u, catalog::now()).await.unwrap();
    assert!(catalog
        .lock_upload(&u.id, "a", later(15), catalog::now())
        .await
        .unwrap()
        .is_some());
    assert!(catalog
        .end_upload(&u.id, UploadState::Terminated)
        .await
        .unwrap());
    assert!(!catalog
        .end_upload(&u.id, UploadState::Terminated)
        .await
        .unwrap());
    assert!(
        !catalog.save_upload(&u, "a", None, false).await.unwrap(),
        "a terminated upload takes no save"
    );
    let stored = catalog.get_upload(&u.id).await.unwrap().unwrap();
    assert_eq!(stored.state, UploadState::Terminated);
}

pub async fn expired_uploads_are_listed_unless_held(catalog: DynCatalog) {
    let live = upload(3600, None);
    let expired = upload(-10, None);
    let held = upload(-10, None);
    for u in [&live, &expired, &held] {
        catalog.create_upload(u, catalog::now()).await.unwrap();
    }
    assert!(catalog
        .lock_upload(&held.id, "x", later(15), catalog::now())
        .await
        .unwrap()
        .is_some());
    let found: Vec<UploadId> = catalog
        .expired_uploads(catalog::now(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(found, vec![expired.id.clone()]);
    assert!(catalog
        .end_upload(&expired.id, UploadState::Expired)
        .await
        .unwrap());
    assert!(catalog
        .expired_uploads(catalog::now(), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn a_direct_upload_allows_one_upload(catalog: DynCatalog) {
    let now = catalog::now();
    let direct = |expires: i64| DirectUploadRecord {
        id: DirectUploadId::generate(),
        token_sha256: reelay::ids::random_secret(16),
        max_size: 100,
        access: Access::Private,
        transcode: true,
        cors_origin: Some("https://app.example".into()),
        upload_id: None,
        cancelled: false,
        created_at: now,
        expires_at: now + time::Duration::seconds(expires),
    };
    let d = direct(3600);
    catalog.insert_direct_upload(&d).await.unwrap();
    assert_eq!(
        catalog.get_direct_upload(&d.id).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(
        catalog
            .direct_upload_by_token(&d.token_sha256)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(d.id.clone())
    );
    let first = upload(3600, Some(d.id.clone()));
    assert!(catalog.create_upload(&first, catalog::now()).await.unwrap());
    let second = upload(3600, Some(d.id.clone()));
    assert!(!catalog
        .create_upload(&second, catalog::now())
        .await
        .unwrap());
    assert_eq!(
        catalog.get_upload(&second.id).await.unwrap(),
        None,
        "nothing half-made"
    );
    assert_eq!(
        catalog
            .get_direct_upload(&d.id)
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        Some(first.id.clone())
    );
    assert!(
        !catalog.cancel_direct_upload(&d.id).await.unwrap(),
        "a used one is not cancelled"
    );

    let expired = direct(-1);
    catalog.insert_direct_upload(&expired).await.unwrap();
    assert!(!catalog
        .create_upload(&upload(3600, Some(expired.id.clone())), catalog::now())
        .await
        .unwrap());

    let cancelled = direct(3600);
    catalog.insert_direct_upload(&cancelled).await.unwrap();
    assert!(catalog.cancel_direct_upload(&cancelled.id).await.unwrap());
    assert!(!catalog
        .create_upload(&upload(3600, Some(cancelled.id.clone())), catalog::now())
        .await
        .unwrap());
    assert!(
        catalog
            .get_direct_upload(&cancelled.id)
            .await
            .unwrap()
            .unwrap()
            .cancelled
    );
}
