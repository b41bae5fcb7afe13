//! Restart-aware voting (`Options::restart_grace`), rule by rule through the engine: a node's
//! grants count only once its `INFO server` (part of the handshake) says it has been up for the
//! grace, a young node sits out the rest of it, and a node whose `run_id` changed since the
//! client's last connection sits out a whole grace whatever uptime it reports.
#![allow(clippy::disallowed_methods)] // the test owns the clock

use redlock_core::{Config, Engine, Event, NodeConfig, NodeId, OpError, Options, Outcome, Token};
use std::time::{Duration, Instant, SystemTime};

const NODE: NodeId = NodeId::new(0);
const GRACE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(10);

/// One node, scripts only, one attempt per acquire, with `grace` as the restart grace.
fn engine(grace: Option<Duration>) -> (Engine, Instant) {
    let mut options = Options::default();
    options.native_commands = false;
    options.retry_count = Some(0);
    options.restart_grace = grace;
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let t0 = Instant::now();
    (Engine::new(config, t0, 1).unwrap(), t0)
}

fn sent(engine: &mut Engine) -> String {
    let mut out = String::new();
    while let Some((_, bytes)) = engine.poll_transmit() {
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

/// `INFO server` answering with `run_id` and `uptime_secs`.
fn info(run_id: &str, uptime_secs: u64) -> Vec<u8> {
    let text = format!("# Server\r\nrun_id:{run_id}\r\nuptime_in_seconds:{uptime_secs}\r\n");
    format!("${}\r\n{text}\r\n", text.len()).into_bytes()
}

/// Connects at `now` and answers the handshake's `INFO server` with `run_id` and `uptime_secs`.
fn connect(engine: &mut Engine, now: Instant, run_id: &str, uptime_secs: u64) {
    engine.handle_connected(now, NODE);
    assert!(sent(engine).contains("INFO"));
    engine.handle_input(now, NODE, &info(run_id, uptime_secs));
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready { link: NODE.into() })
    );
}

/// An acquire at `now` the node grants (`SET NX` answered `+OK`): `Ok`, or the error with how
/// the node's vote counted (its cleanup answered).
fn granted_acquire(engine: &mut Engine, now: Instant, seed: u8) -> Result<(), OpError> {
    let token = Token::from_random(&[seed; 20]).unwrap();
    engine
        .acquire(
            now,
            [format!("r{seed}")],
            TTL,
            token,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
    assert!(sent(engine).contains("NX"));
    engine.handle_input(now, NODE, b"+OK\r\n");
    let result = match engine.poll_event() {
        Some(Event::Acquired { result, .. }) => result.map(|_| ()),
        other => panic!("{other:?}"),
    };
    if result.is_err() {
        // The failed attempt's cleanup releases the key the node did set.
        assert!(sent(engine).contains("EVALSHA"));
        engine.handle_input(now, NODE, b":1\r\n");
    }
    result
}

/// The node's outcome in the last attempt of a failed acquire.
fn outcome(error: &OpError) -> Outcome {
    error.attempts.last().unwrap().nodes[0].outcome.clone()
}

#[test]
fn without_a_grace_every_grant_counts() {
    let (mut engine, t0) = engine(None);
    engine.handle_connected(t0, NODE);
    assert_eq!(sent(&mut engine), "", "no INFO: nothing to negotiate");
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready { link: NODE.into() })
    );
    assert!(granted_acquire(&mut engine, t0, 1).is_ok());
}

#[test]
fn a_node_votes_only_once_info_answers_on_each_connection() {
    let (mut engine, t0) = engine(Some(GRACE));
    engine.handle_connected(t0, NODE);
    assert!(sent(&mut engine).contains("INFO"));
    // Before INFO answers, a lock request is held, never voted on.
    let token = Token::from_random(&[1; 20]).unwrap();
    engine
        .acquire(t0, ["r"], TTL, token, SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(sent(&mut engine), "");
    assert!(!engine.is_ready(NODE));
    engine.handle_input(t0, NODE, &info("a", 3600));
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready { link: NODE.into() })
    );
    assert!(sent(&mut engine).contains("NX"), "sent once INFO answered");
    engine.handle_input(t0, NODE, b"+OK\r\n");
    assert!(matches!(
        engine.poll_event(),
        Some(Event::Acquired { result: Ok(_), .. })
    ));
    // A new connection asks again before anything goes out.
    engine.handle_connected(t0, NODE);
    assert!(sent(&mut engine).contains("INFO"));
    assert!(!engine.is_ready(NODE));
}

#[test]
fn a_young_node_sits_out_the_rest_of_the_grace() {
    let (mut engine, t0) = engine(Some(GRACE));
    connect(&mut engine, t0, "a", 10);
    let e = granted_acquire(&mut engine, t0, 1).unwrap_err();
    assert_eq!(
        outcome(&e),
        Outcome::SittingOut {
            remaining: Duration::from_secs(20)
        }
    );
    let just_before = t0 + Duration::from_secs(20) - Duration::from_millis(1);
    let e = granted_acquire(&mut engine, just_before, 2).unwrap_err();
    assert_eq!(
        outcome(&e),
        Outcome::SittingOut {
            remaining: Duration::from_millis(1)
        }
    );
    assert!(granted_acquire(&mut engine, t0 + Duration::from_secs(20), 3).is_ok());
}

#[test]
fn the_same_run_id_on_reconnect_does_not_sit_out() {
    let (mut engine, t0) = engine(Some(GRACE));
    connect(&mut engine, t0, "a", 3600);
    engine.handle_disconnected(t0, NODE);
    connect(&mut engine, t0, "a", 3601);
    assert!(granted_acquire(&mut engine, t0, 1).is_ok());
}

#[test]
fn a_changed_run_id_sits_out_a_whole_grace_whatever_its_uptime() {
    let (mut engine, t0) = engine(Some(GRACE));
    connect(&mut engine, t0, "a", 3600);
    engine.handle_disconnected(t0, NODE);
    connect(&mut engine, t0, "b", 3600);
    let e = granted_acquire(&mut engine, t0, 1).unwrap_err();
    assert_eq!(outcome(&e), Outcome::SittingOut { remaining: GRACE });
    let later = t0 + GRACE - Duration::from_millis(1);
    let e = granted_acquire(&mut engine, later, 2).unwrap_err();
    assert_eq!(
        outcome(&e),
        Outcome::SittingOut {
            remaining: Duration::from_millis(1)
        }
    );
    assert!(granted_acquire(&mut engine, t0 + GRACE, 3).is_ok());
}
