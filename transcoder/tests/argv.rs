//! The argv builders: every hardening rule and every encoding rule, checked on the argv itself.

use std::ffi::OsString;
use std::path::Path;

use transcoder::args::{input_position, DEMUXER_ALLOW_LIST};
use transcoder::{
    build_measure_args, build_poster_args, build_probe_args, build_transcode_args, plan_ladder,
    AudioInfo, Ladder, LadderOptions, Limits, Probe, VideoInfo,
};

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_str().unwrap().to_string())
        .collect()
}

/// The value following `flag`, which must appear exactly once.
fn value<'a>(args: &'a [String], flag: &str) -> &'a str {
    let found: Vec<_> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == flag)
        .collect();
    assert_eq!(found.len(), 1, "{flag} should appear once in {args:?}");
    &args[found[0].0 + 1]
}

fn position(args: &[String], flag: &str) -> usize {
    args.iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing from {args:?}"))
}

fn probe_1080p() -> Probe {
    Probe {
        container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        duration: 10.0,
        video: Some(VideoInfo {
            index: 0,
            codec: "h264".into(),
            width: 1920,
            height: 1080,
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
            channels: 6,
            sample_rate: 48_000,
            bitrate: None,
        }),
        streams: 2,
    }
}

fn ladder(probe: &Probe) -> Ladder {
    plan_ladder(probe, &LadderOptions::default()).unwrap()
}

fn transcode_args(probe: &Probe) -> Vec<String> {
    let ladder = ladder(probe);
    strings(&build_transcode_args(
        Path::new("/tmp/job/in.mp4"),
        probe,
        &ladder,
        Path::new("/tmp/job/out"),
        &Limits::default(),
    ))
}

/// The input-hardening rules shared by every run over untrusted input.
fn assert_hardened_input(args: &[String], input: &str) {
    let i = position(args, "-i");
    assert_eq!(
        args[i + 1],
        format!("file:{input}"),
        "input is a local file URL"
    );
    assert!(position(args, "-protocol_whitelist") < i);
    assert_eq!(value(args, "-protocol_whitelist"), "file");
    assert!(position(args, "-format_whitelist") < i);
    let allowed: Vec<&str> = value(args, "-format_whitelist").split(',').collect();
    assert_eq!(allowed, DEMUXER_ALLOW_LIST);
    for forbidden in [
        "hls", "dash", "concat", "ffconcat", "image2", "lavfi", "sdp", "rtsp", "rtp", "tee",
        "data", "subfile", "http", "tcp", "udp",
    ] {
        assert!(
            !allowed.contains(&forbidden),
            "{forbidden} must not be allowed"
        );
    }
    assert!(position(args, "-max_pixels") < i);
    assert_eq!(value(args, "-max_pixels"), (8192u64 * 8192).to_string());
    assert_eq!(
        input_position(&args.iter().map(OsString::from).collect::<Vec<_>>()),
        Some(i)
    );
}

#[test]
fn probe_args_allow_list_protocol_and_demuxer_before_input() {
    let args = strings(&build_probe_args(
        Path::new("/tmp/job/in.mp4"),
        &Limits::default(),
    ));
    assert_hardened_input(&args, "/tmp/job/in.mp4");
    assert_eq!(value(&args, "-of"), "json");
    assert!(args.contains(&"-show_streams".to_string()));
    assert!(args.contains(&"-show_format".to_string()));
    assert_eq!(args.last().unwrap(), "file:/tmp/job/in.mp4");
}

#[test]
fn transcode_args_force_the_probed_demuxer_before_input() {
    let args = transcode_args(&probe_1080p());
    assert_hardened_input(&args, "/tmp/job/in.mp4");
    let i = position(&args, "-i");
    let f = position(&args, "-f");
    assert!(f < i, "the demuxer is forced before -i");
    assert_eq!(args[f + 1], "mov,mp4,m4a,3gp,3g2,mj2");
}

#[test]
fn transcode_args_are_non_interactive_and_threaded() {
    let args = transcode_args(&probe_1080p());
    let i = position(&args, "-i");
    for flag in ["-nostdin", "-hide_banner", "-nostats", "-y"] {
        assert!(position(&args, flag) < i, "{flag} is a global option");
    }
    let threads = Limits::default().threads.to_string();
    assert_eq!(args[position(&args, "-threads") + 1], threads);
    assert_eq!(value(&args, "-filter_complex_threads"), threads);
    assert_eq!(value(&args, "-progress"), "pipe:1");
    assert_eq!(
        value(&args, "-map_metadata"),
        "-1",
        "source metadata (GPS) is dropped"
    );
}

#[test]
fn argv_is_never_a_shell_command() {
    let probe = probe_1080p();
    let ladder = ladder(&probe);
    let odd = Path::new("/tmp/we ird;$(touch x)/in put.mp4");
    let args = strings(&build_transcode_args(
        odd,
        &probe,
        &ladder,
        Path::new("/tmp/o"),
        &Limits::default(),
    ));
    assert!(args.contains(&"file:/tmp/we ird;$(touch x)/in put.mp4".to_string()));
    assert!(!args.iter().any(|a| a == "sh" || a == "-c" || a == "bash"));
}

#[test]
fn one_split_feeds_every_rung() {
    let probe = probe_1080p();
    let args = transcode_args(&probe);
    let graph = value(&args, "-filter_complex");
    assert!(
        graph.starts_with("[0:0]fps=30,split=4[s0][s1][s2][s3];"),
        "{graph}"
    );
    // 852x480 is 71:40; its SAR makes it display at 16:9 like the others.
    let sars = ["1", "1", "r=640/639:max=2147483647", "1"];
    for (i, (w, h)) in [(1920, 1080), (1280, 720), (852, 480), (640, 360)]
        .iter()
        .enumerate()
    {
        let sar = sars[i];
        assert!(
            graph.contains(&format!(
                "[s{i}]scale={w}:{h},setsar={sar},format=yuv420p[v{i}]"
            )),
            "{graph}"
        );
    }
    let maps: Vec<_> = args
        .windows(2)
        .filter(|w| w[0] == "-map")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(maps, ["[v0]", "[v1]", "[v2]", "[v3]", "0:1"]);
    assert_eq!(
        graph.matches("split=").count(),
        1,
        "decode once, split once"
    );
}

#[test]
fn fixed_gop_and_no_scene_cut_keyframes() {
    let args = transcode_args(&probe_1080p());
    assert_eq!(value(&args, "-c:v"), "libx264");
    assert_eq!(value(&args, "-g"), "120");
    assert_eq!(value(&args, "-keyint_min"), "120");
    assert_eq!(value(&args, "-sc_threshold"), "0");
    assert_eq!(value(&args, "-seg_duration"), "4.000000");
    assert_eq!(value(&args, "-preset"), "veryfast");
    assert_eq!(value(&args, "-b:v:0"), "5000000");
    assert_eq!(value(&args, "-maxrate:v:0"), "5500000");
    assert_eq!(value(&args, "-bufsize:v:3"), "1200000");
}

#[test]
fn gop_follows_the_frame_rate_and_segment_length() {
    let mut probe = probe_1080p();
    probe.video.as_mut().unwrap().fps = 30000.0 / 1001.0;
    let args = transcode_args(&probe);
    assert!(value(&args, "-filter_complex").starts_with("[0:0]fps=30000/1001,"));
    assert_eq!(value(&args, "-g"), "120");
    assert_eq!(value(&args, "-seg_duration"), "4.004000");

    probe.video.as_mut().unwrap().fps = 120.0;
    let args = transcode_args(&probe);
    assert!(value(&args, "-filter_complex").starts_with("[0:0]fps=60,"));
    assert_eq!(value(&args, "-g"), "240");
}

#[test]
fn audio_is_aac_and_at_most_stereo() {
    let args = transcode_args(&probe_1080p());
    assert_eq!(value(&args, "-c:a"), "aac");
    assert_eq!(value(&args, "-profile:a"), "aac_low");
    assert_eq!(value(&args, "-ac"), "2");
    assert_eq!(value(&args, "-b:a"), "128000");
    assert_eq!(value(&args, "-ar"), "48000");
}

#[test]
fn dash_muxer_writes_cmaf_for_both_manifests() {
    let args = transcode_args(&probe_1080p());
    let output_format = args.iter().rposition(|a| a == "-f").unwrap();
    assert!(output_format > position(&args, "-i"));
    assert_eq!(args[output_format + 1], "dash");
    assert_eq!(args[args.len() - 1], "/tmp/job/out/manifest.mpd");
    assert_eq!(value(&args, "-dash_segment_type"), "mp4");
    assert_eq!(value(&args, "-hls_playlist"), "1");
    assert_eq!(value(&args, "-hls_master_name"), "master.m3u8");
    assert_eq!(value(&args, "-use_template"), "1");
    assert_eq!(
        value(&args, "-adaptation_sets"),
        "id=0,streams=v id=1,streams=a"
    );
    assert_eq!(
        value(&args, "-init_seg_name"),
        "init-$RepresentationID$.m4s"
    );
    assert_eq!(
        value(&args, "-media_seg_name"),
        "seg-$RepresentationID$-$Number%05d$.m4s"
    );
    assert_eq!(
        value(&args, "-t"),
        "21600.000",
        "max_duration bounds the output"
    );
}

#[test]
fn audio_only_has_no_filter_graph() {
    let mut probe = probe_1080p();
    probe.video = None;
    let args = transcode_args(&probe);
    assert!(!args.contains(&"-filter_complex".to_string()));
    assert!(!args.contains(&"-c:v".to_string()));
    assert_eq!(value(&args, "-map"), "0:1");
    assert_eq!(value(&args, "-adaptation_sets"), "id=0,streams=a");
}

#[test]
fn video_only_has_one_adaptation_set() {
    let mut probe = probe_1080p();
    probe.audio = None;
    let args = transcode_args(&probe);
    assert!(!args.contains(&"-c:a".to_string()));
    assert_eq!(value(&args, "-adaptation_sets"), "id=0,streams=v");
}

#[test]
fn hdr_is_tone_mapped_to_8_bit_bt709() {
    let mut probe = probe_1080p();
    let v = probe.video.as_mut().unwrap();
    v.hdr = true;
    v.bit_depth = 10;
    v.codec = "hevc".into();
    let args = transcode_args(&probe);
    let graph = value(&args, "-filter_complex");
    assert!(graph.contains("tonemap=tonemap=hable"), "{graph}");
    assert!(
        graph.find("tonemap").unwrap() < graph.find("split=").unwrap(),
        "once, before split"
    );
    assert_eq!(graph.matches("format=yuv420p").count(), 4);
    assert_eq!(value(&args, "-color_primaries"), "bt709");
    assert_eq!(value(&args, "-color_trc"), "bt709");
    assert_eq!(value(&args, "-colorspace"), "bt709");
}

#[test]
fn stream_indexes_come_from_the_probe() {
    let mut probe = probe_1080p();
    probe.video.as_mut().unwrap().index = 2;
    probe.audio.as_mut().unwrap().index = 0;
    let args = transcode_args(&probe);
    assert!(value(&args, "-filter_complex").starts_with("[0:2]"));
    assert!(args.windows(2).any(|w| w[0] == "-map" && w[1] == "0:0"));
}

#[test]
fn poster_run_is_hardened_and_keeps_portrait() {
    let mut probe = probe_1080p();
    probe.video.as_mut().unwrap().rotation = 90;
    let ladder = ladder(&probe);
    let args = strings(
        &build_poster_args(
            Path::new("/tmp/job/in.mp4"),
            &probe,
            &ladder,
            Path::new("/tmp/job/out"),
            &Limits::default(),
            1.0,
        )
        .unwrap(),
    );
    assert_hardened_input(&args, "/tmp/job/in.mp4");
    let i = position(&args, "-i");
    assert!(position(&args, "-f") < i);
    assert!(position(&args, "-ss") < i, "input seeking");
    assert_eq!(value(&args, "-ss"), "1.000");
    assert_eq!(value(&args, "-frames:v"), "1");
    assert!(
        value(&args, "-vf").starts_with("scale=1080:1920,"),
        "portrait poster"
    );
    assert_eq!(args.last().unwrap(), "/tmp/job/out/poster.jpg");

    probe.video.as_mut().unwrap().rotation = 0;
    let mut big = probe.clone();
    big.video.as_mut().unwrap().width = 3840;
    big.video.as_mut().unwrap().height = 2160;
    let opts = LadderOptions {
        max_height: 2160,
        ..LadderOptions::default()
    };
    let ladder = plan_ladder(&big, &opts).unwrap();
    let args = strings(
        &build_poster_args(
            Path::new("/i"),
            &big,
            &ladder,
            Path::new("/o"),
            &Limits::default(),
            0.0,
        )
        .unwrap(),
    );
    assert!(
        value(&args, "-vf").starts_with("scale=1280:720,"),
        "at most 1280 wide"
    );
    assert!(
        !args.contains(&"-ss".to_string()),
        "no seek for the first frame"
    );
}

#[test]
fn no_poster_for_audio_only() {
    let mut probe = probe_1080p();
    probe.video = None;
    let ladder = ladder(&probe);
    assert!(build_poster_args(
        Path::new("/i"),
        &probe,
        &ladder,
        Path::new("/o"),
        &Limits::default(),
        1.0
    )
    .is_none());
}

#[test]
fn duration_measuring_pass_is_hardened_and_copies_to_null() {
    let probe = probe_1080p();
    let args = strings(&build_measure_args(
        Path::new("/tmp/job/in.webm"),
        &probe,
        &Limits::default(),
    ));
    assert_hardened_input(&args, "/tmp/job/in.webm");
    assert!(position(&args, "-f") < position(&args, "-i"));
    assert_eq!(value(&args, "-c"), "copy");
    assert_eq!(value(&args, "-t"), "21601.000");
    assert_eq!(&args[args.len() - 3..], ["-f", "null", "-"]);
    let maps: Vec<_> = args
        .windows(2)
        .filter(|w| w[0] == "-map")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(maps, ["0:0", "0:1"]);
}

#[test]
fn interlaced_input_is_deinterlaced_once_before_the_frame_rate() {
    let mut probe = probe_1080p();
    probe.video.as_mut().unwrap().interlaced = true;
    let args = transcode_args(&probe);
    let graph = value(&args, "-filter_complex");
    assert!(
        graph.starts_with("[0:0]bwdif=mode=send_frame:parity=auto:deint=interlaced,fps=30,split=4"),
        "{graph}"
    );
    let ladder = ladder(&probe);
    let poster = strings(
        &build_poster_args(
            Path::new("/i"),
            &probe,
            &ladder,
            Path::new("/o"),
            &Limits::default(),
            1.0,
        )
        .unwrap(),
    );
    assert!(value(&poster, "-vf").starts_with("bwdif="));
}
