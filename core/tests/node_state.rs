//! What a node's connection state means for lock requests: nothing runs before the handshake
//! succeeded, a refused handshake names its cause, a grant that may have landed on a broken
//! connection is released once the node is back, and a refusal is "locked" even with a node down.

// A test plays the adapter: it owns the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    Config, ConnError, Engine, Event, Failure, NodeConfig, NodeId, Options, Outcome, Token,
};
use std::time::{Duration, Instant, SystemTime};

const TTL: Duration = Duration::from_secs(10);

fn token(b: u8) -> Token {
    Token::from_random(&[b; 20]).unwrap()
}

fn once() -> Options {
    let mut options = plain_options();
    options.retry_count = Some(0);
    options
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

fn events(engine: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| engine.poll_event()).collect()
}

#[test]
fn lock_requests_wait_for_the_handshake_to_succeed() {
    let node = NodeConfig::new("127.0.0.1", 1)
        .with_auth(None, "pw")
        .with_db(3);
    let mut engine = Engine::new(Config::new(vec![node], once()), Instant::now(), 1).unwrap();
    let now = Instant::now();
    let n = NodeId::new(0);
    engine.handle_connected(now, n);
    assert!(!engine.is_ready(n));
    engine
        .acquire(now, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    let out = sent(&mut engine);
    assert!(contains(&out, b"AUTH") && contains(&out, b"SELECT"));
    assert!(
        !contains(&out, b"SET\r\n"),
        "no lock request before the handshake succeeded"
    );
    engine.handle_input(now, n, b"+OK\r\n");
    assert!(sent(&mut engine).is_empty(), "SELECT is still unanswered");
    engine.handle_input(now, n, b"+OK\r\n");
    assert_eq!(engine.poll_event(), Some(Event::Ready { link: (n).into() }));
    assert!(
        contains(&sent(&mut engine), b"$2\r\nNX\r\n"),
        "now it goes out"
    );
    engine.handle_input(now, n, b"+OK\r\n");
    assert!(matches!(
        engine.poll_event(),
        Some(Event::Acquired { result: Ok(_), .. })
    ));
}

#[test]
fn a_refused_handshake_runs_nothing_and_names_its_cause() {
    let node = NodeConfig::new("127.0.0.1", 7002).with_auth(None, "wrong");
    let mut engine = Engine::new(Config::new(vec![node], once()), Instant::now(), 1).unwrap();
    let now = Instant::now();
    let n = NodeId::new(0);
    engine.handle_connected(now, n);
    engine
        .acquire(now, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    engine.handle_input(
        now,
        n,
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    assert!(
        sent(&mut engine).is_empty(),
        "the held acquire never went out"
    );
    let evs = events(&mut engine);
    let err = evs
        .iter()
        .find_map(|e| match e {
            Event::Acquired { result: Err(e), .. } => Some(e.clone()),
            _ => None,
        })
        .expect("the acquire fails");
    assert_eq!(err.failure, Failure::Unreachable);
    let report = &err.attempts[0].nodes[0];
    assert!(matches!(
        report.outcome,
        Outcome::Broken(ConnError::Handshake(_))
    ));
    let why = report.failure().unwrap();
    assert!(why.starts_with("WRONGPASS"), "{why}");
    assert!(evs.iter().any(|e| matches!(e, Event::Reconnect { .. })));
    // While it reconnects, the next attempt still says why the node is unusable.
    engine
        .acquire(now, ["r"], TTL, token(2), SystemTime::UNIX_EPOCH)
        .unwrap();
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => {
            let shown = e.to_string();
            assert!(
                shown.contains("127.0.0.1:7002 not connected (WRONGPASS"),
                "{shown}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_connect_is_the_cause_shown_for_the_node() {
    let nodes = vec![NodeConfig::new("127.0.0.1", 7003)];
    let mut engine = Engine::new(Config::new(nodes, once()), Instant::now(), 1).unwrap();
    let now = Instant::now();
    engine.handle_connect_failed(now, NodeId::new(0), "connection refused");
    engine
        .acquire(now, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => {
            let report = &e.attempts[0].nodes[0];
            assert_eq!(report.outcome, Outcome::NotReady);
            assert_eq!(report.failure().as_deref(), Some("connection refused"));
            assert!(e.to_string().contains("(connection refused)"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_acquire_written_before_the_connection_broke_is_released_once_the_node_is_back() {
    let mut options = once();
    options.node_timeout = Duration::from_millis(100);
    let nodes = vec![NodeConfig::new("127.0.0.1", 1)];
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(nodes, options), t0, 1).unwrap();
    let n = NodeId::new(0);
    engine.handle_connected(t0, n);
    events(&mut engine);
    engine
        .acquire(t0, ["ghost"], TTL, token(9), SystemTime::UNIX_EPOCH)
        .unwrap();
    assert!(contains(&sent(&mut engine), b"ghost"));
    // The node is paused: no reply, the request times out, the connection is given up.
    let later = t0 + Duration::from_millis(100);
    engine.handle_timeout(later);
    assert!(events(&mut engine)
        .iter()
        .any(|e| matches!(e, Event::Reconnect { .. })));
    // It resumes and may run the buffered SET NX. Once the node is back, it is told to release.
    engine.handle_connected(later, n);
    let out = sent(&mut engine);
    assert!(
        contains(&out, b"EVALSHA"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(contains(&out, b"ghost"));
    // The first attempt writes the token as given.
    assert!(
        contains(&out, token(9).to_string().as_bytes()),
        "the attempt's own token"
    );
    // Sent once: a second reconnect has nothing left to release.
    engine.handle_disconnected(later, n);
    engine.handle_connected(later, n);
    assert!(!contains(&sent(&mut engine), b"ghost"));
}

#[test]
fn every_acquire_cut_off_by_a_broken_connection_is_released_once_the_node_is_back() {
    let nodes = vec![NodeConfig::new("127.0.0.1", 1)];
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(nodes, once()), t0, 1).unwrap();
    let n = NodeId::new(0);
    engine.handle_connected(t0, n);
    events(&mut engine);
    for (i, name) in ["ghost-a", "ghost-b", "ghost-c"].iter().enumerate() {
        engine
            .acquire(t0, [*name], TTL, token(i as u8 + 1), SystemTime::UNIX_EPOCH)
            .unwrap();
    }
    sent(&mut engine);
    engine.handle_disconnected(t0, n);
    events(&mut engine);
    engine.handle_connected(t0, n);
    let out = sent(&mut engine);
    for name in ["ghost-a", "ghost-b", "ghost-c"] {
        assert!(contains(&out, name.as_bytes()), "{name} is released");
    }
}

#[test]
fn a_reconnect_with_nothing_missed_sends_nothing() {
    let nodes = vec![NodeConfig::new("127.0.0.1", 1)];
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(nodes, once()), t0, 1).unwrap();
    let n = NodeId::new(0);
    engine.handle_connected(t0, n);
    events(&mut engine);
    engine.handle_disconnected(t0, n);
    engine.handle_connected(t0, n);
    assert!(sent(&mut engine).is_empty(), "nothing was cut off");
}

#[test]
fn refused_with_a_node_down_is_locked_not_unreachable() {
    let nodes = (0..3)
        .map(|i| NodeConfig::new("127.0.0.1", 7001 + i))
        .collect();
    let now = Instant::now();
    let mut engine = Engine::new(Config::new(nodes, once()), now, 1).unwrap();
    engine.handle_connected(now, NodeId::new(0));
    engine.handle_connected(now, NodeId::new(1));
    events(&mut engine);
    engine
        .acquire(now, ["r"], TTL, token(1), SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    // Node 2 is down; node 0 refuses: a quorum of 2 can no longer be reached, and node 1 is
    // not awaited.
    engine.handle_input(now, NodeId::new(0), b"$-1\r\n");
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => {
            assert_eq!(e.failure, Failure::Locked, "{e}");
        }
        other => panic!("{other:?}"),
    }
    // An error reply among the answers keeps it a failure to reach the nodes.
    engine
        .acquire(now, ["s"], TTL, token(2), SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    // Each node first answers what is queued ahead: node 0 the first attempt's cleanup, node 1
    // the first acquire and its cleanup.
    engine.handle_input(now, NodeId::new(0), b":0\r\n-OOM command not allowed\r\n");
    engine.handle_input(now, NodeId::new(1), b"$-1\r\n:0\r\n$-1\r\n");
    let failure = events(&mut engine).into_iter().find_map(|e| match e {
        Event::Acquired { result: Err(e), .. } => Some(e.failure),
        _ => None,
    });
    assert_eq!(failure, Some(Failure::Unreachable));
}

/// Default options, but scripts only and no `INFO server`: these tests write the replies of a
/// node byte for byte (the native commands have their own tests in `native.rs`).
fn plain_options() -> Options {
    let mut options = Options::default();
    options.native_commands = false;
    options
}
