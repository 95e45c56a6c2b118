//! The files API and delivery against a real server on port 0 (one test binary, one compile).

#[path = "../common/mod.rs"]
mod common;

mod smoke;
