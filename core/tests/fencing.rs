//! Fenced acquire through the public Engine API, with hand-written replies: the token is
//! `max(largest counter + 1, floor)`, the floor being the caller's wall clock in microseconds.

// A test (or example) plays the adapter: it owns the clock and the sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{
    script_sha, Config, Engine, Event, Failure, Lock, NodeConfig, NodeId, OpError, Options, Token,
    FENCE, FENCED_ACQUIRE, MAX_FENCING_TOKEN,
};
use std::time::{Duration, Instant, SystemTime};

const NODE: NodeId = NodeId::new(0);

fn unix_micros(micros: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(micros)
}

/// A one-node fenced engine, connected (nothing to negotiate: ready at once).
fn fenced(retry_count: u32) -> (Engine, Instant) {
    let mut options = plain_options();
    options.fencing = true;
    options.retry_count = Some(retry_count);
    options.retry_jitter = Duration::ZERO;
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let now = Instant::now();
    let mut engine = Engine::new(config, now, 1).unwrap();
    engine.handle_connected(now, NODE);
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
    (engine, now)
}

/// Grants the fenced acquire on the node with `counter`, and returns the fence round's bytes.
fn grant(engine: &mut Engine, now: Instant, counter: u64) -> Vec<u8> {
    let _acquire = engine.poll_transmit().expect("the fenced acquire is sent");
    engine.handle_input(now, NODE, format!("*2\r\n:1\r\n:{counter}\r\n").as_bytes());
    assert_eq!(
        engine.poll_event(),
        None,
        "not acquired before the write-back"
    );
    let (_, out) = engine.poll_transmit().expect("round two is sent");
    assert!(out.windows(40).any(|w| w == script_sha(FENCE).as_bytes()));
    out.to_vec()
}

fn acquired(engine: &mut Engine) -> Result<Lock, OpError> {
    match engine.poll_event() {
        Some(Event::Acquired { result, .. }) => result,
        other => panic!("{other:?}"),
    }
}

/// The write-back's token argument, the last bulk string of the command.
fn written_token(fence_round: &[u8]) -> String {
    let text = String::from_utf8_lossy(fence_round);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    lines.last().expect("a command").to_string()
}

#[test]
fn fenced_acquire_is_two_rounds_and_returns_max_plus_one_above_the_floor() {
    let (mut engine, now) = fenced(0);
    // A wall clock at the epoch: no floor, the counters decide.
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            unix_micros(0),
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
    engine.handle_input(now, NODE, b"*2\r\n:1\r\n:41\r\n");
    assert_eq!(engine.poll_event(), None);
    let (_, out) = engine.poll_transmit().expect("round two is sent");
    assert!(out.windows(40).any(|w| w == script_sha(FENCE).as_bytes()));
    assert_eq!(written_token(&out), "42", "T = max + 1 = 42");
    engine.handle_input(now, NODE, b":1\r\n");
    assert_eq!(acquired(&mut engine).unwrap().fencing_token(), Some(42));
}

#[test]
fn the_wall_clock_floor_wins_over_lower_counters() {
    let (mut engine, now) = fenced(0);
    let wall = 1_735_689_600_000_000; // 2025-01-01, in µs
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            unix_micros(wall),
        )
        .unwrap();
    // The counters were lost in a restart (0), or are small from before the floor existed.
    let out = grant(&mut engine, now, 41);
    assert_eq!(written_token(&out), wall.to_string());
    engine.handle_input(now, NODE, b":1\r\n");
    assert_eq!(acquired(&mut engine).unwrap().fencing_token(), Some(wall));
}

#[test]
fn a_counter_above_the_floor_still_gives_max_plus_one() {
    let (mut engine, now) = fenced(0);
    let wall = 1_735_689_600_000_000;
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            unix_micros(wall),
        )
        .unwrap();
    // A holder whose wall clock ran ahead of this one's left a larger counter.
    let out = grant(&mut engine, now, wall + 5_000);
    assert_eq!(written_token(&out), (wall + 5_001).to_string());
}

#[test]
fn the_floor_advances_with_the_engines_clock_until_the_fence_round() {
    let (mut engine, t0) = fenced(3);
    let wall = 1_735_689_600_000_000;
    engine
        .acquire(
            t0,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            unix_micros(wall),
        )
        .unwrap();
    let _first = engine.poll_transmit().unwrap();
    // Attempt 1 is refused; attempt 2 starts after the retry delay and is granted later still.
    engine.handle_input(t0, NODE, b"*1\r\n:0\r\n");
    let retry = engine.poll_timeout().expect("a retry is due");
    engine.handle_timeout(retry);
    let _cleanup = engine.poll_transmit();
    let later = retry + Duration::from_millis(7);
    let out = {
        engine.handle_input(later, NODE, b":0\r\n*2\r\n:1\r\n:0\r\n");
        engine.poll_transmit().expect("the fence round").1.to_vec()
    };
    let elapsed = u64::try_from((later - t0).as_micros()).unwrap();
    assert_eq!(
        written_token(&out),
        (wall + elapsed).to_string(),
        "the floor is the wall clock at the fence round, not at the first attempt"
    );
}

#[test]
fn a_wall_clock_before_the_epoch_is_no_floor() {
    let (mut engine, now) = fenced(0);
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            before,
        )
        .unwrap();
    let out = grant(&mut engine, now, 6);
    assert_eq!(written_token(&out), "7");
}

#[test]
fn tokens_up_to_two_to_the_53_minus_one_are_written_exactly() {
    let (mut engine, now) = fenced(0);
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            unix_micros(0),
        )
        .unwrap();
    let out = grant(&mut engine, now, MAX_FENCING_TOKEN - 1);
    assert_eq!(written_token(&out), "9007199254740991");
    engine.handle_input(now, NODE, b":1\r\n");
    assert_eq!(
        acquired(&mut engine).unwrap().fencing_token(),
        Some(MAX_FENCING_TOKEN)
    );
}

#[test]
fn a_token_past_two_to_the_53_is_refused_by_the_script_and_the_acquire_fails() {
    let (mut engine, now) = fenced(0);
    engine
        .acquire(
            now,
            ["r"],
            Duration::from_secs(10),
            Token::from_random(&[1; 20]).unwrap(),
            unix_micros(0),
        )
        .unwrap();
    let out = grant(&mut engine, now, MAX_FENCING_TOKEN);
    // Sent as the exact decimal; the fence script refuses it (Lua would round it).
    assert_eq!(written_token(&out), "9007199254740992");
    engine.handle_input(
        now,
        NODE,
        b"-ERR fencing token 9007199254740992 is not an integer below 2^53\r\n",
    );
    let e = acquired(&mut engine).expect_err("no lock with an inexact token");
    assert_eq!(e.failure, Failure::Unreachable);
    assert!(e.to_string().contains("below 2^53"), "{e}");
}

/// Default options, but scripts only and no `INFO server`: these tests write the replies of a
/// node byte for byte (the native commands have their own tests in `native.rs`).
fn plain_options() -> Options {
    let mut options = Options::default();
    options.native_commands = false;
    options
}
