//! The real `reelay` binary as a child process: crashes, signals, timeouts, the CLI and logs,
//! which an in-process server cannot show.

#[path = "../common/mod.rs"]
mod common;

mod harness;

mod cli;
mod crash;
mod logging;
mod shutdown;
mod timeouts;
mod tus_crash;
mod workers;
