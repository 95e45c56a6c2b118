//! After ffmpeg: check what it wrote, make the HLS playlists say exactly what the streams are,
//! and list every file with its content type and size.
//!
//! ffmpeg 5.1's `dash` muxer writes a usable master playlist, but its BANDWIDTH is the nominal
//! `-b:v` plus audio (RFC 8216 §4.3.4.2 wants the peak segment bit rate), it has no FRAME-RATE
//! or AVERAGE-BANDWIDTH, and its media playlists carry wall-clock `EXT-X-PROGRAM-DATE-TIME`
//! tags (which make two runs of the same job differ) and `EXT-X-TARGETDURATION:0` for clips
//! under half a second. So the media playlists are re-rendered from their parsed segments and
//! the master playlist is written from [`RenditionInfo`]s measured on the actual files: CODECS
//! from the `avcC`/`esds` boxes of each init segment, BANDWIDTH from segment sizes and durations.
//! The DASH manifest is left as ffmpeg wrote it; it names the same segments.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::args::{DASH_MANIFEST, HLS_MASTER, POSTER};
use crate::{Ladder, Limits, TranscodeError};

/// Everything `transcode` produced in the output directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// `master.m3u8`, relative to the output dir.
    pub master_playlist: PathBuf,
    /// `manifest.mpd`, relative to the output dir.
    pub dash_manifest: PathBuf,
    /// `poster.jpg`; None for audio-only media.
    pub poster: Option<PathBuf>,
    /// Every file in the output dir, in upload order: segments first, then the poster, then
    /// the media playlists, then `master.m3u8` and `manifest.mpd`, so a reader never finds a
    /// manifest that names a file not uploaded yet.
    pub files: Vec<OutputFile>,
    /// Video renditions (largest first), then the audio rendition.
    pub renditions: Vec<RenditionInfo>,
    /// Seconds, as the playlists add up.
    pub duration: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to the output dir: a plain file name of `[A-Za-z0-9._-]` (the output is flat),
    /// so it is also a valid, '/'-separated storage key suffix with no `..`.
    pub path: PathBuf,
    pub content_type: &'static str,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenditionKind {
    Video,
    Audio,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenditionInfo {
    pub kind: RenditionKind,
    /// `720p` for video, `audio` for audio.
    pub name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    /// Peak bits per second over this rendition's segments.
    pub bandwidth: u64,
    /// Mean bits per second over the whole rendition.
    pub average_bandwidth: u64,
    /// RFC 6381 codec string of this rendition alone, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codecs: String,
    /// Its HLS media playlist, e.g. `media_1.m3u8`.
    pub playlist: PathBuf,
}

/// Content type for a file the pipeline writes, by name; None for anything it does not write.
pub fn content_type(name: &str) -> Option<&'static str> {
    if name.ends_with(".m3u8") {
        Some("application/vnd.apple.mpegurl")
    } else if name.ends_with(".mpd") {
        Some("application/dash+xml")
    } else if name.starts_with("init-") && name.ends_with(".m4s") {
        Some("video/mp4")
    } else if name.ends_with(".m4s") {
        Some("video/iso.segment")
    } else if name.ends_with(".jpg") {
        Some("image/jpeg")
    } else {
        None
    }
}

/// One HLS media playlist as ffmpeg's dash muxer writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub media_sequence: u64,
    /// `EXT-X-MAP` URI: the init segment.
    pub init: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    pub duration: f64,
}

/// Parses a VOD media playlist; refuses one without `EXT-X-ENDLIST` (ffmpeg did not finish),
/// without an init segment, or without segments.
pub fn parse_media_playlist(text: &str) -> Result<MediaPlaylist, TranscodeError> {
    let bad = |why: &str| TranscodeError::Failed(format!("media playlist {why}"));
    let mut media_sequence = 0;
    let mut init = None;
    let mut segments = Vec::new();
    let mut pending: Option<f64> = None;
    let mut ended = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media_sequence = v.parse().map_err(|_| bad("has a bad media sequence"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attribute(v, "URI").ok_or_else(|| bad("has an EXT-X-MAP without URI"))?;
            init = Some(uri.to_string());
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let seconds = v.split(',').next().unwrap_or_default();
            pending = Some(seconds.parse().map_err(|_| bad("has a bad EXTINF"))?);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.starts_with('#') {
            let duration = pending
                .take()
                .ok_or_else(|| bad("names a segment without EXTINF"))?;
            segments.push(Segment {
                uri: line.to_string(),
                duration,
            });
        }
    }
    if !ended {
        return Err(bad("is not finished (no EXT-X-ENDLIST)"));
    }
    if segments.is_empty() {
        return Err(bad("has no segments"));
    }
    Ok(MediaPlaylist {
        media_sequence,
        init: init.ok_or_else(|| bad("has no EXT-X-MAP"))?,
        segments,
    })
}

/// `URI="init-0.m4s"` out of an attribute list (quoted values only, as ffmpeg writes them).
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let start = list.find(&format!("{name}=\""))? + name.len() + 2;
    let len = list[start..].find('"')?;
    Some(&list[start..start + len])
}

/// Renders a media playlist for VOD (RFC 8216 §4.3.3): no wall-clock tags, a target duration of
/// at least 1 (each EXTINF rounded to the nearest integer must not exceed it), every segment
/// starting with a keyframe (one GOP per segment).
pub fn render_media_playlist(p: &MediaPlaylist) -> String {
    let target = p
        .segments
        .iter()
        .map(|s| s.duration.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:6");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", p.media_sequence);
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", p.init);
    for s in &p.segments {
        let _ = writeln!(out, "#EXTINF:{:.6},", s.duration);
        let _ = writeln!(out, "{}", s.uri);
    }
    let _ = writeln!(out, "#EXT-X-ENDLIST");
    out
}

/// Renders the master playlist: one `EXT-X-STREAM-INF` per video rendition (with the audio
/// rendition as an `EXT-X-MEDIA` group), or one for the audio alone when there is no video.
/// A variant's BANDWIDTH and CODECS cover its video and the audio it plays with.
pub fn render_master_playlist(renditions: &[RenditionInfo]) -> String {
    let audio = renditions.iter().find(|r| r.kind == RenditionKind::Audio);
    let video: Vec<_> = renditions
        .iter()
        .filter(|r| r.kind == RenditionKind::Video)
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:7");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    if video.is_empty() {
        if let Some(a) = audio {
            let _ = writeln!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
                a.bandwidth, a.average_bandwidth, a.codecs
            );
            let _ = writeln!(out, "{}", a.playlist.display());
        }
        return out;
    }
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{}\"",
            a.playlist.display()
        );
    }
    for v in video {
        let (bandwidth, average, codecs) = match audio {
            Some(a) => (
                v.bandwidth + a.bandwidth,
                v.average_bandwidth + a.average_bandwidth,
                format!("{},{}", v.codecs, a.codecs),
            ),
            None => (v.bandwidth, v.average_bandwidth, v.codecs.clone()),
        };
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AVERAGE-BANDWIDTH={average},CODECS=\"{codecs}\""
        );
        if let (Some(w), Some(h)) = (v.width, v.height) {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        if audio.is_some() {
            let _ = write!(out, ",AUDIO=\"audio\"");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", v.playlist.display());
    }
    out
}

/// `avc1.PPCCLL` from the `avcC` box of an H.264 init segment (ISO/IEC 14496-15 §5.3.3.1:
/// configurationVersion, then profile, constraint flags, level).
pub fn avc_codec_string(init: &[u8]) -> Option<String> {
    let body = box_body(init, b"avcC")?;
    match body {
        [1, profile, flags, level, ..] => Some(format!("avc1.{profile:02x}{flags:02x}{level:02x}")),
        _ => None,
    }
}

/// `mp4a.OO.A` from the `esds` box of an AAC init segment: the object type indication of the
/// DecoderConfigDescriptor and the audio object type of the AudioSpecificConfig
/// (ISO/IEC 14496-1 §7.2.6, 14496-3 §1.6.2.1; RFC 6381 §3.3).
pub fn aac_codec_string(init: &[u8]) -> Option<String> {
    let body = box_body(init, b"esds")?;
    let mut pos = 4; // version and flags
    let (tag, _) = descriptor(body, &mut pos)?;
    if tag != 0x03 {
        return None;
    }
    let flags = *body.get(pos + 2)?;
    pos += 3;
    if flags & 0x80 != 0 {
        pos += 2;
    }
    if flags & 0x40 != 0 {
        pos += 1 + usize::from(*body.get(pos)?);
    }
    if flags & 0x20 != 0 {
        pos += 2;
    }
    let (tag, _) = descriptor(body, &mut pos)?;
    if tag != 0x04 {
        return None;
    }
    let object_type = *body.get(pos)?;
    pos += 13;
    let (tag, _) = descriptor(body, &mut pos)?;
    if tag != 0x05 {
        return None;
    }
    let (b0, b1) = (*body.get(pos)?, *body.get(pos + 1)?);
    let mut audio_object_type = b0 >> 3;
    if audio_object_type == 31 {
        audio_object_type = 32 + (((b0 & 0x07) << 3) | (b1 >> 5));
    }
    Some(format!("mp4a.{object_type:02x}.{audio_object_type}"))
}

/// Reads an MPEG-4 descriptor header (tag, then a length in up to four 7-bit groups).
fn descriptor(data: &[u8], pos: &mut usize) -> Option<(u8, usize)> {
    let tag = *data.get(*pos)?;
    *pos += 1;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = *data.get(*pos)?;
        *pos += 1;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some((tag, len))
}

/// The payload of the first box of type `kind`, found by scanning. Init segments are a few
/// hundred bytes that ffmpeg just wrote, and the box size is checked against the data, so a
/// scan is enough here; this is not a general MP4 parser.
fn box_body<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let at = data.windows(4).position(|w| w == kind)?;
    let start = at.checked_sub(4)?;
    let size = u32::from_be_bytes(data[start..at].try_into().ok()?) as usize;
    let end = start.checked_add(size)?;
    if size < 8 || end > data.len() {
        return None;
    }
    Some(&data[at + 4..end])
}

/// Peak and mean bits per second of a rendition's segments. Segments shorter than half the
/// longest are left out of the peak: the dash muxer's last audio segment can be a few tens of
/// milliseconds, where fragment headers alone would triple the "peak".
fn bandwidth(segments: &[(f64, u64)]) -> (u64, u64) {
    let longest = segments.iter().map(|(d, _)| *d).fold(0.0, f64::max);
    let peak = segments
        .iter()
        .filter(|(d, _)| *d > 0.0 && *d >= longest / 2.0)
        .map(|(d, size)| (*size as f64 * 8.0 / d).ceil() as u64)
        .max()
        .unwrap_or(0);
    let seconds: f64 = segments.iter().map(|(d, _)| d).sum();
    let bytes: u64 = segments.iter().map(|(_, s)| s).sum();
    let average = if seconds > 0.0 {
        (bytes as f64 * 8.0 / seconds).ceil() as u64
    } else {
        0
    };
    (peak, average)
}

/// Checks ffmpeg's output in `out_dir`, rewrites the playlists and lists the files.
pub(crate) async fn finish(
    out_dir: &Path,
    ladder: &Ladder,
    limits: &Limits,
    poster: bool,
) -> Result<Output, TranscodeError> {
    let mut renditions = Vec::new();
    let mut duration: f64 = 0.0;
    let streams = ladder.video.len() + usize::from(ladder.audio.is_some());
    for index in 0..streams {
        let video = ladder.video.get(index);
        let playlist_name = format!("media_{index}.m3u8");
        let playlist_path = out_dir.join(&playlist_name);
        let text = tokio::fs::read_to_string(&playlist_path)
            .await
            .map_err(|err| {
                TranscodeError::Failed(format!("ffmpeg wrote no {playlist_name}: {err}"))
            })?;
        let playlist = parse_media_playlist(&text)?;

        let init = read_named(out_dir, &playlist.init).await?;
        let codecs = match video {
            Some(_) => avc_codec_string(&init),
            None => aac_codec_string(&init),
        }
        .ok_or_else(|| {
            TranscodeError::Failed(format!("cannot read the codec of {}", playlist.init))
        })?;

        let mut measured = Vec::with_capacity(playlist.segments.len());
        for segment in &playlist.segments {
            let size = size_of_named(out_dir, &segment.uri).await?;
            measured.push((segment.duration, size));
        }
        let (peak, average) = bandwidth(&measured);
        duration = duration.max(playlist.segments.iter().map(|s| s.duration).sum());
        tokio::fs::write(&playlist_path, render_media_playlist(&playlist)).await?;

        renditions.push(RenditionInfo {
            kind: if video.is_some() {
                RenditionKind::Video
            } else {
                RenditionKind::Audio
            },
            name: video.map_or_else(|| "audio".to_string(), |v| v.name.clone()),
            width: video.map(|v| v.width),
            height: video.map(|v| v.height),
            frame_rate: video.map(|_| ladder.fps),
            bandwidth: peak,
            average_bandwidth: average,
            codecs,
            playlist: PathBuf::from(playlist_name),
        });
    }

    let manifest = tokio::fs::read_to_string(out_dir.join(DASH_MANIFEST))
        .await
        .map_err(|err| TranscodeError::Failed(format!("ffmpeg wrote no {DASH_MANIFEST}: {err}")))?;
    if !manifest.trim_end().ends_with("</MPD>") {
        return Err(TranscodeError::Failed(format!(
            "{DASH_MANIFEST} is incomplete"
        )));
    }
    tokio::fs::write(
        out_dir.join(HLS_MASTER),
        render_master_playlist(&renditions),
    )
    .await?;

    let files = list_files(out_dir).await?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    if total > limits.max_output_bytes {
        return Err(TranscodeError::LimitExceeded(format!(
            "the output is {total} bytes; at most {} are allowed",
            limits.max_output_bytes
        )));
    }
    Ok(Output {
        master_playlist: PathBuf::from(HLS_MASTER),
        dash_manifest: PathBuf::from(DASH_MANIFEST),
        poster: poster.then(|| PathBuf::from(POSTER)),
        files,
        renditions,
        duration,
    })
}

/// A file named by a playlist, which must be a plain name inside `out_dir`.
fn named(out_dir: &Path, name: &str) -> Result<PathBuf, TranscodeError> {
    if !is_plain_name(name) {
        return Err(TranscodeError::Failed(format!(
            "playlist names an unexpected file {name:?}"
        )));
    }
    Ok(out_dir.join(name))
}

async fn read_named(out_dir: &Path, name: &str) -> Result<Vec<u8>, TranscodeError> {
    let path = named(out_dir, name)?;
    tokio::fs::read(&path)
        .await
        .map_err(|err| TranscodeError::Failed(format!("missing {name}: {err}")))
}

async fn size_of_named(out_dir: &Path, name: &str) -> Result<u64, TranscodeError> {
    let path = named(out_dir, name)?;
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|err| TranscodeError::Failed(format!("missing {name}: {err}")))?;
    Ok(meta.len())
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Every file in `out_dir` with its content type, in upload order. Anything the pipeline does
/// not write (a subdirectory, a leftover `.tmp`, an odd name) fails the job rather than being
/// uploaded blindly.
async fn list_files(out_dir: &Path) -> Result<Vec<OutputFile>, TranscodeError> {
    let mut files = Vec::new();
    let mut entries = tokio::fs::read_dir(out_dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = tokio::fs::symlink_metadata(entry.path()).await?;
        let content_type = content_type(&name).filter(|_| meta.is_file() && is_plain_name(&name));
        let Some(content_type) = content_type else {
            return Err(TranscodeError::Failed(format!(
                "unexpected entry {name:?} in the output"
            )));
        };
        files.push(OutputFile {
            path: PathBuf::from(name),
            content_type,
            size: meta.len(),
        });
    }
    files.sort_by(|a, b| (upload_rank(&a.path), &a.path).cmp(&(upload_rank(&b.path), &b.path)));
    Ok(files)
}

fn upload_rank(path: &Path) -> u8 {
    let name = path.to_str().unwrap_or_default();
    match name {
        HLS_MASTER => 4,
        DASH_MANIFEST => 5,
        _ if name.ends_with(".m3u8") => 3,
        _ if name.ends_with(".jpg") => 2,
        _ if name.starts_with("init-") => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:0\n#EXT-X-MEDIA-SEQUENCE:1\n\
        #EXT-X-MAP:URI=\"init-0.m4s\"\n#EXTINF:0.400000,\n#EXT-X-PROGRAM-DATE-TIME:2026-11-26T20:08:53.000+0000\n\
        seg-0-00001.m4s\n#EXT-X-ENDLIST\n";

    #[test]
    fn media_playlist_loses_wall_clock_and_gets_a_valid_target() {
        let p = parse_media_playlist(FFMPEG_MEDIA).unwrap();
        assert_eq!(p.init, "init-0.m4s");
        assert_eq!(
            p.segments,
            vec![Segment {
                uri: "seg-0-00001.m4s".into(),
                duration: 0.4
            }]
        );
        let text = render_media_playlist(&p);
        assert!(!text.contains("PROGRAM-DATE-TIME"));
        assert!(text.contains("#EXT-X-TARGETDURATION:1\n"));
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert_eq!(parse_media_playlist(&text).unwrap(), p);
    }

    #[test]
    fn unfinished_playlist_is_refused() {
        let cut = FFMPEG_MEDIA.replace("#EXT-X-ENDLIST\n", "");
        assert!(parse_media_playlist(&cut).is_err());
    }

    #[test]
    fn codec_strings_come_from_the_boxes() {
        let mut avcc = vec![0, 0, 0, 15];
        avcc.extend_from_slice(b"avcC");
        avcc.extend_from_slice(&[1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0]);
        assert_eq!(avc_codec_string(&avcc).as_deref(), Some("avc1.64001f"));

        // As ffmpeg 5.1 writes it for 2-channel AAC-LC at 44.1 kHz.
        let esds_hex = "0000003665736473000000000380808025000100048080801740150000000001\
                        f4000001f4000580808005121056e500068080800102";
        let esds: Vec<u8> = (0..esds_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&esds_hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(aac_codec_string(&esds).as_deref(), Some("mp4a.40.2"));
        assert_eq!(avc_codec_string(b"nothing here"), None);
    }

    #[test]
    fn bandwidth_ignores_a_tiny_trailing_segment_for_the_peak() {
        let (peak, average) = bandwidth(&[(2.0, 250_000), (1.0, 150_000), (0.05, 2_000)]);
        assert_eq!(peak, 1_200_000);
        assert_eq!(average, ((402_000.0 * 8.0) / 3.05_f64).ceil() as u64);
    }

    #[test]
    fn content_types_by_name() {
        assert_eq!(
            content_type("master.m3u8"),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(content_type("manifest.mpd"), Some("application/dash+xml"));
        assert_eq!(content_type("init-0.m4s"), Some("video/mp4"));
        assert_eq!(content_type("seg-0-00001.m4s"), Some("video/iso.segment"));
        assert_eq!(content_type("poster.jpg"), Some("image/jpeg"));
        assert_eq!(content_type("manifest.mpd.tmp"), None);
    }

    #[test]
    fn master_lists_audio_group_and_sums_bandwidth() {
        let video = RenditionInfo {
            kind: RenditionKind::Video,
            name: "720p".into(),
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(30.0),
            bandwidth: 3_000_000,
            average_bandwidth: 2_500_000,
            codecs: "avc1.64001f".into(),
            playlist: "media_0.m3u8".into(),
        };
        let audio = RenditionInfo {
            kind: RenditionKind::Audio,
            name: "audio".into(),
            width: None,
            height: None,
            frame_rate: None,
            bandwidth: 130_000,
            average_bandwidth: 128_000,
            codecs: "mp4a.40.2".into(),
            playlist: "media_1.m3u8".into(),
        };
        let master = render_master_playlist(&[video, audio.clone()]);
        assert!(master.contains("TYPE=AUDIO,GROUP-ID=\"audio\""));
        assert!(master.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=3130000,AVERAGE-BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\nmedia_0.m3u8\n"
        ));
        let audio_only = render_master_playlist(&[audio]);
        assert!(audio_only.contains("CODECS=\"mp4a.40.2\"\nmedia_1.m3u8\n"));
        assert!(!audio_only.contains("EXT-X-MEDIA:"));
    }
}
