//! The uploads, made on the spot with ffmpeg's lavfi sources: small, fast to encode, and each
//! checked with ffprobe for the one property it exists to test (a rotation that did not stick
//! would make the portrait test pass for the wrong reason).

use std::{
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use futures::StreamExt;

use crate::support::ffprobe_json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Ready,
    Failed,
}

#[derive(Debug, Clone)]
pub struct Input {
    /// Short name the tests use.
    pub name: &'static str,
    /// The client's filename for the upload.
    pub filename: &'static str,
    pub path: PathBuf,
    pub expect: Expect,
    /// Display size (after rotation) of the video, if any.
    pub display: Option<(u32, u32)>,
    pub audio: bool,
    /// Seconds of media in the source.
    pub duration: f64,
    pub access: &'static str,
}

/// ffmpeg with lavfi sources; panics with its stderr when it fails.
async fn ffmpeg(args: &[&str]) {
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "generating an input failed: ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

const TONE: &str = "sine=frequency=440:sample_rate=48000";

/// A test picture with a tone, H.264 + AAC in MP4.
async fn h264_aac(path: &Path, size: &str, rate: u32, seconds: f64, extra: &[&str]) {
    let video = format!("testsrc2=size={size}:rate={rate}:duration={seconds}");
    let audio = format!("{TONE}:duration={seconds}");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    ];
    args.extend_from_slice(extra);
    args.push(s(path));
    ffmpeg(&args).await;
}

async fn probe_video(path: &Path) -> serde_json::Value {
    let json = ffprobe_json(path, &["-show_streams", "-show_format"]).await;
    json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .cloned()
        .unwrap_or_else(|| panic!("{} has no video stream", path.display()))
}

/// Every input of the corpus, generated into `dir`, two at a time (2 cores).
pub async fn generate(dir: &Path, hostile: &Hostile) -> Vec<Input> {
    let p = |name: &str| dir.join(name);
    let inputs = vec![
        Input {
            name: "h264_1080p",
            filename: "holiday 1080p.mp4",
            path: p("h264_1080p.mp4"),
            expect: Expect::Ready,
            display: Some((1920, 1080)),
            audio: true,
            duration: 3.0,
            access: "public",
        },
        Input {
            name: "phone_portrait",
            filename: "IMG_0001.MOV",
            path: p("phone_portrait.mp4"),
            expect: Expect::Ready,
            display: Some((480, 848)),
            audio: true,
            duration: 2.0,
            access: "public",
        },
        Input {
            name: "odd_853x479",
            filename: "odd.mp4",
            path: p("odd_853x479.mp4"),
            expect: Expect::Ready,
            display: Some((853, 479)),
            audio: true,
            duration: 2.0,
            access: "public",
        },
        Input {
            name: "vp9_no_audio",
            filename: "clip.webm",
            path: p("vp9_no_audio.webm"),
            expect: Expect::Ready,
            display: Some((480, 270)),
            audio: false,
            duration: 2.0,
            access: "public",
        },
        Input {
            name: "hevc10_5_1",
            filename: "hdr-ish.mkv",
            path: p("hevc10_5_1.mkv"),
            expect: Expect::Ready,
            display: Some((640, 360)),
            audio: true,
            duration: 2.0,
            access: "public",
        },
        Input {
            name: "vfr",
            filename: "screen-recording.mp4",
            path: p("vfr.mp4"),
            expect: Expect::Ready,
            display: Some((320, 240)),
            audio: true,
            duration: 3.0,
            access: "public",
        },
        Input {
            name: "short_0_4s",
            filename: "blink.mp4",
            path: p("short.mp4"),
            expect: Expect::Ready,
            display: Some((320, 240)),
            audio: true,
            duration: 0.4,
            access: "public",
        },
        Input {
            name: "audio_only",
            filename: "voice memo.m4a",
            path: p("audio_only.m4a"),
            expect: Expect::Ready,
            display: None,
            audio: true,
            duration: 2.0,
            access: "public",
        },
        Input {
            name: "prores",
            filename: "master.mov",
            path: p("prores.mov"),
            expect: Expect::Ready,
            display: Some((320, 240)),
            audio: true,
            duration: 1.0,
            access: "public",
        },
        Input {
            name: "truncated",
            filename: "cut-off.mp4",
            path: p("truncated.mp4"),
            expect: Expect::Failed,
            display: Some((640, 360)),
            audio: true,
            duration: 4.0,
            access: "public",
        },
        Input {
            name: "text",
            filename: "notes.mp4",
            path: p("text.mp4"),
            expect: Expect::Failed,
            display: None,
            audio: false,
            duration: 0.0,
            access: "public",
        },
        Input {
            name: "empty",
            filename: "empty.mp4",
            path: p("empty.mp4"),
            expect: Expect::Failed,
            display: None,
            audio: false,
            duration: 0.0,
            access: "public",
        },
        Input {
            name: "hls_playlist",
            filename: "movie.mp4",
            path: hostile.playlist.clone(),
            expect: Expect::Failed,
            display: None,
            audio: false,
            duration: 0.0,
            access: "public",
        },
        Input {
            name: "private",
            filename: "private.mp4",
            path: p("private.mp4"),
            expect: Expect::Ready,
            display: Some((854, 480)),
            audio: true,
            duration: 3.0,
            access: "private",
        },
        // Uploaded last, after every broken input: the worker must still be working.
        Input {
            name: "survivor",
            filename: "after.mp4",
            path: p("survivor.mp4"),
            expect: Expect::Ready,
            display: Some((320, 240)),
            audio: true,
            duration: 1.0,
            access: "public",
        },
    ];
    let jobs = inputs.iter().cloned().map(|input| {
        let dir = dir.to_owned();
        async move { make(&input, &dir).await }
    });
    futures::stream::iter(jobs)
        .buffer_unordered(2)
        .collect::<Vec<()>>()
        .await;
    inputs
}

async fn make(input: &Input, dir: &Path) {
    let path = input.path.as_path();
    match input.name {
        "h264_1080p" => h264_aac(path, "1920x1080", 30, 3.0, &[]).await,
        "phone_portrait" => {
            // A phone stores the sensor's landscape frames and a 90-degree display matrix.
            let coded = dir.join("phone_coded.mp4");
            h264_aac(&coded, "848x480", 30, 2.0, &[]).await;
            ffmpeg(&[
                "-i",
                s(&coded),
                "-c",
                "copy",
                "-metadata:s:v:0",
                "rotate=90",
                s(path),
            ])
            .await;
            let video = probe_video(path).await;
            let rotation = video["side_data_list"]
                .as_array()
                .and_then(|l| l.iter().find_map(|sd| sd["rotation"].as_i64()));
            assert!(
                matches!(rotation, Some(90 | -90 | 270 | -270)),
                "the phone video has no 90-degree display matrix: {video}"
            );
        }
        "odd_853x479" => {
            // 4:4:4 allows odd sizes in H.264 (4:2:0 does not).
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=853x479:rate=25:duration=2,format=yuv444p",
                "-f",
                "lavfi",
                "-i",
                &format!("{TONE}:duration=2"),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-shortest",
                s(path),
            ])
            .await;
            let video = probe_video(path).await;
            assert_eq!(
                (video["width"].as_u64(), video["height"].as_u64()),
                (Some(853), Some(479))
            );
        }
        "vp9_no_audio" => {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=480x270:rate=30:duration=2",
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "300k",
                s(path),
            ])
            .await;
        }
        "hevc10_5_1" => {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=2",
                "-f",
                "lavfi",
                "-i",
                &format!("{TONE}:duration=2"),
                "-filter_complex",
                "[1:a]pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0[a]",
                "-map",
                "0:v",
                "-map",
                "[a]",
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p10le",
                "-x265-params",
                "log-level=error",
                "-c:a",
                "aac",
                s(path),
            ])
            .await;
            let json = ffprobe_json(path, &["-show_streams"]).await;
            let streams = json["streams"].as_array().unwrap();
            assert!(streams
                .iter()
                .any(|s| s["codec_name"] == "hevc" && s["pix_fmt"] == "yuv420p10le"));
            assert!(streams.iter().any(|s| s["channels"] == 6));
        }
        "vfr" => {
            // 30 fps for a second, then every third frame: two frame durations.
            h264_aac(
                path,
                "320x240",
                30,
                3.0,
                &[
                    "-vf",
                    "select='if(lt(t,1),1,not(mod(n,3)))'",
                    "-fps_mode",
                    "vfr",
                ],
            )
            .await;
            let json = ffprobe_json(
                path,
                &[
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "packet=duration_time",
                ],
            )
            .await;
            let durations: std::collections::BTreeSet<String> = json["packets"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["duration_time"].as_str().map(str::to_owned))
                .collect();
            assert!(durations.len() >= 2, "not variable: {durations:?}");
        }
        "short_0_4s" => h264_aac(path, "320x240", 30, 0.4, &[]).await,
        "audio_only" => {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                &format!("{TONE}:duration=2"),
                "-c:a",
                "aac",
                s(path),
            ])
            .await;
        }
        "prores" => {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25:duration=1",
                "-f",
                "lavfi",
                "-i",
                &format!("{TONE}:duration=1"),
                "-c:v",
                "prores_ks",
                "-profile:v",
                "0",
                "-c:a",
                "pcm_s16le",
                "-shortest",
                s(path),
            ])
            .await;
        }
        "truncated" => {
            // moov first, so the file probes fine and breaks only halfway through the data.
            let whole = dir.join("whole.mp4");
            h264_aac(&whole, "640x360", 30, 4.0, &["-movflags", "+faststart"]).await;
            let bytes = std::fs::read(&whole).unwrap();
            std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
        }
        "text" => std::fs::write(path, "These are my notes, not a video.\n".repeat(40)).unwrap(),
        "empty" => std::fs::write(path, b"").unwrap(),
        "hls_playlist" => {}
        "private" => h264_aac(path, "854x480", 30, 3.0, &[]).await,
        "survivor" => h264_aac(path, "320x240", 30, 1.0, &[]).await,
        other => panic!("no recipe for {other}"),
    }
}

/// A loopback listener that counts every connection made to it.
pub struct Canary {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl Canary {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("canary binds");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { port, connections }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A named pipe that notices being opened for reading: a thread blocks opening it for
/// writing, which succeeds only once a reader opens it. Reading a regular file leaves no trace
/// (atime is unreliable); reading this one does.
pub struct FileCanary {
    pub path: PathBuf,
    opened: Arc<AtomicBool>,
}

impl FileCanary {
    pub fn start(path: PathBuf, contents: Vec<u8>) -> Self {
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success(), "mkfifo {}", path.display());
        let opened = Arc::new(AtomicBool::new(false));
        let flag = opened.clone();
        let fifo = path.clone();
        std::thread::spawn(move || {
            if let Ok(mut writer) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                flag.store(true, Ordering::SeqCst);
                let _ = writer.write_all(&contents);
            }
        });
        Self { path, opened }
    }

    pub fn opened(&self) -> bool {
        self.opened.load(Ordering::SeqCst)
    }
}

/// An HLS playlist saved as `.mp4` whose segments are a local secret file, a named pipe and
/// a loopback URL. A demuxer that follows it leaves a trace: the secret's bytes in an output,
/// the pipe opened, or a connection to the canary.
pub struct Hostile {
    /// Holds the secret and the pipe, outside any server's data dir.
    pub dir: tempfile::TempDir,
    pub secret: Vec<u8>,
    pub pipe: FileCanary,
    pub canary: Canary,
    pub playlist: PathBuf,
}

impl Hostile {
    pub fn new(playlist_dir: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let unique = crate::common::pattern(crate::support::unix_now() ^ 0x5eed, 16);
        let secret = format!("REELAY-SECRET-{}", hex::encode(unique)).into_bytes();
        let secret_path = dir.path().join("secret.ts");
        std::fs::write(&secret_path, secret.repeat(64)).unwrap();
        let pipe = FileCanary::start(dir.path().join("pipe.ts"), secret.repeat(64));
        let canary = Canary::start();
        let playlist = playlist_dir.join("playlist.mp4");
        let text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXTINF:2.0,\n{}\n#EXTINF:2.0,\nfile:{}\n#EXTINF:2.0,\nhttp://127.0.0.1:{}/segment.ts\n\
             #EXT-X-ENDLIST\n",
            secret_path.display(),
            pipe.path.display(),
            canary.port
        );
        std::fs::write(&playlist, text).unwrap();
        Self {
            dir,
            secret,
            pipe,
            canary,
            playlist,
        }
    }
}
