//! Core behaviour the simulator found wrong. All four are fixed (per-attempt tokens; the clock
//! floor of fencing tokens; late replies dropped before classification; extend never shortens)
//! and their tests run normally, as regression guards. A bug found but not yet fixed gets a
//! test that FAILS against the current core, `#[ignore]`d so that the suite stays green (run
//! them with `cargo test -p redlock-sim --test sim_findings -- --ignored`). Each bug has a small
//! deterministic reproduction through the public `Engine` API (model nodes driven by hand) and,
//! where the simulator found it, the simulator sweep that finds it (with a replayable seed).
//!
//! 1. A failed attempt's cleanup release, sent on a connection the engine then gives up on, can
//!    still reach the node after the next attempt (same token) took the key on a new connection,
//!    and deletes it: the lock is believed held by a client whose keys are gone from a quorum.
//!    Mutual exclusion breaks with clocks in bound, no restarts, no pauses.
//! 2. Fence counters are keys: a node that restarts without persistence forgets them, and the
//!    next quorum that includes it can hand out a token below one already handed out.
//!    `restart_grace` alone does not help (counters never expire; waiting does not bring them
//!    back). Fixed by the clock floor: a token is at least the acquiring client's wall clock in
//!    microseconds, which has moved past every earlier token by the time the restarted node may
//!    vote again, as long as wall clocks agree within the grace.
//! 3. A reply is classified by the operation's *current* stage, not by the round it answers: a
//!    late fenced-acquire reply after the fence round started (or a late fence reply after a
//!    retry began) is "unexpected", and the connection is poisoned, failing the current round's
//!    requests on it too. Under short ttls and contention this cascades (retries keep failing).
//! 4. `extend` with a ttl shorter than the validity left shortens the keys on the nodes, while
//!    the caller's current `Lock` (in use until the extend completes, and after it fails) still
//!    claims the old validity; `Done::Extended` may also carry an *earlier* `valid_until`,
//!    although `Lock`'s docs promise a later one.
#![allow(clippy::print_stderr)]

use redlock_core::{Event, NodeId, Options};
use redlock_sim::wall_clock;
use redlock_sim::Done;
use redlock_sim::Rig;
use redlock_sim::{self as sim, Check, Scenario};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn acquired(rig: &Rig, op: redlock_core::OpId) -> redlock_core::Lock {
    match rig.result(op) {
        Some(Ok(Done::Acquired(lock))) => lock.clone(),
        other => panic!("expected a lock, got {other:?}"),
    }
}

fn holding(rig: &Rig, key: &[u8], token: &redlock_core::Token) -> usize {
    rig.nodes
        .iter()
        .filter(|n| n.get(rig.now, 0, key).as_deref() == Some(token.as_str().as_bytes()))
        .count()
}

fn sweep_finds_nothing(binary_test: &str, checks: &[Check], make: impl Fn(u64) -> Scenario + Sync) {
    // Regression guards: the bugs showed within the first few dozen seeds.
    sim::check_sweep("sim_findings", binary_test, 500, checks, make);
}

// ----- 1. stale cleanup release ---------------------------------------------------------------

#[test]
fn stale_cleanup_release_cannot_delete_a_later_attempts_key() {
    let mut o = Options::default();
    o.retry_count = Some(1);
    o.retry_delay = ms(100);
    o.retry_jitter = Duration::ZERO;
    let mut rig = Rig::new(3, o, 1);
    rig.connect_all();
    rig.pump();
    // Someone else holds "r": on node 0 for long, on nodes 1 and 2 for 50 ms.
    rig.nodes[0].set(
        rig.now,
        0,
        b"r",
        b"someone-else",
        Some(Duration::from_secs(60)),
    );
    for n in 1..3 {
        rig.nodes[n].set(rig.now, 0, b"r", b"someone-else", Some(ms(50)));
    }
    let token = Rig::token(7);
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            Duration::from_secs(10),
            token.clone(),
            wall_clock(rig.now),
        )
        .unwrap();
    rig.drain();
    // Attempt 1: every node refuses; the engine sends its cleanup release to every node.
    for n in 0..3 {
        let link = rig.links[n].as_mut().unwrap();
        link.deliver(&mut rig.nodes[n], rig.now, None);
    }
    for n in 0..3 {
        let replies = rig.links[n].as_mut().unwrap().read(None);
        rig.engine.handle_input(rig.now, NodeId::new(n), &replies);
        rig.drain();
    }
    // The connection to node 2 goes quiet; the engine gives up on it and reconnects. The cleanup
    // bytes already written to it are still on their way (FIN after data, a retransmission).
    let mut stale = rig.links[2].take().unwrap();
    assert!(stale.in_flight() > 0, "the cleanup release is in flight");
    rig.engine.handle_disconnected(rig.now, NodeId::new(2));
    rig.connect(2);
    // Attempt 2 (same token) after the retry delay: nodes 1 and 2 grant.
    rig.advance(ms(100));
    let lock = acquired(&rig, op);
    // Each attempt writes its own token (the fix): the lock carries attempt 2's.
    assert_ne!(lock.token(), &token, "a retry writes a token of its own");
    assert_eq!(holding(&rig, b"r", lock.token()), 2);
    // The stale cleanup reaches node 2 and runs.
    stale.deliver(&mut rig.nodes[2], rig.now, None);
    assert!(lock.is_valid(rig.now));
    let n = holding(&rig, b"r", lock.token());
    assert!(
        n >= 2,
        "the lock is valid but only {n} node holds its token: attempt 1's cleanup deleted \
         attempt 2's key on node 2 (same token), so nodes 0 and 2 can be taken by another client"
    );
}

#[test]
fn sweep_safety_with_abandoned_connections_still_delivering() {
    sweep_finds_nothing(
        "sweep_safety_with_abandoned_connections_still_delivering",
        &[Check::Exclusion],
        |s| {
            let mut sc = Scenario::safety(s);
            sc.flush_on_close = 0.5;
            sc
        },
    );
}

// ----- 2. fence counters lost in a restart ----------------------------------------------------

/// Fixed by the clock floor: a token is `max(largest counter + 1, wall clock in µs)`, so client
/// B, whose acquire is granted only after node 1 sat out the grace, gets a token above A's even
/// though node 1 forgot the counter and B's wall clock runs 900 ms behind A's (less than the
/// 1 s grace).
#[test]
fn fencing_tokens_keep_increasing_across_an_empty_restart() {
    let grace = Duration::from_secs(1);
    let mut o = Options::default();
    o.fencing = true;
    o.restart_grace = Some(grace);
    o.retry_count = Some(0);
    let mut a = Rig::new(3, o.clone(), 1);
    a.now += Duration::from_secs(5); // the nodes have been up longer than the grace
                                     // Client A reaches nodes 0 and 1 (node 2 is cut off from it).
    a.connect(0);
    a.connect(1);
    a.pump();
    for n in 0..2 {
        a.nodes[n].set(a.now, 0, b"{r}:fence", b"41", None);
    }
    let op = a
        .engine
        .acquire(
            a.now,
            ["r"],
            Duration::from_secs(1),
            Rig::token(1),
            a.wall(),
        )
        .unwrap();
    a.run_until_complete(op, 10).unwrap();
    let lock = acquired(&a, op);
    let first = lock.fencing_token().unwrap();
    assert!(
        first > 42,
        "the floor (A's wall clock in µs) is above the counters"
    );
    let rel = a.engine.release(a.now, &lock);
    a.run_until_complete(rel, 10).unwrap();
    // Node 1 restarts without persistence; client B reaches nodes 1 and 2 as soon as node 1 may
    // vote again, with a wall clock 900 ms behind A's.
    a.nodes[1].restart(a.now, false);
    let mut b = Rig::new(3, o, 2);
    b.nodes = std::mem::take(&mut a.nodes);
    b.now = a.now + grace;
    b.connect(1);
    b.connect(2);
    b.pump();
    let behind = b.wall() - ms(900);
    let op = b
        .engine
        .acquire(b.now, ["r"], Duration::from_secs(1), Rig::token(2), behind)
        .unwrap();
    b.run_until_complete(op, 10).unwrap();
    let second = acquired(&b, op).fencing_token().unwrap();
    assert!(
        second > first,
        "token {second} handed out after token {first}: node 1 forgot its counter in the restart"
    );
}

/// The simulator's reproduction, now a regression guard: restarts that always lose data, with
/// the floor's clock assumptions (wall clocks within half the grace).
#[test]
fn sweep_fencing_with_empty_restarts() {
    sweep_finds_nothing(
        "sweep_fencing_with_empty_restarts",
        &[Check::TokenOrder, Check::StaleWrite],
        |s| {
            let mut sc = Scenario::fencing_empty_restarts(s);
            sc.keep_data = 0.0;
            sc
        },
    );
}

// ----- 3. late replies classified by the current stage ----------------------------------------

#[test]
fn a_late_reply_of_a_decided_round_leaves_the_connection_alone() {
    let mut o = Options::default();
    o.fencing = true;
    let mut rig = Rig::new(3, o, 1);
    rig.connect_all();
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            Duration::from_secs(10),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    rig.drain();
    for n in 0..3 {
        let link = rig.links[n].as_mut().unwrap();
        link.deliver(&mut rig.nodes[n], rig.now, None);
    }
    // Nodes 0 and 1 answer first: a quorum of grants, the fence round goes out.
    for n in 0..2 {
        let replies = rig.links[n].as_mut().unwrap().read(None);
        rig.engine.handle_input(rig.now, NodeId::new(n), &replies);
        rig.drain();
    }
    // Node 2's (well-formed) grant of round one arrives after that.
    let replies = rig.links[2].as_mut().unwrap().read(None);
    rig.engine.handle_input(rig.now, NodeId::new(2), &replies);
    rig.drain();
    let broken: Vec<&Event> = rig
        .events
        .iter()
        .filter(|e| matches!(e, Event::Reconnect { .. }))
        .collect();
    assert!(
        broken.is_empty(),
        "a late reply broke the connection: {broken:?}"
    );
    rig.run_until_complete(op, 10).unwrap();
    let _ = acquired(&rig, op);
}

// ----- 4. extend with a shorter ttl -----------------------------------------------------------

#[test]
fn a_failed_extend_leaves_the_current_lock_intact() {
    let mut o = Options::default();
    o.retry_count = Some(0);
    o.node_timeout = ms(50);
    let mut rig = Rig::new(3, o, 1);
    rig.connect_all();
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            Duration::from_secs(10),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    rig.run_until_complete(op, 10).unwrap();
    let lock = acquired(&rig, op);
    // Extend to 100 ms: every node runs it, every reply is lost, the extend times out.
    let ext = rig.engine.extend(rig.now, &lock, ms(100)).unwrap();
    rig.drain();
    for n in 0..3 {
        let link = rig.links[n].as_mut().unwrap();
        link.deliver(&mut rig.nodes[n], rig.now, None);
        let _lost = link.read(None);
    }
    rig.advance(ms(200));
    assert!(
        matches!(rig.result(ext), Some(Err(_))),
        "{:?}",
        rig.result(ext)
    );
    assert!(
        lock.is_valid(rig.now),
        "the current lock still claims ~10 s"
    );
    let n = holding(&rig, b"r", lock.token());
    assert!(
        n >= 2,
        "the lock is valid but {n} nodes hold it: the failed extend cut the keys to 100 ms"
    );
}

#[test]
fn sweep_extends_with_shorter_ttls() {
    sweep_finds_nothing(
        "sweep_extends_with_shorter_ttls",
        &[Check::Exclusion],
        |s| {
            let mut sc = Scenario::calm(s, 3, 3);
            sc.extend_any_ttl = true;
            sc.flush_on_close = 0.0;
            sc.ttl = (ms(20), ms(300));
            sc.options.retry_count = Some(20);
            sc.options.retry_delay = ms(2);
            sc.options.retry_jitter = ms(1);
            sc.spike = 0.05;
            sc.spike_max = ms(300);
            sc.loss = 0.01;
            sc.think = (ms(1), ms(5));
            sc
        },
    );
}
