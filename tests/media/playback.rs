//! Case 2: what a player gets. ffmpeg plays every ready media over HTTP from the running
//! server through HLS and DASH; renditions are aligned, never larger than the source, upright;
//! the media JSON, the master playlist and the MPD agree with each other and with the bytes.

use std::collections::BTreeSet;

use reqwest::Client;
use serde_json::Value;

use crate::{
    corpus::{corpus, Corpus, Run, SEGMENT_SECONDS},
    support::{
        client, ffmpeg_decode, ffprobe_json, fragment_packets, get_ok, get_text, header,
        parse_master, parse_media_playlist, parse_mpd, resolve, MediaPlaylist,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

/// One media playlist of a master, with what it carries.
pub struct Playlist {
    pub url: String,
    pub kind: Kind,
    /// `RESOLUTION` of its variant, for video.
    pub resolution: Option<(u32, u32)>,
    pub playlist: MediaPlaylist,
}

pub struct Hls {
    pub playlists: Vec<Playlist>,
}

pub fn resolution(value: &str) -> (u32, u32) {
    let (w, h) = value.split_once('x').expect("WxH");
    (w.parse().unwrap(), h.parse().unwrap())
}

/// The master playlist at `url` and every media playlist it names.
pub async fn load_hls(client: &Client, url: &str) -> Hls {
    let master = parse_master(&get_text(client, url).await);
    let mut playlists = Vec::new();
    let audio_only = master.media.is_empty()
        && master.variants.len() == 1
        && master.variants[0]
            .attrs
            .get("CODECS")
            .is_some_and(|c| c.starts_with("mp4a"));
    for variant in &master.variants {
        let url = resolve(url, &variant.uri);
        playlists.push(Playlist {
            playlist: parse_media_playlist(&get_text(client, &url).await),
            url,
            kind: if audio_only { Kind::Audio } else { Kind::Video },
            resolution: variant.attrs.get("RESOLUTION").map(|r| resolution(r)),
        });
    }
    for media in &master.media {
        let uri = media.get("URI").expect("EXT-X-MEDIA with a URI");
        assert_eq!(media.get("TYPE").map(String::as_str), Some("AUDIO"));
        let url = resolve(url, uri);
        playlists.push(Playlist {
            playlist: parse_media_playlist(&get_text(client, &url).await),
            url,
            kind: Kind::Audio,
            resolution: None,
        });
    }
    Hls { playlists }
}

fn renditions(media: &Value, kind: &str) -> Vec<Value> {
    media["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .filter(|r| r["kind"] == kind)
        .cloned()
        .collect()
}

fn public_ready(corpus: &Corpus) -> impl Iterator<Item = &Run> {
    corpus.ready().filter(|r| r.media()["access"] == "public")
}

/// Decoding must reach the source's end, less a little for frame-rate rounding (ffmpeg's
/// progress counts the last frame's duration, so a whole decode reaches the end or passes it).
fn decoded_enough(run: &Run, seconds: f64) -> bool {
    seconds + 0.1 >= run.input.duration
}

#[tokio::test]
async fn ffmpeg_plays_every_ready_media_to_the_end_over_hls_and_dash() {
    let corpus = corpus().await;
    let client = client();
    let mut failures = Vec::new();
    let mut played = 0;
    for run in public_ready(&corpus) {
        let media = run.media();
        let hls = load_hls(&client, media["hls_url"].as_str().unwrap()).await;
        let mut urls = vec![
            media["hls_url"].as_str().unwrap().to_owned(),
            media["dash_url"].as_str().unwrap().to_owned(),
        ];
        urls.extend(hls.playlists.iter().map(|p| p.url.clone()));
        for url in urls {
            let decoded = ffmpeg_decode(&url).await;
            played += 1;
            if !decoded.success
                || !decoded.stderr.is_empty()
                || !decoded_enough(run, decoded.seconds)
            {
                failures.push(format!(
                    "{} {url}: exit ok={}, decoded {:.2} s of {:.2} s, errors: {}",
                    run.input.name,
                    decoded.success,
                    decoded.seconds,
                    run.input.duration,
                    decoded.stderr
                ));
            }
        }
    }
    assert!(played >= 20, "only {played} decodes");
    assert!(
        failures.is_empty(),
        "playback failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn video_segments_start_at_the_same_times_in_every_rendition() {
    let corpus = corpus().await;
    let client = client();
    let mut checked_multi = 0;
    for run in public_ready(&corpus) {
        let name = run.input.name;
        let hls = load_hls(&client, run.media()["hls_url"].as_str().unwrap()).await;
        for p in &hls.playlists {
            let list = &p.playlist;
            assert!(list.ended, "{name} {}: no EXT-X-ENDLIST", p.url);
            assert!(!list.segments.is_empty(), "{name} {}", p.url);
            let target = list.target_duration.expect("EXT-X-TARGETDURATION") as f64;
            for (i, (d, uri)) in list.segments.iter().enumerate() {
                assert!(*d > 0.0, "{name} {uri}: EXTINF {d}");
                // RFC 8216 §4.3.3.1: EXTINF rounded to an integer must not exceed the target.
                assert!(
                    d.round() <= target,
                    "{name} {uri}: EXTINF {d} > target {target}"
                );
                let last = i + 1 == list.segments.len();
                if p.kind == Kind::Video && !last {
                    assert!(
                        (d - SEGMENT_SECONDS).abs() < 0.05,
                        "{name} {uri}: a {d} s segment; configured {SEGMENT_SECONDS} s"
                    );
                }
            }
            assert!(
                (list.duration() - run.input.duration).abs() < 0.1,
                "{name} {}: playlists add up to {} s, the source is {} s",
                p.url,
                list.duration(),
                run.input.duration
            );
        }

        let video: Vec<&Playlist> = hls
            .playlists
            .iter()
            .filter(|p| p.kind == Kind::Video)
            .collect();
        let Some(first) = video.first() else { continue };
        let boundaries = first.playlist.boundaries();
        for other in &video[1..] {
            let theirs = other.playlist.boundaries();
            assert_eq!(
                boundaries.len(),
                theirs.len(),
                "{name}: {} and {} have different segment counts",
                first.url,
                other.url
            );
            for (a, b) in boundaries.iter().zip(&theirs) {
                assert!(
                    (a - b).abs() < 0.002,
                    "{name}: boundaries differ: {boundaries:?} vs {theirs:?}"
                );
            }
        }
        // What the playlists say must be what the fragments hold: each video segment starts
        // with a keyframe, at the same time in every rendition.
        let mut starts: Vec<Vec<f64>> = Vec::new();
        for p in &video {
            let init = get_ok(&client, &resolve(&p.url, &p.playlist.map)).await;
            let mut times = Vec::new();
            for (_, uri) in &p.playlist.segments {
                let segment = get_ok(&client, &resolve(&p.url, uri)).await;
                let packets = fragment_packets(&init, &segment, "v:0").await;
                let (pts, key) = *packets
                    .first()
                    .unwrap_or_else(|| panic!("{name} {uri}: no video packets"));
                assert!(
                    key,
                    "{name} {uri}: the segment does not start with a keyframe"
                );
                times.push(pts);
            }
            starts.push(times);
        }
        for other in &starts[1..] {
            for (a, b) in starts[0].iter().zip(other) {
                assert!(
                    (a - b).abs() < 0.002,
                    "{name}: segment start times differ between renditions: {:?}",
                    starts
                );
            }
        }
        let first_start = starts[0][0];
        for (i, t) in starts[0].iter().enumerate() {
            let listed = boundaries[i] + first_start;
            assert!(
                (t - listed).abs() < 0.002,
                "{name}: segment {i} starts at {t} s, its EXTINFs put it at {listed} s"
            );
        }
        if video.len() > 1 {
            checked_multi += 1;
        }
    }
    assert!(
        checked_multi >= 3,
        "only {checked_multi} media with several video renditions were checked"
    );
}

#[tokio::test]
async fn renditions_fit_the_source_and_keep_its_orientation() {
    let corpus = corpus().await;
    let client = client();
    for run in public_ready(&corpus) {
        let name = run.input.name;
        let media = run.media();
        let video = renditions(media, "video");
        let audio = renditions(media, "audio");
        assert_eq!(audio.len(), usize::from(run.input.audio), "{name}: {media}");
        let Some((src_w, src_h)) = run.input.display else {
            assert!(
                video.is_empty(),
                "{name}: video renditions of audio: {media}"
            );
            continue;
        };
        assert!(!video.is_empty(), "{name}: no video rendition: {media}");
        let mut sizes = Vec::new();
        for r in &video {
            let (w, h) = (
                r["width"].as_u64().unwrap() as u32,
                r["height"].as_u64().unwrap() as u32,
            );
            assert!(
                w <= src_w && h <= src_h,
                "{name}: {w}x{h} from a {src_w}x{src_h} source"
            );
            assert!(
                w % 2 == 0 && h % 2 == 0 && w > 0 && h > 0,
                "{name}: {w}x{h} is not even"
            );
            assert_eq!(
                w > h,
                src_w > src_h,
                "{name}: {w}x{h} has another orientation than {src_w}x{src_h}"
            );
            sizes.push((w, h));
        }
        // A source-resolution rung (DESIGN.md "Transcoder"), every corpus source being at most
        // 1080 on its short side.
        let top = *sizes.iter().max_by_key(|(w, h)| w * h).unwrap();
        assert_eq!(
            top,
            (src_w & !1, src_h & !1),
            "{name}: the top rung is not the source's size: {sizes:?}"
        );
        let distinct: BTreeSet<_> = sizes.iter().collect();
        assert_eq!(
            distinct.len(),
            sizes.len(),
            "{name}: duplicate rungs {sizes:?}"
        );
        if name == "phone_portrait" {
            assert!(
                sizes.iter().all(|(w, h)| h > w),
                "{name}: not portrait: {sizes:?}"
            );
        }

        // The bytes agree with the JSON.
        let hls = load_hls(&client, media["hls_url"].as_str().unwrap()).await;
        for p in &hls.playlists {
            let init = get_ok(&client, &resolve(&p.url, &p.playlist.map)).await;
            let first = get_ok(&client, &resolve(&p.url, &p.playlist.segments[0].1)).await;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("first.mp4");
            std::fs::write(&path, [init, first].concat()).unwrap();
            let json = ffprobe_json(&path, &["-show_streams"]).await;
            let streams = json["streams"].as_array().unwrap();
            assert_eq!(
                streams.len(),
                1,
                "{name} {}: one stream per rendition",
                p.url
            );
            let stream = &streams[0];
            match p.kind {
                Kind::Video => {
                    let size = (
                        stream["width"].as_u64().unwrap() as u32,
                        stream["height"].as_u64().unwrap() as u32,
                    );
                    assert!(
                        sizes.contains(&size),
                        "{name} {}: {size:?} not in {sizes:?}",
                        p.url
                    );
                    assert_eq!(p.resolution, Some(size), "{name} {}: RESOLUTION", p.url);
                    assert_eq!(stream["codec_name"], "h264", "{name}");
                    assert_eq!(
                        stream["pix_fmt"], "yuv420p",
                        "{name}: browsers play 8-bit 4:2:0"
                    );
                    let rotated = stream["side_data_list"].as_array().is_some_and(|l| {
                        l.iter().any(|sd| sd["rotation"].as_i64().unwrap_or(0) != 0)
                    });
                    assert!(!rotated, "{name}: the output still carries a rotation");
                }
                Kind::Audio => {
                    assert_eq!(stream["codec_name"], "aac", "{name}");
                    let channels = stream["channels"].as_u64().unwrap();
                    assert!(
                        (1..=2).contains(&channels),
                        "{name}: {channels} channels; browsers need mono or stereo"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_media_json_describes_every_rendition() {
    let corpus = corpus().await;
    let client = client();
    for run in public_ready(&corpus) {
        let name = run.input.name;
        let media = run.media();
        let duration = media["duration"].as_f64().unwrap_or(-1.0);
        assert!(
            (duration - run.input.duration).abs() < 0.25,
            "{name}: duration {duration}, source {}",
            run.input.duration
        );
        let hls = load_hls(&client, media["hls_url"].as_str().unwrap()).await;
        for r in media["renditions"].as_array().unwrap() {
            let codecs = r["codecs"].as_str().unwrap_or_default();
            assert!(r["bandwidth"].as_u64().unwrap_or(0) > 0, "{name}: {r}");
            match r["kind"].as_str() {
                Some("video") => {
                    assert!(r["width"].as_u64().unwrap_or(0) > 0, "{name}: {r}");
                    assert!(r["height"].as_u64().unwrap_or(0) > 0, "{name}: {r}");
                    let hex = codecs
                        .strip_prefix("avc1.")
                        .unwrap_or_else(|| panic!("{name}: {r}"));
                    assert!(
                        hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{name}: {r}"
                    );
                    // avc1.PPCCLL must be what the rendition's own SPS says.
                    let size = (
                        r["width"].as_u64().unwrap() as u32,
                        r["height"].as_u64().unwrap() as u32,
                    );
                    let p = hls
                        .playlists
                        .iter()
                        .find(|p| p.resolution == Some(size))
                        .unwrap_or_else(|| panic!("{name}: no playlist for {r}"));
                    let stream = probe_init(&client, p).await;
                    let profile = u8::from_str_radix(&hex[0..2], 16).unwrap();
                    let level = u8::from_str_radix(&hex[4..6], 16).unwrap();
                    let expected_profile = match stream["profile"].as_str() {
                        Some("High") => 100,
                        Some("Main") => 77,
                        Some("Constrained Baseline" | "Baseline") => 66,
                        other => panic!("{name}: profile {other:?}"),
                    };
                    assert_eq!(profile, expected_profile, "{name}: {codecs} vs {stream}");
                    assert_eq!(
                        i64::from(level),
                        stream["level"].as_i64().unwrap(),
                        "{name}: {codecs} vs {stream}"
                    );
                }
                Some("audio") => {
                    assert!(r["width"].is_null() && r["height"].is_null(), "{name}: {r}");
                    assert_eq!(codecs, "mp4a.40.2", "{name}: AAC-LC");
                }
                other => panic!("{name}: rendition kind {other:?}"),
            }
        }
    }
}

async fn probe_init(client: &Client, p: &Playlist) -> Value {
    let init = get_ok(client, &resolve(&p.url, &p.playlist.map)).await;
    let first = get_ok(client, &resolve(&p.url, &p.playlist.segments[0].1)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("init.mp4");
    std::fs::write(&path, [init, first].concat()).unwrap();
    let json = ffprobe_json(&path, &["-show_streams"]).await;
    json["streams"][0].clone()
}

#[tokio::test]
async fn the_master_playlist_and_the_mpd_match_the_json() {
    let corpus = corpus().await;
    let client = client();
    for run in public_ready(&corpus) {
        let name = run.input.name;
        let media = run.media();
        let video = renditions(media, "video");
        let audio = renditions(media, "audio");
        let audio = audio.first();
        let master = parse_master(&get_text(&client, media["hls_url"].as_str().unwrap()).await);
        let bandwidth = |r: &Value| r["bandwidth"].as_u64().unwrap();
        let codecs = |r: &Value| r["codecs"].as_str().unwrap().to_owned();

        if video.is_empty() {
            let audio = audio.expect("an audio rendition");
            assert_eq!(master.variants.len(), 1, "{name}");
            let attrs = &master.variants[0].attrs;
            assert_eq!(attrs["BANDWIDTH"], bandwidth(audio).to_string(), "{name}");
            assert_eq!(attrs["CODECS"], codecs(audio), "{name}");
            assert!(!attrs.contains_key("RESOLUTION"), "{name}");
        } else {
            assert_eq!(
                master.variants.len(),
                video.len(),
                "{name}: one variant per video rendition"
            );
            assert_eq!(master.media.len(), usize::from(audio.is_some()), "{name}");
            for r in &video {
                let size = format!("{}x{}", r["width"], r["height"]);
                let variant = master
                    .variants
                    .iter()
                    .find(|v| v.attrs.get("RESOLUTION") == Some(&size))
                    .unwrap_or_else(|| panic!("{name}: no variant of {size}"));
                // A variant's BANDWIDTH and CODECS cover everything it plays (RFC 8216 §4.3.4.2).
                let (want_bw, want_codecs) = match audio {
                    Some(a) => (
                        bandwidth(r) + bandwidth(a),
                        format!("{},{}", codecs(r), codecs(a)),
                    ),
                    None => (bandwidth(r), codecs(r)),
                };
                assert_eq!(
                    variant.attrs["BANDWIDTH"],
                    want_bw.to_string(),
                    "{name} {size}"
                );
                assert_eq!(variant.attrs["CODECS"], want_codecs, "{name} {size}");
                if audio.is_some() {
                    assert_eq!(
                        variant.attrs.get("AUDIO"),
                        master.media[0].get("GROUP-ID"),
                        "{name}"
                    );
                }
            }
        }

        // The MPD describes the same renditions.
        let mpd = get_text(&client, media["dash_url"].as_str().unwrap()).await;
        let reps = parse_mpd(&mpd);
        assert_eq!(
            reps.len(),
            media["renditions"].as_array().unwrap().len(),
            "{name}: {mpd}"
        );
        for r in &video {
            let found = reps.iter().any(|rep| {
                rep.width == r["width"].as_u64().map(|v| v as u32)
                    && rep.height == r["height"].as_u64().map(|v| v as u32)
                    && rep.codecs.as_deref() == r["codecs"].as_str()
            });
            assert!(found, "{name}: {r} is not in the MPD:\n{mpd}");
        }
        if let Some(a) = audio {
            assert!(
                reps.iter()
                    .any(|rep| rep.codecs.as_deref() == a["codecs"].as_str()),
                "{name}: {a} is not in the MPD:\n{mpd}"
            );
        }
    }
}

#[tokio::test]
async fn hls_and_dash_serve_the_same_segments() {
    let corpus = corpus().await;
    let client = client();
    for run in public_ready(&corpus) {
        let name = run.input.name;
        let media = run.media();
        let hls = load_hls(&client, media["hls_url"].as_str().unwrap()).await;
        let hls_files: BTreeSet<String> = hls
            .playlists
            .iter()
            .flat_map(|p| {
                std::iter::once(p.playlist.map.clone())
                    .chain(p.playlist.segments.iter().map(|(_, u)| u.clone()))
            })
            .collect();
        let mpd = get_text(&client, media["dash_url"].as_str().unwrap()).await;
        let dash_files: BTreeSet<String> = parse_mpd(&mpd)
            .into_iter()
            .flat_map(|rep| std::iter::once(rep.init).chain(rep.segments))
            .collect();
        assert_eq!(
            hls_files, dash_files,
            "{name}: HLS and DASH name different files"
        );
    }
}

#[tokio::test]
async fn urls_are_given_once_ready_and_the_poster_is_a_jpeg() {
    let corpus = corpus().await;
    let client = client();
    for run in corpus.ready() {
        let name = run.input.name;
        let media = run.media();
        let base = corpus.url(&format!("/media/{}", run.id()));
        assert_eq!(media["hls_url"], format!("{base}/master.m3u8"), "{name}");
        assert_eq!(media["dash_url"], format!("{base}/manifest.mpd"), "{name}");
        let Some((src_w, src_h)) = run.input.display else {
            assert!(
                media["poster_url"].is_null(),
                "{name}: a poster for audio: {media}"
            );
            if media["access"] == "public" {
                let response = client
                    .get(format!("{base}/poster.jpg"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 404, "{name}: no poster file for audio");
            }
            continue;
        };
        assert_eq!(media["poster_url"], format!("{base}/poster.jpg"), "{name}");
        if media["access"] != "public" {
            continue; // fetched signed in `private`
        }
        let response = client
            .get(format!("{base}/poster.jpg"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            header(response.headers(), "content-type"),
            Some("image/jpeg"),
            "{name}"
        );
        let jpeg = response.bytes().await.unwrap();
        assert!(
            jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]),
            "{name}: the poster is not a whole JPEG"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poster.jpg");
        std::fs::write(&path, &jpeg).unwrap();
        let stream = crate::support::first_stream(&path, "v:0").await;
        assert_eq!(stream["codec_name"], "mjpeg", "{name}");
        let (w, h) = (
            stream["width"].as_u64().unwrap() as u32,
            stream["height"].as_u64().unwrap() as u32,
        );
        assert!(
            w <= src_w && h <= src_h,
            "{name}: poster {w}x{h} from {src_w}x{src_h}"
        );
        assert_eq!(
            w > h,
            src_w > src_h,
            "{name}: poster {w}x{h} from {src_w}x{src_h}"
        );
    }
}

/// One AAC frame (1024 samples) at the lowest rate the ladder keeps (44.1 kHz), and a little.
const AAC_FRAME: f64 = 1024.0 / 44100.0 + 0.001;

/// How far an audio segment boundary may sit from the video one: about six AAC frames.
const AUDIO_TOLERANCE: f64 = 0.15;

#[tokio::test]
async fn audio_segments_start_where_video_segments_start() {
    let corpus = corpus().await;
    let client = client();
    let mut failures = Vec::new();
    let mut checked = 0;
    for run in public_ready(&corpus) {
        let name = run.input.name;
        let hls = load_hls(&client, run.media()["hls_url"].as_str().unwrap()).await;
        let Some(video) = hls.playlists.iter().find(|p| p.kind == Kind::Video) else {
            continue;
        };
        let Some(audio) = hls.playlists.iter().find(|p| p.kind == Kind::Audio) else {
            continue;
        };
        checked += 1;
        let video_bounds = video.playlist.boundaries();
        let mut audio_bounds = audio.playlist.boundaries();
        // ffmpeg's dash muxer may leave a last audio sliver (under 0.1 s) past the video's end.
        if audio_bounds.len() == video_bounds.len() + 1
            && audio_bounds[audio_bounds.len() - 1] - audio_bounds[audio_bounds.len() - 2] < 0.1
        {
            audio_bounds.pop();
        }
        if video_bounds.len() != audio_bounds.len() {
            failures.push(format!(
                "{name}: {} audio segments, {} video segments: {audio_bounds:?} vs {video_bounds:?}",
                audio_bounds.len() - 1,
                video_bounds.len() - 1
            ));
            continue;
        }
        // Boundaries between segments; the ends may differ by the streams' own lengths.
        let inner = 1..video_bounds.len() - 1;
        let off: Vec<f64> = inner
            .clone()
            .map(|i| audio_bounds[i] - video_bounds[i])
            .collect();
        // Audio is its own rendition group: players switch video rungs (aligned exactly, see
        // video_segments_start_at_the_same_times_in_every_rendition) and read audio independently. ffmpeg 5.1's dash muxer
        // cuts audio on its own packet grid, a few AAC frames from the video cut; README says so.
        if off.iter().any(|d| d.abs() > AUDIO_TOLERANCE) {
            failures.push(format!(
                "{name}: audio boundaries {audio_bounds:?} vs video {video_bounds:?} \
                 (off by {off:?} s; allowed {AUDIO_TOLERANCE} s, one AAC frame is {AAC_FRAME:.4} s)"
            ));
        }
        // The fragments agree with their EXTINFs.
        let init = get_ok(&client, &resolve(&audio.url, &audio.playlist.map)).await;
        // (The first one starts with the encoder's priming frame, just before zero.)
        for (i, (_, uri)) in audio.playlist.segments.iter().enumerate().skip(1) {
            let segment = get_ok(&client, &resolve(&audio.url, uri)).await;
            let packets = fragment_packets(&init, &segment, "a:0").await;
            let pts = packets.first().map(|p| p.0).unwrap_or(f64::NAN);
            let listed = audio_bounds[i];
            if (pts - listed).abs() > 0.002 || pts.is_nan() {
                failures.push(format!(
                    "{name} {uri}: audio starts at {pts} s, its EXTINFs say {listed} s"
                ));
            }
        }
    }
    assert!(checked >= 5, "only {checked} media with audio and video");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
