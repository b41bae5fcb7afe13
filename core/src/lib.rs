//! # redlock-core
//!
//! The Redlock distributed lock as a sans-IO state machine. The [`Engine`] never opens a socket,
//! reads a clock or draws entropy: feed it bytes ([`Engine::handle_input`]), instants (`now`
//! arguments) and lock tokens, and it hands back bytes to write ([`Engine::poll_transmit`]),
//! the next instant it wants to be woken at ([`Engine::poll_timeout`]) and results
//! ([`Engine::poll_event`]).
//!
//! Most users want one of the runtime adapters (the crates under `adapters/` in this
//! repository), which run this engine over real sockets. Use the core directly to embed
//! the lock protocol in your own transport, or to test quorum logic deterministically.
//! `examples/std_net.rs` drives it over the standard library's blocking sockets.
//!
//! The engine's connections are links ([`LinkId`]): each node's own, plus those it asks the
//! adapter to open with [`Event::Open`], for a RESP2 node's release subscriptions or a node that
//! is a whole Redis Cluster ([`NodeConfig::as_cluster`]: a link per shard primary, each lock
//! request split by hash slot, [`key_slot`]).
//!
//! Errors come in two kinds: caller misuse ([`Error`], returned at once) and what the nodes did
//! ([`OpError`], inside an operation's completion [`Event`], with every attempt's per-node
//! [`Outcome`]).

mod acquire_options;
mod cluster;
mod config;
mod conn;
mod endpoint;
mod engine;
mod error;
mod event;
mod handshake;
mod ids;
mod key;
mod limits;
mod link;
mod lock;
mod op;
mod redirect;
mod request;
pub mod resp;
mod rng;
mod script;
mod sha1;
mod slot;
mod slot_map;
mod token;
mod voter;

pub use acquire_options::{AcquireOptions, Retry};
pub use config::{Config, NodeConfig, Options, ReplicaAck};
pub use endpoint::Endpoint;
pub use engine::Engine;
pub use error::{Attempt, ConnError, Error, Failure, NodeReport, OpError, Outcome};
pub use event::{Event, Released};
pub use ids::{LinkId, NodeId, OpId};
pub use key::{fence_key, release_channel};
pub use limits::{MAX_DURATION, MIN_TOKEN_BYTES};
pub use lock::Lock;
pub use redirect::{Redirect, RedirectKind};
pub use resp::Protocol;
pub use script::{
    script_sha, ScriptKind, Scripts, ACQUIRE, EXTEND, FENCE, FENCED_ACQUIRE, MAX_FENCING_TOKEN,
    RELEASE,
};
pub use slot::key_slot;
pub use token::Token;
