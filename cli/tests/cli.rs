//! The `redlock` binary against real `redis-server` processes (started on free loopback ports,
//! stopped by pid): serialization, the lost-lock path, conflicts, exit statuses, the
//! environment given to the command, and `status`.

use redlock_harness::{Cluster, Conn, Reply};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const REDLOCK: &str = env!("CARGO_BIN_EXE_redlock");

fn nodes(n: usize) -> Cluster {
    Cluster::start(n)
}

/// `redlock ARGS…` with `--nodes` from `REDLOCK_NODES` cleared, so only what the test passes counts.
fn redlock(args: &[&str]) -> Command {
    let mut c = Command::new(REDLOCK);
    c.args(args).env_remove("REDLOCK_NODES");
    c
}

fn output(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("redlock runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh path in the temp dir (removed first if it exists).
fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("redlock-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn wait_for_file(path: &Path, limit: Duration) {
    let end = Instant::now() + limit;
    while !path.exists() {
        assert!(Instant::now() < end, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` up to `limit`; kills it and panics if it is still running.
fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redlock did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sh(script: &str) -> [&str; 3] {
    ["sh", "-c", script]
}

#[test]
fn concurrent_runs_on_one_resource_serialize() {
    let cluster = nodes(3);
    let log = temp("serialize.log");
    let script = format!(
        "echo \"start $(date +%s%N)\" >> {0}; sleep 0.3; echo \"end $(date +%s%N)\" >> {0}",
        log.display()
    );
    let children: Vec<Child> = (0..3)
        .map(|_| {
            let mut c = redlock(&["run", "--nodes", &cluster.urls_arg(), "--ttl", "5s"]);
            c.args(["shared", "--"]).args(sh(&script));
            c.spawn().expect("spawn redlock")
        })
        .collect();
    for mut child in children {
        let status = wait_with_limit(&mut child, Duration::from_secs(20));
        assert!(status.success(), "redlock run failed: {status}");
    }
    let lines = std::fs::read_to_string(&log).expect("log written");
    let events: Vec<(String, u128)> = lines
        .lines()
        .map(|l| {
            let (what, t) = l.split_once(' ').expect("two words");
            (what.to_string(), t.parse().expect("nanoseconds"))
        })
        .collect();
    assert_eq!(events.len(), 6, "{lines}");
    for (i, pair) in events.chunks(2).enumerate() {
        assert_eq!(
            (pair[0].0.as_str(), pair[1].0.as_str()),
            ("start", "end"),
            "hold {i} interleaved with another:\n{lines}"
        );
    }
    for w in events.windows(2) {
        assert!(w[0].1 <= w[1].1, "timestamps go backwards:\n{lines}");
    }
    let _ = std::fs::remove_file(&log);
}

#[test]
fn lost_lock_terminates_the_command() {
    let cluster = nodes(3);
    let (ready, term) = (temp("lost.ready"), temp("lost.term"));
    let script = format!(
        "trap 'echo term > {term}; kill $! 2>/dev/null; exit 0' TERM; sleep 30 & echo ready > {ready}; wait",
        term = term.display(),
        ready = ready.display()
    );
    let mut c = redlock(&["run", "--nodes", &cluster.urls_arg(), "--ttl", "1s"]);
    c.args(["--kill-after", "200ms", "lost", "--"])
        .args(sh(&script))
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn redlock");
    wait_for_file(&ready, Duration::from_secs(10));
    // Let one extension go through first, then take the quorum away (2 of 3 paused).
    std::thread::sleep(Duration::from_millis(700));
    let paused = Instant::now();
    cluster.stop(0);
    cluster.stop(1);
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    let took = paused.elapsed();
    cluster.cont(0);
    cluster.cont(1);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(
        status.code(),
        Some(121),
        "status {status}; stderr: {stderr}"
    );
    // ttl 1s: validity runs out at most ~1s after the pause; the rest is slack for a busy machine.
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after the pause"
    );
    assert_eq!(
        std::fs::read_to_string(&term)
            .expect("the command got SIGTERM")
            .trim(),
        "term"
    );
    assert!(stderr.contains("lost the lock on \"lost\""), "{stderr}");
    let _ = std::fs::remove_file(&ready);
    let _ = std::fs::remove_file(&term);
}

#[test]
fn lost_lock_kills_a_command_that_ignores_sigterm() {
    let cluster = nodes(1);
    let ready = temp("kill.ready");
    let script = format!(
        "trap '' TERM; echo ready > {}; exec sleep 30",
        ready.display()
    );
    let mut c = redlock(&["run", "--nodes", &cluster.urls_arg(), "--ttl", "2s"]);
    c.args(["--kill-after", "300ms", "ignores", "--"])
        .args(sh(&script))
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn redlock");
    wait_for_file(&ready, Duration::from_secs(10));
    let killed = Instant::now();
    cluster.kill(0);
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(status.code(), Some(121), "{stderr}");
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "{:?}",
        killed.elapsed()
    );
    assert!(stderr.contains("sending SIGKILL"), "{stderr}");
    let _ = std::fs::remove_file(&ready);
}

#[test]
fn conflicts_have_their_own_status_and_signals_reach_the_command() {
    let cluster = nodes(3);
    let urls = cluster.urls_arg();
    let ready = temp("conflict.ready");
    let script = format!("echo ready > {}; exec sleep 20", ready.display());
    let mut c = redlock(&["run", "--nodes", &urls, "busy", "--"]);
    c.args(sh(&script));
    let mut holder = c.spawn().expect("spawn holder");
    wait_for_file(&ready, Duration::from_secs(10));

    let t = Instant::now();
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "--no-wait",
        "busy",
        "--",
        "true",
    ]));
    assert_eq!(code(&out), 120, "{}", text(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(3));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("could not acquire \"busy\": held by another holder"),
        "{err}"
    );

    let t = Instant::now();
    let out = output(redlock(&[
        "run", "--nodes", &urls, "--wait", "400ms", "busy", "--", "true",
    ]));
    assert_eq!(code(&out), 120, "{}", text(&out.stderr));
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    let out = output(redlock(&[
        "run", "--nodes", &urls, "-n", "-E", "9", "busy", "true",
    ]));
    assert_eq!(code(&out), 9, "-E sets the conflict status");

    // SIGTERM to redlock goes to the command; redlock exits with its status and releases.
    let pid = holder.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_with_limit(&mut holder, Duration::from_secs(5));
    assert_eq!(status.code(), Some(128 + 15), "{status}");
    let out = output(redlock(&[
        "run", "--nodes", &urls, "-n", "busy", "--", "true",
    ]));
    assert_eq!(code(&out), 0, "released: {}", text(&out.stderr));
    let _ = std::fs::remove_file(&ready);
}

/// A held lock with one of three nodes down is a conflict (120), not an unreachable quorum
/// (122): the two nodes that answered both refused.
#[test]
fn a_conflict_with_one_node_down_is_still_a_conflict() {
    let cluster = nodes(3);
    let urls = cluster.urls_arg();
    let ready = temp("down.ready");
    let script = format!("echo ready > {}; exec sleep 20", ready.display());
    let mut c = redlock(&["run", "--nodes", &urls, "busy-down", "--"]);
    c.args(sh(&script));
    let mut holder = c.spawn().expect("spawn holder");
    wait_for_file(&ready, Duration::from_secs(10));
    cluster.kill(2);
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "--no-wait",
        "busy-down",
        "--",
        "true",
    ]));
    let err = text(&out.stderr);
    assert_eq!(code(&out), 120, "{err}");
    assert!(err.contains("held by another holder"), "{err}");
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = std::fs::remove_file(&ready);
}

#[test]
fn command_status_and_environment() {
    let cluster = nodes(1);
    let urls = cluster.urls_arg();
    let show = "printf '%s|%s' \"$REDLOCK_RESOURCE\" \"$REDLOCK_FENCING_TOKEN\"; exit 7";
    let out = output({
        let mut c = redlock(&["run", "--nodes", &urls, "env-res", "--"]);
        c.args(sh(show)).env("REDLOCK_FENCING_TOKEN", "stale");
        c
    });
    assert_eq!(code(&out), 7);
    assert_eq!(text(&out.stdout), "env-res|", "no token without --fencing");

    let fenced = |n: &str| {
        let out = output({
            let mut c = redlock(&["run", "--nodes", &urls, "--fencing", "env-res", "--"]);
            c.args(sh(show));
            c
        });
        assert_eq!(code(&out), 7, "{n}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let token = stdout.strip_prefix("env-res|").expect("resource first");
        token
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("token {token:?}"))
    };
    let (first, second) = (fenced("first"), fenced("second"));
    assert!(first >= 1 && second > first, "{first} then {second}");

    // Without `--`, and the shell's conventions for signals, missing and unrunnable commands.
    let out = output(redlock(&[
        "run", "--nodes", &urls, "r", "sh", "-c", "exit 3",
    ]));
    assert_eq!(code(&out), 3);
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "r",
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ]));
    assert_eq!(code(&out), 128 + 9);
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "r",
        "--",
        "/nonexistent/command",
    ]));
    assert_eq!(code(&out), 127);
    let out = output(redlock(&["run", "--nodes", &urls, "r", "--", "/"]));
    assert_eq!(code(&out), 126);
}

#[test]
fn nodes_come_from_the_environment() {
    let cluster = nodes(1);
    let out = output({
        let mut c = Command::new(REDLOCK);
        c.args(["run", "from-env", "--", "true"])
            .env("REDLOCK_NODES", cluster.urls_arg());
        c
    });
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // The same lock is visible through the environment's nodes: hold it, then conflict.
    let mut c = Command::new(REDLOCK);
    c.args(["run", "from-env", "--", "sleep", "5"])
        .env("REDLOCK_NODES", cluster.urls_arg());
    let mut holder = c.spawn().unwrap();
    let mut conn = Conn::open_url(&cluster.url(0), Duration::from_secs(2)).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while conn.call(&["EXISTS", "from-env"]).unwrap() != Reply::Int(1) {
        assert!(Instant::now() < end, "the holder never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = output({
        let mut c = Command::new(REDLOCK);
        c.args(["run", "-n", "from-env", "--", "true"])
            .env("REDLOCK_NODES", cluster.urls_arg());
        c
    });
    assert_eq!(code(&out), 120);
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn errors_are_one_line_with_detail_under_verbose() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let out = output(redlock(&["run", "--nodes", &url, "-n", "x", "--", "true"]));
    assert_eq!(code(&out), 122);
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("too few nodes answered"), "{err}");
    let out = output(redlock(&[
        "run", "-v", "--nodes", &url, "-n", "x", "--", "true",
    ]));
    assert_eq!(code(&out), 122);
    let err = text(&out.stderr);
    assert!(
        err.lines().count() > 1 && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    let out = output(redlock(&["run", "--nodes", "http://x", "x", "--", "true"]));
    assert_eq!(code(&out), 125);
    assert!(text(&out.stderr).contains("invalid node URL"));
    for bad in ["5x", "ms", "1..5s", "1e3"] {
        let out = output(redlock(&["run", "--ttl", bad, "x", "--", "true"]));
        assert_eq!(code(&out), 125, "--ttl {bad}");
        assert!(text(&out.stderr).contains("--ttl"), "{}", text(&out.stderr));
    }
    // A bare number is seconds, as `flock -w 10` takes it: the unreachable node is what fails.
    let out = output(redlock(&[
        "run", "--nodes", &url, "--ttl", "10", "-w", "0.2", "x", "--", "true",
    ]));
    assert_eq!(code(&out), 122, "{}", text(&out.stderr));
    let out = output(redlock(&["run", "x"]));
    assert_eq!(code(&out), 125, "a command is required");
}

#[test]
fn status_shows_each_node_and_agreement() {
    let cluster = nodes(3);
    let urls = cluster.urls_arg();
    let status = |resource: &str| {
        let out = output(redlock(&["status", "--nodes", &urls, resource]));
        (code(&out), text(&out.stdout), text(&out.stderr))
    };
    let (c, out, _) = status("job");
    assert_eq!(c, 0);
    assert!(
        out.starts_with("job: free on all 3 nodes; nodes agree"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.ends_with("  free")).count(),
        3,
        "{out}"
    );

    let set = |i: usize, token: &str| {
        let mut conn = Conn::open_url(&cluster.url(i), Duration::from_secs(2)).unwrap();
        let reply = conn.call(&["SET", "job", token, "PX", "30000"]).unwrap();
        assert!(matches!(reply, Reply::Status(_)), "{reply:?}");
    };
    set(0, "aaaaaaaaaaaaaaaaaaaa");
    let (c, out, _) = status("job");
    assert_eq!(c, 0);
    assert!(
        out.contains("not held: aaaaaaaaaaaa… has only 1 of 3 nodes"),
        "{out}"
    );
    assert!(out.contains("nodes disagree"), "{out}");
    assert!(
        out.contains("held  ttl 29.") || out.contains("held  ttl 30"),
        "{out}"
    );

    set(1, "aaaaaaaaaaaaaaaaaaaa");
    set(2, "aaaaaaaaaaaaaaaaaaaa");
    let (c, out, _) = status("job");
    assert_eq!(c, 120, "held by a quorum");
    assert!(
        out.contains("held by aaaaaaaaaaaa… on 3 of 3 nodes (a quorum); nodes agree"),
        "{out}"
    );

    let out = output(redlock(&[
        "status", "--nodes", &urls, "--json", "job", "none",
    ]));
    assert_eq!(code(&out), 120);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["quorum"], 2);
    assert_eq!(v["resources"][0]["state"], "held");
    assert_eq!(v["resources"][0]["holder"], "aaaaaaaaaaaaaaaaaaaa");
    assert_eq!(v["resources"][0]["nodes"][2]["state"], "held");
    assert_eq!(v["resources"][1]["state"], "free");
    assert!(v["resources"][1]["holder"].is_null());

    // A node that is down, and several resources at once.
    cluster.kill(2);
    let out = output(redlock(&["status", "--nodes", &urls, "job", "other"]));
    assert_eq!(code(&out), 120, "still held by a quorum with a node down");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 node(s) unreachable"), "{stdout}");
    assert!(
        stdout.contains("unreachable: connection refused"),
        "{stdout}"
    );
    assert!(stdout.contains("other: free on 2 of 3 nodes"), "{stdout}");
}

#[test]
fn run_and_status_on_a_redis_cluster() {
    let cluster = redlock_harness::RedisCluster::start(3, 0);
    let url = cluster.cluster_url();
    // A command runs under a lock on the cluster, at the first attempt.
    let out = output(redlock(&[
        "run", "--nodes", &url, "--ttl", "10", "-w", "0", "cl:run", "--", "true",
    ]));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        !cluster.exists_routed("cl:run"),
        "released after the command"
    );
    // status follows MOVED to each key's primary.
    let keys = ["cl:a", "cl:b", "cl:c"];
    let owners: std::collections::BTreeSet<usize> = keys
        .iter()
        .map(|k| cluster.primary_of_slot(cluster.slot_of(k)))
        .collect();
    assert!(owners.len() >= 2, "the keys span primaries: {owners:?}");
    for k in keys {
        let reply = cluster.cmd_routed(k, &["SET", k, "bbbbbbbbbbbbbbbbbbbb", "PX", "30000"]);
        assert!(matches!(reply, Reply::Status(_)), "{reply:?}");
    }
    let out = output(redlock(&[
        "status", "--nodes", &url, "cl:a", "cl:b", "cl:c", "cl:free",
    ]));
    assert_eq!(code(&out), 120, "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert_eq!(
        shown
            .matches("held by bbbbbbbbbbbb… on 1 of 1 nodes")
            .count(),
        3,
        "{shown}"
    );
    assert!(shown.contains("cl:free: free"), "{shown}");
}
