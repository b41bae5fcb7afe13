//! Waiting for a release instead of polling: a refused acquire subscribes to its key's release
//! channel on RESP3 connections, an announcement starts one waiter's next attempt at once (not
//! one per node, not every waiter), `Engine::handle_released` does the same from outside, and
//! the retry delay stays the fallback.
#![allow(clippy::disallowed_methods)] // the test owns the clock

use redlock_core::{
    release_channel, Config, Engine, Event, LinkId, NodeConfig, NodeId, OpId, Options, Protocol,
    Token,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

const TTL: Duration = Duration::from_secs(10);
const DELAY: Duration = Duration::from_secs(2);

fn node(i: usize) -> NodeId {
    NodeId::new(i)
}

/// `n` nodes, connected and through the handshake (`HELLO 3` answered for RESP3), with a 2 s
/// retry delay and no jitter; native commands off (no `INFO`).
fn engine(n: usize, protocol: Protocol) -> (Engine, Instant) {
    let mut options = Options::default();
    options.protocol = protocol;
    options.native_commands = false;
    options.retry_delay = DELAY;
    options.retry_jitter = Duration::ZERO;
    options.retry_count = None;
    let nodes = (0..n).map(|i| NodeConfig::new("127.0.0.1", 7000 + i as u16));
    let now = Instant::now();
    let mut engine = Engine::new(Config::new(nodes.collect(), options), now, 1).unwrap();
    for i in 0..n {
        engine.handle_connected(now, node(i));
        if protocol == Protocol::Resp3 {
            assert!(sent(&mut engine, i).contains("HELLO"));
            engine.handle_input(now, node(i), b"%1\r\n+server\r\n+redis\r\n");
        }
        assert_eq!(
            engine.poll_event(),
            Some(Event::Ready {
                link: (node(i)).into()
            })
        );
    }
    (engine, now)
}

/// Everything queued for node `i`, as text (other nodes' output is left queued).
fn sent(engine: &mut Engine, i: usize) -> String {
    let mut out = String::new();
    let mut others = Vec::new();
    while let Some((to, bytes)) = engine.poll_transmit() {
        if to == node(i) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            others.push(to);
        }
    }
    assert!(others.is_empty(), "unread output for {others:?}");
    out
}

/// Everything queued for every node, as text per node.
fn sent_all(engine: &mut Engine, n: usize) -> Vec<String> {
    let mut out = vec![String::new(); n];
    while let Some((to, bytes)) = engine.poll_transmit() {
        out[to.index()].push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn acquire(engine: &mut Engine, now: Instant, seed: u8) -> OpId {
    let token = Token::from_random(&[seed; 20]).unwrap();
    engine
        .acquire(now, ["r"], TTL, token, SystemTime::UNIX_EPOCH)
        .unwrap()
}

/// A RESP3 push: `message` on `r`'s release channel.
fn message() -> Vec<u8> {
    let ch = release_channel(b"r");
    let mut m = format!(">3\r\n$7\r\nmessage\r\n${}\r\n", ch.len()).into_bytes();
    m.extend_from_slice(&ch);
    m.extend_from_slice(b"\r\n$0\r\n\r\n");
    m
}

/// A RESP3 push: the confirmation of `(un)subscribe` of `r`'s channel.
fn confirm(kind: &str) -> Vec<u8> {
    let ch = release_channel(b"r");
    let mut m = format!(">3\r\n${}\r\n{kind}\r\n${}\r\n", kind.len(), ch.len()).into_bytes();
    m.extend_from_slice(&ch);
    m.extend_from_slice(b"\r\n:1\r\n");
    m
}

/// Refuses the `SET NX` of one node's attempt (RESP3 null) and answers the cleanup release.
const REFUSED: &[u8] = b"_\r\n:0\r\n";

/// Every node refuses `k` pipelined `SET NX` (null each), then answers their `k` cleanup
/// releases (queued once each attempt was decided).
fn refuse_all(engine: &mut Engine, now: Instant, n: usize, k: usize) {
    for i in 0..n {
        engine.handle_input(now, node(i), &b"_\r\n".repeat(k));
    }
    for i in 0..n {
        engine.handle_input(now, node(i), &b":0\r\n".repeat(k));
    }
}

#[test]
fn a_refused_acquire_subscribes_and_an_announcement_retries_it_at_once() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    let op = acquire(&mut engine, t0, 1);
    assert!(sent(&mut engine, 0).contains("NX"));
    engine.handle_input(t0, node(0), REFUSED);
    let out = sent(&mut engine, 0);
    assert!(out.contains("SUBSCRIBE\r\n"), "{out}");
    // Named once, by the SUBSCRIBE: the cleanup of the refused attempt announces nothing (it
    // would wake this very waiter into the same contest).
    assert_eq!(count(&out, "redlock:released:{r}"), 1, "{out}");
    engine.handle_input(t0, node(0), &confirm("subscribe"));
    assert_eq!(sent(&mut engine, 0), "", "a confirmation asks for nothing");
    assert_eq!(engine.poll_timeout(), Some(t0 + DELAY), "the fallback");
    // 30 ms later the holder releases: attempt 2 goes out now, not at t0 + 2 s.
    let t1 = t0 + Duration::from_millis(30);
    engine.handle_input(t1, node(0), &message());
    assert!(sent(&mut engine, 0).contains("NX"), "retried at once");
    engine.handle_input(t1, node(0), b"+OK\r\n");
    match engine.poll_event() {
        Some(Event::Acquired {
            op: done,
            result: Ok(lock),
        }) => {
            assert_eq!(done, op);
            assert_eq!(lock.attempts(), 2);
        }
        other => panic!("{other:?}"),
    }
    // Nobody waits any more: the channel is given up.
    let out = sent(&mut engine, 0);
    assert!(out.contains("UNSUBSCRIBE"), "{out}");
    engine.handle_input(t1, node(0), &confirm("unsubscribe"));
    assert_eq!(engine.poll_event(), None);
    assert!(
        engine.is_connected(node(0)),
        "pushes never break the stream"
    );
}

#[test]
fn one_announcement_wakes_one_waiter_not_all() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    for seed in 1..=3 {
        acquire(&mut engine, t0, seed);
    }
    assert_eq!(count(&sent(&mut engine, 0), "NX"), 3);
    refuse_all(&mut engine, t0, 1, 3);
    let out = sent(&mut engine, 0);
    assert_eq!(count(&out, "SUBSCRIBE"), 1, "one channel, once: {out}");
    engine.handle_input(t0, node(0), &confirm("subscribe"));
    engine.handle_input(t0, node(0), &message());
    assert_eq!(count(&sent(&mut engine, 0), "NX"), 1, "one waiter tries");
}

#[test]
fn the_same_release_announced_by_every_node_wakes_one_attempt() {
    let (mut engine, t0) = engine(3, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    acquire(&mut engine, t0, 2);
    sent_all(&mut engine, 3);
    refuse_all(&mut engine, t0, 3, 2);
    for (i, out) in sent_all(&mut engine, 3).iter().enumerate() {
        assert_eq!(count(out, "SUBSCRIBE"), 1, "node {i}: {out}");
        engine.handle_input(t0, node(i), &confirm("subscribe"));
    }
    // Node 0's announcement wakes one waiter; its attempt goes to every node.
    engine.handle_input(t0, node(0), &message());
    let out = sent_all(&mut engine, 3);
    assert!(out.iter().all(|o| count(o, "NX") == 1), "{out:?}");
    // Nodes 1 and 2 announce the same release before answering that attempt: the attempt will
    // see the release there, so nothing else goes out.
    engine.handle_input(t0, node(1), &message());
    engine.handle_input(t0, node(2), &message());
    assert_eq!(sent_all(&mut engine, 3).concat(), "");
}

#[test]
fn an_announcement_before_the_nodes_answer_is_not_news_but_one_after_a_refusal_is() {
    let (mut engine, t0) = engine(3, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent_all(&mut engine, 3);
    refuse_all(&mut engine, t0, 3, 1);
    for i in 0..3 {
        engine.handle_input(t0, node(i), &confirm("subscribe"));
    }
    assert_eq!(
        sent_all(&mut engine, 3)
            .concat()
            .matches("SUBSCRIBE")
            .count(),
        3
    );
    // Attempt 2 (after the fallback delay): node 0 refuses it, then announces a release it
    // saw after refusing. Nodes 1 and 2 refuse too: the attempt fails, and since a release
    // came after a refusal it tries again at once instead of after 2 s.
    let t1 = t0 + DELAY;
    engine.handle_timeout(t1);
    assert!(sent_all(&mut engine, 3).iter().all(|o| o.contains("NX")));
    engine.handle_input(t1, node(0), b"_\r\n");
    engine.handle_input(t1, node(0), &message());
    assert_eq!(
        sent_all(&mut engine, 3).concat(),
        "",
        "the attempt is still open"
    );
    engine.handle_input(t1, node(1), b"_\r\n");
    engine.handle_input(t1, node(2), b"_\r\n");
    assert!(
        sent_all(&mut engine, 3)
            .iter()
            .all(|o| o.contains("EVALSHA")),
        "cleanups"
    );
    for i in 0..3 {
        engine.handle_input(t1, node(i), b":0\r\n");
    }
    assert_eq!(engine.poll_timeout(), Some(t1), "retry now");
    engine.handle_timeout(t1);
    assert!(sent_all(&mut engine, 3).iter().all(|o| o.contains("NX")));
}

#[test]
fn without_an_announcement_the_retry_delay_still_runs() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), REFUSED);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), &confirm("subscribe"));
    // A peer released with a plain DEL: no message. At t0 + 2 s the retry goes anyway.
    engine.handle_timeout(t0 + DELAY - Duration::from_millis(1));
    assert_eq!(sent(&mut engine, 0), "");
    engine.handle_timeout(t0 + DELAY);
    assert!(sent(&mut engine, 0).contains("NX"));
}

#[test]
fn resp2_connections_do_not_subscribe_but_handle_released_wakes_a_waiter() {
    let (mut engine, t0) = engine(1, Protocol::Resp2);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), b"$-1\r\n:0\r\n");
    assert!(!sent(&mut engine, 0).contains("SUBSCRIBE"));
    // Another key's release changes nothing; this key's starts the next attempt now.
    engine.handle_released(t0, b"other");
    assert_eq!(sent(&mut engine, 0), "");
    engine.handle_released(t0, b"r");
    assert!(sent(&mut engine, 0).contains("NX"));
}

#[test]
fn a_refused_subscribe_leaves_the_connection_working_and_is_not_repeated() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), REFUSED);
    assert!(sent(&mut engine, 0).contains("SUBSCRIBE"));
    engine.handle_input(
        t0,
        node(0),
        b"-NOPERM No permissions to access a channel\r\n",
    );
    assert!(engine.is_connected(node(0)));
    // A second waiter on another key would need a new subscription: none is asked for.
    let token = Token::from_random(&[9; 20]).unwrap();
    engine
        .acquire(t0, ["s"], TTL, token, SystemTime::UNIX_EPOCH)
        .unwrap();
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), REFUSED);
    assert!(!sent(&mut engine, 0).contains("SUBSCRIBE"));
    // The fallback still runs.
    engine.handle_timeout(t0 + DELAY);
    assert_eq!(count(&sent(&mut engine, 0), "NX"), 2);
}

#[test]
fn a_reconnected_node_is_subscribed_again() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), REFUSED);
    assert!(sent(&mut engine, 0).contains("SUBSCRIBE"));
    engine.handle_disconnected(t0, node(0));
    engine.handle_connected(t0, node(0));
    assert!(sent(&mut engine, 0).contains("HELLO"));
    engine.handle_input(t0, node(0), b"%1\r\n+server\r\n+redis\r\n");
    let out = sent(&mut engine, 0);
    assert!(out.contains("SUBSCRIBE"), "{out}");
}

#[test]
fn the_release_script_is_told_where_to_announce() {
    let (mut engine, t0) = engine(1, Protocol::Resp2);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), b"+OK\r\n");
    let lock = match engine.poll_event() {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => lock,
        other => panic!("{other:?}"),
    };
    engine.release(t0, &lock);
    let out = sent(&mut engine, 0);
    assert!(out.contains("EVALSHA"), "{out}");
    assert!(out.contains("redlock:released:{r}"), "{out}");
    assert!(redlock_core::RELEASE.contains("PUBLISH"));
}

#[test]
fn a_subscription_waits_a_whole_node_timeout_for_its_confirmation() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), REFUSED);
    assert!(sent(&mut engine, 0).contains("SUBSCRIBE\r\n"));
    // The confirmation is due one node timeout (500 ms) from now, not already overdue.
    let timeout = engine.options().node_timeout;
    assert_eq!(engine.poll_timeout(), Some(t0 + timeout));
    engine.handle_timeout(t0);
    assert_eq!(engine.poll_event(), None, "not overdue at once");
    assert!(engine.is_connected(node(0)));
}

#[test]
fn a_stray_confirmation_answers_nothing_but_a_subscribe() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    // A (un)subscribe confirmation while a lock request heads the queue is out-of-band noise:
    // the +OK that follows still answers the SET NX.
    engine.handle_input(t0, node(0), &confirm("subscribe"));
    engine.handle_input(t0, node(0), b"+OK\r\n");
    assert!(matches!(
        engine.poll_event(),
        Some(Event::Acquired { result: Ok(_), .. })
    ));
}

#[test]
fn a_message_push_of_the_wrong_shape_wakes_nobody() {
    let (mut engine, t0) = engine(1, Protocol::Resp3);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), REFUSED);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), &confirm("subscribe"));
    // `message` and a channel but no payload: not a message Redis sends, so not a release.
    let ch = release_channel(b"r");
    let mut push = format!(">2\r\n$7\r\nmessage\r\n${}\r\n", ch.len()).into_bytes();
    push.extend_from_slice(&ch);
    push.extend_from_slice(b"\r\n");
    engine.handle_input(t0, node(0), &push);
    assert_eq!(sent(&mut engine, 0), "", "no retry");
    assert_eq!(
        engine.poll_timeout(),
        Some(t0 + DELAY),
        "still the fallback"
    );
}

#[test]
fn with_waiting_turned_off_a_refused_acquire_only_polls() {
    let mut options = Options::default();
    options.protocol = Protocol::Resp3;
    options.native_commands = false;
    options.wait_for_release = false;
    options.retry_delay = DELAY;
    options.retry_jitter = Duration::ZERO;
    let now = Instant::now();
    let nodes = vec![NodeConfig::new("127.0.0.1", 7000)];
    let mut engine = Engine::new(Config::new(nodes, options), now, 1).unwrap();
    engine.handle_connected(now, node(0));
    sent(&mut engine, 0);
    engine.handle_input(now, node(0), b"%1\r\n+server\r\n+redis\r\n");
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready {
            link: (node(0)).into()
        })
    );
    acquire(&mut engine, now, 1);
    sent(&mut engine, 0);
    engine.handle_input(now, node(0), REFUSED);
    let out = sent(&mut engine, 0);
    assert!(!out.contains("SUBSCRIBE"), "{out}");
    assert_eq!(engine.poll_timeout(), Some(now + DELAY));
}

/// Everything queued for each link, as text per link (links numbered from 0).
fn sent_links(engine: &mut Engine) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    while let Some((to, bytes)) = engine.poll_transmit() {
        out.entry(to.index())
            .or_insert_with(String::new)
            .push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

/// A RESP2 array as a subscribed connection carries it: `kind`, `r`'s channel, then `last`.
fn resp2_frame(kind: &str, last: &str) -> Vec<u8> {
    let ch = release_channel(b"r");
    let mut m = format!("*3\r\n${}\r\n{kind}\r\n${}\r\n", kind.len(), ch.len()).into_bytes();
    m.extend_from_slice(&ch);
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(last.as_bytes());
    m
}

#[test]
fn a_resp2_node_subscribes_on_a_link_of_its_own() {
    let mut options = Options::default();
    options.retry_delay = DELAY;
    options.retry_jitter = Duration::ZERO;
    let nodes = vec![NodeConfig::new("127.0.0.1", 7000).with_auth(None, "pw")];
    let t0 = Instant::now();
    let mut engine = Engine::new(Config::new(nodes, options), t0, 1).unwrap();
    engine.handle_connected(t0, node(0));
    sent(&mut engine, 0);
    // AUTH, then INFO server (native commands are on by default).
    engine.handle_input(t0, node(0), b"+OK\r\n$15\r\nredis_version:7\r\n");
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready {
            link: node(0).into()
        })
    );
    acquire(&mut engine, t0, 1);
    assert!(sent(&mut engine, 0).contains("NX"));
    assert_eq!(engine.poll_event(), None, "nothing to subscribe to yet");
    engine.handle_input(t0, node(0), b"$-1\r\n:0\r\n");
    // Refused: RESP2 cannot take pushes on the lock connection, so a second link opens.
    let sub = LinkId::new(1);
    assert_eq!(
        engine.poll_event(),
        Some(Event::Open {
            link: sub,
            node: node(0),
            to: None
        })
    );
    assert!(!sent(&mut engine, 0).contains("SUBSCRIBE"));
    engine.handle_connected(t0, sub);
    let out = sent_links(&mut engine);
    // The node's handshake, and nothing else until it succeeds; never INFO there.
    assert_eq!(out.keys().copied().collect::<Vec<_>>(), [1], "{out:?}");
    assert!(
        out[&1].contains("AUTH") && !out[&1].contains("SUBSCRIBE"),
        "{out:?}"
    );
    engine.handle_input(t0, sub, b"+OK\r\n");
    assert_eq!(engine.poll_event(), Some(Event::Ready { link: sub }));
    let out = sent_links(&mut engine);
    assert!(
        out[&1].contains("SUBSCRIBE") && !out[&1].contains("INFO"),
        "{out:?}"
    );
    engine.handle_input(t0, sub, &resp2_frame("subscribe", ":1\r\n"));
    assert!(
        sent_links(&mut engine).is_empty(),
        "a confirmation asks for nothing"
    );
    assert_eq!(engine.poll_timeout(), Some(t0 + DELAY), "the fallback");
    // The holder releases 30 ms later: attempt 2 goes out now on the lock link.
    let t1 = t0 + Duration::from_millis(30);
    engine.handle_input(t1, sub, &resp2_frame("message", "$0\r\n\r\n"));
    let out = sent_links(&mut engine);
    assert!(out.get(&0).is_some_and(|o| o.contains("NX")), "{out:?}");
    assert!(!out.contains_key(&1), "{out:?}");
    // Granted: nobody waits any more, so the channel is dropped on the subscriber link.
    engine.handle_input(t1, node(0), b"+OK\r\n");
    assert!(matches!(
        engine.poll_event(),
        Some(Event::Acquired { result: Ok(_), .. })
    ));
    let out = sent_links(&mut engine);
    assert!(out[&1].contains("UNSUBSCRIBE"), "{out:?}");
}

#[test]
fn a_broken_subscriber_link_is_reopened_without_blaming_the_node() {
    let (mut engine, t0) = engine(1, Protocol::Resp2);
    acquire(&mut engine, t0, 1);
    sent(&mut engine, 0);
    engine.handle_input(t0, node(0), b"$-1\r\n:0\r\n");
    let sub = LinkId::new(1);
    assert!(matches!(engine.poll_event(), Some(Event::Open { link, .. }) if link == sub));
    engine.handle_connected(t0, sub);
    assert_eq!(engine.poll_event(), Some(Event::Ready { link: sub }));
    assert!(sent_links(&mut engine)[&1].contains("SUBSCRIBE"));
    engine.handle_input(t0, sub, &resp2_frame("subscribe", ":1\r\n"));
    // Garbage on the subscriber: that link reconnects; the node's own stays up and unblamed.
    engine.handle_input(t0, sub, b"?\r\n");
    assert!(matches!(
        engine.poll_event(),
        Some(Event::Reconnect { link, .. }) if link == sub
    ));
    assert!(engine.is_connected(node(0)) && !engine.is_connected(sub));
    // Back: subscribed again, with no second link opened.
    engine.handle_connected(t0, sub);
    assert_eq!(engine.poll_event(), Some(Event::Ready { link: sub }));
    assert_eq!(engine.poll_event(), None);
    assert!(sent_links(&mut engine)[&1].contains("SUBSCRIBE"));
    engine.handle_input(t0, sub, &resp2_frame("subscribe", ":1\r\n"));
    // The next attempt reports no cause for the node.
    engine.handle_timeout(t0 + DELAY);
    sent(&mut engine, 0);
    engine.handle_input(t0 + DELAY, node(0), b"+OK\r\n");
    match engine.poll_event() {
        Some(Event::Acquired {
            result: Ok(lock), ..
        }) => assert_eq!(lock.attempts(), 2),
        other => panic!("{other:?}"),
    }
}
