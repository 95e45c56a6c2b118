//! Separate `reelay worker` processes on the embedded catalog: a worker SIGKILLed in the middle
//! of a transcode loses its lease, the job is rescued and another worker finishes it.

use std::{
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    common::ADMIN_KEY,
    harness::{client, reelay, Server},
};

/// Long enough, at a slow preset, that the first worker is still encoding when it is killed.
fn make_input(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("input.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440", "-t", "8"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ])
        .arg(&input)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    input
}

fn start_worker(dir: &Path, name: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    reelay()
        .arg("worker")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("REELAY_JOB_LEASE", "3")
        .env("REELAY_JOB_POLL_INTERVAL", "1")
        .env("REELAY_X264_PRESET", "medium")
        .env("REELAY_SEGMENT_SECONDS", "2")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("reelay worker starts")
}

async fn media(server: &Server, id: &str) -> Value {
    client()
        .get(server.url(&format!("/v1/media/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_worker_killed_mid_transcode_is_rescued_and_the_job_ends_ready() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    // An API-only node; the transcodes run in separate worker processes.
    let server = Server::start_with(
        dir.path(),
        &[("REELAY_JOB_LEASE", "3")],
        &["--workers", "0"],
    )
    .await;
    let response = client()
        .post(server.url("/v1/files?filename=input.mp4&access=public&transcode=true"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "video/mp4")
        .body(std::fs::read(&input).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.unwrap();
    let id = file["media"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        media(&server, &id).await["state"],
        "queued",
        "no worker runs in the API node"
    );

    let mut first = start_worker(dir.path(), "worker-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = media(&server, &id).await;
        if state["state"] == "processing" && state["progress"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert_ne!(
            state["state"], "ready",
            "finished before it could be killed: {state}"
        );
        assert!(
            Instant::now() < deadline,
            "never started processing: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = start_worker(dir.path(), "worker-2");
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let state = media(&server, &id).await;
        if state["state"] == "ready" || state["state"] == "failed" {
            break state;
        }
        assert!(Instant::now() < deadline, "never finished: {state}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(done["state"], "ready", "{done}");
    let log = std::fs::read_to_string(dir.path().join("worker-2.log")).unwrap();
    assert!(
        log.contains("expired leases"),
        "the second worker rescued the job:\n{log}"
    );

    // Only the second attempt's run was stored: the killed one never wrote results.
    let runs: Vec<String> = std::fs::read_dir(server.objects_dir().join("media").join(&id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs, vec!["r2".to_string()], "{runs:?}");

    // And the stream plays.
    let master = client()
        .get(done["hls_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(master.status(), 200);
    let status = tokio::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            done["hls_url"].as_str().unwrap(),
            "-f",
            "null",
            "-",
        ])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}
