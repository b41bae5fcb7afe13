//! Regression tests for the NOSCRIPT → EVAL fallback keeping a connection's scripts in order.
//!
//! The fallback used to re-send a script that hit NOSCRIPT at the back of the pipeline, after
//! scripts that had been pipelined behind it had already run. A cleanup release (after a failed
//! attempt, or a cancel) could then run *after* the next attempt's acquire with the same token
//! and delete the key that attempt had just been granted: the lock was reported as held while a
//! quorum of nodes no longer held it, and a second client could take it too.

use redlock_core::{Config, Engine, NodeConfig, NodeId, OpError, Options, Token, ACQUIRE};
use redlock_sim::wall_clock;
use redlock_sim::Link;
use redlock_sim::Rig;
use redlock_sim::{completion, Done};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn acquired(r: Result<Done, OpError>) -> redlock_core::Lock {
    match r {
        Ok(Done::Acquired(lock)) => lock,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

fn config(n: u16, retries: u32) -> Config {
    let mut o = Options::default();
    o.retry_count = Some(retries);
    o.retry_delay = ms(100);
    o.retry_jitter = Duration::ZERO;
    Config::new(
        (0..n).map(|i| NodeConfig::new("model", 7000 + i)).collect(),
        o,
    )
}

/// A first attempt is refused everywhere; on two nodes its cleanup release hits NOSCRIPT (the
/// release script was flushed, the acquire script is cached) while the retry's acquire is
/// already queued behind it. The retry must end up holding its keys on a quorum, and a second
/// client must not be able to take the lock while the first one's is valid.
#[test]
fn a_cleanup_after_noscript_does_not_delete_the_next_attempts_keys() {
    let mut rig = Rig::with_config(config(3, 1), 1, std::time::Instant::now());
    let now = rig.now;
    for n in &mut rig.nodes {
        // Someone else holds the resource for 50 ms: the first attempt is refused everywhere.
        n.set(now, 0, b"r", b"someone-else", Some(ms(50)));
    }
    rig.connect_all();
    rig.pump();
    for n in &mut rig.nodes[..2] {
        // After a SCRIPT FLUSH, someone ran the acquire script on nodes 0 and 1 (so it is cached
        // again there), but not the release script.
        n.flush_scripts();
        n.load_script(ACQUIRE);
    }
    let op = rig
        .engine
        .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    // Attempt 1: all refuse; the engine queues a cleanup release everywhere.
    rig.drain();
    for i in 0..3 {
        let link = rig.links[i].as_mut().unwrap();
        link.deliver(&mut rig.nodes[i], now, None);
        let bytes = link.read(None);
        rig.engine.handle_input(now, NodeId::new(i), &bytes);
    }
    rig.drain();
    // Nodes 0 and 1 are slow: the cleanup and the retry queue up behind each other.
    rig.nodes[0].set_stalled(true);
    rig.nodes[1].set_stalled(true);
    rig.pump();
    rig.advance(ms(100));
    assert_eq!(rig.result(op), None);
    // They catch up: the cleanup hits NOSCRIPT, then the retry's acquire is granted.
    rig.nodes[0].set_stalled(false);
    rig.nodes[1].set_stalled(false);
    let lock = acquired(rig.run_until_complete(op, 0));
    rig.pump();
    assert!(lock.is_valid(rig.now));
    assert!(
        rig.holders(b"r") >= rig.engine.quorum(),
        "a valid lock is held by only {} node(s)",
        rig.holders(b"r")
    );

    // A second client tries the same resource while the first lock is valid.
    let mut other = Engine::new(config(3, 0), rig.now, 2).unwrap();
    let mut links: Vec<Link> = rig
        .nodes
        .iter_mut()
        .map(|n| Link::open(n).unwrap())
        .collect();
    for i in 0..3 {
        other.handle_connected(rig.now, NodeId::new(i));
    }
    let token = Token::from_random(&[2; 20]).unwrap();
    let op2 = other
        .acquire(rig.now, ["r"], ms(10_000), token, wall_clock(rig.now))
        .unwrap();
    let mut result = None;
    for _ in 0..10 {
        while let Some((node, bytes)) = other.poll_transmit() {
            links[node.index()].write(&bytes);
        }
        for (i, link) in links.iter_mut().enumerate() {
            link.deliver(&mut rig.nodes[i], rig.now, None);
            let bytes = link.read(None);
            other.handle_input(rig.now, NodeId::new(i), &bytes);
        }
        while let Some(event) = other.poll_event() {
            if let Some((op, r)) = completion(&event) {
                assert_eq!(op, op2);
                result = Some(r);
            }
        }
    }
    let result = result.expect("the second acquire completed");
    assert!(
        !matches!(result, Ok(Done::Acquired(_))),
        "two clients hold \"r\" at once"
    );
}

/// A cancelled acquire whose script hits NOSCRIPT, with its cleanup release pipelined behind
/// it (and cached, so it runs), must not leave its key behind: the release runs again after
/// the re-sent acquire.
#[test]
fn a_cancel_after_noscript_leaves_nothing_behind() {
    let mut rig = Rig::with_config(config(1, 0), 1, std::time::Instant::now());
    rig.connect_all();
    rig.pump();
    let now = rig.now;
    // The cache was flushed, then someone ran the release script: only it is cached.
    rig.nodes[0].flush_scripts();
    rig.nodes[0].load_script(redlock_core::RELEASE);
    let op = rig
        .engine
        .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    rig.engine.cancel(now, op).unwrap();
    rig.pump();
    assert!(matches!(
        rig.result(op),
        Some(Err(e)) if e.failure == redlock_core::Failure::Cancelled
    ));
    assert_eq!(rig.holders(b"r"), 0, "the cancelled acquire left its key");
}
