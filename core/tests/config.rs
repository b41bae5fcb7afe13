//! What can be checked before connecting is refused up front, with the field named, instead of
//! failing later as "unreachable".

// A test plays the adapter: it owns the clock.
#![allow(clippy::disallowed_methods)]

use redlock_core::{Config, Engine, Error, NodeConfig, Options};
use std::time::Duration;

fn node() -> NodeConfig {
    NodeConfig::new("127.0.0.1", 7001)
}

fn refused_option(options: Options) -> &'static str {
    match Config::new(vec![node()], options).validate() {
        Err(Error::InvalidOption { name, .. }) => name,
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_names_redis_would_refuse_are_refused() {
    for name in ["a\rb", "a b", "a\nb", "", "é", "a\u{7f}"] {
        let mut options = Options::default();
        options.client_name = Some(name.into());
        assert_eq!(refused_option(options), "client_name", "{name:?}");
    }
    let mut options = Options::default();
    options.client_name = Some("worker-7:{a}".into());
    assert!(options.validate().is_ok());
}

#[test]
fn a_node_timeout_below_a_millisecond_is_refused() {
    for timeout in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
    ] {
        let mut options = Options::default();
        options.node_timeout = timeout;
        assert_eq!(refused_option(options), "node_timeout", "{timeout:?}");
    }
    let mut options = Options::default();
    options.node_timeout = Duration::from_millis(1);
    assert!(options.validate().is_ok());
}

#[test]
fn a_database_no_server_can_have_is_refused() {
    let config = Config::new(vec![node().with_db(u32::MAX)], Options::default());
    let e = config.validate().unwrap_err();
    assert!(matches!(e, Error::InvalidNode { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:7001"), "{e}");
    let config = Config::new(vec![node().with_db(15)], Options::default());
    assert!(config.validate().is_ok());
}

#[test]
fn a_user_without_a_password_is_refused() {
    let mut n = node();
    n.username = Some("app".into());
    let e = Config::new(vec![n], Options::default())
        .validate()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidNode { .. }), "{e}");
}

#[test]
fn the_same_node_twice_is_refused_because_it_would_vote_twice() {
    let nodes = vec![
        node(),
        NodeConfig::new("127.0.0.1", 7002),
        NodeConfig::new("127.0.0.1", 7001).with_db(3),
    ];
    let e = Config::new(nodes, Options::default())
        .validate()
        .unwrap_err();
    assert_eq!(
        e,
        Error::DuplicateNode {
            node: "127.0.0.1:7001".into()
        }
    );
    let nodes = vec![NodeConfig::new("Redis-A", 1), NodeConfig::new("redis-a", 1)];
    assert!(Config::new(nodes, Options::default()).validate().is_err());
    // The engine refuses it too, before anything is sent.
    let nodes = vec![node(), node()];
    let now = std::time::Instant::now();
    assert!(Engine::new(Config::new(nodes, Options::default()), now, 1).is_err());
}

#[test]
fn options_debug_names_scripts_without_their_sources() {
    let mut options = Options::default();
    options.scripts.release = Some("return redis.call('DEL', KEYS[1]) -- mine".into());
    let shown = format!("{options:?}");
    assert!(!shown.contains("redis.call"), "{shown}");
    assert!(shown.contains("custom (sha1 "), "{shown}");
    assert!(shown.contains("built-in"), "{shown}");
}
