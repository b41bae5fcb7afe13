//! The engine's safety rules, each pinned at its boundary: when an extend is retried, what a
//! shorter extend does to validity, when deadlines fire, which reply shapes count as votes, and
//! what decides that an acquire may go out as `SET NX`.

// A test plays the adapter: it owns the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    Config, ConnError, Engine, Event, Failure, Lock, NodeConfig, NodeId, Options, Outcome, Token,
    ACQUIRE,
};
use std::time::{Duration, Instant, SystemTime};

const NODE: NodeId = NodeId::new(0);
/// One `SCRIPT LOAD` reply (the engine does not check the digest it gets back).
const LOADED: &[u8] = b"$40\r\n0000000000000000000000000000000000000000\r\n";
const TTL: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One connected node whose handshake (three `SCRIPT LOAD`s, five with fencing) has been
/// answered, so the next reply fed answers the next request.
fn connected(options: Options) -> (Engine, Instant) {
    let loads = if options.fencing { 5 } else { 3 };
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let t0 = Instant::now();
    let mut engine = Engine::new(config, t0, 1).unwrap();
    engine.handle_connected(t0, NODE);
    engine.handle_input(t0, NODE, &LOADED.repeat(loads));
    while engine.poll_transmit().is_some() {}
    (engine, t0)
}

fn token() -> Token {
    Token::from_random(&[5; 20]).unwrap()
}

fn sent(engine: &mut Engine) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((_, bytes)) = engine.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A lock on `r`, taken with `SET NX` at `at`.
fn acquired(engine: &mut Engine, at: Instant, ttl: Duration) -> Lock {
    engine
        .acquire(at, ["r"], ttl, token(), SystemTime::now())
        .unwrap();
    sent(engine);
    engine.handle_input(at, NODE, b"+OK\r\n");
    match engine.poll_event() {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    }
}

fn no_retry_jitter(retry_delay: Duration) -> Options {
    let mut options = Options::default();
    options.retry_count = None;
    options.retry_delay = retry_delay;
    options.retry_jitter = Duration::ZERO;
    options
}

/// Starts an extend at `at` whose only attempt fails (an error reply), and returns what follows.
fn failed_extend_at(engine: &mut Engine, lock: &Lock, at: Instant) -> Option<Event> {
    engine.extend(at, lock, TTL).unwrap();
    sent(engine);
    engine.handle_input(at, NODE, b"-BUSY script running\r\n");
    engine.poll_event()
}

#[test]
fn a_failed_extend_is_retried_while_the_retry_starts_inside_validity() {
    let (mut engine, t0) = connected(no_retry_jitter(ms(200)));
    let lock = acquired(&mut engine, t0, TTL);
    // 201 ms left: the retry 200 ms later still starts while the lock is valid.
    let at = lock.valid_until() - ms(201);
    assert_eq!(failed_extend_at(&mut engine, &lock, at), None, "retried");
    assert_eq!(engine.poll_timeout(), Some(at + ms(200)));
    engine.handle_timeout(at + ms(200));
    assert!(
        contains(&sent(&mut engine), b"EVALSHA"),
        "the retry is sent"
    );
}

#[test]
fn a_failed_extend_stops_once_a_retry_would_start_after_validity() {
    let (mut engine, t0) = connected(no_retry_jitter(ms(200)));
    let lock = acquired(&mut engine, t0, TTL);
    // Exactly 200 ms left: the retry would start as the lock expires, so it is not tried.
    let at = lock.valid_until() - ms(200);
    match failed_extend_at(&mut engine, &lock, at) {
        Some(Event::Extended { result: Err(e), .. }) => {
            assert_eq!(e.attempts.len(), 1);
            assert!(matches!(
                e.attempts[0].nodes[0].outcome,
                Outcome::ErrorReply(_)
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_extend_with_a_shorter_ttl_keeps_the_old_validity() {
    let (mut engine, t0) = connected(Options::default());
    let lock = acquired(&mut engine, t0, TTL);
    let at = t0 + Duration::from_secs(1);
    engine.extend(at, &lock, Duration::from_secs(2)).unwrap();
    sent(&mut engine);
    engine.handle_input(at, NODE, b":1\r\n");
    match engine.poll_event() {
        Some(Event::Extended {
            result: Ok(extended),
            ..
        }) => assert_eq!(extended.valid_until(), lock.valid_until()),
        other => panic!("{other:?}"),
    }
    // A longer one moves validity to `start + ttl - drift`.
    let ttl = Duration::from_secs(20);
    engine.extend(at, &lock, ttl).unwrap();
    sent(&mut engine);
    engine.handle_input(at, NODE, b":1\r\n");
    match engine.poll_event() {
        Some(Event::Extended {
            result: Ok(extended),
            ..
        }) => {
            let drift = engine.options().drift(ttl);
            assert_eq!(extended.valid_until(), at + ttl - drift);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_fenced_acquire_is_locked_not_a_broken_connection() {
    let mut options = Options::default();
    options.fencing = true;
    options.retry_count = Some(0);
    let (mut engine, t0) = connected(options);
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    sent(&mut engine);
    engine.handle_input(t0, NODE, b"*1\r\n:0\r\n");
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => assert_eq!(e.failure, Failure::Locked),
        other => panic!("{other:?}"),
    }
    assert!(engine.is_connected(NODE), "a refusal is an answer");
    // Only the cleanup release follows, no reconnect.
    assert_eq!(engine.poll_event(), None);
}

/// Feeds `reply` to the first round of an acquire of `resources` and expects the connection to be
/// broken, the vote recorded as broken, and a reconnect asked for.
fn poisons(options: Options, resources: &[&str], reply: &[u8]) {
    let (mut engine, t0) = connected(options);
    engine
        .acquire(t0, resources, TTL, token(), SystemTime::now())
        .unwrap();
    sent(&mut engine);
    engine.handle_input(t0, NODE, reply);
    let events: Vec<Event> = std::iter::from_fn(|| engine.poll_event()).collect();
    let what = String::from_utf8_lossy(reply);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Acquired { result: Err(err), .. }
                if matches!(err.attempts[0].nodes[0].outcome, Outcome::Broken(ConnError::UnexpectedReply(_)))
        )),
        "{what}: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Reconnect { node, .. } if *node == NODE)),
        "{what}: {events:?}"
    );
    assert!(!engine.is_connected(NODE), "{what}");
}

fn once() -> Options {
    let mut options = Options::default();
    options.retry_count = Some(0);
    options
}

#[test]
fn wrong_shaped_replies_break_the_connection_instead_of_counting() {
    let mut fenced = once();
    fenced.fencing = true;
    // A bare integer to a fenced acquire, and a negative counter.
    poisons(fenced.clone(), &["r"], b":1\r\n");
    poisons(fenced, &["r"], b"*2\r\n:1\r\n:-4\r\n");
    // An array to an unfenced (scripted) acquire; a negative or out-of-range integer.
    poisons(once(), &["a", "b"], b"*2\r\n:1\r\n:4\r\n");
    poisons(once(), &["a", "b"], b":-1\r\n");
    poisons(once(), &["a", "b"], b":2\r\n");
    // SET NX answers +OK or nil, never an integer: nothing re-sent it as a script.
    poisons(once(), &["r"], b":1\r\n");
}

#[test]
fn a_negative_release_count_breaks_the_connection() {
    let (mut engine, t0) = connected(Options::default());
    let lock = acquired(&mut engine, t0, TTL);
    engine.release(t0, &lock);
    sent(&mut engine);
    engine.handle_input(t0, NODE, b":-1\r\n");
    let events: Vec<Event> = std::iter::from_fn(|| engine.poll_event()).collect();
    assert!(
        matches!(&events[..], [Event::Released { result: Ok(r), .. }, Event::Reconnect { .. }]
            if r.confirmed == 0),
        "{events:?}"
    );
}

#[test]
fn a_script_sent_again_after_noscript_gets_a_fresh_deadline() {
    let mut options = Options::default();
    options.node_timeout = ms(500);
    let (mut engine, t0) = connected(options);
    engine
        .acquire(t0, ["a", "b"], TTL, token(), SystemTime::now())
        .unwrap();
    assert_eq!(engine.poll_timeout(), Some(t0 + ms(500)));
    sent(&mut engine);
    let at = t0 + ms(400);
    engine.handle_input(at, NODE, b"-NOSCRIPT No matching script\r\n");
    assert!(
        contains(&sent(&mut engine), b"EVAL"),
        "sent again with its source"
    );
    assert_eq!(engine.poll_timeout(), Some(at + ms(500)));
    engine.handle_timeout(t0 + ms(500));
    assert_eq!(
        engine.poll_event(),
        None,
        "the old deadline no longer applies"
    );
}

#[test]
fn an_attempt_ends_when_validity_would_run_out() {
    let mut options = once();
    options.node_timeout = Duration::from_secs(60);
    let (mut engine, t0) = connected(options);
    let ttl = Duration::from_secs(1);
    engine
        .acquire(t0, ["r"], ttl, token(), SystemTime::now())
        .unwrap();
    let end = t0 + ttl - engine.options().drift(ttl);
    assert_eq!(engine.poll_timeout(), Some(end));
    engine.handle_timeout(end - Duration::from_nanos(1));
    assert_eq!(engine.poll_event(), None);
    engine.handle_timeout(end);
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => {
            assert_eq!(e.attempts[0].nodes[0].outcome, Outcome::Timeout);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn set_nx_is_used_unless_the_acquire_script_is_overridden_even_by_the_same_source() {
    let (mut engine, t0) = connected(Options::default());
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    assert!(contains(&sent(&mut engine), b"$2\r\nNX\r\n"));
    let mut options = Options::default();
    options.scripts.acquire = Some(ACQUIRE.to_string());
    let (mut engine, t0) = connected(options);
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    let out = sent(&mut engine);
    assert!(contains(&out, b"EVALSHA") && !contains(&out, b"$2\r\nNX\r\n"));
}

#[test]
#[should_panic(expected = "not one of this engine's 1 nodes")]
fn a_node_id_from_outside_the_configuration_is_misuse() {
    let (mut engine, t0) = connected(Options::default());
    engine.handle_input(t0, NodeId::new(1), b"+OK\r\n");
}
