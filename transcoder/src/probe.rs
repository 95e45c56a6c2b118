//! ffprobe: what is in the file. The JSON is parsed into small typed structs (closed enums where
//! ffprobe has a closed vocabulary) and tested against committed fixtures produced by Debian's
//! ffprobe 5.1 (`tests/fixtures/*.json`), so a change in ffprobe's output shows up as a failing
//! fixture test rather than as a wrong ladder in production.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::args::{build_measure_args, build_probe_args, container_allowed};
use crate::{Limits, TranscodeError};

/// What the input holds, as far as the pipeline cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The demuxer ffprobe chose, as it names it (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`).
    /// ffmpeg is later run with exactly this demuxer forced.
    pub container: String,
    /// Seconds; from the container, else the longest stream, else (live-style WebM from a
    /// browser's MediaRecorder states none) measured by [`probe`] with a stream-copy pass.
    /// [`parse_ffprobe_json`] alone leaves 0.0 when the file does not say.
    pub duration: f64,
    /// The first video stream that is not cover art.
    pub video: Option<VideoInfo>,
    /// The first audio stream.
    pub audio: Option<AudioInfo>,
    /// How many streams the file declares (all kinds).
    pub streams: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Stream index in the file (`-map 0:<index>`).
    pub index: usize,
    pub codec: String,
    /// Display width in pixels: the coded width corrected for non-square pixels (SAR), before
    /// rotation.
    pub width: u32,
    /// Display height in pixels, before rotation.
    pub height: u32,
    /// Rotation from the display matrix (or the legacy `rotate` tag), normalised to 0, 90, 180
    /// or 270, in ffprobe's sign convention. 90 and 270 mean the picture is shown with width and
    /// height swapped; ffmpeg applies the rotation itself when it decodes (autorotate).
    pub rotation: i32,
    /// Frames per second (average rate; 0.0 when the file does not say).
    pub fps: f64,
    pub bit_depth: u8,
    /// PQ (SMPTE 2084) or HLG transfer: needs tone mapping to look right as 8-bit SDR.
    pub hdr: bool,
    /// Bits per second, from the stream, else estimated from the container minus the audio.
    pub bitrate: Option<u64>,
    /// ffmpeg's pixel format name, e.g. `yuv420p10le`.
    pub pix_fmt: String,
    /// Fields rather than frames (broadcast, DVD): deinterlaced before scaling, or every
    /// rendition would show combing.
    pub interlaced: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Stream index in the file.
    pub index: usize,
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
    pub bitrate: Option<u64>,
}

/// Runs ffprobe on a local file (protocol and demuxer allow-listed before `-i`) and checks the
/// result against `limits`. A file that is not media we accept fails with
/// [`TranscodeError::Unsupported`] and a reason written for the uploader.
pub async fn probe(
    tools: &crate::Tools,
    input: &Path,
    limits: &Limits,
) -> Result<Probe, TranscodeError> {
    let meta = tokio::fs::metadata(input).await?;
    if !meta.is_file() {
        return Err(TranscodeError::InvalidOptions(format!(
            "{} is not a regular file",
            input.display()
        )));
    }
    if meta.len() == 0 {
        return Err(TranscodeError::Unsupported("the file is empty".to_string()));
    }
    let input = std::path::absolute(input)?;
    let args = build_probe_args(&input, limits);
    let deadline = tokio::time::Instant::now() + limits.probe_timeout.min(limits.timeout);
    // 64 KiB of JSON per allowed stream is far more than ffprobe prints for one.
    let max_json = 64 * 1024 * (limits.max_streams + 4);
    let out = crate::run::run_captured(&tools.ffprobe, &args, deadline, max_json).await?;
    if !out.status.success() {
        return Err(classify_probe_failure(&out.stderr_tail, limits));
    }
    let mut probe = parse_ffprobe_json(&out.stdout)?;
    check_limits(&probe, limits)?;
    if probe.duration <= 0.0 {
        probe.duration = measure_duration(tools, &input, &probe, limits, deadline).await?;
        check_limits(&probe, limits)?;
    }
    tracing::debug!(container = %probe.container, duration = probe.duration, "probed");
    Ok(probe)
}

/// Demuxes the whole file once without decoding (`-c copy -f null`) and returns how far it got:
/// the duration of a file whose header does not state one. Bounded by `-t` just past
/// `max_duration`, so an endless stream is cut off and then refused by [`check_limits`].
async fn measure_duration(
    tools: &crate::Tools,
    input: &Path,
    probe: &Probe,
    limits: &Limits,
    deadline: tokio::time::Instant,
) -> Result<f64, TranscodeError> {
    let args = build_measure_args(input, probe, limits);
    let cwd = input.parent().unwrap_or(Path::new("/"));
    let run = crate::run::run_ffmpeg(&tools.ffmpeg, &args, cwd, deadline, None, None).await?;
    if !run.status.success() {
        return Err(classify_probe_failure(&run.stderr_tail, limits));
    }
    if run.progress.out_time > 0.0 {
        Ok(run.progress.out_time)
    } else {
        Err(TranscodeError::Unsupported(
            "the length of the media could not be determined".to_string(),
        ))
    }
}

/// Maps ffprobe's complaint to an error a user can act on.
pub(crate) fn classify_probe_failure(stderr: &str, limits: &Limits) -> TranscodeError {
    if let Some(line) = stderr
        .lines()
        .find(|l| l.contains("Format not on whitelist"))
    {
        // "[hls @ 0x55d0c0e2c2c0] Format not on whitelist '...'"
        let detected = line
            .strip_prefix('[')
            .and_then(|rest| rest.split(" @ ").next())
            .unwrap_or("unknown");
        let what = match detected {
            "hls" => "an HLS playlist, not a media file; upload the video itself".to_string(),
            "concat" | "ffconcat" => "a playlist of other files, not a media file".to_string(),
            "image2" | "image2pipe" | "png_pipe" | "jpeg_pipe" | "webp_pipe" | "gif" => {
                "an image, not a video or audio file".to_string()
            }
            other => format!("in a format we do not accept ({other})"),
        };
        return TranscodeError::Unsupported(format!("the file is {what}"));
    }
    if stderr.contains("exceeds specified max pixel count") {
        return TranscodeError::LimitExceeded(format!(
            "the video frame is larger than the limit of {} pixels",
            limits.max_pixels
        ));
    }
    const NOT_MEDIA: [&str; 4] = [
        "Invalid data found when processing input",
        "moov atom not found",
        "could not find codec parameters",
        "End of file",
    ];
    if NOT_MEDIA.iter().any(|m| stderr.contains(m)) {
        return TranscodeError::Unsupported(
            "the file is not a recognised video or audio file, or it is damaged or truncated"
                .to_string(),
        );
    }
    TranscodeError::Failed(format!("ffprobe failed: {stderr}"))
}

/// Rejects media larger than `limits` with a message naming the limit.
pub fn check_limits(probe: &Probe, limits: &Limits) -> Result<(), TranscodeError> {
    if probe.streams > limits.max_streams {
        return Err(TranscodeError::LimitExceeded(format!(
            "the file has {} streams; at most {} are accepted",
            probe.streams, limits.max_streams
        )));
    }
    if probe.duration > limits.max_duration.as_secs_f64() {
        return Err(TranscodeError::LimitExceeded(format!(
            "the media is {} long; at most {} is accepted",
            hms(probe.duration),
            hms(limits.max_duration.as_secs_f64())
        )));
    }
    if let Some(v) = &probe.video {
        if v.width > limits.max_width
            || v.height > limits.max_height
            || u64::from(v.width) * u64::from(v.height) > limits.max_pixels
        {
            return Err(TranscodeError::LimitExceeded(format!(
                "the video is {}x{}; at most {}x{} ({} pixels) is accepted",
                v.width, v.height, limits.max_width, limits.max_height, limits.max_pixels
            )));
        }
    }
    Ok(())
}

fn hms(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Parses `ffprobe -show_format -show_streams -of json` output. Pure; tested against the
/// committed fixtures. `duration` is 0.0 when the file states none.
pub fn parse_ffprobe_json(json: &[u8]) -> Result<Probe, TranscodeError> {
    let raw: RawOutput = serde_json::from_slice(json)
        .map_err(|err| TranscodeError::Failed(format!("ffprobe printed unexpected JSON: {err}")))?;
    let format = raw.format.ok_or_else(|| {
        TranscodeError::Unsupported("the file is not a recognised video or audio file".to_string())
    })?;
    if !container_allowed(&format.format_name) {
        return Err(TranscodeError::Unsupported(format!(
            "the file is in a format we do not accept ({})",
            format.format_name
        )));
    }

    let audio_bitrates: u64 = raw
        .streams
        .iter()
        .filter(|s| s.codec_type == CodecType::Audio)
        .filter_map(|s| parse_u64(s.bit_rate.as_deref()))
        .sum();
    let container_bitrate = parse_u64(format.bit_rate.as_deref());

    let video = raw
        .streams
        .iter()
        .find(|s| {
            s.codec_type == CodecType::Video
                && s.disposition.attached_pic == 0
                && s.width.unwrap_or(0) > 0
                && s.height.unwrap_or(0) > 0
        })
        .map(|s| {
            video_info(
                s,
                container_bitrate.map(|b| b.saturating_sub(audio_bitrates)),
            )
        });
    let audio = raw
        .streams
        .iter()
        .find(|s| s.codec_type == CodecType::Audio && s.channels.unwrap_or(0) > 0)
        .map(|s| AudioInfo {
            index: s.index,
            codec: s.codec_name.clone().unwrap_or_default(),
            channels: s.channels.unwrap_or(0),
            sample_rate: parse_u64(s.sample_rate.as_deref()).unwrap_or(0) as u32,
            bitrate: parse_u64(s.bit_rate.as_deref()),
        });
    if video.is_none() && audio.is_none() {
        return Err(TranscodeError::Unsupported(
            "the file has no video or audio stream".to_string(),
        ));
    }

    let duration = parse_f64(format.duration.as_deref())
        .filter(|d| *d > 0.0)
        .or_else(|| {
            raw.streams
                .iter()
                .filter_map(|s| parse_f64(s.duration.as_deref()))
                .filter(|d| *d > 0.0)
                .reduce(f64::max)
        })
        .unwrap_or(0.0);

    Ok(Probe {
        container: format.format_name,
        duration,
        video,
        audio,
        streams: raw.streams.len().max(format.nb_streams.unwrap_or(0)),
    })
}

fn video_info(s: &RawStream, estimated_bitrate: Option<u64>) -> VideoInfo {
    let (mut width, height) = (s.width.unwrap_or(0), s.height.unwrap_or(0));
    // Non-square pixels (anamorphic DVD, some phones): the ladder works on what a viewer sees.
    // Absurd ratios are ignored rather than trusted to stretch the picture.
    if let Some((num, den)) = parse_ratio(s.sample_aspect_ratio.as_deref()) {
        let sar = num / den;
        if (0.25..=4.0).contains(&sar) && (sar - 1.0).abs() > 1e-3 {
            width = ((f64::from(width) * sar).round() as u32).max(1);
        }
    }
    let pix_fmt = s.pix_fmt.clone().unwrap_or_default();
    let bit_depth = parse_u64(s.bits_per_raw_sample.as_deref())
        .map(|b| b as u8)
        .filter(|b| *b > 0)
        .unwrap_or_else(|| bit_depth_of(&pix_fmt));
    let hdr = matches!(
        s.color_transfer.as_deref(),
        Some("smpte2084" | "arib-std-b67")
    );
    VideoInfo {
        index: s.index,
        codec: s.codec_name.clone().unwrap_or_default(),
        width,
        height,
        rotation: rotation_of(s),
        fps: frame_rate_of(s),
        bit_depth,
        hdr,
        bitrate: parse_u64(s.bit_rate.as_deref()).or(estimated_bitrate.filter(|b| *b > 0)),
        pix_fmt,
        interlaced: matches!(s.field_order.as_deref(), Some("tt" | "bb" | "tb" | "bt")),
    }
}

/// The display matrix wins over the `rotate` tag (which ffmpeg 5.x no longer exports but older
/// muxers wrote). Snapped to the nearest quarter turn.
fn rotation_of(s: &RawStream) -> i32 {
    let from_matrix = s
        .side_data_list
        .iter()
        .filter(|sd| sd.side_data_type.as_deref() == Some("Display Matrix"))
        .find_map(|sd| sd.rotation.as_ref().and_then(json_number));
    let from_tag = s
        .tags
        .get("rotate")
        .and_then(|r| r.trim().parse::<f64>().ok());
    let degrees = from_matrix.or(from_tag).unwrap_or(0.0);
    let quarter_turns = (degrees / 90.0).round() as i64;
    (quarter_turns.rem_euclid(4) * 90) as i32
}

fn json_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The average rate describes the whole stream; `r_frame_rate` is the container's guess at the
/// base rate and, for VFR Matroska, often the timebase (1000/1). Anything above 240 is treated
/// as unknown.
fn frame_rate_of(s: &RawStream) -> f64 {
    [s.avg_frame_rate.as_deref(), s.r_frame_rate.as_deref()]
        .into_iter()
        .filter_map(|r| parse_ratio(r).map(|(n, d)| n / d))
        .find(|fps| *fps > 0.0 && *fps <= 240.0)
        .unwrap_or(0.0)
}

fn bit_depth_of(pix_fmt: &str) -> u8 {
    let digits: String = pix_fmt
        .trim_end_matches("le")
        .trim_end_matches("be")
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    // yuv420p10le -> 10, yuv444p12le -> 12; rgb24/rgb48 name bits per pixel, not per channel.
    match (
        pix_fmt.contains('p') || pix_fmt.starts_with("gray"),
        digits.parse::<u8>(),
    ) {
        (true, Ok(depth @ 9..=16)) => depth,
        _ => 8,
    }
}

fn parse_u64(s: Option<&str>) -> Option<u64> {
    s?.trim().parse().ok()
}

fn parse_f64(s: Option<&str>) -> Option<f64> {
    s?.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// "30000/1001" or "16:9" -> (num, den), only when both are positive.
fn parse_ratio(s: Option<&str>) -> Option<(f64, f64)> {
    let s = s?;
    let (n, d) = s.split_once('/').or_else(|| s.split_once(':'))?;
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (n > 0.0 && d > 0.0 && n.is_finite() && d.is_finite()).then_some((n, d))
}

#[derive(Debug, Deserialize)]
struct RawOutput {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Debug, Deserialize)]
struct RawFormat {
    format_name: String,
    duration: Option<String>,
    bit_rate: Option<String>,
    nb_streams: Option<usize>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum CodecType {
    Video,
    Audio,
    Subtitle,
    Data,
    Attachment,
    #[default]
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct RawStream {
    index: usize,
    #[serde(default)]
    codec_type: CodecType,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    sample_aspect_ratio: Option<String>,
    pix_fmt: Option<String>,
    bits_per_raw_sample: Option<String>,
    color_transfer: Option<String>,
    field_order: Option<String>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    bit_rate: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    tags: HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<SideData>,
}

#[derive(Debug, Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Debug, Deserialize)]
struct SideData {
    side_data_type: Option<String>,
    rotation: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_depth_from_pixel_format_names() {
        assert_eq!(bit_depth_of("yuv420p"), 8);
        assert_eq!(bit_depth_of("yuv420p10le"), 10);
        assert_eq!(bit_depth_of("yuv422p12be"), 12);
        assert_eq!(bit_depth_of("gray10le"), 10);
        assert_eq!(bit_depth_of("rgb24"), 8);
        assert_eq!(bit_depth_of("nv12"), 8);
    }

    #[test]
    fn ratios_reject_zero_and_garbage() {
        assert_eq!(parse_ratio(Some("30000/1001")), Some((30000.0, 1001.0)));
        assert_eq!(parse_ratio(Some("0/0")), None);
        assert_eq!(parse_ratio(Some("N/A")), None);
        assert_eq!(parse_ratio(Some("4:3")), Some((4.0, 3.0)));
    }

    #[test]
    fn probe_failures_read_as_reasons() {
        let limits = Limits::default();
        let hls = "[hls @ 0x5615c27922c0] Format not on whitelist 'mov,mp4'\nfile:/x.mp4: Invalid argument";
        match classify_probe_failure(hls, &limits) {
            TranscodeError::Unsupported(m) => assert!(m.contains("HLS playlist"), "{m}"),
            other => panic!("{other:?}"),
        }
        let text = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found\nfile:/x.mp4: Invalid data found when processing input";
        assert!(matches!(
            classify_probe_failure(text, &limits),
            TranscodeError::Unsupported(_)
        ));
        let big = "[h264 @ 0x1] [IMGUTILS @ 0x2] Picture size 99999x99999 exceeds specified max pixel count 67108864";
        assert!(matches!(
            classify_probe_failure(big, &limits),
            TranscodeError::LimitExceeded(_)
        ));
        assert!(matches!(
            classify_probe_failure("weird", &limits),
            TranscodeError::Failed(_)
        ));
    }
}
