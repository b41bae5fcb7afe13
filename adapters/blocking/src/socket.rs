//! The socket the driver reads and writes: a non-blocking `TcpStream` (or `UnixStream`) on
//! smol's reactor that reads only once the reactor has reported it readable; and [`Stream`],
//! which makes any smol stream a [`Connection`] for a custom connector.
//!
//! The driver reads every node on every pass. `Async::poll_read` tries the `read` syscall
//! first and asks the reactor only when it would block, so each pass would cost a failed
//! syscall per idle node; here an idle node costs a look at the reactor's flags instead.

use redlock_async::Connection;
use smol::io::{AsyncRead, AsyncWrite};
use smol::Async;
use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Any smol (futures-io) stream as a [`Connection`], for a
/// [`Connector`](redlock_async::Connector) of your own: `Box::new(Stream(stream))`. The
/// connector's futures run on the client's background thread, under smol's reactor.
#[derive(Debug)]
pub struct Stream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
}

/// A connected node socket (TCP with `TCP_NODELAY`, or Unix).
#[derive(Debug)]
pub(crate) struct Socket {
    io: Io,
    /// The reactor reported data (or a close) and no read has drained it yet.
    readable: bool,
}

#[derive(Debug)]
enum Io {
    Tcp(Async<TcpStream>),
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

impl Socket {
    /// Connects to `host:port`, trying each address it resolves to (resolving off the thread).
    pub(crate) async fn connect(host: String, port: u16) -> io::Result<Socket> {
        let mut last = None;
        for addr in smol::net::resolve((host.as_str(), port)).await? {
            match Async::<TcpStream>::connect(addr).await {
                Ok(io) => {
                    io.get_ref().set_nodelay(true)?;
                    return Ok(Socket {
                        io: Io::Tcp(io),
                        readable: true,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(ErrorKind::NotFound, format!("no address for {host}"))
        }))
    }

    /// Connects to the Unix socket at `path`.
    #[cfg(unix)]
    pub(crate) async fn connect_unix(path: std::path::PathBuf) -> io::Result<Socket> {
        Ok(Socket {
            io: Io::Unix(Async::<UnixStream>::connect(path).await?),
            readable: true,
        })
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            Io::Tcp(io) => io.poll_readable(cx),
            #[cfg(unix)]
            Io::Unix(io) => io.poll_readable(cx),
        }
    }

    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.io {
            Io::Tcp(io) => io.get_ref().read(buf),
            #[cfg(unix)]
            Io::Unix(io) => io.get_ref().read(buf),
        }
    }
}

impl Connection for Socket {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            if !self.readable {
                ready!(self.poll_readable(cx))?;
                self.readable = true;
            }
            match self.read_now(buf) {
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
        match &mut self.io {
            Io::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            #[cfg(unix)]
            Io::Unix(io) => Pin::new(io).poll_write(cx, buf),
        }
    }
}
