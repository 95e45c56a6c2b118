//! Scale-out scenarios (DESIGN.md "Scale-out", "Jobs"): real `reelay serve` and `reelay worker`
//! processes sharing one SeaweedFS bucket and one PostgreSQL database, with the faults a
//! cluster meets: a worker killed mid-transcode, PostgreSQL restarted under traffic.

#[path = "../common/mod.rs"]
mod common;

#[path = "../process/harness.rs"]
#[allow(dead_code)]
mod harness;

mod support;

mod cluster;
mod pg_restart;
mod tus;
