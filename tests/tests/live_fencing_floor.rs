//! The clock floor of fencing tokens against real redis-server nodes: tokens keep increasing
//! when every node restarts empty, and the Lua scripts never compare a rounded counter.

use redlock_async::{Error, Outcome};
use redlock_harness::Cluster;
use redlock_tests::conformance::{test_options, BlockingClient, Client};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(5);

fn fenced(grace: Option<Duration>) -> redlock_async::Options {
    let mut o = test_options();
    o.fencing = true;
    o.restart_grace = grace;
    o.retry_count = None;
    o.retry_delay = Duration::from_millis(50);
    o.retry_jitter = Duration::from_millis(10);
    o
}

fn wall_micros() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_micros()).expect("fits")
}

#[test]
fn tokens_keep_increasing_when_all_five_nodes_restart_empty() {
    let grace = Duration::from_secs(1);
    let cluster = Cluster::start(5);
    let a = BlockingClient::connect(&cluster.urls(), fenced(Some(grace))).expect("connect a");
    let b = BlockingClient::connect(&cluster.urls(), fenced(Some(grace))).expect("connect b");
    let before = wall_micros();
    let first = a.acquire(&["fence:floor"], TTL).expect("a acquires");
    let t1 = first.fencing_token().expect("fencing on: a token");
    assert!(
        t1 >= before,
        "token {t1} is at least the wall clock ({before} µs)"
    );
    a.release(&first).expect("a releases");
    // Every node loses its data, fence counters included (no persistence), with a new run_id.
    for i in 0..cluster.len() {
        cluster.restart(i);
    }
    let counters = (0..cluster.len())
        .filter(|i| cluster.get(*i, "{fence:floor}:fence").is_some())
        .count();
    assert_eq!(counters, 0, "the restarts lost every counter");
    // The second holder waits out the grace (the nodes sit out), then gets a larger token.
    let second = b.acquire(&["fence:floor"], TTL).expect("b acquires");
    let t2 = second.fencing_token().expect("token");
    assert!(
        t2 > t1,
        "token {t2} handed out after {t1}, although every counter was lost"
    );
    let holding = (0..cluster.len())
        .filter(|i| cluster.get(*i, "{fence:floor}:fence") == Some(t2.to_string()))
        .count();
    assert!(holding >= 3, "token {t2} written back to {holding} nodes");
    b.release(&second).expect("b releases");
}

/// Sets the fence counter of `fence:max` on the single node to `value`.
fn set_counter(cluster: &Cluster, value: &str) {
    cluster.cmd(0, &["SET", "{fence:max}:fence", value]);
}

fn refused_by_a_script_error(result: Result<redlock_async::Lock, Error>) -> String {
    let e = result.expect_err("no lock past 2^53");
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    let errors: Vec<String> = e
        .attempts()
        .iter()
        .flat_map(|a| &a.nodes)
        .filter_map(|n| match &n.outcome {
            Outcome::ErrorReply(text) => Some(text.to_string()),
            _ => None,
        })
        .collect();
    assert!(!errors.is_empty(), "the node answered with an error: {e}");
    errors.join("; ")
}

#[test]
fn counters_near_two_to_the_53_are_exact_or_refused() {
    let cluster = Cluster::start(1);
    let mut once = fenced(None);
    once.retry_count = Some(0);
    let client = BlockingClient::connect(&cluster.urls(), once).expect("connect");

    // Just below: the largest exact token is handed out and stored exactly.
    set_counter(&cluster, "9007199254740990");
    let lock = client.acquire(&["fence:max"], TTL).expect("acquire");
    assert_eq!(lock.fencing_token(), Some(9_007_199_254_740_991));
    assert_eq!(
        cluster.get(0, "{fence:max}:fence").as_deref(),
        Some("9007199254740991")
    );
    client.release(&lock).expect("release");

    // At the limit: the next token, 2^53, is refused by the fence script, the counter stays.
    let why = refused_by_a_script_error(client.acquire(&["fence:max"], TTL));
    assert!(why.contains("9007199254740992"), "{why}");
    assert_eq!(
        cluster.get(0, "{fence:max}:fence").as_deref(),
        Some("9007199254740991")
    );

    // Past it: 2^53 + 1 would read as 2^53 in Lua; the acquire script refuses it and takes
    // nothing.
    set_counter(&cluster, "9007199254740993");
    let why = refused_by_a_script_error(client.acquire(&["fence:max"], TTL));
    assert!(why.contains("not an integer below 2^53"), "{why}");
    assert_eq!(
        cluster.get(0, "fence:max"),
        None,
        "the lock key was not set"
    );

    // Not a number at all: refused too (it used to count as 0).
    set_counter(&cluster, "forty-two");
    refused_by_a_script_error(client.acquire(&["fence:max"], TTL));
}
