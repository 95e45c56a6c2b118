//! Object keys are made by the server only, from its own ids: a client's filename never
//! reaches a key or a path.

use crate::ids::FileId;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub const FILES_PREFIX: &'static str = "files/";

    pub fn file(id: &FileId) -> Self {
        Self(format!("{}{id}", Self::FILES_PREFIX))
    }

    /// A key for the storage's own probes (`check`), never shown to clients.
    pub fn probe(name: &str) -> Self {
        debug_assert!(is_safe_segment(name));
        Self(format!("_probe/{name}"))
    }

    /// The file id a listed key belongs to, if it is a file key.
    pub fn file_id_of(key: &str) -> Option<FileId> {
        FileId::parse(key.strip_prefix(Self::FILES_PREFIX)?)
    }

    /// A key read back from a listing, if it is one the server could have made.
    pub fn from_listing(key: &str) -> Option<Self> {
        is_safe_key(key).then(|| Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key segment a backend may map to a path: letters, digits, `_`, `-`, `.`, never `.`/`..`.
pub(crate) fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Every segment of a key (or a prefix ending in '/') is safe.
pub(crate) fn is_safe_key(key: &str) -> bool {
    let key = key.strip_suffix('/').unwrap_or(key);
    !key.is_empty() && key.split('/').all(is_safe_segment)
}
