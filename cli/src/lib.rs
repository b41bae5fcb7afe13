//! # redlock-cli
//!
//! The pieces of the `redlock` command that are worth testing on their own, and that the
//! benchmark (`redlock-bench`) shares: duration parsing ([`duration`]), the documented exit
//! statuses ([`exit`]), the stop timeline of `redlock run` ([`timeline`]) and password masking
//! ([`secret`]). Local `redis-server` nodes and the small inspection client come from
//! `redlock-harness`.
//!
//! The command itself (argument parsing, `run`, `status`, `demo`) lives in the binary.

pub mod duration;
pub mod exit;
pub mod secret;
pub mod timeline;
