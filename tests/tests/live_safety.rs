//! Fencing tokens and restart-aware voting against real redis-server nodes.

use redlock_async::{Error, Outcome};
use redlock_harness::Cluster;
use redlock_tests::conformance::{test_options, BlockingClient, Client};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(5);

fn fenced() -> redlock_async::Options {
    let mut o = test_options();
    o.fencing = true;
    o.retry_count = None;
    o.retry_delay = Duration::from_millis(5);
    o.retry_jitter = Duration::from_millis(5);
    o
}

#[test]
fn fenced_acquire_once() {
    let cluster = Cluster::start(1);
    let mut o = fenced();
    o.retry_count = Some(0);
    let a = BlockingClient::connect(&cluster.urls(), o).expect("connect a");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros();
    let lock = a.acquire(&["fence:once"], TTL).expect("acquire");
    // No counter yet: the token is the clock floor, the wall clock in microseconds.
    let token = u128::from(lock.fencing_token().expect("token"));
    assert!(token >= before, "token {token}, wall clock {before} µs");
}

#[test]
fn successive_holders_get_strictly_increasing_fencing_tokens() {
    let cluster = Cluster::start(5);
    let a = BlockingClient::connect(&cluster.urls(), fenced()).expect("connect a");
    let b = BlockingClient::connect(&cluster.urls(), fenced()).expect("connect b");
    let mut last = 0;
    for round in 0..10 {
        let client = if round % 2 == 0 { &a } else { &b };
        let lock = client.acquire(&["fence:r"], TTL).expect("acquire");
        let token = lock.fencing_token().expect("fencing on: a token");
        assert!(token > last, "round {round}: token {token} after {last}");
        last = token;
        // The counter is stored next to the lock, in the same cluster slot, on a quorum.
        let holding = (0..5)
            .filter(|i| cluster.get(*i, "{fence:r}:fence") == Some(token.to_string()))
            .count();
        assert!(
            holding >= 3,
            "token {token} written back to {holding} nodes"
        );
        // Extending keeps the token.
        let lock = client.extend(&lock, TTL).expect("extend");
        assert_eq!(lock.fencing_token(), Some(token));
        client.release(&lock).expect("release");
        if round == 4 {
            // A node crash loses its counters; the quorum intersection still carries the order.
            cluster.restart(0);
        }
    }
    // A resource with a hash tag keeps its counter in the tag's slot: `R:fence`.
    let lock = a
        .acquire(&["{user:7}:orders"], TTL)
        .expect("acquire tagged");
    let token = lock.fencing_token().expect("token");
    assert_eq!(
        cluster.get(1, "{user:7}:orders:fence"),
        Some(token.to_string())
    );
    a.release(&lock).expect("release");
}

#[test]
fn contending_holders_get_increasing_tokens_in_holding_order() {
    let cluster = Cluster::start(3);
    let client = BlockingClient::connect(&cluster.urls(), fenced()).expect("connect");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (client, seen) = (client.clone(), seen.clone());
            std::thread::spawn(move || {
                for _ in 0..15 {
                    let lock = client.acquire(&["fence:contended"], TTL).expect("acquire");
                    // Pushed while holding: push order is holding order.
                    seen.lock()
                        .expect("lock")
                        .push(lock.fencing_token().expect("token"));
                    client.release(&lock).expect("release");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 120);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "tokens out of holding order: {seen:?}"
    );
}

#[test]
fn restarted_nodes_sit_out_until_the_grace_has_passed() {
    let grace = Duration::from_secs(2);
    let cluster = Cluster::start(3);
    let started = Instant::now();
    let mut options = test_options();
    options.restart_grace = Some(grace);
    options.retry_count = Some(0);
    let client = BlockingClient::connect(&cluster.urls(), options).expect("connect");
    // Every node was just started: none may vote yet.
    let err = client
        .acquire(&["grace:a"], TTL)
        .expect_err("fresh nodes sit out");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let outcomes: Vec<_> = err.attempts()[0]
        .nodes
        .iter()
        .map(|r| r.outcome.clone())
        .collect();
    // Two sitting out make quorum impossible: the third may not even be awaited.
    let sitting = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::SittingOut { .. }))
        .count();
    assert!(
        sitting >= 2 && !outcomes.contains(&Outcome::Granted),
        "{outcomes:?}"
    );
    assert!(
        err.to_string().contains("sits out"),
        "the error says why: {err}"
    );
    // The failed attempt's release is queued behind it and may still be on its way (its
    // script first meets NOSCRIPT on a fresh connection) when acquire returns.
    assert_eq!(
        cluster.exists_after("grace:a", Duration::from_secs(2)),
        0,
        "the failed attempt was released"
    );

    // Once uptime passes the grace (whole seconds, as INFO reports it), they vote: the client
    // reconnects to read INFO again only on a new connection, so wait out the eligibility instant.
    std::thread::sleep(
        (started + grace + Duration::from_millis(1100)).saturating_duration_since(Instant::now()),
    );
    let lock = client.acquire(&["grace:a"], TTL).expect("after the grace");
    client.release(&lock).expect("release");

    // Restart two of three: their run_id changes, they sit out, quorum is lost for the grace.
    cluster.restart(0);
    cluster.restart(1);
    let deadline = Instant::now() + Duration::from_secs(3);
    let err = loop {
        // Wait until the client has reconnected to both (before that they are NotReady).
        match client.acquire(&["grace:b"], TTL) {
            Err(e)
                if e.attempts()[0].nodes[..2]
                    .iter()
                    .all(|r| matches!(r.outcome, Outcome::SittingOut { .. })) =>
            {
                break e
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("restarted nodes voted: {other:?}"),
        }
    };
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let back = Instant::now() + grace + Duration::from_millis(300);
    let lock = loop {
        match client.acquire(&["grace:b"], TTL) {
            Ok(lock) => break lock,
            Err(_) if Instant::now() < back + Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("restarted nodes never rejoined: {e}"),
        }
    };
    assert!(
        Instant::now() + Duration::from_millis(400) >= back,
        "rejoined before the grace passed"
    );
    client.release(&lock).expect("release");
}
