//! Inputs that are not what they claim: each must fail with a clear reason, and nothing outside
//! the input file may be read or contacted.

use std::net::TcpListener;
use std::path::Path;

use tempfile::tempdir;
use transcoder::{
    build_transcode_args, plan_ladder, probe, transcode, AudioInfo, LadderOptions, Limits, Probe,
    TranscodeError, VideoInfo,
};

use crate::common::*;

async fn probe_err(input: &Path) -> TranscodeError {
    match probe(&tools(), input, &Limits::default()).await {
        Ok(p) => panic!("{} probed as {p:?}", input.display()),
        Err(err) => err,
    }
}

#[tokio::test]
async fn empty_file_is_refused() {
    let dir = tempdir().unwrap();
    let input = dir.path().join("empty.mp4");
    std::fs::write(&input, b"").unwrap();
    let err = probe_err(&input).await;
    assert!(matches!(err, TranscodeError::Unsupported(_)), "{err:?}");
    assert_eq!(err.reason(), "the file is empty");
}

#[tokio::test]
async fn text_file_named_mp4_is_refused() {
    let dir = tempdir().unwrap();
    let input = dir.path().join("notes.mp4");
    std::fs::write(&input, "Dear diary, today I uploaded a text file.\n").unwrap();
    let err = probe_err(&input).await;
    assert!(matches!(err, TranscodeError::Unsupported(_)), "{err:?}");
    assert!(
        err.reason()
            .contains("not a recognised video or audio file"),
        "{}",
        err.reason()
    );
}

#[tokio::test]
async fn truncated_mp4_with_index_at_the_end_is_refused_at_probe() {
    let dir = tempdir().unwrap();
    let full = h264_input(dir.path(), "full.mp4", "320x240", "30", "2", true);
    let bytes = std::fs::read(&full).unwrap();
    let input = dir.path().join("cut.mp4");
    std::fs::write(&input, &bytes[..bytes.len() / 2]).unwrap();
    let err = probe_err(&input).await;
    assert!(matches!(err, TranscodeError::Unsupported(_)), "{err:?}");
    assert!(
        err.reason().contains("damaged or truncated"),
        "{}",
        err.reason()
    );
}

#[tokio::test]
async fn truncated_mp4_with_index_first_fails_the_encode() {
    let dir = tempdir().unwrap();
    let full = h264_input(dir.path(), "full.mp4", "320x240", "30", "3", true);
    let full = full.to_str().unwrap().to_string();
    let fast = generate(
        dir.path(),
        "fast.mp4",
        &format!("-i {full} -c copy -movflags +faststart"),
    );
    let bytes = std::fs::read(&fast).unwrap();
    let input = dir.path().join("cut.mp4");
    std::fs::write(&input, &bytes[..bytes.len() / 2]).unwrap();

    // The index is intact, so the probe believes the full duration...
    let tools = tools();
    let limits = Limits::default();
    let probe = probe(&tools, &input, &limits).await.unwrap();
    assert!((probe.duration - 3.0).abs() < 0.1);
    // ...and the encode notices that the data stops halfway.
    let ladder = plan_ladder(&probe, &LadderOptions::default()).unwrap();
    let err = transcode(
        &tools,
        &input,
        &probe,
        &ladder,
        &dir.path().join("out"),
        &limits,
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TranscodeError::Failed(_)), "{err:?}");
    assert!(err.to_string().contains("partial file"), "{err}");
    assert_eq!(err.reason(), "the file appears to be damaged or truncated");
}

/// An HLS playlist saved as .mp4 whose "segments" are a local secret and a loopback URL; and
/// the same trick with an ffconcat list. Neither may be opened.
#[tokio::test]
async fn playlist_disguised_as_mp4_reads_no_other_file_and_no_url() {
    let dir = tempdir().unwrap();
    let secret_bytes = "SECRET-4f9d2c-do-not-leak";
    let secret = dir.path().join("secret.ts");
    std::fs::write(&secret, secret_bytes).unwrap();
    let canary = TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let url = format!("http://{}/segment.ts", canary.local_addr().unwrap());

    let hls = dir.path().join("hls.mp4");
    std::fs::write(
        &hls,
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXTINF:10.0,\nfile://{secret}\n#EXTINF:10.0,\n{secret}\n#EXTINF:10.0,\nsecret.ts\n\
             #EXTINF:10.0,\n{url}\n#EXT-X-ENDLIST\n",
            secret = secret.display()
        ),
    )
    .unwrap();
    let concat = dir.path().join("concat.mp4");
    std::fs::write(
        &concat,
        format!(
            "ffconcat version 1.0\nfile '{}'\nfile '{url}'\n",
            secret.display()
        ),
    )
    .unwrap();

    let err = probe_err(&hls).await;
    assert!(matches!(err, TranscodeError::Unsupported(_)), "{err:?}");
    assert!(err.reason().contains("HLS playlist"), "{}", err.reason());
    let err = probe_err(&concat).await;
    assert!(matches!(err, TranscodeError::Unsupported(_)), "{err:?}");

    // Defence in depth: even with a forged probe, the encode refuses the playlist. A demuxer
    // off the list is refused before ffmpeg starts; forced allowed demuxers find garbage.
    let tools = tools();
    let limits = Limits::default();
    for (container, expected) in [
        ("mov,mp4,m4a,3gp,3g2,mj2", "moov atom not found"),
        ("mpegts", "could not find codec parameters"),
        ("hls", "format we do not accept"),
    ] {
        let forged = forged_probe(container);
        let ladder = plan_ladder(&forged, &LadderOptions::default()).unwrap();
        for (i, input) in [&hls, &concat].into_iter().enumerate() {
            let out = dir.path().join(format!("out-{container}-{i}"));
            let err = transcode(&tools, input, &forged, &ladder, &out, &limits, &|_| {})
                .await
                .unwrap_err();
            assert!(err.to_string().contains(expected), "{container}: {err}");
            assert_no_secret(&out, secret_bytes);
        }
    }
    // And ffmpeg itself, given our argv with the hls demuxer forced, refuses it by allow-list.
    let forged = forged_probe("hls");
    let ladder = plan_ladder(&forged, &LadderOptions::default()).unwrap();
    let out = dir.path().join("out-direct");
    std::fs::create_dir(&out).unwrap();
    let args = build_transcode_args(&hls, &forged, &ladder, &out, &limits);
    let run = std::process::Command::new(&tools.ffmpeg)
        .args(&args)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("Format not on whitelist"), "{stderr}");
    assert_no_secret(&out, secret_bytes);

    match canary.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("ffmpeg contacted the canary URL: {other:?}"),
    }
}

fn assert_no_secret(dir: &Path, secret: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret leaked into the output"
        );
    }
}

fn forged_probe(container: &str) -> Probe {
    Probe {
        container: container.into(),
        duration: 40.0,
        video: Some(VideoInfo {
            index: 0,
            codec: "h264".into(),
            width: 320,
            height: 240,
            rotation: 0,
            fps: 30.0,
            bit_depth: 8,
            hdr: false,
            bitrate: None,
            pix_fmt: "yuv420p".into(),
            interlaced: false,
        }),
        audio: Some(AudioInfo {
            index: 1,
            codec: "aac".into(),
            channels: 2,
            sample_rate: 48_000,
            bitrate: None,
        }),
        streams: 2,
    }
}
