//! Byte-level properties of the engine's input handling, through the public API of
//! `redlock-core`, against model nodes (`redlock_sim::Node`, `redlock_sim::Rig`).
//!
//! - `replies_split_anywhere_decode_the_same` (32 cases, each fed at every split point of one
//!   node's reply stream): two chunks at every boundary give the same bytes out, events and
//!   node state as one chunk.
//! - `replies_in_many_chunks_decode_the_same` (256): the same for random multi-chunk splits,
//!   and byte by byte.
//! - `garbage_with_nothing_pending` (256): arbitrary bytes yield one `Reconnect` or nothing,
//!   never a panic or anything else; the engine works again after `handle_connected`.
//! - `garbage_with_requests_pending` (256): garbage ahead of real replies, with operations in
//!   flight on three nodes: no panic, only `Ready`, `Ready`, `Reconnect` and completion events, every operation
//!   completes once, and a fresh acquire succeeds after reconnecting.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use redlock_core::{Config, Event, LinkId, NodeConfig, NodeId, OpId, Options, Protocol, Token};
use redlock_sim::wall_clock;
use redlock_sim::Rig;
use redlock_sim::{completion, Done};
use redlock_sim::{Fault, FaultAction, KeyDump, Match, ScriptKind, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A runner for `cases` cases; `CORE_PROPS_SCALE=k` multiplies the count by `k`.
fn runner(cases: u32) -> TestRunner {
    let scale = std::env::var("CORE_PROPS_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1);
    TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases.saturating_mul(scale.max(1)))
    })
}

const SETS: [&[&str]; 3] = [&["r"], &["r", "s"], &["s"]];

// ----- splitting replies ----------------------------------------------------------------------

/// A cluster, a handshake and a batch of pipelined operations whose first round of replies is
/// fed in chunks.
#[derive(Debug, Clone)]
struct Scenario {
    nodes: usize,
    resp3: bool,
    client_name: bool,
    db: u32,
    password: bool,
    /// Per node: its script cache does not keep anything (NOSCRIPT, then EVAL).
    cold: Vec<bool>,
    /// Per node: sends a push frame before each acquire reply (RESP3 only).
    pushes: Vec<bool>,
    /// Per node: resources (bit 0 "r", bit 1 "s") someone else holds.
    held: Vec<u8>,
    /// Acquires (resource set index) issued at once, then releases of whatever they got.
    ops: Vec<u8>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![Just(1usize), Just(3)],
        any::<[bool; 3]>(),
        0u8..2,
    )
        .prop_flat_map(|(nodes, [resp3, client_name, password], db)| {
            (
                prop::collection::vec(any::<bool>(), nodes),
                prop::collection::vec(any::<bool>(), nodes),
                prop::collection::vec(0u8..4, nodes),
                prop::collection::vec(0u8..3, 1..4),
            )
                .prop_map(move |(cold, pushes, held, ops)| Scenario {
                    nodes,
                    resp3,
                    client_name,
                    db: u32::from(db) * 3,
                    password,
                    cold,
                    pushes,
                    held,
                    ops,
                })
        })
}

/// Everything observable after a run.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    sent: Vec<(LinkId, Bytes)>,
    events: Vec<Event>,
    nodes: Vec<Vec<KeyDump>>,
}

fn build(sc: &Scenario, start: Instant) -> Rig {
    let mut options = Options::default();
    options.retry_count = Some(0);
    if sc.resp3 {
        options.protocol = Protocol::Resp3;
    }
    if sc.client_name {
        options.client_name = Some("split-test".into());
    }
    let nodes = (0..sc.nodes)
        .map(|i| {
            let mut nc = NodeConfig::new("model", 7000 + u16::try_from(i).unwrap());
            nc.db = sc.db;
            if sc.password {
                nc.username = Some("app".into());
                nc.password = Some("secret".into());
            }
            nc
        })
        .collect();
    let mut rig = Rig::with_config(Config::new(nodes, options), 3, start);
    for i in 0..sc.nodes {
        let node = &mut rig.nodes[i];
        for (bit, key) in [(1u8, b"r"), (2, b"s")] {
            if sc.held[i] & bit != 0 {
                node.set(start, sc.db, key, b"other", Some(ms(60_000)));
            }
        }
        if sc.cold[i] {
            node.inject(Fault::new(
                Match::Command("SCRIPT".into()),
                FaultAction::Reply(Value::bulk("0".repeat(40))),
            ));
            node.inject(Fault::new(
                Match::Command("EVALSHA".into()),
                FaultAction::Reply(Value::error(redlock_sim::NOSCRIPT)),
            ));
        }
        if sc.resp3 && sc.pushes[i] {
            node.inject(Fault::new(
                Match::Script(ScriptKind::Acquire),
                FaultAction::Before(Value::Push(vec![
                    Value::bulk("invalidate"),
                    Value::Array(vec![Value::bulk("r")]),
                ])),
            ));
        }
    }
    rig
}

/// Runs `sc`; the first round of replies from node `split.0` is fed in chunks ending at the
/// offsets in `split.1` (the rest of it as a last chunk), every other reply whole.
fn run_split(
    sc: &Scenario,
    start: Instant,
    split: Option<(usize, &[usize])>,
) -> (Observed, Vec<usize>) {
    let mut rig = build(sc, start);
    rig.connect_all();
    let ops: Vec<OpId> = sc
        .ops
        .iter()
        .enumerate()
        .map(|(k, set)| {
            let token = Token::from_random(&[u8::try_from(k).unwrap() + 1; 20]).unwrap();
            rig.engine
                .acquire(
                    start,
                    SETS[usize::from(*set)],
                    ms(10_000),
                    token,
                    wall_clock(start),
                )
                .unwrap()
        })
        .collect();
    rig.drain();
    // Round one: every node runs the handshake and the pipelined scripts at once.
    let mut firsts = Vec::new();
    for i in 0..sc.nodes {
        let link = rig.links[i].as_mut().unwrap();
        link.deliver(&mut rig.nodes[i], start, None);
        firsts.push(link.read(None));
    }
    let lens = firsts.iter().map(Bytes::len).collect();
    for (i, bytes) in firsts.iter().enumerate() {
        let mut from = 0;
        if let Some((node, cuts)) = split.filter(|(node, _)| *node == i) {
            let _ = node;
            for &cut in cuts {
                rig.engine
                    .handle_input(start, NodeId::new(i), &bytes[from..cut]);
                from = cut;
            }
        }
        rig.engine
            .handle_input(start, NodeId::new(i), &bytes[from..]);
    }
    // Then everything else, whole, and release what was acquired.
    rig.pump();
    let locks: Vec<_> = ops
        .iter()
        .filter_map(|op| match rig.result(*op) {
            Some(Ok(Done::Acquired(lock))) => Some(lock.clone()),
            _ => None,
        })
        .collect();
    for lock in &locks {
        rig.engine.release(start, lock);
    }
    rig.pump();
    let nodes = rig.nodes.iter().map(|n| n.dump(start)).collect();
    (
        Observed {
            sent: rig.sent,
            events: rig.events,
            nodes,
        },
        lens,
    )
}

fn check_complete(sc: &Scenario, o: &Observed) -> Result<(), TestCaseError> {
    let completed = o.events.iter().filter(|e| completion(e).is_some()).count();
    let acquired = o
        .events
        .iter()
        .filter(|e| matches!(e, Event::Acquired { result: Ok(_), .. }))
        .count();
    prop_assert_eq!(
        completed,
        sc.ops.len() + acquired,
        "every op and release completed"
    );
    prop_assert!(
        !o.events
            .iter()
            .any(|e| matches!(e, Event::Reconnect { .. })),
        "a well-formed stream broke: {:?}",
        o.events
    );
    Ok(())
}

/// Feeding a node's first reply stream (handshake replies, NOSCRIPT errors, push frames and
/// script replies, pipelined) in two chunks, split at every possible byte, gives exactly what
/// feeding it whole gives.
#[test]
fn replies_split_anywhere_decode_the_same() {
    runner(32)
        .run(&(scenario(), any::<prop::sample::Index>()), |(sc, node)| {
            let start = Instant::now();
            let (whole, lens) = run_split(&sc, start, None);
            check_complete(&sc, &whole)?;
            let node = node.index(sc.nodes);
            let len = lens[node];
            for cut in 0..=len {
                let (split, _) = run_split(&sc, start, Some((node, &[cut])));
                prop_assert_eq!(&split, &whole, "node {} split at {} of {}", node, cut, len);
            }
            Ok(())
        })
        .unwrap();
}

/// The same for several chunks at once, and for one byte at a time.
#[test]
fn replies_in_many_chunks_decode_the_same() {
    let case = (
        scenario(),
        prop::collection::vec(any::<prop::sample::Index>(), 1..8),
        any::<prop::sample::Index>(),
    );
    runner(256)
        .run(&case, |(sc, cuts, node)| {
            let start = Instant::now();
            let (whole, lens) = run_split(&sc, start, None);
            check_complete(&sc, &whole)?;
            let node = node.index(sc.nodes);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(lens[node] + 1)).collect();
            cuts.sort_unstable();
            let (split, _) = run_split(&sc, start, Some((node, &cuts)));
            prop_assert_eq!(&split, &whole, "node {} cut at {:?}", node, cuts);
            let bytewise: Vec<usize> = (1..lens[node]).collect();
            let (split, _) = run_split(&sc, start, Some((node, &bytewise)));
            prop_assert_eq!(&split, &whole, "node {} byte by byte", node);
            Ok(())
        })
        .unwrap();
}

// ----- garbage --------------------------------------------------------------------------------

/// Valid replies of every type, to mutate.
const VALID: &[u8] = b":1\r\n$3\r\nabc\r\n*2\r\n:0\r\n+OK\r\n-ERR no\r\n$-1\r\n%1\r\n+k\r\n:2\r\n_\r\n#t\r\n>2\r\n+a\r\n+b\r\n~1\r\n,1.5\r\n(12\r\n=7\r\ntxt:abc\r\n!3\r\nERR\r\n|1\r\n+a\r\n+b\r\n:3\r\n";

/// RESP-looking fragments, to glue together.
const TOKENS: &[&[u8]] = &[
    b":",
    b"+",
    b"-",
    b"$",
    b"*",
    b"%",
    b"~",
    b">",
    b"_",
    b"#",
    b",",
    b"(",
    b"=",
    b"!",
    b"|",
    b"\r\n",
    b"\r",
    b"\n",
    b"0",
    b"1",
    b"-1",
    b"3",
    b"-5",
    b"99999999999999999999",
    b"OK",
    b"t",
    b"NOSCRIPT x",
    b"abc",
    b" ",
];

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        0..VALID.len(),
        0..VALID.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    )
        .prop_map(|(a, b, edits)| {
            let (a, b) = (a.min(b), a.max(b));
            let mut v = VALID[a..b.max(a + 1)].to_vec();
            for (at, byte, kind) in edits {
                let i = at.index(v.len() + 1);
                match kind {
                    0 if i < v.len() => v[i] = byte,
                    1 if i < v.len() => {
                        v.remove(i);
                    }
                    _ => v.insert(i, byte),
                }
            }
            v
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(prop::sample::select(TOKENS), 0..16).prop_map(|t| t.concat()),
        mutated,
    ]
}

/// With nothing pending, any bytes from a node yield a single `Reconnect` or no event at all;
/// after reconnecting, the engine takes a lock as if nothing happened.
#[test]
fn garbage_with_nothing_pending() {
    runner(256)
        .run(
            &(
                garbage(),
                prop_oneof![Just(Protocol::Resp2), Just(Protocol::Resp3)],
            ),
            |(bytes, protocol)| {
                let mut options = Options::default();
                options.retry_count = Some(0);
                options.protocol = protocol;
                let nodes = vec![NodeConfig::new("model", 7000)];
                let mut rig = Rig::with_config(Config::new(nodes, options), 1, Instant::now());
                rig.connect_all();
                rig.pump(); // the handshake is answered: nothing pending
                prop_assert!(
                    matches!(&rig.events[..], [Event::Ready { .. }]),
                    "{:?}",
                    rig.events
                );
                let node = NodeId::new(0);
                rig.engine.handle_input(rig.now, node, &bytes);
                let mut events = Vec::new();
                while let Some(e) = rig.engine.poll_event() {
                    events.push(e);
                }
                match &events[..] {
                    [] => prop_assert!(rig.engine.is_connected(node)),
                    [Event::Reconnect { link: n, .. }] => {
                        prop_assert_eq!(*n, node);
                        prop_assert!(!rig.engine.is_connected(node));
                    }
                    other => prop_assert!(false, "unexpected events {:?}", other),
                }
                prop_assert_eq!(rig.engine.in_flight(), 0);
                // Back to work on a fresh connection.
                prop_assert!(rig.connect(0));
                let op = rig
                    .engine
                    .acquire(
                        rig.now,
                        ["r"],
                        ms(10_000),
                        Token::from_random(&[1; 20]).unwrap(),
                        wall_clock(rig.now),
                    )
                    .unwrap();
                let done = rig.run_until_complete(op, 2);
                prop_assert!(matches!(done, Ok(Done::Acquired(_))), "{:?}", done);
                Ok(())
            },
        )
        .unwrap();
}

/// Garbage arriving ahead of real replies while operations are in flight: no panic, nothing but
/// `Ready`, `Reconnect` and completion events, every operation completes exactly once, and the engine
/// works again once reconnected.
#[test]
fn garbage_with_requests_pending() {
    let case = (garbage(), 0usize..3, any::<bool>(), 1usize..4);
    runner(256)
        .run(&case, |(bytes, target, before_replies, ops)| {
            let mut options = Options::default();
            options.retry_count = Some(1);
            options.retry_delay = ms(10);
            options.retry_jitter = ms(5);
            let nodes = (0..3).map(|i| NodeConfig::new("model", 7000 + i)).collect();
            let mut rig = Rig::with_config(Config::new(nodes, options), 1, Instant::now());
            rig.connect_all();
            rig.pump();
            let ids: Vec<OpId> = (0..ops)
                .map(|k| {
                    let token = Token::from_random(&[u8::try_from(k).unwrap() + 1; 20]).unwrap();
                    rig.engine
                        .acquire(
                            rig.now,
                            SETS[k % SETS.len()],
                            ms(10_000),
                            token,
                            wall_clock(rig.now),
                        )
                        .unwrap()
                })
                .collect();
            rig.drain();
            for i in 0..3 {
                let link = rig.links[i].as_mut().unwrap();
                link.deliver(&mut rig.nodes[i], rig.now, None);
            }
            let node = NodeId::new(target);
            if before_replies {
                rig.engine.handle_input(rig.now, node, &bytes);
                rig.drain();
                rig.pump();
            } else {
                rig.pump();
                rig.engine.handle_input(rig.now, node, &bytes);
                rig.drain();
            }
            for _ in 0..20 {
                if ids.iter().all(|op| rig.result(*op).is_some()) {
                    break;
                }
                for i in 0..3 {
                    if rig.links[i].is_none() {
                        rig.connect(i);
                    }
                }
                rig.pump();
                rig.fire_timeout();
            }
            let mut completed: BTreeMap<OpId, usize> = BTreeMap::new();
            for e in &rig.events {
                match e {
                    e if e.op().is_some() => *completed.entry(e.op().unwrap()).or_default() += 1,
                    Event::Reconnect { .. } | Event::Ready { .. } | Event::Open { .. } => {}
                    other => prop_assert!(false, "unexpected event {:?}", other),
                }
            }
            for op in &ids {
                prop_assert_eq!(completed.get(op), Some(&1), "{} completed once", op);
            }
            prop_assert_eq!(completed.len(), ids.len());
            // Release everything, reconnect everything, and lock something new.
            for i in 0..3 {
                rig.connect(i);
            }
            rig.pump();
            let op = rig
                .engine
                .acquire(
                    rig.now,
                    ["fresh"],
                    ms(10_000),
                    Token::from_random(&[9; 20]).unwrap(),
                    wall_clock(rig.now),
                )
                .unwrap();
            let done = rig.run_until_complete(op, 2);
            prop_assert!(matches!(done, Ok(Done::Acquired(_))), "{:?}", done);
            Ok(())
        })
        .unwrap();
}
