//! # redlock-smol
//!
//! The Redlock distributed lock on smol. All the logic lives in `redlock-async` and
//! `redlock-core`; this crate supplies the [`Runtime`] for smol
//! (sockets on smol's reactor, `smol::Timer`, and tasks on smol's global executor).
//!
//! ```no_run
//! use redlock_smol::{Options, Redlock};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), redlock_smol::Error> {
//!     smol::block_on(async {
//!         let redlock = Redlock::connect(
//!             ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"],
//!             Options::default(),
//!         ).await?;
//!         let lock = redlock.acquire(["orders:42"], Duration::from_secs(10)).await?;
//!         redlock.release(&lock).await?;
//!         Ok(())
//!     })
//! }
//! ```

use std::io;
use std::time::Instant;

mod socket;
pub use socket::{SmolConn, Stream};

/// Metric names, units and labels (recorded with the `metrics` feature).
pub use redlock_async::metrics;
pub use redlock_async::{
    open_connection, parse_node_url, AcquireOptions, Address, Attempt, BoxFuture, Connection,
    Connector, DriverSpin, Error, Failure, HoldLimits, Lease, Lock, Node, NodeId, NodeReport,
    Options, OptionsExt, Outcome, Protocol, Released, ReplicaAck, Retry, Runtime, Scripts, Tls,
    TlsError, UrlError,
};

/// The smol [`Runtime`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

/// A Redlock client on smol.
pub type Redlock = redlock_async::Redlock<Smol>;

/// A held lock released when dropped ([`Redlock::guard`](redlock_async::Redlock::guard)).
pub type Guard = redlock_async::Guard<Smol>;

/// A lock kept alive in the background until released or dropped
/// ([`Redlock::hold`](redlock_async::Redlock::hold)).
pub type Hold = redlock_async::Hold<Smol>;

impl redlock_async::Runtime for Smol {
    type Conn = SmolConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<SmolConn>> {
        Box::pin(SmolConn::connect(host, port))
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: std::path::PathBuf) -> BoxFuture<io::Result<SmolConn>> {
        Box::pin(SmolConn::connect_unix(path))
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }

    /// Only for a lone operation (see [`DriverSpin::Alone`]), the default, said here so the
    /// choice is visible where the runtime is.
    fn driver_spin(&self) -> DriverSpin {
        DriverSpin::Alone
    }

    fn spawn(&self, task: BoxFuture<()>) {
        smol::spawn(task).detach();
    }
}
