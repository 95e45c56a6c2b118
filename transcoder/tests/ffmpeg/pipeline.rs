//! Real inputs through probe -> ladder -> transcode, checked by decoding the output.

use tempfile::tempdir;
use transcoder::{LadderOptions, Limits, RenditionKind};

use crate::common::*;

#[tokio::test]
async fn h264_1080p_with_aac_becomes_aligned_hls_and_dash() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "in.mp4", "1920x1080", "30", "3", true);
    let run = pipeline(&dir, &input, &one_second_segments(), &Limits::default()).await;
    let output = run.output();
    assert_progress(&run);
    assert_files_listed(&run);
    assert_eq!(output.master_playlist.to_str(), Some("master.m3u8"));
    assert_eq!(output.dash_manifest.to_str(), Some("manifest.mpd"));
    assert_eq!(
        output.poster.as_ref().and_then(|p| p.to_str()),
        Some("poster.jpg")
    );
    assert!((output.duration - 3.0).abs() < 0.1, "{}", output.duration);

    // Four video renditions, none bigger than the source, then the audio.
    let sizes: Vec<_> = output
        .renditions
        .iter()
        .map(|r| (r.width, r.height))
        .collect();
    assert_eq!(
        sizes,
        [
            (Some(1920), Some(1080)),
            (Some(1280), Some(720)),
            (Some(852), Some(480)),
            (Some(640), Some(360)),
            (None, None)
        ]
    );
    for (i, r) in output.renditions.iter().enumerate() {
        assert_eq!(r.playlist.to_str().unwrap(), format!("media_{i}.m3u8"));
        if r.kind == RenditionKind::Video {
            let (w, h) = video_size(&run.path(r.playlist.to_str().unwrap()));
            assert_eq!((Some(w as u32), Some(h as u32)), (r.width, r.height));
            assert!(w <= 1920 && h <= 1080);
        }
    }

    // The whole presentation and each rendition decode to the end.
    let whole = decode(&run.path("master.m3u8"));
    assert!((whole.seconds - 3.0).abs() < 0.2, "{whole:?}");
    for r in &output.renditions {
        let d = decode(&run.path(r.playlist.to_str().unwrap()));
        assert!((d.seconds - 3.0).abs() < 0.2, "{}: {d:?}", r.name);
    }
    let dash = decode(&run.path("manifest.mpd"));
    assert!((dash.seconds - 3.0).abs() < 0.2, "{dash:?}");

    // Segment boundaries and keyframes are the same in every video rendition.
    let video: Vec<_> = output
        .renditions
        .iter()
        .filter(|r| r.kind == RenditionKind::Video)
        .collect();
    let durations: Vec<Vec<f64>> = video
        .iter()
        .map(|r| extinf(&run.read(r.playlist.to_str().unwrap())))
        .collect();
    assert_eq!(durations[0], [1.0, 1.0, 1.0]);
    assert!(
        durations.iter().all(|d| *d == durations[0]),
        "{durations:?}"
    );
    let keyframes: Vec<Vec<f64>> = video
        .iter()
        .map(|r| {
            video_packets(&run.path(r.playlist.to_str().unwrap()))
                .into_iter()
                .filter(|(_, key)| *key)
                .map(|(pts, _)| pts)
                .collect()
        })
        .collect();
    assert_eq!(
        keyframes[0].len(),
        3,
        "one keyframe per segment: {keyframes:?}"
    );
    assert!(
        keyframes.iter().all(|k| *k == keyframes[0]),
        "{keyframes:?}"
    );

    // The master playlist says what the streams are: CODECS as in the MPD (which ffmpeg
    // derived itself), RESOLUTION, FRAME-RATE, and a BANDWIDTH at least the average.
    let master = run.read("master.m3u8");
    let mpd = run.read("manifest.mpd");
    let representations = mpd_representations(&mpd);
    assert_eq!(representations.len(), 5);
    let audio_codecs = &representations[4].1;
    assert_eq!(audio_codecs, "mp4a.40.2");
    let variants = master_variants(&master);
    assert_eq!(variants.len(), 4);
    for (i, (attrs, uri)) in variants.iter().enumerate() {
        assert_eq!(uri, &format!("media_{i}.m3u8"));
        let (id, codecs, w, h) = &representations[i];
        assert_eq!(id, &i.to_string());
        assert_eq!(
            hls_attr(attrs, "CODECS").unwrap(),
            format!("{codecs},{audio_codecs}")
        );
        assert_eq!(
            hls_attr(attrs, "RESOLUTION").unwrap(),
            format!("{}x{}", w.unwrap(), h.unwrap())
        );
        assert_eq!(hls_attr(attrs, "FRAME-RATE").as_deref(), Some("30.000"));
        assert_eq!(hls_attr(attrs, "AUDIO").as_deref(), Some("audio"));
        let bandwidth: u64 = hls_attr(attrs, "BANDWIDTH").unwrap().parse().unwrap();
        let average: u64 = hls_attr(attrs, "AVERAGE-BANDWIDTH")
            .unwrap()
            .parse()
            .unwrap();
        assert!(bandwidth >= average && average > 0, "{attrs}");
        let r = &output.renditions[i];
        assert_eq!(bandwidth, r.bandwidth + output.renditions[4].bandwidth);
        // x264 at veryfast keeps each rendition near its VBV rate.
        assert!(
            r.average_bandwidth < run.ladder.video[i].maxrate * 2,
            "{attrs}"
        );
    }
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\""));
    assert_eq!(
        output.renditions[0].codecs, "avc1.640028",
        "High@4.0 for 1080p30"
    );
    let media = run.read("media_0.m3u8");
    assert!(!media.contains("PROGRAM-DATE-TIME"));
    assert!(media.contains("#EXT-X-PLAYLIST-TYPE:VOD"));

    // Poster: a JPEG, 1280 wide at most, landscape.
    assert_eq!(video_size(&run.path("poster.jpg")), (1280, 720));
}

#[tokio::test]
async fn portrait_phone_video_comes_out_portrait() {
    let dir = tempdir().unwrap();
    let landscape = h264_input(dir.path(), "landscape.mp4", "640x360", "30", "2", true);
    let landscape = landscape.to_str().unwrap().to_string();
    let input = generate(
        dir.path(),
        "phone.mp4",
        &format!("-i {landscape} -c copy -metadata:s:v rotate=90"),
    );
    let run = pipeline(&dir, &input, &LadderOptions::default(), &Limits::default()).await;
    assert_eq!(run.probe.video.as_ref().unwrap().rotation, 90);
    let output = run.output();
    let video = &output.renditions[0];
    assert_eq!((video.width, video.height), (Some(360), Some(640)));
    let streams = streams(&run.path("media_0.m3u8"));
    let v = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(360), Some(640))
    );
    assert!(
        v.get("side_data_list").is_none(),
        "no second rotation on playback: {v}"
    );
    assert_eq!(video_size(&run.path("poster.jpg")), (360, 640));
    decode(&run.path("master.m3u8"));
}

#[tokio::test]
async fn odd_853x479_source_gets_even_renditions() {
    let dir = tempdir().unwrap();
    // testsrc2 rounds its size to even, so scale after it; 4:4:4 lets x264 keep odd sizes.
    let input = generate(
        dir.path(),
        "odd.mp4",
        "-f lavfi -i testsrc2=s=854x480:r=30000/1001:d=2.5 -vf scale=853:479,format=yuv444p \
         -c:v libx264 -preset ultrafast",
    );
    let run = pipeline(&dir, &input, &one_second_segments(), &Limits::default()).await;
    let v = run.probe.video.as_ref().unwrap();
    assert_eq!((v.width, v.height), (853, 479));
    // NTSC rate: a GOP of 30 frames lasts 1.001 s, and both renditions cut there.
    assert_eq!(run.ladder.gop, 30);
    let a = extinf(&run.read("media_0.m3u8"));
    assert_eq!(a, extinf(&run.read("media_1.m3u8")));
    assert_eq!(a[..2], [1.001, 1.001]);
    let sizes: Vec<_> = run
        .output()
        .renditions
        .iter()
        .map(|r| (r.width.unwrap(), r.height.unwrap()))
        .collect();
    assert_eq!(sizes, [(852, 478), (640, 360)]);
    assert_eq!(video_size(&run.path("media_0.m3u8")), (852, 478));
    for r in &run.output().renditions {
        decode(&run.path(r.playlist.to_str().unwrap()));
    }
}

#[tokio::test]
async fn vp9_webm_without_audio() {
    let dir = tempdir().unwrap();
    let input = generate(
        dir.path(),
        "in.webm",
        "-f lavfi -i testsrc2=s=640x360:r=25:d=2 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 300k",
    );
    let run = pipeline(&dir, &input, &LadderOptions::default(), &Limits::default()).await;
    assert_eq!(run.probe.container, "matroska,webm");
    let output = run.output();
    assert!(output
        .renditions
        .iter()
        .all(|r| r.kind == RenditionKind::Video));
    let master = run.read("master.m3u8");
    assert!(!master.contains("AUDIO"), "{master}");
    assert!(!run.read("manifest.mpd").contains("contentType=\"audio\""));
    assert_eq!(
        hls_attr(&master_variants(&master)[0].0, "CODECS").unwrap(),
        output.renditions[0].codecs
    );
    assert_files_listed(&run);
    let d = decode(&run.path("master.m3u8"));
    assert!((d.seconds - 2.0).abs() < 0.2, "{d:?}");
}

#[tokio::test]
async fn hevc_10bit_hdr_with_5_1_becomes_8bit_sdr_stereo() {
    let dir = tempdir().unwrap();
    let input = generate(
        dir.path(),
        "in.mkv",
        "-f lavfi -i testsrc2=s=640x360:r=24:d=2 -f lavfi -i sine=d=2,pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0 -c:v libx265 -preset ultrafast -x265-params log-level=error -pix_fmt yuv420p10le -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc -c:a aac -shortest",
    );
    let run = pipeline(&dir, &input, &LadderOptions::default(), &Limits::default()).await;
    let v = run.probe.video.as_ref().unwrap();
    assert_eq!((v.codec.as_str(), v.bit_depth, v.hdr), ("hevc", 10, true));
    assert_eq!(run.probe.audio.as_ref().unwrap().channels, 6);
    let output = run.output();
    assert!(
        output.renditions[0].codecs.starts_with("avc1.64"),
        "High, not High 10"
    );
    let streams = streams(&run.path("master.m3u8"));
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["pix_fmt"], "yuv420p");
    assert_eq!(video["color_transfer"], "bt709");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["channels"], 2);
    decode(&run.path("master.m3u8"));
}

#[tokio::test]
async fn variable_frame_rate_input_gets_aligned_segments() {
    let dir = tempdir().unwrap();
    // 30 fps for 1 s, 10 fps for 3 s, 60 fps for 0.5 s.
    let input = generate(
        dir.path(),
        "vfr.mkv",
        "-f lavfi -i testsrc2=s=320x240:r=30:d=3 -vf setpts='if(lt(N,30),N/30/TB,if(lt(N,60),(1+(N-30)/10)/TB,(4+(N-60)/60)/TB))' -fps_mode vfr -c:v libx264 -preset ultrafast -pix_fmt yuv420p",
    );
    let opts = LadderOptions {
        rungs: vec![180],
        ..one_second_segments()
    };
    let run = pipeline(&dir, &input, &opts, &Limits::default()).await;
    let output = run.output();
    assert_eq!(output.renditions.len(), 2);
    let a = extinf(&run.read("media_0.m3u8"));
    let b = extinf(&run.read("media_1.m3u8"));
    assert_eq!(a, b);
    assert!(
        a[..a.len() - 1].iter().all(|d| (*d - 1.0).abs() < 1e-6),
        "{a:?}"
    );
    let d = decode(&run.path("master.m3u8"));
    assert!(
        (d.seconds - run.probe.duration).abs() < 0.3,
        "{d:?} vs {}",
        run.probe.duration
    );
}

#[tokio::test]
async fn clip_of_0_4_seconds_is_one_short_segment() {
    let dir = tempdir().unwrap();
    let input = h264_input(dir.path(), "short.mp4", "320x240", "30", "0.4", true);
    let run = pipeline(&dir, &input, &LadderOptions::default(), &Limits::default()).await;
    assert_progress(&run);
    let media = run.read("media_0.m3u8");
    assert_eq!(extinf(&media).len(), 1);
    assert!(media.contains("#EXT-X-TARGETDURATION:1\n"), "{media}");
    let d = decode(&run.path("master.m3u8"));
    assert!(d.seconds > 0.3, "{d:?}");
    assert!(run.path("poster.jpg").exists());
}

#[tokio::test]
async fn audio_only_m4a_gives_an_audio_only_ladder() {
    let dir = tempdir().unwrap();
    let input = generate(
        dir.path(),
        "in.m4a",
        "-f lavfi -i sine=f=440:d=2 -c:a aac -b:a 96k",
    );
    let run = pipeline(&dir, &input, &LadderOptions::default(), &Limits::default()).await;
    assert!(run.ladder.video.is_empty());
    let output = run.output();
    assert_progress(&run);
    assert_files_listed(&run);
    assert!(output.poster.is_none());
    assert_eq!(output.renditions.len(), 1);
    assert_eq!(output.renditions[0].kind, RenditionKind::Audio);
    assert_eq!(output.renditions[0].codecs, "mp4a.40.2");
    let master = run.read("master.m3u8");
    let variants = master_variants(&master);
    assert_eq!(variants.len(), 1);
    assert_eq!(
        hls_attr(&variants[0].0, "CODECS").as_deref(),
        Some("mp4a.40.2")
    );
    assert_eq!(variants[0].1, "media_0.m3u8");
    let d = decode(&run.path("master.m3u8"));
    assert!((d.seconds - 2.0).abs() < 0.2, "{d:?}");
    decode(&run.path("manifest.mpd"));
}

#[tokio::test]
async fn prores_mov_with_pcm_audio() {
    let dir = tempdir().unwrap();
    let input = generate(
        dir.path(),
        "in.mov",
        "-f lavfi -i testsrc2=s=640x360:r=25:d=2 -f lavfi -i sine=d=2 -c:v prores_ks -profile:v 2 -c:a pcm_s16le -shortest",
    );
    let run = pipeline(&dir, &input, &LadderOptions::default(), &Limits::default()).await;
    assert_eq!(run.probe.video.as_ref().unwrap().codec, "prores");
    let output = run.output();
    assert_eq!(output.renditions.len(), 2);
    assert_files_listed(&run);
    let d = decode(&run.path("master.m3u8"));
    assert!((d.seconds - 2.0).abs() < 0.2, "{d:?}");
}

/// A browser recording (live WebM, no duration in the header), saved without an extension the
/// way the job worker saves its source.
#[tokio::test]
async fn mediarecorder_webm_without_duration_is_measured() {
    let dir = tempdir().unwrap();
    let webm = generate(
        dir.path(),
        "rec.webm",
        "-f lavfi -i testsrc2=s=320x240:r=30:d=3 -f lavfi -i sine=d=3 \
         -c:v libvpx -deadline realtime -c:a libopus -live 1 -f webm",
    );
    let input = dir.path().join("source");
    std::fs::rename(&webm, &input).unwrap();
    let run = pipeline(&dir, &input, &one_second_segments(), &Limits::default()).await;
    assert!(
        (run.probe.duration - 3.0).abs() < 0.1,
        "{}",
        run.probe.duration
    );
    assert_progress(&run);
    let d = decode(&run.path("master.m3u8"));
    assert!((d.seconds - 3.0).abs() < 0.2, "{d:?}");
}

/// Broadcast-style input: MPEG-2 in MPEG-TS, interlaced, 16:9 anamorphic (720x576 stored).
#[tokio::test]
async fn interlaced_anamorphic_mpegts_comes_out_with_square_pixels() {
    let dir = tempdir().unwrap();
    let input = generate(
        dir.path(),
        "in.ts",
        "-f lavfi -i testsrc2=s=720x576:r=25:d=2 -f lavfi -i sine=d=2 -vf setsar=64/45 \
         -c:v mpeg2video -flags +ilme+ildct -top 1 -c:a mp2 -shortest",
    );
    let opts = LadderOptions {
        rungs: vec![360],
        ..LadderOptions::default()
    };
    let run = pipeline(&dir, &input, &opts, &Limits::default()).await;
    assert_eq!(run.probe.container, "mpegts");
    assert!(run.probe.video.as_ref().unwrap().interlaced);
    let sizes: Vec<_> = run
        .output()
        .renditions
        .iter()
        .filter_map(|r| r.width.zip(r.height))
        .collect();
    assert_eq!(sizes, [(1024, 576), (640, 360)]);
    let streams = streams(&run.path("media_0.m3u8"));
    let v = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(v["sample_aspect_ratio"], "1:1");
    // (x264 codes progressive frames either way; that the graph with bwdif runs is the point
    // here, and tests/argv.rs checks that bwdif is in it.)
    decode(&run.path("master.m3u8"));
}
