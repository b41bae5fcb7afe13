//! RESP: commands out as arrays of bulk strings, replies in as [`Reply`] values.
//!
//! Decoding goes through `redis-protocol`, behind a small iterative framer that finds where a
//! frame ends and caps nesting depth: redis-protocol parses recursively, so a peer sending
//! `*1\r\n` a hundred thousand times would otherwise overflow the stack. The framer also means a
//! frame is parsed once, when it is complete, instead of on every partial read.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::BytesFrame as Frame3;
use std::fmt;

/// Which RESP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// RESP2, what every Redis speaks on a fresh connection (the default).
    #[default]
    Resp2,
    /// RESP3, negotiated with `HELLO 3` during the handshake (Redis 6 and later).
    Resp3,
}

/// The deepest nesting of aggregates a reply may have. Lock replies are at most two levels deep;
/// anything past this is a misbehaving peer.
pub const MAX_DEPTH: usize = 32;

/// One decoded reply, the same shape whichever RESP version carried it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// A simple string such as `OK`.
    Status(Bytes),
    /// An error reply (`-ERR ...`, or a RESP3 blob error), as text.
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string (also RESP3 verbatim strings and big numbers).
    Bulk(Bytes),
    /// A null (RESP2 null bulk string or array, RESP3 null).
    Nil,
    /// A RESP3 boolean.
    Bool(bool),
    /// A RESP3 double.
    Double(f64),
    /// An array (also RESP3 sets, whose order is not the wire order).
    Array(Vec<Reply>),
    /// A RESP3 map, as key/value pairs. redis-protocol stores maps in a hash table, so the order
    /// is not the wire order and duplicate keys collapse to one.
    Map(Vec<(Reply, Reply)>),
    /// A RESP3 push frame: out-of-band data, never the answer to a request.
    Push(Vec<Reply>),
}

/// The peer sent bytes that are not a valid RESP frame; the stream cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RESP: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Appends one command, encoded as a RESP array of bulk strings, to `buf`.
///
/// Every argument is sent as a bulk string, so binary data, spaces and newlines are safe.
///
/// ```
/// let mut buf = bytes::BytesMut::new();
/// redlock_core::resp::encode_command(&mut buf, &[&b"GET"[..], b"key"]);
/// assert_eq!(&buf[..], b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
/// ```
pub fn encode_command<A: AsRef<[u8]>>(buf: &mut BytesMut, args: &[A]) {
    let len: usize = args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>() + 16;
    buf.reserve(len);
    push_header(buf, b'*', args.len());
    for arg in args {
        let arg = arg.as_ref();
        push_header(buf, b'$', arg.len());
        buf.extend_from_slice(arg);
        buf.extend_from_slice(b"\r\n");
    }
}

fn push_header(buf: &mut BytesMut, kind: u8, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&[kind]);
    buf.extend_from_slice(&digits[i..]);
    buf.extend_from_slice(b"\r\n");
}

/// An incremental reply decoder with a cap on buffered bytes.
///
/// Feed bytes with [`Decoder::feed`], take replies with [`Decoder::next_reply`]. A frame that is
/// not complete stays buffered; a frame larger than the cap is an error rather than an
/// unbounded allocation.
#[derive(Debug)]
pub struct Decoder {
    protocol: Protocol,
    buf: BytesMut,
    cap: usize,
    framer: Framer,
}

/// What went wrong while decoding a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The bytes are not valid RESP.
    Invalid(DecodeError),
    /// One frame is larger than the decoder's cap (in bytes).
    TooLarge(usize),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Invalid(e) => e.fmt(f),
            StreamError::TooLarge(cap) => write!(f, "a reply exceeded the {cap}-byte input cap"),
        }
    }
}

impl std::error::Error for StreamError {}

impl Decoder {
    /// A decoder for `protocol` that refuses to buffer more than `cap` bytes of one frame.
    pub fn new(protocol: Protocol, cap: usize) -> Decoder {
        Decoder {
            protocol,
            buf: BytesMut::new(),
            cap: cap.max(64),
            framer: Framer::default(),
        }
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `bytes`, calling `on_reply` for every complete reply, in order.
    ///
    /// Returns an error (and stops) when the stream is invalid or a frame exceeds the cap;
    /// replies decoded before that point have already been passed to `on_reply`.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), StreamError> {
        loop {
            while let Some(reply) = self.next_reply()? {
                on_reply(reply);
            }
            if bytes.is_empty() {
                return Ok(());
            }
            let room = self.cap - self.buf.len();
            if room == 0 {
                return Err(StreamError::TooLarge(self.cap));
            }
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
    }

    /// Decodes the next complete reply from the buffer, if there is one.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, StreamError> {
        let Some(len) = self
            .framer
            .frame_len(&self.buf)
            .map_err(StreamError::Invalid)?
        else {
            return Ok(None);
        };
        let mut frame = self.buf.split_to(len);
        let invalid = |e: redis_protocol::error::RedisProtocolError| {
            StreamError::Invalid(DecodeError(e.to_string()))
        };
        let reply = match self.protocol {
            Protocol::Resp2 => redis_protocol::resp2::decode::decode_bytes_mut(&mut frame)
                .map_err(invalid)?
                .map(|(f, _, _)| from_resp2(f)),
            Protocol::Resp3 => {
                redis_protocol::resp3::decode::complete::decode_bytes_mut(&mut frame)
                    .map_err(invalid)?
                    .map(|(f, _, _)| from_resp3(f))
                    .transpose()
                    .map_err(StreamError::Invalid)?
            }
        };
        match reply {
            Some(r) => Ok(Some(r)),
            // The framer said complete but the parser disagrees: treat as corrupt.
            None => Err(StreamError::Invalid(DecodeError(
                "frame ended early".into(),
            ))),
        }
    }
}

fn from_resp2(f: Frame2) -> Reply {
    match f {
        Frame2::SimpleString(b) => Reply::Status(b),
        Frame2::Error(s) => Reply::Error(s.to_string()),
        Frame2::Integer(i) => Reply::Int(i),
        Frame2::BulkString(b) => Reply::Bulk(b),
        Frame2::Array(v) => Reply::Array(v.into_iter().map(from_resp2).collect()),
        Frame2::Null => Reply::Nil,
    }
}

fn from_resp3(f: Frame3) -> Result<Reply, DecodeError> {
    let all = |v: Vec<Frame3>| v.into_iter().map(from_resp3).collect::<Result<Vec<_>, _>>();
    Ok(match f {
        Frame3::BlobString { data, .. } | Frame3::BigNumber { data, .. } => Reply::Bulk(data),
        Frame3::VerbatimString { data, .. } => Reply::Bulk(data),
        Frame3::SimpleString { data, .. } => Reply::Status(data),
        Frame3::BlobError { data, .. } => Reply::Error(String::from_utf8_lossy(&data).into_owned()),
        Frame3::SimpleError { data, .. } => Reply::Error(data.to_string()),
        Frame3::Boolean { data, .. } => Reply::Bool(data),
        Frame3::Null => Reply::Nil,
        Frame3::Number { data, .. } => Reply::Int(data),
        Frame3::Double { data, .. } => Reply::Double(data),
        Frame3::Array { data, .. } => Reply::Array(all(data)?),
        Frame3::Set { data, .. } => Reply::Array(all(data.into_iter().collect())?),
        Frame3::Map { data, .. } => Reply::Map(
            data.into_iter()
                .map(|(k, v)| Ok((from_resp3(k)?, from_resp3(v)?)))
                .collect::<Result<Vec<_>, DecodeError>>()?,
        ),
        Frame3::Push { data, .. } => Reply::Push(all(data)?),
        // Client-side (HELLO) or streaming-only frames: a server reply never legitimately
        // decodes to these through the complete decoder.
        _ => return Err(DecodeError("unsupported RESP3 frame".into())),
    })
}

/// Finds where the first frame in the decoder's buffer ends, resuming where it stopped last time:
/// a frame that arrives in many small reads is scanned once in all, not once per read (which
/// would be quadratic up to the input cap for a long line or a large array).
///
/// Iterative, so nesting costs no stack; depth is capped at [`MAX_DEPTH`].
#[derive(Debug, Default)]
struct Framer {
    /// Where the first element not yet complete starts.
    pos: usize,
    /// Remaining elements to read at each open aggregate level.
    stack: Vec<u64>,
    /// How far the search for the CRLF ending the header at `pos` has looked.
    scanned: usize,
}

impl Framer {
    /// The length of the first complete frame in `buf`, or `None` when more bytes are needed.
    /// `buf` may only have grown since the last call, except when that call returned a length
    /// (the caller then takes that frame off the front and the framer starts over).
    fn frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        loop {
            let pos = self.pos;
            let Some(&kind) = buf.get(pos) else {
                return Ok(None);
            };
            let Some(line_end) = find_crlf(buf, (pos + 1).max(self.scanned)) else {
                // A header line longer than any legal one is garbage, not a partial frame.
                if buf.len() - pos > 64
                    && !matches!(kind, b'+' | b'-' | b',' | b'(' | b'#' | b'_' | b':')
                {
                    return Err(DecodeError("header line too long".into()));
                }
                // The last byte may be a CR whose LF has not arrived.
                self.scanned = buf.len().saturating_sub(1).max(pos + 1);
                return Ok(None);
            };
            // Until this element completes, its header is found again at once.
            self.scanned = line_end;
            let line = &buf[pos + 1..line_end];
            let mut next = line_end + 2;
            let mut children: u64 = 0;
            match kind {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
                b'$' | b'!' | b'=' => {
                    let n = parse_len(line)?;
                    if n >= 0 {
                        let n = usize::try_from(n)
                            .map_err(|_| DecodeError("length overflow".into()))?;
                        let end = next.checked_add(n).and_then(|e| e.checked_add(2));
                        let Some(end) = end else {
                            return Err(DecodeError("length overflow".into()));
                        };
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(DecodeError("bulk string not terminated by CRLF".into()));
                        }
                        next = end;
                    }
                }
                b'*' | b'~' | b'>' => {
                    let n = parse_len(line)?;
                    children = u64::try_from(n.max(0)).unwrap_or(0);
                }
                b'%' => {
                    let n = parse_len(line)?;
                    children = u64::try_from(n.max(0)).unwrap_or(0).saturating_mul(2);
                }
                b'|' => {
                    // An attribute map is followed by the value it annotates.
                    let n = parse_len(line)?;
                    children = u64::try_from(n.max(0))
                        .unwrap_or(0)
                        .saturating_mul(2)
                        .saturating_add(1);
                }
                other => return Err(DecodeError(format!("unknown type byte 0x{other:02x}"))),
            }
            self.pos = next;
            self.scanned = 0;
            if children > 0 {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(DecodeError(format!("nesting deeper than {MAX_DEPTH}")));
                }
                self.stack.push(children);
                continue;
            }
            // One element finished: pop every aggregate it completes.
            loop {
                match self.stack.last_mut() {
                    None => {
                        *self = Framer::default();
                        return Ok(Some(next));
                    }
                    Some(top) => {
                        *top -= 1;
                        if *top > 0 {
                            break;
                        }
                        self.stack.pop();
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// A length as Redis writes it: `-1`, or decimal digits without sign or leading zeros (at
/// most 18, so it fits an `i64` and a header line stays far below the partial-line limit that
/// `frame_len` applies; then whole and split input are judged alike).
fn parse_len(line: &[u8]) -> Result<i64, DecodeError> {
    let digits_ok = !line.is_empty()
        && line.len() <= 18
        && line.iter().all(u8::is_ascii_digit)
        && (line.len() == 1 || line[0] != b'0');
    if line == b"-1" {
        return Ok(-1);
    }
    if !digits_ok {
        return Err(DecodeError(format!(
            "bad length {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    // All digits, at most 18 of them: always fits.
    Ok(line.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(p: Protocol, bytes: &[u8]) -> Result<Vec<Reply>, StreamError> {
        let mut d = Decoder::new(p, 1 << 20);
        let mut out = Vec::new();
        d.feed(bytes, |r| out.push(r))?;
        Ok(out)
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut s = b"*1\r\n".repeat(200_000);
        s.extend_from_slice(b":1\r\n");
        let err = decode_all(Protocol::Resp2, &s).unwrap_err();
        assert!(matches!(err, StreamError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn pipelined_replies_decode_in_order() {
        let got = decode_all(
            Protocol::Resp2,
            b"+OK\r\n:1\r\n$-1\r\n*2\r\n:0\r\n$1\r\nx\r\n-ERR no\r\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Reply::Status(Bytes::from_static(b"OK")),
                Reply::Int(1),
                Reply::Nil,
                Reply::Array(vec![Reply::Int(0), Reply::Bulk(Bytes::from_static(b"x"))]),
                Reply::Error("ERR no".into()),
            ]
        );
    }

    #[test]
    fn resp3_types_normalise() {
        let got = decode_all(
            Protocol::Resp3,
            b">2\r\n+message\r\n:1\r\n%1\r\n+k\r\n:2\r\n_\r\n#t\r\n!5\r\nERR x\r\n",
        )
        .unwrap();
        assert!(matches!(got[0], Reply::Push(_)));
        assert!(matches!(got[1], Reply::Map(_)));
        assert_eq!(got[2], Reply::Nil);
        assert_eq!(got[3], Reply::Bool(true));
        assert_eq!(got[4], Reply::Error("ERR x".into()));
    }

    #[test]
    fn oversize_frame_is_cut_off() {
        let mut d = Decoder::new(Protocol::Resp2, 1024);
        let mut big = b"$1000000\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 5000));
        let err = d.feed(&big, |_| {}).unwrap_err();
        assert_eq!(err, StreamError::TooLarge(1024));
    }

    #[test]
    fn lengths_are_strict_whole_or_split() {
        // Leading zeros, signs and overlong lengths are refused both ways (fuzz regression
        // resp_roundtrip/long-length-line-chunking: whole it decoded, split it was refused).
        let mut long = b"*".to_vec();
        long.extend(std::iter::repeat_n(b'0', 70));
        long.extend_from_slice(b"\r\n");
        for bad in [
            &long[..],
            b"*00\r\n",
            b"$+3\r\nabc\r\n",
            b"*-0\r\n",
            b"$-2\r\n",
        ] {
            assert!(
                decode_all(Protocol::Resp2, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            let mut d = Decoder::new(Protocol::Resp2, 1 << 20);
            let split = bad
                .iter()
                .try_for_each(|b| d.feed(std::slice::from_ref(b), |_| {}));
            assert!(split.is_err(), "split {:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            decode_all(Protocol::Resp2, b"*0\r\n$-1\r\n").unwrap(),
            vec![Reply::Array(vec![]), Reply::Nil]
        );
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(decode_all(Protocol::Resp2, b"hello world\r\n").is_err());
        assert!(decode_all(Protocol::Resp2, b"$3\r\nabcd\r\n").is_err());
        assert!(decode_all(Protocol::Resp2, b"*-5\r\n").is_err());
    }
}
