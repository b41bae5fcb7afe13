//! What the engine knows of a node that is a whole Redis Cluster: its slot map, a connection
//! (link) per shard primary, and how a lock's keys split by hash slot.

use crate::endpoint::Endpoint;
use crate::ids::LinkId;
use crate::request::{Asked, Call};
use crate::slot::key_slot;
use crate::slot_map::SlotMap;
use bytes::Bytes;
use std::collections::BTreeMap;

/// The most links one cluster node may have: a cluster that keeps naming new primaries (or a
/// node answering `MOVED` to ever new addresses) cannot make the engine open sockets without
/// end. Redis Cluster's own recommended ceiling is 1000 primaries.
pub(crate) const MAX_SHARDS: usize = 1024;

/// The most requests kept waiting for a cluster's first slot map; past it they count the node
/// out (`NotReady`) as for a node that is down.
pub(crate) const MAX_PENDING: usize = 4096;

/// The most redirects one request follows before its vote is an error.
pub(crate) const MAX_HOPS: u8 = 5;

#[derive(Debug, Default)]
pub(crate) struct Cluster {
    /// The slot map, once the seed link's `CLUSTER SLOTS` answered.
    pub(crate) map: Option<SlotMap>,
    /// The link to each primary, by endpoint (links are never closed; a primary gone in a
    /// failover keeps its link, reconnecting with backoff).
    pub(crate) shards: BTreeMap<Endpoint, LinkId>,
    /// A `CLUSTER SLOTS` refresh is in flight on the seed link.
    pub(crate) refreshing: bool,
    /// Requests made while the seed's handshake (which brings the first slot map) was in
    /// flight: routed once the map arrives.
    pub(crate) pending: Vec<(Asked, Call)>,
}

/// The lock keys' indices grouped by hash slot, groups in the order of their first key: a
/// cluster runs each group's script on the slot's primary (a script's keys must share a slot).
pub(crate) fn group_by_slot(keys: &[Bytes]) -> Vec<(u16, Vec<usize>)> {
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let slot = key_slot(key);
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, members)) => members.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_slot_in_first_seen_order() {
        let keys: Vec<Bytes> = ["{a}1", "b", "{a}2", "c", "b2{b}"]
            .iter()
            .map(|k| Bytes::copy_from_slice(k.as_bytes()))
            .collect();
        let groups = group_by_slot(&keys);
        assert_eq!(groups[0], (key_slot(b"a"), vec![0, 2]));
        assert_eq!(groups[1], (key_slot(b"b"), vec![1, 4]));
        assert_eq!(groups[2], (key_slot(b"c"), vec![3]));
        assert_eq!(groups.len(), 3);
    }
}
