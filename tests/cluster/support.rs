//! What both scenarios share: a fresh PostgreSQL database per test, the environment that points
//! every process at the same bucket and database, `reelay worker` processes, and reading
//! Prometheus text.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

use crate::{
    common::seaweed::{self, Seaweed},
    harness::{client, free_port, reelay},
};

/// A name no other test run uses: `t_<random>`, lowercase, a valid SQL identifier.
fn fresh_name() -> String {
    format!(
        "t_{}",
        reelay::ids::random_secret(12)
            .to_lowercase()
            .replace(['-', '_'], "0")
    )
}

/// An empty database of its own on the PostgreSQL server at `server`, dropped (best effort)
/// when this is dropped, also when the test fails.
pub struct Database {
    pub url: String,
    name: String,
    server: String,
}

impl Database {
    pub async fn create(server: &str) -> Self {
        let name = fresh_name();
        let mut admin = PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is not reachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        let mut url = reqwest::Url::parse(server).expect("the PostgreSQL URL parses");
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            name,
            server: server.to_owned(),
        }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs outside async code (or in a runtime that is shutting down): a thread of its
        // own with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let options = PgConnectOptions::from_str(&server).ok()?;
                let connect = PgConnection::connect_with(&options);
                let mut admin = tokio::time::timeout(Duration::from_secs(5), connect)
                    .await
                    .ok()?
                    .ok()?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    sqlx::query(&drop).execute(&mut admin),
                )
                .await;
                Some(())
            })
        });
        let _ = dropped.join();
    }
}

/// The variables that put a process on `bucket` of `weed` and on the database at `database_url`.
pub fn cluster_env(weed: &Seaweed, bucket: &str, database_url: &str) -> Vec<(String, String)> {
    let settings = weed.settings(bucket);
    [
        ("REELAY_STORAGE", "s3".to_owned()),
        (
            "REELAY_S3_ENDPOINT",
            settings.endpoint.expect("an endpoint"),
        ),
        ("REELAY_S3_BUCKET", settings.bucket),
        ("REELAY_S3_REGION", settings.region),
        ("REELAY_S3_PATH_STYLE", settings.path_style.to_string()),
        ("AWS_ACCESS_KEY_ID", seaweed::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", seaweed::SECRET_KEY.to_owned()),
        ("REELAY_DATABASE_URL", database_url.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A `reelay worker` process with its /metrics on a free port; SIGKILLed when dropped.
pub struct Worker {
    child: Child,
    pub metrics_url: String,
    pub log: PathBuf,
}

impl Worker {
    pub async fn start(dir: &Path, name: &str, env: &[(String, String)]) -> Self {
        for _attempt in 0..3 {
            let port = free_port();
            let log = dir.join(format!("{name}-{port}.log"));
            let child = reelay()
                .arg("worker")
                .arg("--data-dir")
                .arg(dir.join(name))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("REELAY_WORKER_METRICS_LISTEN", format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("reelay worker starts");
            let mut worker = Worker {
                child,
                metrics_url: format!("http://127.0.0.1:{port}/metrics"),
                log,
            };
            match worker.wait_healthy(port).await {
                Ok(()) => return worker,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("reelay worker did not come up; its log:\n{log}"),
            }
        }
        panic!("no free port for a worker after 3 attempts");
    }

    async fn wait_healthy(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("(exited: {status})\n{}", self.log_text()));
            }
            let health = client()
                .get(format!("http://127.0.0.1:{port}/healthz"))
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or an OOM kill would end the process.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    pub async fn metrics(&self) -> String {
        let response = client()
            .get(&self.metrics_url)
            .send()
            .await
            .expect("worker metrics answer");
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one series in Prometheus text, e.g. `reelay_jobs{state="done"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

#[test]
fn metric_reads_a_series_and_only_that_series() {
    let text = "# TYPE reelay_jobs gauge\nreelay_jobs{state=\"done\"} 6\n\
                reelay_jobs{state=\"queued\"} 0\nreelay_jobs_rescued_total 2\n";
    assert_eq!(metric(text, "reelay_jobs{state=\"done\"}"), Some(6.0));
    assert_eq!(metric(text, "reelay_jobs_rescued_total"), Some(2.0));
    assert_eq!(metric(text, "reelay_jobs"), None);
}
