//! Test support for redlock: an in-memory model of Redis nodes that speaks RESP and runs the
//! lock scripts' semantics, and the conformance suite run against real `redis-server`s (started by
//! `redlock-harness`).

pub mod conformance;
pub mod fake;
pub mod link;
pub mod model;
pub mod rig;
pub mod sim;
