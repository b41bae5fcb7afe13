//! Tests that the live `redis-server` harness and the fake servers behave as documented.

use redlock_tests::fake::{FakeServer, GARBAGE_PREFIX};
use redlock_tests::live::{is_timeout, pid_exists, request, Cluster, Reply};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn ok(reply: Reply) {
    match reply {
        Reply::Status(s) if &s[..] == b"OK" => {}
        other => panic!("expected +OK, got {other:?}"),
    }
}

#[test]
fn three_nodes_set_get_and_helpers() {
    let c = Cluster::start(3);
    assert_eq!(c.len(), 3);
    let urls = c.urls();
    assert_eq!(urls.len(), 3);
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(*url, format!("redis://127.0.0.1:{}", c.port(i)));
        assert_eq!(c.url(i), *url);
        assert!(c.is_running(i));
        assert!(pid_exists(c.pid(i)));
        assert!(c.dir(i).is_dir());
    }
    let mut ports: Vec<u16> = (0..3).map(|i| c.port(i)).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "nodes must have distinct ports");

    // Nodes are independent: a key set on one is not on the others.
    ok(c.cmd(0, &["SET", "k", "v0"]));
    ok(c.cmd(1, &["SET", "k", "v1", "PX", "60000"]));
    assert_eq!(c.get(0, "k").as_deref(), Some("v0"));
    assert_eq!(c.get(1, "k").as_deref(), Some("v1"));
    assert_eq!(c.get(2, "k"), None);
    assert_eq!(c.exists_any("k"), 2);
    assert_eq!(c.exists_any("nope"), 0);

    assert_eq!(c.pttl(0, "k"), -1);
    let ttl = c.pttl(1, "k");
    assert!((1..=60_000).contains(&ttl), "pttl {ttl}");
    assert_eq!(c.pttl(2, "k"), -2);

    ok(c.cmd(0, &["SET", "a", "1"]));
    assert_eq!(c.keys(0), vec!["a".to_string(), "k".to_string()]);
    assert!(c.keys(2).is_empty());

    // Binary-safe arguments, and error replies are returned rather than panicking.
    ok(c.cmd(2, &[&b"SET"[..], b"bin", b"a\r\nb\0c"]));
    assert_eq!(
        c.cmd(2, &["GET", "bin"]),
        Reply::Bulk(bytes::Bytes::from_static(b"a\r\nb\0c"))
    );
    assert!(matches!(c.cmd(0, &["NOSUCHCOMMAND"]), Reply::Error(_)));
    assert_eq!(c.cmd(0, &["INCR", "n"]), Reply::Int(1));

    c.flushall();
    assert_eq!(c.exists_any("k"), 0);
    for i in 0..3 {
        assert!(c.keys(i).is_empty());
    }
}

#[test]
fn stopped_node_times_out_then_resumes() {
    let c = Cluster::start(2);
    ok(c.cmd(0, &["SET", "k", "v"]));
    c.stop(0);
    assert!(c.is_stopped(0));
    assert!(c.is_running(0), "a stopped process is still running");

    let t = Instant::now();
    let err = c
        .try_cmd(0, &["GET", "k"], Duration::from_millis(300))
        .expect_err("a stopped node must not answer");
    assert!(is_timeout(&err), "expected a timeout, got {err:?}");
    assert!(t.elapsed() >= Duration::from_millis(250));

    // The other node is unaffected, and helpers skip the stopped one.
    ok(c.cmd(1, &["SET", "k", "w"]));
    assert_eq!(c.exists_any("k"), 1);

    c.cont(0);
    assert!(!c.is_stopped(0));
    assert_eq!(c.get(0, "k").as_deref(), Some("v"), "data survives a pause");
    assert_eq!(c.exists_any("k"), 2);
}

#[test]
fn kill_and_restart_on_the_same_port() {
    let c = Cluster::start(2);
    let port = c.port(0);
    let old_pid = c.pid(0);
    ok(c.cmd(0, &["SET", "k", "v"]));

    c.kill(0);
    assert!(!c.is_running(0));
    assert!(!pid_exists(old_pid), "killed pid {old_pid} still exists");
    let err = c
        .try_cmd(0, &["PING"], Duration::from_millis(500))
        .expect_err("a killed node must not answer");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
    assert_eq!(c.exists_any("k"), 0, "helpers skip dead nodes");
    c.kill(0); // idempotent

    c.restart(0);
    assert!(c.is_running(0));
    assert_eq!(c.port(0), port, "restart keeps the port");
    assert_ne!(c.pid(0), old_pid);
    assert_eq!(c.get(0, "k"), None, "data is gone after a restart");
    ok(c.cmd(0, &["SET", "k2", "v2"]));
    assert_eq!(c.get(0, "k2").as_deref(), Some("v2"));

    // Restarting a running (even stopped) node replaces it.
    let pid = c.pid(1);
    ok(c.cmd(1, &["SET", "x", "1"]));
    c.stop(1);
    c.restart(1);
    assert!(!pid_exists(pid));
    assert!(!c.is_stopped(1));
    assert_eq!(c.keys(1), Vec::<String>::new());
}

#[test]
fn drop_kills_processes_and_removes_dirs() {
    let c = Cluster::start(3);
    let pids: Vec<u32> = (0..3).map(|i| c.pid(i)).collect();
    let dirs: Vec<_> = (0..3).map(|i| c.dir(i).to_path_buf()).collect();
    c.stop(1); // drop must cope with a stopped node
    c.kill(2); // and with a dead one
    for &pid in &pids[..2] {
        assert!(pid_exists(pid));
    }
    drop(c);
    for pid in pids {
        assert!(!pid_exists(pid), "pid {pid} survived the drop");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} survived the drop", dir.display());
    }
}

#[test]
fn start_zero_nodes() {
    let c = Cluster::start(0);
    assert!(c.is_empty());
    assert!(c.urls().is_empty());
    c.flushall();
    assert_eq!(c.exists_any("k"), 0);
}

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
