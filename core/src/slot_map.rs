//! Which primary serves each of a cluster's 16384 hash slots, as learned from `CLUSTER SLOTS`
//! and corrected by `MOVED` redirects.

use crate::endpoint::Endpoint;
use crate::resp::Reply;
use crate::slot::SLOTS;

/// No primary known for a slot.
const NONE: u16 = u16::MAX;

/// The owner of every hash slot: one `u16` per slot (32 KiB) indexing a short list of primaries,
/// each stored once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotMap {
    /// Per slot, an index into `endpoints`, or [`NONE`].
    owners: Box<[u16]>,
    /// Every endpoint ever named; a slot-less one is reused by the next new endpoint.
    endpoints: Vec<Endpoint>,
    /// Per endpoint, how many slots it owns.
    owned: Vec<u16>,
}

impl Default for SlotMap {
    fn default() -> SlotMap {
        SlotMap::new()
    }
}

impl SlotMap {
    /// A map with no slot covered.
    pub(crate) fn new() -> SlotMap {
        SlotMap {
            owners: vec![NONE; usize::from(SLOTS)].into_boxed_slice(),
            endpoints: Vec::new(),
            owned: Vec::new(),
        }
    }

    /// Reads a `CLUSTER SLOTS` reply: an array of ranges, each `[start, end, primary,
    /// replica…]` with a node as `[host, port, id, …]` (RESP2 and RESP3 alike; a fourth element,
    /// Redis 7's metadata map, is ignored, and so are the replicas).
    ///
    /// Hosts, as Redis 7 documents them: a null or empty host means the node that answered
    /// (`asked_host`), whose own address it may not know; `?` is a node with an unknown
    /// endpoint, not necessarily the one that answered, so its range stays uncovered (a request
    /// there is left to a `MOVED` to place). Ranges are applied in order, a later one winning
    /// where two overlap. An empty array is a cluster with no slot assigned: a map with nothing
    /// covered.
    ///
    /// Errors (as text a user can act on): an error reply (e.g. cluster support disabled, as
    /// the node said it), or a reply that is not a slot map (the first thing wrong in it).
    pub(crate) fn from_cluster_slots(reply: &Reply, asked_host: &str) -> Result<SlotMap, String> {
        let ranges = match reply {
            Reply::Array(ranges) => ranges,
            Reply::Error(e) => return Err(format!("CLUSTER SLOTS failed: {e}")),
            other => {
                return Err(format!(
                    "CLUSTER SLOTS replied {}, not an array",
                    kind(other)
                ))
            }
        };
        let mut map = SlotMap::new();
        for (i, range) in ranges.iter().enumerate() {
            let bad = |what: &str| format!("CLUSTER SLOTS entry {i}: {what}");
            let Reply::Array(fields) = range else {
                return Err(bad(&format!("{}, not an array", kind(range))));
            };
            let [start, end, primary, ..] = &fields[..] else {
                return Err(bad("fewer than 3 fields (start, end, primary)"));
            };
            let (Some(start), Some(end)) = (slot(start), slot(end)) else {
                return Err(bad("the start or end is not a slot in 0..16384"));
            };
            if start > end {
                return Err(bad("the range starts after it ends"));
            }
            let Reply::Array(node) = primary else {
                return Err(bad(&format!(
                    "the primary is {}, not an array",
                    kind(primary)
                )));
            };
            let [host, port, ..] = &node[..] else {
                return Err(bad("the primary has no host and port"));
            };
            let host = match host {
                Reply::Nil => asked_host,
                Reply::Bulk(b) | Reply::Status(b) => {
                    std::str::from_utf8(b).map_err(|_| bad("the primary's host is not UTF-8"))?
                }
                other => {
                    return Err(bad(&format!("the primary's host is {}", kind(other))));
                }
            };
            let port = match port {
                Reply::Int(p) => u16::try_from(*p).ok().filter(|p| *p != 0),
                _ => None,
            }
            .ok_or_else(|| bad("the primary's port is not in 1..=65535"))?;
            let host = match host {
                "" => asked_host,
                "?" => continue,
                h => h,
            };
            let idx = map.index_of(Endpoint::new(host, port));
            for s in start..=end {
                map.assign(s, idx);
            }
        }
        Ok(map)
    }

    /// The primary serving `slot`, if known (`None` also for a slot past 16383).
    pub(crate) fn primary(&self, slot: u16) -> Option<&Endpoint> {
        let idx = *self.owners.get(usize::from(slot))?;
        self.endpoints.get(usize::from(idx))
    }

    /// Records that `endpoint` serves `slot` (what a `MOVED` says). A slot past 16383 is
    /// ignored.
    pub(crate) fn set(&mut self, slot: u16, endpoint: Endpoint) {
        if slot < SLOTS {
            let idx = self.index_of(endpoint);
            self.assign(slot, idx);
        }
    }

    /// Every primary serving at least one slot, each once, in no particular order.
    pub(crate) fn primaries(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .zip(&self.owned)
            .filter(|(_, n)| **n > 0)
            .map(|(e, _)| e)
    }

    /// How many slots have no known primary.
    #[cfg(test)]
    pub(crate) fn uncovered(&self) -> usize {
        self.owners.iter().filter(|i| **i == NONE).count()
    }

    /// Whether every slot has a known primary.
    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.uncovered() == 0
    }

    /// The index of `endpoint` in the list, adding it (in the place of one that owns nothing,
    /// if any) when it is new.
    fn index_of(&mut self, endpoint: Endpoint) -> u16 {
        if let Some(i) = self.endpoints.iter().position(|e| *e == endpoint) {
            return i as u16;
        }
        if let Some(i) = self.owned.iter().position(|n| *n == 0) {
            self.endpoints[i] = endpoint;
            return i as u16;
        }
        // At most 16384 endpoints own a slot, and a slot-less one is reused above, so the list
        // never holds more than 16385: the index fits a u16 below NONE.
        self.endpoints.push(endpoint);
        self.owned.push(0);
        (self.endpoints.len() - 1) as u16
    }

    /// Makes endpoint `idx` the owner of `slot`.
    fn assign(&mut self, slot: u16, idx: u16) {
        let cell = &mut self.owners[usize::from(slot)];
        if *cell != NONE {
            self.owned[usize::from(*cell)] -= 1;
        }
        *cell = idx;
        self.owned[usize::from(idx)] += 1;
    }
}

/// An integer reply in `0..16384`, as a slot.
fn slot(reply: &Reply) -> Option<u16> {
    match reply {
        Reply::Int(n) => u16::try_from(*n).ok().filter(|s| *s < SLOTS),
        _ => None,
    }
}

/// What kind of reply this is, for error messages.
fn kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Status(_) => "a status",
        Reply::Error(_) => "an error",
        Reply::Int(_) => "an integer",
        Reply::Bulk(_) => "a string",
        Reply::Nil => "a null",
        Reply::Bool(_) => "a boolean",
        Reply::Double(_) => "a double",
        Reply::Array(_) => "an array",
        Reply::Map(_) => "a map",
        Reply::Push(_) => "a push",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Decoder, Protocol};
    use crate::rng::Rng;
    use bytes::Bytes;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn node(host: Reply, port: i64, id: &str) -> Reply {
        Reply::Array(vec![host, Reply::Int(port), bulk(id)])
    }

    fn range(start: i64, end: i64, primary: Reply) -> Reply {
        Reply::Array(vec![Reply::Int(start), Reply::Int(end), primary])
    }

    fn decode(protocol: Protocol, bytes: &[u8]) -> Reply {
        let mut d = Decoder::new(protocol, 1 << 16);
        let mut out = Vec::new();
        d.feed(bytes, |r| out.push(r)).expect("valid RESP");
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    #[test]
    fn three_shards_resp2() {
        // As `redis-cli --cluster create` leaves a 3-primary, 3-replica cluster (Redis 7.2).
        let wire = b"*3\r\n\
            *4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\naaa\r\n*0\r\n\
                *4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\nddd\r\n*0\r\n\
            *3\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nbbb\r\n*0\r\n\
            *3\r\n:10923\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7002\r\n$3\r\nccc\r\n";
        let map = SlotMap::from_cluster_slots(&decode(Protocol::Resp2, wire), "x").unwrap();
        assert!(map.is_complete());
        assert_eq!(map.primary(0), Some(&Endpoint::new("127.0.0.1", 7000)));
        assert_eq!(map.primary(5460), Some(&Endpoint::new("127.0.0.1", 7000)));
        assert_eq!(map.primary(5461), Some(&Endpoint::new("127.0.0.1", 7001)));
        assert_eq!(map.primary(16383), Some(&Endpoint::new("127.0.0.1", 7002)));
        assert_eq!(map.primary(16384), None);
        let mut ports: Vec<u16> = map.primaries().map(Endpoint::port).collect();
        ports.sort_unstable();
        assert_eq!(ports, [7000, 7001, 7002], "replicas are not primaries");
    }

    #[test]
    fn resp3_metadata_and_odd_hosts() {
        // Redis 7 adds a metadata map to each node; RESP3 sends it as a map.
        let wire = b"*3\r\n\
            *3\r\n:0\r\n:99\r\n*4\r\n$0\r\n\r\n:7000\r\n$1\r\na\r\n%1\r\n$8\r\nhostname\r\n$2\r\nh0\r\n\
            *3\r\n:100\r\n:199\r\n*4\r\n$1\r\n?\r\n:7001\r\n$1\r\nb\r\n%0\r\n\
            *3\r\n:200\r\n:16383\r\n*4\r\n_\r\n:7002\r\n$1\r\nc\r\n%0\r\n";
        let map = SlotMap::from_cluster_slots(&decode(Protocol::Resp3, wire), "10.0.0.5").unwrap();
        assert_eq!(map.primary(50), Some(&Endpoint::new("10.0.0.5", 7000)));
        assert_eq!(
            map.primary(150),
            None,
            "`?`: unknown endpoint, left uncovered"
        );
        assert_eq!(map.primary(300), Some(&Endpoint::new("10.0.0.5", 7002)));
        assert_eq!(map.uncovered(), 100);
        assert!(!map.is_complete());
    }

    #[test]
    fn moved_updates_one_slot() {
        let a = Endpoint::new("h", 1);
        let b = Endpoint::new("h", 2);
        let reply = Reply::Array(vec![range(0, 16383, node(bulk("h"), 1, "a"))]);
        let mut map = SlotMap::from_cluster_slots(&reply, "x").unwrap();
        assert_eq!(map.primaries().collect::<Vec<_>>(), [&a]);
        map.set(7, b.clone());
        assert_eq!(map.primary(7), Some(&b));
        assert_eq!(map.primary(8), Some(&a));
        assert_eq!(map.primaries().count(), 2);
        map.set(7, a.clone());
        assert_eq!(
            map.primaries().collect::<Vec<_>>(),
            [&a],
            "b owns nothing now"
        );
        map.set(9, Endpoint::new("h", 3));
        assert_eq!(map.endpoints.len(), 2, "the slot-less entry is reused");
        map.set(SLOTS, b);
        assert!(map.is_complete());
        assert_eq!(SlotMap::new().uncovered(), usize::from(SLOTS));
    }

    #[test]
    fn not_slot_maps() {
        let ok = node(bulk("h"), 1, "a");
        let cases = [
            (
                Reply::Error("ERR This instance has cluster support disabled".into()),
                "cluster support disabled",
            ),
            (Reply::Int(1), "an integer, not an array"),
            (Reply::Array(vec![Reply::Int(1)]), "entry 0: an integer"),
            (
                Reply::Array(vec![Reply::Array(vec![Reply::Int(0), Reply::Int(1)])]),
                "fewer than 3",
            ),
            (
                Reply::Array(vec![range(0, 16384, ok.clone())]),
                "not a slot",
            ),
            (Reply::Array(vec![range(-1, 5, ok.clone())]), "not a slot"),
            (Reply::Array(vec![range(5, 4, ok.clone())]), "starts after"),
            (
                Reply::Array(vec![range(0, 1, bulk("h"))]),
                "primary is a string",
            ),
            (
                Reply::Array(vec![range(0, 1, Reply::Array(vec![bulk("h")]))]),
                "no host and port",
            ),
            (
                Reply::Array(vec![range(0, 1, node(bulk("h"), 0, "a"))]),
                "port",
            ),
            (
                Reply::Array(vec![range(0, 1, node(bulk("h"), 70000, "a"))]),
                "port",
            ),
            (
                Reply::Array(vec![range(0, 1, node(Reply::Int(3), 1, "a"))]),
                "host is an integer",
            ),
            (
                Reply::Array(vec![range(
                    0,
                    1,
                    node(Reply::Bulk(Bytes::from_static(b"\xff")), 1, "a"),
                )]),
                "UTF-8",
            ),
        ];
        for (reply, want) in cases {
            let err = SlotMap::from_cluster_slots(&reply, "x").unwrap_err();
            assert!(err.contains(want), "{reply:?}: {err}");
        }
        let empty = SlotMap::from_cluster_slots(&Reply::Array(vec![]), "x").unwrap();
        assert_eq!(empty.uncovered(), usize::from(SLOTS));
    }

    /// A random reply, biased towards slot-map shapes so the parser gets past its first checks.
    fn arbitrary(rng: &mut Rng, depth: u32) -> Reply {
        let pick = rng.below_inclusive(if depth == 0 { 5 } else { 9 });
        match pick {
            0 => Reply::Int(match rng.below_inclusive(3) {
                0 => rng.below_inclusive(16400) as i64,
                1 => rng.below_inclusive(70000) as i64,
                2 => -(rng.below_inclusive(3) as i64),
                _ => rng.next_u64() as i64,
            }),
            1 => bulk(["", "?", "127.0.0.1", "::1", "h"][rng.below_inclusive(4) as usize]),
            2 => Reply::Bulk(Bytes::from(vec![rng.next_u64() as u8; 2])),
            3 => Reply::Nil,
            4 => Reply::Status(Bytes::from_static(b"OK")),
            5 => [
                Reply::Bool(true),
                Reply::Double(1.5),
                Reply::Error("E".into()),
            ][rng.below_inclusive(2) as usize]
                .clone(),
            6 => Reply::Map(vec![(bulk("k"), arbitrary(rng, depth - 1))]),
            7 => Reply::Push(vec![arbitrary(rng, depth - 1)]),
            _ => {
                let n = rng.below_inclusive(5);
                Reply::Array((0..n).map(|_| arbitrary(rng, depth - 1)).collect())
            }
        }
    }

    #[test]
    fn never_panics_on_any_reply() {
        let mut rng = Rng::new(7);
        let mut parsed = 0;
        for _ in 0..5_000 {
            let reply = Reply::Array(
                (0..rng.below_inclusive(4))
                    .map(|_| {
                        let mut fields = vec![arbitrary(&mut rng, 0), arbitrary(&mut rng, 0)];
                        fields.push(Reply::Array(
                            (0..rng.below_inclusive(4))
                                .map(|_| arbitrary(&mut rng, 1))
                                .collect(),
                        ));
                        fields.extend((0..rng.below_inclusive(2)).map(|_| arbitrary(&mut rng, 3)));
                        Reply::Array(fields)
                    })
                    .collect(),
            );
            if let Ok(map) = SlotMap::from_cluster_slots(&reply, "h") {
                parsed += 1;
                let covered = usize::from(SLOTS) - map.uncovered();
                let sum: usize = map.owned.iter().map(|n| usize::from(*n)).sum();
                assert_eq!(sum, covered, "{reply:?}");
            }
            let _ = SlotMap::from_cluster_slots(&arbitrary(&mut rng, 4), "h");
        }
        assert!(
            parsed > 250,
            "only {parsed} parsed: the generator misses the shape"
        );
    }
}
