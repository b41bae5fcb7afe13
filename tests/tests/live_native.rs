//! The server's own compare-and-set / compare-and-delete against a live server, with an ACL user
//! that may not run scripts (`-@scripting`) and one that may not run `INFO`.
//!
//! The server is whatever the harness starts (`redis-server`, or the program named by
//! `REDLOCK_SERVER_BIN`: `cargo xtask test` runs this file against Debian's Redis 7 and Valkey
//! 8.1). What the lock can do natively depends on the server, read here from its own
//! `INFO server`: Redis 7 has nothing (every extend and release needs a script), Valkey 8.1 has
//! `SET IFEQ` (extend), Valkey 9.0 `DELIFEQ`, Redis 8.4 / Valkey 9.2 `DELEX` (release).

use redlock_async::{Error, Options};
use redlock_harness::{Cluster, Reply};
use redlock_tests::conformance::{test_options, AsyncClient, BlockingClient, Client};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(20);

/// What the running server has natively: (extend by `SET IFEQ`, release by `DELEX`/`DELIFEQ`).
fn natives(cluster: &Cluster) -> (bool, bool) {
    let text = match cluster.cmd(0, &["INFO", "server"]) {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO server: {other:?}"),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    let version = |v: String| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    if field("server_name").as_deref() == Some("valkey") {
        let v = version(field("valkey_version").expect("valkey_version"));
        (v >= (8, 1), v >= (9, 0))
    } else {
        let v = version(field("redis_version").expect("redis_version"));
        (v >= (8, 4), v >= (8, 4))
    }
}

/// One node with user `app` (password `pw`) allowed everything on every key except `denied`.
fn cluster_with_user(denied: &str) -> Cluster {
    let cluster = Cluster::start(1);
    let r = cluster.cmd(
        0,
        &["ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", denied],
    );
    assert_eq!(r, Reply::Status("OK".into()), "ACL SETUSER");
    cluster
}

fn client<C: Client>(cluster: &Cluster, options: Options) -> C {
    let url = format!("redis://app:pw@127.0.0.1:{}", cluster.port(0));
    C::connect(&[url], options).expect("connect")
}

fn once() -> Options {
    let mut options = test_options();
    options.retry_count = Some(0);
    options
}

/// A failure for want of scripting: one line, naming NOPERM and how to fix it.
fn assert_noperm(err: &Error) {
    let line = err.to_string();
    assert!(err.is_unreachable(), "{line}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains("NOPERM"), "names the refusal: {line}");
    assert!(line.contains("+@scripting"), "says what fixes it: {line}");
}

fn pttl(cluster: &Cluster, key: &str) -> i64 {
    match cluster.cmd(0, &["PTTL", key]) {
        Reply::Int(n) => n,
        other => panic!("PTTL: {other:?}"),
    }
}

fn a_user_without_scripting_locks_one_key_with_the_servers_own_commands<C: Client>() {
    let cluster = cluster_with_user("-@scripting");
    let (set_ifeq, delete) = natives(&cluster);
    let client = client::<C>(&cluster, once());
    // SET NX: no script on any server.
    let lock = client
        .acquire(&["native:key"], Duration::from_secs(2))
        .expect("acquire by SET NX");
    let extended = client.extend(&lock, TTL);
    if set_ifeq {
        let extended = extended.expect("extend by SET IFEQ");
        assert!(pttl(&cluster, "native:key") > 10_000, "the ttl was set");
        // A shorter ttl would shorten the key under SET PX: it needs the script, refused here.
        let shorter = client.extend(&extended, Duration::from_secs(2));
        assert_noperm(&shorter.expect_err("a shorter extend needs the script"));
        assert!(pttl(&cluster, "native:key") > 10_000, "not shortened");
    } else {
        assert_noperm(&extended.expect_err("no SET IFEQ: the extend script is refused"));
    }
    let released = client.release(&lock);
    if delete {
        assert_eq!(released.expect("release by DELEX / DELIFEQ").confirmed, 1);
        assert_eq!(cluster.get(0, "native:key"), None);
    } else {
        assert_noperm(&released.expect_err("no DELEX: the release script is refused"));
        assert_eq!(
            cluster.get(0, "native:key").as_deref(),
            Some(lock.token().as_str()),
            "the key is still held"
        );
    }
}

fn a_multi_key_lock_needs_scripting_and_says_so_in_one_line<C: Client>() {
    let cluster = cluster_with_user("-@scripting");
    let client = client::<C>(&cluster, once());
    let err = client
        .acquire(&["native:a", "native:b"], TTL)
        .expect_err("the acquire script is refused");
    assert_noperm(&err);
}

fn a_user_without_info_still_locks_unless_restart_aware_voting_needs_it<C: Client>() {
    let cluster = cluster_with_user("-info");
    // The server stays unknown: scripts, which this user may run.
    let client = client::<C>(&cluster, once());
    let lock = client.acquire(&["noinfo:key"], TTL).expect("acquire");
    let lock = client.extend(&lock, TTL).expect("extend by script");
    assert_eq!(client.release(&lock).expect("release").confirmed, 1);
    drop(client);
    // Restart-aware voting cannot work without INFO: the node is refused, and says why.
    let mut options = once();
    options.restart_grace = Some(Duration::from_secs(1));
    let client = self::client::<C>(&cluster, options);
    let err = client
        .acquire(&["noinfo:key"], TTL)
        .expect_err("INFO is part of the handshake here");
    let line = err.to_string();
    assert!(err.is_unreachable() && line.contains("NOPERM"), "{line}");
}

/// Each test above, on each of the four adapters.
macro_rules! on_every_adapter {
    ($($test:ident),* $(,)?) => {
        mod tokio_adapter {
            $(#[test] fn $test() { super::$test::<super::AsyncClient<redlock_tokio::Tokio>>() })*
        }
        mod smol_adapter {
            $(#[test] fn $test() { super::$test::<super::AsyncClient<redlock_smol::Smol>>() })*
        }
        mod async_std_adapter {
            $(#[test] fn $test() {
                super::$test::<super::AsyncClient<redlock_async_std::AsyncStd>>()
            })*
        }
        mod blocking_adapter {
            $(#[test] fn $test() { super::$test::<super::BlockingClient>() })*
        }
    };
}

on_every_adapter!(
    a_user_without_scripting_locks_one_key_with_the_servers_own_commands,
    a_multi_key_lock_needs_scripting_and_says_so_in_one_line,
    a_user_without_info_still_locks_unless_restart_aware_voting_needs_it,
);
