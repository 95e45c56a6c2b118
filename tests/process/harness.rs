//! Starts `reelay serve` on a free port with a data dir under a test's temp dir, waits for
//! /healthz, and kills the process when dropped. The environment is cleared first, so no
//! `REELAY_*` from the shell shapes a test.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::common::{ADMIN_KEY, SIGNING_KEYS};

/// `reelay` with a clean environment: PATH and HOME only.
pub fn reelay() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reelay"));
    command.env_clear();
    for var in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// A port nothing listens on right now (another process may take it before we do).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub data_dir: PathBuf,
    /// The server's stderr.
    pub log: PathBuf,
}

impl Server {
    /// A server on `dir/data`, logging to a file in `dir`.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[], &[]).await
    }

    /// As `start`, with extra environment variables and `serve` arguments.
    pub async fn start_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        for _attempt in 0..3 {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = dir.join(format!("server-{port}.log"));
            let stderr = std::fs::File::create(&log).expect("log file");
            let data_dir = dir.join("data");
            let child = reelay()
                .arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(&data_dir)
                .args(args)
                .env("REELAY_ADMIN_KEY", ADMIN_KEY)
                .env("REELAY_SIGNING_KEYS", SIGNING_KEYS)
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("reelay starts");
            let mut server = Server {
                child,
                addr,
                base: format!("http://{addr}"),
                data_dir,
                log,
            };
            match server.wait_healthy().await {
                Ok(()) => return server,
                // Someone took the port between our probe and the server's bind: try another.
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("reelay serve did not come up; its log:\n{log}"),
            }
        }
        panic!("no free port after 3 attempts");
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("(exited: {status})\n{}", self.log_text()));
            }
            let health = client
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("(no answer on /healthz)\n{}", self.log_text()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal with kill(1): `signal("TERM")`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL, as a crash or an OOM kill would end the process.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a file name is one of FsStorage's temp files (`.<name>.tmp-<random>`).
pub fn is_temp(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}
