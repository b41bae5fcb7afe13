//! # redlock-blocking
//!
//! The Redlock distributed lock with no async runtime to set up: the `redlock-async` client,
//! its driver running on one private background thread (a small smol executor that owns the
//! sockets and timers, and stops when the last client clone is dropped); each call blocks the
//! calling thread until its result arrives. Same names and errors as `redlock-tokio`, without
//! `.await`.
//!
//! A blocked call first waits actively, for up to [`Options::spin_before_park`] (100 µs by
//! default; zero turns it off), then parks its thread until the driver wakes it: a caller
//! waiting alone spins on its result, and one of several yields its thread between looks,
//! the latter only while the Redis servers on this machine leave the client a core
//! (`redlock_async::Redlock::leaves_a_core`). Waking a parked thread costs tens of µs; over a
//! network whose round trip is longer than the window, set it to zero.
//!
//! ```no_run
//! use redlock_blocking::{Options, Redlock};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), redlock_blocking::Error> {
//!     let redlock = Redlock::connect(
//!         ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"],
//!         Options::default(),
//!     )?;
//!     let lock = redlock.acquire(["orders:42"], Duration::from_secs(10))?;
//!     let lock = redlock.extend(&lock, Duration::from_secs(10))?;
//!     redlock.release(&lock)?;
//!
//!     let n = redlock.using(["orders:42"], Duration::from_secs(10), |lease| {
//!         // Check lease.is_lost() between steps of long work.
//!         assert!(!lease.is_lost());
//!         42
//!     })?;
//!     assert_eq!(n, 42);
//!     Ok(())
//! }
//! ```

mod background;
mod client;
mod guard;
mod hold;
mod lease;
mod wait;

pub use client::Redlock;
pub use guard::Guard;
pub use hold::Hold;
pub use lease::Lease;
/// Metric names, units and labels (recorded with the `metrics` feature).
pub use redlock_async::metrics;
pub use redlock_async::{
    parse_node_url, AcquireOptions, Address, Attempt, BoxFuture, Connection, Connector, Error,
    Failure, HoldLimits, Lock, Node, NodeId, NodeReport, Options, OptionsExt, Outcome, Protocol,
    Released, ReplicaAck, Retry, Scripts, Tls, TlsError, UrlError,
};
/// Any smol (futures-io) stream as a [`Connection`], for a [`Connector`] of your own (the
/// connector's futures run on the client's background thread, under smol's reactor).
pub use redlock_smol::Stream;
