//! What a runtime must supply: connect (TCP, and optionally a Unix socket), sleep until an
//! instant, spawn. Nothing else.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A connected byte stream (a TCP socket, usually; a Unix socket, a TLS session, or whatever a
/// [`Connector`](crate::Connector) returns).
///
/// The runtimes' own read/write traits differ (tokio's `AsyncRead` is not `futures-io`'s), so
/// the driver asks for just these two calls; each adapter forwards them to its socket (the
/// adapter crates' `Stream` wrapper does so for any stream of their runtime).
pub trait Connection: Send + Unpin + 'static {
    /// Reads into `buf`; `Ok(0)` means the peer closed. Registers `cx` when not ready.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes some of `buf`, returning how much. Registers `cx` when not ready.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
}

/// An async runtime, as the driver needs it.
///
/// Implemented by `redlock-tokio`, `redlock-async-std` and `redlock-smol`; implement it yourself
/// to run on another executor.
pub trait Runtime: Clone + Send + Sync + Unpin + 'static {
    /// The socket type.
    type Conn: Connection;
    /// Opens a TCP connection to `host:port` (with `TCP_NODELAY`: lock traffic is small).
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<Self::Conn>>;
    /// Opens a connection to the Unix socket at `path`. The default refuses (`Unsupported`):
    /// a runtime without Unix sockets still serves TCP nodes.
    fn connect_unix(&self, path: PathBuf) -> BoxFuture<io::Result<Self::Conn>> {
        Box::pin(async move {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this runtime cannot connect to the Unix socket {}",
                    path.display()
                ),
            ))
        })
    }
    /// A future that resolves at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
    /// Runs `task` in the background until it completes.
    fn spawn(&self, task: BoxFuture<()>);
}
