//! Shared test helpers: a real Reelay on port 0 with a temp data dir (zero2prod's `spawn_app`),
//! typed request helpers, and deterministic test bodies. Logs stay silent unless TEST_LOG is set.

#![allow(dead_code)]

pub mod postgres;
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
    /// The bucket this app stores into when the suite runs on S3 (REELAY_TEST_STORAGE=s3).
    pub s3: Option<std::sync::Arc<reelay::storage::S3Storage>>,
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
        let weed = on_s3().then(seaweed::Seaweed::shared);
        Self::spawn_inner(weed, adjust).await
    }

    /// Starts a server storing into a fresh bucket of `weed`.
    pub async fn spawn_on_s3(
        weed: &seaweed::Seaweed,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        Self::spawn_inner(Some(weed), adjust).await
    }

    async fn spawn_inner(
        weed: Option<&seaweed::Seaweed>,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        init_logging();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServeConfig::for_data_dir(data_dir.path());
        config.admin_key = Some(Secret(ADMIN_KEY.into()));
        config.signing_keys = Some(Secret(SIGNING_KEYS.into()));
        let s3 = if let Some(weed) = weed {
            let bucket = std::sync::Arc::new(weed.bucket().await);
            let settings = weed.settings(bucket.bucket());
            config.store.storage = reelay::config::StorageKind::S3;
            config.store.s3 = reelay::config::S3Config {
                endpoint: settings.endpoint,
                bucket: settings.bucket,
                region: settings.region,
                path_style: settings.path_style,
                part_size: settings.part_size,
                concurrency: settings.concurrency,
                access_key_id: Some(Secret(seaweed::ACCESS_KEY.into())),
                secret_access_key: Some(Secret(seaweed::SECRET_KEY.into())),
            };
            Some(bucket)
        } else {
            None
        };
        adjust(&mut config);
        let app = reelay::server::build(config).await.expect("app builds");
        let addr = app.addr;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(reelay::server::run(app, async {
            let _ = rx.await;
        }));
        Self {
            s3,
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
    pub async fn upload(
        &self,
        body: impl Into<reqwest::Body>,
        filename: &str,
        access: &str,
    ) -> Value {
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

    /// Everything the storage holds for this app, finished or not: fs files (temp files
    /// included) or S3 objects and unfinished multipart uploads. For "nothing was left" checks.
    pub async fn stored(&self) -> Vec<String> {
        match &self.s3 {
            None => files_under(&self.objects_dir())
                .into_iter()
                .map(|p| p.display().to_string())
                .collect(),
            Some(s3) => {
                use reelay::storage::Storage;
                let mut found: Vec<String> = s3
                    .list("")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|o| o.key)
                    .collect();
                let uploads = s3
                    .client()
                    .list_multipart_uploads()
                    .bucket(s3.bucket())
                    .send()
                    .await
                    .unwrap();
                found.extend(
                    uploads
                        .uploads()
                        .iter()
                        .map(|u| format!("unfinished multipart upload of {:?}", u.key())),
                );
                found
            }
        }
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

/// True when the suite runs against S3 (SeaweedFS) instead of the fs default.
pub fn on_s3() -> bool {
    std::env::var("REELAY_TEST_STORAGE").as_deref() == Ok("s3")
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
pub fn big_body(
    total: u64,
    seed: u64,
) -> (impl Stream<Item = Result<Bytes, std::io::Error>>, String) {
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
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
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
