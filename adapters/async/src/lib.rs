//! # redlock-async
//!
//! The runtime-agnostic async Redlock client: one background driver task per client owns a
//! connection per node and runs the sans-IO [`redlock_core::Engine`]; [`Redlock`] is the API.
//! Generic over a small [`Runtime`] trait (connect, sleep-until, spawn), which
//! `redlock-tokio`, `redlock-async-std` and `redlock-smol` implement; use one of those.
//!
//! Nodes are reached over TCP, Unix sockets (`redis+unix:///path`), TLS (`rediss://`, with the
//! `tls` feature: rustls with the `ring` provider, no OpenSSL) or any stream a [`Connector`] of
//! your own opens; see [`Node`] and [`Tls`].
//!
//! With the `metrics` feature the client records acquire latency, acquisitions, refusals,
//! timeouts, contended waits, releases, extensions, lost leases and node errors through the
//! `metrics` facade: names, units and labels are listed in [`metrics`].
//!
//! ```no_run
//! # async fn demo<R: redlock_async::Runtime + Default>() -> Result<(), redlock_async::Error> {
//! use redlock_async::{Options, Redlock};
//! use std::time::Duration;
//!
//! let redlock = Redlock::<R>::connect(
//!     ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"],
//!     Options::default(),
//! ).await?;
//! let lock = redlock.acquire(["orders:42"], Duration::from_secs(10)).await?;
//! let lock = redlock.extend(&lock, Duration::from_secs(10)).await?;
//! redlock.release(&lock).await?;
//! let total = redlock.using(["a", "b"], Duration::from_secs(10), |lease| async move {
//!     assert!(!lease.is_lost());
//!     40 + 2
//! }).await?;
//! # Ok(()) }
//! ```

mod backoff;
mod batching;
mod client;
mod connector;
mod driver;
mod error;
mod guard;
mod hold;
mod keep_alive;
mod lease;
mod local_queue;
pub mod metrics;
mod node;
mod node_url;
mod options_ext;
mod overlap;
mod runtime;
mod setup;
mod spin;
#[cfg(test)]
mod testing;
#[cfg_attr(not(feature = "tls"), path = "tls_off.rs")]
mod tls;
mod tls_error;
mod tokens;
mod using;
mod waiters;

pub use client::Redlock;
pub use connector::{open_connection, Connector};
pub use error::Error;
pub use guard::Guard;
pub use hold::{Hold, HoldLimits};
pub use lease::Lease;
pub use node::{Address, Node, Tls};
pub use node_url::{parse_node_url, UrlError};
pub use options_ext::OptionsExt;
pub use runtime::{BoxFuture, Connection, DriverSpin, Runtime};
pub use tls_error::TlsError;

pub use redlock_core::{
    AcquireOptions, Attempt, Failure, Lock, NodeId, NodeReport, Options, Outcome, Protocol,
    Released, ReplicaAck, Retry, Scripts,
};
