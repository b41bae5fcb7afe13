//! The server's own commands on the wire: learned from `INFO server`, sent for a one-key release
//! (`DELEX … IFEQ`, `DELIFEQ`) and extend (`SET … IFEQ … PX`, only for a ttl at least the
//! longest set), read as their replies say, and replaced by the scripts when refused as unknown.
#![allow(clippy::disallowed_methods)] // the test owns the clock

use redlock_core::{Config, Engine, Event, Lock, NodeConfig, NodeId, Options, Outcome, Token};
use std::time::{Duration, Instant, SystemTime};

const NODE: NodeId = NodeId::new(0);
const TTL: Duration = Duration::from_secs(10);

fn info(text: &str) -> Vec<u8> {
    format!("${}\r\n{text}\r\n", text.len()).into_bytes()
}

fn sent(engine: &mut Engine) -> String {
    let mut out = Vec::new();
    while let Some((_, bytes)) = engine.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One node that answered `INFO server` with `server`, and a lock acquired on it.
fn locked(server: &str) -> (Engine, Instant, Lock) {
    let mut options = Options::default();
    options.retry_count = Some(0);
    locked_with(server, options)
}

/// [`locked`] with `options`.
fn locked_with(server: &str, options: Options) -> (Engine, Instant, Lock) {
    let now = Instant::now();
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], options);
    let mut engine = Engine::new(config, now, 1).unwrap();
    engine.handle_connected(now, NODE);
    assert!(sent(&mut engine).contains("INFO"));
    engine.handle_input(now, NODE, &info(server));
    let token = Token::from_random(&[7; 20]).unwrap();
    engine
        .acquire(now, ["r"], TTL, token, SystemTime::UNIX_EPOCH)
        .unwrap();
    assert!(sent(&mut engine).contains("NX"));
    engine.handle_input(now, NODE, b"+OK\r\n");
    let lock = loop {
        match engine.poll_event() {
            Some(Event::Acquired { result, .. }) => break result.unwrap(),
            Some(_) => continue,
            None => panic!("no acquire result"),
        }
    };
    (engine, now, lock)
}

fn released(engine: &mut Engine) -> Result<u32, String> {
    loop {
        match engine.poll_event() {
            Some(Event::Released { result, .. }) => {
                return result
                    .map(|r| r.confirmed as u32)
                    .map_err(|e| e.to_string())
            }
            Some(_) => continue,
            None => panic!("no release result"),
        }
    }
}

fn extended(engine: &mut Engine) -> Option<Lock> {
    loop {
        match engine.poll_event() {
            Some(Event::Extended { result, .. }) => return result.ok(),
            Some(_) => continue,
            None => panic!("no extend result"),
        }
    }
}

const REDIS_84: &str = "# Server\r\nredis_version:8.4.0";
const VALKEY_90: &str = "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.0.0";
const REDIS_7: &str = "redis_version:7.0.15";

#[test]
fn redis_8_4_releases_by_delex_and_extends_by_set_ifeq() {
    let (mut engine, now, lock) = locked(REDIS_84);
    engine.extend(now, &lock, TTL).unwrap();
    let out = sent(&mut engine);
    assert!(
        out.contains("SET\r\n$1\r\nr\r\n") && out.contains("IFEQ"),
        "{out}"
    );
    assert!(!out.contains("EVALSHA"), "{out}");
    engine.handle_input(now, NODE, b"+OK\r\n");
    let lock = extended(&mut engine).expect("extended");
    engine.release(now, &lock);
    let out = sent(&mut engine);
    assert!(out.contains("DELEX") && out.contains("IFEQ"), "{out}");
    engine.handle_input(now, NODE, b":1\r\n");
    assert_eq!(released(&mut engine), Ok(1));
}

#[test]
fn valkey_9_0_releases_by_delifeq() {
    let (mut engine, now, lock) = locked(VALKEY_90);
    engine.release(now, &lock);
    let out = sent(&mut engine);
    assert!(out.contains("DELIFEQ") && !out.contains("DELEX"), "{out}");
    engine.handle_input(now, NODE, b":0\r\n");
    assert_eq!(released(&mut engine), Ok(0));
}

#[test]
fn a_shorter_extend_goes_as_the_script_which_never_lowers_the_ttl() {
    let (mut engine, now, lock) = locked(REDIS_84);
    engine.extend(now, &lock, TTL / 2).unwrap();
    let out = sent(&mut engine);
    assert!(out.contains("EVALSHA") && !out.contains("IFEQ"), "{out}");
    engine.handle_input(now, NODE, b":1\r\n");
    let shorter = extended(&mut engine).expect("extended");
    // The lock remembers the longest ttl: a ttl between the two still goes as the script.
    engine
        .extend(now, &shorter, TTL - Duration::from_secs(1))
        .unwrap();
    assert!(sent(&mut engine).contains("EVALSHA"));
}

#[test]
fn a_native_command_refused_as_unknown_falls_back_to_the_script() {
    let (mut engine, now, lock) = locked(REDIS_84);
    engine.release(now, &lock);
    let out = sent(&mut engine);
    assert!(out.contains("DELEX"), "{out}");
    // A native release cannot publish: the client announces it right behind.
    assert!(out.contains("PUBLISH"), "{out}");
    engine.handle_input(now, NODE, b"-ERR unknown command 'DELEX', with args\r\n");
    let out = sent(&mut engine);
    assert!(out.contains("EVAL\r\n"), "sent again as the script: {out}");
    // The PUBLISH's count, then the script's.
    engine.handle_input(now, NODE, b":0\r\n:1\r\n");
    assert_eq!(released(&mut engine), Ok(1));
    // Scripts from then on, on this socket.
    engine.extend(now, &lock, TTL).unwrap();
    assert!(sent(&mut engine).contains("EVALSHA"));
}

#[test]
fn without_native_commands_a_noperm_release_fails_in_one_line_naming_the_fix() {
    let (mut engine, now, lock) = locked(REDIS_7);
    engine.release(now, &lock);
    assert!(sent(&mut engine).contains("EVALSHA"));
    engine.handle_input(
        now,
        NODE,
        b"-NOPERM User app has no permissions to run the 'evalsha' command\r\n",
    );
    let err = released(&mut engine).expect_err("nothing deleted, and the node said why");
    assert!(!err.contains('\n'), "{err}");
    let report = redlock_core::NodeReport::new(
        NODE,
        "127.0.0.1:1",
        Outcome::ErrorReply(
            "NOPERM User app has no permissions to run the 'evalsha' command".into(),
        ),
    );
    let line = report.failure().unwrap();
    assert!(
        line.contains("NOPERM") && line.contains("+@scripting"),
        "{line}"
    );
}

#[test]
fn a_user_without_info_leaves_the_server_unknown_and_uses_scripts() {
    let (mut engine, now, lock) = locked("");
    engine.handle_connected(now, NODE);
    assert!(sent(&mut engine).contains("INFO"));
    engine.handle_input(
        now,
        NODE,
        b"-NOPERM User app has no permissions to run the 'info' command\r\n",
    );
    assert!(engine.is_ready(NODE), "still usable");
    engine.release(now, &lock);
    assert!(sent(&mut engine).contains("EVALSHA"));
}

#[test]
fn an_overridden_script_is_never_replaced_by_a_native_command() {
    let mut options = Options::default();
    options.retry_count = Some(0);
    options.scripts.release = Some(format!("-- audited\n{}", redlock_core::RELEASE));
    options.scripts.extend = Some(format!("-- audited\n{}", redlock_core::EXTEND));
    let (mut engine, now, lock) = locked_with(REDIS_84, options);
    engine.extend(now, &lock, TTL).unwrap();
    let out = sent(&mut engine);
    assert!(out.contains("EVALSHA") && !out.contains("IFEQ"), "{out}");
    engine.handle_input(now, NODE, b":1\r\n");
    let lock = extended(&mut engine).expect("extended");
    engine.release(now, &lock);
    let out = sent(&mut engine);
    assert!(out.contains("EVALSHA") && !out.contains("DELEX"), "{out}");
    engine.handle_input(now, NODE, b":1\r\n");
    assert_eq!(released(&mut engine), Ok(1));
    // The cleanup of a failed acquire uses the user's release script too.
    let token = Token::from_random(&[8; 20]).unwrap();
    engine
        .acquire(now, ["s"], TTL, token, SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine);
    engine.handle_input(now, NODE, b"$-1\r\n");
    let out = sent(&mut engine);
    assert!(out.contains("EVALSHA") && !out.contains("DELEX"), "{out}");
}

#[test]
fn with_native_commands_off_a_server_that_has_them_still_gets_the_scripts() {
    // INFO still goes out for restart-aware voting, so the engine learns the version.
    let mut options = Options::default();
    options.retry_count = Some(0);
    options.native_commands = false;
    options.restart_grace = Some(Duration::from_secs(1));
    let text = "# Server\r\nredis_version:8.4.0\r\nrun_id:abc\r\nuptime_in_seconds:99";
    let (mut engine, now, lock) = locked_with(text, options);
    engine.extend(now, &lock, TTL).unwrap();
    let out = sent(&mut engine);
    assert!(out.contains("EVALSHA") && !out.contains("IFEQ"), "{out}");
    engine.handle_input(now, NODE, b":1\r\n");
    let lock = extended(&mut engine).expect("extended");
    engine.release(now, &lock);
    let out = sent(&mut engine);
    assert!(out.contains("EVALSHA") && !out.contains("DELEX"), "{out}");
}

#[test]
fn the_publish_behind_a_native_release_waits_a_whole_node_timeout() {
    let (mut engine, now, lock) = locked(REDIS_84);
    engine.release(now, &lock);
    let out = sent(&mut engine);
    assert!(out.contains("DELEX") && out.contains("PUBLISH"), "{out}");
    engine.handle_input(now, NODE, b":1\r\n");
    assert_eq!(released(&mut engine), Ok(1));
    // The PUBLISH's reply is due one node timeout from now, not already overdue.
    engine.handle_timeout(now);
    assert!(engine.poll_event().is_none(), "not overdue at once");
    assert!(engine.is_connected(NODE));
}

#[test]
fn set_ifeq_grants_only_on_ok() {
    let (mut engine, now, lock) = locked(REDIS_84);
    engine.extend(now, &lock, TTL).unwrap();
    assert!(sent(&mut engine).contains("IFEQ"));
    engine.handle_input(now, NODE, b"+QUEUED\r\n");
    let mut reconnect = false;
    let mut extended_ok = false;
    while let Some(event) = engine.poll_event() {
        match event {
            Event::Reconnect { .. } => reconnect = true,
            Event::Extended { result, .. } => extended_ok = result.is_ok(),
            _ => {}
        }
    }
    assert!(
        reconnect,
        "a status other than OK is not an answer SET IFEQ gives"
    );
    assert!(!extended_ok);
}
