//! The media pipeline end to end against a real server on port 0, real ffmpeg and (with
//! REELAY_TEST_STORAGE=s3) real S3: uploads of good, odd and hostile inputs, transcodes, HLS and
//! DASH playback over HTTP, delivery semantics, signed playback of private media, deletion
//! and the media API's errors. One test binary, one compile.
//!
//! The inputs are made on the spot with ffmpeg's lavfi sources (`inputs`) and transcoded once
//! on one shared server (`corpus`); the tests of cases 1-4 read what that server produced.

#[path = "../common/mod.rs"]
mod common;

mod corpus;
mod inputs;
mod support;

mod api;
mod delivery;
mod lifecycle;
mod outcomes;
mod playback;
mod private;
