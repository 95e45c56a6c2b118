//! Ladder planning as a table: each row is a source and the renditions it must produce.

use transcoder::{
    plan_ladder, AudioInfo, AudioRendition, Ladder, LadderOptions, Probe, TranscodeError, VideoInfo,
};

fn video(width: u32, height: u32, fps: f64, bitrate: Option<u64>) -> VideoInfo {
    VideoInfo {
        index: 0,
        codec: "h264".into(),
        width,
        height,
        rotation: 0,
        fps,
        bit_depth: 8,
        hdr: false,
        bitrate,
        pix_fmt: "yuv420p".into(),
        interlaced: false,
    }
}

fn stereo() -> AudioInfo {
    AudioInfo {
        index: 1,
        codec: "aac".into(),
        channels: 2,
        sample_rate: 48_000,
        bitrate: Some(192_000),
    }
}

fn source(video: Option<VideoInfo>, audio: Option<AudioInfo>, duration: f64) -> Probe {
    Probe {
        container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        duration,
        video,
        audio,
        streams: 2,
    }
}

fn plan(probe: &Probe) -> Ladder {
    plan_ladder(probe, &LadderOptions::default()).unwrap()
}

fn sizes(ladder: &Ladder) -> Vec<(u32, u32)> {
    ladder.video.iter().map(|r| (r.width, r.height)).collect()
}

fn kbps(ladder: &Ladder) -> Vec<u64> {
    ladder.video.iter().map(|r| r.bitrate / 1000).collect()
}

#[test]
fn table_of_sources() {
    struct Row {
        name: &'static str,
        video: VideoInfo,
        sizes: &'static [(u32, u32)],
    }
    let rotated = |mut v: VideoInfo, rotation| {
        v.rotation = rotation;
        v
    };
    let rows = [
        Row {
            name: "1080p keeps its size and gets every standard rung",
            video: video(1920, 1080, 30.0, None),
            sizes: &[(1920, 1080), (1280, 720), (852, 480), (640, 360)],
        },
        Row {
            name: "720p is never upscaled",
            video: video(1280, 720, 30.0, None),
            sizes: &[(1280, 720), (852, 480), (640, 360)],
        },
        Row {
            name: "4K is capped at 1080",
            video: video(3840, 2160, 30.0, None),
            sizes: &[(1920, 1080), (1280, 720), (852, 480), (640, 360)],
        },
        Row {
            name: "odd 853x479 rounds down to even, 480 is skipped as within 10%",
            video: video(853, 479, 30.0, None),
            sizes: &[(852, 478), (640, 360)],
        },
        Row {
            name: "portrait phone video (rotation 90) comes out portrait",
            video: rotated(video(1920, 1080, 30.0, None), 90),
            sizes: &[(1080, 1920), (720, 1280), (480, 852), (360, 640)],
        },
        Row {
            name: "rotation 270 swaps too",
            video: rotated(video(1280, 720, 30.0, None), 270),
            sizes: &[(720, 1280), (480, 852), (360, 640)],
        },
        Row {
            name: "rotation 180 keeps landscape",
            video: rotated(video(1280, 720, 30.0, None), 180),
            sizes: &[(1280, 720), (852, 480), (640, 360)],
        },
        Row {
            name: "a tiny source is one rung at its own size",
            video: video(320, 240, 30.0, None),
            sizes: &[(320, 240)],
        },
        Row {
            name: "a 740p source skips 720p (within 10%)",
            video: video(1316, 740, 30.0, None),
            sizes: &[(1316, 740), (854, 480), (640, 360)],
        },
        Row {
            name: "1x1 never becomes 0x0",
            video: video(1, 1, 30.0, None),
            sizes: &[(2, 2)],
        },
    ];
    for row in rows {
        let (sw, sh) = if row.video.rotation % 180 == 90 {
            (row.video.height, row.video.width)
        } else {
            (row.video.width, row.video.height)
        };
        let ladder = plan(&source(Some(row.video), Some(stereo()), 10.0));
        assert_eq!(sizes(&ladder), row.sizes, "{}", row.name);
        let top = &ladder.video[0];
        assert_eq!(top.sar, (1, 1), "{}: square pixels on top", row.name);
        for r in &ladder.video {
            // Same display aspect ratio as the top rung: w * sar.0 / (h * sar.1) == W / H.
            assert_eq!(
                u64::from(r.width) * u64::from(r.sar.0) * u64::from(top.height),
                u64::from(top.width) * u64::from(r.height) * u64::from(r.sar.1),
                "{}: display aspect of {}x{}",
                row.name,
                r.width,
                r.height
            );
            assert!(
                r.width % 2 == 0 && r.height % 2 == 0 && r.width > 0,
                "{}: even",
                row.name
            );
            assert!(
                r.width <= sw.max(2) && r.height <= sh.max(2),
                "{}: no upscale",
                row.name
            );
            assert!(
                r.maxrate > r.bitrate && r.bufsize > r.maxrate,
                "{}: VBV",
                row.name
            );
        }
    }
}

#[test]
fn standard_1080p_bitrates_gop_and_names() {
    let ladder = plan(&source(
        Some(video(1920, 1080, 30.0, None)),
        Some(stereo()),
        60.0,
    ));
    assert_eq!(kbps(&ladder), vec![5000, 2800, 1397, 800]);
    let names: Vec<_> = ladder.video.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["1080p", "720p", "480p", "360p"]);
    assert_eq!(
        (ladder.fps, ladder.gop, ladder.segment_seconds),
        (30.0, 120, 4.0)
    );
    let sars: Vec<_> = ladder.video.iter().map(|r| r.sar).collect();
    assert_eq!(
        sars,
        [(1, 1), (1, 1), (640, 639), (1, 1)],
        "852x480 shown at 16:9"
    );
    assert_eq!(ladder.video[0].maxrate, 5_500_000);
    assert_eq!(ladder.video[0].bufsize, 7_500_000);
    assert_eq!(
        ladder.audio,
        Some(AudioRendition {
            bitrate: 128_000,
            channels: 2,
            sample_rate: 48_000
        })
    );
}

#[test]
fn short_clip_still_has_a_whole_gop_and_segment() {
    let ladder = plan(&source(
        Some(video(320, 240, 30.0, None)),
        Some(stereo()),
        0.4,
    ));
    assert_eq!(ladder.gop, 120);
    assert_eq!(
        ladder.segment_seconds, 4.0,
        "a segment may be longer than the clip"
    );
}

#[test]
fn audio_only_input_has_no_video_renditions() {
    let ladder = plan(&source(None, Some(stereo()), 30.0));
    assert!(ladder.video.is_empty());
    assert_eq!(ladder.audio.as_ref().map(|a| a.channels), Some(2));
    assert_eq!((ladder.gop, ladder.fps), (0, 0.0));
}

#[test]
fn no_audio_means_no_audio_rendition() {
    let ladder = plan(&source(Some(video(640, 360, 25.0, None)), None, 3.0));
    assert!(ladder.audio.is_none());
    assert_eq!((ladder.fps, ladder.gop), (25.0, 100));
}

#[test]
fn neither_audio_nor_video_is_refused() {
    let err = plan_ladder(&source(None, None, 3.0), &LadderOptions::default()).unwrap_err();
    assert!(matches!(err, TranscodeError::Unsupported(_)));
}

#[test]
fn high_frame_rates_are_divided_evenly_under_the_cap() {
    let ladder = plan(&source(Some(video(1920, 1080, 120.0, None)), None, 5.0));
    assert_eq!((ladder.fps, ladder.gop), (60.0, 240));
    assert_eq!(kbps(&ladder)[0], 7500, "high frame rate gets 1.5x");
    let ladder = plan(&source(Some(video(1280, 720, 144.0, None)), None, 5.0));
    assert_eq!(ladder.fps, 48.0);
    let ladder = plan(&source(Some(video(1280, 720, 60.0, None)), None, 5.0));
    assert_eq!(ladder.fps, 60.0);
}

#[test]
fn ntsc_rates_round_the_gop_to_whole_frames() {
    let ladder = plan(&source(
        Some(video(1280, 720, 30000.0 / 1001.0, None)),
        None,
        9.0,
    ));
    assert_eq!(ladder.gop, 120);
    assert!((ladder.segment_seconds - 4.004).abs() < 1e-9);
}

#[test]
fn unknown_frame_rate_assumes_30() {
    let ladder = plan(&source(Some(video(640, 360, 0.0, None)), None, 5.0));
    assert_eq!((ladder.fps, ladder.gop), (30.0, 120));
}

#[test]
fn low_bitrate_source_caps_every_rung() {
    let ladder = plan(&source(
        Some(video(1920, 1080, 30.0, Some(500_000))),
        None,
        60.0,
    ));
    // 500 kb/s x 1.25 headroom at the source size, scaled by pixels below, floored at 150 kb/s.
    assert_eq!(kbps(&ladder), vec![625, 277, 150, 150]);
    assert!(ladder.video.iter().all(|r| r.bitrate <= 625_000));
}

#[test]
fn efficient_source_codecs_get_more_headroom() {
    let mut v = video(1920, 1080, 30.0, Some(1_000_000));
    v.codec = "hevc".into();
    let ladder = plan(&source(Some(v), None, 60.0));
    assert_eq!(kbps(&ladder)[0], 2000);
}

#[test]
fn high_bitrate_source_keeps_the_table() {
    let ladder = plan(&source(
        Some(video(1920, 1080, 30.0, Some(50_000_000))),
        None,
        60.0,
    ));
    assert_eq!(kbps(&ladder), vec![5000, 2800, 1397, 800]);
}

#[test]
fn audio_is_downmixed_to_stereo_and_resampled_when_odd() {
    let mut a = stereo();
    a.channels = 6;
    a.sample_rate = 22_050;
    a.bitrate = None;
    let ladder = plan(&source(None, Some(a), 10.0));
    assert_eq!(
        ladder.audio,
        Some(AudioRendition {
            bitrate: 128_000,
            channels: 2,
            sample_rate: 48_000
        })
    );
    let mut mono = stereo();
    mono.channels = 1;
    mono.sample_rate = 44_100;
    mono.bitrate = Some(32_000);
    let audio = plan(&source(None, Some(mono), 10.0)).audio.unwrap();
    assert_eq!(
        (audio.channels, audio.bitrate, audio.sample_rate),
        (1, 64_000, 44_100)
    );
}

#[test]
fn options_change_the_cap_and_rungs() {
    let opts = LadderOptions {
        max_height: 720,
        rungs: vec![360],
        segment_seconds: 2.0,
        ..LadderOptions::default()
    };
    let ladder = plan_ladder(
        &source(Some(video(1920, 1080, 25.0, None)), None, 9.0),
        &opts,
    )
    .unwrap();
    assert_eq!(sizes(&ladder), [(1280, 720), (640, 360)]);
    assert_eq!(ladder.gop, 50);
}

#[test]
fn invalid_options_are_refused() {
    let probe = source(Some(video(640, 360, 25.0, None)), None, 3.0);
    for opts in [
        LadderOptions {
            segment_seconds: 0.0,
            ..LadderOptions::default()
        },
        LadderOptions {
            segment_seconds: f64::NAN,
            ..LadderOptions::default()
        },
        LadderOptions {
            max_fps: 0.0,
            ..LadderOptions::default()
        },
        LadderOptions {
            preset: "fast; rm -rf /".into(),
            ..LadderOptions::default()
        },
    ] {
        assert!(matches!(
            plan_ladder(&probe, &opts),
            Err(TranscodeError::InvalidOptions(_))
        ));
    }
}
