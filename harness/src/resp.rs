//! A small blocking Redis client: one connection, one pipeline at a time, RESP2, with a node
//! URL's credentials and database. For inspection (`redlock status`, test assertions) and
//! readiness checks; the lock itself always goes through `redlock-core`.

use bytes::BytesMut;
use redlock_core::resp::{encode_command, Decoder, Protocol};
use redlock_core::NodeConfig;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use redlock_core::resp::Reply;

/// The largest reply this client buffers (one frame).
const REPLY_CAP: usize = 64 << 20;

/// One connection to one node.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    decoder: Decoder,
}

impl Conn {
    /// Connects to `addr` with `timeout` for connecting and for every later read and write.
    pub fn open_addr(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            decoder: Decoder::new(Protocol::Resp2, REPLY_CAP),
        })
    }

    /// Connects to `node` (trying each address its host resolves to) with `timeout` for
    /// connecting and for every later read and write, then logs in (`AUTH`) and selects the
    /// database as its URL says.
    pub fn open(node: &NodeConfig, timeout: Duration) -> io::Result<Conn> {
        let mut last = None;
        let mut conn = None;
        for addr in (node.host.as_str(), node.port).to_socket_addrs()? {
            match Conn::open_addr(addr, timeout) {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let mut conn = match conn {
            Some(c) => c,
            None => {
                return Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "no address for host")
                }))
            }
        };
        if let Some(password) = &node.password {
            let mut auth = vec!["AUTH".to_string()];
            auth.extend(node.username.clone());
            auth.push(password.clone());
            conn.expect_ok(&auth, "AUTH")?;
        }
        if node.db != 0 {
            conn.expect_ok(&["SELECT".to_string(), node.db.to_string()], "SELECT")?;
        }
        Ok(conn)
    }

    /// Connects to a `redis://` URL (see [`redlock_async::parse_node_url`]).
    pub fn open_url(url: &str, timeout: Duration) -> io::Result<Conn> {
        let node = redlock_async::parse_node_url(url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Conn::open(&node, timeout)
    }

    fn expect_ok(&mut self, args: &[String], what: &str) -> io::Result<()> {
        match self.call(args)? {
            Reply::Status(_) => Ok(()),
            Reply::Error(e) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{what} refused: {e}"),
            )),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} answered {other:?}"),
            )),
        }
    }

    /// Sends one command and returns its reply (an error reply is `Ok(Reply::Error)`).
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        let mut replies = self.pipeline(&[args])?;
        Ok(replies.pop().unwrap_or(Reply::Nil))
    }

    /// Sends every command in one write and returns their replies, in order (pushes are
    /// skipped).
    ///
    /// A timed-out read is an error of kind `WouldBlock` or `TimedOut` (see [`is_timeout`]); a
    /// peer that closes first gives `UnexpectedEof`; bytes that are not RESP give `InvalidData`.
    pub fn pipeline<A: AsRef<[u8]>, C: AsRef<[A]>>(
        &mut self,
        cmds: &[C],
    ) -> io::Result<Vec<Reply>> {
        let mut buf = BytesMut::new();
        for cmd in cmds {
            encode_command(&mut buf, cmd.as_ref());
        }
        self.stream.write_all(&buf)?;
        let mut replies = Vec::with_capacity(cmds.len());
        let mut chunk = [0u8; 16 * 1024];
        loop {
            while replies.len() < cmds.len() {
                match self.decoder.next_reply().map_err(invalid)? {
                    Some(Reply::Push(_)) => {}
                    Some(reply) => replies.push(reply),
                    None => break,
                }
            }
            if replies.len() == cmds.len() {
                return Ok(replies);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the node closed the connection before a complete reply",
                ));
            }
            let mut fed = Vec::new();
            self.decoder
                .feed(&chunk[..n], |r| fed.push(r))
                .map_err(invalid)?;
            for reply in fed {
                if !matches!(reply, Reply::Push(_)) && replies.len() < cmds.len() {
                    replies.push(reply);
                }
            }
        }
    }
}

/// Sends one command to `addr` over a fresh connection and reads its reply; `timeout` bounds
/// the connect, and each write and read (see [`Conn::pipeline`] for the errors).
pub fn request<A: AsRef<[u8]>>(
    addr: SocketAddr,
    args: &[A],
    timeout: Duration,
) -> io::Result<Reply> {
    Conn::open_addr(addr, timeout)?.call(args)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Whether `err` is what a read timeout looks like (`WouldBlock` on Unix, `TimedOut` elsewhere).
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Describes an I/O error the way an operator wants to read it (`connection refused`,
/// `timed out`, …).
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ if is_timeout(e) => "timed out".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}
