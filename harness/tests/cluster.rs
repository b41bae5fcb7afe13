//! The harness's `redis-server` cluster and RESP client behave as documented.

use redlock_harness::{is_timeout, pid_exists, Cluster, Conn, Reply};
use std::io;
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
fn one_connection_pipelines_and_fails_cleanly() {
    let c = Cluster::try_start(1).expect("redis-server starts");
    assert_eq!(c.urls_arg(), c.url(0));
    assert_eq!(c.try_pid(0), Some(c.pid(0)));
    let mut conn = Conn::open_url(&c.url(0), Duration::from_secs(2)).unwrap();
    let replies = conn
        .pipeline(&[
            &["SET", "p", "1"][..],
            &["INCR", "p"],
            &["GET", "p"],
            &["GET", "q"],
        ])
        .unwrap();
    assert_eq!(replies.len(), 4);
    assert!(matches!(&replies[0], Reply::Status(s) if &s[..] == b"OK"));
    assert_eq!(replies[1], Reply::Int(2));
    assert_eq!(replies[2], Reply::Bulk(bytes::Bytes::from_static(b"2")));
    assert_eq!(replies[3], Reply::Nil);
    // The same connection again, one command.
    assert_eq!(conn.call(&["EXISTS", "p"]).unwrap(), Reply::Int(1));
    // A database from the URL is selected.
    let mut db1 = Conn::open_url(&format!("{}/1", c.url(0)), Duration::from_secs(2)).unwrap();
    assert_eq!(db1.call(&["EXISTS", "p"]).unwrap(), Reply::Int(0));
    assert!(Conn::open_url("http://x", Duration::from_secs(1)).is_err());

    // try_ forms report instead of panicking.
    c.try_stop(0).unwrap();
    assert!(c.is_stopped(0));
    c.try_cont(0).unwrap();
    c.kill(0);
    assert_eq!(c.try_pid(0), None);
    assert_eq!(c.try_stop(0).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert!(Conn::open_url(&c.url(0), Duration::from_secs(1)).is_err());
}
