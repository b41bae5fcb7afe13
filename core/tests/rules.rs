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
const TTL: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One connected node with nothing to negotiate (no password, database 0, no client name): its
/// handshake is empty, so it is ready at once and the next reply fed answers the next request.
fn connected(options: Options) -> (Engine, Instant) {
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let t0 = Instant::now();
    let mut engine = Engine::new(config, t0, 1).unwrap();
    engine.handle_connected(t0, NODE);
    assert!(engine.is_ready(NODE));
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready {
            link: (NODE).into()
        })
    );
    assert!(
        engine.poll_transmit().is_none(),
        "no SCRIPT LOAD on connect"
    );
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
    let mut options = plain_options();
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
    let (mut engine, t0) = connected(plain_options());
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
    let mut options = plain_options();
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
            .any(|e| matches!(e, Event::Reconnect { link, .. } if *link == NODE)),
        "{what}: {events:?}"
    );
    assert!(!engine.is_connected(NODE), "{what}");
}

fn once() -> Options {
    let mut options = plain_options();
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
    let (mut engine, t0) = connected(plain_options());
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
    let mut options = plain_options();
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
    let (mut engine, t0) = connected(plain_options());
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    assert!(contains(&sent(&mut engine), b"$2\r\nNX\r\n"));
    let mut options = plain_options();
    options.scripts.acquire = Some(ACQUIRE.to_string());
    let (mut engine, t0) = connected(options);
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    let out = sent(&mut engine);
    assert!(contains(&out, b"EVALSHA") && !contains(&out, b"$2\r\nNX\r\n"));
}

#[test]
#[should_panic(expected = "not one of this engine's 1 links")]
fn a_node_id_from_outside_the_configuration_is_misuse() {
    let (mut engine, t0) = connected(plain_options());
    engine.handle_input(t0, NodeId::new(1), b"+OK\r\n");
}

#[test]
fn set_nx_accepts_only_ok_as_a_grant_and_says_what_it_asked() {
    let (mut engine, t0) = connected(once());
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    engine.handle_input(t0, NODE, b"+QUEUED\r\n");
    let events: Vec<Event> = std::iter::from_fn(|| engine.poll_event()).collect();
    let reason = events.iter().find_map(|e| match e {
        Event::Reconnect { reason, .. } => Some(reason.to_string()),
        _ => None,
    });
    let reason = reason.expect("the connection is broken");
    assert!(reason.contains("to SET NX"), "{reason}");
}

#[test]
fn noscript_is_answered_by_the_source_once_and_a_second_noscript_is_an_error() {
    let (mut engine, t0) = connected(once());
    engine
        .acquire(t0, ["a", "b"], TTL, token(), SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    engine.handle_input(t0, NODE, b"-NOSCRIPT No matching script\r\n");
    let again = sent(&mut engine);
    assert!(
        contains(&again, b"$4\r\nEVAL\r\n") && !contains(&again, b"EVALSHA"),
        "{}",
        String::from_utf8_lossy(&again)
    );
    assert!(
        contains(&again, ACQUIRE.as_bytes()),
        "with the script's source"
    );
    // EVAL is never answered NOSCRIPT by a real server; if it is, that is an error reply,
    // not another re-send.
    engine.handle_input(t0, NODE, b"-NOSCRIPT No matching script\r\n");
    assert!(
        !contains(&sent(&mut engine), b"EVAL\r\n$"),
        "no second re-send"
    );
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => {
            assert!(matches!(
                e.attempts[0].nodes[0].outcome,
                Outcome::ErrorReply(_)
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_request_past_its_deadline_breaks_the_connection_with_the_timeout_named() {
    let mut options = once();
    options.node_timeout = ms(250);
    let node = NodeConfig::new("127.0.0.1", 1).with_auth(None, "pw");
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(vec![node], options), t0, 1).unwrap();
    engine.handle_connected(t0, NODE);
    // The handshake's AUTH is due 250 ms from now, not before.
    assert_eq!(engine.poll_timeout(), Some(t0 + ms(250)));
    engine.handle_timeout(t0 + ms(249));
    assert_eq!(engine.poll_event(), None);
    engine.handle_timeout(t0 + ms(250));
    match engine.poll_event() {
        Some(Event::Reconnect { reason, .. }) => {
            assert_eq!(reason, ConnError::Timeout(ms(250)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restart_aware_voting_reads_info_and_a_refused_info_breaks_the_connection() {
    let mut options = once();
    options.restart_grace = Some(Duration::from_secs(30));
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options.clone());
    let t0 = Instant::now();
    let mut engine = Engine::new(config, t0, 1).unwrap();
    engine.handle_connected(t0, NODE);
    assert!(contains(&sent(&mut engine), b"INFO"));
    assert!(!engine.is_ready(NODE), "not before INFO answered");
    let info = "# Server\r\nrun_id:abc\r\nuptime_in_seconds:9999\r\n";
    let reply = format!("${}\r\n{info}\r\n", info.len());
    engine.handle_input(t0, NODE, reply.as_bytes());
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready {
            link: (NODE).into()
        })
    );
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    engine.handle_input(t0, NODE, b"+OK\r\n");
    assert!(
        matches!(
            engine.poll_event(),
            Some(Event::Acquired { result: Ok(_), .. })
        ),
        "up for long enough: its grant counts"
    );
    // An ACL user without INFO cannot use restart-aware voting: say so by breaking.
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let mut engine = Engine::new(config, t0, 1).unwrap();
    engine.handle_connected(t0, NODE);
    sent(&mut engine);
    engine.handle_input(
        t0,
        NODE,
        b"-NOPERM this user has no permissions to run the 'info' command\r\n",
    );
    match engine.poll_event() {
        Some(Event::Reconnect { reason, .. }) => {
            // A refusal of the handshake, named as such, not a reply of the wrong shape.
            assert!(
                matches!(&reason, ConnError::Handshake(e) if e.starts_with("NOPERM")),
                "{reason:?}"
            );
        }
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
