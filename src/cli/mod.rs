//! Client and admin subcommands. `serve` lives in `server`.

pub mod keys;
pub mod media;
pub mod migrate;
pub mod storage;
pub mod upload;
