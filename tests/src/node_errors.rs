//! Node errors an operator can act on, live on every adapter: a refused handshake (wrong
//! password, `-LOADING`) named in one line and retried at a bounded rate; a connect failure's
//! cause (refused port, a TLS certificate from an unknown issuer) in the error's `Display`; no
//! ghost lock after paused nodes resume; `Locked` (not `Unreachable`) with a node down; and no
//! lock request run after a refused `SELECT` or `AUTH`.
//! [`node_errors_suite!`](crate::node_errors_suite) stamps out the `#[test]`s.

use crate::certs::Certs;
use crate::conformance::{test_options, Client};
use crate::fake::FakeServer;
use redlock_async::{Error, Node, Options, OptionsExt as _, Tls};
use redlock_harness::{Cluster, Reply, Serve, ServerTls};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(10);

/// How long the reconnect rate is measured.
pub const MEASURE: Duration = Duration::from_secs(3);

/// The most connections one client may open in [`MEASURE`] to a node that refuses every
/// handshake. The driver's backoff (20 ms doubling to 1 s, each wait jittered to between half
/// and all of it) allows at most 11 in 3 s: the first, then one after each wait of at least
/// 10, 20, 40, 80, 160, 320, 500, 500, 500 and 500 ms. A few more for scheduling slack; the
/// old behaviour (reset on TCP connect) opened over a hundred.
pub const MAX_CONNECTS_IN_MEASURE: u64 = 15;

fn once() -> Options {
    test_options().retry_count(0)
}

fn one_line(err: &Error) -> String {
    let shown = err.to_string();
    assert!(!shown.contains('\n'), "not one line: {shown}");
    shown
}

/// `INFO stats` `total_connections_received` on node `i`.
pub fn connections_received(cluster: &Cluster, i: usize) -> u64 {
    let text = match cluster.cmd(i, &["INFO", "stats"]) {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO stats: {other:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_connections_received in {text}"))
}

/// A wrong password: one line naming `WRONGPASS` and the node; the client reconnects at most
/// [`MAX_CONNECTS_IN_MEASURE`] times in [`MEASURE`]. Returns the connections counted.
pub fn wrong_password<C: Client>() -> u64 {
    let cluster = Cluster::start(1);
    let r = cluster.cmd(0, &["ACL", "SETUSER", "app", "on", ">right", "~*", "+@all"]);
    assert_eq!(r, Reply::Status("OK".into()), "ACL SETUSER");
    let url = format!("redis://app:wrong@127.0.0.1:{}", cluster.port(0));
    // The INFO below is a connection of its own: counted in `before`, not in the difference.
    let before = connections_received(&cluster, 0);
    let start = Instant::now();
    let c = C::connect(&[url], once()).expect("connect");
    let err = c.acquire(&["wp:a"], TTL).expect_err("wrong password");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let shown = one_line(&err);
    let node = format!("127.0.0.1:{}", cluster.port(0));
    assert!(
        shown.contains(&format!("{node}: WRONGPASS")),
        "{}: {shown}",
        C::NAME
    );
    assert!(!shown.contains("wrong"), "the password shows: {shown}");
    std::thread::sleep(MEASURE.saturating_sub(start.elapsed()));
    let after = connections_received(&cluster, 0);
    // `after` counted its own INFO connection.
    let made = after - before - 1;
    assert!(
        made <= MAX_CONNECTS_IN_MEASURE,
        "{}: {made} connections in {MEASURE:?} to a node refusing the password",
        C::NAME
    );
    assert!(made >= 2, "{}: it did try again ({made})", C::NAME);
    drop(c);
    made
}

/// A node answering `-LOADING` to the handshake: named in one line, retried at a bounded rate.
/// Returns the connections the fake server accepted in [`MEASURE`].
pub fn loading_node<C: Client>() -> u64 {
    let fake = FakeServer::replying(&b"-LOADING Redis is loading the dataset in memory\r\n"[..]);
    // A client name makes the handshake one command (`CLIENT SETNAME`), which gets -LOADING.
    let mut options = once();
    options.client_name = Some("redlock-test".into());
    let start = Instant::now();
    let c = C::connect(&[fake.url()], options).expect("connect");
    let err = c.acquire(&["loading:a"], TTL).expect_err("loading");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let shown = one_line(&err);
    assert!(
        shown.contains(&format!(
            "127.0.0.1:{}: LOADING Redis is loading",
            fake.port()
        )),
        "{}: {shown}",
        C::NAME
    );
    std::thread::sleep(MEASURE.saturating_sub(start.elapsed()));
    let made = fake.accepted() as u64;
    assert!(
        (2..=MAX_CONNECTS_IN_MEASURE).contains(&made),
        "{}: {made} connections in {MEASURE:?} to a loading node",
        C::NAME
    );
    made
}

/// A closed loopback port: the error's `Display` says the connection was refused, naming the
/// node.
pub fn connect_refused<C: Client>() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = C::connect(&[format!("redis://127.0.0.1:{port}")], once()).expect("connect");
    let err = c.acquire(&["refused:a"], TTL).expect_err("closed port");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let shown = one_line(&err);
    assert!(
        shown
            .to_lowercase()
            .contains(&format!("127.0.0.1:{port}: connection refused")),
        "{}: {shown}",
        C::NAME
    );
}

/// A TLS server whose certificate another CA signed: the error's `Display` names the reason
/// (`UnknownIssuer`) for every node.
pub fn tls_unknown_issuer<C: Client>() {
    let certs = Certs::generate();
    let cluster = Cluster::start_serving(
        3,
        &Serve {
            tls: Some(ServerTls {
                cert: certs.server_cert.clone(),
                key: certs.server_key.clone(),
                ca: certs.ca.clone(),
                require_client_cert: false,
            }),
            unix_socket: false,
        },
    );
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            Node::from_url(&cluster.tls_url(i))
                .expect("TLS URL")
                .with_tls(Tls::default().ca_file(&certs.other_ca))
        })
        .collect();
    let c = C::connect_nodes(nodes, once()).expect("connect starts");
    let err = c.acquire(&["tlsfail:a"], TTL).expect_err("wrong CA");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let shown = one_line(&err);
    for i in 0..3 {
        let named = format!("localhost:{}: ", cluster.tls_port(i));
        let at = shown
            .find(&named)
            .unwrap_or_else(|| panic!("{}: node {i} not named: {shown}", C::NAME));
        let rest = &shown[at..];
        let this = rest.split("; ").next().unwrap_or(rest);
        assert!(this.contains("UnknownIssuer"), "{}: {shown}", C::NAME);
    }
    assert_eq!(cluster.exists_any("tlsfail:a"), 0);
}

/// SIGSTOP 3 of 5 nodes, one acquire fails, SIGCONT: the grants the paused nodes wrote late are
/// released, and a new client acquires the same resource within a second of the resume.
pub fn ghost_lock<C: Client>() {
    let cluster = Cluster::start(5);
    let a = C::connect(&cluster.urls(), once()).expect("connect a");
    for i in 0..3 {
        cluster.stop(i);
    }
    let err = a.acquire(&["ghost:a"], TTL).expect_err("3 of 5 paused");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    for i in 0..3 {
        cluster.cont(i);
    }
    let resumed = Instant::now();
    // The paused nodes now run the acquire they held in their buffers: the grant lands on 3 of
    // 5 nodes (seen when probed here), after its attempt failed. Only its release frees it.
    let b = C::connect(&cluster.urls(), once()).expect("connect b");
    let mut tries = 0;
    let lock = loop {
        tries += 1;
        match b.acquire(&["ghost:a"], TTL) {
            Ok(lock) => break lock,
            Err(e) if resumed.elapsed() < Duration::from_secs(1) => {
                assert!(e.is_locked() || e.is_unreachable(), "{e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let held: Vec<Option<String>> = (0..5).map(|i| cluster.get(i, "ghost:a")).collect();
                panic!(
                    "{}: no acquire within 1 s of the resume ({tries} tries): {e}; keys: {held:?}",
                    C::NAME
                );
            }
        }
    };
    let took = resumed.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{}: acquired {took:?} after the resume",
        C::NAME
    );
    b.release(&lock).expect("release");
    drop(a);
}

/// 3 nodes, one killed, another holder holds the lock: a one-attempt acquire is `Locked`, not
/// `Unreachable`, whether the client knew the node before it died or not.
pub fn locked_with_node_down<C: Client>() {
    let cluster = Cluster::start(3);
    let holder = C::connect(&cluster.urls(), once()).expect("connect holder");
    let early = C::connect(&cluster.urls(), once()).expect("connect early");
    let held = holder.acquire(&["busy:a"], TTL).expect("holder acquires");
    cluster.kill(2);
    let late = C::connect(&cluster.urls(), once()).expect("connect late");
    for (who, c) in [("early", &early), ("late", &late)] {
        let err = c.acquire(&["busy:a"], TTL).expect_err("held");
        assert!(
            err.is_locked(),
            "{} ({who}): expected Locked, got {err}",
            C::NAME
        );
    }
    holder.release(&held).expect("release");
    let lock = late.acquire(&["busy:a"], TTL).expect("free now, 2 of 3 up");
    late.release(&lock).expect("release");
}

/// `SELECT 99` refused (16 databases) and `AUTH` sent to a node without a password: the
/// acquire fails naming the refusal, and no lock key lands anywhere (db 0 in particular).
pub fn nothing_in_the_wrong_place<C: Client>() {
    let cluster = Cluster::start(1);
    let port = cluster.port(0);
    let cases = [
        (
            format!("redis://127.0.0.1:{port}/99"),
            "DB index is out of range",
        ),
        (
            format!("redis://:secret@127.0.0.1:{port}"),
            "called without any password configured",
        ),
        (format!("redis://app:secret@127.0.0.1:{port}"), "WRONGPASS"),
    ];
    for (url, why) in cases {
        let c = C::connect(&[url], once()).expect("connect");
        for round in 0..3 {
            let err = c
                .acquire(&["wrong:place"], TTL)
                .expect_err("handshake refused");
            assert!(err.is_unreachable(), "{}: {err}", C::NAME);
            let shown = one_line(&err);
            assert!(
                shown.contains(why),
                "{} round {round}: {shown} (expected {why:?})",
                C::NAME
            );
            assert!(!shown.contains("secret"), "the password shows: {shown}");
        }
        // Anything pipelined behind the refusal would have run by now.
        std::thread::sleep(Duration::from_millis(200));
        let keys = cluster.keys(0);
        assert!(keys.is_empty(), "{}: {keys:?} written after {why}", C::NAME);
    }
}

/// Stamps out the node-error `#[test]`s for one [`Client`] type.
#[macro_export]
macro_rules! node_errors_suite {
    ($client:ty) => {
        mod node_errors {
            use $crate::node_errors as e;
            #[test]
            fn wrong_password_one_line_bounded_reconnects() {
                let made = e::wrong_password::<$client>();
                eprintln!(
                    "wrong password: {made} connections in {:?} ({:.1}/s)",
                    e::MEASURE,
                    made as f64 / e::MEASURE.as_secs_f64()
                );
            }
            #[test]
            fn loading_node_one_line_bounded_reconnects() {
                let made = e::loading_node::<$client>();
                eprintln!(
                    "-LOADING: {made} connections in {:?} ({:.1}/s)",
                    e::MEASURE,
                    made as f64 / e::MEASURE.as_secs_f64()
                );
            }
            #[test]
            fn connect_refused_named() {
                e::connect_refused::<$client>()
            }
            #[test]
            fn tls_unknown_issuer_named() {
                e::tls_unknown_issuer::<$client>()
            }
            #[test]
            fn no_ghost_lock_after_resume_5() {
                e::ghost_lock::<$client>()
            }
            #[test]
            fn locked_with_one_node_down_3() {
                e::locked_with_node_down::<$client>()
            }
            #[test]
            fn nothing_in_the_wrong_place() {
                e::nothing_in_the_wrong_place::<$client>()
            }
        }
    };
}
