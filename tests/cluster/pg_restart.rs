//! PostgreSQL restarted during traffic: two API nodes on a PostgreSQL cluster this test owns
//! and one SeaweedFS bucket take uploads while PostgreSQL is stopped and started again. During
//! the outage the catalog is reported unavailable (503, never 500); afterwards both nodes work
//! again without a restart, and no acknowledged upload is lost.

use std::{
    collections::BTreeSet,
    os::unix::fs::MetadataExt,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    common::{pattern, seaweed::Seaweed, sha256_hex, ADMIN_KEY},
    harness::{client, free_port, Server},
    support::{cluster_env, env_refs, Database},
};

/// A throwaway PostgreSQL cluster (initdb + pg_ctl, trust auth) on a free port, stopped and
/// removed when dropped. initdb refuses to run as root, so as root it runs as `postgres`.
struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let mut cluster = Self {
            dir,
            bin: postgres_bin(),
            port: 0,
            as_postgres,
        };
        let initdb = cluster
            .tool("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        for _attempt in 0..3 {
            cluster.port = free_port();
            if cluster.pg_ctl_start().success() {
                return cluster;
            }
        }
        panic!("PostgreSQL did not start; its log:\n{}", cluster.log());
    }

    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self) -> Command {
        let mut command = self.tool("pg_ctl");
        command.arg("-D").arg(self.data()).args(["-w", "-t", "60"]);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    }

    fn pg_ctl_start(&self) -> std::process::ExitStatus {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl()
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "start"])
            .status()
            .unwrap()
    }

    /// Starts again on the same port and data.
    async fn restart(&self) {
        let mut command = tokio::process::Command::from(self.pg_ctl());
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        command
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "start"]);
        let status = command.status().await.unwrap();
        assert!(status.success(), "pg_ctl start; log:\n{}", self.log());
    }

    /// `pg_ctl stop -m fast`: sessions are ended, transactions rolled back, a clean shutdown.
    async fn stop_fast(&self) {
        let mut command = tokio::process::Command::from(self.pg_ctl());
        command.args(["-m", "fast", "stop"]);
        let status = command.status().await.unwrap();
        assert!(status.success(), "pg_ctl stop; log:\n{}", self.log());
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl().args(["-m", "immediate", "stop"]).status();
    }
}

/// The newest /usr/lib/postgresql/<version>/bin with an initdb (Debian's layout).
fn postgres_bin() -> PathBuf {
    let root = std::path::Path::new("/usr/lib/postgresql");
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .expect("initdb and pg_ctl in /usr/lib/postgresql/*/bin (scripts/test installs postgresql)")
}

#[derive(Debug)]
enum Outcome {
    Acked {
        id: String,
        body: Vec<u8>,
    },
    Refused {
        status: u16,
        code: String,
    },
    /// No HTTP answer at all (connection reset, timeout).
    Broken(String),
}

#[derive(Debug)]
struct Sent {
    started: Instant,
    answered: Instant,
    node: usize,
    outcome: Outcome,
}

/// Uploads small public files through the nodes in turn until `stop`, recording every answer.
async fn traffic(bases: [String; 2], lane: u64, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let client = client();
    let mut sent = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let node = ((n + lane) % 2) as usize;
        let seed = lane << 32 | n;
        let body = pattern(seed, 500 + (seed as usize * 37) % 3000);
        let started = Instant::now();
        let response = client
            .post(format!("{}/v1/files", bases[node]))
            .query(&[
                ("filename", format!("f{seed}.bin")),
                ("access", "public".into()),
            ])
            .bearer_auth(ADMIN_KEY)
            .body(body.clone())
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let outcome = match response {
            Err(e) => Outcome::Broken(e.to_string()),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.json::<Value>().await {
                    Err(e) => Outcome::Broken(format!("{status} without a JSON body: {e}")),
                    Ok(json) if status == 201 => Outcome::Acked {
                        id: json["id"].as_str().unwrap().to_owned(),
                        body,
                    },
                    Ok(json) => Outcome::Refused {
                        status,
                        code: json["error"]["code"].as_str().unwrap_or("").to_owned(),
                    },
                }
            }
        };
        sent.push(Sent {
            started,
            answered: Instant::now(),
            node,
            outcome,
        });
        n += 1;
    }
    sent
}

/// An upload through `base` and a read of it back, both answered.
async fn round_trip(base: &str) -> bool {
    let client = client();
    let upload = client
        .post(format!("{base}/v1/files?filename=probe.bin"))
        .bearer_auth(ADMIN_KEY)
        .body(pattern(99, 1000))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let Ok(upload) = upload else { return false };
    if upload.status() != 201 {
        return false;
    }
    let Ok(json) = upload.json::<Value>().await else {
        return false;
    };
    let id = json["id"].as_str().unwrap();
    client
        .get(format!("{base}/v1/files/{id}"))
        .bearer_auth(ADMIN_KEY)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Every file id the API lists, page by page.
async fn listed_ids(base: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = client()
            .get(format!("{base}/v1/files"))
            .bearer_auth(ADMIN_KEY)
            .query(&[("limit", "500")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().expect("a page of files") {
            ids.insert(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_during_traffic_loses_no_acknowledged_upload() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let postgres = PgCluster::start();
    let weed = Seaweed::start();
    let bucket = weed.bucket().await;
    let database = Database::create(&postgres.url()).await;
    let mut env = cluster_env(&weed, bucket.bucket(), &database.url);
    // The verification below sends bursts; rate limits are not what this test is about.
    for (k, v) in [
        ("REELAY_RATE_LIMIT_API_KEY", "off"),
        ("REELAY_RATE_LIMIT_API_IP", "off"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let mut nodes = Vec::new();
    for name in ["node1", "node2"] {
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        nodes.push(Server::start_with(&dir, &env_refs(&env), &[]).await);
    }
    let bases = [nodes[0].base.clone(), nodes[1].base.clone()];

    let stop = Arc::new(AtomicBool::new(false));
    let lanes: Vec<_> = (0..2)
        .map(|lane| tokio::spawn(traffic(bases.clone(), lane, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let known = client()
        .post(format!(
            "{}/v1/files?filename=known.bin&access=public",
            bases[1]
        ))
        .bearer_auth(ADMIN_KEY)
        .body(pattern(1, 2000))
        .send()
        .await
        .unwrap();
    assert_eq!(known.status(), 201);
    let known = known.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Longer than the catalog's 5 s wait for a connection, so that requests made during the
    // outage are answered while PostgreSQL is still down (a shorter one only delays them).
    let outage = Instant::now();
    postgres.stop_fast().await;
    let probes = [
        format!("{}/readyz", bases[0]),
        format!("{}/v1/files/{known}", bases[1]),
        format!("{}/files/{known}", bases[0]),
    ]
    .map(|url| {
        tokio::spawn(async move {
            let response = client().get(&url).bearer_auth(ADMIN_KEY).send().await;
            let response = response.unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = response.status().as_u16();
            (url, status, response.json::<Value>().await.unwrap())
        })
    });
    tokio::time::sleep(Duration::from_secs(7)).await;
    postgres.restart().await;
    let back = Instant::now();

    // Both nodes recover on their own: an upload and a read through each succeed again.
    let deadline = back + Duration::from_secs(20);
    for base in &bases {
        while !round_trip(base).await {
            assert!(Instant::now() < deadline, "{base} did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for lane in lanes {
        sent.extend(lane.await.unwrap());
    }
    let mut answered = Vec::new();
    for probe in probes {
        answered.push(probe.await.unwrap());
    }
    for node in &mut nodes {
        assert!(node.is_running(), "a node exited:\n{}", node.log_text());
    }

    let mut acked: Vec<(&String, &Vec<u8>)> = sent
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Acked { id, body } => Some((id, body)),
            _ => None,
        })
        .collect();
    let refused: Vec<&Sent> = sent
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Refused { .. }))
        .collect();
    eprintln!(
        "{} uploads: {} acknowledged, {} refused; recovered {:?} after the restart",
        sent.len(),
        acked.len(),
        refused.len(),
        recovered - back,
    );
    let [(url, status, readyz), reads @ ..] = &answered[..] else {
        unreachable!()
    };
    assert_eq!(*status, 503, "{url} during the outage: {readyz}");
    assert_eq!(readyz["catalog"], "unavailable", "{readyz}");
    assert_eq!(readyz["storage"], "ok", "{readyz}");
    for (url, status, body) in reads {
        assert_eq!(*status, 503, "{url} during the outage: {body}");
        assert_eq!(
            body["error"]["code"], "catalog_unavailable",
            "{url}: {body}"
        );
    }
    for s in &sent {
        match &s.outcome {
            Outcome::Acked { .. } => {}
            Outcome::Broken(e) => panic!("node {} gave no answer: {e}", s.node + 1),
            Outcome::Refused { status, code } => {
                assert_eq!(
                    (*status, code.as_str()),
                    (503, "catalog_unavailable"),
                    "node {} during the outage",
                    s.node + 1
                );
                assert!(
                    s.answered >= outage && s.started < recovered,
                    "refused while PostgreSQL was up (sent {:?} before the outage, \
                     answered {:?} after it began)",
                    outage.saturating_duration_since(s.started),
                    s.answered.saturating_duration_since(outage),
                );
            }
        }
    }
    assert!(
        refused
            .iter()
            .any(|s| s.answered >= outage && s.answered < back),
        "uploads are refused while PostgreSQL is down"
    );
    for node in 0..2 {
        assert!(
            sent.iter().any(|s| s.node == node
                && s.started >= recovered
                && matches!(s.outcome, Outcome::Acked { .. })),
            "node {} takes uploads after the restart",
            node + 1
        );
    }

    // None of the acknowledged uploads is lost: each is listed, described and served by both
    // nodes.
    let known_body = pattern(1, 2000);
    acked.push((&known, &known_body));
    let listed = listed_ids(&bases[1]).await;
    for (n, (id, body)) in acked.iter().enumerate() {
        assert!(listed.contains(*id), "acknowledged upload {id} is listed");
        let base = &bases[n % 2];
        let meta = client()
            .get(format!("{base}/v1/files/{id}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(meta.status(), 200, "{id}");
        let meta: Value = meta.json().await.unwrap();
        assert_eq!(meta["sha256"], sha256_hex(body), "{id}");
        let bytes = client()
            .get(format!("{}/files/{id}", bases[1 - n % 2]))
            .send()
            .await
            .unwrap();
        assert_eq!(bytes.status(), 200, "{id}");
        assert!(
            bytes.bytes().await.unwrap() == **body,
            "{id}: bytes as uploaded"
        );
    }
    eprintln!("PostgreSQL restart scenario took {:?}", started.elapsed());
}
