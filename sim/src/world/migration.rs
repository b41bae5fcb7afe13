//! Redis Clusters in the world: each cluster's members and the slot owners the cluster has
//! agreed on, and slot migrations over virtual time (`MIGRATING` / `IMPORTING`, keys moved
//! one per step as `MIGRATE` moves them, the new owner set on both ends, the other members
//! learning it later).

use super::event::Ev;
use super::Sim;
use crate::clock::nanos;
use crate::cluster::ClusterView;
use crate::keyspace::KeyDump;
use redlock_core::key_slot;

/// The endpoint model node `n` has in every cluster view, as `CLUSTER SLOTS` and redirects
/// name it: `node-N:7000+N`, what the world's `resolve` maps back to the node.
pub(super) fn endpoint(n: usize) -> String {
    format!("node-{n}:{}", 7000 + n)
}

/// One cluster: its members (model nodes) and the migration in progress.
pub(super) struct Shards {
    pub(super) members: Vec<usize>,
    /// The slot owners the cluster agreed on (what every member's view converges to).
    truth: ClusterView,
    /// The migration in progress: slot, source, target.
    active: Option<(u16, usize, usize)>,
}

impl Shards {
    /// A cluster of `members` with the slots split evenly, and each member's own view of it.
    pub(super) fn new(members: Vec<usize>) -> (Shards, Vec<ClusterView>) {
        let eps: Vec<String> = members.iter().map(|m| endpoint(*m)).collect();
        let names: Vec<&str> = eps.iter().map(String::as_str).collect();
        let views = eps.iter().map(|e| ClusterView::even(e, &names)).collect();
        let truth = ClusterView::even("", &names);
        (
            Shards {
                members,
                truth,
                active: None,
            },
            views,
        )
    }
}

/// The model node an endpoint of [`endpoint`]'s form names.
fn node_of(endpoint: &str) -> Option<usize> {
    endpoint
        .strip_prefix("node-")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

impl Sim<'_> {
    fn node_ok(&self, n: usize) -> bool {
        !self.nodes[n].down && !self.nodes[n].stalled
    }

    /// Whether node `n` restarted empty less than twice `restart_grace` ago: its slots stay
    /// put meanwhile. Restart-aware voting makes clients wait out a server whose `run_id`
    /// changed, but a slot moved off it would be served by a server that never restarted,
    /// which grants at once the locks the empty restart lost (the simulator found this:
    /// `sim/tests/sim_cluster.rs`). So the delayed-restart assumption, in a cluster, covers
    /// resharding too: no slot leaves a primary that restarted empty within the grace (unless
    /// [`Scenario::reshard_emptied`](crate::Scenario::reshard_emptied)).
    fn recently_emptied(&self, n: usize) -> bool {
        if self.sc.reshard_emptied {
            return false;
        }
        let grace = self.sc.options.restart_grace.map_or(0, |g| nanos(g) * 2);
        self.nodes[n]
            .emptied
            .is_some_and(|at| self.now < at + grace)
    }

    fn next_migration(&mut self, k: usize, after: u64) {
        if let (Some(every), false) = (self.sc.migrate_every, self.stopped) {
            let at = self.now + after + nanos(self.rng.exp(every));
            self.push(at, Ev::Migrate(k));
        }
    }

    /// Starts moving the slot of one resource's key in cluster `k` from its owner to another
    /// member (both must be running: `CLUSTER SETSLOT` is a command).
    pub(super) fn start_migration(&mut self, k: usize) {
        if self.stopped || self.shards[k].active.is_some() {
            return;
        }
        let r = self.rng.below(self.sc.resources as u64) as usize;
        let key = format!("{}{}", self.sc.options.key_prefix, self.names[r]);
        let slot = key_slot(key.as_bytes());
        let shards = &self.shards[k];
        let Some(from) = shards.truth.owner(slot).and_then(node_of) else {
            return self.next_migration(k, 0);
        };
        let others: Vec<usize> = shards
            .members
            .iter()
            .copied()
            .filter(|m| *m != from)
            .collect();
        let to = others[self.rng.below(others.len() as u64) as usize];
        if !self.node_ok(from) || !self.node_ok(to) || self.recently_emptied(from) {
            return self.next_migration(k, 0);
        }
        self.note(|| format!("cluster {k}: slot {slot} ({key}) migrates from node {from} to {to}"));
        let (src, dst) = (endpoint(from), endpoint(to));
        if let Some(v) = self.nodes[to].node.cluster_mut() {
            v.set_importing(slot, Some(&src));
        }
        if let Some(v) = self.nodes[from].node.cluster_mut() {
            v.set_migrating(slot, Some(&dst));
        }
        self.shards[k].active = Some((slot, from, to));
        let at = self.now + nanos(self.rng.duration(self.sc.migrate_step));
        self.push(at, Ev::MigrateStep(k));
    }

    /// One step of cluster `k`'s migration: one key moved (atomically, as `MIGRATE` moves it,
    /// keeping its remaining ttl), or, with none left, the end: the new owner set on both ends
    /// and, later, on the other members.
    pub(super) fn migrate_step(&mut self, k: usize) {
        let Some((slot, from, to)) = self.shards[k].active else {
            return;
        };
        let delay = nanos(self.rng.duration(self.sc.migrate_step));
        if !self.node_ok(from) || !self.node_ok(to) || self.recently_emptied(from) {
            self.push(self.now + delay, Ev::MigrateStep(k));
            return;
        }
        let (src_now, dst_now) = (self.node_now(from), self.node_now(to));
        let keys = self.nodes[from].node.slot_keys(src_now, slot);
        if let Some(key) = keys.first() {
            if let Some(dump) = self.nodes[from].node.take_key(src_now, key) {
                // Expiry instants are on each node's own clock: keep the time left.
                let expires = dump
                    .expires
                    .map(|e| dst_now + e.saturating_duration_since(src_now));
                self.nodes[to].node.put_keys([KeyDump { expires, ..dump }]);
                self.stats.keys_migrated += 1;
            }
            self.push(self.now + delay, Ev::MigrateStep(k));
            return;
        }
        let dst = endpoint(to);
        self.note(|| format!("cluster {k}: slot {slot} now on node {to}"));
        self.stats.migrations += 1;
        for n in [to, from] {
            if let Some(v) = self.nodes[n].node.cluster_mut() {
                v.set_owner(slot..=slot, &dst);
            }
        }
        self.shards[k].truth.set_owner(slot..=slot, &dst);
        self.shards[k].active = None;
        let members = self.shards[k].members.clone();
        let mut latest = 0;
        for m in members.into_iter().filter(|m| *m != from && *m != to) {
            let late = nanos(self.rng.duration(self.sc.migrate_step));
            latest = latest.max(late);
            self.push(self.now + late, Ev::LearnOwner(m, slot, to));
        }
        // The next migration once every member knows this one's end.
        self.next_migration(k, latest);
    }

    /// Member `n` learns (by the cluster bus) that `owner` owns `slot`.
    pub(super) fn learn_owner(&mut self, n: usize, slot: u16, owner: usize) {
        let ep = endpoint(owner);
        if let Some(v) = self.nodes[n].node.cluster_mut() {
            v.set_owner(slot..=slot, &ep);
        }
    }
}
