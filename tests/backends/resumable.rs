//! Resumable writes (`Storage::resume`/`abandon`), the contract tus uploads stand on, for
//! every storage backend: a write resumes from a checkpoint's state on a fresh handle (as
//! another node would), bytes past the last checkpoint are overwritten, nothing is visible
//! before `finish`, and `abandon` leaves nothing.

use bytes::Bytes;
use reelay::{
    ids::{FileId, UploadId},
    storage::{DynStorage, ObjectKey, StorageError},
};

use crate::{
    common::{pattern, sha256_hex},
    fixtures::Incomplete,
};

const MIB: usize = 1024 * 1024;

macro_rules! resumable_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            resumable_suite!(@cases $fixture;
                a_write_resumes_from_its_checkpoints,
                bytes_past_a_checkpoint_are_overwritten,
                abandon_leaves_nothing
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::resumable::$case(fixture.storage.clone(), &*fixture.incomplete).await;
            }
        )*
    };
}

fn fresh() -> (ObjectKey, String) {
    (
        ObjectKey::file(&FileId::generate()),
        UploadId::generate().to_string(),
    )
}

async fn write_all(w: &mut dyn reelay::storage::Resumable, data: &[u8], chunk: usize) {
    for piece in data.chunks(chunk) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
}

async fn read(storage: &DynStorage, key: &ObjectKey) -> Vec<u8> {
    use futures::TryStreamExt;
    let chunks: Vec<Bytes> = storage
        .get(key, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

pub async fn a_write_resumes_from_its_checkpoints(storage: DynStorage, _: &dyn Incomplete) {
    let (key, upload) = fresh();
    // Three requests of 3 MiB, 7 MiB and 2.5 MiB: below, across and past a 5/8 MiB part.
    let data = pattern(61, 12 * MIB + MIB / 2);
    let cuts = [0, 3 * MIB, 10 * MIB, data.len()];
    let mut state = String::new();
    let mut offset = 0u64;
    for (i, window) in cuts.windows(2).enumerate() {
        let mut w = storage.resume(&key, &upload, &state, offset).await.unwrap();
        write_all(w.as_mut(), &data[window[0]..window[1]], 64 * 1024 + i).await;
        if window[1] == data.len() {
            assert!(
                matches!(storage.head(&key).await, Err(StorageError::NotFound)),
                "visible before finish"
            );
            let outcome = w.finish().await.unwrap();
            assert_eq!(outcome.size, data.len() as u64);
            assert_eq!(outcome.sha256, sha256_hex(&data));
        } else {
            let (at, next) = w.checkpoint().await.unwrap();
            w.committed().await;
            assert_eq!(
                at, window[1] as u64,
                "a checkpoint keeps everything written"
            );
            state = next;
            offset = at;
        }
    }
    assert_eq!(read(&storage, &key).await, data);
    assert!(storage.list("uploads/").await.unwrap().is_empty());
}

pub async fn bytes_past_a_checkpoint_are_overwritten(storage: DynStorage, _: &dyn Incomplete) {
    let (key, upload) = fresh();
    let first = pattern(62, 2 * MIB);
    let lost = pattern(63, MIB);
    let rest = pattern(64, 6 * MIB);
    let mut w = storage.resume(&key, &upload, "", 0).await.unwrap();
    write_all(w.as_mut(), &first, MIB / 2).await;
    let (at, state) = w.checkpoint().await.unwrap();
    w.committed().await;
    // Written, never checkpointed: a request that died.
    write_all(w.as_mut(), &lost, MIB / 2).await;
    drop(w);
    let mut w = storage.resume(&key, &upload, &state, at).await.unwrap();
    write_all(w.as_mut(), &rest, MIB).await;
    let outcome = w.finish().await.unwrap();
    let expected = [first, rest].concat();
    assert_eq!(outcome.sha256, sha256_hex(&expected));
    assert_eq!(read(&storage, &key).await, expected);
}

pub async fn abandon_leaves_nothing(storage: DynStorage, incomplete: &dyn Incomplete) {
    let (key, upload) = fresh();
    let mut w = storage.resume(&key, &upload, "", 0).await.unwrap();
    write_all(w.as_mut(), &pattern(65, 7 * MIB), MIB).await;
    let (_, state) = w.checkpoint().await.unwrap();
    w.committed().await;
    drop(w);
    storage.abandon(&key, &upload, &state).await.unwrap();
    // Twice is fine.
    storage.abandon(&key, &upload, &state).await.unwrap();
    assert!(matches!(
        storage.head(&key).await,
        Err(StorageError::NotFound)
    ));
    assert!(storage.list("uploads/").await.unwrap().is_empty());
    assert!(
        incomplete.list().await.is_empty(),
        "{:?}",
        incomplete.list().await
    );
}
