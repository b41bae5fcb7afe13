//! A node that is a whole Redis Cluster, rule by rule at its boundary: the seed's `CLUSTER
//! SLOTS` (a refusal refuses the node), one shard link per primary, requests held until a shard
//! link connects, a lock split by hash slot (fence keys and release channels with their keys),
//! the node's vote put together from its parts, cleanups to every shard that got a part,
//! `MOVED` (re-sent, the map corrected, one refresh), `ASK` (`ASKING`, the map unchanged), the
//! redirect cap, replica acknowledgement by `WAIT`, and the configuration checks.
#![allow(clippy::disallowed_methods)] // the test owns the clock

use redlock_core::{
    fence_key, key_slot, release_channel, Config, ConnError, Engine, Error, Event, Failure, LinkId,
    Lock, NodeConfig, NodeId, OpError, OpId, Options, Outcome, ReplicaAck, Token,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

const TTL: Duration = Duration::from_secs(10);
const HOST: &str = "127.0.0.1";
/// The seed (and first primary) port; the primaries are 7000, 7001, 7002.
const SEED: u16 = 7000;

/// The three primaries' slot ranges, as `redis-cli --cluster create` splits them.
const EVEN: [(u16, u16, u16); 3] = [(0, 5460, 7000), (5461, 10922, 7001), (10923, 16383, 7002)];

/// Keys on each primary of [`EVEN`]: "b" (slot 3300) on 7000, "c" (7365) on 7001, "a" (15495)
/// and "{a}x" on 7002.
fn check_slots() {
    assert_eq!(key_slot(b"b"), 3300);
    assert_eq!(key_slot(b"c"), 7365);
    assert_eq!(key_slot(b"a"), 15495);
    assert_eq!(key_slot(b"{a}x"), 15495);
}

/// Default options without `INFO` (no native commands), no retries and no jitter.
fn options() -> Options {
    let mut o = Options::default();
    o.native_commands = false;
    o.retry_count = Some(0);
    o.retry_jitter = Duration::ZERO;
    o
}

/// A `CLUSTER SLOTS` reply (RESP2) naming `ranges` of `(start, end, primary port)` on `HOST`.
fn slots_reply(ranges: &[(u16, u16, u16)]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", ranges.len());
    for (start, end, port) in ranges {
        let id = format!("{port:040}");
        out.push_str(&format!(
            "*3\r\n:{start}\r\n:{end}\r\n*3\r\n${}\r\n{HOST}\r\n:{port}\r\n${}\r\n{id}\r\n",
            HOST.len(),
            id.len()
        ));
    }
    out.into_bytes()
}

/// One engine whose only node is a cluster seeded at `HOST:SEED`.
struct Rig {
    engine: Engine,
    now: Instant,
    /// Shard links by primary port.
    shards: BTreeMap<u16, LinkId>,
}

const SEED_LINK: LinkId = LinkId::new(0);

impl Rig {
    fn new(options: Options) -> Rig {
        check_slots();
        let node = NodeConfig::new(HOST, SEED).as_cluster();
        let now = Instant::now();
        let engine = Engine::new(Config::new(vec![node], options), now, 1).unwrap();
        Rig {
            engine,
            now,
            shards: BTreeMap::new(),
        }
    }

    /// The seed connected and answered `map`: the shard links it opened, not yet connected.
    fn mapped(options: Options, map: &[(u16, u16, u16)]) -> Rig {
        let mut rig = Rig::new(options);
        rig.engine.handle_connected(rig.now, SEED_LINK);
        let out = rig.sent();
        assert_eq!(
            out.get(&0).map(String::as_str),
            Some("*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n"),
            "the seed's handshake asks for the slot map: {out:?}"
        );
        assert_eq!(rig.engine.poll_event(), None, "not ready before the map");
        rig.input(SEED_LINK, &slots_reply(map));
        rig.take_opens();
        rig
    }

    /// The even three-primary cluster, every shard link connected.
    fn ready(options: Options) -> Rig {
        let mut rig = Rig::mapped(options, &EVEN);
        assert_eq!(rig.shards.len(), 3);
        for link in rig.shards.clone().into_values() {
            rig.engine.handle_connected(rig.now, link);
            assert_eq!(rig.engine.poll_event(), Some(Event::Ready { link }));
        }
        assert!(rig.sent().is_empty());
        rig
    }

    /// Records the `Event::Open`s queued (each for node 0, to a shard endpoint), then expects
    /// the seed's `Ready` if `ready`; panics on anything else.
    fn take_opens(&mut self) -> Vec<LinkId> {
        let mut opened = Vec::new();
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::Open {
                    link,
                    node,
                    to: Some(to),
                } => {
                    assert_eq!((node, to.host()), (NodeId::new(0), HOST));
                    assert!(self.shards.insert(to.port(), link).is_none(), "{to} twice");
                    opened.push(link);
                }
                Event::Ready { link } => assert_eq!(link, SEED_LINK),
                other => panic!("unexpected {other:?}"),
            }
        }
        opened
    }

    fn link(&self, port: u16) -> LinkId {
        self.shards[&port]
    }

    fn input(&mut self, link: LinkId, bytes: &[u8]) {
        self.engine.handle_input(self.now, link, bytes);
    }

    /// Everything queued, as text per link index.
    fn sent(&mut self) -> BTreeMap<usize, String> {
        let mut out: BTreeMap<usize, String> = BTreeMap::new();
        while let Some((to, bytes)) = self.engine.poll_transmit() {
            out.entry(to.index())
                .or_default()
                .push_str(&String::from_utf8_lossy(&bytes));
        }
        out
    }

    /// What was queued for the primary at `port` (other links' output is dropped).
    fn sent_to(&mut self, port: u16) -> String {
        let i = self.link(port).index();
        self.sent().remove(&i).unwrap_or_default()
    }

    fn acquire(&mut self, resources: &[&str]) -> OpId {
        let token = Token::from_random(&[7; 20]).unwrap();
        self.engine
            .acquire(
                self.now,
                resources.iter().copied(),
                TTL,
                token,
                SystemTime::UNIX_EPOCH,
            )
            .unwrap()
    }

    fn acquired(&mut self, op: OpId) -> Result<Lock, OpError> {
        loop {
            match self.engine.poll_event() {
                Some(Event::Acquired { op: o, result }) if o == op => return result,
                Some(other @ Event::Open { .. }) => panic!("unexpected {other:?}"),
                Some(_) => {}
                None => panic!("{op} not decided"),
            }
        }
    }
}

/// `text` names `key` as a RESP bulk string.
fn names(text: &str, key: &[u8]) -> bool {
    let key = String::from_utf8_lossy(key);
    text.contains(&format!("${}\r\n{key}\r\n", key.len()))
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

fn outcome_of(error: &OpError) -> &Outcome {
    &error.attempts.last().unwrap().nodes[0].outcome
}

#[test]
fn the_seed_asks_for_the_slot_map_and_a_refusal_refuses_the_node() {
    let mut rig = Rig::new(options());
    rig.engine.handle_connected(rig.now, SEED_LINK);
    assert!(rig.sent()[&0].contains("CLUSTER\r\n$5\r\nSLOTS"));
    let op = rig.acquire(&["a"]);
    assert!(
        rig.sent().is_empty(),
        "no map yet: the request waits for it"
    );
    rig.input(
        SEED_LINK,
        b"-ERR This instance has cluster support disabled\r\n",
    );
    let reason = ConnError::Handshake(
        "CLUSTER SLOTS: ERR This instance has cluster support disabled".into(),
    );
    let mut saw_reconnect = false;
    while let Some(event) = rig.engine.poll_event() {
        match event {
            Event::Reconnect { link, reason: r } => {
                assert_eq!((link, &r), (SEED_LINK, &reason));
                saw_reconnect = true;
            }
            Event::Acquired { op: o, result } => {
                assert_eq!(o, op);
                let e = result.unwrap_err();
                // It waited for the map the seed's handshake was to bring; the seed broke.
                assert_eq!(*outcome_of(&e), Outcome::Disconnected);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_reconnect);
    assert!(!rig.engine.is_connected(SEED_LINK));
    // The refusal is the node's cause in the next attempt's report.
    let op = rig.acquire(&["a"]);
    let e = rig.acquired(op).unwrap_err();
    let node = &e.attempts[0].nodes[0];
    assert_eq!(node.outcome, Outcome::NotReady);
    let cause = node.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("CLUSTER SLOTS") && cause.contains("cluster support disabled"));
}

#[test]
fn the_map_opens_one_link_per_primary() {
    // Four ranges on three primaries: the one with two ranges gets one link.
    let map = [
        (0, 99, 7001),
        (100, 5460, 7000),
        (5461, 10922, 7001),
        (10923, 16383, 7002),
    ];
    let rig = Rig::mapped(options(), &map);
    assert_eq!(
        rig.shards.keys().copied().collect::<Vec<_>>(),
        [7000, 7001, 7002]
    );
    let mut links: Vec<usize> = rig.shards.values().map(|l| l.index()).collect();
    links.sort_unstable();
    assert_eq!(links, [1, 2, 3], "numbered after the node's own link");
    assert!(rig.engine.is_ready(SEED_LINK));
    for link in rig.shards.values() {
        assert!(!rig.engine.is_connected(*link), "opened, not connected yet");
    }
}

#[test]
fn requests_made_before_a_shard_link_connects_are_held_until_it_does() {
    let mut rig = Rig::mapped(options(), &EVEN);
    let op = rig.acquire(&["a"]);
    assert!(rig.sent().is_empty(), "held, not sent, not refused");
    assert_eq!(rig.engine.poll_event(), None);
    let c = rig.link(7002);
    rig.engine.handle_connected(rig.now, c);
    assert_eq!(rig.engine.poll_event(), Some(Event::Ready { link: c }));
    let out = rig.sent();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[&c.index()].contains("NX") && names(&out[&c.index()], b"a"));
    rig.input(c, b"+OK\r\n");
    assert!(rig.acquired(op).is_ok());
    // A shard link whose first connect fails gives up what it held: the vote is NotReady.
    let b = rig.link(7000);
    let op = rig.acquire(&["b"]);
    rig.engine
        .handle_connect_failed(rig.now, b, "connection refused");
    let e = rig.acquired(op).unwrap_err();
    assert_eq!(*outcome_of(&e), Outcome::NotReady);
    assert!(
        rig.sent()[&0].contains("CLUSTER"),
        "a shard's trouble asks for the map again"
    );
}

#[test]
fn a_multi_key_lock_splits_by_slot_with_fence_keys_and_channels() {
    let mut o = options();
    o.fencing = true;
    let mut rig = Rig::ready(o);
    let keys = ["a", "b", "{a}x"];
    rig.acquire(&keys);
    let out = rig.sent();
    let (a, b) = (rig.link(7000).index(), rig.link(7002).index());
    assert_eq!(out.len(), 2, "7001 owns none of the keys: {out:?}");
    let on_a = &out[&a];
    assert!(names(on_a, b"b") && names(on_a, &fence_key(b"b")), "{on_a}");
    assert!(!names(on_a, b"a") && !names(on_a, b"{a}x"), "{on_a}");
    assert!(
        on_a.contains("\r\n$1\r\n2\r\n"),
        "one key and its fence key"
    );
    let on_c = &out[&b];
    for k in [&b"a"[..], b"{a}x"] {
        assert!(names(on_c, k) && names(on_c, &fence_key(k)), "{on_c}");
    }
    assert!(
        !names(on_c, b"b") && on_c.contains("\r\n$1\r\n4\r\n"),
        "{on_c}"
    );

    // A release carries each key's channel to that key's shard.
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&keys);
    rig.sent();
    rig.input(rig.link(7000), b":1\r\n");
    rig.input(rig.link(7002), b":1\r\n");
    let lock = rig.acquired(op).unwrap();
    rig.engine.release(rig.now, &lock);
    let out = rig.sent();
    let on_a = &out[&rig.link(7000).index()];
    let on_c = &out[&rig.link(7002).index()];
    assert!(names(on_a, &release_channel(b"b")), "{on_a}");
    assert!(!names(on_a, &release_channel(b"a")), "{on_a}");
    assert!(names(on_c, &release_channel(b"a")) && names(on_c, &release_channel(b"{a}x")));
    assert!(!names(on_c, &release_channel(b"b")), "{on_c}");
}

#[test]
fn the_node_grants_only_when_every_part_granted() {
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&["a", "b"]);
    rig.sent();
    rig.input(rig.link(7000), b":1\r\n");
    assert_eq!(
        rig.engine.poll_event(),
        None,
        "one part of two is no vote yet"
    );
    rig.input(rig.link(7002), b":1\r\n");
    let lock = rig.acquired(op).unwrap();

    // The release counts the deletes of every part: 2 + 1.
    let op = rig.engine.release(rig.now, &lock);
    rig.sent();
    rig.input(rig.link(7002), b":2\r\n");
    assert_eq!(rig.engine.poll_event(), None);
    rig.input(rig.link(7000), b":1\r\n");
    match rig.engine.poll_event() {
        Some(Event::Released {
            op: o,
            result: Ok(released),
        }) => {
            assert_eq!(o, op);
            assert_eq!(released.confirmed, 1);
            assert_eq!(released.attempt.nodes[0].outcome, Outcome::Released(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_refused_part_refuses_the_node_and_cleanup_goes_to_every_shard_with_a_part() {
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&["a", "b"]);
    rig.sent();
    rig.input(rig.link(7000), b":1\r\n");
    // The other part refuses (Lua false is nil in RESP2): the node refuses, whatever came first.
    rig.input(rig.link(7002), b"$-1\r\n");
    let e = rig.acquired(op).unwrap_err();
    assert_eq!(e.failure, Failure::Locked);
    assert_eq!(*outcome_of(&e), Outcome::Refused);
    // Released where each part went, the granted one and the refused one alike.
    let out = rig.sent();
    let on_a = &out[&rig.link(7000).index()];
    let on_c = &out[&rig.link(7002).index()];
    assert!(names(on_a, b"b") && !names(on_a, b"a"), "{on_a}");
    assert!(names(on_c, b"a") && !names(on_c, b"b"), "{on_c}");
    assert!(!out.contains_key(&rig.link(7001).index()), "{out:?}");
    // A refusal first decides at once: the grant still to come changes nothing.
    let op = rig.acquire(&["a", "b"]);
    rig.sent();
    rig.input(rig.link(7002), b":1\r\n:0\r\n");
    let e = rig.acquired(op).unwrap_err();
    assert_eq!(*outcome_of(&e), Outcome::Refused);
}

#[test]
fn moved_resends_on_the_target_corrects_the_map_and_refreshes_once() {
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&["b"]);
    let first = rig.sent_to(7000);
    assert!(first.contains("NX"));
    rig.input(rig.link(7000), b"-MOVED 3300 127.0.0.1:7002\r\n");
    let out = rig.sent();
    assert_eq!(
        out[&rig.link(7002).index()],
        first,
        "the same request, on the target"
    );
    assert_eq!(
        out[&0], "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n",
        "one refresh"
    );
    assert_eq!(out.len(), 2, "{out:?}");
    rig.input(rig.link(7002), b"+OK\r\n");
    let lock = rig.acquired(op).unwrap();
    // Corrected: the next request for slot 3300 goes to 7002 at once.
    rig.engine.release(rig.now, &lock);
    let out = rig.sent();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(names(&out[&rig.link(7002).index()], b"b"));
    // A second MOVED while the refresh is in flight asks for no second one.
    rig.acquire(&["c"]);
    rig.sent();
    rig.input(rig.link(7001), b"-MOVED 7365 127.0.0.1:7000\r\n");
    let out = rig.sent();
    assert!(!out.contains_key(&0), "{out:?}");
    assert!(names(&out[&rig.link(7000).index()], b"c"));
    // The refresh answers the whole map: it replaces the corrected one (the cluster's word).
    rig.input(SEED_LINK, &slots_reply(&EVEN));
    assert!(rig.take_opens().is_empty(), "no new primary, no new link");
    rig.acquire(&["b"]);
    assert!(names(&rig.sent_to(7000), b"b"));
}

#[test]
fn ask_sends_asking_then_the_request_and_leaves_the_map() {
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&["b"]);
    let first = rig.sent_to(7000);
    rig.input(rig.link(7000), b"-ASK 3300 127.0.0.1:7002\r\n");
    let out = rig.sent();
    assert_eq!(out.len(), 1, "no refresh for ASK: {out:?}");
    let on_c = &out[&rig.link(7002).index()];
    assert_eq!(*on_c, format!("*1\r\n$6\r\nASKING\r\n{first}"));
    rig.input(rig.link(7002), b"+OK\r\n+OK\r\n");
    assert!(rig.acquired(op).is_ok());
    // Once only: the next request for the slot goes to the owner the map names.
    rig.acquire(&["b"]);
    let out = rig.sent();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(!out[&rig.link(7000).index()].contains("ASKING"));
}

#[test]
fn redirects_stop_after_five_hops() {
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&["b"]);
    rig.sent();
    let (a, c) = (rig.link(7000), rig.link(7002));
    let mut at = a;
    for hop in 0..5 {
        let (next, port) = if at == a { (c, 7002) } else { (a, 7000) };
        // After the first hop, `ASKING` is answered first.
        let asking = if hop == 0 { "" } else { "+OK\r\n" };
        rig.input(
            at,
            format!("{asking}-ASK 3300 127.0.0.1:{port}\r\n").as_bytes(),
        );
        let out = rig.sent();
        assert!(
            out[&next.index()].contains("NX"),
            "hop {}: {out:?}",
            hop + 1
        );
        assert_eq!(rig.engine.poll_event(), None);
        at = next;
    }
    rig.input(at, b"+OK\r\n-ASK 3300 127.0.0.1:7000\r\n");
    let out = rig.sent();
    assert!(
        out.values().all(|t| !t.contains("NX")),
        "no sixth hop: {out:?}"
    );
    let e = rig.acquired(op).unwrap_err();
    match outcome_of(&e) {
        Outcome::ErrorReply(text) => {
            assert!(text.starts_with("ASK 3300") && text.contains("after 5 redirects"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn moved_to_a_new_endpoint_opens_a_link_and_the_request_waits_for_it() {
    let mut rig = Rig::ready(options());
    let op = rig.acquire(&["b"]);
    let first = rig.sent_to(7000);
    rig.input(rig.link(7000), b"-MOVED 3300 127.0.0.1:7009\r\n");
    let opened = rig.take_opens();
    assert_eq!(opened, [LinkId::new(4)]);
    assert_eq!(rig.link(7009), LinkId::new(4));
    let out = rig.sent();
    assert_eq!(
        out.keys().copied().collect::<Vec<_>>(),
        [0],
        "only the refresh"
    );
    rig.engine.handle_connected(rig.now, LinkId::new(4));
    assert_eq!(
        rig.engine.poll_event(),
        Some(Event::Ready {
            link: LinkId::new(4)
        })
    );
    assert_eq!(rig.sent_to(7009), first);
    rig.input(LinkId::new(4), b"+OK\r\n");
    assert!(rig.acquired(op).is_ok());
    // A redirect that does not parse is the vote, as an error.
    let op = rig.acquire(&["c"]);
    rig.sent();
    rig.input(rig.link(7001), b"-MOVED nonsense\r\n");
    let e = rig.acquired(op).unwrap_err();
    assert_eq!(
        *outcome_of(&e),
        Outcome::ErrorReply("MOVED nonsense".into())
    );
}

fn acked(replicas: u32) -> Options {
    let mut o = options();
    o.replica_ack = Some(ReplicaAck {
        replicas,
        timeout: Duration::from_millis(100),
    });
    o
}

const WAIT: &str = "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n100\r\n";

#[test]
fn replica_ack_waits_after_each_grant_and_counts_only_acknowledged_ones() {
    let mut rig = Rig::ready(acked(1));
    let op = rig.acquire(&["a", "b"]);
    let out = rig.sent();
    for port in [7000, 7002] {
        let text = &out[&rig.link(port).index()];
        assert!(
            text.ends_with(WAIT),
            "WAIT after the part, same link: {text}"
        );
        assert_eq!(count(text, "WAIT"), 1);
    }
    // Both parts granted, one acknowledged by no replica: an error vote naming WAIT.
    rig.input(rig.link(7000), b":1\r\n:1\r\n");
    rig.input(rig.link(7002), b":1\r\n:0\r\n");
    let e = rig.acquired(op).unwrap_err();
    match outcome_of(&e) {
        Outcome::ErrorReply(text) => assert!(text.starts_with("WAIT: 0 of 1"), "{text}"),
        other => panic!("{other:?}"),
    }
    // The cleanups (both shards got a part).
    rig.sent();
    rig.input(rig.link(7000), b":1\r\n");
    rig.input(rig.link(7002), b":1\r\n");
    // Acknowledged everywhere: granted.
    let op = rig.acquire(&["a", "b"]);
    rig.sent();
    rig.input(rig.link(7000), b":1\r\n:1\r\n");
    assert_eq!(
        rig.engine.poll_event(),
        None,
        "the WAIT is a part of the vote"
    );
    rig.input(rig.link(7002), b":1\r\n:2\r\n");
    let lock = rig.acquired(op).unwrap();
    // A release sends no WAIT.
    rig.engine.release(rig.now, &lock);
    let out = rig.sent();
    assert!(out.values().all(|t| !t.contains("WAIT")), "{out:?}");
    rig.input(rig.link(7000), b":1\r\n");
    rig.input(rig.link(7002), b":1\r\n");
    assert!(matches!(
        rig.engine.poll_event(),
        Some(Event::Released { result: Ok(_), .. })
    ));
    // A MOVED part takes its WAIT along to the target (and the vote waits for it).
    let op = rig.acquire(&["b"]);
    let out = rig.sent_to(7000);
    assert!(out.ends_with(WAIT));
    rig.input(rig.link(7000), b"-MOVED 3300 127.0.0.1:7001\r\n");
    // The WAIT that followed the MOVED request acknowledges nothing written by it: its answer
    // (here none of the old primary's replicas) is not part of the vote; the target's is.
    rig.input(rig.link(7000), b":0\r\n");
    let out = rig.sent();
    let on_b = &out[&rig.link(7001).index()];
    assert!(on_b.contains("NX") && on_b.ends_with(WAIT), "{on_b}");
    rig.input(rig.link(7001), b"+OK\r\n:1\r\n");
    assert!(rig.acquired(op).is_ok());
}

#[test]
fn a_shard_link_that_drops_asks_for_the_map_again() {
    let mut rig = Rig::ready(options());
    rig.engine.handle_disconnected(rig.now, rig.link(7001));
    let out = rig.sent();
    assert_eq!(
        out.get(&0).map(String::as_str),
        Some("*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")
    );
    // Only one in flight.
    rig.engine.handle_disconnected(rig.now, rig.link(7000));
    assert!(rig.sent().is_empty());
    // Answered: the next drop asks again. A refresh's error keeps the map.
    rig.input(SEED_LINK, b"-ERR busy\r\n");
    assert_eq!(
        rig.engine.poll_event(),
        None,
        "not a handshake: no reconnect"
    );
    rig.engine.handle_disconnected(rig.now, rig.link(7002));
    assert!(rig.sent()[&0].contains("SLOTS"));
    // The seed's own drop is not a shard's trouble.
    let mut rig = Rig::ready(options());
    rig.engine.handle_disconnected(rig.now, SEED_LINK);
    assert!(rig.sent().is_empty());
}

#[test]
fn a_cluster_node_has_database_zero_only() {
    let node = NodeConfig::new(HOST, SEED).as_cluster().with_db(1);
    match node.validate() {
        Err(Error::InvalidNode { reason, .. }) => assert!(reason.contains("database 0")),
        other => panic!("{other:?}"),
    }
    assert!(Engine::new(Config::new(vec![node], options()), Instant::now(), 1).is_err());
    assert!(NodeConfig::new(HOST, SEED).as_cluster().validate().is_ok());
    assert!(NodeConfig::new(HOST, SEED).with_db(1).validate().is_ok());
}

#[test]
fn replica_ack_needs_a_replica_and_a_timeout_under_node_timeout() {
    let with = |replicas, timeout| {
        let mut o = Options::default();
        o.node_timeout = Duration::from_millis(500);
        o.replica_ack = Some(ReplicaAck { replicas, timeout });
        o.validate()
    };
    let refused = |r: Result<(), Error>| {
        matches!(
            r,
            Err(Error::InvalidOption {
                name: "replica_ack",
                ..
            })
        )
    };
    assert!(with(1, Duration::from_millis(499)).is_ok());
    assert!(with(1, Duration::from_millis(1)).is_ok());
    assert!(refused(with(1, Duration::from_millis(500))));
    assert!(refused(with(1, Duration::from_millis(501))));
    assert!(refused(with(1, Duration::from_micros(999))));
    assert!(refused(with(0, Duration::from_millis(100))));
}

#[test]
fn a_request_made_while_the_seed_handshakes_waits_for_the_map_then_goes_out() {
    let mut rig = Rig::new(options());
    rig.engine.handle_connected(rig.now, SEED_LINK);
    rig.sent();
    // Asked for before the map is known: counted neither in nor out yet.
    let op = rig.acquire(&["a", "b"]);
    assert!(rig.sent().is_empty());
    assert_eq!(rig.engine.poll_event(), None);
    rig.input(SEED_LINK, &slots_reply(&EVEN));
    rig.take_opens();
    // Routed now, held by the shard links until they connect, then sent: "b" on 7000 and
    // "a" on 7002, nothing on 7001.
    for link in rig.shards.clone().into_values() {
        rig.engine.handle_connected(rig.now, link);
        assert_eq!(rig.engine.poll_event(), Some(Event::Ready { link }));
    }
    let out = rig.sent();
    let (l7000, l7001, l7002) = (rig.link(7000), rig.link(7001), rig.link(7002));
    assert!(
        out.get(&l7000.index())
            .is_some_and(|o| names(o, b"b") && !names(o, b"a")),
        "{out:?}"
    );
    assert!(
        out.get(&l7002.index())
            .is_some_and(|o| names(o, b"a") && !names(o, b"b")),
        "{out:?}"
    );
    assert!(!out.contains_key(&l7001.index()), "{out:?}");
    rig.input(l7000, b":1\r\n");
    rig.input(l7002, b":1\r\n");
    let lock = rig.acquired(op).expect("granted by both parts");
    assert_eq!(lock.attempts(), 1);
}

#[test]
fn a_shard_link_never_opened_holds_a_bounded_number_of_requests() {
    let mut options = options();
    options.retry_count = Some(0);
    let mut rig = Rig::mapped(options, &EVEN);
    // The adapter never connects the shard links: each acquire is held for 7002's first
    // connect, up to a cap; past it the node counts as not ready at once.
    let mut held = 0;
    let mut refused = 0;
    for _ in 0..5000 {
        let op = rig.acquire(&["a"]);
        match rig.engine.poll_event() {
            None => held += 1,
            Some(Event::Acquired {
                op: o,
                result: Err(e),
            }) if o == op => {
                assert_eq!(*outcome_of(&e), Outcome::NotReady);
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((held, refused), (4096, 5000 - 4096));
}
