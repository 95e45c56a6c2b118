//! Client and admin subcommands. `serve` lives in `server`.

pub mod keys;
pub mod media;
pub mod migrate;
mod resumable;
pub mod storage;
pub mod upload;
