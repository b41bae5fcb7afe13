//! Deterministic simulation of Redlock, in its own crate (as str0m keeps its network
//! emulator): an in-memory model of Redis nodes, byte-queue links to them, a small rig that
//! wires one engine to a cluster of model nodes, and a seeded simulator that runs several
//! engines against model nodes on a faulty network and checks what the clients believe.
//!
//! # The model
//!
//! [`Node`] is one Redis node, for driving the sans-IO engine without sockets.
//!
//! The model is split in two layers so that a simulator can put any transport in between:
//!
//! - **Semantics**: [`Node::execute`] runs one command (a list of arguments) against the node's
//!   state on a [`Session`] and returns a [`Value`]. Keys live in numbered databases and expire
//!   on the caller's virtual clock: every call takes `now: Instant`, nothing reads a real clock.
//! - **Byte stream**: [`Node::feed`] takes request bytes from one connection (RESP arrays of bulk
//!   strings, or inline commands), runs every complete command, applies injected [`Fault`]s, and
//!   returns the encoded replies (RESP2, or RESP3 after `HELLO 3`). [`parse_command`] and
//!   [`Value::encode`] are the two halves, usable on their own.
//!
//! The lock scripts are not interpreted as Lua: the node knows the engine's default scripts
//! ([`redlock_core::ACQUIRE`], [`EXTEND`], [`RELEASE`], and the fencing pair
//! [`FENCED_ACQUIRE`] / [`FENCE`]) by source and SHA-1 and runs their semantics natively
//! ([`ScriptKind`]); other sources can be taught with [`Node::learn_script`]. The script cache
//! behaves as Redis's does: empty at start and after a restart or `SCRIPT FLUSH`, filled by `EVAL`
//! and `SCRIPT LOAD`, and `EVALSHA` of an unknown SHA replies [`NOSCRIPT`].
//!
//! A node claims to be a particular server ([`Identity`], set with [`Node::set_identity`]; Redis
//! 7.2 by default): `INFO server` and `HELLO` name it, and it runs the native compare-and-delete
//! and compare-and-set commands that version has (`DELEX key IFEQ|IFNE value` from Redis 8.4 and
//! Valkey 9.2, `DELIFEQ key value` from Valkey 9.0, `SET … IFEQ cmp` from Redis 8.4 and Valkey
//! 8.1), answering an older server's errors otherwise. [`Defect`] breaks them on purpose.
//!
//! A node is standalone unless given a cluster view ([`Node::set_cluster`], [`ClusterView`]): a
//! cluster member answers `CLUSTER SLOTS` / `CLUSTER SHARDS` from its own view (as in Redis,
//! each node has its own, so one can be stale), and redirects keyed commands and scripts on a
//! slot it does not serve: `MOVED`, `ASK` while a slot migrates out, [`TRYAGAIN`],
//! [`CROSSSLOT`], and serves an importing slot only right after `ASKING`. The world migrates a
//! slot with [`Node::take_slot_keys`] / [`Node::take_key`] and [`Node::put_keys`].
//!
//! Fault knobs: [`Node::flush_scripts`], [`Node::crash`] / [`Node::restart`] (with or without
//! keeping the data), [`Node::set_stalled`] (a node that reads but does not answer), and
//! [`Node::inject`] to fail, hang, close or garble particular commands.
//!
//! [`Link`] is a client connection to a node as two byte queues, and [`Rig`] one engine wired
//! to N nodes over links, for tests that want a working cluster and a few knobs.
//!
//! # The simulation
//!
//! A seeded, single-threaded simulation of Redlock: several clients (each its own
//! [`Engine`]) and N model Redis nodes ([`Node`]) on a simulated network, in virtual time,
//! with faults, and checkers that watch what the clients believe.
//!
//! Same [`Scenario`] (it carries its seed), same run: everything random comes from one
//! SplitMix64 stream ([`Rng`]), time is a virtual nanosecond counter, and nothing reads the
//! real clock (instants handed to the engines and nodes are one base instant, captured once per
//! process, plus a virtual offset). [`Report::hash`] digests the whole run (every byte moved,
//! every event) so determinism can be asserted.
//!
//! ## Fault model
//!
//! - **Clocks.** Every client and every node has its own clock running at `1 + ppm / 10⁶` the
//!   rate of real (simulated) time, from its own offset. A client's engine only ever sees its
//!   own clock; a node's keys expire on the node's clock; `INFO` uptime is node time.
//!   Apart from that rate drift, each client has a wall clock (what `SystemTime::now()` would
//!   read, passed to every acquire as the floor of fencing tokens): real time plus an offset
//!   drawn from `0..=`[`Scenario::wall_offset`], so two clients' wall clocks differ by at most
//!   that, as NTP keeps them.
//! - **Network.** Each client has one connection per node at a time. Bytes from
//!   [`Engine::poll_transmit`] and reply bytes from the node travel as chunks (sometimes split
//!   at random points) with a per-chunk latency drawn from a range (jitter), occasionally a
//!   spike; each direction of a connection is FIFO, as TCP is, and connections are independent
//!   of each other (so requests on different connections reorder freely). A lost chunk
//!   black-holes that direction of its connection from there on (TCP does not lose bytes in the
//!   middle of a stream: a loss is a connection that stops delivering, which the engine only
//!   notices by its request timeout). When a client gives up on a connection (the engine asked
//!   for a reconnect), the request bytes already in flight are either dropped (RST) or still
//!   delivered and run by the node (FIN after data), at random.
//! - **Nodes** crash (every connection closes, the clients hear of it after a network delay and
//!   reconnect with backoff) and restart after a while with a new `run_id` and uptime 0, either
//!   empty (no persistence) or with their keys (AOF). Nodes also stall (a `SIGSTOP`: they read
//!   but answer nothing until resumed, then run what they buffered).
//! - **Clients** pause (a GC pause: nothing is processed; what arrives waits), at random and also
//!   right after checking that a lock is valid and before writing to the fenced store, the
//!   pause that fencing tokens exist for.
//!
//! ## Clients
//!
//! Each client loops: acquire one or two of a few resources (sometimes cancelling the acquire
//! in flight), then while holding, at random times: write to the fenced store (with fencing on),
//! extend, or release; sometimes it holds past validity and only notices on its next step.
//!
//! ## Checkers
//!
//! - [`Check::Exclusion`]: a client *holds* a resource from the `Completed(Acquired)` (or
//!   `Extended`) event until the earlier of the start of its release and the real instant its own
//!   clock reaches [`Lock::valid_until`] (paused or not: a paused client is a holder until then,
//!   and not after). No two clients hold a resource at the same real instant.
//! - [`Check::TokenOrder`]: every fencing token handed out for a resource is larger than every
//!   token handed out for it before (in real time).
//! - [`Check::StaleWrite`]: the fenced store accepts a write when its token is not below the
//!   largest it has seen for the resource. A write is *stale* when the store already accepted a
//!   write from a holder the writer's lock was handed out before; the store must never accept one.
//! - [`Check::Liveness`] (when [`Scenario::liveness`] is set): no acquire fails (other than by
//!   cancel) and none takes longer than the bound.
//! - [`Check::Engine`]: the engine broke its own contract (a lock handed out already expired, an
//!   operation completing twice, bytes for a node it was not connected to, a fenced lock without
//!   a token, a run that never goes quiet).
//!
//! ## Profiles, and what they leave out
//!
//! [`Scenario::safety`] (exclusion and fencing, the algorithm's assumptions hold),
//! [`Scenario::fencing`] (fencing only: half the seeds keep their counters through restarts
//! and drop every clock assumption, half are [`Scenario::fencing_empty_restarts`], restarts that
//! lose the counters with `restart_grace` set and wall clocks within half of it) and
//! [`Scenario::liveness`] (one client, a quorum up). Every profile draws which server each node
//! claims from [`Identity::MIX`] ([`Scenario::servers`]; one node in ten with `DELEX`/`DELIFEQ`
//! renamed away), so releases and extends go out as scripts and as every native form.
//! [`Scenario::cluster`] is the safety profile with Redlock nodes that are Redis Clusters
//! ([`Scenario::clusters`]: one cluster of 2 to 5 shards as the only node, or three clusters
//! of 1 to 3 shards): the clients configure each with `NodeConfig::as_cluster`, seeded at a
//! member, so their engines read the slot map, split each lock by hash slot and follow the
//! redirects of slot migrations the world runs mid-run ([`Scenario::migrate_every`]:
//! `MIGRATING` / `IMPORTING`, keys moved one at a time, then the new owner, learned late by
//! the other members), with shards crashing, stalling and restarting. `sim/tests/sim_findings.rs`
//! reproduces what the simulator found wrong in the core, each now fixed and guarded.
//!
//! ## Running
//!
//! `cargo test -p redlock-sim --test 'sim_*'` runs the sweeps with their CI seed counts.
//! Environment: `SIM_SEEDS=n` seeds per sweep (e.g. `SIM_SEEDS=1000000` for a long local run,
//! better with `--release`), `SIM_SEED_START=s` to start elsewhere than 0, `SIM_SEED=s` to run
//! exactly one seed, `SIM_LOG=1` (with `SIM_SEED`) to print that run event by event (every
//! command each node runs, every reply, every fault, every lock), `SIM_THREADS=n`. A failing
//! sweep panics with its smallest failing seed and the command that replays it.
//!
//! [`EXTEND`]: redlock_core::EXTEND
//! [`RELEASE`]: redlock_core::RELEASE
//! [`FENCED_ACQUIRE`]: redlock_core::FENCED_ACQUIRE
//! [`FENCE`]: redlock_core::FENCE
//! [`Engine`]: redlock_core::Engine
//! [`Engine::poll_transmit`]: redlock_core::Engine::poll_transmit
//! [`Lock::valid_until`]: redlock_core::Lock::valid_until

mod checker;
mod clock;
mod cluster;
mod cluster_command;
mod commands;
mod compare;
mod completion;
mod digest;
mod explore;
mod fault;
mod identity;
mod keyspace;
mod link;
mod node;
mod report;
mod request;
mod rig;
mod rng;
mod routing;
mod scenario;
mod script;
mod script_cache;
mod session;
mod value;
mod world;

pub use clock::wall_clock;
pub use cluster::{ClusterView, SLOTS};
pub use commands::NOSCRIPT;
pub use completion::{completion, Done};
pub use explore::{check_sweep, explore, sweep_seeds, Exploration, Sweep};
pub use fault::{Fault, FaultAction, Match};
pub use identity::{Defect, Identity, Product};
pub use keyspace::KeyDump;
pub use link::Link;
pub use node::Node;
pub use report::{Check, Report, Stats, Violation};
pub use request::{parse_command, parse_commands, ProtocolError};
pub use rig::Rig;
pub use rng::Rng;
pub use routing::{CLUSTERDOWN, CROSSSLOT, TRYAGAIN};
pub use scenario::Scenario;
pub use script::ScriptKind;
pub use session::{Session, SessionState};
pub use value::Value;
pub use world::run;
