//! The edges under test, as the operator would run them: the shipped templates rendered by
//! `cdn-config/render.sh` into a temp dir, then the real `nginx` or `varnishd` on a loopback
//! port in front of real `reelay serve` processes (each test has its own, so Reelay's
//! `/metrics` counts only that test's origin requests).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reelay::{
    delivery::{file_scope, media_scope, signature::Signer},
    ids::{FileId, MediaId},
};
use reqwest::{header::HeaderMap, Client};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{
    common::{ADMIN_KEY, SIGNING_KEYS},
    harness::{client, free_port, Server},
};

/// The nginx slice size the tests render (the shipped default) and tell Reelay.
pub const SLICE_BYTES: u64 = 1024 * 1024;

pub const FILES_ROUTE: &str = "/files/{id}";
pub const MEDIA_ROUTE: &str = "/media/{id}/{*path}";
pub const MEDIA_CHECK_ROUTE: &str = "/edge/check/media/{id}/{*path}";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Varnish,
}

/// One nginx or varnishd process started from the shipped config, stopped when dropped.
pub struct Edge {
    pub kind: Kind,
    pub base: String,
    pub dir: TempDir,
    child: Child,
    log: PathBuf,
}

impl Edge {
    /// Starts `kind` on `port` in front of `origins`.
    pub async fn start(kind: Kind, port: u16, origins: &[SocketAddr]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("reelay-edge-")
            .tempdir()
            .expect("temp dir");
        // nginx workers and Varnish's compiler run as unprivileged users when we are root.
        chmod_755(dir.path());
        let conf = dir.path().join("conf");
        let origins = origins
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let rendered = Command::new("bash")
            .arg(repo().join("cdn-config/render.sh"))
            .arg(match kind {
                Kind::Nginx => "nginx",
                Kind::Varnish => "varnish",
            })
            .arg(&conf)
            .env("EDGE_ORIGINS", origins)
            .env("EDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("EDGE_CACHE_DIR", dir.path().join("cache"))
            .env("EDGE_LOG_DIR", dir.path())
            .env("REELAY_EDGE_SLICE_BYTES", SLICE_BYTES.to_string())
            .output()
            .expect("bash runs render.sh");
        assert!(
            rendered.status.success(),
            "render.sh failed: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let log = dir.path().join("edge.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = match kind {
            Kind::Nginx => {
                std::fs::create_dir_all(dir.path().join("cache")).unwrap();
                let globals = format!(
                    "daemon off; pid {}; error_log {} notice;",
                    dir.path().join("nginx.pid").display(),
                    log.display()
                );
                Command::new(binary("nginx"))
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(conf.join("reelay.conf"))
                    .arg("-g")
                    .arg(globals)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .expect("nginx starts")
            }
            Kind::Varnish => Command::new(binary("varnishd"))
                .arg("-F")
                .args(["-a", &format!("127.0.0.1:{port}")])
                .arg("-f")
                .arg(conf.join("reelay.vcl"))
                .arg("-n")
                .arg(dir.path().join("varnish"))
                .args(["-s", "malloc,256m"])
                // Small shared-memory log and thread pools: tests run many of these at once.
                .args(["-p", "vsl_space=1m"])
                .args(["-p", "thread_pools=1", "-p", "thread_pool_min=10"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("varnishd starts"),
        };
        let mut edge = Edge {
            kind,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            child,
            log,
        };
        edge.wait_up().await;
        edge
    }

    async fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("{:?} exited ({status}):\n{}", self.kind, self.log_text());
            }
            let health = client()
                .get(self.url("/healthz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{:?} did not answer:\n{}", self.kind, self.log_text());
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The header that tells a cache hit from a miss.
    pub fn cache_header(&self) -> &'static str {
        match self.kind {
            Kind::Nginx => "x-cache-status",
            Kind::Varnish => "x-cache",
        }
    }

    pub fn log_text(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if self.kind == Kind::Nginx {
            let access = self.dir.path().join("access.log");
            text.push_str(&std::fs::read_to_string(access).unwrap_or_default());
        }
        text
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // TERM lets nginx's master stop its workers and varnishd stop its child; KILL if not.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chmod_755(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `name` on PATH or in /usr/sbin (Debian puts nginx and varnishd there).
fn binary(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        return sbin;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| panic!("{name} is not installed; scripts/test installs it"))
}

/// One Reelay process (fs storage, SQLite, one in-process worker) behind one edge, which it
/// purges on deletes.
pub struct Stack {
    pub edge: Edge,
    pub origin: Server,
    pub client: Client,
    pub dir: TempDir,
}

impl Stack {
    pub async fn start(kind: Kind) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // The edge's port first: Reelay is told where to send purges.
        let port = free_port();
        let purge = match kind {
            Kind::Nginx => format!("nginx=http://127.0.0.1:{port}/_purge"),
            Kind::Varnish => format!("xkey=http://127.0.0.1:{port}"),
        };
        let slice = SLICE_BYTES.to_string();
        let origin = Server::start_with(
            dir.path(),
            &[
                ("REELAY_PURGE_URLS", purge.as_str()),
                ("REELAY_EDGE_SLICE_BYTES", slice.as_str()),
                ("REELAY_SEGMENT_SECONDS", "1"),
            ],
            &[],
        )
        .await;
        let edge = Edge::start(kind, port, &[origin.addr]).await;
        Stack {
            edge,
            origin,
            client: client(),
            dir,
        }
    }

    /// Uploads `body` straight to Reelay; returns the file id.
    pub async fn upload(&self, body: Vec<u8>, access: &str) -> String {
        let response = self
            .client
            .post(self.origin.url("/v1/files"))
            .query(&[("filename", "data.bin"), ("access", access)])
            .bearer_auth(ADMIN_KEY)
            .body(body)
            .send()
            .await
            .expect("upload sent");
        assert_eq!(response.status(), 201);
        let file: Value = response.json().await.unwrap();
        file["id"].as_str().unwrap().to_owned()
    }

    /// A 3 s 320x180 video with audio, transcoded into a ready media (1 s segments); returns
    /// the media id.
    pub async fn media(&self, access: &str) -> String {
        let input = self.dir.path().join(format!("input-{access}.mp4"));
        let output = tokio::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=24:duration=3",
            ])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=3"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-shortest"])
            .arg(&input)
            .output()
            .await
            .expect("ffmpeg runs");
        assert!(
            output.status.success(),
            "ffmpeg: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let response = self
            .client
            .post(self.origin.url("/v1/files"))
            .query(&[
                ("filename", "clip.mp4"),
                ("access", access),
                ("transcode", "true"),
            ])
            .bearer_auth(ADMIN_KEY)
            .body(std::fs::read(&input).unwrap())
            .send()
            .await
            .expect("upload sent");
        assert_eq!(response.status(), 201);
        let file: Value = response.json().await.unwrap();
        let id = file["media"]["id"].as_str().expect("a media").to_owned();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let media = self.api_json(&format!("/v1/media/{id}")).await;
            match media["state"].as_str() {
                Some("ready") => return id,
                Some("failed") => panic!("the media failed: {media}"),
                _ if Instant::now() > deadline => panic!("the media is not ready: {media}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// GET on Reelay's API with the admin key; the JSON answer.
    pub async fn api_json(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.origin.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// DELETE on Reelay's API (which purges the edge).
    pub async fn delete(&self, path: &str) {
        let response = self
            .client
            .delete(self.origin.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 204, "DELETE {path}");
    }

    /// A signed URL from the API, as path and query (to be asked of the edge).
    pub async fn signed(&self, api_path: &str, request: Value) -> String {
        let response = self
            .client
            .post(self.origin.url(api_path))
            .bearer_auth(ADMIN_KEY)
            .json(&request)
            .send()
            .await
            .expect("sign sent");
        assert_eq!(response.status(), 200);
        let json: Value = response.json().await.unwrap();
        path_and_query(json["url"].as_str().unwrap())
    }

    /// A signed master playlist URL of a media, as path and query.
    pub async fn signed_master(&self, media_id: &str) -> String {
        self.signed(
            &format!("/v1/media/{media_id}/signed-url"),
            json!({ "expires_in": 600 }),
        )
        .await
    }

    pub async fn get(&self, path_and_query: &str) -> Fetched {
        self.get_with(path_and_query, &[]).await
    }

    /// GET through the edge with extra request headers.
    pub async fn get_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Fetched {
        let mut request = self.client.get(self.edge.url(path_and_query));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("edge answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        Fetched {
            status,
            cache: headers
                .get(self.edge.cache_header())
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            headers,
            body,
        }
    }

    /// GET through the edge that must answer 200; the body.
    pub async fn get_ok(&self, path_and_query: &str) -> Vec<u8> {
        let fetched = self.get(path_and_query).await;
        assert_eq!(
            fetched.status,
            200,
            "GET {path_and_query}: {}",
            fetched.text()
        );
        fetched.body
    }

    /// Requests Reelay has answered for `route` (every method and status).
    pub async fn origin_hits(&self, route: &str) -> u64 {
        let text = self
            .client
            .get(self.origin.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap();
        requests_for(&text, route)
    }
}

/// The sum of `reelay_http_requests_total` over every series of `route`.
pub fn requests_for(metrics: &str, route: &str) -> u64 {
    let label = format!("route=\"{route}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("reelay_http_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub struct Fetched {
    pub status: u16,
    /// The edge's cache-status header (empty when absent).
    pub cache: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(400)]).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `{ "error": { "code" } }` of a JSON error answer.
    pub fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "an error in JSON: {}",
            self.text()
        );
        let json: Value = serde_json::from_slice(&self.body).expect("JSON error body");
        json["error"]["code"]
            .as_str()
            .expect("error.code")
            .to_owned()
    }
}

/// `/path?query` of an absolute URL.
pub fn path_and_query(url: &str) -> String {
    let url = reqwest::Url::parse(url).expect("a URL");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The query of `/path?query`.
pub fn query_of(path_and_query: &str) -> &str {
    path_and_query.split_once('?').map_or("", |(_, q)| q)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signatures Reelay never issued: one by another key, one whose expiry has passed.
pub struct BadTokens {
    pub forged: String,
    pub expired: String,
}

impl BadTokens {
    pub fn for_file(id: &str) -> Self {
        Self::for_scope(&file_scope(&FileId::parse(id).unwrap()))
    }

    pub fn for_media(id: &str) -> Self {
        Self::for_scope(&media_scope(&MediaId::parse(id).unwrap()))
    }

    fn for_scope(scope: &str) -> Self {
        let real = Signer::from_spec(SIGNING_KEYS).unwrap();
        let other = Signer::from_spec("k1:not-the-real-secret-0123456789").unwrap();
        BadTokens {
            forged: other.sign(scope, &[], unix_now() + 600),
            expired: real.sign(scope, &[], unix_now() - 5),
        }
    }
}

/// The URIs an HLS playlist lists (variant playlists, init sections and segments), with
/// their queries.
pub fn playlist_uris(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            uris.push(line.to_owned());
        } else if let Some(at) = line.find("URI=\"") {
            let rest = &line[at + 5..];
            uris.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    uris
}

/// Everything a player fetches for the HLS master at `master` (path and query): the playlists
/// (master included) and the media files (init sections, segments), by path and query.
pub async fn fetch_hls(stack: &Stack, master: &str) -> (Vec<String>, Vec<String>) {
    let dir = master
        .split('?')
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0;
    let mut playlists = vec![master.to_owned()];
    let mut files = Vec::new();
    let text = String::from_utf8(stack.get_ok(master).await).unwrap();
    for uri in playlist_uris(&text) {
        let variant = format!("{dir}/{uri}");
        let text = String::from_utf8(stack.get_ok(&variant).await).unwrap();
        playlists.push(variant);
        for uri in playlist_uris(&text) {
            let file = format!("{dir}/{uri}");
            stack.get_ok(&file).await;
            files.push(file);
        }
    }
    (playlists, files)
}

/// Plays `url` to the end with ffmpeg (decoding every frame) and insists it succeeds.
pub async fn ffmpeg_plays(url: &str) {
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", url, "-f", "null", "-"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "ffmpeg could not play {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `check` every 100 ms until it holds or `bound` passes; the time it took, if it held.
pub async fn within<F, Fut>(bound: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() >= bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
