//! The files API and delivery against a real server on port 0 (one test binary, one compile).

#[path = "../common/mod.rs"]
mod common;

mod support;

mod auth;
mod disposition;
mod ids;
mod multipart;
mod nodes;
mod ops;
mod preconditions;
mod ranges;
mod ratelimit;
mod security;
mod signatures;
mod smoke;
mod uploads;
