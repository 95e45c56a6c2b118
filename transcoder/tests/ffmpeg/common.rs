//! Helpers for the real-ffmpeg tests: lavfi-generated inputs, the full pipeline, and checks on
//! its output made with ffmpeg/ffprobe themselves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use tempfile::TempDir;
use transcoder::{
    plan_ladder, probe, transcode, Ladder, LadderOptions, Limits, Output, Probe, Tools,
    TranscodeError,
};

pub fn tools() -> Tools {
    Tools::from_path_env().expect("these tests need ffmpeg and ffprobe on PATH")
}

/// Runs `ffmpeg -v error -y <args> <dir>/<name>` to make a test input; panics on failure.
/// `args` is split on whitespace (no argument here needs a space).
pub fn generate(dir: &Path, name: &str, args: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args.split_whitespace())
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "generating {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// testsrc2 video (+ sine audio when `audio`) encoded with x264 ultrafast.
pub fn h264_input(
    dir: &Path,
    name: &str,
    size: &str,
    rate: &str,
    secs: &str,
    audio: bool,
) -> PathBuf {
    let args = if audio {
        format!(
            "-f lavfi -i testsrc2=s={size}:r={rate}:d={secs} -f lavfi -i sine=f=440:d={secs} \
             -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest"
        )
    } else {
        format!(
            "-f lavfi -i testsrc2=s={size}:r={rate}:d={secs} \
             -c:v libx264 -preset ultrafast -pix_fmt yuv420p"
        )
    };
    generate(dir, name, &args)
}

pub struct Run {
    pub probe: Probe,
    pub ladder: Ladder,
    pub result: Result<Output, TranscodeError>,
    pub progress: Vec<u8>,
    pub out_dir: PathBuf,
}

impl Run {
    pub fn output(&self) -> &Output {
        match &self.result {
            Ok(output) => output,
            Err(err) => panic!("transcode failed: {err}"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// probe -> plan_ladder -> transcode, into `<dir>/out`.
pub async fn pipeline(dir: &TempDir, input: &Path, opts: &LadderOptions, limits: &Limits) -> Run {
    let tools = tools();
    let probe = probe(&tools, input, limits).await.expect("probe");
    let ladder = plan_ladder(&probe, opts).expect("ladder");
    let out_dir = dir.path().join("out");
    let seen = Mutex::new(Vec::new());
    let report = |p: u8| seen.lock().unwrap().push(p);
    let result = transcode(&tools, input, &probe, &ladder, &out_dir, limits, &report).await;
    Run {
        probe,
        ladder,
        result,
        progress: seen.into_inner().unwrap(),
        out_dir,
    }
}

/// Short segments so that a 2-3 s clip still has several.
pub fn one_second_segments() -> LadderOptions {
    LadderOptions {
        segment_seconds: 1.0,
        ..LadderOptions::default()
    }
}

/// What decoding a file to the end gave.
#[derive(Debug)]
pub struct Decoded {
    pub seconds: f64,
}

/// Decodes `path` to the end (`ffmpeg -v error -i <path> -f null -`: the default video and
/// audio streams), asserting a clean exit with nothing on stderr.
pub fn decode(path: &Path) -> Decoded {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "decoding {}: {stderr}",
        path.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seconds = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.parse::<i64>().ok())
        .next_back()
        .unwrap_or(0) as f64
        / 1e6;
    Decoded { seconds }
}

/// `ffprobe -show_streams` of a file as JSON.
pub fn streams(path: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["streams"].as_array().cloned().unwrap_or_default()
}

/// (pts seconds, is keyframe) of every video packet of a playlist.
pub fn video_packets(playlist: &Path) -> Vec<(f64, bool)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(playlist)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pts, flags) = l.split_once(',')?;
            Some((pts.parse().ok()?, flags.contains('K')))
        })
        .collect()
}

/// EXTINF durations of a media playlist.
pub fn extinf(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse().unwrap())
        .collect()
}

/// `(width, height)` of the first video stream of a file.
pub fn video_size(path: &Path) -> (u64, u64) {
    let streams = streams(path);
    let v = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video in {}", path.display()));
    (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
}

/// The files of `Output` must be exactly the directory's, sizes included, with plain names.
pub fn assert_files_listed(run: &Run) {
    let output = run.output();
    let mut on_disk: Vec<(String, u64)> = std::fs::read_dir(&run.out_dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<(String, u64)> = output
        .files
        .iter()
        .map(|f| (f.path.to_str().unwrap().to_string(), f.size))
        .collect();
    listed.sort();
    assert_eq!(listed, on_disk);
    for f in &output.files {
        let name = f.path.to_str().unwrap();
        assert!(!name.contains('/') && !name.contains(".."), "{name}");
        let expected = match name {
            n if n.ends_with(".m3u8") => "application/vnd.apple.mpegurl",
            n if n.ends_with(".mpd") => "application/dash+xml",
            n if n.starts_with("init-") => "video/mp4",
            n if n.ends_with(".m4s") => "video/iso.segment",
            n if n.ends_with(".jpg") => "image/jpeg",
            n => panic!("unexpected file {n}"),
        };
        assert_eq!(f.content_type, expected, "{name}");
    }
    // Manifests go last so an uploader never publishes one before its segments.
    let names: Vec<_> = output
        .files
        .iter()
        .map(|f| f.path.to_str().unwrap())
        .collect();
    assert_eq!(&names[names.len() - 2..], ["master.m3u8", "manifest.mpd"]);
}

/// Progress rose strictly from 0 and ended at 100.
pub fn assert_progress(run: &Run) {
    let p = &run.progress;
    assert_eq!(p.first(), Some(&0), "{p:?}");
    assert_eq!(p.last(), Some(&100), "{p:?}");
    assert!(p.windows(2).all(|w| w[0] < w[1]), "monotonic: {p:?}");
}

/// For each `Representation` of the MPD: (id, codecs, width, height).
pub fn mpd_representations(mpd: &str) -> Vec<(String, String, Option<u64>, Option<u64>)> {
    let attr = |tag: &str, name: &str| {
        let key = format!(" {name}=\"");
        tag.find(&key).map(|i| {
            let rest = &tag[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
    };
    mpd.split("<Representation ")
        .skip(1)
        .map(|t| {
            let tag = &t[..t.find('>').unwrap()];
            let tag = format!(" {tag}");
            (
                attr(&tag, "id").unwrap(),
                attr(&tag, "codecs").unwrap(),
                attr(&tag, "width").map(|w| w.parse().unwrap()),
                attr(&tag, "height").map(|h| h.parse().unwrap()),
            )
        })
        .collect()
}

/// Each `EXT-X-STREAM-INF` attribute list with the URI that follows it.
pub fn master_variants(master: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = master.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.strip_prefix("#EXT-X-STREAM-INF:")
                .map(|attrs| (attrs.to_string(), lines[i + 1].to_string()))
        })
        .collect()
}

/// The value of `name=` in an HLS attribute list (quotes stripped).
pub fn hls_attr(attrs: &str, name: &str) -> Option<String> {
    let key = format!("{name}=");
    let mut rest = attrs;
    while let Some(i) = rest.find(&key) {
        let at_boundary = i == 0 || rest.as_bytes()[i - 1] == b',';
        let value = &rest[i + key.len()..];
        if at_boundary {
            return Some(if let Some(v) = value.strip_prefix('"') {
                v[..v.find('"').unwrap()].to_string()
            } else {
                value.split(',').next().unwrap().to_string()
            });
        }
        rest = value;
    }
    None
}
