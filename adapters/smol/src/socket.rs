//! The socket the driver reads and writes on smol's reactor ([`SmolConn`]: a non-blocking
//! `TcpStream` or `UnixStream` that reads only once the reactor has reported it readable), and
//! [`Stream`], which makes any smol stream a [`Connection`] for a custom connector. The
//! blocking adapter runs the driver on smol too, with this same socket.
//!
//! The driver reads every node on every pass. `Async::poll_read` tries the `read` syscall
//! first and asks the reactor only when it would block, so each pass would cost a failed
//! syscall per idle node (and, once a reply is in, another failed one and a re-registration
//! after it); here an idle node costs a look at the reactor's flags instead, and a read that
//! did not fill the buffer is known to have taken everything.

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
/// [`Connector`](redlock_async::Connector) of your own: `Box::new(Stream(stream))`. Reads
/// and writes go straight to the stream's own `poll_read` and `poll_write`.
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

/// A node socket on smol's reactor (TCP with `TCP_NODELAY`, or Unix): the connection the
/// [`Smol`](crate::Smol) runtime opens for a node URL, and one to return from a
/// [`Connector`](redlock_async::Connector) of your own.
///
/// ```no_run
/// use redlock_smol::{Connection, SmolConn};
/// # smol::block_on(async {
/// let conn: Box<dyn Connection> = Box::new(SmolConn::connect("127.0.0.1".into(), 6379).await?);
/// # std::io::Result::Ok(()) });
/// ```
#[derive(Debug)]
pub struct SmolConn {
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

impl SmolConn {
    /// Connects to `host:port`, trying each address it resolves to in turn (resolving on
    /// smol's blocking pool), and sets `TCP_NODELAY`. Fails with the last address's error, or
    /// `NotFound` when the name resolves to none.
    pub async fn connect(host: String, port: u16) -> io::Result<SmolConn> {
        let mut last = None;
        for addr in smol::net::resolve((host.as_str(), port)).await? {
            match Async::<TcpStream>::connect(addr).await {
                Ok(io) => {
                    io.get_ref().set_nodelay(true)?;
                    return Ok(SmolConn {
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
    pub async fn connect_unix(path: std::path::PathBuf) -> io::Result<SmolConn> {
        Ok(SmolConn {
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

impl Connection for SmolConn {
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::task::Waker;

    fn pair() -> (SmolConn, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("a socket pair");
        let conn = SmolConn {
            io: Io::Unix(Async::new(ours).expect("on the reactor")),
            readable: true,
        };
        (conn, theirs)
    }

    fn poll_read(conn: &mut SmolConn, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        conn.poll_read(&mut Context::from_waker(Waker::noop()), buf)
    }

    /// Reads once the reactor reports the socket (runs the reactor until then).
    fn read_reported(conn: &mut SmolConn, buf: &mut [u8]) -> io::Result<usize> {
        smol::block_on(std::future::poll_fn(|cx| conn.poll_read(cx, buf)))
    }

    #[test]
    fn a_short_read_took_everything_and_the_next_waits_for_the_reactor() {
        let (mut conn, mut node) = pair();
        let mut buf = [0u8; 16];
        node.write_all(b"+OK\r\n").unwrap();
        assert!(matches!(poll_read(&mut conn, &mut buf), Poll::Ready(Ok(5))));
        // More bytes are in the socket now (a socket pair delivers at once), but the read
        // before did not fill the buffer: no read is tried until the reactor reports them.
        node.write_all(b":1\r\n").unwrap();
        assert!(poll_read(&mut conn, &mut buf).is_pending());
        assert_eq!(read_reported(&mut conn, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b":1\r\n");
    }

    #[test]
    fn a_full_read_reads_again_at_once() {
        let (mut conn, mut node) = pair();
        let mut buf = [0u8; 4];
        node.write_all(b"+OK\r\n:1\r\n").unwrap();
        assert!(matches!(poll_read(&mut conn, &mut buf), Poll::Ready(Ok(4))));
        assert!(matches!(poll_read(&mut conn, &mut buf), Poll::Ready(Ok(4))));
        assert!(matches!(poll_read(&mut conn, &mut buf), Poll::Ready(Ok(1))));
        assert!(poll_read(&mut conn, &mut buf).is_pending());
    }

    #[test]
    fn a_closed_peer_reads_as_zero() {
        let (mut conn, node) = pair();
        drop(node);
        let mut buf = [0u8; 4];
        assert_eq!(read_reported(&mut conn, &mut buf).unwrap(), 0);
    }
}
