//! The connection handshake against a real redis-server: ACL user and password, `SELECT`,
//! RESP3 via `HELLO 3`, and a refused login surfacing as a typed per-node outcome.

use redlock_async::{Error, Outcome, Protocol};
use redlock_harness::{Cluster, Reply};
use redlock_tests::conformance::{test_options, BlockingClient, Client};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(5);

fn cluster_with_user() -> Cluster {
    let cluster = Cluster::start(1);
    let r = cluster.cmd(
        0,
        &["ACL", "SETUSER", "app", "on", ">s3cret pass", "~*", "+@all"],
    );
    assert_eq!(r, Reply::Status("OK".into()), "ACL SETUSER");
    cluster
}

/// What node 0 holds under `key` in database `db` (a script may SELECT for itself).
fn get_in_db(cluster: &Cluster, db: u32, key: &str) -> Reply {
    let script = "redis.call('SELECT', ARGV[1]); return redis.call('GET', KEYS[1])";
    cluster.cmd(0, &["EVAL", script, "1", key, &db.to_string()])
}

fn check_login(protocol: Protocol) {
    let cluster = cluster_with_user();
    // A password with a space: HELLO must go out as bulk strings, not an inline command.
    let url = format!("redis://app:s3cret%20pass@127.0.0.1:{}/2", cluster.port(0));
    let mut options = test_options();
    options.protocol = protocol;
    options.client_name = Some("redlock-test".into());
    let client = BlockingClient::connect(&[url], options).expect("connect");
    let lock = client
        .acquire(&["hs:key"], TTL)
        .expect("acquire through AUTH + SELECT");
    assert_eq!(
        get_in_db(&cluster, 2, "hs:key"),
        Reply::Bulk(lock.token().as_str().to_string().into())
    );
    assert_eq!(
        get_in_db(&cluster, 0, "hs:key"),
        Reply::Nil,
        "the key belongs in db 2"
    );
    let clients = match cluster.cmd(0, &["CLIENT", "LIST"]) {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        Reply::Status(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("CLIENT LIST: {other:?}"),
    };
    assert!(
        clients.contains("name=redlock-test"),
        "CLIENT SETNAME applied: {clients}"
    );
    if protocol == Protocol::Resp3 {
        assert!(clients.contains("resp=3"), "HELLO 3 negotiated: {clients}");
    }
    client.release(&lock).expect("release");
    assert_eq!(get_in_db(&cluster, 2, "hs:key"), Reply::Nil);
}

#[test]
fn resp2_auth_select_setname() {
    check_login(Protocol::Resp2);
}

#[test]
fn resp3_hello_auth_select_setname() {
    check_login(Protocol::Resp3);
}

#[test]
fn wrong_password_is_a_typed_node_failure() {
    let cluster = cluster_with_user();
    let url = format!("redis://app:wrong@127.0.0.1:{}", cluster.port(0));
    let mut options = test_options();
    options.retry_count = Some(0);
    let client = BlockingClient::connect(&[url], options).expect("connect");
    let err = client
        .acquire(&["hs:denied"], TTL)
        .expect_err("login refused");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let outcome = &err.attempts()[0].nodes[0].outcome;
    assert!(
        matches!(
            outcome,
            Outcome::Broken(_) | Outcome::NotReady | Outcome::ErrorReply(_)
        ),
        "{outcome:?}"
    );
    assert!(
        err.to_string().contains("127.0.0.1"),
        "the error names the node: {err}"
    );
}
