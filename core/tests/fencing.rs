//! Fenced acquire through the public Engine API, with hand-written replies.

// A test (or example) plays the adapter: it owns the clock and the sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    script_sha, Config, Engine, Event, NodeConfig, NodeId, Options, Token, FENCE, FENCED_ACQUIRE,
};
use std::time::{Duration, Instant};

#[test]
fn fenced_acquire_is_two_rounds_and_returns_max_plus_one() {
    let mut options = Options::default();
    options.fencing = true;
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let now = Instant::now();
    let mut engine = Engine::new(config, now, 1).unwrap();
    let node = NodeId::new(0);
    engine.handle_connected(now, node);
    // Nothing to negotiate: ready at once.
    assert!(matches!(engine.poll_event(), Some(Event::Ready { .. })));
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
        )
        .unwrap();
    let (_, out) = engine.poll_transmit().unwrap();
    let sha = script_sha(FENCED_ACQUIRE);
    assert!(
        out.windows(40).any(|w| w == sha.as_bytes()),
        "round one runs the fenced acquire script"
    );
    assert!(
        out.windows(9).any(|w| w == b"{r}:fence"),
        "with the counter key"
    );
    engine.handle_input(now, node, b"*2\r\n:1\r\n:41\r\n");
    assert_eq!(
        engine.poll_event(),
        None,
        "not acquired before the write-back"
    );
    let (_, out) = engine.poll_transmit().expect("round two is sent");
    assert!(out.windows(40).any(|w| w == script_sha(FENCE).as_bytes()));
    assert!(out.windows(6).any(|w| w == b"$2\r\n42"), "T = max + 1 = 42");
    engine.handle_input(now, node, b":1\r\n");
    match engine.poll_event() {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => assert_eq!(lock.fencing_token(), Some(42)),
        other => panic!("{other:?}"),
    }
}
