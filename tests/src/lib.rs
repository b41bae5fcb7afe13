//! Test support for redlock against live `redis-server`s (started by `redlock-harness`):
//! misbehaving fake servers, one conformance suite for every adapter, and the transport checks
//! (TLS, Unix sockets, custom connectors) with throw-away certificates; what the `metrics`
//! feature records, through an in-memory recorder.

pub mod certs;
pub mod cluster_changes;
pub mod cluster_suite;
pub mod conformance;
pub mod fake;
pub mod metrics;
pub mod node_errors;
pub mod recorder;
pub mod transports;
