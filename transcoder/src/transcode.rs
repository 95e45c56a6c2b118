//! The encode: one ffmpeg run for every rendition, one small run for the poster, then packaging.

use std::path::Path;

use tokio::time::Instant;

use crate::args::{build_poster_args, build_transcode_args, container_allowed, POSTER};
use crate::run::{run_ffmpeg, FfmpegRun, OutputWatch, ProgressSink};
use crate::{package, probe, Ladder, Limits, Output, Probe, Tools, TranscodeError};

/// Encodes `input` into CMAF segments, `manifest.mpd`, `master.m3u8` (+ `media_N.m3u8`) and
/// `poster.jpg` in `out_dir` (created if missing; must be empty), calling `progress` with rising
/// values 0-99 from ffmpeg's progress output and 100 once everything is written and checked.
///
/// The whole call is bounded by `limits.timeout`; ffmpeg is killed on timeout, on an output
/// larger than `limits.max_output_bytes`, and when the returned future is dropped. On error the
/// contents of `out_dir` are unspecified and must be discarded, never uploaded.
pub async fn transcode(
    tools: &Tools,
    input: &Path,
    probe: &Probe,
    ladder: &Ladder,
    out_dir: &Path,
    limits: &Limits,
    progress: &(dyn Fn(u8) + Send + Sync),
) -> Result<Output, TranscodeError> {
    let deadline = Instant::now() + limits.timeout;
    check_plan(probe, ladder)?;
    probe::check_limits(probe, limits)?;
    let input = std::path::absolute(input)?;
    let out_dir = prepare_out_dir(out_dir).await?;

    let mut sink = ProgressSink {
        duration: probe.duration.min(limits.max_duration.as_secs_f64()),
        report: progress,
        last: None,
    };
    sink.send(0);
    let args = build_transcode_args(&input, probe, ladder, &out_dir, limits);
    tracing::debug!(?args, "ffmpeg encode");
    let watch = OutputWatch {
        dir: out_dir.clone(),
        max_bytes: limits.max_output_bytes,
    };
    let run = run_ffmpeg(
        &tools.ffmpeg,
        &args,
        &out_dir,
        deadline,
        Some(sink),
        Some(watch),
    )
    .await?;
    check_encode(&run, probe, limits)?;

    let poster = if ladder.video.is_empty() {
        false
    } else {
        write_poster(tools, &input, probe, ladder, &out_dir, limits, deadline).await?;
        true
    };

    let output = package::finish(&out_dir, ladder, limits, poster).await?;
    progress(100);
    Ok(output)
}

/// The ladder must fit the probe it was planned from, and the probe must name an allowed
/// demuxer (ffmpeg's `-format_whitelist` would refuse it too; this says why more clearly).
fn check_plan(probe: &Probe, ladder: &Ladder) -> Result<(), TranscodeError> {
    if !container_allowed(&probe.container) {
        return Err(TranscodeError::Unsupported(format!(
            "the file is in a format we do not accept ({})",
            probe.container
        )));
    }
    if ladder.video.is_empty() && ladder.audio.is_none() {
        return Err(TranscodeError::InvalidOptions(
            "the ladder has no renditions".into(),
        ));
    }
    if !ladder.video.is_empty()
        && (probe.video.is_none() || ladder.gop == 0 || ladder.fps.is_nan() || ladder.fps <= 0.0)
    {
        return Err(TranscodeError::InvalidOptions(
            "the ladder has video renditions but the probe has no video (or no GOP)".into(),
        ));
    }
    if ladder.audio.is_some() && probe.audio.is_none() {
        return Err(TranscodeError::InvalidOptions(
            "the ladder has an audio rendition but the probe has no audio".into(),
        ));
    }
    if ladder.segment_seconds.is_nan() || ladder.segment_seconds <= 0.0 {
        return Err(TranscodeError::InvalidOptions(
            "segment_seconds must be positive".into(),
        ));
    }
    Ok(())
}

async fn prepare_out_dir(out_dir: &Path) -> Result<std::path::PathBuf, TranscodeError> {
    tokio::fs::create_dir_all(out_dir).await?;
    let mut entries = tokio::fs::read_dir(out_dir).await?;
    if entries.next_entry().await?.is_some() {
        return Err(TranscodeError::InvalidOptions(format!(
            "output directory {} is not empty",
            out_dir.display()
        )));
    }
    Ok(std::path::absolute(out_dir)?)
}

/// ffmpeg exiting 0 is not enough: it also exits 0 after hitting the end of a truncated file.
/// The encode must have ended (`progress=end`), the demuxer must not have reported a partial
/// file, and the output must cover the probed duration (within 20%, at least a second, as some
/// containers only estimate their duration).
fn check_encode(run: &FfmpegRun, probe: &Probe, limits: &Limits) -> Result<(), TranscodeError> {
    if !run.status.success() {
        return Err(TranscodeError::Failed(format!(
            "ffmpeg exited with {}: {}",
            run.status, run.stderr_tail
        )));
    }
    if run.saw_partial_file {
        return Err(TranscodeError::Failed(format!(
            "the input is truncated (partial file): {}",
            run.stderr_tail
        )));
    }
    if !run.progress.ended {
        return Err(TranscodeError::Failed(format!(
            "ffmpeg did not finish its output: {}",
            run.stderr_tail
        )));
    }
    let expected = probe.duration.min(limits.max_duration.as_secs_f64());
    let decoded = run.progress.out_time;
    if decoded + (0.2 * expected).max(1.0) < expected {
        return Err(TranscodeError::Failed(format!(
            "the input is truncated: only {decoded:.1} s of {expected:.1} s could be decoded"
        )));
    }
    Ok(())
}

/// A JPEG of the frame at min(1 s, half the duration), or of the first frame if seeking found
/// none (a stream whose video ends before its audio).
async fn write_poster(
    tools: &Tools,
    input: &Path,
    probe: &Probe,
    ladder: &Ladder,
    out_dir: &Path,
    limits: &Limits,
    deadline: Instant,
) -> Result<(), TranscodeError> {
    let path = out_dir.join(POSTER);
    for at in [(probe.duration / 2.0).min(1.0), 0.0] {
        let Some(args) = build_poster_args(input, probe, ladder, out_dir, limits, at) else {
            return Ok(());
        };
        let run = run_ffmpeg(&tools.ffmpeg, &args, out_dir, deadline, None, None).await?;
        if !run.status.success() {
            return Err(TranscodeError::Failed(format!(
                "poster: ffmpeg exited with {}: {}",
                run.status, run.stderr_tail
            )));
        }
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() > 0) {
            return Ok(());
        }
    }
    Err(TranscodeError::Failed(
        "no frame could be extracted for the poster".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::ProgressState;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn probe(duration: f64) -> Probe {
        Probe {
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            duration,
            video: None,
            audio: None,
            streams: 1,
        }
    }

    fn run(code: i32, out_time: f64, ended: bool, partial: bool) -> FfmpegRun {
        FfmpegRun {
            status: ExitStatus::from_raw(code << 8),
            stderr_tail: "tail".into(),
            saw_partial_file: partial,
            progress: ProgressState { out_time, ended },
        }
    }

    #[test]
    fn a_complete_encode_passes() {
        let limits = Limits::default();
        assert!(check_encode(&run(0, 3.02, true, false), &probe(3.0), &limits).is_ok());
        // Container durations are estimates; small shortfalls are fine.
        assert!(check_encode(&run(0, 9.0, true, false), &probe(10.0), &limits).is_ok());
        assert!(check_encode(&run(0, 0.4, true, false), &probe(0.4), &limits).is_ok());
    }

    #[test]
    fn exit_code_partial_file_unfinished_and_short_output_fail() {
        let limits = Limits::default();
        let p = probe(10.0);
        for bad in [
            run(1, 10.0, true, false),
            run(0, 10.0, true, true),
            run(0, 10.0, false, false),
            run(0, 5.0, true, false),
        ] {
            assert!(matches!(
                check_encode(&bad, &p, &limits),
                Err(TranscodeError::Failed(_))
            ));
        }
    }
}
