//! Unit tests of the engine's quorum rules, through the public API of `redlock-core`, against
//! model nodes (`redlock_sim::Node`) wired up by `redlock_sim::Rig`.

use bytes::Bytes;
use redlock_core::{
    script_sha, Config, ConnError, Engine, Error, Event, Failure, LinkId, NodeConfig, NodeId,
    OpError, Options, Outcome, Protocol, ACQUIRE, EXTEND, RELEASE,
};
use redlock_sim::wall_clock;
use redlock_sim::Rig;
use redlock_sim::{completion, Done};
use redlock_sim::{Fault, FaultAction, Match, Value, NOSCRIPT};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Options with no retries and no jitter unless a test says otherwise.
fn options() -> Options {
    let mut o = Options::default();
    o.retry_count = Some(0);
    o.retry_jitter = Duration::ZERO;
    o
}

const OTHER: &[u8] = b"someone-else";

/// Which lock script a parsed command runs, if any.
fn script_name(cmd: &[Bytes]) -> Option<&'static str> {
    let name = cmd.first()?.to_ascii_uppercase();
    let id = String::from_utf8_lossy(cmd.get(1)?).into_owned();
    let id = match name.as_slice() {
        b"EVALSHA" => id,
        b"EVAL" => script_sha(&id),
        _ => return None,
    };
    [
        ("acquire", ACQUIRE),
        ("extend", EXTEND),
        ("release", RELEASE),
    ]
    .into_iter()
    .find(|(_, src)| script_sha(src) == id)
    .map(|(n, _)| n)
}

fn outcomes(e: &OpError, attempt: usize) -> Vec<Outcome> {
    e.attempts[attempt]
        .nodes
        .iter()
        .map(|r| r.outcome.clone())
        .collect()
}

fn acquired(r: Result<Done, OpError>) -> redlock_core::Lock {
    match r {
        Ok(Done::Acquired(lock)) => lock,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

fn released(r: Result<Done, OpError>) -> redlock_core::Released {
    match r {
        Ok(Done::Released(r)) => r,
        other => panic!("expected Released, got {other:?}"),
    }
}

fn failed(r: Result<Done, OpError>) -> OpError {
    match r {
        Err(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Acquires `r` on every node of a connected rig (all grant).
fn held_everywhere(rig: &mut Rig) -> redlock_core::Lock {
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let lock = acquired(rig.run_until_complete(op, 0));
    rig.pump();
    assert_eq!(rig.holders(b"r"), rig.nodes.len());
    lock
}

/// What each node did in a release.
fn released_outcomes(r: &redlock_core::Released) -> Vec<Outcome> {
    r.attempt.nodes.iter().map(|n| n.outcome.clone()).collect()
}

#[test]
fn two_grants_and_one_refusal_acquire() {
    let mut rig = Rig::new(3, options(), 1);
    let now = rig.now;
    rig.nodes[2].set(now, 0, b"r", OTHER, Some(ms(60_000)));
    rig.connect_all();
    let op = rig
        .engine
        .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    let lock = acquired(rig.run_until_complete(op, 0));
    assert_eq!(lock.attempts(), 1);
    assert_eq!(lock.resources(), ["r".to_string()]);
    for i in 0..2 {
        assert_eq!(
            rig.nodes[i].get(rig.now, 0, b"r").as_deref(),
            Some(lock.token().as_str().as_bytes())
        );
    }
    assert_eq!(rig.nodes[2].get(rig.now, 0, b"r").as_deref(), Some(OTHER));
}

#[test]
// Scripted path: a two-resource lock (a single resource goes out as SET NX PX, see
// core/tests/set_nx.rs).
fn two_refusals_fail_as_locked_after_every_retry() {
    let mut o = options();
    o.retry_count = Some(2);
    o.retry_delay = ms(50);
    let mut rig = Rig::new(3, o, 1);
    let now = rig.now;
    for i in [1, 2] {
        rig.nodes[i].set(now, 0, b"r", OTHER, Some(ms(60_000)));
    }
    rig.connect_all();
    let op = rig
        .engine
        .acquire(now, ["r", "r2"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    let err = failed(rig.run_until_complete(op, 10));
    assert_eq!(err.failure, Failure::Locked);
    assert_eq!(err.attempts.len(), 3, "1 attempt + retry_count retries");
    for a in 0..3 {
        assert_eq!(
            outcomes(&err, a),
            [Outcome::Granted, Outcome::Refused, Outcome::Refused]
        );
    }
    assert_eq!(rig.now, now + ms(100), "two retry delays, no jitter");
    // Each failed attempt released what it took: node 0 is free again.
    rig.pump();
    assert_eq!(rig.nodes[0].get(rig.now, 0, b"r"), None);
    let acquires = |i: usize| {
        rig.commands_to(i)
            .iter()
            .filter(|c| &c[0][..] == b"EVALSHA" && script_name(c) == Some("acquire"))
            .count()
    };
    assert_eq!((acquires(0), acquires(1), acquires(2)), (3, 3, 3));
}

#[test]
fn refusal_by_a_quorum_is_decided_without_waiting_for_the_rest() {
    let mut rig = Rig::new(3, options(), 1);
    let now = rig.now;
    for i in [1, 2] {
        rig.nodes[i].set(now, 0, b"r", OTHER, None);
    }
    rig.nodes[0].set_stalled(true);
    rig.connect_all();
    let op = rig
        .engine
        .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    rig.pump();
    let err = failed(rig.result(op).cloned().expect("decided with no timeout"));
    assert_eq!(err.failure, Failure::Locked);
    assert_eq!(
        outcomes(&err, 0),
        [Outcome::NotAwaited, Outcome::Refused, Outcome::Refused]
    );
    assert_eq!(rig.now, now);
}

#[test]
fn disconnected_nodes_are_unreachable() {
    let mut o = options();
    o.retry_count = Some(1);
    let mut rig = Rig::new(3, o, 1);
    let now = rig.now;
    let op = rig
        .engine
        .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    let err = failed(rig.run_until_complete(op, 5));
    assert_eq!(err.failure, Failure::Unreachable);
    assert_eq!(err.attempts.len(), 2);
    for a in 0..2 {
        assert_eq!(outcomes(&err, a), vec![Outcome::NotReady; 3]);
    }
    assert!(rig.sent.is_empty(), "nothing to send without connections");
}

#[test]
fn silent_nodes_time_out_and_are_unreachable() {
    let mut rig = Rig::new(3, options(), 1);
    let now = rig.now;
    rig.connect_all();
    for n in &mut rig.nodes[1..] {
        n.set_stalled(true);
    }
    let op = rig
        .engine
        .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
        .unwrap();
    let err = failed(rig.run_until_complete(op, 5));
    assert_eq!(err.failure, Failure::Unreachable);
    assert_eq!(
        outcomes(&err, 0),
        [Outcome::Granted, Outcome::Timeout, Outcome::Timeout]
    );
    assert_eq!(rig.now, now + Options::default().node_timeout);
    let reconnects: Vec<usize> = rig
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnect {
                link,
                reason: ConnError::Timeout(_),
            } => Some(link.index()),
            _ => None,
        })
        .collect();
    assert_eq!(reconnects, [1, 2]);
    assert!(!rig.engine.is_connected(NodeId::new(1)));
    // A late reply on the abandoned socket is not matched to anything.
    rig.engine.handle_input(rig.now, NodeId::new(1), b":1\r\n");
    assert_eq!(rig.engine.poll_event(), None);
}

#[test]
fn validity_is_t0_plus_ttl_minus_drift() {
    let mut o = options();
    o.drift_factor = 0.01;
    let mut rig = Rig::new(3, o.clone(), 1);
    let t0 = rig.now;
    rig.connect_all();
    for n in &mut rig.nodes {
        n.set_stalled(true);
    }
    let ttl = ms(1000);
    let op = rig
        .engine
        .acquire(t0, ["r"], ttl, Rig::token(1), wall_clock(t0))
        .unwrap();
    rig.pump();
    rig.now += ms(37); // the replies take a while: validity still counts from t0
    for n in &mut rig.nodes {
        n.set_stalled(false);
    }
    let lock = acquired(rig.run_until_complete(op, 0));
    assert_eq!(o.drift(ttl), ms(12), "1000 ms × 0.01 + 2 ms");
    assert_eq!(lock.valid_until(), t0 + ttl - ms(12));
    assert_eq!(lock.remaining(rig.now), ms(1000 - 12 - 37));
    assert!(lock.is_valid(t0 + ms(987)));
    assert!(!lock.is_valid(t0 + ms(988)));
    // The nodes were told the full ttl, counted from when they ran the script.
    assert_eq!(rig.nodes[0].ttl(rig.now, 0, b"r"), Some(Some(ttl)));
}

#[test]
fn a_quorum_too_late_to_leave_validity_is_no_lock() {
    let mut o = options();
    o.node_timeout = ms(10_000);
    let mut rig = Rig::new(1, o, 1);
    let t0 = rig.now;
    rig.connect_all();
    rig.nodes[0].set_stalled(true);
    let op = rig
        .engine
        .acquire(t0, ["r"], ms(100), Rig::token(1), wall_clock(t0))
        .unwrap();
    rig.pump();
    rig.now += ms(99); // 100 ms - drift (3 ms) has passed: a yes now is useless
    rig.nodes[0].set_stalled(false);
    rig.pump();
    let err = failed(rig.result(op).cloned().expect("decided"));
    assert_eq!(err.failure, Failure::Expired);
    rig.pump();
    assert_eq!(rig.holders(b"r"), 0, "the late yes was released");
}

#[test]
fn extend_renews_and_refuses_expired_or_lost_locks() {
    let mut rig = Rig::new(3, options(), 1);
    rig.connect_all();
    let ttl = ms(1000);
    let op = rig
        .engine
        .acquire(rig.now, ["r", "s"], ttl, Rig::token(1), wall_clock(rig.now))
        .unwrap();
    let lock = acquired(rig.run_until_complete(op, 0));

    rig.now += ms(500);
    let t1 = rig.now;
    let op = rig.engine.extend(t1, &lock, ms(2000)).unwrap();
    let lock2 = match rig.run_until_complete(op, 0) {
        Ok(Done::Extended(l)) => l,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        lock2.valid_until(),
        t1 + ms(2000) - Options::default().drift(ms(2000))
    );
    assert_eq!(lock2.token(), lock.token());
    assert_eq!(rig.nodes[1].ttl(rig.now, 0, b"s"), Some(Some(ms(2000))));

    // The original lock has expired by now: extending it is a synchronous error.
    let late = lock.valid_until();
    let sent = rig.sent.len();
    assert_eq!(rig.engine.extend(late, &lock, ttl), Err(Error::Expired));
    rig.drain();
    assert_eq!(rig.sent.len(), sent, "nothing sent for an expired lock");

    // Someone else took two nodes' keys: extending reports the lock as not held.
    for i in [0, 1] {
        rig.nodes[i].set(rig.now, 0, b"s", OTHER, None);
    }
    let op = rig.engine.extend(rig.now, &lock2, ttl).unwrap();
    let err = failed(rig.run_until_complete(op, 20));
    assert_eq!(err.failure, Failure::NotHeld);
}

#[test]
fn release_reports_how_many_nodes_confirmed() {
    let mut rig = Rig::new(3, options(), 1);
    rig.connect_all();
    let lock = held_everywhere(&mut rig);
    let now = rig.now;
    assert!(rig.nodes[1].del(now, 0, b"r"));
    let op = rig.engine.release(rig.now, &lock);
    let released = released(rig.run_until_complete(op, 0));
    assert_eq!(released.confirmed, 2);
    assert_eq!(
        released_outcomes(&released),
        [
            Outcome::Released(1),
            Outcome::Released(0),
            Outcome::Released(1)
        ]
    );
    assert_eq!(rig.holders(b"r"), 0);
}

#[test]
fn cancelling_an_acquire_completes_it_and_releases_on_connected_nodes() {
    let mut rig = Rig::new(3, options(), 1);
    rig.connect(0);
    rig.connect(1);
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    rig.drain();
    assert_eq!(
        rig.sent.len(),
        2,
        "the acquire went to the two connected nodes"
    );
    rig.engine.cancel(rig.now, op).unwrap();
    match rig.engine.poll_event() {
        Some(Event::Acquired {
            op: done,
            result: Err(e),
        }) => {
            assert_eq!(done, op);
            assert_eq!(e.failure, Failure::Cancelled);
        }
        other => panic!("{other:?}"),
    }
    let mut to = Vec::new();
    while let Some((node, bytes)) = rig.engine.poll_transmit() {
        let cmds = redlock_sim::parse_commands(&bytes).unwrap();
        assert_eq!(cmds.len(), 1);
        assert_eq!(script_name(&cmds[0]), Some("release"));
        assert_eq!(&cmds[0][3][..], b"r");
        assert_eq!(&cmds[0][4][..], Rig::token(1).as_str().as_bytes());
        rig.links[node.index()].as_mut().unwrap().write(&bytes);
        to.push(node.index());
    }
    to.sort_unstable();
    assert_eq!(
        to,
        [0, 1],
        "a release for every connected node, none for node 2"
    );
    assert_eq!(rig.engine.cancel(rig.now, op), Err(Error::UnknownOp(op)));
    // The acquire ran before the release on each node: nothing is left behind.
    rig.pump();
    assert_eq!(rig.holders(b"r"), 0);
    assert_eq!(rig.engine.in_flight(), 0);
}

#[test]
fn retries_wait_retry_delay_plus_or_minus_jitter() {
    let delay = ms(100);
    let jitter = ms(30);
    let mut gaps = Vec::new();
    for seed in 0..20 {
        let mut o = options();
        o.retry_count = Some(3);
        o.retry_delay = delay;
        o.retry_jitter = jitter;
        let mut rig = Rig::new(1, o, seed);
        let now = rig.now;
        rig.nodes[0].set(now, 0, b"r", OTHER, None);
        rig.connect_all();
        let op = rig
            .engine
            .acquire(now, ["r"], ms(10_000), Rig::token(1), wall_clock(now))
            .unwrap();
        rig.pump();
        for _ in 0..3 {
            let next = rig.engine.poll_timeout().expect("a retry is scheduled");
            let gap = next - rig.now;
            assert!(
                gap >= delay - jitter && gap <= delay + jitter,
                "seed {seed}: retry after {gap:?}"
            );
            gaps.push(gap);
            assert!(rig.fire_timeout());
        }
        assert_eq!(failed(rig.result(op).cloned().unwrap()).attempts.len(), 4);
    }
    gaps.sort_unstable();
    gaps.dedup();
    assert!(gaps.len() > 10, "jitter spreads retries: {gaps:?}");
}

/// Runs a fixed scenario with retries (and so jitter) and returns everything observable.
fn scripted_run(seed: u64, start: Instant) -> (Vec<(LinkId, Bytes)>, Vec<Event>) {
    let mut o = options();
    o.retry_count = Some(4);
    o.retry_delay = ms(40);
    o.retry_jitter = ms(20);
    let nodes = (0..3).map(|i| NodeConfig::new("model", 7000 + i)).collect();
    let mut rig = Rig::with_config(Config::new(nodes, o), seed, start);
    rig.connect_all();
    for i in [0, 1] {
        rig.nodes[i].set(start, 0, b"r", OTHER, Some(ms(150)));
    }
    let a = rig
        .engine
        .acquire(start, ["r"], ms(1000), Rig::token(1), wall_clock(start))
        .unwrap();
    let b = rig
        .engine
        .acquire(
            start,
            ["r", "s"],
            ms(1000),
            Rig::token(2),
            wall_clock(start),
        )
        .unwrap();
    rig.run_until_complete(a, 50).ok();
    rig.run_until_complete(b, 50).ok();
    (rig.sent, rig.events)
}

#[test]
fn same_seed_and_inputs_give_identical_output() {
    let start = Instant::now();
    let one = scripted_run(7, start);
    let two = scripted_run(7, start);
    assert!(!one.0.is_empty() && !one.1.is_empty());
    assert_eq!(one, two);
    let mut differs = false;
    for seed in 8..16 {
        differs |= scripted_run(seed, start).1 != one.1;
    }
    assert!(differs, "the seed drives the retry jitter");
}

#[test]
// Two resources, so the acquire is a script (one resource is a plain SET NX PX).
fn noscript_is_handled_transparently() {
    let mut rig = Rig::new(3, options(), 1);
    rig.connect_all();
    rig.pump();
    // The node lost its scripts after the connection was set up (SCRIPT FLUSH).
    for n in &mut rig.nodes {
        n.flush_scripts();
    }
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r", "r2"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let lock = acquired(rig.run_until_complete(op, 0));
    rig.pump();
    let scripts = |rig: &Rig, i: usize| -> Vec<(Bytes, &'static str)> {
        rig.commands_to(i)
            .iter()
            .filter_map(|c| script_name(c).map(|s| (c[0].clone(), s)))
            .collect()
    };
    assert_eq!(
        scripts(&rig, 0),
        [
            (Bytes::from_static(b"EVALSHA"), "acquire"),
            (Bytes::from_static(b"EVAL"), "acquire")
        ],
        "EVAL after NOSCRIPT"
    );
    assert!(rig.nodes[0].script_cached(&script_sha(ACQUIRE)));
    // Cached now: the release goes out as EVALSHA, NOSCRIPT again after another flush.
    rig.nodes[1].flush_scripts();
    let op = rig.engine.release(rig.now, &lock);
    let r = released(rig.run_until_complete(op, 0));
    assert!(r.confirmed >= 2, "{r:?}");
    // The release returns at a majority; node 1's re-sent EVAL deletes there too.
    rig.pump();
    assert_eq!(rig.holders(b"r"), 0);
    let last = |i: usize| scripts(&rig, i).last().unwrap().0.clone();
    assert_eq!(&last(0)[..], b"EVAL", "release not cached yet on node 0");
    assert_eq!(&last(1)[..], b"EVAL", "release flushed on node 1");
    for e in &rig.events {
        if let Some((_, Err(e))) = completion(e) {
            panic!("{e}");
        }
    }
}

#[test]
fn noscript_to_eval_as_well_is_an_error_reply() {
    // A node whose script cache never keeps anything: SCRIPT LOAD and EVAL "succeed" without
    // caching, and EVAL itself claims NOSCRIPT.
    let broken = |rig: &mut Rig| {
        rig.nodes[0].inject(Fault::new(
            Match::Command("SCRIPT".into()),
            FaultAction::Reply(Value::bulk("0000000000000000000000000000000000000000")),
        ));
        rig.nodes[0].inject(Fault::new(
            Match::Command("EVAL".into()),
            FaultAction::Reply(Value::error(NOSCRIPT)),
        ));
    };
    let mut rig = Rig::new(3, options(), 1);
    broken(&mut rig);
    rig.connect_all();
    // Two healthy nodes still make a quorum.
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r", "r2"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let _ = acquired(rig.run_until_complete(op, 0));
    // Alone, the broken node fails the operation with its error reply.
    let mut rig = Rig::new(1, options(), 1);
    broken(&mut rig);
    rig.connect_all();
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r", "r2"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let err = failed(rig.run_until_complete(op, 0));
    assert_eq!(err.failure, Failure::Unreachable);
    assert_eq!(outcomes(&err, 0), [Outcome::ErrorReply(NOSCRIPT.into())]);
    assert!(
        rig.engine.is_connected(NodeId::new(0)),
        "an error reply is not a broken stream"
    );
}

#[test]
fn a_reply_of_the_wrong_type_breaks_the_connection() {
    let mut rig = Rig::new(1, options(), 1);
    rig.nodes[0].inject(
        Fault::new(
            Match::Command("EVALSHA".into()),
            FaultAction::Raw(Bytes::from_static(b"+OK\r\n")),
        )
        .times(1),
    );
    rig.connect_all();
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r", "r2"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let err = failed(rig.run_until_complete(op, 0));
    assert!(matches!(
        outcomes(&err, 0)[..],
        [Outcome::Broken(ConnError::UnexpectedReply(_))]
    ));
    assert!(rig.events.iter().any(|e| matches!(
        e,
        Event::Reconnect {
            reason: ConnError::UnexpectedReply(_),
            ..
        }
    )));
    // Reconnecting brings the node back.
    assert!(rig.connect(0));
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["q"],
            ms(10_000),
            Rig::token(2),
            wall_clock(rig.now),
        )
        .unwrap();
    let _ = acquired(rig.run_until_complete(op, 0));
}

#[test]
fn handshake_with_credentials_db_name_and_resp3() {
    let mut o = options();
    o.protocol = Protocol::Resp3;
    o.client_name = Some("worker-1".into());
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut nc = NodeConfig::new("model", 7000 + i);
        nc.username = Some("app".into());
        nc.password = Some("pw with spaces".into());
        nc.db = 5;
        nodes.push(nc);
    }
    let mut rig = Rig::with_config(Config::new(nodes, o.clone()), 1, Instant::now());
    rig.connect_all();
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let _ = acquired(rig.run_until_complete(op, 0));
    assert_eq!(rig.nodes[0].get(rig.now, 0, b"r"), None);
    assert!(
        rig.nodes[0].get(rig.now, 5, b"r").is_some(),
        "SELECT 5 came first"
    );
    let first = &rig.commands_to(0)[0];
    assert_eq!(&first[0][..], b"HELLO");

    // A wrong password: the handshake is refused, the node is unreachable.
    let mut nodes = Vec::new();
    let mut nc = NodeConfig::new("model", 7000);
    nc.password = Some("right".into());
    nodes.push(nc);
    let mut rig = Rig::with_config(Config::new(nodes, options()), 1, Instant::now());
    rig.nodes[0].set_password(None, "different");
    rig.connect_all();
    let op = rig
        .engine
        .acquire(
            rig.now,
            ["r"],
            ms(10_000),
            Rig::token(1),
            wall_clock(rig.now),
        )
        .unwrap();
    let err = failed(rig.run_until_complete(op, 0));
    assert_eq!(err.failure, Failure::Unreachable);
    assert!(rig
        .events
        .iter()
        .any(|e| matches!(e, Event::Reconnect { reason: ConnError::Handshake(t), .. } if t.starts_with("WRONGPASS"))));
}

#[test]
fn time_going_backwards_is_ignored() {
    let mut rig = Rig::new(1, options(), 1);
    rig.connect_all();
    rig.pump();
    let t = rig.now + ms(1000);
    rig.engine.handle_timeout(t);
    let early = rig.now; // 1 s before what the engine has seen
    let op = rig
        .engine
        .acquire(early, ["r"], ms(10_000), Rig::token(1), wall_clock(early))
        .unwrap();
    rig.engine.handle_timeout(early);
    let lock = acquired(rig.run_until_complete(op, 0));
    assert_eq!(
        lock.valid_until(),
        t + ms(10_000) - Options::default().drift(ms(10_000))
    );
}

#[test]
fn misuse_is_a_synchronous_error() {
    let mut rig = Rig::new(1, options(), 1);
    let now = rig.now;
    let e = &mut rig.engine;
    assert_eq!(
        e.acquire(
            now,
            Vec::<String>::new(),
            ms(100),
            Rig::token(1),
            wall_clock(now)
        ),
        Err(Error::NoResources)
    );
    assert_eq!(
        e.acquire(now, [""], ms(100), Rig::token(1), wall_clock(now)),
        Err(Error::EmptyResource)
    );
    assert!(matches!(
        e.acquire(now, ["r"], ms(2), Rig::token(1), wall_clock(now)),
        Err(Error::TtlTooShort { .. })
    ));
    // A node id from outside the configuration is misuse of the kind an index out of bounds
    // is: it panics, and the engine is left as it was.
    let foreign = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        e.handle_connected(now, NodeId::new(1))
    }));
    assert!(foreign.is_err(), "a foreign node id is refused");
    assert_eq!(
        Engine::new(Config::new(vec![], Options::default()), now, 0).err(),
        Some(Error::NoNodes)
    );
}

#[test]
fn release_returns_once_a_majority_deleted_and_still_deletes_everywhere() {
    let mut rig = Rig::new(5, options(), 1);
    rig.connect_all();
    let lock = held_everywhere(&mut rig);
    // Two nodes hold their replies back: the release must not wait for them.
    rig.nodes[3].set_stalled(true);
    rig.nodes[4].set_stalled(true);
    let op = rig.engine.release(rig.now, &lock);
    rig.pump();
    let released = released(
        rig.result(op)
            .cloned()
            .expect("release waited for the stalled nodes"),
    );
    assert_eq!(released.confirmed, 3);
    assert_eq!(
        released_outcomes(&released),
        [
            Outcome::Released(1),
            Outcome::Released(1),
            Outcome::Released(1),
            Outcome::NotAwaited,
            Outcome::NotAwaited
        ]
    );
    // The stalled nodes got the delete all the same, and their late replies are harmless.
    rig.nodes[3].set_stalled(false);
    rig.nodes[4].set_stalled(false);
    rig.pump();
    assert_eq!(rig.holders(b"r"), 0);
    assert!(!rig
        .events
        .iter()
        .any(|e| matches!(e, Event::Reconnect { .. })));
}

#[test]
fn release_without_a_majority_of_deletes_waits_for_every_node() {
    let mut rig = Rig::new(5, options(), 1);
    rig.connect_all();
    let lock = held_everywhere(&mut rig);
    // Three nodes lost the key (expired there, say): two deletes are not a majority.
    let now = rig.now;
    for i in 0..3 {
        assert!(rig.nodes[i].del(now, 0, b"r"));
    }
    rig.nodes[4].set_stalled(true);
    let op = rig.engine.release(rig.now, &lock);
    rig.pump();
    assert!(
        rig.result(op).is_none(),
        "returned before every node answered"
    );
    rig.nodes[4].set_stalled(false);
    rig.pump();
    let released = released(rig.result(op).cloned().expect("released once all answered"));
    assert_eq!(released.confirmed, 2);
    assert_eq!(rig.holders(b"r"), 0);
}
