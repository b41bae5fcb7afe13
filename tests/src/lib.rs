//! Test support for redlock: an in-memory model of Redis nodes that speaks RESP and runs the
//! lock scripts' semantics, and (for live tests) a harness that starts real `redis-server`s.

pub mod conformance;
pub mod fake;
pub mod link;
pub mod live;
pub mod model;
pub mod rig;
pub mod sim;
