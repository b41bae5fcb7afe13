//! RESP parsing of requests: commands as clients send them (arrays of bulk strings) or as
//! `redis-cli` and telnet do (inline), with Redis's limits and protocol errors.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// The most elements a request array may have before it is a protocol error (as Redis).
const MAX_MULTIBULK: i64 = 1024 * 1024;

/// The largest bulk argument the parser accepts (Redis's default `proto-max-bulk-len`).
const MAX_BULK: i64 = 512 * 1024 * 1024;

/// The longest inline command or header line before it is a protocol error (as Redis).
const MAX_INLINE: usize = 64 * 1024;

/// Request bytes that are not a valid command: Redis replies `-ERR Protocol error: …` and closes
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Takes one complete command off the front of `buf`.
///
/// Returns `Ok(None)` (leaving `buf` untouched) while the command is incomplete. Accepts RESP
/// arrays of bulk strings, as clients send, and inline commands (`PING\r\n`), as `redis-cli`
/// and telnet do. An empty array or empty inline line is skipped, as Redis does.
///
/// ```
/// let mut buf = bytes::BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI"[..]);
/// let cmd = redlock_sim::parse_command(&mut buf).unwrap().unwrap();
/// assert_eq!(cmd, vec![bytes::Bytes::from_static(b"GET"), bytes::Bytes::from_static(b"k")]);
/// assert_eq!(redlock_sim::parse_command(&mut buf).unwrap(), None);
/// ```
pub fn parse_command(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let parsed = if first == b'*' {
            parse_multibulk(buf)?
        } else {
            parse_inline(buf)?
        };
        match parsed {
            None => return Ok(None),
            Some((used, args)) => {
                buf.advance(used);
                if !args.is_empty() {
                    return Ok(Some(args));
                }
            }
        }
    }
}

/// Every complete command in `bytes`, in order (a trailing incomplete command is ignored).
///
/// Handy for looking at what an engine transmitted.
pub fn parse_commands(bytes: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(cmd) = parse_command(&mut buf)? {
        out.push(cmd);
    }
    Ok(out)
}

fn find_line(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

pub(crate) fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// `Some((bytes consumed, args))` for a complete array.
fn parse_multibulk(buf: &[u8]) -> Result<Option<(usize, Vec<Bytes>)>, ProtocolError> {
    let Some(end) = find_line(buf, 1) else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError("too big mbulk count string".into()));
        }
        return Ok(None);
    };
    let n = parse_int(&buf[1..end])
        .filter(|n| *n <= MAX_MULTIBULK)
        .ok_or_else(|| ProtocolError("invalid multibulk length".into()))?;
    let mut pos = end + 2;
    let mut args = Vec::with_capacity(usize::try_from(n.clamp(0, 1024)).unwrap_or(0));
    for _ in 0..n.max(0) {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        if kind != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                char::from(kind)
            )));
        }
        let Some(end) = find_line(buf, pos + 1) else {
            if buf.len() - pos > MAX_INLINE {
                return Err(ProtocolError("too big bulk count string".into()));
            }
            return Ok(None);
        };
        let len = parse_int(&buf[pos + 1..end])
            .filter(|n| (0..=MAX_BULK).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ProtocolError("invalid bulk length".into()))?;
        let start = end + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            // Redis does not check the terminator; it would desync. Treat it as an error.
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        args.push(Bytes::copy_from_slice(&buf[start..start + len]));
        pos = start + len + 2;
    }
    Ok(Some((pos, args)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<(usize, Vec<Bytes>)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|b| *b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    if line.contains(&b'"') || line.contains(&b'\'') {
        return Err(ProtocolError(
            "quoted inline arguments are not modelled".into(),
        ));
    }
    let args = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|a| !a.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    Ok(Some((nl + 1, args)))
}

/// An integer argument, as Redis parses one (`None` when it is not a decimal `i64`).
pub(crate) fn int_arg(b: &Bytes) -> Option<i64> {
    parse_int(b)
}
