//! A cluster: two API-only nodes and two worker processes on one SeaweedFS bucket and one
//! PostgreSQL database. What one node stores and signs, the other serves; six transcodes are
//! shared by the workers, one worker is SIGKILLed mid-job, its job is rescued by the other, and
//! every media ends ready with the output of exactly one attempt.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use reelay::storage::{ObjectKey, Storage};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::{
    common::{pattern, postgres, seaweed::Seaweed, sha256_hex, ADMIN_KEY},
    harness::{client, Server},
    support::{cluster_env, env_refs, metric, Database, Worker},
};

const MEDIA_COUNT: usize = 6;

/// 640x360, 16 s: at the `medium` preset a transcode takes seconds, long enough to be killed in.
fn make_input(dir: &Path) -> PathBuf {
    let input = dir.join("input.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440", "-t", "16"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac"])
        .arg(&input)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made the input");
    input
}

async fn start_node(dir: &Path, name: &str, env: &[(String, String)]) -> Server {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    Server::start_with(&dir, &env_refs(env), &["--workers", "0"]).await
}

async fn get_json(url: &str) -> Value {
    let response = client()
        .get(url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

async fn post_json(url: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(url)
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The pid in a lease owner `<hostname>-<pid>-<n>` (a hostname may hold dashes).
fn owner_pid(owner: &str) -> Option<u32> {
    owner.rsplit('-').nth(1)?.parse().ok()
}

/// The run token N of a run prefix `media/<id>/r<N>/`.
fn run_token(prefix: &str) -> u64 {
    let run = prefix.trim_end_matches('/').rsplit('/').next().unwrap();
    run.strip_prefix('r')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{prefix:?} is not a run prefix"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_shares_files_and_survives_a_worker_killed_mid_transcode() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    let weed = Seaweed::start();
    let bucket = weed.bucket().await;
    let database = Database::create(&postgres::server_url()).await;
    let env = cluster_env(&weed, bucket.bucket(), &database.url);
    let node1 = start_node(dir.path(), "node1", &env).await;
    let node2 = start_node(dir.path(), "node2", &env).await;

    // A file stored through node 1 is described, signed and served by node 2.
    let body = pattern(7, 300_000);
    let response = client()
        .post(node1.url("/v1/files?filename=notes.bin"))
        .bearer_auth(ADMIN_KEY)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.unwrap();
    let file_id = file["id"].as_str().unwrap().to_owned();
    let seen = get_json(&node2.url(&format!("/v1/files/{file_id}"))).await;
    assert_eq!(seen["size"], body.len());
    assert_eq!(seen["sha256"], sha256_hex(&body));
    assert_eq!(seen["access"], "private");
    let unsigned = client()
        .get(node2.url(&format!("/files/{file_id}")))
        .send()
        .await
        .unwrap();
    assert!(
        unsigned.status().is_client_error(),
        "a private file needs a signature: {}",
        unsigned.status()
    );
    let (status, signed) = post_json(
        &node2.url(&format!("/v1/files/{file_id}/signed-url")),
        json!({ "expires_in": 300 }),
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let url = signed["url"].as_str().unwrap();
    assert!(url.starts_with(&node2.base), "{url}");
    let download = client().get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.bytes().await.unwrap() == body,
        "node 2 serves node 1's bytes"
    );
    // Both nodes hold the same signing keys: node 1's signature opens the file on node 2.
    let (_, signed) = post_json(
        &node1.url(&format!("/v1/files/{file_id}/signed-url")),
        json!({ "expires_in": 300 }),
    )
    .await;
    let url = signed["url"]
        .as_str()
        .unwrap()
        .replace(&node1.base, &node2.base);
    let download = client().get(&url).send().await.unwrap();
    assert_eq!(download.status(), 200, "{url}");
    assert!(download.bytes().await.unwrap() == body);

    // Six transcodes, queued through either node, shared by two worker processes.
    let response = client()
        .post(node1.url("/v1/files?filename=input.mp4&access=public"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "video/mp4")
        .body(std::fs::read(&input).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let video: Value = response.json().await.unwrap();
    let mut worker_env = env.clone();
    for (k, v) in [
        ("REELAY_WORKERS", "1"),
        ("REELAY_JOB_LEASE", "3"),
        ("REELAY_JOB_POLL_INTERVAL", "1"),
        ("REELAY_X264_PRESET", "medium"),
        ("REELAY_SEGMENT_SECONDS", "2"),
    ] {
        worker_env.push((k.to_owned(), v.to_owned()));
    }
    let mut workers = [
        Worker::start(dir.path(), "worker1", &worker_env).await,
        Worker::start(dir.path(), "worker2", &worker_env).await,
    ];
    let mut media_ids = Vec::new();
    for n in 0..MEDIA_COUNT {
        let node = if n % 2 == 0 { &node1 } else { &node2 };
        let (status, media) =
            post_json(&node.url("/v1/media"), json!({ "file_id": video["id"] })).await;
        assert_eq!(status, 202, "{media}");
        media_ids.push(media["id"].as_str().unwrap().to_owned());
    }

    // Kill a worker while it is encoding: progress written, well short of the upload.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (victim, killed_media) = 'found: loop {
        let running = get_json(&node2.url("/v1/jobs?state=running")).await;
        for job in running["items"].as_array().unwrap() {
            let Some(pid) = job["lease_owner"].as_str().and_then(owner_pid) else {
                continue;
            };
            let subject = job["subject"].as_str().unwrap();
            let media = get_json(&node2.url(&format!("/v1/media/{subject}"))).await;
            let progress = media["progress"].as_u64().unwrap();
            if media["state"] == "processing" && (1..=70).contains(&progress) {
                if let Some(n) = workers.iter().position(|w| w.pid() == pid) {
                    eprintln!("killing worker {} mid-job: {media}", n + 1);
                    break 'found (n, subject.to_owned());
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "never saw a job mid-transcode: {running}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    workers[victim].kill_9();
    let survivor = &workers[1 - victim];

    let deadline = Instant::now() + Duration::from_secs(100);
    for id in &media_ids {
        loop {
            let media = get_json(&node2.url(&format!("/v1/media/{id}"))).await;
            if media["state"] == "ready" {
                break;
            }
            assert_ne!(
                media["state"],
                "failed",
                "{media}\nsurviving worker's log:\n{}",
                survivor.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "not ready in time: {media}\nsurviving worker's log:\n{}",
                survivor.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The queue agrees: six done jobs, the killed one on a later attempt.
    let done = get_json(&node1.url("/v1/jobs?state=done")).await;
    let done = done["items"].as_array().unwrap();
    let subjects: BTreeSet<&str> = done
        .iter()
        .map(|j| j["subject"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = media_ids.iter().map(String::as_str).collect();
    assert_eq!(done.len(), MEDIA_COUNT, "{done:?}");
    assert_eq!(subjects, expected);
    let killed_job = done.iter().find(|j| j["subject"] == killed_media).unwrap();
    eprintln!("after the rescue: {killed_job}");
    assert!(
        killed_job["attempts"].as_u64().unwrap() >= 2,
        "the killed attempt was rescued and run again: {killed_job}"
    );

    // Each media serves the output of the attempt that held the job's final lease, and no
    // other attempt left results: one run prefix per media, or for the killed media, an
    // earlier, partial one that is not served.
    let mut db = database.connect().await;
    let rows = sqlx::query(
        "SELECT m.id, m.output_prefix, j.lease_token FROM media m JOIN jobs j ON j.subject = m.id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(rows.len(), MEDIA_COUNT);
    let mut stored: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for object in bucket.list("media/").await.unwrap() {
        let (_, run) = ObjectKey::media_run_of(&object.key)
            .unwrap_or_else(|| panic!("{} is not a media output key", object.key));
        stored
            .entry(run)
            .or_default()
            .insert(object.key, object.size);
    }
    for row in &rows {
        let id: String = row.get("id");
        let served: String = row.get("output_prefix");
        let token: i64 = row.get("lease_token");
        assert_eq!(
            served,
            format!("media/{id}/r{token}/"),
            "served by the last lease"
        );
        let files = sqlx::query("SELECT path, size FROM media_files WHERE media_id = $1")
            .bind(&id)
            .fetch_all(&mut db)
            .await
            .unwrap();
        let listed: BTreeMap<String, u64> = files
            .iter()
            .map(|f| {
                let path: String = f.get("path");
                let size: i64 = f.get("size");
                (format!("{served}{path}"), size as u64)
            })
            .collect();
        assert!(!listed.is_empty());
        assert_eq!(
            stored.get(&served),
            Some(&listed),
            "the served run holds exactly what the catalog lists"
        );
        let runs: Vec<&String> = stored
            .keys()
            .filter(|p| p.starts_with(&format!("media/{id}/")))
            .collect();
        if id == killed_media {
            for run in runs.iter().filter(|r| **r != &served) {
                assert!(
                    run_token(run) < run_token(&served),
                    "only the killed, earlier attempt may have left a partial run: {runs:?}"
                );
            }
        } else {
            assert_eq!(runs, vec![&served], "one attempt, one run");
        }
    }
    db.close().await.ok();

    // Every media plays through node 1.
    let plays = media_ids.iter().map(|id| {
        let url = node1.url(&format!("/v1/media/{id}"));
        async move {
            let media = get_json(&url).await;
            let hls = media["hls_url"].as_str().unwrap().to_owned();
            let output = tokio::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i", &hls, "-f", "null", "-"])
                .output()
                .await
                .unwrap();
            (hls, output)
        }
    });
    for (hls, output) in futures::future::join_all(plays).await {
        assert!(hls.starts_with(&node1.base), "{hls}");
        assert!(
            output.status.success(),
            "ffmpeg plays {hls}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Rescues show on the surviving worker's /metrics, queue depth on the API node's.
    let worker_metrics = survivor.metrics().await;
    let rescued = metric(&worker_metrics, "reelay_jobs_rescued_total");
    assert!(
        rescued.is_some_and(|n| n >= 1.0),
        "rescues: {rescued:?}\n{worker_metrics}"
    );
    let node_metrics = client()
        .get(node1.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&node_metrics, "reelay_jobs{state=\"done\"}"),
        Some(MEDIA_COUNT as f64),
        "{node_metrics}"
    );
    for state in ["queued", "running", "failed"] {
        assert_eq!(
            metric(&node_metrics, &format!("reelay_jobs{{state=\"{state}\"}}")),
            Some(0.0)
        );
    }
    eprintln!("cluster scenario took {:?}", started.elapsed());
}
