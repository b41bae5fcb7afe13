//! An operation's lifecycle at its edges: ids and rounds that keep stale replies out, when a
//! release returns, what a cancel and a failed attempt undo, per-attempt tokens, retry spacing,
//! validity at its boundary, and what a lock and the engine report about themselves.

// A test plays the adapter: it owns the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    Config, Engine, Error, Event, Failure, LinkId, Lock, NodeConfig, NodeId, Options, Outcome,
    Token,
};
use std::time::{Duration, Instant, SystemTime};

const TTL: Duration = Duration::from_secs(10);

fn n(i: usize) -> NodeId {
    NodeId::new(i)
}

fn token(b: u8) -> Token {
    Token::from_random(&[b; 20]).unwrap()
}

/// `nodes` nodes at 127.0.0.1:7001…, the first `up` of them connected (nothing to negotiate).
fn engine(nodes: usize, up: usize, options: Options) -> (Engine, Instant) {
    let configs = (0..nodes)
        .map(|i| NodeConfig::new("127.0.0.1", 7001 + i as u16))
        .collect();
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(configs, options), t0, 1).unwrap();
    for i in 0..up {
        engine.handle_connected(t0, n(i));
    }
    while next_event(&mut engine).is_some() {}
    (engine, t0)
}

fn drain(engine: &mut Engine) -> Vec<(LinkId, Vec<u8>)> {
    std::iter::from_fn(|| engine.poll_transmit())
        .map(|(node, b)| (node, b.to_vec()))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn events(engine: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| next_event(engine)).collect()
}

fn options(retry_count: u32) -> Options {
    let mut o = plain_options();
    o.retry_count = Some(retry_count);
    o.retry_delay = Duration::ZERO;
    o.retry_jitter = Duration::ZERO;
    o
}

fn lock_on_one_node(engine: &mut Engine, at: Instant) -> Lock {
    engine
        .acquire(at, ["r"], TTL, token(4), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(engine);
    engine.handle_input(at, n(0), b"+OK\r\n");
    match next_event(engine) {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_engine_reports_its_configuration_and_what_is_in_flight() {
    let mut o = options(0);
    o.key_prefix = "locks:".into();
    let (mut e, t0) = engine(3, 3, o);
    assert_eq!(e.node_count(), 3);
    assert_eq!(e.quorum(), 2);
    assert_eq!(e.options().key_prefix, "locks:");
    assert_eq!(e.node_addr(n(1)), Some("127.0.0.1:7002"));
    assert_eq!(e.node_addr(n(3)), None);
    assert_eq!(e.in_flight(), 0);
    let a = e
        .acquire(t0, ["a"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    let b = e
        .acquire(t0, ["b"], TTL, token(2), SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_ne!(a, b, "every operation gets its own id");
    assert_eq!(e.in_flight(), 2);
}

#[test]
fn a_lock_reports_what_it_holds() {
    let (mut e, t0) = engine(1, 1, options(0));
    let lock = lock_on_one_node(&mut e, t0);
    assert_eq!(lock.resources(), ["r".to_string()]);
    assert_eq!(lock.ttl(), TTL);
    assert_eq!(lock.attempts(), 1);
    let valid_until = t0 + TTL - e.options().drift(TTL);
    assert_eq!(lock.valid_until(), valid_until);
    assert_eq!(lock.remaining(t0), valid_until - t0);
    assert!(lock.is_valid(valid_until - Duration::from_nanos(1)));
    assert!(!lock.is_valid(valid_until), "validity ends at valid_until");
    assert_eq!(lock.remaining(valid_until), Duration::ZERO);
}

#[test]
fn transmit_takes_turns_between_nodes() {
    let (mut e, t0) = engine(3, 3, options(0));
    for round in 0..2u8 {
        e.acquire(
            t0,
            [format!("r{round}")],
            TTL,
            token(round),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let order: Vec<usize> = drain(&mut e).iter().map(|(node, _)| node.index()).collect();
        assert_eq!(order, [0, 1, 2], "round {round}: each node once, in turn");
    }
    // After node 1 alone had output, the next turn starts after it.
    e.handle_disconnected(t0, n(0));
    e.handle_disconnected(t0, n(2));
    e.acquire(t0, ["x"], TTL, token(7), SystemTime::UNIX_EPOCH)
        .unwrap();
    let order: Vec<usize> = drain(&mut e).iter().map(|(node, _)| node.index()).collect();
    assert_eq!(order, [1]);
    e.handle_connected(t0, n(0));
    e.handle_connected(t0, n(2));
    e.acquire(t0, ["y"], TTL, token(8), SystemTime::UNIX_EPOCH)
        .unwrap();
    let order: Vec<usize> = drain(&mut e).iter().map(|(node, _)| node.index()).collect();
    assert_eq!(order, [2, 0, 1]);
}

#[test]
fn a_stale_grant_from_an_earlier_attempt_does_not_count() {
    let (mut e, t0) = engine(3, 2, options(1));
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    // Attempt 1: node 0 errs, node 2 is down, so node 1 alone cannot make a quorum.
    e.handle_input(t0, n(0), b"-BUSY\r\n");
    assert!(events(&mut e).is_empty(), "retried");
    e.handle_timeout(t0);
    drain(&mut e);
    // Node 0: attempt 1's cleanup, then attempt 2 granted. Node 1: attempt 1's grant (late),
    // its cleanup, then attempt 2 refused. Only one grant belongs to attempt 2.
    e.handle_input(t0, n(0), b":0\r\n+OK\r\n");
    e.handle_input(t0, n(1), b"+OK\r\n");
    assert!(
        events(&mut e).is_empty(),
        "the late grant is not attempt 2's"
    );
    e.handle_input(t0, n(1), b":1\r\n$-1\r\n");
    match next_event(&mut e) {
        Some(Event::Acquired {
            result: Err(err), ..
        }) => {
            assert_eq!(err.failure, Failure::Locked);
            assert_eq!(err.attempts.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_release_returns_once_a_majority_confirmed() {
    let (mut e, t0) = engine(3, 3, options(0));
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    for i in 0..3 {
        e.handle_input(t0, n(i), b"+OK\r\n");
    }
    let lock = match events(&mut e).pop() {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    };
    e.release(t0, &lock);
    drain(&mut e);
    e.handle_input(t0, n(0), b":1\r\n");
    assert!(events(&mut e).is_empty(), "one of three is not a majority");
    e.handle_input(t0, n(1), b":1\r\n");
    match next_event(&mut e) {
        Some(Event::Released { result: Ok(r), .. }) => {
            assert_eq!(r.confirmed, 2);
            assert_eq!(r.attempt.nodes[2].outcome, Outcome::NotAwaited);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn requests_stay_unanswered_after_a_release_returned_until_every_node_answers() {
    let (mut e, t0) = engine(3, 3, options(0));
    assert_eq!(e.unanswered(), 0);
    let lock = |e: &mut Engine, b: u8| {
        e.acquire(t0, ["r"], TTL, token(b), SystemTime::UNIX_EPOCH)
            .unwrap();
        drain(e);
        assert_eq!(e.unanswered(), 3, "one request per node");
        for i in 0..3 {
            e.handle_input(t0, n(i), b"+OK\r\n");
        }
        match events(e).pop() {
            Some(Event::Acquired {
                result: Ok(lock), ..
            }) => lock,
            other => panic!("{other:?}"),
        }
    };
    let released = |e: &mut Engine| {
        events(e)
            .iter()
            .any(|ev| matches!(ev, Event::Released { result: Ok(_), .. }))
    };
    for last in ["answers", "disconnects"] {
        let held = lock(&mut e, 1);
        assert_eq!(e.unanswered(), 0);
        e.release(t0, &held);
        drain(&mut e);
        e.handle_input(t0, n(0), b":1\r\n");
        e.handle_input(t0, n(1), b":1\r\n");
        assert!(
            released(&mut e),
            "a majority confirmed: the release is over"
        );
        assert_eq!(e.unanswered(), 1, "node 2's delete is still out");
        if last == "answers" {
            e.handle_input(t0, n(2), b":1\r\n");
        } else {
            e.handle_disconnected(t0, n(2));
            e.handle_connected(t0, n(2));
        }
        assert_eq!(e.unanswered(), 0, "node 2 {last}");
    }
}

#[test]
fn a_disconnect_fails_the_pending_votes_at_once() {
    let (mut e, t0) = engine(1, 1, options(0));
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    e.handle_disconnected(t0, n(0));
    match next_event(&mut e) {
        Some(Event::Acquired {
            result: Err(err), ..
        }) => {
            assert_eq!(err.attempts[0].nodes[0].outcome, Outcome::Disconnected);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_completes_the_operation_and_undoes_an_acquire() {
    let (mut e, t0) = engine(1, 1, options(0));
    let op = e
        .acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    e.cancel(t0, op).unwrap();
    match next_event(&mut e) {
        Some(Event::Acquired {
            op: done,
            result: Err(err),
        }) => {
            assert_eq!(done, op);
            assert_eq!(err.failure, Failure::Cancelled);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.cancel(t0, op), Err(Error::UnknownOp(op)), "only once");
    let out = drain(&mut e);
    assert!(contains(&out[0].1, b"EVALSHA"), "the acquire is released");
    // The node answers the cancelled acquire and its release; an extend, cancelled, leaves
    // the lock's keys alone.
    e.handle_input(t0, n(0), b"+OK\r\n:1\r\n");
    let lock = lock_on_one_node(&mut e, t0);
    let op = e.extend(t0, &lock, TTL).unwrap();
    drain(&mut e);
    e.cancel(t0, op).unwrap();
    assert!(matches!(
        next_event(&mut e),
        Some(Event::Extended { result: Err(_), .. })
    ));
    assert!(drain(&mut e).is_empty(), "nothing to undo for an extend");
}

#[test]
fn a_failed_acquire_attempt_is_released_everywhere_and_retried_with_another_token() {
    let mut o = options(1);
    o.retry_delay = Duration::from_millis(200);
    o.retry_jitter = Duration::from_millis(100);
    let (mut e, t0) = engine(1, 1, o);
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    let first = drain(&mut e).remove(0).1;
    e.handle_input(t0, n(0), b"-BUSY\r\n");
    let cleanup = drain(&mut e).remove(0).1;
    assert!(contains(&cleanup, b"EVALSHA"), "a failed attempt is undone");
    // The retry waits retry_delay ± jitter: between 100 and 300 ms.
    let due = e.poll_timeout().unwrap();
    assert!(due >= t0 + Duration::from_millis(100), "{:?}", due - t0);
    assert!(due <= t0 + Duration::from_millis(300), "{:?}", due - t0);
    e.handle_timeout(due);
    let second = drain(&mut e).remove(0).1;
    let tok = token(1).to_string();
    assert!(contains(&first, tok.as_bytes()));
    assert!(
        !contains(&second, tok.as_bytes()),
        "attempt 2 writes its own token"
    );
}

#[test]
fn a_grant_that_arrives_as_validity_ends_is_too_late() {
    let mut o = options(0);
    o.node_timeout = Duration::from_secs(60);
    let (mut e, t0) = engine(1, 1, o);
    let ttl = Duration::from_secs(1);
    e.acquire(t0, ["r"], ttl, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    let end = t0 + ttl - e.options().drift(ttl);
    e.handle_input(end, n(0), b"+OK\r\n");
    match next_event(&mut e) {
        Some(Event::Acquired {
            result: Err(err), ..
        }) => assert_eq!(err.failure, Failure::Expired),
        other => panic!("{other:?}"),
    }
}

#[test]
fn extending_a_fenced_lock_keeps_its_fencing_token() {
    let mut o = options(0);
    o.fencing = true;
    let (mut e, t0) = engine(1, 1, o);
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    e.handle_input(t0, n(0), b"*2\r\n:1\r\n:6\r\n");
    drain(&mut e);
    e.handle_input(t0, n(0), b":1\r\n");
    let lock = match next_event(&mut e) {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    };
    assert_eq!(lock.fencing_token(), Some(7));
    e.extend(t0, &lock, TTL).unwrap();
    drain(&mut e);
    e.handle_input(t0, n(0), b":1\r\n");
    match next_event(&mut e) {
        Some(Event::Extended { result: Ok(l), .. }) => assert_eq!(l.fencing_token(), Some(7)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_extend_is_not_held_not_locked() {
    let (mut e, t0) = engine(1, 1, options(0));
    let lock = lock_on_one_node(&mut e, t0);
    e.extend(t0, &lock, TTL).unwrap();
    drain(&mut e);
    e.handle_input(t0, n(0), b":0\r\n");
    match next_event(&mut e) {
        Some(Event::Extended {
            result: Err(err), ..
        }) => assert_eq!(err.failure, Failure::NotHeld),
        other => panic!("{other:?}"),
    }
}

/// Default options, but scripts only and no `INFO server`: these tests write the replies of a
/// node byte for byte (the native commands have their own tests in `native.rs`).
fn plain_options() -> Options {
    let mut options = Options::default();
    options.native_commands = false;
    options
}

#[test]
fn a_fenced_grant_that_arrives_as_validity_ends_writes_no_token_back() {
    let mut o = options(0);
    o.fencing = true;
    o.node_timeout = Duration::from_secs(60);
    let (mut e, t0) = engine(1, 1, o);
    let ttl = Duration::from_secs(1);
    e.acquire(t0, ["r"], ttl, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    let end = t0 + ttl - e.options().drift(ttl);
    e.handle_input(end, n(0), b"*2\r\n:1\r\n:6\r\n");
    match next_event(&mut e) {
        Some(Event::Acquired {
            result: Err(err), ..
        }) => assert_eq!(err.failure, Failure::Expired),
        other => panic!("{other:?}"),
    }
    let out: Vec<u8> = drain(&mut e).into_iter().flat_map(|(_, b)| b).collect();
    assert!(
        !contains(
            &out,
            redlock_core::script_sha(redlock_core::FENCE).as_bytes()
        ),
        "too late for a fence round: only the cleanup goes out"
    );
}

#[test]
fn a_lock_counts_the_attempts_it_took() {
    let (mut e, t0) = engine(1, 1, options(1));
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    e.handle_input(t0, n(0), b"$-1\r\n");
    e.handle_timeout(t0);
    drain(&mut e);
    // The first attempt's cleanup, then the second attempt granted.
    e.handle_input(t0, n(0), b":0\r\n+OK\r\n");
    match next_event(&mut e) {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => assert_eq!(lock.attempts(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_quorum_that_answered_with_a_refusal_among_it_is_locked_despite_an_error() {
    let (mut e, t0) = engine(3, 3, options(0));
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    e.handle_input(t0, n(0), b"+OK\r\n");
    e.handle_input(t0, n(1), b"$-1\r\n");
    e.handle_input(t0, n(2), b"-OOM command not allowed\r\n");
    let failure = events(&mut e).into_iter().find_map(|ev| match ev {
        Event::Acquired {
            result: Err(err), ..
        } => Some(err.failure),
        _ => None,
    });
    assert_eq!(
        failure,
        Some(Failure::Locked),
        "two of three answered, one refused"
    );
}

#[test]
fn a_majority_of_deletes_is_a_release_even_with_an_error_among_the_answers() {
    let (mut e, t0) = engine(3, 3, options(0));
    e.acquire(t0, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    drain(&mut e);
    for i in 0..3 {
        e.handle_input(t0, n(i), b"+OK\r\n");
    }
    let lock = match events(&mut e).pop() {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    };
    e.release(t0, &lock);
    drain(&mut e);
    e.handle_input(t0, n(0), b"-NOPERM no scripts for you\r\n");
    e.handle_input(t0, n(1), b":1\r\n");
    e.handle_input(t0, n(2), b":1\r\n");
    match next_event(&mut e) {
        Some(Event::Released { result: Ok(r), .. }) => assert_eq!(r.confirmed, 2),
        other => panic!("{other:?}"),
    }
}

/// The next event but the engine's requests for links (a RESP2 node's subscriber connection,
/// which these tests do not open).
fn next_event(engine: &mut Engine) -> Option<Event> {
    loop {
        match engine.poll_event() {
            Some(Event::Open { .. }) => continue,
            other => return other,
        }
    }
}
