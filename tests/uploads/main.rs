//! Resumable (tus 1.0) and direct uploads against a real server on port 0.

#[path = "../common/mod.rs"]
mod common;

mod support;

mod direct;
mod faults;
mod protocol;
mod tus_js;
