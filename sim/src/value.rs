//! Replies as values, and their RESP2 / RESP3 encoding.

use bytes::{Bytes, BytesMut};
use redlock_core::Protocol;

/// One reply, before encoding. [`Value::encode`] writes it as RESP2 or RESP3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A simple string (`+OK`).
    Simple(String),
    /// An error reply (`-ERR ...`): the text after the `-`.
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// A verbatim string (RESP3 `=`, with a three-letter format such as `txt`); a bulk string in
    /// RESP2.
    Verbatim(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// An array.
    Array(Vec<Value>),
    /// A map (RESP3 `%`); a flat array of alternating keys and values in RESP2.
    Map(Vec<(Value, Value)>),
    /// A boolean (RESP3 `#`); `:1` or a null in RESP2, as Redis converts Lua booleans.
    Bool(bool),
    /// An out-of-band push (RESP3 `>`, e.g. a client-tracking invalidation); an array in RESP2.
    Push(Vec<Value>),
}

impl Value {
    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    /// An error reply with `text` (e.g. `"ERR syntax error"`).
    pub fn error(text: impl Into<String>) -> Value {
        Value::Error(text.into())
    }

    /// A bulk string.
    pub fn bulk(bytes: impl AsRef<[u8]>) -> Value {
        Value::Bulk(Bytes::copy_from_slice(bytes.as_ref()))
    }

    /// Appends this value, encoded in `protocol`, to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Value::Simple(s) => line(out, b'+', s.as_bytes()),
            Value::Error(e) => line(out, b'-', e.as_bytes()),
            Value::Int(i) => line(out, b':', i.to_string().as_bytes()),
            Value::Bulk(b) => blob(out, b'$', b),
            Value::Verbatim(b) if resp3 => {
                let mut v = Vec::with_capacity(b.len() + 4);
                v.extend_from_slice(b"txt:");
                v.extend_from_slice(b);
                blob(out, b'=', &v);
            }
            Value::Verbatim(b) => blob(out, b'$', b),
            Value::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            Value::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for v in items {
                    v.encode(protocol, out);
                }
            }
            Value::Push(items) => {
                let kind = if resp3 { b'>' } else { b'*' };
                line(out, kind, items.len().to_string().as_bytes());
                for v in items {
                    v.encode(protocol, out);
                }
            }
            Value::Map(pairs) if resp3 => {
                line(out, b'%', pairs.len().to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Value::Map(pairs) => {
                line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Value::Bool(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Value::Bool(true) => out.extend_from_slice(b":1\r\n"),
            Value::Bool(false) => out.extend_from_slice(b"$-1\r\n"),
        }
    }

    /// This value encoded in `protocol`.
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(protocol, &mut out);
        out.freeze()
    }
}

fn line(out: &mut BytesMut, kind: u8, body: &[u8]) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn blob(out: &mut BytesMut, kind: u8, body: &[u8]) {
    line(out, kind, body.len().to_string().as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}
