//! The argv builders. Pure functions, so every hardening rule is checked by a unit test rather
//! than trusted to survive refactoring:
//!
//! - The input is always a local file: `file:` plus an absolute path, with
//!   `-protocol_whitelist file` before `-i`, so no demuxer can open a URL or another protocol.
//! - ffprobe may only pick a demuxer from [`DEMUXER_ALLOW_LIST`] (`-format_whitelist`); ffmpeg
//!   then runs with the probed demuxer forced (`-f`) and the same allow-list. The list leaves out
//!   every demuxer that opens other files or URLs by design (hls, dash, concat, image2, lavfi,
//!   sdp, rtsp, tee, ...), which is what turns "an HLS playlist saved as .mp4" into a clean
//!   refusal instead of ffmpeg fetching its segments.
//! - `-max_pixels` bounds what any decoder allocates, whatever the header claims.
//! - ffmpeg never reads stdin (`-nostdin`), overwrites only in our own output dir (`-y`), and
//!   drops the source's metadata and chapters (a phone video's GPS tags stay private).
//!
//! The encode decodes once and encodes every rendition from one `split` (see
//! [`build_transcode_args`]); packaging is ffmpeg's `dash` muxer writing CMAF fMP4 segments with
//! `-hls_playlist 1`, so one set of segments serves both manifest.mpd and master.m3u8.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::Path;

use crate::{Ladder, Limits, Probe};

/// Demuxers ffprobe may choose. Every one of them reads only the bytes of the file it is given.
pub const DEMUXER_ALLOW_LIST: &[&str] = &[
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", // the ISO BMFF family (one demuxer)
    "matroska", "webm", // one demuxer
    "avi", "mpegts", "mpeg", "flv", "asf", "mxf", "ogg", // video containers
    "wav", "aiff", "mp3", "aac", "flac", // audio files
];

/// The DASH muxer's file names. `$RepresentationID$` is the output stream index, so stream `i`
/// has `init-i.m4s`, `seg-i-00001.m4s`, ... and its HLS playlist `media_i.m3u8`.
pub const INIT_SEGMENT_TEMPLATE: &str = "init-$RepresentationID$.m4s";
pub const MEDIA_SEGMENT_TEMPLATE: &str = "seg-$RepresentationID$-$Number%05d$.m4s";
pub const DASH_MANIFEST: &str = "manifest.mpd";
pub const HLS_MASTER: &str = "master.m3u8";
pub const POSTER: &str = "poster.jpg";
/// Widest poster; narrower sources keep their width.
pub const POSTER_MAX_WIDTH: u32 = 1280;

/// Whether a demuxer name as ffprobe prints it (`mov,mp4,m4a,3gp,3g2,mj2`) is allowed. Like
/// ffmpeg's own `-format_whitelist` check, any one of its aliases on the list is enough.
pub fn container_allowed(format_name: &str) -> bool {
    !format_name.is_empty()
        && format_name
            .split(',')
            .any(|alias| DEMUXER_ALLOW_LIST.contains(&alias.trim()))
}

fn allow_list() -> String {
    DEMUXER_ALLOW_LIST.join(",")
}

/// `file:` + the path, so that a name like `http:x` or `concat:a|b` is still just a file. The
/// caller passes an absolute path (the public entry points make it so).
fn file_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    url
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

/// Options that must precede `-i` on every run that reads the untrusted input.
fn input_hardening(args: &mut Vec<OsString>, limits: &Limits) {
    push(args, &["-protocol_whitelist", "file", "-format_whitelist"]);
    args.push(allow_list().into());
    args.push("-max_pixels".into());
    args.push(limits.max_pixels.min(i32::MAX as u64).to_string().into());
}

/// argv (without the program) for `ffprobe` on a local file.
pub fn build_probe_args(input: &Path, limits: &Limits) -> Vec<OsString> {
    let mut args = Vec::new();
    push(&mut args, &["-hide_banner", "-v", "error"]);
    input_hardening(&mut args, limits);
    push(
        &mut args,
        &["-show_format", "-show_streams", "-of", "json", "-i"],
    );
    args.push(file_url(input));
    args
}

/// The start of an ffmpeg run over the untrusted input: hardening, forced demuxer, `-i`.
fn ffmpeg_input(
    args: &mut Vec<OsString>,
    input: &Path,
    probe: &Probe,
    limits: &Limits,
    seek: Option<f64>,
) {
    push(
        args,
        &[
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-y",
        ],
    );
    push(args, &["-threads", &limits.threads.to_string()]);
    input_hardening(args, limits);
    push(args, &["-f", &probe.container]);
    if let Some(at) = seek {
        push(args, &["-ss", &format!("{at:.3}")]);
    }
    args.push("-i".into());
    args.push(file_url(input));
}

/// argv (without the program) for a stream-copy pass to nowhere (`-c copy -f null -`) that
/// measures the duration of a file whose header does not state it; progress on stdout.
pub fn build_measure_args(input: &Path, probe: &Probe, limits: &Limits) -> Vec<OsString> {
    let mut args = Vec::new();
    ffmpeg_input(&mut args, input, probe, limits, None);
    let indexes = [
        probe.video.as_ref().map(|v| v.index),
        probe.audio.as_ref().map(|a| a.index),
    ];
    for index in indexes.into_iter().flatten() {
        push(&mut args, &["-map", &format!("0:{index}")]);
    }
    let bound = limits.max_duration.as_secs_f64() + 1.0;
    push(&mut args, &["-c", "copy", "-t", &format!("{bound:.3}")]);
    push(&mut args, &["-progress", "pipe:1", "-f", "null", "-"]);
    args
}

/// A frame rate as ffmpeg's rate parser reads it exactly: integers as integers, NTSC rates as
/// `N/1001`, anything else with microsecond precision.
pub(crate) fn rate_string(fps: f64) -> String {
    if (fps - fps.round()).abs() < 1e-6 {
        return format!("{}", fps.round() as u64);
    }
    let ntsc = fps * 1001.0 / 1000.0;
    if (ntsc - ntsc.round()).abs() < 1e-4 {
        return format!("{}/1001", ntsc.round() as u64 * 1000);
    }
    format!("{fps:.6}")
}

/// Seconds for `-seg_duration`, rounded DOWN to the microsecond. ffmpeg cuts a segment at the
/// first keyframe at or after this length, so it must never exceed the real GOP length. (The
/// tiny epsilon absorbs float error in `gop / fps`: 120 / (30000/1001) is 4.003999999...)
fn seg_duration_string(seconds: f64) -> String {
    let micros = (seconds * 1e6 + 1e-6).floor() as u64;
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Filters applied once, before the split: deinterlace, even frame rate, then HDR to SDR.
///
/// - Interlaced input goes through `bwdif` (one frame per frame, and only frames flagged
///   interlaced), since browsers cannot deinterlace H.264 in MSE.
/// - `fps` makes the stream constant-rate, which is what makes a fixed GOP in frames a fixed
///   segment length in seconds, also for variable-frame-rate phone video.
/// - PQ/HLG input is tone-mapped (zimg + `tonemap=hable`) to BT.709, because an 8-bit H.264
///   rendition still tagged PQ looks washed out or dark in browsers; 10-bit SDR input only
///   needs `format=yuv420p`, which each rung does.
fn pre_split_filters(probe: &Probe, ladder: &Ladder) -> Vec<String> {
    let mut filters = Vec::new();
    let video = probe.video.as_ref();
    if video.is_some_and(|v| v.interlaced) {
        filters.push("bwdif=mode=send_frame:parity=auto:deint=interlaced".to_string());
    }
    filters.push(format!("fps={}", rate_string(ladder.fps)));
    if video.is_some_and(|v| v.hdr) {
        filters.extend(tonemap_filters());
    }
    filters
}

fn tonemap_filters() -> [String; 5] {
    [
        "zscale=t=linear:npl=100".to_string(),
        "format=gbrpf32le".to_string(),
        "zscale=p=bt709".to_string(),
        "tonemap=tonemap=hable:desat=0".to_string(),
        "zscale=t=bt709:m=bt709:r=tv".to_string(),
    ]
}

/// The `-filter_complex` graph: decode once, `split=N`, one `scale=W:H,setsar=..,format=yuv420p`
/// per rung, labelled `[v0]`..`[vN-1]`. ffmpeg's autorotate runs before the graph, so a rotated
/// phone video arrives upright and the ladder's (already swapped) sizes fit it.
pub fn build_filter_graph(probe: &Probe, ladder: &Ladder) -> Option<String> {
    let video = probe.video.as_ref()?;
    if ladder.video.is_empty() {
        return None;
    }
    let n = ladder.video.len();
    let mut graph = format!(
        "[0:{}]{}",
        video.index,
        pre_split_filters(probe, ladder).join(",")
    );
    let _ = write!(graph, ",split={n}");
    for i in 0..n {
        let _ = write!(graph, "[s{i}]");
    }
    for (i, r) in ladder.video.iter().enumerate() {
        let (num, den) = r.sar;
        // setsar approximates to `max` (default 100) unless told otherwise.
        let sar = if (num, den) == (1, 1) {
            "1".to_string()
        } else {
            format!("r={num}/{den}:max={}", i32::MAX)
        };
        let _ = write!(
            graph,
            ";[s{i}]scale={}:{},setsar={sar},format=yuv420p[v{i}]",
            r.width, r.height
        );
    }
    Some(graph)
}

/// argv (without the program) for the one ffmpeg run that encodes every rendition and packages
/// them into `out_dir` (absolute).
///
/// Keyframes are aligned across renditions because every rendition encodes the same frames
/// (one decode, one `fps` filter, then `split`) with the same fixed GOP: `-g` and `-keyint_min`
/// equal to the ladder's GOP and `-sc_threshold 0` so x264 adds no scene-cut keyframes. A time
/// expression (`-force_key_frames expr:...`) is not used: on NTSC rates its floating-point
/// comparison can land one frame early and shift every later GOP.
pub fn build_transcode_args(
    input: &Path,
    probe: &Probe,
    ladder: &Ladder,
    out_dir: &Path,
    limits: &Limits,
) -> Vec<OsString> {
    let mut args = Vec::new();
    ffmpeg_input(&mut args, input, probe, limits, None);
    let threads = limits.threads.to_string();

    let graph = build_filter_graph(probe, ladder);
    if let Some(graph) = &graph {
        push(
            &mut args,
            &[
                "-filter_complex_threads",
                &threads,
                "-filter_complex",
                graph,
            ],
        );
        for i in 0..ladder.video.len() {
            push(&mut args, &["-map", &format!("[v{i}]")]);
        }
    }
    let audio = probe.audio.as_ref().zip(ladder.audio.as_ref());
    if let Some((source, _)) = audio {
        push(&mut args, &["-map", &format!("0:{}", source.index)]);
    }
    push(&mut args, &["-map_metadata", "-1", "-map_chapters", "-1"]);
    push(
        &mut args,
        &["-t", &format!("{:.3}", limits.max_duration.as_secs_f64())],
    );

    if graph.is_some() {
        let gop = ladder.gop.to_string();
        push(
            &mut args,
            &[
                "-c:v",
                "libx264",
                "-preset",
                &ladder.preset,
                "-profile:v",
                "high",
            ],
        );
        push(
            &mut args,
            &["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"],
        );
        for (i, r) in ladder.video.iter().enumerate() {
            push(&mut args, &[&format!("-b:v:{i}"), &r.bitrate.to_string()]);
            push(
                &mut args,
                &[&format!("-maxrate:v:{i}"), &r.maxrate.to_string()],
            );
            push(
                &mut args,
                &[&format!("-bufsize:v:{i}"), &r.bufsize.to_string()],
            );
        }
        if probe.video.as_ref().is_some_and(|v| v.hdr) {
            push(
                &mut args,
                &[
                    "-color_primaries",
                    "bt709",
                    "-color_trc",
                    "bt709",
                    "-colorspace",
                    "bt709",
                ],
            );
        }
    }
    if let Some((_, a)) = audio {
        push(&mut args, &["-c:a", "aac", "-profile:a", "aac_low"]);
        push(
            &mut args,
            &[
                "-b:a",
                &a.bitrate.to_string(),
                "-ac",
                &a.channels.to_string(),
            ],
        );
        push(&mut args, &["-ar", &a.sample_rate.to_string()]);
    }
    push(&mut args, &["-threads", &threads]);

    let adaptation_sets = match (graph.is_some(), audio.is_some()) {
        (true, true) => "id=0,streams=v id=1,streams=a",
        (true, false) => "id=0,streams=v",
        _ => "id=0,streams=a",
    };
    push(&mut args, &["-f", "dash", "-dash_segment_type", "mp4"]);
    push(
        &mut args,
        &[
            "-seg_duration",
            &seg_duration_string(ladder.segment_seconds),
        ],
    );
    // A SegmentTimeline states every segment's exact duration (audio segments are not exact
    // multiples of the video GOP); dash.js and Shaka handle it, and it needs no guessing.
    push(&mut args, &["-use_template", "1", "-use_timeline", "1"]);
    push(
        &mut args,
        &["-hls_playlist", "1", "-hls_master_name", HLS_MASTER],
    );
    push(&mut args, &["-adaptation_sets", adaptation_sets]);
    push(
        &mut args,
        &[
            "-init_seg_name",
            INIT_SEGMENT_TEMPLATE,
            "-media_seg_name",
            MEDIA_SEGMENT_TEMPLATE,
        ],
    );
    push(&mut args, &["-progress", "pipe:1"]);
    args.push(out_dir.join(DASH_MANIFEST).into_os_string());
    args
}

/// Poster size: the top rung scaled to at most [`POSTER_MAX_WIDTH`] wide, even, aspect kept (a
/// portrait video gives a portrait poster).
pub fn poster_size(ladder: &Ladder) -> Option<(u32, u32)> {
    let top = ladder.video.first()?;
    let width = top.width.min(POSTER_MAX_WIDTH);
    let height = (u64::from(top.height) * u64::from(width) / u64::from(top.width.max(1))) as u32;
    Some((width & !1, (height & !1).max(2)))
}

/// argv (without the program) for a second, small ffmpeg run that writes `poster.jpg` from the
/// frame at `at` seconds, with the same input hardening as the encode.
pub fn build_poster_args(
    input: &Path,
    probe: &Probe,
    ladder: &Ladder,
    out_dir: &Path,
    limits: &Limits,
    at: f64,
) -> Option<Vec<OsString>> {
    let video = probe.video.as_ref()?;
    let (width, height) = poster_size(ladder)?;
    let mut args = Vec::new();
    ffmpeg_input(&mut args, input, probe, limits, (at > 0.0).then_some(at));
    let mut filters = Vec::new();
    if video.interlaced {
        filters.push("bwdif=mode=send_frame:parity=auto:deint=interlaced".to_string());
    }
    if video.hdr {
        filters.extend(tonemap_filters());
    }
    filters.push(format!("scale={width}:{height},setsar=1,format=yuvj420p"));
    push(
        &mut args,
        &["-map", &format!("0:{}", video.index), "-frames:v", "1"],
    );
    push(&mut args, &["-vf", &filters.join(",")]);
    push(
        &mut args,
        &["-map_metadata", "-1", "-c:v", "mjpeg", "-q:v", "3"],
    );
    push(&mut args, &["-f", "image2", "-update", "1"]);
    args.push(out_dir.join(POSTER).into_os_string());
    Some(args)
}

/// The position of `-i` in an argv, for tests and for callers that log commands.
pub fn input_position(args: &[OsString]) -> Option<usize> {
    args.iter().position(|a| a.as_os_str() == OsStr::new("-i"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_for_ffmpeg() {
        assert_eq!(rate_string(30.0), "30");
        assert_eq!(rate_string(30000.0 / 1001.0), "30000/1001");
        assert_eq!(rate_string(24000.0 / 1001.0), "24000/1001");
        assert_eq!(rate_string(60000.0 / 1001.0), "60000/1001");
        assert_eq!(rate_string(12.5), "12.500000");
    }

    #[test]
    fn seg_duration_never_rounds_up() {
        assert_eq!(seg_duration_string(4.004), "4.004000");
        assert_eq!(seg_duration_string(120.0 / (30000.0 / 1001.0)), "4.004000");
        assert_eq!(seg_duration_string(100.0 / 24.0), "4.166666");
    }

    #[test]
    fn container_check_accepts_any_alias() {
        assert!(container_allowed("mov,mp4,m4a,3gp,3g2,mj2"));
        assert!(container_allowed("matroska,webm"));
        assert!(!container_allowed("hls"));
        assert!(!container_allowed("concat"));
        assert!(!container_allowed("image2"));
        assert!(!container_allowed(""));
    }
}
