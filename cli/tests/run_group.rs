//! `redlock run` and the command's process group, against real `redis-server` processes: the
//! group is stopped before the lock's validity ends, a second holder gets the lock only once the
//! whole group is gone, `redlock`'s own death kills the group, signals reach grandchildren;
//! wrong passwords are reported in one line and passwords never show in help.

use redlock_harness::{signal, Cluster, Conn, Reply};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REDLOCK: &str = env!("CARGO_BIN_EXE_redlock");

/// `redlock ARGS…` with every `REDLOCK_*` variable of the test's environment cleared.
fn redlock(args: &[&str]) -> Command {
    let mut c = Command::new(REDLOCK);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("REDLOCK_") {
            c.env_remove(k);
        }
    }
    c
}

fn output(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("redlock runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh path in the temp dir (removed first if it exists).
fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("redlock-group-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn wait_for_file(path: &Path, limit: Duration) {
    let end = Instant::now() + limit;
    while !path.exists()
        || std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
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

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// Whether process `pid` is running: it exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

fn pttl(conn: &mut Conn, key: &str) -> i64 {
    match conn.call(&["PTTL", key]).expect("PTTL") {
        Reply::Int(ms) => ms,
        other => panic!("PTTL: {other:?}"),
    }
}

#[test]
fn a_lost_lock_stops_the_whole_group_before_validity_ends() {
    let cluster = Cluster::start(3);
    let urls = cluster.urls_arg();
    let (pid_file, beats, acquired) = (temp("lost.pid"), temp("lost.beats"), temp("lost.acq"));
    // A child that ignores SIGTERM (and so do the `date` and `sleep` it runs) and writes a
    // heartbeat every 20 ms; its parent, the command, dies of the first SIGTERM.
    let inner = format!(
        "echo $$ > {pid}; trap \"\" TERM; i=0; while [ $i -lt 1500 ]; do date +%s%N >> {beats}; \
         sleep 0.02; i=$((i+1)); done",
        pid = pid_file.display(),
        beats = beats.display()
    );
    let script = format!("sh -c '{inner}' & wait");
    let mut first = redlock(&[
        "run",
        "--nodes",
        &urls,
        "--ttl",
        "2s",
        "--kill-after",
        "300ms",
    ]);
    first
        .args(["res", "--", "sh", "-c", &script])
        .stderr(Stdio::piped());
    let mut first = first.spawn().expect("spawn redlock");
    wait_for_file(&pid_file, Duration::from_secs(10));
    let grandchild = read_pid(&pid_file);

    // Right after an extension (node 0's ttl jumps up), take the quorum away: 2 of 3 paused.
    let mut conn = Conn::open_url(&cluster.url(0), Duration::from_secs(2)).expect("node 0");
    let end = Instant::now() + Duration::from_secs(5);
    let mut before = pttl(&mut conn, "res");
    let (expiry_ns, after) = loop {
        assert!(Instant::now() < end, "no extension seen");
        let now = pttl(&mut conn, "res");
        let read_at = wall_ns();
        if now > before + 300 {
            break (read_at + u128::try_from(now + 1).unwrap() * 1_000_000, now);
        }
        before = now;
        std::thread::sleep(Duration::from_millis(5));
    };
    cluster.stop(0);
    cluster.stop(1);
    assert!(after > 1500, "a fresh extension: {after} ms");
    // redlock's validity ends at least the drift margin (2 s × 1% + 2 ms) before the key's.
    let valid_until_ns = expiry_ns - 22_000_000;

    // A second holder, waiting meanwhile; it notes when it got the lock and whether the
    // heartbeat writer was still alive then.
    let mut second = redlock(&["run", "--nodes", &urls, "--wait", "20", "res", "--"]);
    second.args([
        "sh",
        "-c",
        &format!(
            "date +%s%N > {acq}; if [ -d /proc/{grandchild} ] && ! grep -q '^State:.*Z' \
             /proc/{grandchild}/status; then echo alive >> {acq}; else echo gone >> {acq}; fi",
            acq = acquired.display()
        ),
    ]);
    let mut second = second.stderr(Stdio::null()).spawn().expect("spawn second");

    let status = wait_with_limit(&mut first, Duration::from_secs(10));
    let err = stderr_of(&mut first);
    assert_eq!(status.code(), Some(121), "{err}");
    assert!(err.contains("lost the lock on \"res\""), "{err}");
    assert!(err.contains("sending SIGKILL"), "{err}");
    assert!(!alive(grandchild), "the heartbeat writer outlived redlock");

    // Let the keys expire on the paused nodes' clocks too, then resume them.
    let wait_ns = (expiry_ns + 100_000_000).saturating_sub(wall_ns());
    std::thread::sleep(Duration::from_nanos(wait_ns as u64));
    cluster.cont(0);
    cluster.cont(1);
    let status = wait_with_limit(&mut second, Duration::from_secs(25));
    assert!(status.success(), "the second holder: {status}");

    let beats_text = std::fs::read_to_string(&beats).expect("heartbeats");
    let last_beat: u128 = beats_text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .max()
        .expect("some heartbeat");
    assert!(
        last_beat < valid_until_ns,
        "a heartbeat {} ms after validity ended",
        (last_beat - valid_until_ns) / 1_000_000
    );
    let acq = std::fs::read_to_string(&acquired).expect("second ran");
    let mut lines = acq.lines();
    let acquired_at: u128 = lines.next().and_then(|l| l.parse().ok()).expect("time");
    assert!(acquired_at > last_beat);
    assert_eq!(lines.next(), Some("gone"), "{acq}");
    for p in [&pid_file, &beats, &acquired] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn sigkill_of_redlock_kills_the_group() {
    let cluster = Cluster::start(1);
    let pid_file = temp("killed.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let mut c = redlock(&[
        "run",
        "--nodes",
        &cluster.url(0),
        "killed",
        "--",
        "sh",
        "-c",
    ]);
    c.arg(&script).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn redlock");
    wait_for_file(&pid_file, Duration::from_secs(10));
    let grandchild = read_pid(&pid_file);
    assert!(alive(grandchild));
    signal("-KILL", child.id()).expect("SIGKILL redlock");
    let _ = wait_with_limit(&mut child, Duration::from_secs(5));
    let end = Instant::now() + Duration::from_secs(5);
    while alive(grandchild) {
        assert!(Instant::now() < end, "the command's child outlived redlock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&pid_file);
}

#[test]
fn each_forwarded_signal_reaches_a_grandchild() {
    let cluster = Cluster::start(1);
    let (log, ready, stop) = (temp("fwd.log"), temp("fwd.ready"), temp("fwd.stop"));
    let inner = format!(
        "for s in INT TERM HUP QUIT USR1 USR2; do trap \"echo $s >> {log}\" $s; done; \
         echo ready > {ready}; i=0; while [ ! -e {stop} ] && [ $i -lt 400 ]; do sleep 0.05; \
         i=$((i+1)); done",
        log = log.display(),
        ready = ready.display(),
        stop = stop.display()
    );
    // The command survives every signal (it traps them) and runs the grandchild in the
    // foreground.
    let script = format!("trap : INT TERM HUP QUIT USR1 USR2; sh -c '{inner}'; exit 0");
    let mut c = redlock(&["run", "--nodes", &cluster.url(0), "fwd", "--", "sh", "-c"]);
    c.arg(&script).stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn redlock");
    wait_for_file(&ready, Duration::from_secs(10));
    for name in ["INT", "TERM", "HUP", "QUIT", "USR1", "USR2"] {
        signal(&format!("-{name}"), child.id()).expect("signal redlock");
        let end = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l == name)
        {
            assert!(
                Instant::now() < end,
                "SIG{name} did not reach the grandchild"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::fs::write(&stop, "stop").unwrap();
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "the command's status");
    for p in [&log, &ready, &stop] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn wrong_password_is_one_line_and_passwords_come_from_the_environment_or_a_file() {
    let cluster = Cluster::start(1);
    let reply = cluster.cmd(0, &["CONFIG", "SET", "requirepass", "s3cret"]);
    assert!(matches!(reply, Reply::Status(_)), "{reply:?}");
    let port = cluster.port(0);
    let wrong = format!("redis://:wr0ng@127.0.0.1:{port}");
    let t = Instant::now();
    let out = output(redlock(&["run", "--nodes", &wrong, "pw", "--", "true"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("WRONGPASS"), "{err}");
    assert!(!err.contains("wr0ng"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "at once, without --wait"
    );

    let plain = format!("redis://127.0.0.1:{port}");
    let out = output(redlock(&["run", "--nodes", &plain, "pw", "--", "true"]));
    assert!(
        text(&out.stderr).contains("NOAUTH"),
        "{}",
        text(&out.stderr)
    );
    let out = output({
        let mut c = redlock(&["run", "--nodes", &plain, "pw", "--", "true"]);
        c.env("REDLOCK_PASSWORD", "s3cret");
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let file = temp("pw.file");
    std::fs::write(&file, "s3cret\n").unwrap();
    let out = output(redlock(&[
        "run",
        "--nodes",
        &plain,
        "--password-file",
        &file.display().to_string(),
        "pw",
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _ = std::fs::remove_file(&file);

    // A held lock while waiting says so once.
    let ready = temp("pw.ready");
    let mut holder = redlock(&["run", "--nodes", &plain, "pw", "--", "sh", "-c"]);
    holder
        .arg(format!("echo ready > {}; sleep 1", ready.display()))
        .env("REDLOCK_PASSWORD", "s3cret");
    let mut holder = holder.spawn().expect("holder");
    wait_for_file(&ready, Duration::from_secs(10));
    let out = output({
        let mut c = redlock(&["run", "--nodes", &plain, "-w", "10", "pw", "--", "true"]);
        c.env("REDLOCK_PASSWORD", "s3cret");
        c
    });
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "redlock: waiting for pw (held by another holder)\n");
    let _ = wait_with_limit(&mut holder, Duration::from_secs(10));
    let _ = std::fs::remove_file(&ready);
}

#[test]
fn help_and_messages_never_show_the_password() {
    let secret = "hunter2-secret";
    let nodes = format!("redis://app:{secret}@127.0.0.1:1,redis://:{secret}@127.0.0.1:2");
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["status", "--help"],
        &["run", "-v", "-n", "x", "--", "true"],
        &["status", "-v", "--timeout", "0.2", "x"],
    ] {
        let out = output({
            let mut c = redlock(args);
            c.env("REDLOCK_NODES", &nodes);
            c
        });
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(secret), "{args:?}: {all}");
        assert!(!all.is_empty());
    }
    let out = output(redlock(&["run", "--help"]));
    assert!(
        text(&out.stdout).contains("SIGKILL"),
        "the timeline is documented"
    );
    let out = output(redlock(&["completions", "bash"]));
    assert!(out.status.success() && text(&out.stdout).contains("redlock"));
}

#[test]
fn a_kill_after_that_does_not_fit_the_ttl_is_refused() {
    let out = output(redlock(&[
        "run",
        "--ttl",
        "10s",
        "--kill-after",
        "10s",
        "x",
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("--kill-after 10s does not fit in --ttl 10s"),
        "{err}"
    );
    // Flags come from REDLOCK_* variables too.
    let out = output({
        let mut c = redlock(&["run", "x", "--", "true"]);
        c.env("REDLOCK_TTL", "1").env("REDLOCK_KILL_AFTER", "1");
        c
    });
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("does not fit"),
        "{}",
        text(&out.stderr)
    );
}
