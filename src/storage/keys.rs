//! Object keys are made by the server only, from its own ids: a client's filename never
//! reaches a key or a path.

use crate::ids::{FileId, MediaId};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub const FILES_PREFIX: &'static str = "files/";

    pub fn file(id: &FileId) -> Self {
        Self(format!("{}{id}", Self::FILES_PREFIX))
    }

    pub const MEDIA_PREFIX: &'static str = "media/";

    /// Everything stored for a media, every run included: `media/<id>/`.
    pub fn media_prefix(id: &MediaId) -> String {
        format!("{}{id}/", Self::MEDIA_PREFIX)
    }

    /// The prefix one transcode run writes under: `media/<id>/<run>/`. Each run has its own,
    /// so a failed or fenced-out run never overwrites the output that is served.
    pub fn media_run_prefix(id: &MediaId, run: &str) -> String {
        debug_assert!(is_safe_segment(run));
        format!("{}{run}/", Self::media_prefix(id))
    }

    /// A file of a run's output; `path` comes from the transcoder (or a delivery path checked
    /// against the catalog's list), and must be made of safe segments.
    pub fn media_file(prefix: &str, path: &str) -> Option<Self> {
        let key = format!("{prefix}{path}");
        (is_safe_key(&key) && prefix.starts_with(Self::MEDIA_PREFIX)).then_some(Self(key))
    }

    /// The media id and run prefix a listed key belongs to, if it is a media output key.
    pub fn media_run_of(key: &str) -> Option<(MediaId, String)> {
        let rest = key.strip_prefix(Self::MEDIA_PREFIX)?;
        let mut parts = rest.splitn(3, '/');
        let id = MediaId::parse(parts.next()?)?;
        let run = parts.next()?;
        parts.next()?;
        let prefix = Self::media_run_prefix(&id, run);
        Some((id, prefix))
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

/// A relative path of safe segments, such as a media output file's.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty() && !path.ends_with('/') && path.split('/').all(is_safe_segment)
}

/// Every segment of a key (or a prefix ending in '/') is safe.
pub(crate) fn is_safe_key(key: &str) -> bool {
    let key = key.strip_suffix('/').unwrap_or(key);
    !key.is_empty() && key.split('/').all(is_safe_segment)
}
