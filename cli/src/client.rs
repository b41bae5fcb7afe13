//! A tiny blocking Redis client for inspection (`redlock status`, readiness checks, tests):
//! one connection, one pipeline at a time, RESP2, with the node URL's credentials and database.

use bytes::BytesMut;
use redlock_core::resp::{encode_command, Decoder, Protocol};
use redlock_core::NodeConfig;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use redlock_core::resp::Reply;

/// The largest reply this client buffers.
const REPLY_CAP: usize = 16 << 20;

/// One connection to one node.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    decoder: Decoder,
}

impl Conn {
    /// Connects to `node` with `timeout` for connecting and for every later read and write,
    /// then logs in (`AUTH`) and selects the database as its URL says.
    pub fn open(node: &NodeConfig, timeout: Duration) -> io::Result<Conn> {
        let mut last = None;
        let mut stream = None;
        for addr in (node.host.as_str(), node.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => {
                return Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "no address for host")
                }))
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = Conn {
            stream,
            decoder: Decoder::new(Protocol::Resp2, REPLY_CAP),
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

    /// Sends every command in one write and returns their replies, in order.
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
        while replies.len() < cmds.len() {
            while let Some(reply) = self.decoder.next_reply().map_err(invalid)? {
                if !matches!(reply, Reply::Push(_)) {
                    replies.push(reply);
                }
                if replies.len() == cmds.len() {
                    return Ok(replies);
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the node closed the connection",
                ));
            }
            self.decoder
                .feed(&chunk[..n], |r| replies.push(r))
                .map_err(invalid)?;
            replies.retain(|r| !matches!(r, Reply::Push(_)));
        }
        Ok(replies)
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Describes an I/O error the way an operator wants to read it (`connection refused`,
/// `timed out`, …).
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}
