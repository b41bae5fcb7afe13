//! Tests that the fake servers behave as documented (the live `redis-server` cluster is tested
//! in `redlock-harness`).

use redlock_harness::{is_timeout, request, Reply};
use redlock_tests::fake::{FakeServer, GARBAGE_PREFIX};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn fake_garbage_answers_non_resp() {
    let f = FakeServer::garbage();
    assert!(f.url().starts_with("redis://127.0.0.1:"));
    let err = request(f.addr(), &["PING"], Duration::from_secs(2)).expect_err("not RESP");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err:?}");

    // Raw: every write gets an answer starting with the HTTP status line.
    let mut s = TcpStream::connect(f.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for _ in 0..2 {
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut buf = vec![0u8; GARBAGE_PREFIX.len()];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], GARBAGE_PREFIX);
        let mut rest = [0u8; 64];
        s.read_exact(&mut rest).unwrap();
    }
    assert_eq!(f.accepted(), 2);
}

#[test]
fn fake_replying_sends_given_bytes() {
    let f = FakeServer::replying(&b"-ERR nope\r\n"[..]);
    let reply = request(f.addr(), &["PING"], Duration::from_secs(2)).unwrap();
    assert_eq!(reply, Reply::Error("ERR nope".into()));
}

#[test]
fn fake_silent_never_answers() {
    let f = FakeServer::silent();
    let t = Instant::now();
    let err = request(f.addr(), &["PING"], Duration::from_millis(300)).expect_err("silent");
    assert!(is_timeout(&err), "expected a timeout, got {err:?}");
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(f.accepted(), 1);
}

#[test]
fn fake_closing_closes_at_once() {
    let f = FakeServer::closing();
    let mut s = TcpStream::connect(f.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    // EOF, or a reset if our write raced the close; never a timeout.
    let _ = s.write_all(b"*1\r\n$4\r\nPING\r\n");
    match s.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert!(!is_timeout(&e), "closing server timed out: {e:?}"),
    }
    let err = request(f.addr(), &["PING"], Duration::from_secs(2)).expect_err("closed");
    assert!(!is_timeout(&err), "{err:?}");
}

#[test]
fn fake_drop_stops_listening() {
    let f = FakeServer::silent();
    let addr = f.addr();
    let _held = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    drop(f);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    let err = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect_err("listening");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
}
