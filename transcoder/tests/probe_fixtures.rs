//! ffprobe parsing against committed JSON from Debian's ffprobe 5.1 (see fixtures/regenerate.sh).

use std::time::Duration;

use transcoder::{check_limits, parse_ffprobe_json, Limits, Probe, TranscodeError};

fn fixture(name: &str) -> Probe {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_ffprobe_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn h264_aac_1080p_mp4() {
    let p = fixture("h264_aac_1080p.mp4");
    assert_eq!(p.container, "mov,mp4,m4a,3gp,3g2,mj2");
    assert_eq!(p.duration, 1.0);
    assert_eq!(p.streams, 2);
    let v = p.video.unwrap();
    assert_eq!((v.index, v.codec.as_str()), (0, "h264"));
    assert_eq!((v.width, v.height, v.rotation), (1920, 1080, 0));
    assert_eq!(
        (v.fps, v.bit_depth, v.hdr, v.interlaced),
        (30.0, 8, false, false)
    );
    assert_eq!(v.bitrate, Some(4_932_912));
    let a = p.audio.unwrap();
    assert_eq!((a.index, a.codec.as_str()), (1, "aac"));
    assert_eq!(
        (a.channels, a.sample_rate, a.bitrate),
        (1, 44_100, Some(118_637))
    );
}

#[test]
fn phone_video_reads_its_display_matrix() {
    let v = fixture("phone_rotate90.mp4").video.unwrap();
    assert_eq!(
        (v.width, v.height),
        (1280, 720),
        "stored size, before rotation"
    );
    assert_eq!(v.rotation, 90);
}

#[test]
fn vp9_webm_without_audio() {
    let p = fixture("vp9_no_audio.webm");
    assert_eq!(p.container, "matroska,webm");
    assert!(p.audio.is_none());
    let v = p.video.unwrap();
    assert_eq!(
        (v.codec.as_str(), v.width, v.height, v.fps),
        ("vp9", 640, 360, 25.0)
    );
    // WebM stores no per-stream bitrate; the container's stands in for it.
    assert_eq!(v.bitrate, Some(373_792));
}

#[test]
fn hevc_10bit_hdr_mkv_with_5_1() {
    let p = fixture("hevc10_hdr_51.mkv");
    let v = p.video.unwrap();
    assert_eq!((v.codec.as_str(), v.bit_depth, v.hdr), ("hevc", 10, true));
    assert_eq!(v.pix_fmt, "yuv420p10le");
    assert_eq!(v.fps, 24.0);
    let a = p.audio.unwrap();
    assert_eq!((a.codec.as_str(), a.channels, a.bitrate), ("aac", 6, None));
}

#[test]
fn audio_only_m4a() {
    let p = fixture("aac_audio_only.m4a");
    assert!(p.video.is_none());
    let a = p.audio.unwrap();
    assert_eq!(
        (a.channels, a.sample_rate, a.bitrate),
        (1, 44_100, Some(97_191))
    );
}

#[test]
fn prores_mov_is_10_bit_422() {
    let p = fixture("prores.mov");
    let v = p.video.unwrap();
    assert_eq!(
        (v.codec.as_str(), v.bit_depth, v.hdr),
        ("prores", 10, false)
    );
    assert_eq!(v.pix_fmt, "yuv422p10le");
    assert_eq!(p.audio.unwrap().codec, "pcm_s16le");
}

#[test]
fn cover_art_is_not_video() {
    let p = fixture("mp3_cover_art.mp3");
    assert_eq!(p.container, "mp3");
    assert!(
        p.video.is_none(),
        "an attached picture must not make a video ladder"
    );
    assert_eq!(p.audio.unwrap().index, 0);
    assert_eq!(p.streams, 2);
}

#[test]
fn interlaced_anamorphic_pal_uses_display_width() {
    let p = fixture("anamorphic_pal.ts");
    assert_eq!(p.container, "mpegts");
    let v = p.video.unwrap();
    assert_eq!((v.width, v.height), (1024, 576));
    assert!(v.interlaced, "top field first");
    // No per-stream bitrate in MPEG-TS: container minus audio.
    assert_eq!(v.bitrate, Some(2_245_419 - 384_000));
}

#[test]
fn hls_and_other_demuxers_are_refused_even_if_ffprobe_was_not_told() {
    let json = br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":640,"height":360}],
                   "format":{"format_name":"hls","duration":"10.0"}}"#;
    match parse_ffprobe_json(json) {
        Err(TranscodeError::Unsupported(msg)) => assert!(msg.contains("hls"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_streams_is_a_clear_refusal() {
    let json = br#"{"streams":[{"index":0,"codec_type":"data"}],"format":{"format_name":"mpegts","duration":"3.0"}}"#;
    match parse_ffprobe_json(json) {
        Err(e @ TranscodeError::Unsupported(_)) => {
            assert_eq!(e.reason(), "the file has no video or audio stream")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ffprobe_failure_output_is_not_media() {
    // What ffprobe prints on stdout when it cannot open the input.
    assert!(matches!(
        parse_ffprobe_json(b"{\n\n}\n"),
        Err(TranscodeError::Unsupported(_))
    ));
}

#[test]
fn limits_name_what_was_exceeded() {
    let p = fixture("h264_aac_1080p.mp4");
    let small = Limits {
        max_width: 1280,
        max_height: 720,
        ..Limits::default()
    };
    match check_limits(&p, &small) {
        Err(TranscodeError::LimitExceeded(msg)) => assert!(msg.contains("1920x1080"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let short = Limits {
        max_duration: Duration::from_millis(500),
        ..Limits::default()
    };
    assert!(matches!(
        check_limits(&p, &short),
        Err(TranscodeError::LimitExceeded(_))
    ));
    let few = Limits {
        max_streams: 1,
        ..Limits::default()
    };
    assert!(matches!(
        check_limits(&p, &few),
        Err(TranscodeError::LimitExceeded(_))
    ));
    assert!(check_limits(&p, &Limits::default()).is_ok());
}

#[test]
fn mediarecorder_webm_states_no_duration() {
    // probe() measures it with a stream-copy pass; the parser alone reports 0.0.
    let p = fixture("mediarecorder_live.webm");
    assert_eq!(p.duration, 0.0);
    assert_eq!(p.video.unwrap().codec, "vp8");
    assert_eq!(p.audio.unwrap().codec, "opus");
}
