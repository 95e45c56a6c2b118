//! The storage contract (`reelay::storage::Storage`), as one suite every backend must pass.

use std::{io, ops::Range, time::Duration};

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use reelay::{
    error::BodyError,
    ids::FileId,
    storage::{ByteStream, DynStorage, ObjectKey, PutOutcome, StorageError},
};

use crate::{
    common::{pattern, sha256_hex},
    fixtures::Incomplete,
};

/// `storage_suite!(name, fixture)`: one `#[tokio::test]` per case below, against the
/// `StorageFixture` that `fixture` evaluates to (inside each test, so `.await` is fine).
macro_rules! storage_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            storage_suite!(@cases $fixture;
                put_of_an_empty_body,
                put_of_a_small_body,
                put_of_a_multi_chunk_body,
                ranged_get,
                head_reports_the_size,
                missing_keys_are_not_found,
                delete_is_idempotent,
                delete_prefix_removes_that_prefix_only,
                list_shows_complete_objects_only,
                overwrite_is_atomic,
                check_succeeds_and_leaves_nothing,
                concurrent_checks_all_succeed;
            with_incomplete:
                failed_put_leaves_nothing,
                cleanup_incomplete_removes_stale_leftovers_only
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),*; with_incomplete: $($icase:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::storage::$case(fixture.storage.clone()).await;
            }
        )*
        $(
            #[tokio::test]
            async fn $icase() {
                let fixture = $fixture;
                $crate::storage::$icase(fixture.storage.clone(), &*fixture.incomplete).await;
            }
        )*
    };
}

fn new_key() -> ObjectKey {
    ObjectKey::file(&FileId::generate())
}

/// `data` as a stream of chunks of varying sizes (1 byte to ~300 KiB), as a network delivers.
fn chunked(data: &[u8]) -> ByteStream {
    let data = Bytes::copy_from_slice(data);
    let mut chunks = Vec::new();
    let (mut at, mut i) = (0, 0usize);
    while at < data.len() {
        let n = [1, 4096, 65_536, 300_001, 17][i % 5].min(data.len() - at);
        chunks.push(Ok(data.slice(at..at + n)));
        at += n;
        i += 1;
    }
    stream::iter(chunks).boxed()
}

async fn put(storage: &DynStorage, key: &ObjectKey, data: &[u8]) -> PutOutcome {
    storage.put(key, chunked(data)).await.expect("put")
}

async fn read(storage: &DynStorage, key: &ObjectKey, range: Option<Range<u64>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = storage
        .get(key, range)
        .await
        .expect("get")
        .try_collect()
        .await
        .expect("reading the body");
    chunks.concat()
}

#[track_caller]
fn assert_not_found<T>(result: Result<T, StorageError>, what: &str) {
    match result {
        Err(StorageError::NotFound) => {}
        Err(e) => panic!("{what}: expected NotFound, got {e:?}"),
        Ok(_) => panic!("{what}: expected NotFound, got an object"),
    }
}

async fn listed_keys(storage: &DynStorage, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = storage
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

fn outcome_of(data: &[u8]) -> PutOutcome {
    PutOutcome {
        size: data.len() as u64,
        sha256: sha256_hex(data),
    }
}

pub async fn put_of_an_empty_body(storage: DynStorage) {
    let key = new_key();
    let outcome = storage.put(&key, stream::empty().boxed()).await.unwrap();
    assert_eq!(outcome, outcome_of(b""));
    assert_eq!(read(&storage, &key, None).await, b"");
    assert_eq!(storage.head(&key).await.unwrap().size, 0);
}

pub async fn put_of_a_small_body(storage: DynStorage) {
    let key = new_key();
    let body = stream::iter([
        Ok(Bytes::from_static(b"hello, ")),
        Ok(Bytes::new()),
        Ok(Bytes::from_static(b"reelay")),
    ])
    .boxed();
    let outcome = storage.put(&key, body).await.unwrap();
    assert_eq!(outcome, outcome_of(b"hello, reelay"));
    assert_eq!(read(&storage, &key, None).await, b"hello, reelay");
}

pub async fn put_of_a_multi_chunk_body(storage: DynStorage) {
    let key = new_key();
    let data = pattern(1, 6 * 1024 * 1024 + 4321);
    assert_eq!(put(&storage, &key, &data).await, outcome_of(&data));
    let back = read(&storage, &key, None).await;
    assert_eq!(back.len(), data.len());
    assert!(
        back == data,
        "the bytes read back differ from those written"
    );
}

pub async fn ranged_get(storage: DynStorage) {
    let key = new_key();
    let data = pattern(2, 1024 * 1024 + 777);
    put(&storage, &key, &data).await;
    let len = data.len() as u64;
    for range in [
        0..100,
        0..1,
        1000..300_000,
        200_000..len - 1,
        len - 500..len,
        len - 1..len,
        4242..4243,
        0..len,
    ] {
        let got = read(&storage, &key, Some(range.clone())).await;
        let want = &data[range.start as usize..range.end as usize];
        assert!(got == want, "range {range:?}: {} bytes back", got.len());
    }
}

pub async fn head_reports_the_size(storage: DynStorage) {
    let key = new_key();
    let before = std::time::SystemTime::now() - Duration::from_secs(60);
    put(&storage, &key, &pattern(3, 12_345)).await;
    let info = storage.head(&key).await.unwrap();
    assert_eq!(info.key, key.as_str());
    assert_eq!(info.size, 12_345);
    assert!(info.modified > before, "modified time {:?}", info.modified);
}

pub async fn missing_keys_are_not_found(storage: DynStorage) {
    let key = new_key();
    assert_not_found(storage.get(&key, None).await, "get");
    assert_not_found(storage.get(&key, Some(0..1)).await, "ranged get");
    assert_not_found(storage.head(&key).await, "head");
}

pub async fn delete_is_idempotent(storage: DynStorage) {
    let key = new_key();
    put(&storage, &key, b"short-lived").await;
    storage.delete(&key).await.unwrap();
    assert_not_found(storage.head(&key).await, "head after delete");
    assert_not_found(storage.get(&key, None).await, "get after delete");
    storage.delete(&key).await.unwrap();
    storage.delete(&new_key()).await.unwrap();
}

/// In a fresh storage, `files/` holds the file keys; `_probe/` (the only other constructor
/// ObjectKey has today) stands for "everything else".
pub async fn delete_prefix_removes_that_prefix_only(storage: DynStorage) {
    let files: Vec<ObjectKey> = (0..3).map(|_| new_key()).collect();
    for (i, key) in files.iter().enumerate() {
        put(&storage, key, &pattern(10 + i as u64, 1000 + i)).await;
    }
    let bystander = ObjectKey::probe("bystander");
    put(&storage, &bystander, b"not under files/").await;

    let removed = storage
        .delete_prefix(ObjectKey::FILES_PREFIX)
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert!(listed_keys(&storage, ObjectKey::FILES_PREFIX)
        .await
        .is_empty());
    for key in &files {
        assert_not_found(storage.head(key).await, "head of a deleted file");
    }
    assert_eq!(read(&storage, &bystander, None).await, b"not under files/");
    assert_eq!(
        listed_keys(&storage, "_probe/").await,
        vec![bystander.as_str()]
    );

    // The prefix is usable again afterwards, and deleting an empty prefix is fine.
    assert_eq!(storage.delete_prefix("media/").await.unwrap(), 0);
    let again = new_key();
    put(&storage, &again, b"back").await;
    assert_eq!(read(&storage, &again, None).await, b"back");
    storage.delete(&bystander).await.unwrap();
}

pub async fn list_shows_complete_objects_only(storage: DynStorage) {
    let done: Vec<ObjectKey> = (0..2).map(|_| new_key()).collect();
    for key in &done {
        put(&storage, key, &pattern(20, 5000)).await;
    }
    let mut want: Vec<String> = done.iter().map(|k| k.as_str().to_owned()).collect();
    want.sort();
    let listed = storage.list(ObjectKey::FILES_PREFIX).await.unwrap();
    assert!(listed.iter().all(|o| o.size == 5000), "{listed:?}");
    assert_eq!(listed_keys(&storage, ObjectKey::FILES_PREFIX).await, want);

    // A put still waiting for the rest of its body.
    let (tx, rx) = futures::channel::mpsc::unbounded::<io::Result<Bytes>>();
    let pending = new_key();
    let writer = tokio::spawn({
        let (storage, key) = (storage.clone(), pending.clone());
        async move { storage.put(&key, rx.boxed()).await }
    });
    let half = Bytes::from(pattern(21, 3 * 1024 * 1024));
    tx.unbounded_send(Ok(half.clone())).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listed_keys(&storage, ObjectKey::FILES_PREFIX).await, want);
    assert_not_found(storage.head(&pending).await, "head of an unfinished put");
    assert_not_found(
        storage.get(&pending, None).await,
        "get of an unfinished put",
    );

    tx.unbounded_send(Ok(half.clone())).unwrap();
    drop(tx);
    let outcome = writer.await.unwrap().unwrap();
    assert_eq!(outcome.size, 6 * 1024 * 1024);
    want.push(pending.as_str().to_owned());
    want.sort();
    assert_eq!(listed_keys(&storage, ObjectKey::FILES_PREFIX).await, want);
}

/// Readers of a key being overwritten see the old bytes or the new ones, never a mix.
pub async fn overwrite_is_atomic(storage: DynStorage) {
    const LEN: usize = 2 * 1024 * 1024;
    let key = new_key();
    let old = pattern(30, LEN);
    let new = pattern(31, LEN);
    put(&storage, &key, &old).await;

    // The new body trickles in, so that reads overlap the write.
    let trickle = stream::iter(
        new.chunks(64 * 1024)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>(),
    )
    .then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(3)).await;
        Ok(chunk)
    })
    .boxed();
    let writer = tokio::spawn({
        let (storage, key) = (storage.clone(), key.clone());
        async move { storage.put(&key, trickle).await }
    });

    let mut overlapping = 0;
    loop {
        let finished = writer.is_finished();
        let got = read(&storage, &key, None).await;
        assert!(
            got == old || got == new,
            "a reader saw {} bytes that are neither version",
            got.len()
        );
        if finished {
            break;
        }
        overlapping += 1;
    }
    writer.await.unwrap().unwrap();
    assert!(
        overlapping >= 3,
        "only {overlapping} reads overlapped the write"
    );
    assert!(read(&storage, &key, None).await == new);
    assert_eq!(storage.head(&key).await.unwrap().size, LEN as u64);
}

pub async fn check_succeeds_and_leaves_nothing(storage: DynStorage) {
    storage.check().await.unwrap();
    storage.check().await.unwrap();
    assert!(listed_keys(&storage, "").await.is_empty());
}

/// /readyz is probed by several checkers at once (orchestrator, load balancers).
pub async fn concurrent_checks_all_succeed(storage: DynStorage) {
    for _ in 0..10 {
        let checks = (0..8).map(|_| {
            let storage = storage.clone();
            tokio::spawn(async move { storage.check().await })
        });
        for result in futures::future::join_all(checks).await {
            result.unwrap().expect("a concurrent check failed");
        }
    }
    assert!(listed_keys(&storage, "").await.is_empty());
}

/// A body that yields `ok_chunks` chunks of 1 MiB, then fails with `error`.
fn failing_body(ok_chunks: usize, error: io::Error) -> ByteStream {
    let chunk = Bytes::from(pattern(40, 1024 * 1024));
    stream::iter((0..ok_chunks).map(move |_| Ok(chunk.clone())))
        .chain(stream::once(async move { Err(error) }))
        .boxed()
}

pub async fn failed_put_leaves_nothing(storage: DynStorage, incomplete: &dyn Incomplete) {
    let cases = [
        (0, io::Error::other("fails before any byte")),
        (1, io::Error::other("fails after 1 MiB")),
        (
            12,
            BodyError::Disconnected("the client went away".into()).into_io(),
        ),
    ];
    for (ok_chunks, error) in cases {
        let what = format!("a body failing after {ok_chunks} MiB");
        let key = new_key();
        let result = storage.put(&key, failing_body(ok_chunks, error)).await;
        assert!(result.is_err(), "{what}: put succeeded: {result:?}");
        assert_not_found(storage.get(&key, None).await, &what);
        assert_not_found(storage.head(&key).await, &what);
        assert!(listed_keys(&storage, "").await.is_empty(), "{what}: listed");
        assert_eq!(incomplete.list().await, Vec::<String>::new(), "{what}");
    }

    // The body's own failure is told apart from the backend's.
    let result = storage
        .put(&new_key(), failing_body(1, BodyError::Idle.into_io()))
        .await;
    assert!(
        matches!(result, Err(StorageError::Body(BodyError::Idle))),
        "{result:?}"
    );

    // A failed overwrite leaves the old object whole.
    let key = new_key();
    let old = pattern(41, 300_000);
    put(&storage, &key, &old).await;
    let result = storage
        .put(&key, failing_body(3, io::Error::other("gone")))
        .await;
    assert!(result.is_err());
    assert!(read(&storage, &key, None).await == old);
    assert_eq!(incomplete.list().await, Vec::<String>::new());
}

pub async fn cleanup_incomplete_removes_stale_leftovers_only(
    storage: DynStorage,
    incomplete: &dyn Incomplete,
) {
    let key = new_key();
    let data = pattern(50, 100_000);
    put(&storage, &key, &data).await;
    // Real ages, not faked ones: S3 stamps a multipart upload's start itself.
    incomplete.plant().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    incomplete.plant().await;
    let planted = incomplete.list().await;
    assert_eq!(planted.len(), 2, "{planted:?}");

    let removed = storage
        .cleanup_incomplete(Duration::from_secs(1), &Default::default())
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(incomplete.list().await.len(), 1, "the fresh leftover stays");
    assert!(read(&storage, &key, None).await == data);

    // With no grace at all, every leftover goes, and complete objects still stay.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        storage
            .cleanup_incomplete(Duration::ZERO, &Default::default())
            .await
            .unwrap(),
        1
    );
    assert!(incomplete.list().await.is_empty());
    assert!(read(&storage, &key, None).await == data);
    assert_eq!(
        listed_keys(&storage, ObjectKey::FILES_PREFIX).await,
        vec![key.as_str()]
    );
}
