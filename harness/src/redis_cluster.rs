//! A real Redis Cluster (or Valkey Cluster) on loopback, formed without `redis-cli`.
//!
//! [`RedisCluster::try_start`] (or [`RedisCluster::start`], which panics, for tests) spawns
//! `primaries × (1 + replicas_per_primary)` servers with `--cluster-enabled yes`, each on its own
//! free loopback port (and a second one for the cluster bus) in its own temporary directory, then
//! forms the cluster over the harness's own RESP client: `CLUSTER ADDSLOTSRANGE` (the 16384 slots
//! spread evenly over the primaries), `CLUSTER MEET` from the first node to every other,
//! `CLUSTER REPLICATE` on the replicas, and waits until every node reports `cluster_state:ok`,
//! agrees on the slot map, and every replica's link to its primary is up (so `WAIT` counts it).
//!
//! Node indices are fixed at start: `0..primaries` are the primaries, and replica `j` of primary
//! `p` is `primaries + p × replicas_per_primary + j`. Roles change on failover;
//! [`RedisCluster::primaries`], [`RedisCluster::replicas_of`] and [`RedisCluster::is_primary`]
//! ask the servers for the current ones.
//!
//! Faults and changes: [`RedisCluster::migrate_slot`] (or its steps
//! [`RedisCluster::begin_migration`], [`RedisCluster::move_keys`],
//! [`RedisCluster::finish_migration`], so a test can act while a slot is half-migrated),
//! [`RedisCluster::kill`] (SIGKILL by pid), then [`RedisCluster::wait_promoted`] for the
//! automatic failover or [`RedisCluster::failover_takeover`] to force one.
//!
//! Every process is a child of this process, signalled only by its pid; dropping the
//! [`RedisCluster`] kills every server and removes the temporary directories. The methods take
//! `&self`, so a cluster can be shared through an `Arc`. Methods without `try_` panic with the
//! node's details on failure (for tests).

use crate::cluster::{free_port, read_log, show_args, Node, Serve, StartError, CMD_TIMEOUT};
use crate::resp::{request, Conn, Reply};
use redlock_core::{Redirect, RedirectKind};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The number of hash slots in a Redis Cluster (slots are `0..SLOTS`).
pub const SLOTS: u16 = 16384;

/// `--cluster-node-timeout`: how long a node may be unreachable before it is suspected failing.
/// Short, so a killed primary's replica takes over within a few seconds.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long [`RedisCluster::try_start`] waits for the cluster to form once its servers run, and
/// [`RedisCluster::finish_migration`] for every node to learn a slot's new owner.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(20);

/// How many keys one `MIGRATE` moves.
const MIGRATE_BATCH: usize = 100;

/// How many redirects [`RedisCluster::cmd_routed`] follows before giving up.
const MAX_REDIRECTS: usize = 5;

/// A Redis Cluster of local server processes on loopback, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// Each node's cluster id (`CLUSTER MYID`; it survives failovers).
    ids: Vec<String>,
    primaries: usize,
    replicas_per_primary: usize,
    /// Slots between [`RedisCluster::begin_migration`] and [`RedisCluster::finish_migration`].
    migrations: Mutex<HashMap<u16, Migration>>,
}

/// A slot on its way from one primary to another.
#[derive(Debug, Clone, Copy)]
struct Migration {
    from: usize,
    to: usize,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    flags: Vec<String>,
    /// The primary's id, for a replica.
    master: Option<String>,
}

impl NodeLine {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// A slot range and the node index of its primary, from `CLUSTER SLOTS`.
type SlotMap = Vec<(u16, u16, usize)>;

impl RedisCluster {
    /// Starts a cluster of `primaries` primaries, each with `replicas_per_primary` replicas,
    /// and waits (up to [`FORM_TIMEOUT`]) until it is formed: every node reports
    /// `cluster_state:ok`, every node's `CLUSTER SLOTS` gives the same owner for all 16384 slots,
    /// every node sees every replica attached to its primary, and every replica's replication
    /// link is up.
    ///
    /// Each server runs as [`Cluster`](crate::Cluster)'s do, plus `--cluster-enabled yes
    /// --cluster-config-file D/nodes.conf --cluster-port B --cluster-node-timeout 1000
    /// --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0` (`B` a second free
    /// port; a replica may always take over; a replica syncs at once). On error every server
    /// started so far is stopped.
    pub fn try_start(
        primaries: usize,
        replicas_per_primary: usize,
    ) -> Result<RedisCluster, StartError> {
        if primaries == 0 || primaries > usize::from(SLOTS) {
            return Err(StartError::Failed(format!(
                "a Redis Cluster needs 1 to {SLOTS} primaries, not {primaries}"
            )));
        }
        let total = primaries * (1 + replicas_per_primary);
        let mut nodes = Vec::with_capacity(total);
        for _ in 0..total {
            // Pushed one at a time so that a failure part-way still stops the others (Drop).
            nodes.push(Node::start_fresh_with(&Serve::default(), &cluster_args)?);
        }
        let mut cluster = RedisCluster {
            nodes,
            ids: Vec::with_capacity(total),
            primaries,
            replicas_per_primary,
            migrations: Mutex::new(HashMap::new()),
        };
        cluster.form().map_err(|reason| {
            StartError::Failed(format!(
                "the Redis Cluster did not form: {reason}\n{}",
                cluster.logs()
            ))
        })?;
        Ok(cluster)
    }

    /// [`RedisCluster::try_start`] for tests.
    ///
    /// # Panics
    ///
    /// If the server program is missing, a server does not start, or the cluster does not form
    /// within [`FORM_TIMEOUT`] (the message includes the servers' logs).
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        RedisCluster::try_start(primaries, replicas_per_primary)
            .unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}"))
    }

    /// The number of nodes, primaries and replicas.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never true for a started one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The TCP port node `i` serves clients on.
    pub fn port(&self, i: usize) -> u16 {
        self.node(i).port()
    }

    /// The socket address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port(i)))
    }

    /// The process id of node `i`; `None` once it was killed.
    pub fn try_pid(&self, i: usize) -> Option<u32> {
        self.node(i).try_pid()
    }

    /// [`RedisCluster::try_pid`] for tests.
    ///
    /// # Panics
    ///
    /// If the node was killed.
    pub fn pid(&self, i: usize) -> u32 {
        self.try_pid(i)
            .unwrap_or_else(|| panic!("cluster node {i} is not running (killed)"))
    }

    /// Node `i`'s cluster id (40 hex digits, as `CLUSTER NODES` shows it).
    pub fn node_id(&self, i: usize) -> &str {
        self.node(i);
        &self.ids[i]
    }

    /// The temporary directory of node `i` (holding `redis.log` and `nodes.conf`).
    pub fn dir(&self, i: usize) -> &Path {
        self.node(i).dir()
    }

    /// The contents of node `i`'s log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        read_log(self.node(i).dir())
    }

    /// `redis://127.0.0.1:P` for node `i` alone (a plain connection to that one server).
    pub fn node_url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.port(i))
    }

    /// `127.0.0.1:P` of each node started as a primary, in index order.
    pub fn seeds(&self) -> Vec<String> {
        (0..self.primaries)
            .map(|i| format!("127.0.0.1:{}", self.port(i)))
            .collect()
    }

    /// The whole cluster as one Redlock node: `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`
    /// with every node started as a primary as a seed.
    pub fn cluster_url(&self) -> String {
        format!("redis+cluster://{}", self.seeds().join(","))
    }

    /// Whether node `i` is running (not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.node(i).is_running()
    }

    /// Sends one command to node `i` over a fresh connection, with `timeout` for connecting,
    /// writing and reading; a killed node gives `ConnectionRefused`.
    pub fn try_cmd<A: AsRef<[u8]>>(
        &self,
        i: usize,
        args: &[A],
        timeout: Duration,
    ) -> io::Result<Reply> {
        request(self.addr(i), args, timeout)
    }

    /// Sends one command to node `i` and returns its reply (which may be [`Reply::Error`],
    /// such as `MOVED`: no redirect is followed; see [`RedisCluster::cmd_routed`]).
    ///
    /// # Panics
    ///
    /// On an I/O error or a timeout ([`CMD_TIMEOUT`]).
    pub fn cmd<A: AsRef<[u8]>>(&self, i: usize, args: &[A]) -> Reply {
        self.try_cmd(i, args, CMD_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "cluster node {i} (port {}): command {} failed: {e}",
                self.port(i),
                show_args(args)
            )
        })
    }

    /// The slot of `key`, as the servers compute it (`CLUSTER KEYSLOT`).
    ///
    /// # Panics
    ///
    /// If no node answers with a slot.
    pub fn slot_of(&self, key: &str) -> u16 {
        let i = self.any_live();
        match self.cmd(i, &["CLUSTER", "KEYSLOT", key]) {
            Reply::Int(n) => u16::try_from(n)
                .unwrap_or_else(|_| panic!("cluster node {i}: CLUSTER KEYSLOT gave {n}")),
            other => panic!("cluster node {i}: CLUSTER KEYSLOT {key:?} answered {other:?}"),
        }
    }

    /// The index of the node that owns `slot`, by `CLUSTER SLOTS` of a running node (during a
    /// migration that is still the source, until [`RedisCluster::finish_migration`]).
    ///
    /// # Panics
    ///
    /// If `slot` is not below [`SLOTS`], the map cannot be read, or it names no owner.
    pub fn primary_of_slot(&self, slot: u16) -> usize {
        let i = self.any_live();
        let map = self
            .slot_map(i)
            .unwrap_or_else(|e| panic!("cluster node {i}: {e}"));
        owner(&map, slot)
            .unwrap_or_else(|| panic!("cluster node {i}: no owner for slot {slot} in {map:?}"))
    }

    /// The nodes that are primaries now (running, not marked failed), in index order, by
    /// `CLUSTER NODES` of a running node.
    pub fn primaries(&self) -> Vec<usize> {
        self.view_of_live()
            .into_iter()
            .filter(|l| l.has("master") && !l.has("fail"))
            .filter_map(|l| self.index_of_id(&l.id))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The nodes that are replicas of node `i` now (not marked failed), in index order, by
    /// `CLUSTER NODES` of a running node.
    pub fn replicas_of(&self, i: usize) -> Vec<usize> {
        let id = self.node_id(i).to_string();
        self.view_of_live()
            .into_iter()
            .filter(|l| l.has("slave") && !l.has("fail") && l.master.as_deref() == Some(&id))
            .filter_map(|l| self.index_of_id(&l.id))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Whether node `i` says it is a primary (`ROLE` answers `master`); false for a killed node.
    pub fn is_primary(&self, i: usize) -> bool {
        match self.try_cmd(i, &["ROLE"], CMD_TIMEOUT) {
            Ok(Reply::Array(items)) => {
                matches!(items.first(), Some(Reply::Bulk(b)) if &b[..] == b"master")
            }
            _ => false,
        }
    }

    /// Sends a command about `key` to the primary that owns its slot, following `MOVED` (to the
    /// node named) and `ASK` (`ASKING`, then the command, on the node named) up to 5 times, and
    /// returns the last reply.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::cmd`], or if a redirect names an address it cannot read.
    pub fn cmd_routed<A: AsRef<[u8]>>(&self, key: &str, args: &[A]) -> Reply {
        let mut port = self.port(self.primary_of_slot(self.slot_of(key)));
        let mut asking = false;
        for _ in 0..=MAX_REDIRECTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let reply = Conn::open_addr(addr, CMD_TIMEOUT)
                .and_then(|mut conn| {
                    if asking {
                        let cmds: [Vec<&[u8]>; 2] = [
                            vec![b"ASKING".as_slice()],
                            args.iter().map(AsRef::as_ref).collect(),
                        ];
                        Ok(conn.pipeline(&cmds)?.pop().unwrap_or(Reply::Nil))
                    } else {
                        conn.call(args)
                    }
                })
                .unwrap_or_else(|e| panic!("port {port}: command {} failed: {e}", show_args(args)));
            let Reply::Error(e) = &reply else {
                return reply;
            };
            let Some(redirect) = Redirect::parse(e, "127.0.0.1") else {
                if e.starts_with("MOVED ") || e.starts_with("ASK ") {
                    panic!("port {port}: unreadable redirect {e:?}");
                }
                return reply;
            };
            asking = redirect.kind == RedirectKind::Ask;
            // Only the port is taken: every node here is on loopback.
            port = redirect.endpoint.port();
        }
        panic!(
            "command {} still redirected after {MAX_REDIRECTS} hops",
            show_args(args)
        )
    }

    /// `GET key` on the node that owns its slot (redirects followed), as UTF-8 (lossily).
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::cmd_routed`], or if the reply is neither a bulk string nor nil.
    pub fn get_routed(&self, key: &str) -> Option<String> {
        match self.cmd_routed(key, &["GET", key]) {
            Reply::Nil => None,
            Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            other => panic!("GET {key:?} answered {other:?}"),
        }
    }

    /// Whether `key` exists on the node that owns its slot (redirects followed).
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::cmd_routed`], or if the reply is not an integer.
    pub fn exists_routed(&self, key: &str) -> bool {
        match self.cmd_routed(key, &["EXISTS", key]) {
            Reply::Int(n) => n > 0,
            other => panic!("EXISTS {key:?} answered {other:?}"),
        }
    }

    /// Moves `slot`, with its keys, to primary `to`: [`RedisCluster::begin_migration`],
    /// [`RedisCluster::move_keys`], [`RedisCluster::finish_migration`].
    ///
    /// # Panics
    ///
    /// As those steps.
    pub fn migrate_slot(&self, slot: u16, to: usize) {
        self.begin_migration(slot, to);
        self.move_keys(slot);
        self.finish_migration(slot);
    }

    /// Starts moving `slot` from its owner to primary `to`: `CLUSTER SETSLOT slot IMPORTING
    /// <owner>` on `to`, then `CLUSTER SETSLOT slot MIGRATING <to>` on the owner. From then on
    /// the owner answers `ASK` for keys of the slot it does not hold, and `to` serves them after
    /// `ASKING`.
    ///
    /// # Panics
    ///
    /// If `to` already owns the slot or is not a primary, the slot is already migrating, or a
    /// node refuses.
    pub fn begin_migration(&self, slot: u16, to: usize) {
        let from = self.primary_of_slot(slot);
        assert_ne!(from, to, "slot {slot} is already on node {to}");
        assert!(self.is_primary(to), "node {to} is not a primary");
        let mut migrations = self.migrations();
        assert!(
            !migrations.contains_key(&slot),
            "slot {slot} is already migrating"
        );
        let slot_arg = slot.to_string();
        self.expect_ok(
            to,
            &[
                "CLUSTER",
                "SETSLOT",
                &slot_arg,
                "IMPORTING",
                &self.ids[from],
            ],
        );
        self.expect_ok(
            from,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &self.ids[to]],
        );
        migrations.insert(slot, Migration { from, to });
    }

    /// Moves every key of `slot` from the source to the target of its migration
    /// (`CLUSTER GETKEYSINSLOT`, then `MIGRATE 127.0.0.1 port "" 0 5000 KEYS …` in batches of
    /// 100) and returns how many keys it moved. The slot still belongs to the source.
    ///
    /// # Panics
    ///
    /// If `slot` is not migrating ([`RedisCluster::begin_migration`]), a node refuses, or keys
    /// are still left after [`FORM_TIMEOUT`].
    pub fn move_keys(&self, slot: u16) -> usize {
        let Migration { from, to } = self.migration(slot);
        let deadline = Instant::now() + FORM_TIMEOUT;
        let slot_arg = slot.to_string();
        let batch = MIGRATE_BATCH.to_string();
        let port = self.port(to).to_string();
        let mut moved = 0;
        loop {
            let keys = match self.cmd(from, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, &batch]) {
                Reply::Array(keys) => keys,
                other => panic!("cluster node {from}: CLUSTER GETKEYSINSLOT answered {other:?}"),
            };
            if keys.is_empty() {
                return moved;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot}: keys still on node {from} after {FORM_TIMEOUT:?}"
            );
            let mut args: Vec<Vec<u8>> = ["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"]
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect();
            for key in &keys {
                match key {
                    Reply::Bulk(k) => args.push(k.to_vec()),
                    other => panic!("cluster node {from}: GETKEYSINSLOT gave a key {other:?}"),
                }
            }
            match self.cmd(from, &args) {
                // NOKEY: the keys expired meanwhile.
                Reply::Status(s) if &s[..] == b"OK" || &s[..] == b"NOKEY" => {}
                other => panic!("cluster node {from}: MIGRATE to node {to} answered {other:?}"),
            }
            moved += keys.len();
        }
    }

    /// Ends the migration of `slot`: moves any keys left on the source
    /// ([`RedisCluster::move_keys`]), then `CLUSTER SETSLOT slot NODE <target>` on the target,
    /// the source and every other running primary, and waits (up to [`FORM_TIMEOUT`]) until
    /// every running node's `CLUSTER SLOTS` names the target.
    ///
    /// # Panics
    ///
    /// If `slot` is not migrating, a node refuses, or the nodes do not agree in time.
    pub fn finish_migration(&self, slot: u16) {
        let Migration { from, to } = self.migration(slot);
        self.move_keys(slot);
        let slot_arg = slot.to_string();
        let setslot = ["CLUSTER", "SETSLOT", &slot_arg, "NODE", &self.ids[to]];
        // The target first: it bumps its epoch, so its claim wins wherever gossip meets it.
        self.expect_ok(to, &setslot);
        self.expect_ok(from, &setslot);
        for p in self.primaries() {
            if p != to && p != from && self.is_running(p) {
                self.expect_ok(p, &setslot);
            }
        }
        self.migrations().remove(&slot);
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let lagging: Vec<usize> = self
                .live()
                .filter(|&i| self.slot_map(i).ok().and_then(|m| owner(&m, slot)) != Some(to))
                .collect();
            if lagging.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot} moved to node {to}, but nodes {lagging:?} do not say so after \
                 {FORM_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills node `i` with SIGKILL (by its pid: a crash, no shutdown) and waits for it to exit.
    /// Does nothing if it is already dead. A killed primary's replica takes over after about
    /// twice [`NODE_TIMEOUT`] (see [`RedisCluster::wait_promoted`]).
    pub fn kill(&self, i: usize) {
        self.node(i).kill();
    }

    /// Waits up to `within` until node `replica` says it is a primary and the cluster is ok
    /// again ([`RedisCluster::wait_ok`]'s conditions); returns whether that happened.
    pub fn wait_promoted(&self, replica: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.is_primary(replica) && self.check_ok().is_ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes node `replica` take over its primary's slots at once, without the other
    /// primaries' agreement (`CLUSTER FAILOVER TAKEOVER`); it works whether the primary is alive
    /// or dead. Returns when the replica accepted; [`RedisCluster::wait_promoted`] waits for
    /// the result.
    ///
    /// # Panics
    ///
    /// If the node is not a replica or refuses.
    pub fn failover_takeover(&self, replica: usize) {
        self.expect_ok(replica, &["CLUSTER", "FAILOVER", "TAKEOVER"]);
    }

    /// Waits up to `within` until every running node reports `cluster_state:ok` and gives the
    /// same `CLUSTER SLOTS` map, covering all [`SLOTS`] with running primaries; returns whether
    /// that happened.
    pub fn wait_ok(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.check_ok().is_ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    // --- forming ---

    /// Assigns slots, introduces the nodes, attaches the replicas, and waits until formed.
    fn form(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        for i in 0..self.nodes.len() {
            let id = match self.try_cmd(i, &["CLUSTER", "MYID"], CMD_TIMEOUT) {
                Ok(Reply::Bulk(id)) => String::from_utf8_lossy(&id).into_owned(),
                other => return Err(format!("node {i}: CLUSTER MYID answered {other:?}")),
            };
            self.ids.push(id);
        }
        let p = self.primaries;
        for i in 0..p {
            let (first, last) = slot_range(i, p);
            self.try_ok(
                i,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            )?;
        }
        for i in 1..self.nodes.len() {
            let bus = self.bus_port(i)?;
            let port = self.port(i).to_string();
            self.try_ok(0, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus])?;
        }
        // A replica can only attach to a primary it knows.
        self.until(deadline, || self.check_met())?;
        for r in p..self.nodes.len() {
            let primary = (r - p) / self.replicas_per_primary;
            let id = self.ids[primary].clone();
            self.until(deadline, || self.try_ok(r, &["CLUSTER", "REPLICATE", &id]))?;
        }
        self.until(deadline, || self.check_formed())
    }

    /// Retries `check` every 20 ms until it passes or `deadline`; then its last reason.
    fn until(
        &self,
        deadline: Instant,
        mut check: impl FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            match check() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("not done within {FORM_TIMEOUT:?}: {e}"))
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Every node knows every node, none still in the handshake.
    fn check_met(&self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let view = self.view(i)?;
            let known = view
                .iter()
                .filter(|l| !l.has("handshake") && !l.has("noaddr"))
                .count();
            if known != self.nodes.len() {
                return Err(format!(
                    "node {i} knows {known} of {} nodes",
                    self.nodes.len()
                ));
            }
        }
        Ok(())
    }

    /// [`RedisCluster::check_ok`], and every node sees every replica under its primary, every
    /// replica's link is up and every primary counts its replicas (so `WAIT` does).
    fn check_formed(&self) -> Result<(), String> {
        self.check_ok()?;
        let p = self.primaries;
        for i in 0..self.nodes.len() {
            let view = self.view(i)?;
            for r in p..self.nodes.len() {
                let primary = &self.ids[(r - p) / self.replicas_per_primary];
                let attached = view.iter().any(|l| {
                    l.id == self.ids[r] && l.has("slave") && l.master.as_ref() == Some(primary)
                });
                if !attached {
                    return Err(format!("node {i} does not see node {r} as a replica yet"));
                }
            }
        }
        for r in p..self.nodes.len() {
            if !self
                .info(r, "replication")?
                .contains("master_link_status:up")
            {
                return Err(format!("node {r}'s replication link is not up"));
            }
        }
        if self.replicas_per_primary > 0 {
            let want = format!("connected_slaves:{}\r\n", self.replicas_per_primary);
            for i in 0..p {
                if !self.info(i, "replication")?.contains(&want) {
                    return Err(format!("node {i} does not count its replicas yet"));
                }
            }
        }
        Ok(())
    }

    /// Every running node says `cluster_state:ok` and gives the same full slot map, whose
    /// owners all run.
    fn check_ok(&self) -> Result<(), String> {
        let mut agreed: Option<(usize, SlotMap)> = None;
        for i in self.live() {
            if !self.cluster_info(i)?.contains("cluster_state:ok") {
                return Err(format!("node {i}: cluster_state is not ok"));
            }
            let map = self.slot_map(i)?;
            let mut next = 0u32;
            for &(first, last, owner) in &map {
                if u32::from(first) != next {
                    return Err(format!("node {i}: slot {next} has no owner"));
                }
                if !self.is_running(owner) {
                    return Err(format!(
                        "node {i}: slots {first}-{last} are on dead node {owner}"
                    ));
                }
                next = u32::from(last) + 1;
            }
            if next != u32::from(SLOTS) {
                return Err(format!("node {i}: slot {next} has no owner"));
            }
            match &agreed {
                Some((j, other)) if *other != map => {
                    return Err(format!("nodes {j} and {i} disagree on the slot map"))
                }
                Some(_) => {}
                None => agreed = Some((i, map)),
            }
        }
        Ok(())
    }

    // --- reading the servers ---

    /// Node `i`'s `CLUSTER SLOTS`, as sorted ranges with their primary's node index.
    fn slot_map(&self, i: usize) -> Result<SlotMap, String> {
        let reply = self
            .try_cmd(i, &["CLUSTER", "SLOTS"], CMD_TIMEOUT)
            .map_err(|e| format!("node {i}: CLUSTER SLOTS failed: {e}"))?;
        let bad = |what: &Reply| format!("node {i}: CLUSTER SLOTS gave {what:?}");
        let Reply::Array(ranges) = &reply else {
            return Err(bad(&reply));
        };
        let mut map = SlotMap::with_capacity(ranges.len());
        for range in ranges {
            let Reply::Array(parts) = range else {
                return Err(bad(range));
            };
            let (first, last, port) = match parts.as_slice() {
                [Reply::Int(first), Reply::Int(last), Reply::Array(primary), ..] => {
                    match primary.get(1) {
                        Some(Reply::Int(port)) => (*first, *last, *port),
                        _ => return Err(bad(range)),
                    }
                }
                _ => return Err(bad(range)),
            };
            let (Ok(first), Ok(last)) = (u16::try_from(first), u16::try_from(last)) else {
                return Err(bad(range));
            };
            let owner = self
                .nodes
                .iter()
                .position(|n| i64::from(n.port()) == port)
                .ok_or_else(|| format!("node {i}: slots {first}-{last} on unknown port {port}"))?;
            map.push((first, last, owner));
        }
        map.sort_unstable();
        Ok(map)
    }

    /// Node `i`'s `CLUSTER NODES`.
    fn view(&self, i: usize) -> Result<Vec<NodeLine>, String> {
        let text = match self.try_cmd(i, &["CLUSTER", "NODES"], CMD_TIMEOUT) {
            Ok(Reply::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(format!("node {i}: CLUSTER NODES answered {other:?}")),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| parse_node_line(line).ok_or_else(|| format!("node {i}: {line:?}")))
            .collect()
    }

    /// `CLUSTER NODES` of the first running node that answers it.
    fn view_of_live(&self) -> Vec<NodeLine> {
        let mut last = String::from("no node is running");
        for i in self.live() {
            match self.view(i) {
                Ok(view) => return view,
                Err(e) => last = e,
            }
        }
        panic!("cannot read CLUSTER NODES: {last}")
    }

    fn cluster_info(&self, i: usize) -> Result<String, String> {
        match self.try_cmd(i, &["CLUSTER", "INFO"], CMD_TIMEOUT) {
            Ok(Reply::Bulk(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => Err(format!("node {i}: CLUSTER INFO answered {other:?}")),
        }
    }

    fn info(&self, i: usize, section: &str) -> Result<String, String> {
        match self.try_cmd(i, &["INFO", section], CMD_TIMEOUT) {
            Ok(Reply::Bulk(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => Err(format!("node {i}: INFO {section} answered {other:?}")),
        }
    }

    /// Node `i`'s cluster bus port, as it reports it.
    fn bus_port(&self, i: usize) -> Result<String, String> {
        match self.try_cmd(i, &["CONFIG", "GET", "cluster-port"], CMD_TIMEOUT) {
            Ok(Reply::Array(kv)) => match kv.get(1) {
                Some(Reply::Bulk(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
                other => Err(format!("node {i}: CONFIG GET cluster-port gave {other:?}")),
            },
            other => Err(format!(
                "node {i}: CONFIG GET cluster-port answered {other:?}"
            )),
        }
    }

    fn try_ok<A: AsRef<[u8]>>(&self, i: usize, args: &[A]) -> Result<(), String> {
        match self.try_cmd(i, args, CMD_TIMEOUT) {
            Ok(Reply::Status(s)) if &s[..] == b"OK" => Ok(()),
            other => Err(format!("node {i}: {} answered {other:?}", show_args(args))),
        }
    }

    fn expect_ok<A: AsRef<[u8]>>(&self, i: usize, args: &[A]) {
        if let Err(e) = self.try_ok(i, args) {
            panic!("cluster {e}");
        }
    }

    // --- bookkeeping ---

    fn node(&self, i: usize) -> &Node {
        self.nodes.get(i).unwrap_or_else(|| {
            panic!(
                "no cluster node {i}: the cluster has {} nodes",
                self.nodes.len()
            )
        })
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.is_running(i))
    }

    fn any_live(&self) -> usize {
        self.live()
            .next()
            .unwrap_or_else(|| panic!("no cluster node is running"))
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    fn migrations(&self) -> MutexGuard<'_, HashMap<u16, Migration>> {
        self.migrations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn migration(&self, slot: u16) -> Migration {
        self.migrations()
            .get(&slot)
            .copied()
            .unwrap_or_else(|| panic!("slot {slot} is not migrating (begin_migration first)"))
    }

    /// The last lines of every node's log, for a start failure.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = read_log(node.dir());
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!(
                "--- node {i} (port {}) log tail:\n{}\n",
                node.port(),
                tail.join("\n")
            ));
        }
        out
    }
}

/// The cluster arguments of a node in `dir`, with a fresh cluster bus port.
fn cluster_args(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut config = OsString::from(dir.as_os_str());
    config.push("/nodes.conf");
    let mut args: Vec<OsString> = vec!["--cluster-enabled".into(), "yes".into()];
    args.extend(["--cluster-config-file".into(), config]);
    args.extend([
        "--cluster-port".into(),
        free_port()?.to_string().into(),
        "--cluster-node-timeout".into(),
        NODE_TIMEOUT.as_millis().to_string().into(),
        // A replica whose primary died may always take over (the tests kill primaries on
        // purpose), and a replica gets its first sync at once instead of after 5 s.
        "--cluster-replica-validity-factor".into(),
        "0".into(),
        "--repl-diskless-sync-delay".into(),
        "0".into(),
    ]);
    Ok(args)
}

/// The slots primary `i` of `n` gets: an even share, the remainder spread over the first ones.
fn slot_range(i: usize, n: usize) -> (u16, u16) {
    let slots = usize::from(SLOTS);
    let start = |k: usize| k * slots / n;
    // Both fit in u16: start(k) < SLOTS for k < n.
    (start(i) as u16, (start(i + 1) - 1) as u16)
}

/// The node index owning `slot` in `map`.
fn owner(map: &SlotMap, slot: u16) -> Option<usize> {
    map.iter()
        .find(|&&(first, last, _)| (first..=last).contains(&slot))
        .map(|&(_, _, owner)| owner)
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master|-> …`
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let mut fields = line.split_whitespace();
    let id = fields.next()?.to_string();
    let addr = fields.next()?;
    // `ip:port@cport[,hostname]`: checked, not kept (nodes are told apart by id).
    addr.split('@')
        .next()?
        .rsplit_once(':')?
        .1
        .parse::<u16>()
        .ok()?;
    let flags = fields.next()?.split(',').map(str::to_string).collect();
    let master = match fields.next()? {
        "-" => None,
        m => Some(m.to_string()),
    };
    Some(NodeLine { id, flags, master })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ranges_cover_every_slot_once() {
        for n in [1, 2, 3, 5, 7, 16384] {
            let mut next = 0u32;
            for i in 0..n {
                let (first, last) = slot_range(i, n);
                assert_eq!(u32::from(first), next, "n={n} i={i}");
                assert!(first <= last);
                next = u32::from(last) + 1;
            }
            assert_eq!(next, u32::from(SLOTS), "n={n}");
        }
        assert_eq!(slot_range(0, 3), (0, 5460));
        assert_eq!(slot_range(2, 3), (10922, 16383));
    }

    #[test]
    fn reads_cluster_nodes_lines() {
        let l = parse_node_line(
            "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host slave \
             e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected",
        )
        .expect("parsed");
        assert!(l.has("slave") && !l.has("master"));
        assert_eq!(
            l.master.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        let m = parse_node_line("abc 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460")
            .expect("parsed");
        assert!(m.has("myself") && m.has("master"));
        assert_eq!(m.master, None);
        assert!(parse_node_line("abc").is_none());
    }
}
