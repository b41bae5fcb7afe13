//! One cluster member's view of its cluster: which endpoint owns each of the 16384 hash slots,
//! and which slots it is migrating out or importing. As in Redis, every node has its own view
//! (set by the world, as `CLUSTER SETSLOT` and the cluster bus would), so a test can leave one
//! node's view stale on purpose.

use redlock_core::script_sha;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// How many hash slots a cluster has.
pub const SLOTS: u16 = 16384;

/// No owner known for a slot.
const NONE: u16 = u16::MAX;

/// A node's view of its cluster, given to it with [`Node::set_cluster`](crate::Node::set_cluster).
///
/// Nodes are named by endpoint strings, `"host:port"` (the port after the last `:`, so an IPv6
/// host needs no brackets), exactly as they appear in `MOVED` / `ASK` replies and, split, in
/// `CLUSTER SLOTS`. A node's id (`CLUSTER MYID`, the third field of `CLUSTER SLOTS`) is the
/// SHA-1 of its endpoint, so every view names a node alike.
///
/// ```
/// use redlock_sim::ClusterView;
/// let mut view = ClusterView::even("127.0.0.1:7001", &["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]);
/// assert_eq!(view.owner(0), Some("127.0.0.1:7000"));
/// assert_eq!(view.owner(5461), Some("127.0.0.1:7001"));
/// assert_eq!(view.owner(16383), Some("127.0.0.1:7002"));
/// view.set_migrating(5461, Some("127.0.0.1:7002"));
/// assert_eq!(view.migrating(5461), Some("127.0.0.1:7002"));
/// view.set_owner(5461..=5461, "127.0.0.1:7002"); // the migration ends: the state is cleared
/// assert_eq!(view.migrating(5461), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's endpoint.
    myself: String,
    /// Every endpoint named so far (myself first), each once.
    endpoints: Vec<String>,
    /// Per slot, an index into `endpoints`, or [`NONE`].
    owners: Vec<u16>,
    /// Slots this node owns and is moving out: slot → the target's index.
    migrating: BTreeMap<u16, u16>,
    /// Slots another node owns and this one is taking in: slot → the source's index.
    importing: BTreeMap<u16, u16>,
}

impl ClusterView {
    /// The view of a node at `myself` that knows of no slot owner yet (every slot unserved).
    pub fn new(myself: impl Into<String>) -> ClusterView {
        let myself = myself.into();
        ClusterView {
            endpoints: vec![myself.clone()],
            myself,
            owners: vec![NONE; usize::from(SLOTS)],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
        }
    }

    /// The view of `myself` in a cluster of `primaries` (in order) with the slots split as
    /// `redis-cli --cluster create` splits them: contiguous ranges as even as can be
    /// (3 primaries: 0–5460, 5461–10922, 10923–16383). `myself` need not be one of them.
    pub fn even(myself: impl Into<String>, primaries: &[&str]) -> ClusterView {
        let mut view = ClusterView::new(myself);
        if primaries.is_empty() {
            return view;
        }
        // redis-cli's split: primary i ends at round((i + 1) · 16384 / n − 1), the last at 16383.
        let per = f64::from(SLOTS) / primaries.len() as f64;
        let mut start = 0u16;
        for (i, p) in primaries.iter().enumerate() {
            let end = if i + 1 == primaries.len() {
                SLOTS - 1
            } else {
                // Between start - 1 and 16383 for any n: the cast cannot truncate.
                ((i + 1) as f64 * per - 1.0).round() as u16
            };
            if end >= start {
                view.set_owner(start..=end, p);
                start = end + 1;
            }
        }
        view
    }

    /// This node's endpoint.
    pub fn myself(&self) -> &str {
        &self.myself
    }

    /// Records that `endpoint` owns every slot in `slots` (slots past 16383 are ignored), as
    /// `CLUSTER SETSLOT slot NODE id` does, which also ends a migration: the migrating and
    /// importing state of those slots is cleared.
    pub fn set_owner(&mut self, slots: RangeInclusive<u16>, endpoint: &str) {
        let idx = self.index_of(endpoint);
        for slot in slots.filter(|s| *s < SLOTS) {
            self.owners[usize::from(slot)] = idx;
            self.migrating.remove(&slot);
            self.importing.remove(&slot);
        }
    }

    /// Forgets the owner of every slot in `slots` (`CLUSTER DELSLOTS`): they are not served.
    pub fn clear_owner(&mut self, slots: RangeInclusive<u16>) {
        for slot in slots.filter(|s| *s < SLOTS) {
            self.owners[usize::from(slot)] = NONE;
        }
    }

    /// The endpoint owning `slot` in this view, if any.
    pub fn owner(&self, slot: u16) -> Option<&str> {
        let idx = *self.owners.get(usize::from(slot))?;
        self.endpoints.get(usize::from(idx)).map(String::as_str)
    }

    /// Whether this view has this node own `slot`.
    pub fn owns(&self, slot: u16) -> bool {
        self.owner(slot) == Some(self.myself.as_str())
    }

    /// Marks `slot` as migrating from this node to `to` (`CLUSTER SETSLOT slot MIGRATING id`),
    /// or, with `None`, not migrating (`SETSLOT slot STABLE`). Only matters while this node
    /// owns the slot.
    pub fn set_migrating(&mut self, slot: u16, to: Option<&str>) {
        match to {
            Some(to) if slot < SLOTS => {
                let idx = self.index_of(to);
                self.migrating.insert(slot, idx);
            }
            _ => {
                self.migrating.remove(&slot);
            }
        }
    }

    /// Marks `slot` as being imported into this node from `from` (`CLUSTER SETSLOT slot
    /// IMPORTING id`), or, with `None`, not (`SETSLOT slot STABLE`). Only matters while
    /// another node owns the slot.
    pub fn set_importing(&mut self, slot: u16, from: Option<&str>) {
        match from {
            Some(from) if slot < SLOTS => {
                let idx = self.index_of(from);
                self.importing.insert(slot, idx);
            }
            _ => {
                self.importing.remove(&slot);
            }
        }
    }

    /// Where `slot` is migrating to, if this node marks it migrating.
    pub fn migrating(&self, slot: u16) -> Option<&str> {
        let idx = *self.migrating.get(&slot)?;
        Some(&self.endpoints[usize::from(idx)])
    }

    /// Where `slot` is imported from, if this node marks it importing.
    pub fn importing(&self, slot: u16) -> Option<&str> {
        let idx = *self.importing.get(&slot)?;
        Some(&self.endpoints[usize::from(idx)])
    }

    /// The owned slots as maximal contiguous ranges, in slot order: `(start, end, owner)`.
    pub fn ranges(&self) -> Vec<(u16, u16, &str)> {
        let mut out: Vec<(u16, u16, &str)> = Vec::new();
        for slot in 0..SLOTS {
            let Some(owner) = self.owner(slot) else {
                continue;
            };
            match out.last_mut() {
                Some((_, end, o)) if *end + 1 == slot && *o == owner => *end = slot,
                _ => out.push((slot, slot, owner)),
            }
        }
        out
    }

    /// Every endpoint this view names (this node first), each once.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(String::as_str)
    }

    /// The index of `endpoint`, added when new.
    fn index_of(&mut self, endpoint: &str) -> u16 {
        match self.endpoints.iter().position(|e| e == endpoint) {
            Some(i) => i as u16,
            None => {
                self.endpoints.push(endpoint.to_string());
                // A test cluster names a handful of nodes, far below u16::MAX.
                (self.endpoints.len() - 1) as u16
            }
        }
    }
}

/// The node id every view gives `endpoint`: 40 hex digits, the SHA-1 of the endpoint.
pub(crate) fn node_id(endpoint: &str) -> String {
    script_sha(&format!("model-cluster-node {endpoint}"))
}

/// `endpoint` split into host and port at its last `:` (port 0 when there is none or it does
/// not parse).
pub(crate) fn split_endpoint(endpoint: &str) -> (&str, u16) {
    match endpoint.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (endpoint, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_matches_redis_cli() {
        let v = ClusterView::even("a:1", &["a:1", "b:2", "c:3"]);
        assert_eq!(
            v.ranges(),
            [
                (0, 5460, "a:1"),
                (5461, 10922, "b:2"),
                (10923, 16383, "c:3")
            ]
        );
        assert!(v.owns(0) && !v.owns(5461));
        let one = ClusterView::even("a:1", &["a:1"]);
        assert_eq!(one.ranges(), [(0, 16383, "a:1")]);
        assert_eq!(ClusterView::new("a:1").ranges(), []);
    }

    #[test]
    fn owners_and_migrations() {
        let mut v = ClusterView::even("a:1", &["a:1", "b:2"]);
        v.set_migrating(7, Some("b:2"));
        v.set_importing(9000, Some("b:2"));
        assert_eq!(v.migrating(7), Some("b:2"));
        assert_eq!(v.importing(9000), Some("b:2"));
        v.set_owner(7..=7, "b:2");
        assert_eq!((v.migrating(7), v.owner(7)), (None, Some("b:2")));
        v.set_importing(9000, None);
        assert_eq!(v.importing(9000), None);
        v.clear_owner(0..=0);
        assert_eq!(v.owner(0), None);
        assert_eq!(v.owner(SLOTS), None);
        v.set_owner(SLOTS..=u16::MAX, "c:3");
        assert_eq!(v.endpoints().collect::<Vec<_>>(), ["a:1", "b:2", "c:3"]);
        assert_eq!(split_endpoint("::1:7000"), ("::1", 7000));
        assert_eq!(split_endpoint("h"), ("h", 0));
        assert_eq!(node_id("a:1").len(), 40);
    }
}
