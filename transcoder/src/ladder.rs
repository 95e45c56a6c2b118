//! The bitrate ladder: which renditions to encode for a probed source. A pure function so that
//! every rule below is a row in a table test.
//!
//! Rules:
//! - Rung sizes name the picture's SHORT side, the way YouTube and Mux label them: "1080p" is
//!   1920x1080 landscape or 1080x1920 portrait. A portrait phone video therefore keeps its full
//!   resolution and comes out portrait (rotation 90/270 swaps width and height first).
//! - Never upscale. The top rung is the source's own size (capped at `max_height`); standard rungs
//!   below it follow, skipping any within 10% of the top one (a 740p top makes 720p pointless).
//! - Even dimensions (H.264 4:2:0 needs them): round down to even, never below 2.
//! - Frame rate: the source's, divided by the smallest whole number that brings it under
//!   `max_fps` (120 -> 60, 144 -> 48), so frames are dropped evenly instead of juddering.
//! - One GOP is one segment: `gop = round(fps * segment_seconds)` frames (at least 1) and the
//!   real segment length is `gop / fps`, so keyframes fall on segment boundaries in every
//!   rendition. A clip shorter than one segment simply becomes one short segment.
//! - Bitrates come from a per-size table for H.264, raised by half above 30 fps, and capped
//!   relative to the source's bits per pixel when its bitrate is known: re-encoding a 500 kb/s
//!   source at 5 Mb/s spends bytes on compression artefacts.

use crate::{Probe, TranscodeError};

/// Knobs of the ladder. `Default` is the product's standard ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderOptions {
    /// Largest short side encoded (1080).
    pub max_height: u32,
    /// Highest output frame rate (60).
    pub max_fps: f64,
    /// Target segment length in seconds (4); rounded to whole frames.
    pub segment_seconds: f64,
    /// x264 preset (`veryfast`): speed against size.
    pub preset: String,
    /// Short-side sizes of the standard rungs below the top one.
    pub rungs: Vec<u32>,
}

impl Default for LadderOptions {
    fn default() -> Self {
        LadderOptions {
            max_height: 1080,
            max_fps: 60.0,
            segment_seconds: 4.0,
            preset: "veryfast".to_string(),
            rungs: vec![1080, 720, 480, 360],
        }
    }
}

/// What to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// Largest first. Empty for audio-only input.
    pub video: Vec<VideoRendition>,
    /// None when the input has no audio.
    pub audio: Option<AudioRendition>,
    /// Real segment length: `gop / fps` (or the requested length for audio-only).
    pub segment_seconds: f64,
    /// Output frame rate (0.0 for audio-only).
    pub fps: f64,
    /// Frames per GOP, which is also frames per segment (0 for audio-only).
    pub gop: u32,
    /// x264 preset.
    pub preset: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoRendition {
    /// Short side with a `p`, e.g. `720p`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Target average bits per second (`-b:v`).
    pub bitrate: u64,
    /// VBV peak rate (`-maxrate`): 110% of the target.
    pub maxrate: u64,
    /// VBV buffer (`-bufsize`): 150% of the target.
    pub bufsize: u64,
    /// Sample aspect ratio (num, den) that makes this rendition display at exactly the top
    /// rung's aspect ratio; (1, 1) for the top rung. Even rounding makes 1920x1080's 480p rung
    /// 852x480 (71:40, not 16:9), and ffmpeg's DASH muxer refuses representations of different
    /// display aspect ratios in one adaptation set, which players need for switching.
    pub sar: (u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioRendition {
    /// AAC-LC bits per second.
    pub bitrate: u64,
    /// 1 or 2; 5.1 and other layouts are downmixed to stereo, which every browser plays.
    pub channels: u32,
    /// 44100 or 48000: kept from the source when it is one of them, else resampled to 48000.
    pub sample_rate: u32,
}

/// x264's presets; anything else would make ffmpeg fail after the job started.
const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// H.264 target bitrates (kb/s, up to 30 fps) by short side, for 16:9 pictures. Other sizes
/// and aspect ratios are interpolated by pixel count.
const BITRATE_TABLE: [(u32, u64); 8] = [
    (144, 200),
    (240, 400),
    (360, 800),
    (480, 1400),
    (720, 2800),
    (1080, 5000),
    (1440, 8000),
    (2160, 14000),
];

/// No video rendition is planned below this, however small the source or its bitrate: below
/// it x264 spends most of the bits on headers.
const MIN_VIDEO_BITRATE: u64 = 150_000;
/// Frame rate assumed when the container does not state one.
const DEFAULT_FPS: f64 = 30.0;

/// Plans the renditions for `probe`. Pure.
pub fn plan_ladder(probe: &Probe, opts: &LadderOptions) -> Result<Ladder, TranscodeError> {
    validate(opts)?;
    let audio = probe.audio.as_ref().map(|a| {
        let channels = a.channels.clamp(1, 2);
        let table = 64_000 * u64::from(channels);
        AudioRendition {
            // A source below the table keeps its own rate (with a 64 kb/s floor).
            bitrate: a.bitrate.map_or(table, |src| table.min(src.max(64_000))),
            channels,
            sample_rate: if matches!(a.sample_rate, 44_100 | 48_000) {
                a.sample_rate
            } else {
                48_000
            },
        }
    });

    let Some(v) = &probe.video else {
        if audio.is_none() {
            return Err(TranscodeError::Unsupported(
                "the file has no video or audio stream".to_string(),
            ));
        }
        return Ok(Ladder {
            video: Vec::new(),
            audio,
            segment_seconds: opts.segment_seconds,
            fps: 0.0,
            gop: 0,
            preset: opts.preset.clone(),
        });
    };

    let (width, height) = if v.rotation % 180 == 90 {
        (v.height, v.width)
    } else {
        (v.width, v.height)
    };
    let (width, height) = (width.max(1), height.max(1));
    let short = width.min(height);
    let long = width.max(height);
    let landscape = width >= height;

    let source_fps = if v.fps > 0.0 { v.fps } else { DEFAULT_FPS };
    let divisor = (source_fps / opts.max_fps).ceil().max(1.0);
    let fps = source_fps / divisor;
    let gop = ((fps * opts.segment_seconds).round() as u32).max(1);
    let segment_seconds = f64::from(gop) / fps;

    let top = short.min(opts.max_height);
    let mut sizes = vec![top];
    let mut below: Vec<u32> = opts
        .rungs
        .iter()
        .copied()
        .filter(|&r| r >= 2 && f64::from(r) < f64::from(top) * 0.9)
        .collect();
    below.sort_unstable_by(|a, b| b.cmp(a));
    below.dedup();
    sizes.extend(below);

    // Bits per pixel per frame of the source, with headroom for H.264 being less efficient than
    // the newer codecs a source may use.
    let source_bpp = v.bitrate.map(|bps| {
        let headroom = match v.codec.as_str() {
            "hevc" | "vp9" | "av1" | "vvc" => 2.0,
            _ => 1.25,
        };
        bps as f64 * headroom / (f64::from(width) * f64::from(height) * source_fps)
    });

    let mut video: Vec<VideoRendition> = sizes
        .into_iter()
        .map(|size| {
            let short_out = even(size);
            let long_out =
                even((f64::from(long) * f64::from(size) / f64::from(short)).round() as u32);
            let (w, h) = if landscape {
                (long_out, short_out)
            } else {
                (short_out, long_out)
            };
            let pixels = f64::from(w) * f64::from(h);
            let mut bitrate = table_bitrate(pixels);
            if fps > 30.5 {
                bitrate = bitrate * 3 / 2;
            }
            if let Some(bpp) = source_bpp {
                bitrate = bitrate.min((bpp * pixels * fps) as u64);
            }
            let bitrate = round_kbps(bitrate.max(MIN_VIDEO_BITRATE));
            VideoRendition {
                name: format!("{short_out}p"),
                width: w,
                height: h,
                bitrate,
                maxrate: round_kbps(bitrate * 11 / 10),
                bufsize: round_kbps(bitrate * 3 / 2),
                sar: (1, 1),
            }
        })
        .collect();
    let (top_w, top_h) = (u64::from(video[0].width), u64::from(video[0].height));
    for r in &mut video {
        r.sar = reduce(top_w * u64::from(r.height), top_h * u64::from(r.width));
    }

    Ok(Ladder {
        video,
        audio,
        segment_seconds,
        fps,
        gop,
        preset: opts.preset.clone(),
    })
}

fn validate(opts: &LadderOptions) -> Result<(), TranscodeError> {
    let invalid = |msg: &str| Err(TranscodeError::InvalidOptions(msg.to_string()));
    if !(opts.segment_seconds.is_finite() && opts.segment_seconds > 0.0) {
        return invalid("segment_seconds must be a positive number");
    }
    if !(opts.max_fps.is_finite() && opts.max_fps >= 1.0) {
        return invalid("max_fps must be at least 1");
    }
    if opts.max_height < 2 {
        return invalid("max_height must be at least 2");
    }
    if !X264_PRESETS.contains(&opts.preset.as_str()) {
        return invalid("preset must be one of x264's presets (ultrafast .. placebo)");
    }
    Ok(())
}

fn reduce(num: u64, den: u64) -> (u32, u32) {
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let g = a.max(1);
    ((num / g) as u32, (den / g) as u32)
}

/// Rounds down to even, never below 2.
fn even(n: u32) -> u32 {
    (n & !1).max(2)
}

fn round_kbps(bps: u64) -> u64 {
    (bps / 1000).max(1) * 1000
}

/// Interpolates [`BITRATE_TABLE`] linearly in pixel count; proportional beyond its ends.
fn table_bitrate(pixels: f64) -> u64 {
    let px = |short: u32| f64::from(short) * f64::from(short) * 16.0 / 9.0;
    let (first_short, first_kbps) = BITRATE_TABLE[0];
    if pixels <= px(first_short) {
        return (first_kbps as f64 * pixels / px(first_short) * 1000.0) as u64;
    }
    for pair in BITRATE_TABLE.windows(2) {
        let ((s0, k0), (s1, k1)) = (pair[0], pair[1]);
        if pixels <= px(s1) {
            let t = (pixels - px(s0)) / (px(s1) - px(s0));
            return ((k0 as f64 + t * (k1 as f64 - k0 as f64)) * 1000.0) as u64;
        }
    }
    let (last_short, last_kbps) = BITRATE_TABLE[BITRATE_TABLE.len() - 1];
    (last_kbps as f64 * pixels / px(last_short) * 1000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_its_rows_at_16_9() {
        assert_eq!(round_kbps(table_bitrate(1920.0 * 1080.0)), 5_000_000);
        assert_eq!(round_kbps(table_bitrate(1280.0 * 720.0)), 2_800_000);
        let between = table_bitrate(1600.0 * 900.0);
        assert!(between > 2_800_000 && between < 5_000_000);
    }

    #[test]
    fn even_never_reaches_zero() {
        assert_eq!(even(479), 478);
        assert_eq!(even(1), 2);
        assert_eq!(even(0), 2);
    }
}
