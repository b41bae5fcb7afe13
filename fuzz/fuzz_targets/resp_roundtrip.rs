//! RESP both ways.
//!
//! Input layout: byte 0 picks the protocol (bit 0: RESP3) and the decoder cap (bits 1-3);
//! byte 1 is the argument separator; bytes 2-3 seed the chunking; the rest is the payload.
//!
//! 1. `encode_command` of the payload split at the separator (empty arguments included), decoded
//!    by redis-protocol's RESP2 decoder, gives back exactly that array of bulk strings, using
//!    exactly the bytes written.
//! 2. `Decoder` fed the payload never panics, never buffers more than its cap, and yields the
//!    same replies (and the same verdict: fine, invalid, too large) whether the payload comes
//!    in one piece or in arbitrary chunks.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis_protocol::resp2::types::BytesFrame;
use redlock_core::resp::{encode_command, Decoder, Reply, StreamError};
use redlock_core::Protocol;

fn encode_roundtrip(args: &[&[u8]]) {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    buf.clear(); // a buffer with spare capacity, as the engine's output buffer has
    encode_command(&mut buf, args);
    let written = buf.len();
    let (frame, used, _) = redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
        .expect("encode_command wrote invalid RESP")
        .expect("encode_command wrote a partial frame");
    assert_eq!(used, written, "frame length differs from bytes written");
    assert!(buf.is_empty(), "bytes left over after the frame");
    let BytesFrame::Array(items) = frame else {
        panic!("not an array: {frame:?}");
    };
    assert_eq!(items.len(), args.len());
    for (item, arg) in items.iter().zip(args) {
        match item {
            BytesFrame::BulkString(b) => assert_eq!(&b[..], *arg),
            other => panic!("not a bulk string: {other:?}"),
        }
    }
}

/// A reply as text, normalised where redis-protocol is not deterministic: it keeps RESP3 maps
/// and sets in hash tables, so their order changes from one decode to the next (even of the
/// same bytes, and a set arrives as an `Array`), and when a map repeats a key, which value
/// survives changes too. So aggregates compare as sorted elements and maps by their keys only;
/// the check stays about where frames start and end.
fn norm(r: &Reply) -> String {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.join(", ")
    };
    match r {
        Reply::Array(v) => format!("Array[{}]", sorted(v.iter().map(norm).collect())),
        Reply::Push(v) => format!(
            "Push[{}]",
            v.iter().map(norm).collect::<Vec<_>>().join(", ")
        ),
        Reply::Map(kv) => format!(
            "Map{{{}}}",
            sorted(kv.iter().map(|(k, _)| norm(k)).collect())
        ),
        other => format!("{other:?}"),
    }
}

/// The replies and the verdict (None: fine; Some(false): invalid; Some(true): too large).
fn decode(
    protocol: Protocol,
    cap: usize,
    chunks: &mut dyn Iterator<Item = &[u8]>,
) -> (Vec<String>, Option<bool>) {
    let mut d = Decoder::new(protocol, cap);
    let limit = cap.max(64);
    let mut replies = Vec::new();
    for chunk in chunks {
        let res = d.feed(chunk, |r: Reply| replies.push(norm(&r)));
        assert!(
            d.buffered() <= limit,
            "buffered {} > cap {limit}",
            d.buffered()
        );
        match res {
            Ok(()) => {}
            Err(StreamError::TooLarge(c)) => {
                assert_eq!(c, limit);
                return (replies, Some(true));
            }
            Err(e) => {
                let _ = e.to_string();
                return (replies, Some(false));
            }
        }
    }
    // Nothing more arrives: whatever is left is an incomplete frame, and stays put.
    let before = d.buffered();
    match d.next_reply() {
        Ok(None) => assert_eq!(d.buffered(), before),
        Ok(Some(r)) => panic!("a reply appeared without new bytes: {r:?}"),
        Err(e) => panic!("an error appeared without new bytes: {e}"),
    }
    (replies, None)
}

struct Chunks<'a> {
    rest: &'a [u8],
    state: u32,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        // xorshift32: chunk sizes 1..=64 mostly, sometimes up to 4 KiB.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let n = if self.state & 0x100 != 0 {
            1 + (self.state >> 20) as usize % 4096
        } else {
            1 + (self.state >> 20) as usize % 64
        };
        let (a, b) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = b;
        Some(a)
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, sep, s0, s1, payload @ ..] = data else {
        return;
    };
    let args: Vec<&[u8]> = payload.split(|b| b == sep).collect();
    encode_roundtrip(&args);
    encode_roundtrip(&[] as &[&[u8]]);

    let protocol = if flags & 1 != 0 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let cap = [0, 64, 100, 1024, 4096, 65536, 1 << 20, usize::MAX][usize::from(flags >> 1 & 7)];
    // Whole, chunked and byte-by-byte input must decode alike (regression
    // long-length-line-chunking: an over-long length line used to be judged differently).
    let whole = decode(protocol, cap, &mut std::iter::once(payload));
    let state = u32::from_le_bytes([*s0, *s1, 0x5a, 0xa5]);
    let chunked = decode(
        protocol,
        cap,
        &mut Chunks {
            rest: payload,
            state,
        },
    );
    assert_eq!(whole, chunked, "chunking changed the decoded replies");
    let bytewise = decode(protocol, cap.min(1024), &mut payload.chunks(1).take(2048));
    let prefix = decode(
        protocol,
        cap.min(1024),
        &mut std::iter::once(&payload[..payload.len().min(2048)]),
    );
    assert_eq!(
        prefix, bytewise,
        "byte-at-a-time feeding changed the decoded replies"
    );
});
