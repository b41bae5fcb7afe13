//! Per-call bounds and retry settings of an acquire (`AcquireOptions`), and the rule that a
//! refused extend is an answer: each pinned at its boundary, with the test owning the clock.

// A test plays the adapter: it owns the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    AcquireOptions, Config, Engine, Error, Event, Failure, Lock, NodeConfig, NodeId, OpError,
    Options, Outcome, Retry, Token, MAX_DURATION,
};
use std::time::{Duration, Instant, SystemTime};

const NODE: NodeId = NodeId::new(0);
const TTL: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One connected node, ready at once (nothing to negotiate).
fn connected(options: Options) -> (Engine, Instant) {
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let t0 = Instant::now();
    let mut engine = Engine::new(config, t0, 1).unwrap();
    engine.handle_connected(t0, NODE);
    assert_eq!(
        next_event(&mut engine),
        Some(Event::Ready {
            link: (NODE).into()
        })
    );
    (engine, t0)
}

fn token() -> Token {
    Token::from_random(&[5; 20]).unwrap()
}

fn drain(engine: &mut Engine) -> usize {
    let mut n = 0;
    while engine.poll_transmit().is_some() {
        n += 1;
    }
    n
}

fn steady(delay: Duration) -> Retry {
    Retry {
        count: None,
        delay,
        jitter: Duration::ZERO,
    }
}

/// Runs an acquire whose every attempt the node refuses (`SET NX` answers nil, the cleanup
/// release answers 0), waking the engine when it asks, until it completes. Returns the error and
/// the instant it completed; panics past `limit` wake-ups.
fn refused_until_done(engine: &mut Engine, t0: Instant, limit: usize) -> (OpError, Instant) {
    let mut now = t0;
    for _ in 0..limit {
        if drain(engine) > 0 {
            engine.handle_input(now, NODE, b"$-1\r\n:0\r\n");
        }
        if let Some(event) = next_event(engine) {
            match event {
                Event::Acquired { result: Err(e), .. } => return (e, now),
                other => panic!("{other:?}"),
            }
        }
        now = engine.poll_timeout().expect("a retry is scheduled");
        engine.handle_timeout(now);
    }
    panic!("no result after {limit} wake-ups");
}

#[test]
fn a_bounded_contended_acquire_stops_before_a_retry_would_start_past_the_bound() {
    // The client retries for ever; the call is bounded to 200 ms and retries every 50 ms.
    let mut options = plain();
    options.retry_count = None;
    let (mut engine, t0) = connected(options);
    let bounded = AcquireOptions::new().wait(ms(200)).retry(steady(ms(50)));
    engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &bounded)
        .unwrap();
    let (e, done) = refused_until_done(&mut engine, t0, 100);
    assert!(e.timed_out, "{e}");
    assert_eq!(e.failure, Failure::Locked, "the last attempts were refused");
    // Attempts at 0, 50, 100, 150; one at 200 would start at the bound.
    assert_eq!(e.attempts.len(), 4, "{e}");
    assert!(done <= t0 + ms(200), "completed {:?} in", done - t0);
    assert!(e.to_string().starts_with("timed out: locked"), "{e}");
    assert_eq!(engine.in_flight(), 0);
}

#[test]
fn an_absolute_deadline_bounds_like_a_wait_and_the_earlier_bound_wins() {
    let (mut engine, t0) = connected(plain());
    let bounded = AcquireOptions::new()
        .wait(ms(500))
        .deadline(t0 + ms(120))
        .retry(steady(ms(50)));
    engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &bounded)
        .unwrap();
    let (e, done) = refused_until_done(&mut engine, t0, 100);
    assert!(e.timed_out);
    // Attempts at 0 and 50; one at 100 still starts inside, one at 150 would not.
    assert_eq!(e.attempts.len(), 3, "{e}");
    assert!(done <= t0 + ms(120));
}

#[test]
fn a_vote_still_open_at_the_bound_is_cut_there_and_the_keys_released() {
    // node_timeout (500 ms) is past the bound: the bound decides when the acquire ends.
    let (mut engine, t0) = connected(plain());
    let bounded = AcquireOptions::new().wait(ms(200));
    engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &bounded)
        .unwrap();
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(engine.poll_timeout(), Some(t0 + ms(200)));
    engine.handle_timeout(t0 + ms(199));
    assert_eq!(next_event(&mut engine), None, "not before the bound");
    engine.handle_timeout(t0 + ms(200));
    match next_event(&mut engine) {
        Some(Event::Acquired { result: Err(e), .. }) => {
            assert!(e.timed_out);
            assert_eq!(e.failure, Failure::Unreachable, "nobody answered: {e}");
            assert_eq!(e.attempts.len(), 1);
            assert_eq!(e.attempts[0].nodes[0].outcome, Outcome::NotAwaited);
        }
        other => panic!("{other:?}"),
    }
    // A grant may be in flight: the attempt's keys are released.
    assert_eq!(drain(&mut engine), 1, "the cleanup release went out");
    // The connection itself is not blamed: it is still up.
    assert!(engine.is_ready(NODE));
}

#[test]
fn a_zero_bound_still_sends_one_attempt_and_takes_a_prompt_grant() {
    let (mut engine, t0) = connected(plain());
    let bounded = AcquireOptions::new().wait(Duration::ZERO);
    engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &bounded)
        .unwrap();
    assert_eq!(drain(&mut engine), 1, "the attempt went out");
    // The reply is read before the timeout is handled: the grant counts.
    engine.handle_input(t0, NODE, b"+OK\r\n");
    assert!(matches!(
        next_event(&mut engine),
        Some(Event::Acquired { result: Ok(_), .. })
    ));
}

#[test]
fn a_call_retry_count_overrides_the_client_and_is_not_a_timeout() {
    // The client would try 11 times; this call twice more after the first.
    let (mut engine, t0) = connected(plain());
    let retry = Retry {
        count: Some(2),
        delay: ms(10),
        jitter: Duration::ZERO,
    };
    let call = AcquireOptions::new().retry(retry);
    engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &call)
        .unwrap();
    let (e, done) = refused_until_done(&mut engine, t0, 100);
    assert!(!e.timed_out, "retries ran out, not time");
    assert_eq!(e.failure, Failure::Locked);
    assert_eq!(e.attempts.len(), 3);
    // The call's own delay, not the client's 200 ms.
    assert_eq!(done, t0 + ms(20));
}

#[test]
fn durations_over_the_maximum_are_refused_before_anything_is_sent() {
    let (mut engine, t0) = connected(plain());
    let too_long = AcquireOptions::new().wait(MAX_DURATION + ms(1));
    let err = engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &too_long)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { name: "wait", .. }),
        "{err}"
    );
    assert_eq!(drain(&mut engine), 0);
    assert_eq!(engine.in_flight(), 0);
}

/// A lock on `r` granted at `at`.
fn acquired(engine: &mut Engine, at: Instant) -> Lock {
    engine
        .acquire(at, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    drain(engine);
    engine.handle_input(at, NODE, b"+OK\r\n");
    match next_event(engine) {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_extend_every_node_refuses_fails_at_once_as_not_held() {
    // Retries left (10) and validity to spare (10 s): a refusal still ends it.
    let (mut engine, t0) = connected(plain());
    let lock = acquired(&mut engine, t0);
    engine.extend(t0 + ms(5), &lock, TTL).unwrap();
    assert_eq!(drain(&mut engine), 1);
    engine.handle_input(t0 + ms(6), NODE, b":0\r\n");
    match next_event(&mut engine) {
        Some(Event::Extended { result: Err(e), .. }) => {
            assert_eq!(e.failure, Failure::NotHeld);
            assert_eq!(e.attempts.len(), 1, "no retry after a refusal: {e}");
            assert!(!e.timed_out);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(engine.poll_timeout(), None, "nothing left to wake for");
}

#[test]
fn an_extend_refused_by_the_answering_nodes_of_three_fails_at_once() {
    // Three nodes: one refuses, the other two stay silent. The answer that came is a refusal.
    let nodes = (1..=3).map(|p| NodeConfig::new("127.0.0.1", p)).collect();
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(nodes, plain()), t0, 1).unwrap();
    for i in 0..3 {
        engine.handle_connected(t0, NodeId::new(i));
    }
    while next_event(&mut engine).is_some() {}
    engine
        .acquire(t0, ["r"], TTL, token(), SystemTime::now())
        .unwrap();
    drain(&mut engine);
    for i in 0..3 {
        engine.handle_input(t0, NodeId::new(i), b"+OK\r\n");
    }
    let lock = match next_event(&mut engine) {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    };
    engine.extend(t0, &lock, TTL).unwrap();
    drain(&mut engine);
    engine.handle_input(t0, NodeId::new(0), b":0\r\n");
    assert_eq!(
        next_event(&mut engine),
        None,
        "undecided: two may still grant"
    );
    let deadline = engine.poll_timeout().expect("the node timeout");
    engine.handle_timeout(deadline);
    match next_event(&mut engine) {
        Some(Event::Extended { result: Err(e), .. }) => {
            assert_eq!(e.failure, Failure::NotHeld, "{e}");
            assert_eq!(e.attempts.len(), 1, "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_attempt_cut_before_any_answer_is_classified_by_the_one_before() {
    // Refused at 0; the retry at 150 ms is cut at the 160 ms bound before the node answers.
    let (mut engine, t0) = connected(plain());
    let bounded = AcquireOptions::new().wait(ms(160)).retry(steady(ms(150)));
    engine
        .acquire_with(t0, ["r"], TTL, token(), SystemTime::now(), &bounded)
        .unwrap();
    assert_eq!(drain(&mut engine), 1);
    engine.handle_input(t0, NODE, b"$-1\r\n:0\r\n");
    assert_eq!(engine.poll_timeout(), Some(t0 + ms(150)));
    engine.handle_timeout(t0 + ms(150));
    assert_eq!(drain(&mut engine), 1, "the retry went out");
    assert_eq!(engine.poll_timeout(), Some(t0 + ms(160)));
    engine.handle_timeout(t0 + ms(160));
    match next_event(&mut engine) {
        Some(Event::Acquired { result: Err(e), .. }) => {
            assert!(e.timed_out);
            assert_eq!(e.failure, Failure::Locked, "{e}");
            assert_eq!(e.attempts.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

/// Default options, scripts only and no `INFO server`: these tests write a node's replies byte
/// for byte (the native commands have their own tests in `native.rs`).
fn plain() -> Options {
    let mut options = Options::default();
    options.native_commands = false;
    options
}

#[test]
fn an_attempt_that_answered_decides_the_timeout_not_the_one_before() {
    let mut options = plain();
    options.retry_delay = Duration::from_millis(100);
    options.retry_jitter = Duration::ZERO;
    options.retry_count = None;
    let (mut engine, t0) = connected(options);
    let bound = AcquireOptions::new().wait(Duration::from_millis(150));
    engine
        .acquire_with(
            t0,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[3; 20]).unwrap(),
            SystemTime::UNIX_EPOCH,
            &bound,
        )
        .unwrap();
    while engine.poll_transmit().is_some() {}
    // Attempt 1 is refused (someone holds it); attempt 2, at 100 ms, meets a failing node.
    engine.handle_input(t0, NodeId::new(0), b"$-1\r\n");
    let t1 = t0 + Duration::from_millis(100);
    engine.handle_timeout(t1);
    while engine.poll_transmit().is_some() {}
    engine.handle_input(t1, NodeId::new(0), b":0\r\n-BUSY script running\r\n");
    match next_event(&mut engine) {
        Some(Event::Acquired { result: Err(e), .. }) => {
            assert!(e.timed_out, "{e}");
            assert_eq!(
                e.failure,
                Failure::Unreachable,
                "the last attempt answered: {e}"
            );
        }
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
