//! # redlock-tokio
//!
//! The Redlock distributed lock on tokio. All the logic lives in `redlock-async` and
//! `redlock-core`; this crate supplies the [`Runtime`] for tokio.
//! Call it from inside a tokio runtime.
//!
//! Nodes: `redis://`, `redis+unix:///path`, `rediss://` (TLS: the `tls` feature), field by field
//! with [`Node`] ([`Redlock::connect_nodes`]), or over streams of your own ([`Connector`],
//! [`Redlock::connect_via`]; see `examples/custom_connector.rs`).
//!
//! ```no_run
//! use redlock_tokio::{Options, Redlock};
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), redlock_tokio::Error> {
//!     let redlock = Redlock::connect(
//!         ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"],
//!         Options::default(),
//!     ).await?;
//!     let lock = redlock.acquire(["orders:42"], Duration::from_secs(10)).await?;
//!     // ... only one holder at a time gets here ...
//!     redlock.release(&lock).await?;
//!
//!     // Or hold it for a routine, extended automatically, released afterwards:
//!     redlock.using(["orders:42"], Duration::from_secs(10), |lease| async move {
//!         tokio::select! {
//!             _ = lease.lost() => { /* stop: the lock can no longer be relied on */ }
//!             _ = tokio::time::sleep(Duration::from_secs(30)) => { /* work done */ }
//!         }
//!     }).await?;
//!     Ok(())
//! }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Metric names, units and labels (recorded with the `metrics` feature).
pub use redlock_async::metrics;
pub use redlock_async::{
    open_connection, parse_node_url, AcquireOptions, Address, Attempt, BoxFuture, Connection,
    Connector, DriverSpin, Error, Failure, HoldLimits, Lease, Lock, Node, NodeId, NodeReport,
    Options, OptionsExt, Outcome, Protocol, Released, ReplicaAck, Retry, Runtime, Scripts, Tls,
    TlsError, UrlError,
};

/// The tokio [`Runtime`]: `tokio::net::TcpStream` (and `UnixStream`), `tokio::time`,
/// `tokio::spawn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// A Redlock client on tokio.
pub type Redlock = redlock_async::Redlock<Tokio>;

/// A held lock released when dropped ([`Redlock::guard`](redlock_async::Redlock::guard)).
pub type Guard = redlock_async::Guard<Tokio>;

/// A lock kept alive in the background until released or dropped
/// ([`Redlock::hold`](redlock_async::Redlock::hold)).
pub type Hold = redlock_async::Hold<Tokio>;

/// Any tokio stream as a [`Connection`], for a [`Connector`] of your own:
/// `Box::new(Stream(tcp_stream))`.
#[derive(Debug)]
pub struct Stream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
}

/// A tokio TCP or Unix stream, as the driver sees it.
#[derive(Debug)]
pub struct TokioConn(Socket);

#[derive(Debug)]
enum Socket {
    Tcp(Stream<tokio::net::TcpStream>),
    #[cfg(unix)]
    Unix(Stream<tokio::net::UnixStream>),
}

impl Connection for TokioConn {
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

impl redlock_async::Runtime for Tokio {
    type Conn = TokioConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<TokioConn>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(TokioConn(Socket::Tcp(Stream(stream))))
        })
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: std::path::PathBuf) -> BoxFuture<io::Result<TokioConn>> {
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok(TokioConn(Socket::Unix(Stream(stream))))
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, task: BoxFuture<()>) {
        tokio::spawn(task);
    }

    /// With company too: it raised uncontended operations and contended acquisitions by a
    /// fifth to a third (see [`DriverSpin::Busy`]).
    fn driver_spin(&self) -> DriverSpin {
        DriverSpin::Busy
    }

    fn yield_to_io(&self, cx: &mut Context<'_>) {
        // tokio's own yield defers the wake-up until the worker has run what is ready and
        // polled its sockets (without blocking). A plain `wake_by_ref` from inside the task's
        // poll would queue it at once, polling the sockets only every few dozen tasks, and
        // wake a parked worker to steal it.
        let mut y = std::pin::pin!(tokio::task::yield_now());
        let _ = y.as_mut().poll(cx);
    }
}
