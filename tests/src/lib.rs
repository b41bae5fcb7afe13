//! Test support for redlock against live `redis-server`s: a harness that starts real nodes,
//! misbehaving fake servers, and one conformance suite for every adapter.

pub mod conformance;
pub mod fake;
pub mod live;
