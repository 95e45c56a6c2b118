//! The embedded default: objects as files under `<data dir>/objects`.
//!
//! A write goes to a temp file in the target's own directory, is fsynced, renamed over the
//! target and the directory is fsynced, so a reader sees the whole object or nothing, and an
//! acknowledged object survives a power cut. Temp files start with '.', which no key can.

use std::{
    io::SeekFrom,
    ops::Range,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::{
    keys::is_safe_key, resumable, ByteStream, HashState, Hashing, ObjectInfo, ObjectKey,
    PutOutcome, Resumable, Storage, StorageError,
};

const TEMP_MARK: &str = ".tmp-";
/// Partial files of resumable uploads, outside every key prefix the sweeper walks.
const UPLOADS_DIR: &str = "uploads";
const WRITE_BUFFER: usize = 256 * 1024;
const READ_CHUNK: usize = 128 * 1024;

pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    pub async fn open(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        tokio::fs::create_dir_all(&root)
            .await
            .with_context(|| format!("creating storage directory {}", root.display()))?;
        Ok(Self { root })
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        // Keys come from the server, so this only fails on a bug; refuse rather than escape.
        if !is_safe_key(key) {
            return Err(StorageError::Other(anyhow::anyhow!(
                "unsafe object key {key:?}"
            )));
        }
        Ok(self.root.join(key))
    }

    async fn write_temp(&self, temp: &Path, body: ByteStream) -> Result<PutOutcome, StorageError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)
            .await
            .map_err(StorageError::from_io)?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut body = Hashing::new(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::from_io)?;
            out.write_all(&chunk).await.map_err(StorageError::from_io)?;
        }
        out.flush().await.map_err(StorageError::from_io)?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(StorageError::from_io)?;
        Ok(body.finish())
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// Bodies up to this size are read whole when the file is opened.
const SMALL_READ: u64 = 64 * 1024;

enum Opened {
    Small(bytes::Bytes),
    /// Positioned at the range's start; `len` bytes to read.
    Large(std::fs::File, u64),
}

fn open_and_read_small(path: &Path, range: Option<Range<u64>>) -> std::io::Result<Opened> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    let (start, len) = match range {
        Some(r) => (r.start, r.end - r.start),
        None => (0, file.metadata()?.len()),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))?;
    }
    if len > SMALL_READ {
        return Ok(Opened::Large(file, len));
    }
    let mut buffer = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buffer)?;
    Ok(Opened::Small(buffer.into()))
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Walks `dir` without following symlinks, calling `visit` for every regular file.
async fn walk(
    dir: PathBuf,
    visit: &mut (dyn FnMut(&Path, &std::fs::Metadata) + Send),
) -> std::io::Result<()> {
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            let meta = tokio::fs::symlink_metadata(entry.path()).await?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                visit(&entry.path(), &meta);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(&self, key: &ObjectKey, body: ByteStream) -> Result<PutOutcome, StorageError> {
        let target = self.path_of(key.as_str())?;
        let dir = target.parent().expect("keys have a directory").to_owned();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(StorageError::from_io)?;
        let name = target
            .file_name()
            .expect("keys have a name")
            .to_string_lossy();
        let temp = dir.join(format!(
            ".{name}{TEMP_MARK}{}",
            crate::ids::random_secret(9)
        ));

        let outcome = match self.write_temp(&temp, body).await {
            Ok(outcome) => outcome,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        if let Err(e) = tokio::fs::rename(&temp, &target).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(StorageError::from_io(e));
        }
        sync_dir(&dir).await.map_err(StorageError::from_io)?;
        Ok(outcome)
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let path = self.path_of(key.as_str())?;
        // Opening a file and reading a small one whole happen right here, as nginx does without
        // thread pools: from the page cache they take microseconds, while a trip to the blocking
        // pool costs two thread wake-ups, which dominated small-file delivery in profiles. Larger
        // bodies stream through tokio's blocking pool.
        let opened = open_and_read_small(&path, range).map_err(StorageError::from_io)?;
        Ok(match opened {
            Opened::Small(bytes) => futures::stream::once(async { Ok(bytes) }).boxed(),
            Opened::Large(file, len) => {
                ReaderStream::with_capacity(tokio::fs::File::from_std(file).take(len), READ_CHUNK)
                    .boxed()
            }
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        let path = self.path_of(key.as_str())?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(StorageError::from_io)?;
        Ok(ObjectInfo {
            key: key.as_str().to_owned(),
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let path = self.path_of(key.as_str())?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::from_io(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let objects = self.list(prefix).await?;
        for object in &objects {
            let path = self.path_of(&object.key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::from_io(e)),
            }
        }
        // Remove the emptied directory tree if the prefix names one; leftovers are harmless.
        if let Some(dir) = prefix.strip_suffix('/') {
            if is_safe_key(dir) {
                let _ = tokio::fs::remove_dir_all(self.root.join(dir)).await;
            }
        }
        Ok(objects.len() as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        // Walk the deepest directory the prefix names, then filter by the full prefix.
        let dir_part = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path_of(dir_part)?
        };
        let root = self.root.clone();
        let mut found = Vec::new();
        walk(start, &mut |path, meta| {
            let Ok(rel) = path.strip_prefix(&root) else {
                return;
            };
            let key = rel
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            let name = key.rsplit('/').next().unwrap_or_default();
            if key.starts_with(prefix) && !is_temp(name) && is_safe_key(&key) {
                found.push(ObjectInfo {
                    key,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        })
        .await
        .map_err(StorageError::from_io)?;
        Ok(found)
    }

    async fn cleanup_incomplete(
        &self,
        older_than: Duration,
        // Resumable uploads write outside the key tree (`uploads/`), which this never walks.
        _keep: &std::collections::HashSet<String>,
    ) -> Result<u64, StorageError> {
        let cutoff = SystemTime::now() - older_than;
        let mut stale = Vec::new();
        walk(self.root.clone(), &mut |path, meta| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if is_temp(&name) && meta.modified().map(|m| m < cutoff).unwrap_or(false) {
                stale.push(path.to_owned());
            }
        })
        .await
        .map_err(StorageError::from_io)?;
        for path in &stale {
            let _ = tokio::fs::remove_file(path).await;
        }
        Ok(stale.len() as u64)
    }

    async fn resume(
        &self,
        key: &ObjectKey,
        upload: &str,
        state: &str,
        offset: u64,
    ) -> Result<Box<dyn Resumable>, StorageError> {
        let partial = self.path_of(&format!("{UPLOADS_DIR}/{upload}"))?;
        let target = self.path_of(key.as_str())?;
        let saved: FsState = if state.is_empty() {
            FsState::default()
        } else {
            serde_json::from_str(state).map_err(|_| resumable::corrupt("state"))?
        };
        let hash = HashState::restore(&saved.sha256_state)?;
        tokio::fs::create_dir_all(partial.parent().expect("has a parent"))
            .await
            .map_err(StorageError::from_io)?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .await
            .map_err(StorageError::from_io)?;
        let on_disk = file.metadata().await.map_err(StorageError::from_io)?.len();
        if on_disk < offset {
            return Err(StorageError::Other(anyhow::anyhow!(
                "the partial upload holds {on_disk} bytes, fewer than its offset {offset}"
            )));
        }
        // Bytes past the offset are from a request that never checkpointed: overwritten.
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(StorageError::from_io)?;
        Ok(Box::new(FsResumable {
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            partial,
            target,
            written: offset,
            hash,
            writeback_from: offset,
        }))
    }

    async fn abandon(
        &self,
        _key: &ObjectKey,
        upload: &str,
        _state: &str,
    ) -> Result<(), StorageError> {
        let partial = self.path_of(&format!("{UPLOADS_DIR}/{upload}"))?;
        match tokio::fs::remove_file(&partial).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::from_io(e)),
            _ => Ok(()),
        }
    }

    async fn check(&self) -> Result<(), StorageError> {
        // One key per call: concurrent probes must not delete each other's object.
        let key = ObjectKey::probe(&format!("readyz-{}", crate::ids::random_secret(9)));
        let body = futures::stream::once(async { Ok(bytes::Bytes::from_static(b"ok")) }).boxed();
        self.put(&key, body)
            .await
            .map_err(|e| StorageError::Unavailable(anyhow::anyhow!("{e}")))?;
        let read: Vec<bytes::Bytes> = self
            .get(&key, None)
            .await?
            .try_collect()
            .await
            .map_err(StorageError::from_io)?;
        if read.concat() != b"ok" {
            return Err(StorageError::Unavailable(anyhow::anyhow!(
                "probe read back wrong bytes"
            )));
        }
        self.delete(&key).await
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FsState {
    /// The SHA-256 state over the partial file's first `offset` bytes.
    sha256_state: String,
}

/// A resumable write on disk: bytes go to `uploads/<id>` at the offset; a checkpoint fsyncs
/// them; `finish` trims, fsyncs and renames the file to its key, then fsyncs the directory.
struct FsResumable {
    out: BufWriter<tokio::fs::File>,
    partial: PathBuf,
    target: PathBuf,
    written: u64,
    hash: HashState,
    /// Where writeback was last started: bytes before it are on their way to the disk.
    writeback_from: u64,
}

/// How often a resumable write starts the kernel's writeback of what it has written, so that
/// the fsync ending each request has little left to wait for.
const WRITEBACK_EVERY: u64 = 2 * 1024 * 1024;

/// Starts writing `range` of the file back to disk without waiting (Linux `sync_file_range`);
/// elsewhere, or on failure, the checkpoint's fsync does all the work as before.
fn start_writeback(file: &tokio::fs::File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor and a byte range; the call only schedules I/O.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

#[async_trait]
impl Resumable for FsResumable {
    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), StorageError> {
        self.out
            .write_all(&chunk)
            .await
            .map_err(StorageError::from_io)?;
        self.hash.update(&chunk);
        self.written += chunk.len() as u64;
        if self.written - self.writeback_from >= WRITEBACK_EVERY {
            self.out.flush().await.map_err(StorageError::from_io)?;
            start_writeback(self.out.get_ref(), self.writeback_from, self.written);
            self.writeback_from = self.written;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<(u64, String), StorageError> {
        self.out.flush().await.map_err(StorageError::from_io)?;
        self.out
            .get_ref()
            .sync_data()
            .await
            .map_err(StorageError::from_io)?;
        let state = FsState {
            sha256_state: self.hash.save(),
        };
        Ok((
            self.written,
            serde_json::to_string(&state).expect("serializable"),
        ))
    }

    async fn finish(mut self: Box<Self>) -> Result<PutOutcome, StorageError> {
        self.out.flush().await.map_err(StorageError::from_io)?;
        let file = self.out.get_ref();
        file.set_len(self.written)
            .await
            .map_err(StorageError::from_io)?;
        file.sync_all().await.map_err(StorageError::from_io)?;
        let dir = self
            .target
            .parent()
            .expect("keys have a directory")
            .to_owned();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(StorageError::from_io)?;
        tokio::fs::rename(&self.partial, &self.target)
            .await
            .map_err(StorageError::from_io)?;
        sync_dir(&dir).await.map_err(StorageError::from_io)?;
        let size = self.written;
        Ok(PutOutcome {
            size,
            sha256: self.hash.hex(),
        })
    }
}
