//! Child processes: spawn with argv only (no shell), `kill_on_drop`, a deadline per command,
//! bounded capture of stdout/stderr, progress from ffmpeg's `-progress pipe:1` key=value lines and
//! an output-size watch. This is the hostile-input boundary of STYLE.md item 11: nothing read from
//! the child can grow memory without bound, and nothing outlives the future that started it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::TranscodeError;

/// Longest line kept from a child's output; the rest of a longer line is dropped.
const MAX_LINE: usize = 512;
/// How many of ffmpeg's last stderr lines an error carries.
const STDERR_TAIL_LINES: usize = 12;
/// How often the output directory is measured against `max_output_bytes`.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Spawns `command`, turning "no such file" into the actionable [`TranscodeError::NotFound`].
pub(crate) fn spawn(command: &mut Command, program: &Path) -> Result<Child, TranscodeError> {
    command.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            TranscodeError::NotFound(format!(
                "{} could not be started ({err}); install ffmpeg (Debian: apt-get install ffmpeg) or set REELAY_FFMPEG",
                program.display()
            ))
        }
        _ => TranscodeError::Io(err),
    })
}

fn command(program: &Path, args: &[OsString], cwd: Option<&Path>) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // ffmpeg colours its log when it thinks it talks to a terminal; keep the tail plain text.
        .env("AV_LOG_FORCE_NOCOLOR", "1")
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    command
}

/// What a finished child left behind.
#[derive(Debug)]
pub(crate) struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr_tail: String,
}

/// Runs a command that prints a bounded answer on stdout (ffprobe's JSON). More than
/// `max_stdout` bytes is a [`TranscodeError::LimitExceeded`]: a file with thousands of streams
/// must not turn into megabytes of JSON in memory.
pub(crate) async fn run_captured(
    program: &Path,
    args: &[OsString],
    deadline: Instant,
    max_stdout: usize,
) -> Result<Captured, TranscodeError> {
    let mut child = spawn(&mut command(program, args, None), program)?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let read_stdout = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = stdout.read(&mut chunk).await?;
            if n == 0 {
                return Ok(buf);
            }
            if buf.len() + n > max_stdout {
                return Err(TranscodeError::LimitExceeded(
                    "the file describes too many streams".to_string(),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    // try_join: an oversized answer must stop the wait at once (the child would otherwise
    // block on a full pipe until the deadline), and the child is killed below.
    let work = async {
        let (stdout, stderr_tail) = tokio::try_join!(read_stdout, tail_lines(stderr))?;
        let status = child.wait().await?;
        Ok::<_, TranscodeError>(Captured {
            status,
            stdout,
            stderr_tail,
        })
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(captured)) => Ok(captured),
        Ok(Err(err)) => {
            kill(&mut child).await;
            Err(err)
        }
        Err(_) => {
            kill(&mut child).await;
            Err(TranscodeError::Timeout)
        }
    }
}

/// Turns ffmpeg's `out_time_us` into 0-99 against the probed duration and reports each rise
/// once. 100 is left to the caller, which sends it when the whole job (poster and packaging
/// included) has succeeded.
pub(crate) struct ProgressSink<'a> {
    pub duration: f64,
    pub report: &'a (dyn Fn(u8) + Send + Sync),
    pub last: Option<u8>,
}

impl ProgressSink<'_> {
    pub fn send(&mut self, value: u8) {
        if self.last.is_none_or(|last| value > last) {
            self.last = Some(value);
            (self.report)(value);
        }
    }
}

/// Progress of the encoding pass, capped at 99 so that 100 always means "done".
pub(crate) fn percent(out_time: f64, duration: f64) -> u8 {
    if duration.is_nan() || duration <= 0.0 || !out_time.is_finite() {
        return 0;
    }
    ((out_time / duration) * 100.0).floor().clamp(0.0, 99.0) as u8
}

impl ProgressState {
    /// Takes one `key=value` line of `-progress` output; true when `out_time` advanced.
    fn line(&mut self, line: &str) -> bool {
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        match key.trim() {
            "out_time_us" => {
                // "N/A" before the first frame; negative while the encoders prime.
                match value.trim().parse::<i64>() {
                    Ok(us) if us >= 0 && us as f64 / 1e6 > self.out_time => {
                        self.out_time = us as f64 / 1e6;
                        true
                    }
                    _ => false,
                }
            }
            "progress" => {
                self.ended |= value.trim() == "end";
                false
            }
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ProgressState {
    /// Seconds of output ffmpeg reported last (the furthest of its output streams).
    pub out_time: f64,
    /// ffmpeg printed `progress=end`: it finished writing, not only exited.
    pub ended: bool,
}

/// The result of one ffmpeg run.
#[derive(Debug)]
pub(crate) struct FfmpegRun {
    pub status: ExitStatus,
    pub stderr_tail: String,
    /// A demuxer said "partial file": the input ends before its index says it does. ffmpeg
    /// still exits 0 after that, so the caller must look.
    pub saw_partial_file: bool,
    pub progress: ProgressState,
}

/// Caps what ffmpeg may write into a directory while it runs.
pub(crate) struct OutputWatch {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// Runs ffmpeg to completion, the deadline or the output cap, whichever comes first. On a
/// timeout or an exceeded cap the process is killed and reaped before returning.
pub(crate) async fn run_ffmpeg(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    deadline: Instant,
    mut progress: Option<ProgressSink<'_>>,
    watch: Option<OutputWatch>,
) -> Result<FfmpegRun, TranscodeError> {
    let mut child = spawn(&mut command(program, args, Some(cwd)), program)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let mut state = ProgressState::default();
    let outcome = {
        let read_progress = for_each_line(stdout, |line| {
            if state.line(line) {
                if let Some(sink) = progress.as_mut() {
                    sink.send(percent(state.out_time, sink.duration));
                }
            }
        });
        let work = async {
            let ((), tail) = tokio::try_join!(read_progress, tail_with_markers(stderr))?;
            Ok::<_, TranscodeError>((child.wait().await?, tail))
        };
        tokio::select! {
            result = work => Some(result),
            exceeded = watch_output(watch.as_ref()) => {
                let (dir, limit) = exceeded;
                Some(Err(TranscodeError::LimitExceeded(format!(
                    "the output would be larger than {limit} bytes (in {})", dir.display()
                ))))
            }
            _ = tokio::time::sleep_until(deadline) => None,
        }
    };
    match outcome {
        Some(Ok((status, (stderr_tail, saw_partial_file)))) => Ok(FfmpegRun {
            status,
            stderr_tail,
            saw_partial_file,
            progress: state,
        }),
        Some(Err(err)) => {
            kill(&mut child).await;
            Err(err)
        }
        None => {
            kill(&mut child).await;
            Err(TranscodeError::Timeout)
        }
    }
}

/// Resolves only when the directory grows past the cap; never resolves without a watch.
async fn watch_output(watch: Option<&OutputWatch>) -> (PathBuf, u64) {
    let Some(watch) = watch else {
        return std::future::pending().await;
    };
    let mut ticker = tokio::time::interval(WATCH_INTERVAL);
    loop {
        ticker.tick().await;
        if dir_size(&watch.dir).await > watch.max_bytes {
            return (watch.dir.clone(), watch.max_bytes);
        }
    }
}

/// Sum of the regular files directly in `dir` (ffmpeg's DASH output is flat). Files vanishing
/// mid-scan (ffmpeg renames `.tmp` files into place) are skipped.
pub(crate) async fn dir_size(dir: &Path) -> u64 {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return 0;
    };
    let mut total = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(meta) = entry.metadata().await {
            if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

async fn kill(child: &mut Child) {
    // The process may have exited already; either way reap it so no zombie is left.
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Keeps the last [`STDERR_TAIL_LINES`] non-empty lines of a stream, joined by newlines.
async fn tail_lines<R: AsyncRead + Unpin>(reader: R) -> Result<String, TranscodeError> {
    Ok(tail_with_markers(reader).await?.0)
}

/// [`tail_lines`], plus whether any line (even one scrolled out of the tail) reported a partial
/// file.
async fn tail_with_markers<R: AsyncRead + Unpin>(
    reader: R,
) -> Result<(String, bool), TranscodeError> {
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut partial = false;
    for_each_line(reader, |line| {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        partial |= line.contains("partial file");
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    })
    .await?;
    Ok((Vec::from(tail).join("\n"), partial))
}

/// Calls `f` for each line (split on `\n` or `\r`, as ffmpeg uses both), each cut to
/// [`MAX_LINE`] bytes, reading until EOF. Memory stays bounded whatever the child prints.
pub(crate) async fn for_each_line<R, F>(mut reader: R, mut f: F) -> Result<(), TranscodeError>
where
    R: AsyncRead + Unpin,
    F: FnMut(&str),
{
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            if !line.is_empty() {
                f(&String::from_utf8_lossy(&line));
            }
            return Ok(());
        }
        for &byte in &chunk[..n] {
            if byte == b'\n' || byte == b'\r' {
                if !line.is_empty() {
                    f(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn percent_is_capped_below_100_and_safe_on_zero_duration() {
        assert_eq!(percent(1.5, 3.0), 50);
        assert_eq!(percent(3.2, 3.0), 99);
        assert_eq!(percent(1.0, 0.0), 0);
        assert_eq!(percent(f64::NAN, 3.0), 0);
    }

    #[tokio::test]
    async fn progress_lines_report_monotonic_percentages() {
        let seen = Mutex::new(Vec::new());
        let report = |p: u8| seen.lock().unwrap().push(p);
        let mut sink = ProgressSink {
            duration: 4.0,
            report: &report,
            last: None,
        };
        let mut state = ProgressState::default();
        let text = "frame=1\nout_time_us=N/A\nout_time_us=-23000\nout_time_us=1000000\nprogress=continue\n\
                    out_time_us=900000\nout_time_us=2000000\nout_time_us=4100000\nprogress=end\n";
        for line in text.lines() {
            if state.line(line) {
                sink.send(percent(state.out_time, sink.duration));
            }
        }
        assert_eq!(*seen.lock().unwrap(), vec![25, 50, 99]);
        assert!(state.ended);
        assert_eq!(state.out_time, 4.1);
    }

    #[tokio::test]
    async fn oversized_stdout_stops_the_child_at_once() {
        let started = std::time::Instant::now();
        let deadline = Instant::now() + Duration::from_secs(20);
        let err = run_captured(Path::new("yes"), &[], deadline, 4096)
            .await
            .unwrap_err();
        assert!(matches!(err, TranscodeError::LimitExceeded(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn deadline_kills_a_slow_child() {
        let deadline = Instant::now() + Duration::from_millis(100);
        let err = run_captured(Path::new("sleep"), &["5".into()], deadline, 4096)
            .await
            .unwrap_err();
        assert!(matches!(err, TranscodeError::Timeout), "{err:?}");
    }

    #[tokio::test]
    async fn missing_program_says_what_to_install() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = run_captured(Path::new("/nonexistent/ffprobe"), &[], deadline, 4096)
            .await
            .unwrap_err();
        assert!(matches!(err, TranscodeError::NotFound(_)), "{err:?}");
        assert!(err.to_string().contains("apt-get install ffmpeg"), "{err}");
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_carriage_returns_split() {
        let mut input = vec![b'a'; 10_000];
        input.extend_from_slice(b"\rsecond\n\nthird");
        let mut lines = Vec::new();
        for_each_line(&input[..], |l| lines.push(l.to_string()))
            .await
            .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1..], ["second".to_string(), "third".to_string()]);
    }
}
