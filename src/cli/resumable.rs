//! `reelay upload --resumable`: tus from the command line. The upload's URL is remembered in a
//! small state file keyed by the server, the file's path, size and modification time, so the
//! same command run again after an interruption asks the server where it stands (HEAD) and
//! sends only the rest. Transient failures (connection lost, 5xx, 423) are retried in place.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use base64::{engine::general_purpose::STANDARD, Engine};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const TUS: &str = "1.0.0";
const RETRIES: u32 = 8;

pub struct Upload<'a> {
    pub client: &'a reqwest::Client,
    pub server: &'a str,
    pub key: &'a str,
    pub path: &'a Path,
    pub size: u64,
    pub name: &'a str,
    pub content_type: &'a str,
    pub access: &'a str,
    pub chunk_size: u64,
    pub state_dir: Option<PathBuf>,
}

impl Upload<'_> {
    /// Uploads the file (resuming a remembered upload) and returns the file id.
    pub async fn run(&self, bar: &ProgressBar) -> anyhow::Result<String> {
        let state = self.state_file()?;
        let mut url = match std::fs::read_to_string(&state) {
            Ok(url) => Some(url.trim().to_owned()),
            Err(_) => None,
        };
        let mut offset = 0;
        if let Some(known) = &url {
            match self.head(known).await? {
                Some((at, None)) => {
                    offset = at;
                    eprintln!("resuming {known} at byte {at} of {}", self.size);
                }
                Some((_, Some(file_id))) => {
                    let _ = std::fs::remove_file(&state);
                    return Ok(file_id);
                }
                None => {
                    eprintln!("the remembered upload is gone; starting again");
                    url = None;
                }
            }
        }
        let url = match url {
            Some(url) => url,
            None => {
                let url = self.create().await?;
                if let Some(dir) = state.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&state, &url)
                    .with_context(|| format!("remembering the upload in {}", state.display()))?;
                url
            }
        };
        bar.set_position(offset);
        let mut file = tokio::fs::File::open(self.path).await?;
        let mut failures = 0;
        loop {
            let end = (offset + self.chunk_size).min(self.size);
            let mut chunk = vec![0u8; (end - offset) as usize];
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            file.read_exact(&mut chunk).await?;
            let checksum = STANDARD.encode(Sha256::digest(&chunk));
            let sent = self
                .client
                .patch(&url)
                .header("Tus-Resumable", TUS)
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", offset)
                .header("Upload-Checksum", format!("sha256 {checksum}"))
                .body(chunk)
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => {
                    failures = 0;
                    offset = end;
                    bar.set_position(offset);
                    if offset == self.size {
                        let file_id = header(&r, "reelay-file-id")
                            .context("the server did not name the finished file")?;
                        let _ = std::fs::remove_file(&state);
                        return Ok(file_id);
                    }
                    continue;
                }
                Ok(r)
                    if r.status().is_client_error()
                        && !matches!(r.status().as_u16(), 409 | 423 | 460) =>
                {
                    let status = r.status();
                    anyhow::bail!(
                        "server refused the upload: {status}: {}",
                        r.text().await.unwrap_or_default()
                    );
                }
                Ok(r) => eprintln!("server answered {}; retrying", r.status()),
                Err(e) => eprintln!("connection failed ({e}); retrying"),
            }
            failures += 1;
            if failures > RETRIES {
                anyhow::bail!(
                    "giving up after {RETRIES} retries; run the same command again to resume"
                );
            }
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(failures.min(5)))).await;
            // Where does the server stand now?
            match self.head(&url).await {
                Ok(Some((at, None))) => {
                    offset = at;
                    bar.set_position(offset);
                }
                Ok(Some((_, Some(file_id)))) => {
                    let _ = std::fs::remove_file(&state);
                    return Ok(file_id);
                }
                Ok(None) => anyhow::bail!("the upload was terminated or expired on the server"),
                Err(e) => eprintln!("server unreachable ({e}); retrying"),
            }
        }
    }

    async fn create(&self) -> anyhow::Result<String> {
        let metadata = [
            ("filename", self.name),
            ("filetype", self.content_type),
            ("access", self.access),
        ]
        .iter()
        .map(|(k, v)| format!("{k} {}", STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",");
        let response = self
            .client
            .post(format!("{}/v1/uploads", self.server))
            .bearer_auth(self.key)
            .header("Tus-Resumable", TUS)
            .header("Upload-Length", self.size)
            .header("Upload-Metadata", metadata)
            .send()
            .await
            .with_context(|| format!("sending to {}", self.server))?;
        let response = super::upload::check(response).await?;
        header(&response, "location").context("the server gave no upload URL")
    }

    /// The server's offset, and the file id once complete; None when the upload is gone.
    async fn head(&self, url: &str) -> anyhow::Result<Option<(u64, Option<String>)>> {
        let response = self
            .client
            .head(url)
            .header("Tus-Resumable", TUS)
            .send()
            .await?;
        if matches!(response.status().as_u16(), 404 | 410) {
            return Ok(None);
        }
        let response = super::upload::check(response).await?;
        let offset = header(&response, "upload-offset")
            .and_then(|o| o.parse().ok())
            .context("the server gave no Upload-Offset")?;
        Ok(Some((offset, header(&response, "reelay-file-id"))))
    }

    /// One state file per (server, file path, size, modification time): a changed file
    /// starts a new upload.
    fn state_file(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.state_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .context("no cache directory: set --state-dir")?
                .join("reelay/uploads"),
        };
        let absolute = std::fs::canonicalize(self.path)?;
        let modified = std::fs::metadata(self.path)?
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let identity = format!(
            "{}\n{}\n{}\n{modified}",
            self.server,
            absolute.display(),
            self.size
        );
        Ok(dir.join(hex::encode(&Sha256::digest(identity.as_bytes())[..16])))
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
