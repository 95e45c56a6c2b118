//! The catalog contract (`reelay::catalog::Catalog`), as one suite every engine must pass.

use std::{collections::HashSet, time::Duration};

use reelay::{
    catalog::{
        self, from_micros, Access, ApiKeyRecord, CatalogError, DynCatalog, FileCursor, FileRecord,
        Scope,
    },
    ids::{FileId, KeyId},
};
use time::OffsetDateTime;

use crate::common::sha256_hex;

/// `catalog_suite!(name, fixture)`: one `#[tokio::test]` per case below, against the
/// `CatalogFixture` that `fixture` evaluates to.
macro_rules! catalog_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            catalog_suite!(@cases $fixture;
                ping_succeeds,
                a_file_record_round_trips,
                a_missing_file_is_none,
                a_duplicate_file_id_is_a_conflict,
                list_files_is_newest_first_with_a_keyset_cursor,
                list_files_is_stable_while_newer_rows_arrive,
                delete_file_tells_whether_a_row_went,
                existing_files_answers_for_many_ids,
                keys_insert_get_list_revoke
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::catalog::$case(fixture.catalog.clone()).await;
            }
        )*
    };
}

fn file_at(created_at: OffsetDateTime) -> FileRecord {
    let id = FileId::generate();
    FileRecord {
        sha256: sha256_hex(id.as_str().as_bytes()),
        id,
        filename: Some("report.pdf".into()),
        content_type: "application/pdf".into(),
        size: 1234,
        access: Access::Private,
        created_at,
    }
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

/// What `list_files` must return for `records`: newest first, ties broken by id, descending.
fn newest_first(records: &[FileRecord]) -> Vec<FileRecord> {
    let mut sorted = records.to_vec();
    sorted.sort_by(|a, b| (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())));
    sorted
}

/// Pages through the whole listing, carrying the cursor through its string form as the API does.
async fn all_pages(
    catalog: &DynCatalog,
    limit: u32,
    mut cursor: Option<FileCursor>,
) -> Vec<Vec<FileRecord>> {
    let mut pages = Vec::new();
    loop {
        let page = catalog.list_files(limit, cursor.as_ref()).await.unwrap();
        assert!(page.len() <= limit as usize);
        let Some(last) = page.last() else {
            return pages;
        };
        let encoded = FileCursor::after(last).encode();
        let decoded = FileCursor::decode(&encoded).expect("our own cursor decodes");
        assert_eq!(decoded, FileCursor::after(last));
        cursor = Some(decoded);
        pages.push(page);
    }
}

pub async fn ping_succeeds(catalog: DynCatalog) {
    catalog.ping().await.unwrap();
}

pub async fn a_file_record_round_trips(catalog: DynCatalog) {
    let everything = FileRecord {
        id: FileId::generate(),
        filename: Some("Résumé «final» 2024 — 日本.pdf".into()),
        content_type: "application/pdf".into(),
        // Past 2^32: sizes are 64-bit everywhere.
        size: 5 * 1024 * 1024 * 1024 + 7,
        sha256: sha256_hex(b"everything"),
        access: Access::Public,
        created_at: catalog::now(),
    };
    let bare = FileRecord {
        id: FileId::generate(),
        filename: None,
        content_type: "text/plain; charset=utf-8".into(),
        size: 0,
        sha256: sha256_hex(b""),
        access: Access::Private,
        created_at: from_micros(1_700_000_000_123_456).unwrap(),
    };
    for record in [&everything, &bare] {
        catalog.insert_file(record).await.unwrap();
    }
    for record in [&everything, &bare] {
        let got = catalog.get_file(&record.id).await.unwrap();
        assert_eq!(got.as_ref(), Some(record));
    }
    let got = catalog.get_file(&bare.id).await.unwrap().unwrap();
    assert_eq!(got.created_at.microsecond(), 123_456);
}

pub async fn a_missing_file_is_none(catalog: DynCatalog) {
    assert_eq!(catalog.get_file(&FileId::generate()).await.unwrap(), None);
}

pub async fn a_duplicate_file_id_is_a_conflict(catalog: DynCatalog) {
    let first = file_at(catalog::now());
    catalog.insert_file(&first).await.unwrap();
    let second = FileRecord {
        filename: Some("other.txt".into()),
        size: 99,
        access: Access::Public,
        ..first.clone()
    };
    let result = catalog.insert_file(&second).await;
    assert!(
        matches!(result, Err(CatalogError::Conflict(_))),
        "{result:?}"
    );
    assert_eq!(catalog.get_file(&first.id).await.unwrap(), Some(first));
}

pub async fn list_files_is_newest_first_with_a_keyset_cursor(catalog: DynCatalog) {
    assert!(catalog.list_files(10, None).await.unwrap().is_empty());

    let base = catalog::now();
    let mut records: Vec<FileRecord> = (0..15).map(|i| file_at(base - secs(i))).collect();
    // Rows that share a timestamp, including the one of a distinct row: the id breaks ties.
    records.extend((0..8).map(|_| file_at(base - secs(7))));
    // Inserted neither in time order nor in id order.
    let (evens, odds): (Vec<_>, Vec<_>) = records.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, record) in evens.into_iter().rev().chain(odds) {
        catalog.insert_file(record).await.unwrap();
    }
    assert_eq!(catalog.list_files(100, None).await.unwrap().len(), 23);
    let want = newest_first(&records);

    let pages = all_pages(&catalog, 5, None).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    assert_eq!(pages.concat(), want);

    assert_eq!(catalog.list_files(100, None).await.unwrap(), want);
    assert_eq!(catalog.list_files(1, None).await.unwrap(), want[..1]);
    // A cursor inside the run of equal timestamps continues right after it.
    let tie = want
        .iter()
        .position(|r| r.created_at == base - secs(7))
        .unwrap();
    let after_tie = catalog
        .list_files(3, Some(&FileCursor::after(&want[tie + 1])))
        .await
        .unwrap();
    assert_eq!(after_tie, want[tie + 2..tie + 5]);

    for garbage in ["", "not a cursor", "bm90LmEuY3Vyc29y", &"A".repeat(200)] {
        assert_eq!(FileCursor::decode(garbage), None, "{garbage:?}");
    }
}

pub async fn list_files_is_stable_while_newer_rows_arrive(catalog: DynCatalog) {
    let base = catalog::now() - secs(60);
    let records: Vec<FileRecord> = (0..12).map(|i| file_at(base - secs(i))).collect();
    for record in &records {
        catalog.insert_file(record).await.unwrap();
    }
    let want = newest_first(&records);

    let first = catalog.list_files(5, None).await.unwrap();
    assert_eq!(first, want[..5]);
    let cursor = FileCursor::after(first.last().unwrap());

    // Newer rows, and one at the cursor's own timestamp that sorts before it by id.
    for i in 1..=4 {
        catalog.insert_file(&file_at(base + secs(i))).await.unwrap();
    }
    let mut same_instant = file_at(cursor.created_at);
    same_instant.id = FileId::parse("fil_zzzzzzzzzzzzzzzzzzzz").unwrap();
    catalog.insert_file(&same_instant).await.unwrap();

    let rest = all_pages(&catalog, 5, Some(cursor)).await;
    assert_eq!(rest.concat(), want[5..]);
}

pub async fn delete_file_tells_whether_a_row_went(catalog: DynCatalog) {
    let doomed = file_at(catalog::now());
    let kept = file_at(catalog::now());
    catalog.insert_file(&doomed).await.unwrap();
    catalog.insert_file(&kept).await.unwrap();
    assert!(catalog.delete_file(&doomed.id).await.unwrap());
    assert_eq!(catalog.get_file(&doomed.id).await.unwrap(), None);
    assert!(!catalog.delete_file(&doomed.id).await.unwrap());
    assert!(!catalog.delete_file(&FileId::generate()).await.unwrap());
    assert_eq!(
        catalog.get_file(&kept.id).await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(catalog.list_files(10, None).await.unwrap(), [kept]);
}

/// More ids than one query may bind (SQLite's chunk is 500), present ones spread across all.
pub async fn existing_files_answers_for_many_ids(catalog: DynCatalog) {
    assert!(catalog.existing_files(&[]).await.unwrap().is_empty());

    let base = catalog::now();
    let present: Vec<FileId> = (0..300)
        .map(|i| file_at(base + secs(i)))
        .map(|r| r.id)
        .collect();
    for (i, id) in present.iter().enumerate() {
        let mut record = file_at(base + secs(i as i64));
        record.id = id.clone();
        catalog.insert_file(&record).await.unwrap();
    }
    let mut asked = Vec::new();
    for id in &present {
        asked.push(id.clone());
        asked.extend((0..3).map(|_| FileId::generate()));
    }
    asked.push(present[0].clone());
    assert!(asked.len() > 1000);

    let found = catalog.existing_files(&asked).await.unwrap();
    let want: HashSet<FileId> = present.iter().cloned().collect();
    assert_eq!(found.len(), want.len());
    assert_eq!(found, want);

    let absent: Vec<FileId> = (0..10).map(|_| FileId::generate()).collect();
    assert!(catalog.existing_files(&absent).await.unwrap().is_empty());
}

pub async fn keys_insert_get_list_revoke(catalog: DynCatalog) {
    let base = catalog::now() - secs(10);
    let key = |name: &str, scopes: Vec<Scope>, at: OffsetDateTime| ApiKeyRecord {
        id: KeyId::generate(),
        name: name.into(),
        token_sha256: sha256_hex(name.as_bytes()),
        scopes,
        created_at: at,
        revoked_at: None,
    };
    let ci = key("ci", vec![Scope::FilesRead, Scope::FilesWrite], base);
    let all = key("", Scope::ALL.to_vec(), base + secs(1));
    let old = ApiKeyRecord {
        revoked_at: Some(base + secs(3)),
        ..key("retired", vec![Scope::MediaRead], base + secs(2))
    };
    for k in [&ci, &all, &old] {
        catalog.insert_key(k).await.unwrap();
    }
    for k in [&ci, &all, &old] {
        assert_eq!(catalog.get_key(&k.id).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(catalog.get_key(&KeyId::generate()).await.unwrap(), None);
    // Oldest first, as `reelay keys list` prints them.
    assert_eq!(
        catalog.list_keys().await.unwrap(),
        [ci.clone(), all.clone(), old.clone()]
    );

    let duplicate = ApiKeyRecord {
        name: "again".into(),
        ..ci.clone()
    };
    let result = catalog.insert_key(&duplicate).await;
    assert!(
        matches!(result, Err(CatalogError::Conflict(_))),
        "{result:?}"
    );

    let before = catalog::now();
    assert!(catalog.revoke_key(&ci.id).await.unwrap());
    let revoked = catalog.get_key(&ci.id).await.unwrap().unwrap();
    let at = revoked.revoked_at.expect("revoked_at is set");
    assert!(
        at >= before && at <= catalog::now() + Duration::from_secs(1),
        "{at}"
    );
    assert_eq!(
        ApiKeyRecord {
            revoked_at: None,
            ..revoked
        },
        ci
    );
    assert!(!catalog.revoke_key(&ci.id).await.unwrap(), "revoked twice");
    assert!(!catalog.revoke_key(&old.id).await.unwrap());
    assert!(!catalog.revoke_key(&KeyId::generate()).await.unwrap());
    assert_eq!(catalog.get_key(&all.id).await.unwrap(), Some(all));
    assert_eq!(catalog.get_key(&old.id).await.unwrap(), Some(old));
}
