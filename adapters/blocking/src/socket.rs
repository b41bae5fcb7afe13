//! The socket the driver reads and writes: a non-blocking `TcpStream` on smol's reactor that
//! reads only once the reactor has reported it readable.
//!
//! The driver reads every node on every pass. `Async::poll_read` tries the `read` syscall
//! first and asks the reactor only when it would block, so each pass would cost a failed
//! syscall per idle node; here an idle node costs a look at the reactor's flags instead.

use redlock_async::Connection;
use smol::io::AsyncWrite;
use smol::Async;
use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A connected node socket (with `TCP_NODELAY`).
#[derive(Debug)]
pub(crate) struct Socket {
    io: Async<TcpStream>,
    /// The reactor reported data (or a close) and no read has drained it yet.
    readable: bool,
}

impl Socket {
    /// Connects to `host:port`, trying each address it resolves to (resolving off the thread).
    pub(crate) async fn connect(host: String, port: u16) -> io::Result<Socket> {
        let mut last = None;
        for addr in smol::net::resolve((host.as_str(), port)).await? {
            match Async::<TcpStream>::connect(addr).await {
                Ok(io) => {
                    io.get_ref().set_nodelay(true)?;
                    return Ok(Socket { io, readable: true });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(ErrorKind::NotFound, format!("no address for {host}"))
        }))
    }
}

impl Connection for Socket {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            if !self.readable {
                ready!(self.io.poll_readable(cx))?;
                self.readable = true;
            }
            match self.io.get_ref().read(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Ok(n) => {
                    // A read that did not fill the buffer took all there was. The reactor's
                    // readiness is level-triggered: anything that came since is reported at once.
                    if n < buf.len() {
                        self.readable = false;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
}
