//! Purges deleted files and media from the edges in `REELAY_PURGE_URLS`, so an edge stops
//! serving a deleted object within seconds instead of when its cache entry would expire.
//!
//! Two kinds of edge, named in the spec as `kind=url`:
//! - `xkey=http://varnish:6081`: one `PURGE` carrying `xkey-purge: <id>`; Varnish's xkey vmod
//!   drops every object tagged with that Surrogate-Key, whatever its URL or range.
//! - `nginx=http://nginx:8080/_purge`: nginx's cache-purge module removes exact cache keys
//!   only, so one `PURGE <url><path>` per cached entry Reelay can name: every slice of a file's
//!   plain URL (`?slice=bytes=a-b`, slices of `slice_bytes` as in the shipped config) and every
//!   file of a media. Variants Reelay cannot enumerate (per-token playlists, `?disposition=`)
//!   are refused by the edge's access check (`/edge/check`, answers cached 5 s) and expire.
//!
//! A purge runs in the background after the delete has answered; it is retried a few times
//! and a failure is logged, since the edge's check already refuses a deleted id.

use std::time::Duration;

use futures::StreamExt;

use crate::ids::{FileId, MediaId};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Edge {
    Xkey(String),
    Nginx(String),
}

/// What was deleted.
pub enum Subject {
    File { id: FileId, size: u64 },
    Media { id: MediaId, paths: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct Purger {
    edges: Vec<Edge>,
    slice_bytes: u64,
    client: reqwest::Client,
}

/// Past this many slices a file's entries are left to expire (a 16 GiB file at 1 MiB slices).
const MAX_SLICES: u64 = 16_384;
const ATTEMPTS: u32 = 3;
const CONCURRENCY: usize = 8;

impl Purger {
    /// `spec` is a comma-separated list of `xkey=URL` and `nginx=URL`; empty means no edges.
    pub fn new(spec: &[String], slice_bytes: u64) -> anyhow::Result<Self> {
        let mut edges = Vec::new();
        for entry in spec.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let (kind, url) = entry.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("purge target {entry:?} is not kind=url (xkey=... or nginx=...)")
            })?;
            let url = url.trim_end_matches('/').to_string();
            if !url.starts_with("http://") && !url.starts_with("https://") {
                anyhow::bail!("purge target {entry:?} needs an http(s) URL");
            }
            edges.push(match kind {
                "xkey" => Edge::Xkey(url),
                "nginx" => Edge::Nginx(url),
                other => anyhow::bail!("unknown purge kind {other:?} (use xkey or nginx)"),
            });
        }
        anyhow::ensure!(slice_bytes > 0, "the edge slice size must be positive");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            edges,
            slice_bytes,
            client,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Starts purging `subject` from every edge and returns at once.
    pub fn purge(&self, subject: Subject) {
        if self.edges.is_empty() {
            return;
        }
        let requests = self.requests(&subject);
        let client = self.client.clone();
        tokio::spawn(async move {
            let failed = futures::stream::iter(requests)
                .map(|(url, xkey)| send(&client, url, xkey))
                .buffer_unordered(CONCURRENCY)
                .filter(|ok| futures::future::ready(!ok))
                .count()
                .await;
            metrics::counter!("reelay_edge_purges_total", "result" => if failed == 0 { "ok" } else { "failed" })
                .increment(1);
        });
    }

    /// Every (URL, xkey header) request that purges `subject`.
    fn requests(&self, subject: &Subject) -> Vec<(String, Option<String>)> {
        let key = match subject {
            Subject::File { id, .. } => id.to_string(),
            Subject::Media { id, .. } => id.to_string(),
        };
        let mut out = Vec::new();
        for edge in &self.edges {
            match edge {
                Edge::Xkey(url) => out.push((format!("{url}/"), Some(key.clone()))),
                Edge::Nginx(url) => match subject {
                    Subject::File { id, size } => {
                        let slices = size.div_ceil(self.slice_bytes).clamp(1, MAX_SLICES);
                        for n in 0..slices {
                            let start = n * self.slice_bytes;
                            let end = start + self.slice_bytes - 1;
                            out.push((format!("{url}/files/{id}?slice=bytes={start}-{end}"), None));
                        }
                    }
                    Subject::Media { id, paths } => {
                        for path in paths {
                            out.push((format!("{url}/media/{id}/{path}"), None));
                        }
                    }
                },
            }
        }
        out
    }
}

/// One purge request with retries; a 404 means the edge held nothing under that key.
async fn send(client: &reqwest::Client, url: String, xkey: Option<String>) -> bool {
    let method = reqwest::Method::from_bytes(b"PURGE").expect("valid method");
    for attempt in 1..=ATTEMPTS {
        let mut request = client.request(method.clone(), &url);
        if let Some(key) = &xkey {
            request = request.header("xkey-purge", key);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => {
                return true
            }
            Ok(r) => tracing::warn!(%url, status = %r.status(), attempt, "edge refused a purge"),
            Err(e) => tracing::warn!(%url, error = %e, attempt, "edge purge failed"),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn parses_kinds_and_refuses_nonsense() {
        let p = Purger::new(&spec("xkey=http://v:6081/, nginx=http://n/_purge"), 1024).unwrap();
        assert_eq!(
            p.edges,
            vec![
                Edge::Xkey("http://v:6081".into()),
                Edge::Nginx("http://n/_purge".into())
            ]
        );
        assert!(Purger::new(&spec(""), 1024).unwrap().is_empty());
        assert!(Purger::new(&spec("http://v"), 1024).is_err());
        assert!(Purger::new(&spec("fastly=http://v"), 1024).is_err());
        assert!(Purger::new(&spec("xkey=v:6081"), 1024).is_err());
    }

    #[test]
    fn nginx_gets_every_slice_and_xkey_one_request() {
        let p = Purger::new(&spec("xkey=http://v,nginx=http://n/_purge"), 1000).unwrap();
        let id = FileId::generate();
        let requests = p.requests(&Subject::File {
            id: id.clone(),
            size: 2500,
        });
        let urls: Vec<&str> = requests.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(
            urls,
            vec![
                "http://v/".to_string(),
                format!("http://n/_purge/files/{id}?slice=bytes=0-999"),
                format!("http://n/_purge/files/{id}?slice=bytes=1000-1999"),
                format!("http://n/_purge/files/{id}?slice=bytes=2000-2999"),
            ]
        );
        assert_eq!(requests[0].1.as_deref(), Some(id.to_string().as_str()));
        // An empty file still has its one (empty) slice entry.
        assert_eq!(p.requests(&Subject::File { id, size: 0 }).len(), 2);
    }

    #[test]
    fn media_files_are_purged_by_path() {
        let p = Purger::new(&spec("nginx=http://n/_purge"), 1000).unwrap();
        let id = MediaId::generate();
        let requests = p.requests(&Subject::Media {
            id: id.clone(),
            paths: vec!["master.m3u8".into(), "v0/seg-1.m4s".into()],
        });
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[1].0,
            format!("http://n/_purge/media/{id}/v0/seg-1.m4s")
        );
    }
}
