//! Shared test helpers: a real Reelay on port 0 with a temp data dir (zero2prod's `spawn_app`),
//! typed request helpers, and deterministic test bodies. Logs stay silent unless TEST_LOG is set.

#![allow(dead_code)]

pub mod seaweed;

use std::{net::SocketAddr, sync::Once};

use bytes::Bytes;
use futures::{stream, Stream};
use reelay::config::{Secret, ServeConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const SIGNING_KEYS: &str = "k1:test-signing-secret-0123456789";

static LOGGING: Once = Once::new();

pub fn init_logging() {
    LOGGING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("info,reelay=debug")
                .with_test_writer()
                .init();
        }
    });
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server whose config `adjust` may change (limits, timeouts, keys).
    pub async fn spawn_with(adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        init_logging();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServeConfig::for_data_dir(data_dir.path());
        config.admin_key = Some(Secret(ADMIN_KEY.into()));
        config.signing_keys = Some(Secret(SIGNING_KEYS.into()));
        adjust(&mut config);
        let app = reelay::server::build(config).await.expect("app builds");
        let addr = app.addr;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(reelay::server::run(app, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            data_dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to the management API with the admin key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_KEY)
    }

    /// Uploads `body` raw and returns the File JSON; panics unless the answer is 201.
    pub async fn upload(&self, body: impl Into<reqwest::Body>, filename: &str, access: &str) -> Value {
        let response = self
            .api(reqwest::Method::POST, "/v1/files")
            .query(&[("filename", filename), ("access", access)])
            .body(body)
            .send()
            .await
            .expect("upload sent");
        let status = response.status();
        let json: Value = response.json().await.expect("json answer");
        assert_eq!(status, 201, "upload failed: {json}");
        json
    }

    /// A signed URL for a file, from the API.
    pub async fn signed_url(&self, id: &str, request: Value) -> String {
        let response = self
            .api(reqwest::Method::POST, &format!("/v1/files/{id}/signed-url"))
            .json(&request)
            .send()
            .await
            .expect("sign sent");
        assert_eq!(response.status(), 200);
        let json: Value = response.json().await.unwrap();
        json["url"].as_str().unwrap().to_owned()
    }

    /// Objects dir of the fs storage, for checks that nothing half-written is left.
    pub fn objects_dir(&self) -> std::path::PathBuf {
        self.data_dir.path().join("objects")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (xorshift), cheap enough for gigabytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A body of `total` bytes generated in 1 MiB chunks, and its SHA-256, without holding it
/// in memory.
pub fn big_body(total: u64, seed: u64) -> (impl Stream<Item = Result<Bytes, std::io::Error>>, String) {
    const CHUNK: u64 = 1024 * 1024;
    let chunk = Bytes::from(pattern(seed, CHUNK as usize));
    let mut hasher = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK);
        hasher.update(&chunk[..n as usize]);
        left -= n;
    }
    let digest = hex::encode(hasher.finalize());
    let chunks = stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK);
            Some((Ok(chunk.slice(..n as usize)), left - n))
        }
    });
    (chunks, digest)
}

/// Every regular file under `dir`, recursively (to find leftovers).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}
