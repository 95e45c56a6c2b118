//! Writes that span many requests, possibly on different nodes (tus uploads). The backend
//! keeps an opaque state string that the catalog stores next to the upload's offset; any node
//! can resume from it. The object appears at its key only when `finish` runs, so a partial
//! upload is never visible.
//!
//! The SHA-256 of the whole object is computed across requests: the hash state is saved with
//! each checkpoint (sha2 0.11's serializable state), so finishing never reads the object back.

use async_trait::async_trait;
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use sha2_resumable::{
    digest::{common::hazmat::SerializableState, Digest},
    Sha256,
};

use super::{PutOutcome, StorageError};

/// One request's view of a resumable write, opened at the durable offset.
#[async_trait]
pub trait Resumable: Send {
    /// Takes the next bytes.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Makes what can be made durable so; returns the durable offset (never more than was
    /// written) and the state to store with it.
    async fn checkpoint(&mut self) -> Result<(u64, String), StorageError>;

    /// Called after the catalog stored the last checkpoint: leftovers it supersedes may go.
    async fn committed(&mut self) {}

    /// Whether the catalog must store a checkpoint durably before `committed`: true when
    /// `committed` removes what an older checkpoint's state still names.
    fn durable_commits(&self) -> bool {
        false
    }

    /// Everything is written: the object appears at its key, whole. Idempotent callers check
    /// for the object first; this runs once.
    async fn finish(self: Box<Self>) -> Result<PutOutcome, StorageError>;
}

/// A SHA-256 that can be stopped and resumed elsewhere.
pub struct HashState(Sha256);

impl HashState {
    /// `saved` is what `save` returned, or empty for a new hash.
    pub fn restore(saved: &str) -> Result<Self, StorageError> {
        if saved.is_empty() {
            return Ok(Self(Sha256::new()));
        }
        let bytes = STANDARD.decode(saved).map_err(|_| corrupt("hash state"))?;
        let state = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("hash state"))?;
        Sha256::deserialize(state)
            .map(Self)
            .map_err(|_| corrupt("hash state"))
    }

    pub fn save(&self) -> String {
        STANDARD.encode(self.0.serialize().as_slice())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

pub(super) fn corrupt(what: &str) -> StorageError {
    StorageError::Other(anyhow::anyhow!(
        "the resumable upload's {what} is unreadable"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_hash_resumes_to_the_same_digest() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut first = HashState::restore("").unwrap();
        first.update(&data[..33_333]);
        let saved = first.save();
        let mut resumed = HashState::restore(&saved).unwrap();
        resumed.update(&data[33_333..]);
        let whole = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        assert_eq!(resumed.hex(), whole);
        assert!(HashState::restore("not base64!").is_err());
        assert!(HashState::restore("AAAA").is_err());
    }
}
