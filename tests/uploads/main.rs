//! Resumable (tus 1.0) and direct uploads against a real server on port 0.

#[path = "../common/mod.rs"]
mod common;

mod tus_js;
