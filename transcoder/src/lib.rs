//! Reelay's media pipeline: probe a local file, plan a source-capped ladder, encode every
//! rendition in one ffmpeg process, and package CMAF fMP4 segments that one HLS master playlist
//! and one DASH manifest both reference.
//!
//! The crate knows file paths and the ffmpeg/ffprobe binaries only: never storage, SQL or HTTP.
//! A job worker copies the source to a local temp file and calls, in order:
//!
//! ```no_run
//! # async fn job(input: &std::path::Path, out_dir: &std::path::Path) -> Result<(), transcoder::TranscodeError> {
//! use transcoder::{plan_ladder, probe, transcode, LadderOptions, Limits, Tools};
//! let tools = Tools::from_path_env()?;
//! let limits = Limits::default();
//! let probe = probe(&tools, input, &limits).await?;
//! let ladder = plan_ladder(&probe, &LadderOptions::default())?;
//! let output = transcode(&tools, input, &probe, &ladder, out_dir, &limits, &|pct| {
//!     tracing::info!(pct, "progress");
//! })
//! .await?;
//! for file in &output.files {
//!     // upload out_dir.join(&file.path) with file.content_type, in this order
//! }
//! # Ok(()) }
//! ```
//!
//! # Why a child process driven by tokio, not a wrapper crate
//!
//! ffmpeg runs as a child process through `tokio::process::Command` with an argv (never a
//! shell), `kill_on_drop(true)` and a deadline per command; progress comes from ffmpeg's own
//! `-progress pipe:1 -nostats` key=value output (`out_time_us`, `progress=end`). We chose this
//! over the `ffmpeg-sidecar` crate because that crate is synchronous (a blocking thread per job
//! and iterator-based events), while here a timeout or a dropped job future kills ffmpeg and
//! reaps it with no extra machinery, and the argv stays a plain, unit-tested `Vec<OsString>`.
//! Linking libav* (ffmpeg-next) was never an option: a crash on hostile input must take down a
//! child process, not the worker.
//!
//! # Hostile input
//!
//! See [`args`] for the argv rules (local file only, protocol and demuxer allow-lists before
//! `-i`, forced demuxer, `-max_pixels`) and [`Limits`] for the bounds checked after probing and
//! enforced while ffmpeg runs.

pub mod args;
mod error;
mod ladder;
mod limits;
mod package;
mod probe;
mod run;
mod tools;
mod transcode;

pub use args::{build_measure_args, build_poster_args, build_probe_args, build_transcode_args};
pub use error::TranscodeError;
pub use ladder::{plan_ladder, AudioRendition, Ladder, LadderOptions, VideoRendition};
pub use limits::Limits;
pub use package::{
    aac_codec_string, avc_codec_string, content_type, parse_media_playlist, render_master_playlist,
    render_media_playlist, MediaPlaylist, Output, OutputFile, RenditionInfo, RenditionKind,
    Segment,
};
pub use probe::{check_limits, parse_ffprobe_json, probe, AudioInfo, Probe, VideoInfo};
pub use tools::Tools;
pub use transcode::transcode;
