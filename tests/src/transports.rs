//! Live transport checks, written once for every adapter like the conformance suite: TLS
//! (custom CA, mutual TLS, a wrong CA refused, `#insecure`), a Unix socket, a connector of the
//! test's own (plain and with TLS over it), structured nodes with a password that would need
//! percent-encoding. [`transport_suite!`](crate::transport_suite) stamps out the `#[test]`s.

use crate::certs::Certs;
use crate::conformance::{test_options, Client};
use redlock_async::{Address, Connection, Error, Node, Options, OptionsExt as _, Tls};
use redlock_harness::{Cluster, Conn, Reply, Serve, ServerTls};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(5);

/// Where a test connector sends each made-up host name, and how many streams it opened.
#[derive(Debug, Default)]
pub struct Relay {
    /// Host name to loopback port.
    pub ports: HashMap<String, u16>,
    /// Streams opened so far.
    pub opened: AtomicUsize,
    /// Whether the streams trickle (see [`Trickle`]).
    pub trickle: bool,
}

impl Relay {
    /// `stream`, made to trickle when the relay says so.
    pub fn wrap(&self, stream: Box<dyn Connection>) -> Box<dyn Connection> {
        if self.trickle {
            Box::new(Trickle {
                inner: stream,
                calls: 0,
            })
        } else {
            stream
        }
    }

    /// The loopback port for `address` (counted as one stream opened), or `NotFound`.
    pub fn route(&self, address: &Address) -> std::io::Result<u16> {
        let port = match address {
            Address::Tcp { host, .. } => self.ports.get(host).copied(),
            _ => None,
        };
        let port = port.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no route to {address}"),
            )
        })?;
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(port)
    }
}

/// A stream at its least convenient: every other call is `Pending` (with an immediate wake-up),
/// and a write takes at most 7 bytes, a read gives at most 5. What the TLS layer must cope with.
pub struct Trickle {
    inner: Box<dyn Connection>,
    calls: u64,
}

impl Trickle {
    /// Whether this call pretends not to be ready.
    fn stall(&mut self, cx: &mut Context<'_>) -> bool {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }
}

impl Connection for Trickle {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        if self.stall(cx) {
            return Poll::Pending;
        }
        let n = buf.len().min(5);
        self.inner.poll_read(cx, &mut buf[..n])
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.stall(cx) {
            return Poll::Pending;
        }
        self.inner.poll_write(cx, &buf[..buf.len().min(7)])
    }
}

fn tls_cluster(n: usize, certs: &Certs, require_client_cert: bool) -> Cluster {
    Cluster::start_serving(
        n,
        &Serve {
            tls: Some(ServerTls {
                cert: certs.server_cert.clone(),
                key: certs.server_key.clone(),
                ca: certs.ca.clone(),
                require_client_cert,
            }),
            unix_socket: false,
        },
    )
}

fn tls_nodes(cluster: &Cluster, tls: &Tls) -> Vec<Node> {
    (0..cluster.len())
        .map(|i| {
            Node::from_url(&cluster.tls_url(i))
                .expect("a TLS URL")
                .with_tls(tls.clone())
        })
        .collect()
}

fn once() -> Options {
    test_options().retry_count(0)
}

/// Acquire, extend, release; the key was on every node (seen over plaintext) in between.
fn lock_round<C: Client>(c: &C, cluster: &Cluster, key: &str) {
    let lock = c.acquire(&[key], TTL).expect("acquire");
    let on = (0..cluster.len())
        .filter(|&i| cluster.get(i, key).as_deref() == Some(lock.token().as_str()))
        .count();
    assert!(on > cluster.len() / 2, "{}: token on {on} node(s)", C::NAME);
    let lock = c.extend(&lock, TTL).expect("extend");
    c.release(&lock).expect("release");
    assert_eq!(cluster.exists_after(key, Duration::from_secs(2)), 0);
}

/// TLS with the CA given as a file: locks work; the same nodes trusted through another CA
/// are refused (`Unreachable`), and opening one connection says why (the certificate's issuer).
pub fn tls_custom_ca_and_wrong_ca<C: Client>() {
    let certs = Certs::generate();
    let cluster = tls_cluster(3, &certs, false);
    let good = tls_nodes(&cluster, &Tls::default().ca_file(&certs.ca));
    let c = C::connect_nodes(good, test_options()).expect("connect over TLS");
    lock_round(&c, &cluster, "tls:a");

    let wrong = tls_nodes(&cluster, &Tls::default().ca_file(&certs.other_ca));
    let c = C::connect_nodes(wrong.clone(), once()).expect("connect starts");
    let err = c.acquire(&["tls:b"], TTL).expect_err("wrong CA");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    assert_eq!(cluster.exists_any("tls:b"), 0);
    let why = C::open(&wrong[0]).expect_err("a certificate from another CA");
    let why = why.to_string();
    assert!(
        why.contains("certificate") && why.contains("UnknownIssuer"),
        "{}: the refusal does not say why: {why}",
        C::NAME
    );
    // A certificate for another name is refused too.
    let misnamed = Node::tcp("127.0.0.1", cluster.tls_port(0)).with_tls(
        Tls::default()
            .ca_file(&certs.ca)
            .server_name("redis.example"),
    );
    let why = C::open(&misnamed).expect_err("another name").to_string();
    assert!(why.contains("certificate"), "{}: {why}", C::NAME);
}

/// `rediss://…/#insecure` accepts the test certificate without any CA.
pub fn tls_insecure<C: Client>() {
    let certs = Certs::generate();
    let cluster = tls_cluster(1, &certs, false);
    let url = format!("{}/#insecure", cluster.tls_url(0));
    let c = C::connect(&[url], test_options()).expect("connect");
    lock_round(&c, &cluster, "insecure:a");
    // Without it (and without the CA among the system's roots) the server is refused.
    let c = C::connect(&[cluster.tls_url(0)], once()).expect("connect starts");
    let err = c.acquire(&["insecure:b"], TTL).expect_err("unknown CA");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
}

/// A server that requires client certificates: refused without one, served with one.
pub fn mutual_tls<C: Client>() {
    let certs = Certs::generate();
    let cluster = tls_cluster(3, &certs, true);
    let no_cert = tls_nodes(&cluster, &Tls::default().ca_file(&certs.ca));
    let c = C::connect_nodes(no_cert, once()).expect("connect starts");
    let err = c
        .acquire(&["mtls:a"], TTL)
        .expect_err("no client certificate");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let with_cert = tls_nodes(
        &cluster,
        &Tls::default()
            .ca_file(&certs.ca)
            .client_auth(&certs.client_cert, &certs.client_key),
    );
    let c = C::connect_nodes(with_cert, test_options()).expect("connect");
    lock_round(&c, &cluster, "mtls:a");
}

/// With `SSL_CERT_FILE` naming the test CA, `rediss://` verifies against it with no setting
/// in code (the system's roots, as OpenSSL-based tools read them). The caller sets the
/// variable: it is process-wide.
pub fn tls_system_roots<C: Client>() {
    let certs = Certs::generate();
    let cluster = tls_cluster(1, &certs, false);
    std::fs::copy(&certs.ca, ssl_cert_file()).expect("copy the CA to SSL_CERT_FILE");
    let c = C::connect(&[cluster.tls_url(0)], test_options()).expect("connect");
    lock_round(&c, &cluster, "roots:a");
}

/// Where [`tls_system_roots`] expects `SSL_CERT_FILE` to point.
pub fn ssl_cert_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("redlock-roots-{}.pem", std::process::id()))
}

/// `redis+unix:///…?db=2` and `unix:///…`: locks over Unix sockets, in the database asked for.
pub fn unix_socket<C: Client>() {
    let cluster = Cluster::start_serving(
        3,
        &Serve {
            tls: None,
            unix_socket: true,
        },
    );
    let urls: Vec<String> = (0..3)
        .map(|i| match i {
            0 => format!("unix://{}?db=2", cluster.socket_path(i).display()),
            _ => format!("{}?db=2", cluster.unix_url(i)),
        })
        .collect();
    let c = C::connect(&urls, test_options()).expect("connect over Unix sockets");
    let lock = c.acquire(&["unix:a"], TTL).expect("acquire");
    assert_eq!(cluster.exists_any("unix:a"), 0, "db 0 holds nothing");
    let mut in_db2 = 0;
    for i in 0..3 {
        let mut conn = Conn::open_url(
            &format!("redis://127.0.0.1:{}/2", cluster.port(i)),
            Duration::from_secs(2),
        )
        .expect("inspect db 2");
        if let Ok(Reply::Bulk(token)) = conn.call(&["GET", "unix:a"]) {
            assert_eq!(&token[..], lock.token().as_str().as_bytes());
            in_db2 += 1;
        }
    }
    assert!(
        in_db2 >= 2,
        "{}: the key is in db 2 on {in_db2} node(s)",
        C::NAME
    );
    c.release(&lock).expect("release");
    assert!(format!("{c:?}").contains("nodes: 3"), "{}: {c:?}", C::NAME);
}

/// A connector of the test's own: made-up host names routed to the nodes' ports. Every stream
/// comes from it; TLS, when the node asks for it, runs over it.
pub fn custom_connector<C: Client>() {
    let certs = Certs::generate();
    let cluster = tls_cluster(3, &certs, false);
    let relay = Arc::new(Relay {
        ports: (0..3)
            .map(|i| (format!("node-{i}"), cluster.port(i)))
            .collect(),
        ..Relay::default()
    });
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::tcp(format!("node-{i}"), 6379))
        .collect();
    let c = C::connect_via(relay.clone(), nodes, test_options()).expect("connect via");
    lock_round(&c, &cluster, "via:a");
    assert!(
        relay.opened.load(Ordering::SeqCst) >= 3,
        "{}: the connector opened {} stream(s)",
        C::NAME,
        relay.opened.load(Ordering::SeqCst)
    );
    drop(c);

    // TLS over the connector's streams, checked against the name the certificate holds.
    // And over streams that trickle: TLS records cut anywhere, writes taken in pieces.
    for trickle in [false, true] {
        let relay = Arc::new(Relay {
            ports: (0..3)
                .map(|i| (format!("node-{i}"), cluster.tls_port(i)))
                .collect(),
            trickle,
            ..Relay::default()
        });
        let tls = Tls::default().ca_file(&certs.ca).server_name("localhost");
        let nodes: Vec<Node> = (0..3)
            .map(|i| Node::tcp(format!("node-{i}"), 6379).with_tls(tls.clone()))
            .collect();
        let c = C::connect_via(relay.clone(), nodes, test_options()).expect("connect via, TLS");
        lock_round(&c, &cluster, "via:tls");
        let long = "y".repeat(4000);
        let names: Vec<String> = (0..8).map(|k| format!("via:big:{k}:{long}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let lock = c.acquire(&names, TTL).expect("acquire a 32 KB request");
        c.release(&lock).expect("release");
        assert!(relay.opened.load(Ordering::SeqCst) >= 3);
    }
}

/// Nodes given field by field, with a password full of URL syntax; the password appears in no
/// `Debug` or `Display` of the node, the client or an error.
pub fn structured_nodes_hide_the_password<C: Client>() {
    const PASSWORD: &str = "p@ss/w?rd#%zz";
    let cluster = Cluster::start(3);
    for i in 0..3 {
        match cluster.cmd(i, &["CONFIG", "SET", "requirepass", PASSWORD]) {
            Reply::Status(_) => {}
            other => panic!("CONFIG SET requirepass: {other:?}"),
        }
    }
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::tcp("127.0.0.1", cluster.port(i)).with_auth(None, PASSWORD))
        .collect();
    let shown = format!("{:?} {}", nodes, nodes[0]);
    assert!(!shown.contains("w?rd"), "{shown}");
    let c = C::connect_nodes(nodes, test_options()).expect("connect");
    let lock = c
        .acquire(&["auth:a"], TTL)
        .expect("acquire with the password");
    assert!(!format!("{c:?} {lock:?}").contains("w?rd"));
    c.release(&lock).expect("release");
    // The same password in a URL, percent-encoded.
    let urls: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "redis://:p%40ss%2Fw%3Frd%23%25zz@127.0.0.1:{}",
                cluster.port(i)
            )
        })
        .collect();
    let c = C::connect(&urls, test_options()).expect("connect by URL");
    let lock = c.acquire(&["auth:b"], TTL).expect("acquire by URL");
    c.release(&lock).expect("release");
    // A wrong one fails without showing either.
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::tcp("127.0.0.1", cluster.port(i)).with_auth(None, "hunter2-wrong"))
        .collect();
    let c = C::connect_nodes(nodes, once()).expect("connect");
    let err = c.acquire(&["auth:c"], TTL).expect_err("wrong password");
    let shown = format!("{err} {err:?} {c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("w?rd"),
        "{shown}"
    );
    assert!(
        matches!(err, Error::Unreachable { .. }),
        "{}: {err}",
        C::NAME
    );
}

/// Many threads locking at once over TLS, with requests and replies of several TLS records
/// each (20 resources with 2 KB names per lock): mutual exclusion holds and nothing is left.
pub fn tls_under_load<C: Client>() {
    const WORKERS: usize = 8;
    const ROUNDS: usize = 15;
    let certs = Certs::generate();
    let cluster = Arc::new(tls_cluster(3, &certs, false));
    let nodes = tls_nodes(&cluster, &Tls::default().ca_file(&certs.ca));
    let c = C::connect_nodes(nodes, test_options().retry_forever()).expect("connect");
    let inside = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (c, inside) = (c.clone(), inside.clone());
            std::thread::spawn(move || {
                // One shared resource (the exclusion), the rest this worker's own.
                let long = "x".repeat(2048);
                let mut names: Vec<String> =
                    (0..19).map(|k| format!("load:{w}:{k}:{long}")).collect();
                names.push(format!("load:shared:{long}"));
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                for _ in 0..ROUNDS {
                    let lock = c.acquire(&names, Duration::from_secs(10)).expect("acquire");
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders at once"
                    );
                    inside.fetch_sub(1, Ordering::SeqCst);
                    c.release(&lock).expect("release");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    for i in 0..3 {
        let left = cluster.keys(i);
        assert!(
            left.is_empty(),
            "{}: node {i} kept {} key(s)",
            C::NAME,
            left.len()
        );
    }
}

/// Stamps out the transport `#[test]`s for one [`Client`] type.
#[macro_export]
macro_rules! transport_suite {
    ($client:ty) => {
        mod transports {
            use $crate::transports as t;
            #[test]
            fn tls_custom_ca_and_wrong_ca() {
                t::tls_custom_ca_and_wrong_ca::<$client>()
            }
            #[test]
            fn tls_insecure() {
                t::tls_insecure::<$client>()
            }
            #[test]
            fn mutual_tls() {
                t::mutual_tls::<$client>()
            }
            #[test]
            fn tls_under_load() {
                t::tls_under_load::<$client>()
            }
            #[test]
            fn unix_socket() {
                t::unix_socket::<$client>()
            }
            #[test]
            fn custom_connector() {
                t::custom_connector::<$client>()
            }
            #[test]
            fn structured_nodes_hide_the_password() {
                t::structured_nodes_hide_the_password::<$client>()
            }
        }
    };
}
