//! Reelay: file and media delivery. See README.md and ../shared/DESIGN.md for the shape.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod purge;
pub mod server;
pub mod storage;
pub mod sweeper;
