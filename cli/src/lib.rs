//! # redlock-cli
//!
//! The pieces of the `redlock` command that are worth testing on their own, and that its
//! integration tests share: duration parsing ([`duration`]), the documented exit statuses
//! ([`exit`]), a tiny blocking Redis client for inspection ([`client`]), local `redis-server`
//! nodes for the demo, the benchmark and the tests ([`local`]), and process CPU time ([`cpu`]).
//!
//! The command itself (argument parsing, `run`, `status`, `demo`, `bench`) lives in the binary.

pub mod client;
pub mod cpu;
pub mod duration;
pub mod exit;
pub mod local;
