//! The model node as a Redis Cluster member, through its RESP interface: routing (`MOVED`,
//! `ASK` during a migration, `ASKING` once, `TRYAGAIN`, `CROSSSLOT`), and the `CLUSTER` replies'
//! shapes.

use bytes::{Bytes, BytesMut};
use redlock_core::resp::{encode_command, Decoder, Reply};
use redlock_core::{fence_key, key_slot, ACQUIRE, RELEASE};
use redlock_sim::{ClusterView, Node, Session, CROSSSLOT, TRYAGAIN};
use std::time::{Duration, Instant};

const EPS: [&str; 3] = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"];

/// Three model nodes forming a cluster, slots split as `redis-cli --cluster create` does.
fn cluster(t: Instant) -> Vec<Node> {
    EPS.iter()
        .enumerate()
        .map(|(i, me)| {
            let mut n = Node::new(t, i as u64);
            n.set_cluster(Some(ClusterView::even(*me, &EPS)));
            n
        })
        .collect()
}

fn run(node: &mut Node, t: Instant, s: &mut Session, args: &[&str]) -> Reply {
    let mut b = BytesMut::new();
    encode_command(&mut b, args);
    let out = node.feed(t, s, &b);
    let mut d = Decoder::new(s.protocol(), 1 << 20);
    let mut replies = Vec::new();
    d.feed(&out, |r| replies.push(r)).expect("valid RESP");
    assert_eq!(replies.len(), 1, "{args:?} → {out:?}");
    replies.remove(0)
}

fn err(text: &str) -> Reply {
    Reply::Error(text.into())
}

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

// Slots: "a" 15495 (third node), "b" 3300 (first), "c" 7365 (second).

#[test]
fn moved_for_a_foreign_slot() {
    let t = Instant::now();
    let mut nodes = cluster(t);
    let mut s = nodes[0].connect().unwrap();
    assert_eq!(key_slot(b"a"), 15495);
    assert_eq!(
        run(&mut nodes[0], t, &mut s, &["SET", "a", "1"]),
        err("MOVED 15495 127.0.0.1:7002")
    );
    assert_eq!(run(&mut nodes[0], t, &mut s, &["SET", "b", "1"]), ok());
    assert_eq!(run(&mut nodes[0], t, &mut s, &["GET", "b"]), bulk("1"));
    assert_eq!(
        run(&mut nodes[0], t, &mut s, &["PEXPIRE", "c", "10"]),
        err("MOVED 7365 127.0.0.1:7001")
    );
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s,
            &["EVAL", RELEASE, "1", "c", "tok"]
        ),
        err("MOVED 7365 127.0.0.1:7001")
    );
    // Keyless commands and wrong arities are not routed.
    assert_eq!(
        run(&mut nodes[0], t, &mut s, &["PING"]),
        Reply::Status("PONG".into())
    );
    assert!(matches!(
        run(&mut nodes[0], t, &mut s, &["GET", "a", "b"]),
        Reply::Error(e) if e.starts_with("ERR wrong number")
    ));
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s,
            &["CLUSTER", "KEYSLOT", "{a}:fence"]
        ),
        Reply::Int(15495)
    );
    assert_eq!(
        run(&mut nodes[0], t, &mut s, &["SELECT", "1"]),
        err("ERR SELECT is not allowed in cluster mode")
    );
    assert_eq!(run(&mut nodes[0], t, &mut s, &["SELECT", "0"]), ok());
    // A stale view: the first node still believes it owns "c"'s slot and serves it.
    nodes[0]
        .cluster_mut()
        .unwrap()
        .set_owner(7365..=7365, EPS[0]);
    assert_eq!(run(&mut nodes[0], t, &mut s, &["SET", "c", "1"]), ok());
}

#[test]
fn crossslot_for_keys_in_different_slots() {
    let t = Instant::now();
    let mut nodes = cluster(t);
    let mut s = nodes[0].connect().unwrap();
    assert_eq!(
        run(&mut nodes[0], t, &mut s, &["DEL", "b", "c"]),
        err(CROSSSLOT)
    );
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s,
            &["EVAL", ACQUIRE, "2", "b", "c", "tok", "1000"]
        ),
        err(CROSSSLOT)
    );
    // A hash tag puts keys together; a fence key sits with its lock key.
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s,
            &["EVAL", ACQUIRE, "2", "{b}1", "{b}2", "tok", "1000"]
        ),
        Reply::Int(1)
    );
    let fence = fence_key(b"b");
    assert_eq!(key_slot(&fence), key_slot(b"b"));
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s,
            &["EXISTS", "b", std::str::from_utf8(&fence).unwrap()]
        ),
        Reply::Int(0)
    );
    // Only the declared keys count: ARGV may hold anything.
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s,
            &["EVAL", RELEASE, "1", "{b}1", "tok", "c"]
        ),
        Reply::Int(1)
    );
}

#[test]
fn ask_during_a_migration_and_asking_once() {
    let t = Instant::now();
    let ms = Duration::from_millis;
    let mut nodes = cluster(t);
    let slot = key_slot(b"b");
    let (from, to) = (EPS[0], EPS[1]);
    nodes[0].set(t, 0, b"b", b"tok", Some(ms(1000)));
    nodes[0].set(t, 0, b"{b}x", b"tok", None);
    nodes[0].set(t, 0, b"{b}gone", b"tok", Some(ms(5)));
    // The order `redis-cli --cluster reshard` uses: importing on the target, then migrating on
    // the source, then the keys, then the new owner everywhere.
    nodes[1]
        .cluster_mut()
        .unwrap()
        .set_importing(slot, Some(from));
    nodes[0]
        .cluster_mut()
        .unwrap()
        .set_migrating(slot, Some(to));
    let mut s0 = nodes[0].connect().unwrap();
    let mut s1 = nodes[1].connect().unwrap();
    assert_eq!(
        run(&mut nodes[0], t, &mut s0, &["GET", "b"]),
        bulk("tok"),
        "still here"
    );
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s0,
            &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]
        ),
        Reply::Int(3)
    );
    assert_eq!(
        run(&mut nodes[0], t + ms(10), &mut s0, &["GET", "{b}gone"]),
        err(&format!("ASK {slot} {to}")),
        "an expired key is missing"
    );
    let moved = nodes[0].take_key(t, b"b").unwrap();
    nodes[1].put_keys([moved]);
    assert_eq!(
        run(&mut nodes[0], t, &mut s0, &["GET", "b"]),
        err(&format!("ASK {slot} {to}"))
    );
    assert_eq!(
        run(&mut nodes[0], t, &mut s0, &["DEL", "b", "{b}x"]),
        err(TRYAGAIN),
        "some keys here, some gone"
    );
    assert_eq!(
        run(
            &mut nodes[0],
            t,
            &mut s0,
            &["EVAL", RELEASE, "1", "{b}x", "tok"]
        ),
        Reply::Int(1),
        "all its keys here: served"
    );
    // The target serves the slot only right after ASKING.
    assert_eq!(
        run(&mut nodes[1], t, &mut s1, &["GET", "b"]),
        err(&format!("MOVED {slot} {from}"))
    );
    assert_eq!(run(&mut nodes[1], t, &mut s1, &["ASKING"]), ok());
    assert_eq!(run(&mut nodes[1], t, &mut s1, &["GET", "b"]), bulk("tok"));
    assert_eq!(
        run(&mut nodes[1], t, &mut s1, &["GET", "b"]),
        err(&format!("MOVED {slot} {from}")),
        "ASKING is one-shot"
    );
    assert_eq!(run(&mut nodes[1], t, &mut s1, &["ASKING"]), ok());
    run(&mut nodes[1], t, &mut s1, &["PING"]);
    assert_eq!(
        run(&mut nodes[1], t, &mut s1, &["GET", "b"]),
        err(&format!("MOVED {slot} {from}")),
        "any command uses up ASKING"
    );
    assert_eq!(run(&mut nodes[1], t, &mut s1, &["ASKING"]), ok());
    assert_eq!(
        run(&mut nodes[1], t, &mut s1, &["DEL", "b", "{b}y"]),
        err(TRYAGAIN),
        "several keys, one missing"
    );
    assert_eq!(run(&mut nodes[1], t, &mut s1, &["ASKING"]), ok());
    assert_eq!(
        run(
            &mut nodes[1],
            t,
            &mut s1,
            &["EVAL", ACQUIRE, "1", "{b}new", "t2", "100"]
        ),
        Reply::Int(1),
        "one key, missing: served on the target"
    );
    // The ttl moved with the key.
    assert_eq!(nodes[1].ttl(t, 0, b"b"), Some(Some(ms(1000))));
    // The migration ends: every view names the new owner.
    let later = t + ms(10);
    let rest = nodes[0].take_slot_keys(later, slot);
    nodes[1].put_keys(rest);
    assert!(nodes[0].slot_keys(later, slot).is_empty());
    for n in &mut nodes {
        n.cluster_mut().unwrap().set_owner(slot..=slot, to);
    }
    assert_eq!(
        run(&mut nodes[0], t, &mut s0, &["GET", "b"]),
        err(&format!("MOVED {slot} {to}"))
    );
    assert_eq!(run(&mut nodes[1], t, &mut s1, &["GET", "b"]), bulk("tok"));
    assert_eq!(
        run(
            &mut nodes[1],
            later,
            &mut s1,
            &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "10"]
        ),
        Reply::Array(vec![bulk("b"), bulk("{b}new")])
    );
}

/// Reads a `CLUSTER SLOTS` reply into `(start, end, host, port)` per range, checking each
/// node's id and metadata are there as Redis 7 sends them.
fn slot_ranges(reply: &Reply) -> Vec<(i64, i64, String, i64)> {
    let Reply::Array(ranges) = reply else {
        panic!("{reply:?}")
    };
    ranges
        .iter()
        .map(|r| {
            let Reply::Array(f) = r else { panic!("{r:?}") };
            let [Reply::Int(start), Reply::Int(end), Reply::Array(node)] = &f[..] else {
                panic!("{f:?}")
            };
            let [Reply::Bulk(host), Reply::Int(port), Reply::Bulk(id), meta] = &node[..] else {
                panic!("{node:?}")
            };
            assert_eq!(id.len(), 40);
            assert!(
                matches!(meta, Reply::Array(m) if m.is_empty())
                    || matches!(meta, Reply::Map(m) if m.is_empty())
            );
            (
                *start,
                *end,
                String::from_utf8(host.to_vec()).unwrap(),
                *port,
            )
        })
        .collect()
}

#[test]
fn cluster_slots_and_shards_shapes() {
    let t = Instant::now();
    let mut nodes = cluster(t);
    let want = vec![
        (0, 5460, "127.0.0.1".to_string(), 7000),
        (5461, 10922, "127.0.0.1".to_string(), 7001),
        (10923, 16383, "127.0.0.1".to_string(), 7002),
    ];
    let mut s = nodes[1].connect().unwrap();
    let r2 = run(&mut nodes[1], t, &mut s, &["CLUSTER", "SLOTS"]);
    assert!(
        matches!(&r2, Reply::Array(a) if matches!(&a[0], Reply::Array(f) if matches!(&f[2], Reply::Array(n) if matches!(n[3], Reply::Array(_)))))
    );
    assert_eq!(slot_ranges(&r2), want);
    let hello = run(&mut nodes[1], t, &mut s, &["HELLO", "3"]);
    let Reply::Map(fields) = hello else {
        panic!("{hello:?}")
    };
    assert!(fields.contains(&(bulk("mode"), bulk("cluster"))));
    let r3 = run(&mut nodes[1], t, &mut s, &["CLUSTER", "SLOTS"]);
    assert_eq!(slot_ranges(&r3), want);
    // Each node's own view: a slot moved in one view shows there only.
    nodes[2]
        .cluster_mut()
        .unwrap()
        .set_owner(16383..=16383, EPS[0]);
    let mut s2 = nodes[2].connect().unwrap();
    let r = slot_ranges(&run(&mut nodes[2], t, &mut s2, &["CLUSTER", "SLOTS"]));
    assert_eq!(r.len(), 4);
    assert_eq!(r[3], (16383, 16383, "127.0.0.1".to_string(), 7000));
    // CLUSTER SHARDS (RESP3): one map per primary, its slots as start/end pairs.
    let shards = run(&mut nodes[1], t, &mut s, &["CLUSTER", "SHARDS"]);
    let Reply::Array(shards) = shards else {
        panic!("{shards:?}")
    };
    assert_eq!(shards.len(), 3);
    let slots_of = |shard: &Reply| {
        let Reply::Map(m) = shard else {
            panic!("{shard:?}")
        };
        m.iter()
            .find(|(k, _)| *k == bulk("slots"))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let all: Vec<Reply> = shards.iter().map(slots_of).collect();
    assert!(all.contains(&Reply::Array(vec![Reply::Int(5461), Reply::Int(10922)])));
    let myid = run(&mut nodes[1], t, &mut s, &["CLUSTER", "MYID"]);
    assert!(matches!(&myid, Reply::Bulk(id) if id.len() == 40));
    let info = run(&mut nodes[1], t, &mut s, &["CLUSTER", "INFO"]);
    assert!(
        matches!(&info, Reply::Bulk(b) if b.starts_with(b"cluster_enabled:1\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\n")),
        "{info:?}"
    );
}

#[test]
fn standalone_refuses_cluster_commands() {
    let t = Instant::now();
    let mut n = Node::new(t, 1);
    let mut s = n.connect().unwrap();
    let disabled = err("ERR This instance has cluster support disabled");
    assert_eq!(run(&mut n, t, &mut s, &["CLUSTER", "SLOTS"]), disabled);
    assert_eq!(run(&mut n, t, &mut s, &["ASKING"]), disabled);
    assert_eq!(
        run(&mut n, t, &mut s, &["DEL", "b", "c"]),
        Reply::Int(0),
        "no slots when standalone"
    );
    assert_eq!(run(&mut n, t, &mut s, &["SELECT", "1"]), ok());
    n.set_cluster(Some(ClusterView::new("127.0.0.1:7000")));
    assert_eq!(
        run(&mut n, t, &mut s, &["GET", "b"]),
        err("CLUSTERDOWN Hash slot not served")
    );
    assert!(n.cluster().is_some());
}
