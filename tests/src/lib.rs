//! Test support for redlock against live `redis-server`s (started by `redlock-harness`):
//! misbehaving fake servers, and one conformance suite for every adapter.

pub mod conformance;
pub mod fake;
