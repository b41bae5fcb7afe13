//! # redlock-tokio
//!
//! The Redlock distributed lock on tokio. All the logic lives in `redlock-async` and
//! `redlock-core`; this crate supplies the [`Runtime`] for tokio.
//! Call it from inside a tokio runtime.
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

use redlock_async::{BoxFuture, Connection};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use redlock_async::{
    parse_node_url, Attempt, Error, Failure, Lease, Lock, NodeId, NodeReport, Options, Outcome,
    Protocol, Released, Runtime, Scripts, UrlError,
};

/// The tokio [`Runtime`]: `tokio::net::TcpStream`, `tokio::time`,
/// `tokio::spawn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// A Redlock client on tokio.
pub type Redlock = redlock_async::Redlock<Tokio>;

/// A tokio TCP stream, as the driver sees it.
#[derive(Debug)]
pub struct TokioConn(tokio::net::TcpStream);

impl Connection for TokioConn {
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

impl redlock_async::Runtime for Tokio {
    type Conn = TokioConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<TokioConn>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(TokioConn(stream))
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, task: BoxFuture<()>) {
        tokio::spawn(task);
    }
}
