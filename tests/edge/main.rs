//! The shipped edge configurations (cdn-config/) run by the real nginx and varnishd from
//! Debian, on loopback ports, in front of real `reelay serve` processes: what is cached and
//! what never is, ranges across nginx slices, signed media checked at the edge while every
//! viewer shares one cached copy, purges on delete, a 1 GiB upload through the edge, failover
//! between two nodes, and a consistency check of docker/ against the code.

#[path = "../common/mod.rs"]
mod common;

#[path = "../process/harness.rs"]
#[allow(dead_code)]
mod harness;

#[path = "../cluster/support.rs"]
#[allow(dead_code)]
mod cluster_support;

mod support;

mod cluster;
mod docker;
mod errors;
mod files;
mod media;
mod purge;
mod upload;
