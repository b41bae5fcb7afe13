//! The engine: every lock operation, multiplexed over one connection per node.

use crate::acquire_options::{AcquireOptions, Retry};
use crate::cluster::{group_by_slot, Cluster, MAX_HOPS, MAX_PENDING, MAX_SHARDS};
use crate::config::{Config, Options};
use crate::conn::{Broken, Conn, Lost};
use crate::endpoint::Endpoint;
use crate::error::{Attempt, ConnError, Error, Failure, NodeReport, OpError, Outcome};
use crate::event::{Event, Released};
use crate::handshake;
use crate::ids::{LinkId, NodeId, OpId};
use crate::key::{fence_key, redis_key, release_channel};
use crate::limits::MAX_DURATION;
use crate::link::{Link, Role};
use crate::lock::Lock;
use crate::op::{classify, Kind, Op, Parts, Phase, Stage, Tally, Wall};
use crate::redirect::{Redirect, RedirectKind};
use crate::request::{Answer, Asked, Call, Form, Layout, Native, Reading};
use crate::resp::Protocol;
use crate::resp::Reply;
use crate::rng::Rng;
use crate::script::{ScriptKind, ScriptSet};
use crate::slot_map::SlotMap;
use crate::token::Token;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The sans-IO Redlock engine.
///
/// Inputs are the `handle_*` calls and the operations (`acquire`, `extend`, `release`,
/// `cancel`); outputs are [`poll_transmit`](Engine::poll_transmit) (bytes to write),
/// [`poll_event`](Engine::poll_event) (results and reconnect requests) and
/// [`poll_timeout`](Engine::poll_timeout) (when to call [`handle_timeout`](Engine::handle_timeout)).
/// After any input, drain all three. Time only ever comes in as `now`; an earlier `now` than
/// one already seen is treated as the latest one seen.
///
#[doc = include_str!("../doc/engine.md")]
#[derive(Debug)]
pub struct Engine {
    options: Options,
    quorum: usize,
    addrs: Vec<Arc<str>>,
    handshakes: Vec<Vec<Vec<Bytes>>>,
    /// Every connection: the nodes' own first (link `i` is node `i`'s), then those asked for
    /// with `Event::Open`.
    links: Vec<Link>,
    /// Per node, its subscriber link (RESP2 nodes whose waiters subscribe).
    subscribers: Vec<Option<LinkId>>,
    /// Per node, what the engine knows of it as a Redis Cluster (`None`: a standalone node).
    clusters: Vec<Option<Cluster>>,
    scripts: ScriptSet,
    /// Boxed: an `Op` is a few hundred bytes, and the map shifts its neighbours on every
    /// insert and remove.
    ops: BTreeMap<OpId, Box<Op>>,
    events: VecDeque<Event>,
    rng: Rng,
    next_op: u64,
    now: Instant,
    transmit_cursor: usize,
    /// Single-key acquires may go out as `SET NX PX`: the user kept the built-in acquire script.
    plain_set: bool,
    /// Per node, why it last failed (a broken connection, a refused handshake, what the adapter
    /// said of a failed connect); cleared when its handshake succeeds.
    causes: Vec<Option<Arc<str>>>,
}

/// How an operation retries, and the instant it must be over by.
#[derive(Debug, Clone, Copy)]
struct Limits {
    retry: Retry,
    deadline: Option<Instant>,
}

/// The most missed releases kept per node; past it the oldest go (their keys expire on their
/// own, at worst a ttl later).
const MAX_MISSED: usize = 4096;

impl Engine {
    /// A new engine with every node disconnected. `jitter_seed` seeds the retry-jitter PRNG
    /// (same seed and inputs, same outputs).
    ///
    /// Returns [`Error::NoNodes`] or [`Error::InvalidOption`] for a bad configuration.
    pub fn new(config: Config, now: Instant, jitter_seed: u64) -> Result<Engine, Error> {
        config.validate()?;
        let Config { nodes, options } = config;
        let n = nodes.len();
        let plain_set = !options.scripts.overrides_acquire();
        let addrs = nodes.iter().map(|n| Arc::from(n.to_string())).collect();
        let scripts = ScriptSet::new(&options.scripts);
        let handshakes = nodes
            .iter()
            .map(|n| handshake::commands(n, &options))
            .collect();
        let links = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let conn = Conn::new(
                    n.protocol.unwrap_or(options.protocol),
                    options.max_reply_bytes,
                    options.node_timeout,
                );
                let role = if n.cluster { Role::Seed } else { Role::Main };
                Link::new(conn, NodeId::new(i), role, Arc::from(n.host.as_str()))
            })
            .collect();
        Ok(Engine {
            quorum: nodes.len() / 2 + 1,
            scripts,
            options,
            addrs,
            handshakes,
            links,
            subscribers: vec![None; n],
            clusters: nodes
                .iter()
                .map(|n| n.cluster.then(Cluster::default))
                .collect(),
            ops: BTreeMap::new(),
            events: VecDeque::new(),
            rng: Rng::new(jitter_seed),
            next_op: 1,
            now,
            transmit_cursor: 0,
            causes: vec![None; n],
            plain_set,
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.addrs.len()
    }

    /// Votes needed: `nodes / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// A node's `host:port`, or `None` for an unknown id.
    pub fn node_addr(&self, node: NodeId) -> Option<&str> {
        self.addrs.get(node.index()).map(|a| &**a)
    }

    /// Whether the engine currently sends requests on `link` (a node's own connection: pass
    /// its [`NodeId`]), between `handle_connected` and a disconnect or [`Event::Reconnect`].
    pub fn is_connected(&self, link: impl Into<LinkId>) -> bool {
        let link = link.into();
        self.links.get(link.index()).is_some_and(|l| l.conn.is_up())
    }

    /// Whether `link`'s handshake (a node's own connection: pass its [`NodeId`]) has succeeded
    /// on its current socket (lock requests then go out at once; before, they wait for it).
    pub fn is_ready(&self, link: impl Into<LinkId>) -> bool {
        let link = link.into();
        self.links
            .get(link.index())
            .is_some_and(|l| l.conn.is_ready())
    }

    /// How many requests are made and not answered yet, on every link: sent and awaiting their
    /// reply (handshakes included), held until a link is ready, or (a cluster node) waiting for
    /// the slot map. Each is answered, times out ([`Options::node_timeout`]) or is given up with
    /// its connection, so with no new operations this reaches 0. Releases kept for a node that is
    /// down (sent when it is back) are not counted.
    ///
    /// An operation can finish while some of its requests are still out (a release returns
    /// once a majority confirmed): an adapter that is about to close its sockets waits for 0
    /// first, so the last nodes still get their deletes.
    pub fn unanswered(&self) -> usize {
        let links: usize = self.links.iter().map(|l| l.conn.unanswered()).sum();
        let waiting: usize = self
            .clusters
            .iter()
            .flatten()
            .map(|c| c.pending.len())
            .sum();
        links + waiting
    }

    /// How many operations are in flight.
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    fn clock(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    /// Caller misuse, like an index out of bounds: ids come from this engine (its
    /// configuration, or an `Event::Open`).
    fn check_link(&self, link: LinkId) {
        assert!(
            link.index() < self.links.len(),
            "{link} is not one of this engine's {} links",
            self.links.len()
        );
    }

    /// The node a link serves.
    fn node_of(&self, link: LinkId) -> NodeId {
        self.links[link.index()].node
    }

    // ----- inputs -------------------------------------------------------------------------

    /// A socket for `link` (a node's own connection: pass its [`NodeId`]; or one asked for with
    /// [`Event::Open`]) is open: the engine queues the handshake; lock requests go out once it
    /// has succeeded ([`Event::Ready`]). Anything pending on a previous socket of that link
    /// fails as disconnected.
    ///
    /// # Panics
    ///
    /// When `link` is not one of this engine's links.
    pub fn handle_connected(&mut self, now: Instant, link: impl Into<LinkId>) {
        let link = link.into();
        self.check_link(link);
        let now = self.clock(now);
        let l = &mut self.links[link.index()];
        let lock_requests = l.role.carries_locks();
        let voting = self.options.restart_grace.is_some() && lock_requests;
        l.voter.reconnected();
        let info = self.options.native_commands && lock_requests;
        let slots = l.role == Role::Seed;
        let handshake = &self.handshakes[l.node.index()];
        let lost = l.conn.connect(now, handshake, info, voting, slots);
        if slots {
            // The handshake asks for the slot map.
            if let Some(cluster) = &mut self.clusters[l.node.index()] {
                cluster.refreshing = true;
            }
        }
        self.fail_tags(now, link, lost, &Outcome::Disconnected);
        // A node with nothing to negotiate is ready at once.
        if self.links[link.index()].conn.take_became_ready() {
            self.on_ready(now, link);
        }
        self.settle(now);
    }

    /// Bytes read from `link`'s socket. Complete replies are matched to their requests; bad
    /// bytes break the connection ([`Event::Reconnect`]), never panic.
    ///
    /// # Panics
    ///
    /// When `link` is not one of this engine's links. Never because of what `bytes` hold.
    pub fn handle_input(&mut self, now: Instant, link: impl Into<LinkId>, bytes: &[u8]) {
        let link = link.into();
        self.check_link(link);
        let now = self.clock(now);
        self.links[link.index()].conn.feed(bytes);
        // One reply at a time: the engine reacts to each (new requests, cleanups) before the
        // next is matched, whatever the read boundaries were.
        while let Some(next) = self.links[link.index()].conn.next(now) {
            match next {
                Ok(answer) => {
                    self.on_answer(now, link, answer);
                    if self.links[link.index()].conn.take_became_ready() {
                        self.on_ready(now, link);
                    }
                }
                Err(Broken { asked, reason }) => {
                    // The request the bad reply belonged to fails with the reason itself.
                    if let Some(Asked::Vote { op, round, .. }) = asked {
                        let node = self.node_of(link);
                        self.vote(now, op, round, node, Outcome::Broken(reason.clone()));
                    }
                    self.poison(now, link, reason);
                    break;
                }
            }
        }
        self.settle(now);
    }

    /// A connection attempt to `node` failed before a socket was open (refused, unknown host,
    /// timed out). Nothing changes but the cause reported for the node in the attempts that
    /// follow ([`NodeReport::cause`](crate::NodeReport::cause)), so an operator reads
    /// `127.0.0.1:7003 not connected (connection refused)` rather than a bare "not connected".
    ///
    /// # Panics
    ///
    /// When `link` is not one of this engine's links.
    pub fn handle_connect_failed(&mut self, now: Instant, link: impl Into<LinkId>, cause: &str) {
        let link = link.into();
        self.check_link(link);
        let now = self.clock(now);
        let l = &mut self.links[link.index()];
        if l.speaks_for_node() {
            self.causes[l.node.index()] = Some(Arc::from(cause));
        }
        // Requests held for a shard link's first connect will not go out on it.
        let lost = l.conn.give_up_opening();
        self.fail_tags(now, link, lost, &Outcome::NotReady);
        self.after_link_down(now, link);
        self.settle(now);
    }

    /// `link`'s socket closed or failed. Its pending requests fail as disconnected; the adapter
    /// reconnects on its own schedule and calls [`handle_connected`](Engine::handle_connected).
    ///
    /// # Panics
    ///
    /// When `link` is not one of this engine's links.
    pub fn handle_disconnected(&mut self, now: Instant, link: impl Into<LinkId>) {
        let link = link.into();
        self.check_link(link);
        let now = self.clock(now);
        let lost = self.links[link.index()].conn.shut();
        self.fail_tags(now, link, lost, &Outcome::Disconnected);
        self.after_link_down(now, link);
        self.settle(now);
    }

    /// Time has reached (or passed) [`poll_timeout`](Engine::poll_timeout): expire requests,
    /// give up on attempts that can no longer succeed, start retries that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        for i in 0..self.links.len() {
            if self.links[i].conn.expired(now) {
                let after = self.links[i].conn.timeout();
                self.poison(now, LinkId::new(i), ConnError::Timeout(after));
            }
        }
        let due: Vec<(OpId, Phase, bool)> = self
            .ops
            .iter()
            .filter(|(_, op)| op.wakes_at().is_some_and(|at| now >= at))
            .map(|(id, op)| (*id, op.phase, op.out_of_time(now)))
            .collect();
        for (id, phase, out_of_time) in due {
            match phase {
                // The caller's bound cut the vote short: the nodes still silent were not
                // waited for, which says nothing against them.
                Phase::Voting { .. } if out_of_time => {
                    self.end_attempt(now, id, Outcome::NotAwaited, false)
                }
                Phase::Voting { .. } => self.end_attempt(now, id, Outcome::Timeout, false),
                Phase::Waiting { .. } => self.start_attempt(now, id),
            }
        }
        self.settle(now);
    }

    /// A release of Redis key `key` was announced (e.g. by an adapter's own subscriber
    /// connection; announcements pushed on RESP3 lock connections are handled by
    /// [`handle_input`](Engine::handle_input) already). One waiting acquire of `key` tries again
    /// now, not after its retry delay; if an attempt on `key` is in flight, it instead tries
    /// again as soon as it fails. Only one: the others of this client would be refused by the
    /// winner (no thundering herd). Nothing happens when no acquire waits for `key`.
    pub fn handle_released(&mut self, now: Instant, key: &[u8]) {
        let now = self.clock(now);
        self.on_release(now, None, &release_channel(key));
        self.settle(now);
    }

    /// A release was announced on `channel` (by `node`'s push, or from outside when `None`).
    ///
    /// An attempt on the key still waiting for `node`'s answer will see the release there:
    /// nothing to do (the same release announced by every node wakes one waiter, not one per
    /// node). An attempt `node` already answered (refused) was judged before the release: it
    /// retries at once when it fails. Otherwise the oldest waiting acquire of the key starts
    /// its next attempt now.
    fn on_release(&mut self, now: Instant, node: Option<NodeId>, channel: &Bytes) {
        let mut in_flight = None;
        let mut waiting = None;
        for (id, op) in &self.ops {
            if !op.channels.contains(channel) {
                continue;
            }
            match op.phase {
                Phase::Voting { .. } => {
                    let unheard =
                        node.is_some_and(|n| op.votes.get(n.index()).is_some_and(Option::is_none));
                    if unheard {
                        return;
                    }
                    in_flight.get_or_insert(*id);
                }
                // Ids grow: the first found is the oldest.
                Phase::Waiting { .. } => {
                    waiting.get_or_insert(*id);
                }
            }
        }
        if let Some(id) = in_flight {
            if let Some(op) = self.ops.get_mut(&id) {
                op.rewake = true;
            }
        } else if let Some(id) = waiting {
            self.start_attempt(now, id);
        }
    }

    /// Brings every node's release-channel subscriptions to the channels of the acquires that
    /// wait (see [`Options::wait_for_release`]): on the node's own connection when it speaks
    /// RESP3 (pushes share it), else on a subscriber link, opened the first time one is wanted.
    fn settle(&mut self, now: Instant) {
        if !self.options.wait_for_release {
            return;
        }
        let wanted: BTreeSet<Bytes> = self
            .ops
            .values()
            .filter(|op| op.watching)
            .flat_map(|op| op.channels.iter().cloned())
            .collect();
        for n in 0..self.addrs.len() {
            let main = &mut self.links[n].conn;
            if main.protocol() == Protocol::Resp3 {
                main.watch(now, &wanted);
                continue;
            }
            let sub = match self.subscribers[n] {
                Some(sub) => sub,
                None if wanted.is_empty() => continue,
                None => {
                    let conn =
                        Conn::subscriber(self.options.max_reply_bytes, self.options.node_timeout);
                    let sub = self.open(NodeId::new(n), Role::Subscriber, conn);
                    self.subscribers[n] = Some(sub);
                    sub
                }
            };
            self.links[sub.index()].conn.watch(now, &wanted);
        }
    }

    /// A new link for `node`: the adapter is asked to open it ([`Event::Open`]).
    fn open(&mut self, node: NodeId, role: Role, conn: Conn) -> LinkId {
        let link = LinkId::new(self.links.len());
        let (to, host) = match &role {
            Role::Shard(endpoint) => (Some(endpoint.clone()), Arc::from(endpoint.host())),
            Role::Main | Role::Seed | Role::Subscriber => {
                (None, self.links[node.index()].host.clone())
            }
        };
        self.links.push(Link::new(conn, node, role, host));
        self.events.push_back(Event::Open { link, node, to });
        link
    }

    /// The link to cluster node `node`'s primary at `endpoint`, opened the first time it is
    /// named; `None` past [`MAX_SHARDS`].
    fn shard_link(&mut self, node: NodeId, endpoint: &Endpoint) -> Option<LinkId> {
        let cluster = self.clusters[node.index()].as_ref()?;
        if let Some(link) = cluster.shards.get(endpoint) {
            return Some(*link);
        }
        if cluster.shards.len() >= MAX_SHARDS {
            return None;
        }
        let protocol = self.links[node.index()].conn.protocol();
        let conn = Conn::shard(
            protocol,
            self.options.max_reply_bytes,
            self.options.node_timeout,
        );
        let link = self.open(node, Role::Shard(endpoint.clone()), conn);
        if let Some(cluster) = &mut self.clusters[node.index()] {
            cluster.shards.insert(endpoint.clone(), link);
        }
        Some(link)
    }

    /// Asks cluster node `node` for its slot map again, unless a request for it is in flight.
    fn refresh_slots(&mut self, now: Instant, node: NodeId) {
        let Some(cluster) = &mut self.clusters[node.index()] else {
            return;
        };
        if !cluster.refreshing && self.links[node.index()].conn.refresh_slots(now) {
            cluster.refreshing = true;
        }
    }

    /// A link failed or closed. A shard's primary may have failed over: the slot map is asked
    /// for again. A seed's handshake will not answer: what waited for its slot map fails.
    fn after_link_down(&mut self, now: Instant, link: LinkId) {
        let node = self.node_of(link);
        match self.links[link.index()].role {
            Role::Shard(_) => self.refresh_slots(now, node),
            Role::Seed => {
                let pending = self.clusters[node.index()]
                    .as_mut()
                    .map(|c| std::mem::take(&mut c.pending))
                    .unwrap_or_default();
                for (asked, _) in pending {
                    self.answer(now, node, asked, Outcome::Disconnected);
                }
            }
            Role::Main | Role::Subscriber => {}
        }
    }

    /// The seed link answered `CLUSTER SLOTS`: the map replaces the one known, and every
    /// primary it names gets a link. A reply that is not a slot map keeps the old map and
    /// becomes the node's cause.
    fn on_slots(&mut self, now: Instant, link: LinkId, reply: &Reply) {
        let node = self.node_of(link);
        if self.links[link.index()].role != Role::Seed {
            return;
        }
        let parsed = SlotMap::from_cluster_slots(reply, &self.links[link.index()].host);
        let Some(cluster) = &mut self.clusters[node.index()] else {
            return;
        };
        cluster.refreshing = false;
        match parsed {
            Ok(map) => {
                let primaries: Vec<Endpoint> = map.primaries().cloned().collect();
                cluster.map = Some(map);
                for endpoint in primaries {
                    self.shard_link(node, &endpoint);
                }
            }
            Err(e) => self.causes[node.index()] = Some(Arc::from(e)),
        }
        // What waited for the first map goes out now (or fails, if there is still none).
        let pending = self.clusters[node.index()]
            .as_mut()
            .map(|c| std::mem::take(&mut c.pending))
            .unwrap_or_default();
        for (asked, call) in pending {
            self.send_pending(now, node, asked, &call);
        }
    }

    /// Sends a request that waited for cluster node `node`'s slot map, if its round is still
    /// open: its parts now count toward the node's vote.
    fn send_pending(&mut self, now: Instant, node: NodeId, asked: Asked, call: &Call) {
        match asked {
            Asked::Vote { op, round, .. } => {
                let open = self.ops.get(&op).is_some_and(|o| {
                    o.round == round && o.votes.get(node.index()).is_some_and(Option::is_none)
                });
                if !open {
                    return;
                }
                match self.dispatch(now, node, asked, call) {
                    Ok(left) => {
                        if let Some(parts) = self
                            .ops
                            .get_mut(&op)
                            .and_then(|o| o.parts.get_mut(node.index()))
                        {
                            parts.left = left;
                        }
                    }
                    Err(outcome) => self.vote(now, op, round, node, outcome),
                }
            }
            Asked::Cleanup => self.cleanup_parts(now, node, call),
            _ => {}
        }
    }

    /// Sends cleanup `call` to cluster node `node`, split by slot over its shards. A shard
    /// that cannot be reached now gets nothing: its keys expire.
    fn cleanup_parts(&mut self, now: Instant, node: NodeId, call: &Call) {
        for (link, picked) in self.route(node, call).unwrap_or_default() {
            let part = call.part(&picked);
            self.links[link.index()]
                .conn
                .send(now, Asked::Cleanup, part);
        }
    }

    /// Where cluster node `node` runs `call`: its lock keys grouped by hash slot, each group on
    /// the link to its slot's primary. An outcome instead when the call cannot go out: no slot
    /// map yet, a slot without a primary, a link that is down.
    fn route(&mut self, node: NodeId, call: &Call) -> Result<Vec<(LinkId, Vec<usize>)>, Outcome> {
        let Some(cluster) = &self.clusters[node.index()] else {
            return Err(Outcome::NotReady);
        };
        let Some(map) = &cluster.map else {
            return Err(Outcome::NotReady);
        };
        let mut targets = Vec::new();
        for (slot, picked) in group_by_slot(call.lock_keys()) {
            match map.primary(slot) {
                Some(endpoint) => targets.push((endpoint.clone(), picked)),
                None => {
                    return Err(Outcome::ErrorReply(format!(
                        "CLUSTERDOWN no primary known for hash slot {slot}"
                    )))
                }
            }
        }
        let mut routed = Vec::with_capacity(targets.len());
        for (endpoint, picked) in targets {
            let Some(link) = self.shard_link(node, &endpoint) else {
                return Err(Outcome::ErrorReply(format!(
                    "the cluster named more than {MAX_SHARDS} primaries"
                )));
            };
            if !self.links[link.index()].conn.accepts() {
                return Err(Outcome::NotReady);
            }
            routed.push((link, picked));
        }
        Ok(routed)
    }

    /// Sends `call` (read as `asked`) to node `node`: on its own connection, or split by hash
    /// slot over a cluster's shards; with replica acknowledgement, a `WAIT` after each part
    /// that grants. Returns how many replies make up the node's vote, or the vote itself when
    /// nothing could be sent.
    fn dispatch(
        &mut self,
        now: Instant,
        node: NodeId,
        asked: Asked,
        call: &Call,
    ) -> Result<u32, Outcome> {
        let wait = self.wait_call(asked);
        if self.clusters[node.index()].is_none() {
            let conn = &mut self.links[node.index()].conn;
            if !conn.is_up() {
                return Err(Outcome::NotReady);
            }
            conn.send(now, asked, call.clone());
            if let Some((asked, wait)) = wait {
                conn.send(now, asked, wait);
                return Ok(2);
            }
            return Ok(1);
        }
        if let Some(cluster) = &mut self.clusters[node.index()] {
            // The seed is connected and its handshake will bring the slot map: wait for it
            // rather than count the node out.
            let seed_up = self.links[node.index()].conn.is_up();
            if cluster.map.is_none() && seed_up && cluster.pending.len() < MAX_PENDING {
                cluster.pending.push((asked, call.clone()));
                return Ok(0);
            }
        }
        let targets = match self.route(node, call) {
            Ok(targets) => targets,
            Err(outcome) => {
                if outcome == Outcome::NotReady {
                    self.refresh_slots(now, node);
                }
                return Err(outcome);
            }
        };
        let whole = targets.len() == 1;
        let mut parts = 0;
        for (link, picked) in targets {
            let part = if whole {
                call.clone()
            } else {
                call.part(&picked)
            };
            let conn = &mut self.links[link.index()].conn;
            conn.send(now, asked, part);
            parts += 1;
            if let Some((asked, wait)) = &wait {
                conn.send(now, *asked, wait.clone());
                parts += 1;
            }
        }
        Ok(parts)
    }

    /// With replica acknowledgement, the `WAIT` that follows a request read as `asked` when it
    /// may grant (and how its reply is read).
    fn wait_call(&self, asked: Asked) -> Option<(Asked, Call)> {
        let ack = self.options.replica_ack?;
        let Asked::Vote { op, round, reading } = asked else {
            return None;
        };
        if matches!(
            reading,
            Reading::Deleted | Reading::DeletedOne | Reading::Replicas(_)
        ) {
            return None;
        }
        let asked = Asked::Vote {
            op,
            round,
            reading: Reading::Replicas(ack.replicas),
        };
        let call = Call {
            script: self.scripts.get(ScriptKind::Acquire).clone(),
            keys: Arc::from([]),
            argv: Arc::from([
                Bytes::from(ack.replicas.to_string()),
                Bytes::from(ack.timeout.as_millis().max(1).to_string()),
            ]),
            form: Form::Wait,
            takes_keys: false,
            native: Native::Never,
            layout: Layout::Keys,
            asking: false,
            hops: 0,
        };
        Some((asked, call))
    }

    /// A shard answered a request with `MOVED` or `ASK`: send it where the cluster says (after
    /// `ASKING` for `ASK`; `MOVED` also corrects the slot map and asks for the whole map
    /// again). Past [`MAX_HOPS`] redirects, or for a redirect that does not parse, the reply
    /// is the request's answer, as an error.
    fn on_redirect(
        &mut self,
        now: Instant,
        link: LinkId,
        asked: Asked,
        mut call: Call,
        error: String,
    ) {
        let node = self.node_of(link);
        let redirect = Redirect::parse(&error, &self.links[link.index()].host);
        let Some(redirect) = redirect.filter(|_| call.hops < MAX_HOPS) else {
            let outcome = Outcome::ErrorReply(if call.hops >= MAX_HOPS {
                format!("{error} (after {MAX_HOPS} redirects)")
            } else {
                error
            });
            return self.answer(now, node, asked, outcome);
        };
        if redirect.kind == RedirectKind::Moved {
            if let Some(map) = self.clusters[node.index()]
                .as_mut()
                .and_then(|c| c.map.as_mut())
            {
                map.set(redirect.slot, redirect.endpoint.clone());
            }
            self.refresh_slots(now, node);
        }
        let Some(target) = self.shard_link(node, &redirect.endpoint) else {
            let outcome = Outcome::ErrorReply(format!("{error}: more than {MAX_SHARDS} primaries"));
            return self.answer(now, node, asked, outcome);
        };
        if !self.links[target.index()].conn.accepts() {
            return self.answer(now, node, asked, Outcome::NotReady);
        }
        call.hops += 1;
        call.asking = redirect.kind == RedirectKind::Ask;
        let wait = self.wait_call(asked);
        // The `WAIT` behind the request here acknowledges nothing it wrote: the target's does.
        let moved_wait = wait.is_some() && self.links[link.index()].conn.skip_wait();
        let conn = &mut self.links[target.index()].conn;
        conn.send(now, asked, call);
        // Acknowledgement is asked where the write now happens (one more part to the vote,
        // unless it replaces the `WAIT` skipped here).
        if let (Some((wait_asked, wait)), Asked::Vote { op, round, .. }) = (wait, asked) {
            conn.send(now, wait_asked, wait);
            if moved_wait {
                return;
            }
            if let Some(o) = self.ops.get_mut(&op).filter(|o| o.round == round) {
                if let Some(parts) = o.parts.get_mut(node.index()) {
                    parts.left += 1;
                }
            }
        }
    }

    /// `outcome` answers a request of `node`'s read as `asked` (nothing to do for a cleanup).
    fn answer(&mut self, now: Instant, node: NodeId, asked: Asked, outcome: Outcome) {
        if let Asked::Vote { op, round, .. } = asked {
            self.vote_part(now, op, round, node, outcome);
        }
    }

    // ----- operations ---------------------------------------------------------------------

    /// Starts acquiring every resource in `resources` for `ttl`, with `token` as the value.
    ///
    /// `wall` is the caller's wall clock at `now` (the adapters read the system clock): the
    /// floor of the fencing token, with [`Options::fencing`]. The token is
    /// `max(largest counter of the granting nodes + 1, floor)`, where the floor is `wall` in
    /// microseconds since the Unix epoch, advanced by the time elapsed on `now`'s clock until the
    /// fence round. Tokens then keep increasing even when nodes restart without their counters,
    /// provided the clients' wall clocks agree within `restart_grace` (keep them in sync with
    /// NTP). Without fencing `wall` is unused. The engine reads no clock itself: a simulator
    /// passes any wall time it likes; one before the epoch is a floor of 0.
    ///
    /// Returns the operation id at once; the result arrives as [`Event::Acquired`]. Fails
    /// synchronously for no resources, an empty name, or a ttl too short to leave validity.
    ///
    #[doc = include_str!("../doc/acquire.md")]
    pub fn acquire<I, S>(
        &mut self,
        now: Instant,
        resources: I,
        ttl: Duration,
        token: Token,
        wall: SystemTime,
    ) -> Result<OpId, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.acquire_with(now, resources, ttl, token, wall, &AcquireOptions::default())
    }

    /// [`acquire`](Engine::acquire) with settings of its own: a bound on how long it may take
    /// and retry settings other than the client's (see [`AcquireOptions`]). Also fails
    /// synchronously with [`Error::InvalidOption`] for a duration in `options` over
    /// [`MAX_DURATION`].
    ///
    #[doc = include_str!("../doc/acquire_with.md")]
    pub fn acquire_with<I, S>(
        &mut self,
        now: Instant,
        resources: I,
        ttl: Duration,
        token: Token,
        wall: SystemTime,
        options: &AcquireOptions,
    ) -> Result<OpId, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        options.validate()?;
        let resources: Arc<[String]> = resources
            .into_iter()
            .map(|r| r.as_ref().to_string())
            .collect();
        if resources.is_empty() {
            return Err(Error::NoResources);
        }
        if resources.iter().any(String::is_empty) {
            return Err(Error::EmptyResource);
        }
        self.check_ttl(ttl)?;
        let prefix = &self.options.key_prefix;
        let keys = resources.iter().map(|r| redis_key(prefix, r)).collect();
        let now = self.clock(now);
        let wall = Wall::new(wall, now);
        let limits = Limits {
            retry: options
                .retry
                .unwrap_or_else(|| Retry::from_options(&self.options)),
            deadline: options.bound(now),
        };
        let id = self.start(now, Kind::Acquire, resources, keys, token, ttl, limits);
        // Before any reply can be read: the floor is first needed by the fence round.
        if let Some(op) = self.ops.get_mut(&id) {
            op.wall = Some(wall);
        }
        Ok(id)
    }

    /// Starts extending `lock` to `ttl` from now. On success [`Event::Extended`] carries the new
    /// lock. Returns [`Error::Expired`] at once when `lock` is no longer valid at `now`.
    pub fn extend(&mut self, now: Instant, lock: &Lock, ttl: Duration) -> Result<OpId, Error> {
        self.check_ttl(ttl)?;
        let now = self.clock(now);
        if !lock.is_valid(now) {
            return Err(Error::Expired);
        }
        let kind = Kind::Extend {
            valid_until: lock.valid_until,
            fencing_token: lock.fencing_token,
            longest_ttl: lock.longest_ttl,
        };
        Ok(self.start(
            now,
            kind,
            lock.resources.clone(),
            lock.keys.clone(),
            lock.token.clone(),
            ttl,
            self.client_limits(),
        ))
    }

    /// Starts releasing `lock` on every node (best effort, one attempt, even when the lock has
    /// expired: deleting only keys that still hold its token is always safe).
    ///
    /// Completes once a majority of nodes confirmed a delete (the lock is then free for others)
    /// or every node has answered; nodes not heard from by then are reported
    /// [`Outcome::NotAwaited`], though their deletes were sent.
    pub fn release(&mut self, now: Instant, lock: &Lock) -> OpId {
        self.start(
            now,
            Kind::Release,
            lock.resources.clone(),
            lock.keys.clone(),
            lock.token.clone(),
            lock.ttl,
            self.client_limits(),
        )
    }

    /// Abandons an in-flight operation. An acquire is followed by a release on every connected
    /// node, since any of them may have granted it. Emits the operation's completion event with
    /// [`Failure::Cancelled`](crate::Failure::Cancelled).
    pub fn cancel(&mut self, now: Instant, op: OpId) -> Result<(), Error> {
        let now = self.clock(now);
        let Some(o) = self.ops.remove(&op) else {
            return Err(Error::UnknownOp(op));
        };
        if o.kind == Kind::Acquire {
            self.cleanup(now, &o.keys, &o.attempt_token());
        }
        let error = OpError {
            failure: Failure::Cancelled,
            attempts: o.attempts,
            timed_out: false,
        };
        self.fail(op, o.kind, error);
        self.settle(now);
        Ok(())
    }

    // ----- outputs ------------------------------------------------------------------------

    /// The next bytes to write: everything queued for one link, as one buffer. Call until
    /// `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(LinkId, Bytes)> {
        let n = self.links.len();
        for k in 0..n {
            let i = (self.transmit_cursor + k) % n;
            if let Some(bytes) = self.links[i].conn.take_output() {
                self.transmit_cursor = (i + 1) % n;
                return Some((LinkId::new(i), bytes));
            }
        }
        None
    }

    /// The next event. Call until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Engine::handle_timeout) must next be called; `None` when nothing
    /// is waiting on time. Changes after every input and operation.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conns = self.links.iter().filter_map(|l| l.conn.deadline());
        let ops = self.ops.values().filter_map(|o| o.wakes_at());
        conns.chain(ops).min()
    }

    // ----- internals ----------------------------------------------------------------------

    fn check_ttl(&self, ttl: Duration) -> Result<(), Error> {
        if ttl > MAX_DURATION {
            return Err(Error::TtlTooLong { ttl });
        }
        let drift = self.options.drift(ttl);
        if ttl <= drift {
            return Err(Error::TtlTooShort { ttl, drift });
        }
        Ok(())
    }

    /// The client-wide retry settings and no deadline.
    fn client_limits(&self) -> Limits {
        Limits {
            retry: Retry::from_options(&self.options),
            deadline: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        now: Instant,
        kind: Kind,
        resources: Arc<[String]>,
        keys: Arc<[Bytes]>,
        token: Token,
        ttl: Duration,
        limits: Limits,
    ) -> OpId {
        let now = self.clock(now);
        let id = OpId::new(self.next_op);
        self.next_op += 1;
        let fence_keys = (kind == Kind::Acquire && self.options.fencing)
            .then(|| keys.iter().map(|k| fence_key(k)).collect());
        let channels = if kind == Kind::Acquire && self.options.wait_for_release {
            keys.iter().map(|k| release_channel(k)).collect()
        } else {
            Arc::from([])
        };
        let op = Op {
            kind,
            resources,
            keys,
            fence_keys,
            token,
            ttl,
            attempt: 0,
            round: 0,
            stage: Stage::Main,
            counters: Vec::new(),
            parts: Vec::new(),
            t0: now,
            votes: Vec::new(),
            attempts: Vec::new(),
            phase: Phase::Waiting { until: now },
            wall: None,
            retry: limits.retry,
            deadline: limits.deadline,
            channels,
            watching: false,
            rewake: false,
        };
        self.ops.insert(id, Box::new(op));
        self.start_attempt(now, id);
        id
    }

    fn start_attempt(&mut self, now: Instant, id: OpId) {
        let drift_end = |ttl: Duration| now + ttl - self.options.drift(ttl);
        let plain_set = self.plain_set;
        // A node's own compare-and-set / compare-and-delete may stand in for the built-in
        // scripts (the connection picks the command the node has, see `Call::for_node`).
        let scripts = &self.options.scripts;
        let native_ok = self.options.native_commands;
        let native_extend = native_ok && scripts.extend.is_none();
        let native_release = native_ok && scripts.release.is_none();
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.attempt += 1;
        op.t0 = now;
        op.stage = Stage::Main;
        let ttl_ms = Bytes::from(op.ttl.as_millis().max(1).to_string());
        let token = op.attempt_token().bytes().clone();
        let native = match op.kind {
            // `SET PX` sets the ttl exactly; the script never lowers it. Only a ttl at least
            // every one set before leaves no key shorter than the holder counts on.
            Kind::Extend { longest_ttl, .. } if native_extend && op.ttl >= longest_ttl => {
                Native::Extend
            }
            Kind::Release if native_release => Native::Release,
            _ => Native::Never,
        };
        let (script, form, reading, keys, argv, deadline): (
            _,
            _,
            _,
            Arc<[Bytes]>,
            Arc<[Bytes]>,
            _,
        ) = match op.kind {
            Kind::Acquire => match &op.fence_keys {
                Some(fence) => (
                    ScriptKind::FencedAcquire,
                    Form::EvalSha,
                    Reading::FencedGrant,
                    op.keys.iter().chain(fence.iter()).cloned().collect(),
                    Arc::from([token, ttl_ms]),
                    Some(drift_end(op.ttl)),
                ),
                // One key with the built-in script: `SET key token NX PX ttl` does exactly
                // what the script does, without running Lua on the node.
                None => {
                    let set_nx = plain_set && op.keys.len() == 1;
                    (
                        ScriptKind::Acquire,
                        if set_nx { Form::SetNx } else { Form::EvalSha },
                        if set_nx {
                            Reading::SetNx
                        } else {
                            Reading::Grant
                        },
                        op.keys.clone(),
                        Arc::from([token, ttl_ms]),
                        Some(drift_end(op.ttl)),
                    )
                }
            },
            Kind::Extend { .. } => (
                ScriptKind::Extend,
                Form::EvalSha,
                Reading::Grant,
                op.keys.clone(),
                Arc::from([token, ttl_ms]),
                Some(drift_end(op.ttl)),
            ),
            Kind::Release => (
                ScriptKind::Release,
                Form::EvalSha,
                Reading::Deleted,
                op.keys.clone(),
                release_argv(&op.keys, token),
                None,
            ),
        };
        op.phase = Phase::Voting { deadline };
        let layout = match (op.kind, &op.fence_keys) {
            (Kind::Acquire, Some(_)) => Layout::KeysAndFences,
            (Kind::Release, _) => Layout::KeysAndChannels,
            _ => Layout::Keys,
        };
        let call = Call {
            script: self.scripts.get(script).clone(),
            keys,
            argv,
            form,
            takes_keys: op.kind == Kind::Acquire,
            native,
            layout,
            asking: false,
            hops: 0,
        };
        self.send_round(now, id, reading, call);
    }

    /// Sends one round of `call` to every connected node (the others vote `NotReady`), then
    /// decides if that already settles it.
    fn send_round(&mut self, now: Instant, id: OpId, reading: Reading, call: Call) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.round += 1;
        let asked = Asked::Vote {
            op: id,
            round: op.round,
            reading,
        };
        let n = self.addrs.len();
        let mut votes = Vec::with_capacity(n);
        let mut parts = Vec::with_capacity(n);
        for i in 0..n {
            match self.dispatch(now, NodeId::new(i), asked, &call) {
                Ok(left) => {
                    votes.push(None);
                    parts.push(Parts { left, deleted: 0 });
                }
                Err(outcome) => {
                    votes.push(Some(outcome));
                    parts.push(Parts::default());
                }
            }
        }
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.counters = vec![None; n];
        op.votes = votes;
        op.parts = parts;
        self.decide(now, id);
    }

    /// Acts on one request `link` answered.
    fn on_answer(&mut self, now: Instant, link: LinkId, answer: Answer) {
        let node = self.node_of(link);
        let (op, round, outcome, counter) = match answer {
            Answer::Nothing | Answer::NoSubscribe => return,
            Answer::Slots(reply) => return self.on_slots(now, link, &reply),
            Answer::Redirect { asked, call, error } => {
                return self.on_redirect(now, link, asked, call, error)
            }
            Answer::Released { channel } => {
                // Only a standalone node's own connection carries its lock replies: elsewhere
                // (a subscriber, a cluster's seed) the release may follow a refusal still on
                // its way.
                let by = (self.links[link.index()].role == Role::Main).then_some(node);
                self.on_release(now, by, &channel);
                return;
            }
            Answer::Info { restart, .. } => {
                if let (Some(grace), Some(info)) = (self.options.restart_grace, restart) {
                    self.links[link.index()].voter.on_info(now, grace, info);
                }
                return;
            }
            Answer::Vote {
                op,
                round,
                outcome,
                counter,
            } => (op, round, outcome, counter),
        };
        let grace = self.options.restart_grace;
        let outcome = match (outcome, self.links[link.index()].voter.sits_out(now, grace)) {
            (Outcome::Granted, Some(remaining)) => Outcome::SittingOut { remaining },
            (outcome, _) => outcome,
        };
        if let Some(o) = self.ops.get_mut(&op) {
            if o.round == round {
                if let Some(slot) = o.counters.get_mut(node.index()) {
                    // A cluster's parts each report their slot's counters: the largest counts.
                    *slot = (*slot).max(counter);
                }
            }
        }
        // A late reply to a round already decided is ignored by `vote`: its request was matched
        // in order, so the stream is fine; what it says no longer matters.
        self.vote_part(now, op, round, node, outcome);
    }

    /// One reply to `node`'s part of round `round`: a grant (or a release's count) waits for
    /// the node's other parts; anything else is the node's vote at once.
    fn vote_part(&mut self, now: Instant, id: OpId, round: u32, node: NodeId, outcome: Outcome) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if op.round != round || op.votes.get(node.index()).is_none_or(Option::is_some) {
            return;
        }
        let Some(parts) = op.parts.get_mut(node.index()) else {
            return;
        };
        let outcome = match outcome {
            Outcome::Granted if parts.left > 1 => {
                parts.left -= 1;
                return;
            }
            Outcome::Released(n) => {
                parts.deleted = parts.deleted.saturating_add(n);
                if parts.left > 1 {
                    parts.left -= 1;
                    return;
                }
                Outcome::Released(parts.deleted)
            }
            other => other,
        };
        self.vote(now, id, round, node, outcome);
    }

    fn vote(&mut self, now: Instant, id: OpId, round: u32, node: NodeId, outcome: Outcome) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if op.round != round || !matches!(op.phase, Phase::Voting { .. }) {
            return; // a late vote for a round already decided
        }
        match op.votes.get_mut(node.index()) {
            Some(slot @ None) => *slot = Some(outcome),
            _ => return,
        }
        self.decide(now, id);
    }

    /// The release script for `keys` holding `token`, sent as a best-effort cleanup. Silent:
    /// no channels, so no announcement. A cleanup undoes this client's own failed attempt;
    /// announcing it would wake this client's own waiter into the same contest again (and
    /// again, for as long as the holder holds).
    fn release_call(&self, keys: Arc<[Bytes]>, token: Bytes) -> Call {
        Call {
            script: self.scripts.get(ScriptKind::Release).clone(),
            argv: Arc::from([token]),
            keys,
            form: Form::EvalSha,
            takes_keys: false,
            native: if self.options.native_commands && self.options.scripts.release.is_none() {
                Native::Release
            } else {
                Native::Never
            },
            layout: Layout::KeysAndChannels,
            asking: false,
            hops: 0,
        }
    }

    /// Requests `link` can no longer answer: their votes become `outcome`, and an acquire that
    /// was written may still run on the server (a paused node resumes, the bytes were already
    /// in its buffer): it is released once the link is back.
    fn fail_tags(&mut self, now: Instant, link: LinkId, lost: Vec<Lost>, outcome: &Outcome) {
        let node = self.node_of(link);
        for l in lost {
            if let (true, Some(call)) = (l.sent, &l.call) {
                if call.takes_keys {
                    let release = self.release_call(call.keys.clone(), call.argv[0].clone());
                    let missed = &mut self.links[link.index()].missed;
                    if missed.len() == MAX_MISSED {
                        missed.pop_front();
                    }
                    missed.push_back(release);
                }
            }
            if let Asked::Vote { op, round, .. } = l.asked {
                self.vote(now, op, round, node, outcome.clone());
            }
        }
    }

    /// `link`'s handshake just succeeded: tell the adapter, and send the releases it missed.
    fn on_ready(&mut self, now: Instant, link: LinkId) {
        let l = &mut self.links[link.index()];
        for call in std::mem::take(&mut l.missed) {
            l.conn.send(now, Asked::Cleanup, call);
        }
        if matches!(l.role, Role::Main | Role::Seed) {
            self.causes[l.node.index()] = None;
        }
        self.events.push_back(Event::Ready { link });
    }

    fn poison(&mut self, now: Instant, link: LinkId, reason: ConnError) {
        let cause = match &reason {
            ConnError::Handshake(e) => e.clone(),
            other => other.to_string(),
        };
        let l = &mut self.links[link.index()];
        if l.speaks_for_node() {
            self.causes[l.node.index()] = Some(Arc::from(cause));
        }
        let tags = l.conn.shut();
        let outcome = match reason {
            ConnError::Timeout(_) => Outcome::Timeout,
            ref other => Outcome::Broken(other.clone()),
        };
        self.fail_tags(now, link, tags, &outcome);
        self.events.push_back(Event::Reconnect { link, reason });
        self.after_link_down(now, link);
    }

    /// Decides the current attempt if its votes allow.
    fn decide(&mut self, now: Instant, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        if !matches!(op.phase, Phase::Voting { .. }) {
            return;
        }
        if op.kind == Kind::Release {
            let confirmed = op
                .votes
                .iter()
                .filter(|v| matches!(v, Some(Outcome::Released(n)) if *n > 0))
                .count();
            // Once a majority has deleted, no quorum holds the token any more: the lock is free
            // for others. The other nodes' deletes are already queued (ahead of anything this
            // client sends them next); their replies are not awaited.
            if confirmed >= self.quorum || op.all_answered() {
                let op = self.ops.remove(&id).expect("present");
                let attempt = self.report(&op, now, &Outcome::NotAwaited);
                // Nodes that answered with an error (NOPERM for a user without scripting) did
                // not delete: without a majority of deletes that is a failure the caller must
                // see, not a release of nothing.
                let erred = attempt.count(|o| matches!(o, Outcome::ErrorReply(_)));
                let result = if confirmed < self.quorum && erred > 0 {
                    Err(OpError {
                        failure: Failure::Unreachable,
                        attempts: vec![attempt],
                        timed_out: false,
                    })
                } else {
                    Ok(Released { confirmed, attempt })
                };
                self.events.push_back(Event::Released { op: id, result });
            }
            return;
        }
        match op.tally(self.quorum) {
            Tally::Undecided => {}
            Tally::Impossible => self.end_attempt(now, id, Outcome::NotAwaited, false),
            Tally::Granted => {
                let valid_until = op.t0 + op.ttl - self.options.drift(op.ttl);
                if now < valid_until && op.stage == Stage::Main && op.fence_keys.is_some() {
                    self.start_fence_round(now, id);
                } else if now < valid_until {
                    let mut op = self.ops.remove(&id).expect("present");
                    let attempt = self.report(&op, now, &Outcome::NotAwaited);
                    op.attempts.push(attempt);
                    // The extend script never shortens a key, so the old validity still holds.
                    let valid_until = match op.kind {
                        Kind::Extend {
                            valid_until: old, ..
                        } => valid_until.max(old),
                        _ => valid_until,
                    };
                    let fencing_token = match (op.kind, op.stage) {
                        (Kind::Extend { fencing_token, .. }, _) => fencing_token,
                        (_, Stage::Fence { token }) => Some(token),
                        _ => None,
                    };
                    let token = op.attempt_token();
                    let longest_ttl = match op.kind {
                        Kind::Extend { longest_ttl, .. } => longest_ttl.max(op.ttl),
                        _ => op.ttl,
                    };
                    let lock = Lock {
                        longest_ttl,
                        resources: op.resources,
                        keys: op.keys,
                        token,
                        ttl: op.ttl,
                        valid_until,
                        fencing_token,
                        attempts: op.attempt,
                    };
                    let result = Ok(lock);
                    self.events.push_back(match op.kind {
                        Kind::Extend { .. } => Event::Extended { op: id, result },
                        _ => Event::Acquired { op: id, result },
                    });
                } else {
                    self.end_attempt(now, id, Outcome::NotAwaited, true);
                }
            }
        }
    }

    /// A fenced acquire won its quorum: write `T = max(counters of the granting nodes + 1,
    /// floor)` back, to every node, while the keys are held. Only a quorum of write-backs makes
    /// the lock. The floor (the caller's wall clock now, in microseconds) keeps `T` above every
    /// token handed out before nodes lost their counters in a restart: those nodes sat out
    /// `restart_grace`, and a token is at most its issuer's wall clock (plus one per acquisition
    /// faster than one a microsecond). Past [`MAX_FENCING_TOKEN`](crate::MAX_FENCING_TOKEN) the
    /// fence script refuses `T` with an error reply rather than compare a rounded number.
    fn start_fence_round(&mut self, now: Instant, id: OpId) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        let top = op
            .votes
            .iter()
            .zip(&op.counters)
            .filter(|(v, _)| matches!(v, Some(Outcome::Granted)))
            .filter_map(|(_, c)| *c)
            .max()
            .unwrap_or(0);
        let floor = op.wall.map_or(0, |w| w.floor(now));
        let token = top.saturating_add(1).max(floor);
        op.stage = Stage::Fence { token };
        let fence = op.fence_keys.clone().expect("fenced acquire");
        let keys: Arc<[Bytes]> = op.keys.iter().chain(fence.iter()).cloned().collect();
        let argv: Arc<[Bytes]> = Arc::from([
            op.attempt_token().bytes().clone(),
            Bytes::from(token.to_string()),
        ]);
        let call = Call {
            script: self.scripts.get(ScriptKind::Fence).clone(),
            keys,
            argv,
            form: Form::EvalSha,
            takes_keys: false,
            native: Native::Never,
            layout: Layout::KeysAndFences,
            asking: false,
            hops: 0,
        };
        self.send_round(now, id, Reading::Grant, call);
    }

    fn report(&self, op: &Op, now: Instant, unanswered: &Outcome) -> Attempt {
        Attempt {
            elapsed: now.saturating_duration_since(op.t0),
            nodes: op
                .votes
                .iter()
                .enumerate()
                .map(|(i, v)| NodeReport {
                    node: NodeId::new(i),
                    addr: self.addrs[i].clone(),
                    outcome: v.clone().unwrap_or_else(|| unanswered.clone()),
                    cause: self.causes[i].clone(),
                })
                .collect(),
        }
    }

    /// The current attempt failed (or ran out of time): record it, undo an acquire, and retry
    /// or give up.
    ///
    /// Retried when the operation's retry count allows it, and: an acquire, while the retry
    /// would start before the caller's deadline (past it the operation fails as timed out); an
    /// extend, while the retry would start inside validity and the nodes that answered did not
    /// refuse (a refusal is an answer: the keys are gone or someone else's, and asking again
    /// changes nothing). A release is never retried.
    fn end_attempt(&mut self, now: Instant, id: OpId, unanswered: Outcome, too_late: bool) {
        let Some(op) = self.ops.get(&id) else { return };
        let attempt = self.report(op, now, &unanswered);
        let (kind, keys, token, n) = (op.kind, op.keys.clone(), op.attempt_token(), op.attempt);
        let (retry, deadline) = (op.retry, op.deadline);
        // An attempt the deadline cut before any node answered says nothing: the one before
        // it tells "held by another holder" from "unreachable".
        let silent = op.votes.iter().all(Option::is_none);
        let previous = op.attempts.last().cloned();
        if kind == Kind::Acquire {
            // Release everywhere, not only where granted: a yes may be in flight or lost.
            self.cleanup(now, &keys, &token);
        }
        let failure = classify(kind, &attempt, self.quorum, too_late);
        let wait = self.retry_wait(retry);
        let worth_it = retry.count.is_none_or(|c| n <= c)
            && match kind {
                Kind::Extend { valid_until, .. } => {
                    now + wait < valid_until && failure != Failure::NotHeld
                }
                Kind::Acquire => true,
                Kind::Release => false,
            };
        let in_time = deadline.is_none_or(|d| now + wait < d);
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if worth_it && in_time {
            op.attempts.push(attempt);
            // A release announced after a node refused this attempt: try again at once.
            let until = if std::mem::take(&mut op.rewake) {
                now
            } else {
                now + wait
            };
            op.phase = Phase::Waiting { until };
            // Refused once: from now on a release of its keys may wake it (`settle`
            // subscribes).
            op.watching = !op.channels.is_empty();
            return;
        }
        let failure = match previous {
            Some(previous) if worth_it && silent => classify(kind, &previous, self.quorum, false),
            _ => failure,
        };
        let mut op = self.ops.remove(&id).expect("present");
        op.attempts.push(attempt);
        let error = OpError {
            failure,
            attempts: op.attempts,
            timed_out: worth_it,
        };
        self.fail(id, kind, error);
    }

    /// Completes operation `id` of `kind` with `error`.
    fn fail(&mut self, id: OpId, kind: Kind, error: OpError) {
        self.events.push_back(match kind {
            Kind::Acquire => Event::Acquired {
                op: id,
                result: Err(error),
            },
            Kind::Extend { .. } => Event::Extended {
                op: id,
                result: Err(error),
            },
            Kind::Release => Event::Released {
                op: id,
                result: Err(error),
            },
        });
    }

    fn retry_wait(&mut self, retry: Retry) -> Duration {
        let base = retry.delay;
        let jitter = retry.jitter;
        let span = u64::try_from(jitter.as_micros().saturating_mul(2)).unwrap_or(u64::MAX);
        let offset = Duration::from_micros(self.rng.below_inclusive(span));
        (base + offset).saturating_sub(jitter)
    }

    fn cleanup(&mut self, now: Instant, keys: &Arc<[Bytes]>, token: &Token) {
        let call = self.release_call(keys.clone(), token.bytes().clone());
        for node in (0..self.addrs.len()).map(NodeId::new) {
            if let Some(cluster) = &mut self.clusters[node.index()] {
                if cluster.map.is_none() && cluster.pending.len() < MAX_PENDING {
                    cluster.pending.push((Asked::Cleanup, call.clone()));
                    continue;
                }
                self.cleanup_parts(now, node, &call);
            } else if self.links[node.index()].conn.is_up() {
                self.links[node.index()]
                    .conn
                    .send(now, Asked::Cleanup, call.clone());
            }
        }
    }
}

/// The release script's `ARGV`: the token, then each key's release channel (the script
/// announces each key it deletes there; a native release's `PUBLISH` uses the first).
fn release_argv(keys: &[Bytes], token: Bytes) -> Arc<[Bytes]> {
    std::iter::once(token)
        .chain(keys.iter().map(|k| release_channel(k)))
        .collect()
}
