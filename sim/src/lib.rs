//! A deterministic simulation of Redlock: an in-memory model of Redis nodes that speaks RESP and
//! runs the lock scripts' semantics, and a seeded simulator that runs engines against them.

pub mod link;
pub mod model;
pub mod rig;
pub mod sim;
