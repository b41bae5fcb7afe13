//! The engine: every lock operation, multiplexed over one connection per node.

use crate::config::{Config, Options};
use crate::conn::{Conn, Tag};
use crate::error::{Attempt, ConnError, Error, NodeReport, OpError, Outcome};
use crate::event::{Done, Event, Released};
use crate::lock::Lock;
use crate::op::{classify, Kind, Op, Phase, Stage, Tally};
use crate::resp::{Protocol, Reply};
use crate::rng::Rng;
use crate::script::{ScriptId, ScriptSet};
use crate::token::Token;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node's position in [`Config::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

impl NodeId {
    /// The node at `index` in the configuration.
    pub fn new(index: usize) -> NodeId {
        NodeId(index)
    }

    /// Its index in the configuration.
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node#{}", self.0)
    }
}

/// Names one in-flight operation; unique for the engine's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub(crate) u64);

impl OpId {
    /// The raw number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op#{}", self.0)
    }
}

/// The sans-IO Redlock engine.
///
/// Inputs are the `handle_*` calls and the operations (`acquire`, `extend`, `release`,
/// `cancel`); outputs are [`poll_transmit`](Engine::poll_transmit) (bytes to write),
/// [`poll_event`](Engine::poll_event) (results and reconnect requests) and
/// [`poll_timeout`](Engine::poll_timeout) (when to call [`handle_timeout`](Engine::handle_timeout)).
/// After any input, drain all three. Time only ever comes in as `now`; an earlier `now` than
/// one already seen is treated as the latest one seen.
///
/// ```
/// use redlock_core::{Config, Engine, NodeId, Options, Token};
/// use std::time::{Duration, Instant};
///
/// // The caller owns the clock: `now` comes from wherever the adapter reads time.
/// fn demo(now: Instant) {
/// let config = Config::from_urls(["redis://127.0.0.1:6379"], Options::default()).unwrap();
/// let mut engine = Engine::new(config, now, 42).unwrap();
/// engine.handle_connected(now, NodeId::new(0)).unwrap();
/// let token = Token::from_random(&[7; 20]).unwrap();
/// let op = engine.acquire(now, ["orders:42"], Duration::from_secs(10), token).unwrap();
/// let (node, bytes) = engine.poll_transmit().unwrap();
/// // The handshake loads the scripts (SCRIPT LOAD ×3); a one-resource acquire is then a plain
/// // `SET key token NX PX ttl`.
/// assert!(bytes.windows(5).any(|w| w == b"$2\r\nNX"));
/// let mut replies = Vec::new();
/// for source in [redlock_core::ACQUIRE, redlock_core::EXTEND, redlock_core::RELEASE] {
///     replies.extend_from_slice(format!("$40\r\n{}\r\n", redlock_core::script_sha(source)).as_bytes());
/// }
/// // A node replying +OK grants the lock (1 node: quorum is 1).
/// replies.extend_from_slice(b"+OK\r\n");
/// engine.handle_input(now, node, &replies).unwrap();
/// match engine.poll_event() {
///     Some(redlock_core::Event::Completed { op: done, result: Ok(redlock_core::Done::Acquired(lock)) }) => {
///         assert_eq!(done, op);
///         assert!(lock.is_valid(now));
///     }
///     other => panic!("{other:?}"),
/// }
/// }
/// ```
#[derive(Debug)]
pub struct Engine {
    options: Options,
    quorum: usize,
    addrs: Vec<Arc<str>>,
    handshakes: Vec<Vec<Vec<Bytes>>>,
    conns: Vec<Conn>,
    scripts: ScriptSet,
    ops: BTreeMap<OpId, Op>,
    events: VecDeque<Event>,
    rng: Rng,
    next_op: u64,
    now: Instant,
    transmit_cursor: usize,
    voters: Vec<Voter>,
    /// Single-key acquires may use `SET NX PX` (the acquire script is the default one).
    plain_set: bool,
}

/// Restart-aware voting state of one node.
#[derive(Debug, Clone, Default)]
struct Voter {
    /// The `run_id` seen on the last connection.
    run_id: Option<String>,
    /// From when the node's grants count; `None` until `INFO server` answered on this connection.
    eligible_at: Option<Instant>,
}

impl Engine {
    /// A new engine with every node disconnected. `jitter_seed` seeds the retry-jitter PRNG
    /// (same seed and inputs, same outputs).
    ///
    /// Returns [`Error::NoNodes`] or [`Error::InvalidOption`] for a bad configuration.
    pub fn new(config: Config, now: Instant, jitter_seed: u64) -> Result<Engine, Error> {
        config.validate()?;
        let Config { nodes, options } = config;
        let n = nodes.len();
        let plain_set = options.scripts.acquire == crate::script::ACQUIRE;
        let addrs = nodes.iter().map(|n| Arc::from(n.to_string())).collect();
        let scripts = ScriptSet::new(&options.scripts);
        let handshakes = nodes
            .iter()
            .map(|n| handshake(n, &options, &scripts))
            .collect();
        let conns = nodes
            .iter()
            .map(|_| {
                Conn::new(
                    options.protocol,
                    options.max_reply_bytes,
                    options.node_timeout,
                )
            })
            .collect();
        Ok(Engine {
            quorum: nodes.len() / 2 + 1,
            scripts,
            options,
            addrs,
            handshakes,
            conns,
            ops: BTreeMap::new(),
            events: VecDeque::new(),
            rng: Rng::new(jitter_seed),
            next_op: 1,
            now,
            transmit_cursor: 0,
            voters: vec![Voter::default(); n],
            plain_set,
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.conns.len()
    }

    /// Votes needed: `nodes / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// A node's `host:port`, or `None` for an unknown id.
    pub fn node_addr(&self, node: NodeId) -> Option<&str> {
        self.addrs.get(node.0).map(|a| &**a)
    }

    /// Whether the engine currently sends requests to `node` (between `handle_connected` and a
    /// disconnect or [`Event::Reconnect`]).
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.conns.get(node.0).is_some_and(Conn::is_up)
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

    fn check_node(&self, node: NodeId) -> Result<(), Error> {
        if node.0 < self.conns.len() {
            Ok(())
        } else {
            Err(Error::UnknownNode(node))
        }
    }

    // ----- inputs -------------------------------------------------------------------------

    /// A socket to `node` is open: the engine queues the handshake and starts sending requests.
    /// Anything pending on a previous socket to that node fails as disconnected.
    pub fn handle_connected(&mut self, now: Instant, node: NodeId) -> Result<(), Error> {
        self.check_node(node)?;
        let now = self.clock(now);
        let info = self.options.restart_grace.is_some();
        self.voters[node.0].eligible_at = None;
        let lost = self.conns[node.0].connect(now, &self.handshakes[node.0], info);
        self.fail_tags(now, node, lost, &Outcome::Disconnected);
        Ok(())
    }

    /// Bytes read from `node`'s socket. Complete replies are matched to their requests; bad
    /// bytes break the connection ([`Event::Reconnect`]), never panic.
    pub fn handle_input(&mut self, now: Instant, node: NodeId, bytes: &[u8]) -> Result<(), Error> {
        self.check_node(node)?;
        let now = self.clock(now);
        self.conns[node.0].feed(bytes);
        // One reply at a time: the engine reacts to each (new requests, cleanups) before the
        // next is matched, whatever the read boundaries were.
        while let Some(next) = self.conns[node.0].next(now) {
            let broken = match next {
                Ok((tag, reply)) => self.on_reply(now, node, tag, reply).err(),
                Err(e) => Some(e),
            };
            if let Some(reason) = broken {
                self.poison(now, node, reason);
                break;
            }
        }
        Ok(())
    }

    /// `node`'s socket closed or failed. Its pending requests fail as disconnected; the adapter
    /// reconnects on its own schedule and calls [`handle_connected`](Engine::handle_connected).
    pub fn handle_disconnected(&mut self, now: Instant, node: NodeId) -> Result<(), Error> {
        self.check_node(node)?;
        let now = self.clock(now);
        let lost = self.conns[node.0].shut();
        self.fail_tags(now, node, lost, &Outcome::Disconnected);
        Ok(())
    }

    /// Time has reached (or passed) [`poll_timeout`](Engine::poll_timeout): expire requests,
    /// give up on attempts that can no longer succeed, start retries that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        for i in 0..self.conns.len() {
            if self.conns[i].expired(now) {
                let after = self.conns[i].timeout();
                self.poison(now, NodeId(i), ConnError::Timeout(after));
            }
        }
        let due: Vec<(OpId, Phase)> = self
            .ops
            .iter()
            .filter(|(_, op)| match op.phase {
                Phase::Voting { deadline } => deadline.is_some_and(|d| now >= d),
                Phase::Waiting { until } => now >= until,
            })
            .map(|(id, op)| (*id, op.phase))
            .collect();
        for (id, phase) in due {
            match phase {
                Phase::Voting { .. } => self.end_attempt(now, id, Outcome::Timeout, false),
                Phase::Waiting { .. } => self.start_attempt(now, id),
            }
        }
    }

    // ----- operations ---------------------------------------------------------------------

    /// Starts acquiring every resource in `resources` for `ttl`, with `token` as the value.
    ///
    /// Returns the operation id at once; the result arrives as [`Event::Completed`]. Fails
    /// synchronously for no resources, an empty name, or a ttl too short to leave validity.
    pub fn acquire<I, S>(
        &mut self,
        now: Instant,
        resources: I,
        ttl: Duration,
        token: Token,
    ) -> Result<OpId, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
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
        let prefix = self.options.key_prefix.as_bytes();
        let keys = resources
            .iter()
            .map(|r| {
                let mut k = Vec::with_capacity(prefix.len() + r.len());
                k.extend_from_slice(prefix);
                k.extend_from_slice(r.as_bytes());
                Bytes::from(k)
            })
            .collect();
        let id = self.start(now, Kind::Acquire, resources, keys, token, ttl);
        Ok(id)
    }

    /// Starts extending `lock` to `ttl` from now. On success [`Done::Extended`] carries the new
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
        };
        Ok(self.start(
            now,
            kind,
            lock.resources.clone(),
            lock.keys.clone(),
            lock.token.clone(),
            ttl,
        ))
    }

    /// Starts releasing `lock` on every node (best effort, one attempt, even when the lock has
    /// expired: deleting only keys that still hold its token is always safe).
    ///
    /// Completes once a majority of nodes confirmed a delete (the lock is then free for others)
    /// or every node has answered; nodes not heard from by then are reported
    /// [`Outcome::NotAwaited`], though their deletes were sent.
    pub fn release(&mut self, now: Instant, lock: &Lock) -> Result<OpId, Error> {
        Ok(self.start(
            now,
            Kind::Release,
            lock.resources.clone(),
            lock.keys.clone(),
            lock.token.clone(),
            lock.ttl,
        ))
    }

    /// Abandons an in-flight operation. An acquire is followed by a release on every connected
    /// node, since any of them may have granted it. Emits `Completed` with
    /// [`Failure::Cancelled`](crate::Failure::Cancelled).
    pub fn cancel(&mut self, now: Instant, op: OpId) -> Result<(), Error> {
        let now = self.clock(now);
        let Some(o) = self.ops.remove(&op) else {
            return Err(Error::UnknownOp(op));
        };
        if o.kind == Kind::Acquire {
            self.cleanup(now, &o.keys, &o.attempt_token());
        }
        let failure = crate::error::Failure::Cancelled;
        self.events.push_back(Event::Completed {
            op,
            result: Err(OpError {
                failure,
                attempts: o.attempts,
            }),
        });
        Ok(())
    }

    // ----- outputs ------------------------------------------------------------------------

    /// The next bytes to write: everything queued for one node, as one buffer. Call until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Bytes)> {
        let n = self.conns.len();
        for k in 0..n {
            let i = (self.transmit_cursor + k) % n;
            if let Some(bytes) = self.conns[i].take_output() {
                self.transmit_cursor = (i + 1) % n;
                return Some((NodeId(i), bytes));
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
        let conns = self.conns.iter().filter_map(Conn::deadline);
        let ops = self.ops.values().filter_map(|op| match op.phase {
            Phase::Voting { deadline } => deadline,
            Phase::Waiting { until } => Some(until),
        });
        conns.chain(ops).min()
    }

    // ----- internals ----------------------------------------------------------------------

    fn check_ttl(&self, ttl: Duration) -> Result<(), Error> {
        if ttl > crate::config::MAX_DURATION {
            return Err(Error::TtlTooLong { ttl });
        }
        let drift = self.options.drift(ttl);
        if ttl <= drift {
            return Err(Error::TtlTooShort { ttl, drift });
        }
        Ok(())
    }

    fn start(
        &mut self,
        now: Instant,
        kind: Kind,
        resources: Arc<[String]>,
        keys: Arc<[Bytes]>,
        token: Token,
        ttl: Duration,
    ) -> OpId {
        let now = self.clock(now);
        let id = OpId(self.next_op);
        self.next_op += 1;
        let fence_keys = (kind == Kind::Acquire && self.options.fencing)
            .then(|| keys.iter().map(|k| fence_key(k)).collect());
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
            t0: now,
            votes: Vec::new(),
            attempts: Vec::new(),
            phase: Phase::Waiting { until: now },
        };
        self.ops.insert(id, op);
        self.start_attempt(now, id);
        id
    }

    fn start_attempt(&mut self, now: Instant, id: OpId) {
        let drift_end = |ttl: Duration| now + ttl - self.options.drift(ttl);
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.attempt += 1;
        op.t0 = now;
        op.stage = Stage::Main;
        let ttl_ms = Bytes::from(op.ttl.as_millis().max(1).to_string());
        let token = op.attempt_token().bytes().clone();
        let (script, keys, argv, deadline): (ScriptId, Arc<[Bytes]>, Arc<[Bytes]>, _) =
            match op.kind {
                Kind::Acquire => match &op.fence_keys {
                    Some(fence) => {
                        let keys = op.keys.iter().chain(fence.iter()).cloned().collect();
                        (
                            ScriptId::FencedAcquire,
                            keys,
                            Arc::from([token, ttl_ms]),
                            Some(drift_end(op.ttl)),
                        )
                    }
                    // One key with the default script: `SET key token NX PX ttl` does exactly
                    // what the script does, without running Lua on the node.
                    None if sends_set_nx(self.plain_set, op) => (
                        ScriptId::SetNx,
                        op.keys.clone(),
                        Arc::from([token, ttl_ms]),
                        Some(drift_end(op.ttl)),
                    ),
                    None => (
                        ScriptId::Acquire,
                        op.keys.clone(),
                        Arc::from([token, ttl_ms]),
                        Some(drift_end(op.ttl)),
                    ),
                },
                Kind::Extend { .. } => (
                    ScriptId::Extend,
                    op.keys.clone(),
                    Arc::from([token, ttl_ms]),
                    Some(drift_end(op.ttl)),
                ),
                Kind::Release => (ScriptId::Release, op.keys.clone(), Arc::from([token]), None),
            };
        op.phase = Phase::Voting { deadline };
        self.send_round(now, id, script, &keys, &argv);
    }

    /// Sends one round of `script` to every connected node (the others vote `NotReady`), then
    /// decides if that already settles it.
    fn send_round(
        &mut self,
        now: Instant,
        id: OpId,
        script: ScriptId,
        keys: &Arc<[Bytes]>,
        argv: &Arc<[Bytes]>,
    ) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.round += 1;
        let tag = Tag::Vote {
            op: id,
            round: op.round,
        };
        let compiled = self.scripts.get(script);
        let plain: Option<Arc<[Bytes]>> = (script == ScriptId::SetNx).then(|| {
            let b = Bytes::from_static;
            Arc::from([
                b(b"SET"),
                keys[0].clone(),
                argv[0].clone(),
                b(b"NX"),
                b(b"PX"),
                argv[1].clone(),
            ])
        });
        op.counters = vec![None; self.conns.len()];
        op.votes = self
            .conns
            .iter_mut()
            .map(|c| {
                if let (true, Some(args)) = (c.is_up(), &plain) {
                    c.send_plain(now, tag, args.clone(), compiled, keys, argv);
                    None
                } else if c.is_up() {
                    c.send_script(now, tag, compiled, keys, argv);
                    None
                } else {
                    Some(Outcome::NotReady)
                }
            })
            .collect();
        self.decide(now, id);
    }

    /// Routes one reply. Returns a reason to break the connection when the reply makes no
    /// sense for its request.
    fn on_reply(
        &mut self,
        now: Instant,
        node: NodeId,
        tag: Tag,
        reply: Reply,
    ) -> Result<(), ConnError> {
        let (op, round) = match tag {
            Tag::Vote { op, round } => (op, round),
            Tag::Info => return self.on_info(now, node, &reply),
            // Handshake successes need no action; cleanup replies are best effort.
            Tag::Handshake | Tag::Cleanup => return Ok(()),
        };
        let Some(o) = self.ops.get(&op) else {
            return Ok(());
        };
        if o.round != round {
            // A late reply to a round already decided: its request was matched in order, so
            // the stream is fine; what it says no longer matters (and its type belongs to
            // that round's request, not the current one's).
            return Ok(());
        }
        let fenced_main = o.fence_keys.is_some() && o.stage == Stage::Main;
        let set_nx = sends_set_nx(self.plain_set, o);
        // A script's replies and SET's replies differ: each request accepts only its own.
        let script = !fenced_main && !set_nx;
        let mut counter = None;
        let outcome = match (o.kind, &reply) {
            (_, Reply::Error(e)) => Outcome::ErrorReply(e.clone()),
            (Kind::Release, Reply::Int(n)) if *n >= 0 => {
                Outcome::Released(u32::try_from(*n).unwrap_or(u32::MAX))
            }
            (Kind::Acquire, Reply::Array(items)) if fenced_main => match items.as_slice() {
                [Reply::Int(0)] => Outcome::Refused,
                [Reply::Int(1), Reply::Int(c)] if *c >= 0 => {
                    counter = u64::try_from(*c).ok();
                    Outcome::Granted
                }
                _ => return self.unexpected(now, op, round, node, &reply),
            },
            (Kind::Acquire, Reply::Status(ok)) if set_nx && &ok[..] == b"OK" => Outcome::Granted,
            (Kind::Acquire, Reply::Nil) if set_nx => Outcome::Refused,
            // A SET NX re-run after a NOSCRIPT ahead of it goes out as the acquire script.
            (Kind::Acquire, Reply::Int(1)) if set_nx => Outcome::Granted,
            (Kind::Acquire, Reply::Int(0)) if set_nx => Outcome::Refused,
            (Kind::Acquire | Kind::Extend { .. }, Reply::Int(1) | Reply::Bool(true)) if script => {
                Outcome::Granted
            }
            // Lua `false` arrives as a nil bulk string in RESP2.
            (
                Kind::Acquire | Kind::Extend { .. },
                Reply::Int(0) | Reply::Bool(false) | Reply::Nil,
            ) if script => Outcome::Refused,
            _ => return self.unexpected(now, op, round, node, &reply),
        };
        let outcome = match (outcome, self.sits_out(node, now)) {
            (Outcome::Granted, Some(remaining)) => Outcome::SittingOut { remaining },
            (outcome, _) => outcome,
        };
        if let Some(o) = self.ops.get_mut(&op) {
            if o.round == round {
                if let Some(slot) = o.counters.get_mut(node.0) {
                    *slot = counter;
                }
            }
        }
        self.vote(now, op, round, node, outcome);
        Ok(())
    }

    fn unexpected(
        &mut self,
        now: Instant,
        op: OpId,
        round: u32,
        node: NodeId,
        reply: &Reply,
    ) -> Result<(), ConnError> {
        let err = ConnError::UnexpectedReply(format!("{reply:?} to a lock script"));
        self.vote(now, op, round, node, Outcome::Broken(err.clone()));
        Err(err)
    }

    /// How long `node` still sits out under restart-aware voting; `None` when its votes count.
    fn sits_out(&self, node: NodeId, now: Instant) -> Option<Duration> {
        let grace = self.options.restart_grace?;
        match self.voters[node.0].eligible_at {
            None => Some(grace),
            Some(at) if now < at => Some(at - now),
            Some(_) => None,
        }
    }

    /// `INFO server` answered: decide from when this node's votes count.
    fn on_info(&mut self, now: Instant, node: NodeId, reply: &Reply) -> Result<(), ConnError> {
        let Some(grace) = self.options.restart_grace else {
            return Ok(());
        };
        let text = match reply {
            Reply::Bulk(b) | Reply::Status(b) => String::from_utf8_lossy(b).into_owned(),
            other => {
                return Err(ConnError::UnexpectedReply(format!(
                    "{other:?} to INFO server"
                )))
            }
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let (Some(run_id), Some(uptime)) = (
            field("run_id"),
            field("uptime_in_seconds").and_then(|u| u.parse::<u64>().ok()),
        ) else {
            return Err(ConnError::UnexpectedReply(
                "INFO server without run_id and uptime_in_seconds".into(),
            ));
        };
        let voter = &mut self.voters[node.0];
        let restarted = voter.run_id.as_deref().is_some_and(|prev| prev != run_id);
        // Up for less than the grace: it may have lost keys of locks still valid elsewhere.
        let mut wait = grace.saturating_sub(Duration::from_secs(uptime));
        if restarted {
            wait = grace;
        }
        voter.run_id = Some(run_id.to_string());
        voter.eligible_at = Some(now + wait);
        Ok(())
    }

    fn vote(&mut self, now: Instant, id: OpId, round: u32, node: NodeId, outcome: Outcome) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if op.round != round || !matches!(op.phase, Phase::Voting { .. }) {
            return; // a late vote for a round already decided
        }
        match op.votes.get_mut(node.0) {
            Some(slot @ None) => *slot = Some(outcome),
            _ => return,
        }
        self.decide(now, id);
    }

    fn fail_tags(&mut self, now: Instant, node: NodeId, tags: Vec<Tag>, outcome: &Outcome) {
        for tag in tags {
            if let Tag::Vote { op, round } = tag {
                self.vote(now, op, round, node, outcome.clone());
            }
        }
    }

    fn poison(&mut self, now: Instant, node: NodeId, reason: ConnError) {
        let tags = self.conns[node.0].shut();
        let outcome = match reason {
            ConnError::Timeout(_) => Outcome::Timeout,
            ref other => Outcome::Broken(other.clone()),
        };
        self.fail_tags(now, node, tags, &outcome);
        self.events.push_back(Event::Reconnect { node, reason });
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
                self.events.push_back(Event::Completed {
                    op: id,
                    result: Ok(Done::Released(Released { confirmed, attempt })),
                });
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
                    let (fencing_token, done): (_, fn(Lock) -> Done) = match (op.kind, op.stage) {
                        (Kind::Extend { fencing_token, .. }, _) => (fencing_token, Done::Extended),
                        (_, Stage::Fence { token }) => (Some(token), Done::Acquired),
                        _ => (None, Done::Acquired),
                    };
                    let token = op.attempt_token();
                    let lock = Lock {
                        resources: op.resources,
                        keys: op.keys,
                        token,
                        ttl: op.ttl,
                        valid_until,
                        fencing_token,
                        attempts: op.attempt,
                    };
                    self.events.push_back(Event::Completed {
                        op: id,
                        result: Ok(done(lock)),
                    });
                } else {
                    self.end_attempt(now, id, Outcome::NotAwaited, true);
                }
            }
        }
    }

    /// A fenced acquire won its quorum: write `T = max(counters of the granting nodes) + 1`
    /// back, to every node, while the keys are held. Only a quorum of write-backs makes the lock.
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
        let token = top.saturating_add(1);
        op.stage = Stage::Fence { token };
        let fence = op.fence_keys.clone().expect("fenced acquire");
        let keys: Arc<[Bytes]> = op.keys.iter().chain(fence.iter()).cloned().collect();
        let argv: Arc<[Bytes]> = Arc::from([
            op.attempt_token().bytes().clone(),
            Bytes::from(token.to_string()),
        ]);
        self.send_round(now, id, ScriptId::Fence, &keys, &argv);
    }

    fn report(&self, op: &Op, now: Instant, unanswered: &Outcome) -> Attempt {
        Attempt {
            elapsed: now.saturating_duration_since(op.t0),
            nodes: op
                .votes
                .iter()
                .enumerate()
                .map(|(i, v)| NodeReport {
                    node: NodeId(i),
                    addr: self.addrs[i].clone(),
                    outcome: v.clone().unwrap_or_else(|| unanswered.clone()),
                })
                .collect(),
        }
    }

    /// The current attempt failed (or ran out of time): record it, undo an acquire, and retry
    /// or give up.
    fn end_attempt(&mut self, now: Instant, id: OpId, unanswered: Outcome, too_late: bool) {
        let Some(op) = self.ops.get(&id) else { return };
        let attempt = self.report(op, now, &unanswered);
        let (kind, keys, token, n) = (op.kind, op.keys.clone(), op.attempt_token(), op.attempt);
        if kind == Kind::Acquire {
            // Release everywhere, not only where granted: a yes may be in flight or lost.
            self.cleanup(now, &keys, &token);
        }
        let wait = self.retry_wait();
        let may_retry = self.options.retry_count.is_none_or(|c| n <= c)
            && match kind {
                Kind::Extend { valid_until, .. } => now + wait < valid_until,
                _ => true,
            };
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if may_retry && kind != Kind::Release {
            op.attempts.push(attempt);
            op.phase = Phase::Waiting { until: now + wait };
            return;
        }
        let mut op = self.ops.remove(&id).expect("present");
        let failure = classify(kind, &attempt, self.quorum, too_late);
        op.attempts.push(attempt);
        self.events.push_back(Event::Completed {
            op: id,
            result: Err(OpError {
                failure,
                attempts: op.attempts,
            }),
        });
    }

    fn retry_wait(&mut self) -> Duration {
        let base = self.options.retry_delay;
        let jitter = self.options.retry_jitter;
        let span = u64::try_from(jitter.as_micros().saturating_mul(2)).unwrap_or(u64::MAX);
        let offset = Duration::from_micros(self.rng.below_inclusive(span));
        (base + offset).saturating_sub(jitter)
    }

    fn cleanup(&mut self, now: Instant, keys: &Arc<[Bytes]>, token: &Token) {
        let argv: Arc<[Bytes]> = Arc::from([token.bytes().clone()]);
        let script = self.scripts.get(ScriptId::Release);
        for c in self.conns.iter_mut().filter(|c| c.is_up()) {
            c.send_script(now, Tag::Cleanup, script, keys, &argv);
        }
    }
}

fn handshake(
    node: &crate::config::NodeConfig,
    options: &Options,
    scripts: &ScriptSet,
) -> Vec<Vec<Bytes>> {
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let mut cmds = Vec::new();
    match options.protocol {
        Protocol::Resp3 => {
            let mut hello = vec![b("HELLO"), b("3")];
            if let Some(pass) = &node.password {
                hello.extend([
                    b("AUTH"),
                    b(node.username.as_deref().unwrap_or("default")),
                    b(pass),
                ]);
            }
            if let Some(name) = &options.client_name {
                hello.extend([b("SETNAME"), b(name)]);
            }
            cmds.push(hello);
        }
        Protocol::Resp2 => {
            if let Some(pass) = &node.password {
                let mut auth = vec![b("AUTH")];
                auth.extend(node.username.as_deref().map(b));
                auth.push(b(pass));
                cmds.push(auth);
            }
            if let Some(name) = &options.client_name {
                cmds.push(vec![b("CLIENT"), b("SETNAME"), b(name)]);
            }
        }
    }
    if node.db != 0 {
        cmds.push(vec![b("SELECT"), b(&node.db.to_string())]);
    }
    // Load the scripts up front, so EVALSHA hits from the first request. A NOSCRIPT (after a
    // SCRIPT FLUSH) is still handled, by re-sending everything queued behind it in order
    // (see conn.rs), but each one costs a round of re-sends.
    let fenced: &[ScriptId] = if options.fencing {
        &[ScriptId::FencedAcquire, ScriptId::Fence]
    } else {
        &[]
    };
    for &id in [ScriptId::Acquire, ScriptId::Extend, ScriptId::Release]
        .iter()
        .chain(fenced)
    {
        cmds.push(vec![b("SCRIPT"), b("LOAD"), scripts.get(id).source.clone()]);
    }
    cmds
}

/// Whether `op`'s main round goes out as `SET key token NX PX ttl` rather than a script: an
/// acquire of one key, without fencing, while the acquire script is the default one.
fn sends_set_nx(plain_set: bool, op: &Op) -> bool {
    plain_set && op.kind == Kind::Acquire && op.fence_keys.is_none() && op.keys.len() == 1
}

/// The fence-counter key of a lock key, in the same cluster slot: `{K}:fence`, or `K:fence` when
/// `K` already has a hash tag (a `{…}` with something inside: the slot then comes from the tag).
/// `K` is the Redis key, i.e. the resource name with any `key_prefix` in front.
///
/// ```
/// assert_eq!(&redlock_core::fence_key(b"orders:42")[..], b"{orders:42}:fence");
/// assert_eq!(&redlock_core::fence_key(b"{user1}:x")[..], b"{user1}:x:fence");
/// assert_eq!(&redlock_core::fence_key(b"a{}b")[..], b"{a{}b}:fence");
/// ```
pub fn fence_key(key: &[u8]) -> Bytes {
    let has_tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| key[open + 1..].iter().position(|b| *b == b'}'))
        .is_some_and(|len| len > 0);
    let mut out = Vec::with_capacity(key.len() + 8);
    if has_tag {
        out.extend_from_slice(key);
    } else {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    }
    out.extend_from_slice(b":fence");
    Bytes::from(out)
}
