//! The reply decoder fed in small pieces: same replies as fed whole, and a frame that arrives a
//! byte at a time is scanned once, not once per byte. (A framer that starts over on every read
//! takes minutes on these inputs instead of well under a second: the work grows with the square
//! of the frame's length.)

use redlock_core::resp::{Decoder, Protocol, Reply};

fn fed_in_pieces(bytes: &[u8], piece: usize) -> Vec<Reply> {
    let mut d = Decoder::new(Protocol::Resp2, 4 << 20);
    let mut out = Vec::new();
    for chunk in bytes.chunks(piece) {
        d.feed(chunk, |r| out.push(r)).expect("valid RESP");
    }
    assert_eq!(d.buffered(), 0, "everything decoded");
    out
}

#[test]
fn a_long_status_line_one_byte_at_a_time() {
    let text = "x".repeat(256 * 1024);
    let wire = format!("+{text}\r\n:7\r\n");
    let got = fed_in_pieces(wire.as_bytes(), 1);
    assert_eq!(
        got,
        [Reply::Status(text.into_bytes().into()), Reply::Int(7)]
    );
}

#[test]
fn a_large_array_in_small_reads() {
    let n = 50_000;
    let mut wire = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        wire.extend_from_slice(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
    }
    wire.extend_from_slice(b"$-1\r\n");
    let want: Vec<Reply> = vec![
        Reply::Array(
            (0..n)
                .map(|i| Reply::Bulk(i.to_string().into_bytes().into()))
                .collect(),
        ),
        Reply::Nil,
    ];
    for piece in [1, 3, 7, 4096] {
        assert_eq!(fed_in_pieces(&wire, piece), want, "pieces of {piece}");
    }
}

#[test]
fn a_crlf_split_across_reads_ends_the_line() {
    // The CR arrives in one read, the LF in the next.
    let mut d = Decoder::new(Protocol::Resp2, 1024);
    let mut out = Vec::new();
    for part in [&b"+OK\r"[..], b"\n", b"$3\r", b"\nabc\r", b"\n"] {
        d.feed(part, |r| out.push(r)).expect("valid RESP");
    }
    assert_eq!(
        out,
        [
            Reply::Status(bytes::Bytes::from_static(b"OK")),
            Reply::Bulk(bytes::Bytes::from_static(b"abc"))
        ]
    );
}
