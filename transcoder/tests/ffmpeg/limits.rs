//! Limits, timeouts and cancellation with the real binaries.

use std::time::{Duration, Instant};

use tempfile::tempdir;
use transcoder::{plan_ladder, probe, transcode, LadderOptions, Limits, Tools, TranscodeError};

use crate::common::*;

#[tokio::test]
async fn tools_are_found_and_verified() {
    let version = tools().verify().await.unwrap();
    assert!(version.starts_with("ffmpeg version"), "{version}");
    let missing = Tools::new("/nonexistent/ffmpeg".into());
    assert!(matches!(
        missing.verify().await,
        Err(TranscodeError::NotFound(_))
    ));
}

#[tokio::test]
async fn oversized_video_is_refused_after_probe() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "in.mp4", "640x360", "30", "1", false);
    let limits = Limits {
        max_width: 320,
        ..Limits::default()
    };
    let err = probe(&tools(), &input, &limits).await.unwrap_err();
    assert!(matches!(err, TranscodeError::LimitExceeded(_)), "{err:?}");
    assert!(err.reason().contains("640x360"), "{}", err.reason());

    // -max_pixels reaches the decoders too: ffprobe itself refuses the frame.
    let limits = Limits {
        max_pixels: 1000,
        ..Limits::default()
    };
    let err = probe(&tools(), &input, &limits).await.unwrap_err();
    assert!(matches!(err, TranscodeError::LimitExceeded(_)), "{err:?}");
}

#[tokio::test]
async fn too_long_is_refused() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "in.mp4", "160x120", "10", "2", false);
    let limits = Limits {
        max_duration: Duration::from_secs(1),
        ..Limits::default()
    };
    let err = probe(&tools(), &input, &limits).await.unwrap_err();
    assert!(matches!(err, TranscodeError::LimitExceeded(_)), "{err:?}");
}

#[tokio::test]
async fn output_larger_than_the_cap_stops_ffmpeg() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "in.mp4", "640x360", "30", "2", true);
    let limits = Limits {
        max_output_bytes: 20_000,
        ..Limits::default()
    };
    let run = pipeline(&dir, &input, &LadderOptions::default(), &limits).await;
    match run.result {
        Err(TranscodeError::LimitExceeded(msg)) => assert!(msg.contains("20000"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_ne!(run.progress.last(), Some(&100));
}

#[tokio::test]
async fn timeout_kills_ffmpeg() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "in.mp4", "1280x720", "30", "3", false);
    let tools = tools();
    let limits = Limits::default();
    let probe = probe(&tools, &input, &limits).await.unwrap();
    let ladder = plan_ladder(&probe, &LadderOptions::default()).unwrap();
    let out_dir = dir.path().join("out");
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..limits
    };
    let started = Instant::now();
    let err = transcode(&tools, &input, &probe, &ladder, &out_dir, &limits, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, TranscodeError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(ffmpeg_processes_mentioning(&out_dir), 0);
}

/// A job worker cancels by aborting the spawned task: the future is dropped on another thread
/// and ffmpeg must die with it. (This also proves the futures are `Send + 'static`-able.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_the_job_task_kills_ffmpeg() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "in.mp4", "1280x720", "30", "3", false);
    let out_dir = dir.path().join("out");
    let job = {
        let (input, out_dir) = (input.clone(), out_dir.clone());
        tokio::spawn(async move {
            let tools = tools();
            let limits = Limits::default();
            let probe = probe(&tools, &input, &limits).await?;
            let ladder = plan_ladder(&probe, &LadderOptions::default())?;
            transcode(&tools, &input, &probe, &ladder, &out_dir, &limits, &|_| {}).await
        })
    };
    // Wait until ffmpeg is encoding, then cancel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ffmpeg_processes_mentioning(&out_dir) == 0 {
        assert!(Instant::now() < deadline, "ffmpeg never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    job.abort();
    assert!(job.await.unwrap_err().is_cancelled());
    // kill_on_drop sends SIGKILL on drop; give the kernel a moment to deliver it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while ffmpeg_processes_mentioning(&out_dir) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ffmpeg_processes_mentioning(&out_dir), 0);
}

/// Live (non-zombie) processes whose command line names `path`.
fn ffmpeg_processes_mentioning(path: &std::path::Path) -> usize {
    let needle = path.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .count()
}
