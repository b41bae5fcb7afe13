//! # redlock-async-std
//!
//! The Redlock distributed lock on async-std. All the logic lives in `redlock-async` and
//! `redlock-core`; this crate supplies the [`Runtime`] for async-std.
//!
//! **async-std is discontinued upstream** (its maintainers recommend smol). This adapter
//! exists for code bases that still run on it; new code should use `redlock-smol`, which has
//! the same API.
//!
//! ```no_run
//! use redlock_async_std::{Options, Redlock};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), redlock_async_std::Error> {
//!     async_std::task::block_on(async {
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

use async_std::io::{Read, Write};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Metric names, units and labels (recorded with the `metrics` feature).
pub use redlock_async::metrics;
pub use redlock_async::{
    open_connection, parse_node_url, AcquireOptions, Address, Attempt, BoxFuture, Connection,
    Connector, DriverSpin, Error, Failure, HoldLimits, Lease, Lock, Node, NodeId, NodeReport,
    Options, OptionsExt, Outcome, Protocol, Released, ReplicaAck, Retry, Runtime, Scripts, Tls,
    TlsError, UrlError,
};

/// The async-std [`Runtime`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

/// A Redlock client on async-std.
pub type Redlock = redlock_async::Redlock<AsyncStd>;

/// A held lock released when dropped ([`Redlock::guard`](redlock_async::Redlock::guard)).
pub type Guard = redlock_async::Guard<AsyncStd>;

/// A lock kept alive in the background until released or dropped
/// ([`Redlock::hold`](redlock_async::Redlock::hold)).
pub type Hold = redlock_async::Hold<AsyncStd>;

/// Any async-std (futures-io) stream as a [`Connection`], for a [`Connector`] of your own:
/// `Box::new(Stream(tcp_stream))`.
#[derive(Debug)]
pub struct Stream<S>(pub S);

impl<S: Read + Write + Send + Unpin + 'static> Connection for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
}

/// A async-std TCP or Unix stream, as the driver sees it.
#[derive(Debug)]
pub struct AsyncStdConn(Socket);

#[derive(Debug)]
enum Socket {
    Tcp(Stream<async_std::net::TcpStream>),
    #[cfg(unix)]
    Unix(Stream<async_std::os::unix::net::UnixStream>),
}

impl Connection for AsyncStdConn {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Socket::Tcp(s) => s.poll_read(cx, buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Socket::Tcp(s) => s.poll_write(cx, buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.poll_write(cx, buf),
        }
    }
}

impl redlock_async::Runtime for AsyncStd {
    type Conn = AsyncStdConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<AsyncStdConn>> {
        Box::pin(async move {
            let stream = async_std::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(AsyncStdConn(Socket::Tcp(Stream(stream))))
        })
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: std::path::PathBuf) -> BoxFuture<io::Result<AsyncStdConn>> {
        Box::pin(async move {
            let stream = async_std::os::unix::net::UnixStream::connect(path).await?;
            Ok(AsyncStdConn(Socket::Unix(Stream(stream))))
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async_std::task::sleep(
            deadline.saturating_duration_since(Instant::now()),
        ))
    }

    fn spawn(&self, task: BoxFuture<()>) {
        // Dropping the JoinHandle detaches the task.
        drop(async_std::task::spawn(task));
    }

    /// With company too: it raised contended acquisitions by about a third (see
    /// [`DriverSpin::Busy`]).
    fn driver_spin(&self) -> DriverSpin {
        DriverSpin::Busy
    }
}
