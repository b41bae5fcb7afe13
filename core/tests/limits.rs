//! Absurd durations are refused with an error, never a panic (fuzz regressions
//! op_sequence/ttl-overflow-instant, node-timeout-overflow, retry-delay-overflow,
//! retry-delay-sum-overflow).

// A test (or example) plays the adapter: it owns the clock and the sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    Config, Engine, Error, Event, NodeConfig, NodeId, Options, Token, MAX_DURATION,
};
use std::time::{Duration, Instant, SystemTime};

fn config(options: Options) -> Config {
    Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options)
}

#[test]
fn huge_ttls_are_refused() {
    let now = Instant::now();
    let mut engine = Engine::new(config(Options::default()), now, 1).unwrap();
    engine.handle_connected(now, NodeId::new(0));
    // Nothing to negotiate: ready at once.
    assert!(matches!(engine.poll_event(), Some(Event::Ready { .. })));
    let token = || Token::from_random(&[3; 20]).unwrap();
    for ttl in [
        MAX_DURATION + Duration::from_secs(1),
        Duration::new(u64::MAX / 4, 0),
        Duration::MAX,
    ] {
        assert_eq!(
            engine.acquire(now, ["r"], ttl, token(), SystemTime::now()),
            Err(Error::TtlTooLong { ttl })
        );
    }
    assert!(
        engine
            .acquire(now, ["r"], MAX_DURATION, token(), SystemTime::now())
            .is_ok(),
        "the maximum itself is fine"
    );
}

#[test]
fn huge_option_durations_are_refused() {
    let fields: [fn(&mut Options); 5] = [
        |o| o.node_timeout = Duration::new(u64::MAX / 2, 0),
        |o| o.retry_delay = Duration::MAX,
        |o| o.retry_jitter = Duration::MAX,
        |o| o.automatic_extension_threshold = Duration::new(u64::MAX / 2, 0),
        |o| o.restart_grace = Some(Duration::new(u64::MAX / 2, 0)),
    ];
    for set in fields {
        let mut options = Options::default();
        set(&mut options);
        let err = Engine::new(config(options), Instant::now(), 1).unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    }
}

#[test]
fn a_spin_as_long_as_the_node_timeout_is_refused() {
    let mut options = Options::default();
    options.spin_before_park = options.node_timeout;
    let err = Engine::new(config(options.clone()), Instant::now(), 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                name: "spin_before_park",
                ..
            }
        ),
        "{err}"
    );
    options.spin_before_park = options.node_timeout - Duration::from_micros(1);
    assert!(Engine::new(config(options.clone()), Instant::now(), 1).is_ok());
    options.spin_before_park = Duration::ZERO;
    assert!(Engine::new(config(options), Instant::now(), 1).is_ok());
}
