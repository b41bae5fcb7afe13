//! # redlock-smol
//!
//! The Redlock distributed lock on smol. All the logic lives in `redlock-async` and
//! `redlock-core`; this crate supplies the [`Runtime`] for smol
//! (`smol::net`, `smol::Timer`, and tasks on smol's global executor).
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

use redlock_async::{BoxFuture, Connection};
use smol::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub use redlock_async::{
    parse_node_url, Attempt, Error, Failure, Lease, Lock, NodeId, NodeReport, Options, Outcome,
    Protocol, Released, Runtime, Scripts, UrlError,
};

/// The smol [`Runtime`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

/// A Redlock client on smol.
pub type Redlock = redlock_async::Redlock<Smol>;

/// A smol TCP stream, as the driver sees it.
#[derive(Debug)]
pub struct SmolConn(smol::net::TcpStream);

impl Connection for SmolConn {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
}

impl redlock_async::Runtime for Smol {
    type Conn = SmolConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<SmolConn>> {
        Box::pin(async move {
            let stream = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(SmolConn(stream))
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }

    fn spawn(&self, task: BoxFuture<()>) {
        smol::spawn(task).detach();
    }
}
