//! Integration tests against the real ffmpeg/ffprobe on PATH (Debian's ffmpeg 5.1). Every input
//! is generated with lavfi into a temp dir; nothing is downloaded. One test binary, so the
//! crate links once.

mod common;
mod hostile;
mod limits;
mod pipeline;
