//! Test support for redlock against live `redis-server`s (started by `redlock-harness`):
//! misbehaving fake servers, one conformance suite for every adapter, and the transport checks
//! (TLS, Unix sockets, custom connectors) with throw-away certificates.

pub mod certs;
pub mod conformance;
pub mod fake;
pub mod node_errors;
pub mod transports;
