//! A one-resource acquire with the default script is a plain `SET key token NX PX ttl`.

// A test (or example) plays the adapter: it owns the clock and the sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{Config, Engine, Event, Failure, NodeConfig, NodeId, Options, Token};
use std::time::{Duration, Instant, SystemTime};

fn new_engine(options: Options) -> (Engine, Instant) {
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let now = Instant::now();
    let mut engine = Engine::new(config, now, 1).unwrap();
    engine.handle_connected(now, NodeId::new(0));
    // Nothing to negotiate: ready at once.
    assert!(matches!(engine.poll_event(), Some(Event::Ready { .. })));
    (engine, now)
}

fn acquire(engine: &mut Engine, now: Instant, resources: &[&str]) -> Vec<u8> {
    engine
        .acquire(
            now,
            resources,
            Duration::from_secs(10),
            Token::from_random(&[9; 20]).unwrap(),
            SystemTime::now(),
        )
        .unwrap();
    engine.poll_transmit().unwrap().1.to_vec()
}

#[test]
fn one_resource_is_a_plain_set_nx_px() {
    let (mut engine, now) = new_engine(plain_options());
    let out = acquire(&mut engine, now, &["orders:42"]);
    let set = b"*6\r\n$3\r\nSET\r\n$9\r\norders:42\r\n$40\r\n0909090909090909090909090909090909090909\r\n$2\r\nNX\r\n$2\r\nPX\r\n$5\r\n10000\r\n";
    assert!(out.ends_with(set), "{}", String::from_utf8_lossy(&out));
    assert!(
        !out.windows(7).any(|w| w == b"EVALSHA"),
        "no script for one resource"
    );
    engine.handle_input(now, NodeId::new(0), b"+OK\r\n");
    assert!(matches!(
        engine.poll_event(),
        Some(Event::Acquired { result: Ok(_), .. })
    ));
}

#[test]
fn a_nil_reply_is_a_refusal() {
    let mut options = plain_options();
    options.retry_count = Some(0);
    let (mut engine, now) = new_engine(options);
    acquire(&mut engine, now, &["orders:42"]);
    engine.handle_input(now, NodeId::new(0), b"$-1\r\n");
    match engine.poll_event() {
        Some(Event::Acquired { result: Err(e), .. }) => assert_eq!(e.failure, Failure::Locked),
        other => panic!("{other:?}"),
    }
}

#[test]
fn several_resources_or_a_custom_script_use_the_script() {
    let (mut engine, now) = new_engine(plain_options());
    let out = acquire(&mut engine, now, &["a", "b"]);
    assert!(
        out.windows(7).any(|w| w == b"EVALSHA"),
        "two resources: one atomic script"
    );

    let mut options = plain_options();
    options.scripts.acquire = Some(format!("-- audited\n{}", redlock_core::ACQUIRE));
    let (mut engine, now) = new_engine(options);
    let out = acquire(&mut engine, now, &["a"]);
    assert!(
        out.windows(7).any(|w| w == b"EVALSHA"),
        "a custom acquire script is always run"
    );
    assert!(!out.windows(5).any(|w| w == b"$2\r\nNX"));
}

/// Default options, but scripts only and no `INFO server`: these tests write the replies of a
/// node byte for byte (the native commands have their own tests in `native.rs`).
fn plain_options() -> Options {
    let mut options = Options::default();
    options.native_commands = false;
    options
}
