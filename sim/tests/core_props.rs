//! Properties of the sans-IO engine, through the public API of `redlock-core`, against model
//! nodes (`redlock_sim::Node`) connected by byte-queue links (`redlock_sim::Link`).
//!
//! Each property runs a proptest-generated schedule: which client/node pair's bytes move next
//! (whole or split anywhere), which connections drop (losing or flushing what was in flight),
//! when time advances (to `poll_timeout()` or by an arbitrary amount), which nodes crash,
//! restart or lose their script cache, and what each client does with its lock.
//!
//! Properties and case counts (all in debug builds, well under a minute together):
//! - `mutual_exclusion` (256 cases): two engines contending for overlapping resources on 1, 3
//!   or 5 nodes never hold overlapping validity windows, under any schedule.
//! - `cleanup_leaves_nothing_behind` (256): without connection faults, once every client has
//!   released, no node holds a key (failed attempts and cancels undo what they took).
//! - `same_seed_same_run` (64): the same schedule and seeds give identical bytes and events.
//! - `every_op_terminates` (256): with garbage input, disconnects, stalls and silent nodes,
//!   every op completes exactly once, within a bounded number of timeout steps once every node
//!   goes silent, and `handle_timeout` never leaves a timeout in the past.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use redlock_core::{
    Config, Engine, Error, Event, LinkId, Lock, NodeConfig, NodeId, OpError, OpId, Options, Token,
};
use redlock_sim::wall_clock;
use redlock_sim::Link;
use redlock_sim::Node;
use redlock_sim::{completion, Done};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Resource sets the clients lock: "r" alone, "r" with "s", "s" alone.
const SETS: [&[&str]; 3] = [&["r"], &["r", "s"], &["s"]];

// ----- schedules ------------------------------------------------------------------------------

/// One scheduling decision. Client and node numbers are reduced modulo the actual counts.
#[derive(Debug, Clone)]
enum Step {
    /// Move up to `max` (all when `None`) request bytes from client `c` to node `n`.
    Deliver { c: u8, n: u8, max: Option<u8> },
    /// Move up to `max` (all when `None`) reply bytes from node `n` to client `c`.
    Reply { c: u8, n: u8, max: Option<u8> },
    /// Client `c`'s connection to node `n` drops; the first `flush` request bytes still arrive.
    Disconnect { c: u8, n: u8, flush: u16 },
    /// Client `c` reconnects every connection that is down (to nodes that are up), as an
    /// adapter's reconnect loop would.
    Connect { c: u8 },
    /// Time passes.
    Advance { ms: u16 },
    /// Time jumps to the earliest `poll_timeout()` of any client.
    Timeout,
    /// Time jumps to `offset` ms around the earliest end of validity of a held lock (where
    /// mutual exclusion is most fragile), if that is not in the past.
    NearExpiry { offset: i8 },
    /// Node `n` crashes; it comes back with its data when `keep`, empty otherwise.
    Crash { n: u8, keep: bool },
    /// Node `n` restarts if it is down (an empty node only once the longest ttl has passed).
    Restart { n: u8 },
    /// Node `n` forgets its scripts.
    FlushScripts { n: u8 },
    /// Client `c` acts on its lock: acquire, cancel, extend or release, by its state.
    Act { c: u8, choice: u8 },
    /// One round trip for client `c`: every request it wrote reaches its node, every reply
    /// comes back.
    Flow { c: u8 },
    /// `Act` then `Flow`: a client acting on a fast network.
    ActFlow { c: u8, choice: u8 },
    /// A slow round trip for client `c`: its requests reach the nodes, `ms` pass, the replies
    /// come back (the nodes ran the commands well before the client hears of it).
    Slow { c: u8, ms: u8 },
}

fn step(faults: bool) -> BoxedStrategy<Step> {
    let max = prop::option::weighted(0.5, 1u8..40);
    let common = prop_oneof![
        6 => (any::<u8>(), any::<u8>(), max.clone()).prop_map(|(c, n, max)| Step::Deliver { c, n, max }),
        6 => (any::<u8>(), any::<u8>(), max).prop_map(|(c, n, max)| Step::Reply { c, n, max }),
        5 => any::<u8>().prop_map(|c| Step::Flow { c }),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(c, choice)| Step::Act { c, choice }),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(c, choice)| Step::ActFlow { c, choice }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(c, ms)| Step::Slow { c, ms }),
        2 => (0u16..60).prop_map(|ms| Step::Advance { ms }),
        1 => any::<u8>().prop_map(|n| Step::FlushScripts { n }),
    ];
    if !faults {
        return common.boxed();
    }
    prop_oneof![
        20 => common,
        2 => (any::<u8>(), any::<u8>(), prop_oneof![Just(0u16), Just(u16::MAX), 0u16..200])
            .prop_map(|(c, n, flush)| Step::Disconnect { c, n, flush }),
        3 => any::<u8>().prop_map(|c| Step::Connect { c }),
        1 => Just(Step::Timeout),
        2 => (-20i8..20).prop_map(|offset| Step::NearExpiry { offset }),
        1 => (0u16..1500).prop_map(|ms| Step::Advance { ms }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(n, keep)| Step::Crash { n, keep }),
        1 => any::<u8>().prop_map(|n| Step::Restart { n }),
    ]
    .boxed()
}

/// Everything one run depends on.
#[derive(Debug, Clone)]
struct Case {
    nodes: usize,
    seeds: [u64; 2],
    ttl: Duration,
    options: Options,
    /// Whether requests in flight on a connection the engine gave up on still reach the node.
    flush_on_reconnect: bool,
    steps: Vec<Step>,
}

fn case(faults: bool, max_steps: usize) -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1usize), Just(3), Just(5)],
        any::<[u64; 2]>(),
        100u64..3000,
        20u64..2000,
        (0u64..150, 0u64..100),
        0u32..4,
        prop_oneof![Just(0.0), Just(0.01), Just(0.1)],
        any::<bool>(),
        prop::collection::vec(step(faults), 0..max_steps),
    )
        .prop_map(
            move |(nodes, seeds, ttl, timeout, (delay, jitter), retries, drift, flush, steps)| {
                let mut options = Options::default();
                options.retry_count = Some(retries);
                options.retry_delay = ms(delay);
                options.retry_jitter = ms(jitter.min(delay));
                options.drift_factor = drift;
                let ttl = if faults {
                    options.node_timeout = ms(timeout);
                    ms(ttl)
                } else {
                    // No timeouts and no expiry within a run: only replies decide.
                    options.node_timeout = Duration::from_secs(3600);
                    Duration::from_secs(600)
                };
                Case {
                    nodes,
                    seeds,
                    ttl,
                    options,
                    flush_on_reconnect: flush,
                    steps,
                }
            },
        )
}

// ----- the simulation -------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Hold {
    Idle,
    Acquiring(OpId),
    Holding(Lock),
    Extending(OpId, Lock),
    Releasing(OpId),
}

#[derive(Debug)]
struct Client {
    engine: Engine,
    links: Vec<Option<Link>>,
    hold: Hold,
    /// Windows (indices into `Sim::windows`) of the lock currently held.
    windows: Vec<usize>,
    in_flight: BTreeSet<OpId>,
    tokens: u32,
}

/// When a client may rely on its lock: from the moment it learns of it until its validity
/// runs out or it starts releasing.
#[derive(Debug, Clone)]
struct Window {
    client: usize,
    resources: Vec<String>,
    start: Instant,
    end: Instant,
}

/// Everything observable, for determinism checks.
#[derive(Debug, Clone, PartialEq)]
enum Trace {
    Sent(usize, LinkId, Bytes),
    Event(usize, Event),
}

#[derive(Debug, Default)]
struct Stats {
    acquired: usize,
    extended: usize,
    both_acquired: bool,
    acquired_after_restart: bool,
}

struct Sim {
    now: Instant,
    nodes: Vec<Node>,
    /// For a crashed node: since when, and whether it keeps its data.
    down: Vec<Option<(Instant, bool)>>,
    restarted: bool,
    clients: Vec<Client>,
    windows: Vec<Window>,
    ttl: Duration,
    flush_on_reconnect: bool,
    trace: Vec<Trace>,
    stats: Stats,
}

impl Sim {
    fn new(case: &Case, start: Instant, clients: usize) -> Sim {
        let configs: Vec<NodeConfig> = (0..case.nodes)
            .map(|i| NodeConfig::new("model", 7000 + u16::try_from(i).unwrap()))
            .collect();
        let clients = (0..clients)
            .map(|c| Client {
                engine: Engine::new(
                    Config::new(configs.clone(), case.options.clone()),
                    start,
                    case.seeds[c % 2],
                )
                .expect("valid config"),
                links: (0..case.nodes).map(|_| None).collect(),
                hold: Hold::Idle,
                windows: Vec::new(),
                in_flight: BTreeSet::new(),
                tokens: 0,
            })
            .collect();
        let mut sim = Sim {
            now: start,
            nodes: (0..case.nodes)
                .map(|i| Node::new(start, i as u64))
                .collect(),
            down: vec![None; case.nodes],
            restarted: false,
            clients,
            windows: Vec::new(),
            ttl: case.ttl,
            flush_on_reconnect: case.flush_on_reconnect,
            trace: Vec::new(),
            stats: Stats::default(),
        };
        for c in 0..sim.clients.len() {
            for n in 0..case.nodes {
                sim.connect(c, n);
            }
        }
        sim
    }

    fn connect(&mut self, c: usize, n: usize) {
        let client = &mut self.clients[c];
        if client.links[n].is_some() {
            return;
        }
        if let Some(link) = Link::open(&mut self.nodes[n]) {
            client.links[n] = Some(link);
            client.engine.handle_connected(self.now, NodeId::new(n));
        }
    }

    fn disconnect(&mut self, c: usize, n: usize, flush: usize) {
        if let Some(link) = self.clients[c].links[n].take() {
            link.close(&mut self.nodes[n], self.now, flush);
            self.clients[c]
                .engine
                .handle_disconnected(self.now, NodeId::new(n));
        }
    }

    /// After the node side of a link closed and the client read everything: end of stream.
    fn check_eof(&mut self, c: usize, n: usize) {
        let closed = self.clients[c].links[n]
            .as_ref()
            .is_some_and(|l| l.readable() == 0 && l.is_closed(&self.nodes[n]));
        if closed {
            self.disconnect(c, n, 0);
        }
    }

    fn deliver(&mut self, c: usize, n: usize, max: Option<usize>) {
        if let Some(link) = &mut self.clients[c].links[n] {
            link.deliver(&mut self.nodes[n], self.now, max);
        }
        self.check_eof(c, n);
    }

    fn reply(&mut self, c: usize, n: usize, max: Option<usize>) {
        let client = &mut self.clients[c];
        if let Some(link) = &mut client.links[n] {
            let bytes = link.read(max);
            if !bytes.is_empty() {
                client.engine.handle_input(self.now, NodeId::new(n), &bytes);
            }
        }
        self.check_eof(c, n);
    }

    fn flow(&mut self, c: usize) -> Result<(), String> {
        for n in 0..self.nodes.len() {
            self.deliver(c, n, None);
            self.reply(c, n, None);
            self.drain()?;
        }
        Ok(())
    }

    fn fire(&mut self) {
        for client in &mut self.clients {
            if client.engine.poll_timeout().is_some_and(|t| t <= self.now) {
                client.engine.handle_timeout(self.now);
            }
        }
    }

    fn earliest_timeout(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter_map(|c| c.engine.poll_timeout())
            .min()
    }

    fn run_step(&mut self, step: &Step) -> Result<(), String> {
        let (nc, nn) = (self.clients.len(), self.nodes.len());
        match *step {
            Step::Deliver { c, n, max } => {
                self.deliver(
                    usize::from(c) % nc,
                    usize::from(n) % nn,
                    max.map(usize::from),
                );
            }
            Step::Reply { c, n, max } => {
                self.reply(
                    usize::from(c) % nc,
                    usize::from(n) % nn,
                    max.map(usize::from),
                );
            }
            Step::Disconnect { c, n, flush } => {
                self.disconnect(usize::from(c) % nc, usize::from(n) % nn, usize::from(flush));
            }
            Step::Connect { c } => {
                for n in 0..nn {
                    self.connect(usize::from(c) % nc, n);
                }
            }
            Step::Advance { ms: d } => {
                self.now += ms(u64::from(d));
                self.fire();
            }
            Step::Timeout => {
                if let Some(t) = self.earliest_timeout() {
                    self.now = self.now.max(t);
                    self.fire();
                }
            }
            Step::NearExpiry { offset } => {
                let end = self
                    .clients
                    .iter()
                    .filter_map(|c| match &c.hold {
                        Hold::Holding(lock) | Hold::Extending(_, lock) => Some(lock.valid_until()),
                        _ => None,
                    })
                    .min();
                let delta = ms(u64::from(offset.unsigned_abs()));
                let target = end.map(|e| if offset < 0 { e - delta } else { e + delta });
                if let Some(t) = target.filter(|t| *t > self.now) {
                    self.now = t;
                    self.fire();
                }
            }
            Step::Crash { n, keep } => {
                let n = usize::from(n) % nn;
                if self.nodes[n].is_up() {
                    self.nodes[n].crash();
                    self.down[n] = Some((self.now, keep));
                    for c in 0..nc {
                        self.disconnect(c, n, 0);
                    }
                }
            }
            Step::Restart { n } => self.restart(usize::from(n) % nn, true),
            Step::FlushScripts { n } => self.nodes[usize::from(n) % nn].flush_scripts(),
            Step::Act { c, choice } => self.act(usize::from(c) % nc, choice)?,
            Step::Flow { c } => self.flow(usize::from(c) % nc)?,
            Step::Slow { c, ms: d } => {
                let c = usize::from(c) % nc;
                for n in 0..nn {
                    self.deliver(c, n, None);
                }
                self.now += ms(u64::from(d));
                self.fire();
                self.drain()?;
                for n in 0..nn {
                    self.reply(c, n, None);
                    self.drain()?;
                }
            }
            Step::ActFlow { c, choice } => {
                let c = usize::from(c) % nc;
                self.act(c, choice)?;
                self.drain()?;
                self.flow(c)?;
            }
        }
        self.drain()
    }

    /// Restarts node `n` if it is down. A node that lost its data only comes back once every
    /// key it could have held has expired (Redlock's "delayed restart"); with `wait` the clock
    /// is moved forward to allow it, otherwise the restart is skipped.
    fn restart(&mut self, n: usize, wait: bool) {
        let Some((since, keep)) = self.down[n] else {
            return;
        };
        let safe_at = since + self.ttl;
        if !keep && self.now < safe_at {
            if !wait {
                return;
            }
            self.now = safe_at;
            self.fire();
        }
        self.nodes[n].restart(self.now, keep);
        self.down[n] = None;
        self.restarted = true;
    }

    fn act(&mut self, c: usize, choice: u8) -> Result<(), String> {
        let now = self.now;
        let ttl = self.ttl;
        let client = &mut self.clients[c];
        match client.hold.clone() {
            Hold::Idle => {
                client.tokens += 1;
                let mut random = [0u8; 20];
                random[0] = u8::try_from(c).unwrap();
                random[1..5].copy_from_slice(&client.tokens.to_be_bytes());
                let token = Token::from_random(&random).unwrap();
                let resources = SETS[usize::from(choice) % SETS.len()];
                let op = client
                    .engine
                    .acquire(now, resources, ttl, token, wall_clock(now))
                    .map_err(|e| format!("acquire refused: {e}"))?;
                client.in_flight.insert(op);
                client.hold = Hold::Acquiring(op);
            }
            Hold::Holding(lock) => match choice % 3 {
                0 => {
                    // From here on the client no longer relies on the lock.
                    for &w in &client.windows {
                        let w = &mut self.windows[w];
                        w.end = w.end.min(now);
                    }
                    client.windows.clear();
                    let op = client.engine.release(now, &lock);
                    client.in_flight.insert(op);
                    client.hold = Hold::Releasing(op);
                }
                1 => match client.engine.extend(now, &lock, ttl) {
                    Ok(op) => {
                        ensure!(lock.is_valid(now), "extended an expired lock");
                        client.in_flight.insert(op);
                        client.hold = Hold::Extending(op, lock);
                    }
                    Err(Error::Expired) => {
                        ensure!(!lock.is_valid(now), "a valid lock refused as expired");
                    }
                    Err(e) => return Err(format!("extend refused: {e}")),
                },
                _ => {}
            },
            Hold::Acquiring(op) | Hold::Extending(op, _) | Hold::Releasing(op) => {
                if choice.is_multiple_of(4) {
                    client
                        .engine
                        .cancel(now, op)
                        .map_err(|e| format!("cancel of an op in flight: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// Moves every client's output onto its links and handles its events.
    fn drain(&mut self) -> Result<(), String> {
        for c in 0..self.clients.len() {
            loop {
                let mut busy = false;
                while let Some((node, bytes)) = self.clients[c].engine.poll_transmit() {
                    busy = true;
                    self.trace.push(Trace::Sent(c, node, bytes.clone()));
                    match &mut self.clients[c].links[node.index()] {
                        Some(link) => link.write(&bytes),
                        None => return Err(format!("client {c} wrote to {node}, not connected")),
                    }
                }
                while let Some(event) = self.clients[c].engine.poll_event() {
                    busy = true;
                    self.trace.push(Trace::Event(c, event.clone()));
                    match event {
                        Event::Reconnect { link: node, .. } => {
                            let n = node.index();
                            ensure!(
                                !self.clients[c].engine.is_connected(node),
                                "Reconnect for a node still connected"
                            );
                            if let Some(link) = self.clients[c].links[n].take() {
                                let flush = if self.flush_on_reconnect {
                                    usize::MAX
                                } else {
                                    0
                                };
                                link.close(&mut self.nodes[n], self.now, flush);
                            }
                        }
                        Event::Ready { link } => ensure!(
                            self.clients[c].engine.is_ready(link),
                            "Ready for a link whose handshake has not succeeded"
                        ),
                        // Left unopened, like a link whose connects keep failing.
                        Event::Open { .. } => {}
                        other if completion(&other).is_some() => {
                            let (op, result) = completion(&other).expect("a completion");
                            self.completed(c, op, result)?
                        }
                        other => return Err(format!("unknown event {other:?}")),
                    }
                }
                if !busy {
                    break;
                }
            }
        }
        Ok(())
    }

    fn completed(
        &mut self,
        c: usize,
        op: OpId,
        result: Result<Done, OpError>,
    ) -> Result<(), String> {
        let now = self.now;
        let client = &mut self.clients[c];
        ensure!(
            client.in_flight.remove(&op),
            "client {c}: {op} completed but was not in flight"
        );
        let fresh = |lock: &Lock| -> Result<Window, String> {
            ensure!(
                lock.is_valid(now),
                "client {c}: a lock handed out already expired"
            );
            Ok(Window {
                client: c,
                resources: lock.resources().to_vec(),
                start: now,
                end: lock.valid_until(),
            })
        };
        let window = match (client.hold.clone(), result) {
            (Hold::Acquiring(o), Ok(Done::Acquired(lock))) if o == op => {
                let w = fresh(&lock)?;
                client.hold = Hold::Holding(lock);
                self.stats.acquired += 1;
                Some(w)
            }
            (Hold::Acquiring(o), Err(_)) if o == op => {
                client.hold = Hold::Idle;
                None
            }
            (Hold::Extending(o, old), Ok(Done::Extended(lock))) if o == op => {
                ensure!(lock.token() == old.token(), "extend changed the token");
                let w = fresh(&lock)?;
                client.hold = Hold::Holding(lock);
                self.stats.extended += 1;
                Some(w)
            }
            (Hold::Extending(o, old), Err(_)) if o == op => {
                client.hold = Hold::Holding(old);
                None
            }
            (Hold::Releasing(o), Ok(Done::Released(_)) | Err(_)) if o == op => {
                client.hold = Hold::Idle;
                None
            }
            (hold, result) => {
                return Err(format!(
                    "client {c}: {op} completed with {result:?} while {hold:?}"
                ))
            }
        };
        if let Some(w) = window {
            self.check_exclusion(&w)?;
            self.clients[c].windows.push(self.windows.len());
            if self.restarted {
                self.stats.acquired_after_restart = true;
            }
            self.windows.push(w);
            let clients: BTreeSet<usize> = self.windows.iter().map(|w| w.client).collect();
            self.stats.both_acquired |= clients.len() > 1;
        }
        Ok(())
    }

    fn check_exclusion(&self, w: &Window) -> Result<(), String> {
        for o in &self.windows {
            let shared = o.resources.iter().any(|r| w.resources.contains(r));
            let overlap = o.start < w.end && w.start < o.end;
            ensure!(
                o.client == w.client || !shared || !overlap,
                "mutual exclusion violated: {o:?} and {w:?} (now {:?} after start)",
                w.start.saturating_duration_since(self.windows[0].start)
            );
        }
        Ok(())
    }

    /// Brings every node back, reconnects everything, delivers every byte and fires timeouts
    /// until no operation is in flight. Returns how many timeouts it took.
    fn settle(&mut self) -> Result<usize, String> {
        for n in 0..self.nodes.len() {
            self.restart(n, true);
        }
        let mut timeouts = 0;
        for _ in 0..10_000 {
            for c in 0..self.clients.len() {
                for n in 0..self.nodes.len() {
                    self.connect(c, n);
                }
            }
            self.drain()?;
            let mut moved = false;
            for c in 0..self.clients.len() {
                for n in 0..self.nodes.len() {
                    let client = &mut self.clients[c];
                    let Some(link) = &mut client.links[n] else {
                        continue;
                    };
                    if link.in_flight() > 0 {
                        link.deliver(&mut self.nodes[n], self.now, None);
                        moved = true;
                    }
                    let bytes = link.read(None);
                    if !bytes.is_empty() {
                        moved = true;
                        client.engine.handle_input(self.now, NodeId::new(n), &bytes);
                    }
                    self.check_eof(c, n);
                    self.drain()?;
                }
            }
            if moved {
                continue;
            }
            if self.clients.iter().all(|c| c.in_flight.is_empty()) {
                return Ok(timeouts);
            }
            let Some(t) = self.earliest_timeout() else {
                return Err("operations in flight, but no timeout set".into());
            };
            self.now = self.now.max(t);
            self.fire();
            self.drain()?;
            timeouts += 1;
        }
        Err("did not settle".into())
    }

    /// Every holder releases; then everything settles.
    fn release_all(&mut self) -> Result<(), String> {
        for c in 0..self.clients.len() {
            if let Hold::Holding(_) = self.clients[c].hold {
                self.act(c, 0)?;
            }
        }
        self.drain()?;
        self.settle().map(|_| ())
    }
}

fn run(case: &Case, start: Instant) -> Result<Sim, String> {
    let mut sim = Sim::new(case, start, 2);
    sim.drain()?;
    for (i, step) in case.steps.iter().enumerate() {
        sim.run_step(step)
            .map_err(|e| format!("step {i} {step:?}: {e}"))?;
    }
    sim.settle().map_err(|e| format!("settling: {e}"))?;
    // Then a calm contention round from wherever the schedule left things: every idle client
    // acquires at once, every holder releases, three times.
    for round in 0..3 {
        for c in 0..sim.clients.len() {
            sim.act(c, 0)
                .and_then(|()| sim.drain())
                .map_err(|e| format!("final round {round}: {e}"))?;
        }
        sim.settle()
            .map_err(|e| format!("settling round {round}: {e}"))?;
    }
    Ok(sim)
}

/// A runner for `cases` cases; `CORE_PROPS_SCALE=k` multiplies every count by `k` for a deeper
/// run (e.g. `CORE_PROPS_SCALE=20 cargo test --release -p redlock-sim --test core_props`).
fn runner(cases: u32) -> TestRunner {
    let scale = std::env::var("CORE_PROPS_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1);
    TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases.saturating_mul(scale.max(1)))
    })
}

/// Two engines contending for overlapping resources never both hold a lock on a shared resource
/// at the same time, whatever the schedule (reply order, interleaving, partial reads, lost
/// requests, disconnects, timeouts, crashes with persistence or with a delayed restart).
#[test]
fn mutual_exclusion() {
    let (both, after_restart, total) = (Cell::new(0), Cell::new(0), Cell::new(0));
    runner(512)
        .run(&case(true, 250), |case| {
            let sim = run(&case, Instant::now()).map_err(TestCaseError::fail)?;
            for w in &sim.windows {
                sim.check_exclusion(w).map_err(TestCaseError::fail)?;
            }
            total.set(total.get() + 1);
            both.set(both.get() + usize::from(sim.stats.both_acquired));
            after_restart.set(after_restart.get() + usize::from(sim.stats.acquired_after_restart));
            Ok(())
        })
        .unwrap();
    // The property is only worth something if contention actually happens.
    let (both, after_restart, total) = (both.get(), after_restart.get(), total.get());
    assert!(
        both * 4 > total,
        "only {both} of {total} runs had both clients acquire"
    );
    assert!(after_restart > 0, "no run acquired after a node restart");
}

/// Without connection faults (every request is answered, in order, eventually), failed attempts
/// and cancellations undo what they took: once every holder has released and everything
/// settled, no node holds any key. Script caches are flushed at random, so this covers the
/// NOSCRIPT → EVAL fallback interleaved with retries, cancels and releases.
#[test]
fn cleanup_leaves_nothing_behind() {
    runner(256)
        .run(&case(false, 150), |case| {
            let mut sim = run(&case, Instant::now()).map_err(TestCaseError::fail)?;
            sim.release_all().map_err(TestCaseError::fail)?;
            for (c, client) in sim.clients.iter().enumerate() {
                prop_assert!(
                    matches!(client.hold, Hold::Idle),
                    "client {c}: {:?}",
                    client.hold
                );
            }
            for t in &sim.trace {
                prop_assert!(
                    !matches!(t, Trace::Event(_, Event::Reconnect { .. })),
                    "{t:?}"
                );
            }
            for (i, node) in sim.nodes.iter().enumerate() {
                let left = node.dump(sim.now);
                prop_assert!(left.is_empty(), "node {i} still holds {left:?}");
            }
            Ok(())
        })
        .unwrap();
}

/// Same seeds and inputs (including the start instant), same transmitted bytes and events.
#[test]
fn same_seed_same_run() {
    runner(64)
        .run(&case(true, 150), |case| {
            let start = Instant::now();
            let a = run(&case, start).map_err(TestCaseError::fail)?;
            let b = run(&case, start).map_err(TestCaseError::fail)?;
            prop_assert_eq!(a.trace.len(), b.trace.len());
            for (x, y) in a.trace.iter().zip(&b.trace) {
                prop_assert_eq!(x, y);
            }
            Ok(())
        })
        .unwrap();
}

// ----- termination ----------------------------------------------------------------------------

/// One input to a single engine, for the termination property.
#[derive(Debug, Clone)]
enum Input {
    Acquire {
        set: u8,
    },
    Extend {
        which: prop::sample::Index,
    },
    Release {
        which: prop::sample::Index,
    },
    Cancel {
        which: prop::sample::Index,
    },
    Deliver {
        n: u8,
        max: Option<u8>,
    },
    Reply {
        n: u8,
        max: Option<u8>,
    },
    /// Bytes that did not come from the node.
    Garbage {
        n: u8,
        bytes: Vec<u8>,
    },
    Disconnect {
        n: u8,
    },
    Connect {
        n: u8,
    },
    Advance {
        ms: u16,
    },
    Timeout,
    /// The node stops (or resumes) answering anyone.
    Stall {
        n: u8,
        on: bool,
    },
    /// The node swallows the next command on whatever connection sends it, and that
    /// connection never answers again.
    Hang {
        n: u8,
    },
    FlushScripts {
        n: u8,
    },
}

fn input() -> impl Strategy<Value = Input> {
    let max = prop::option::weighted(0.5, 1u8..40);
    let index = any::<prop::sample::Index>;
    prop_oneof![
        4 => (0u8..3).prop_map(|set| Input::Acquire { set }),
        2 => index().prop_map(|which| Input::Extend { which }),
        2 => index().prop_map(|which| Input::Release { which }),
        2 => index().prop_map(|which| Input::Cancel { which }),
        6 => (any::<u8>(), max.clone()).prop_map(|(n, max)| Input::Deliver { n, max }),
        6 => (any::<u8>(), max).prop_map(|(n, max)| Input::Reply { n, max }),
        2 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(n, bytes)| Input::Garbage { n, bytes }),
        1 => any::<u8>().prop_map(|n| Input::Disconnect { n }),
        2 => any::<u8>().prop_map(|n| Input::Connect { n }),
        2 => (0u16..400).prop_map(|ms| Input::Advance { ms }),
        2 => Just(Input::Timeout),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(n, on)| Input::Stall { n, on }),
        1 => any::<u8>().prop_map(|n| Input::Hang { n }),
        1 => any::<u8>().prop_map(|n| Input::FlushScripts { n }),
    ]
}

/// One engine and its nodes, fed arbitrary inputs.
struct Solo {
    now: Instant,
    engine: Engine,
    nodes: Vec<Node>,
    links: Vec<Option<Link>>,
    ttl: Duration,
    in_flight: BTreeSet<OpId>,
    locks: Vec<Lock>,
    tokens: u8,
}

impl Solo {
    fn drain(&mut self) -> Result<(), String> {
        while let Some((node, bytes)) = self.engine.poll_transmit() {
            match &mut self.links[node.index()] {
                Some(link) => link.write(&bytes),
                None => return Err(format!("wrote to {node}, not connected")),
            }
        }
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::Ready { link } => {
                    ensure!(self.engine.is_ready(link), "Ready but not ready");
                }
                // Left unopened, like a link whose connects keep failing.
                Event::Open { .. } => {}
                Event::Reconnect { link: node, .. } => {
                    ensure!(!self.engine.is_connected(node), "Reconnect but connected");
                    self.links[node.index()] = None;
                }
                other => {
                    let Some((op, result)) = completion(&other) else {
                        return Err(format!("unknown event {other:?}"));
                    };
                    ensure!(
                        self.in_flight.remove(&op),
                        "{op} completed twice or unknown"
                    );
                    if let Ok(Done::Acquired(lock) | Done::Extended(lock)) = result {
                        self.locks.push(lock);
                    }
                }
            }
        }
        Ok(())
    }

    /// Fires the engine's timeout if due, and checks it asks for a strictly later one.
    fn timeout(&mut self) -> Result<(), String> {
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.engine.handle_timeout(self.now);
            let next = self.engine.poll_timeout();
            ensure!(
                next.is_none_or(|t| t > self.now),
                "handle_timeout left a timeout at or before now: {:?}",
                next.map(|t| t.saturating_duration_since(self.now))
            );
        }
        Ok(())
    }

    fn apply(&mut self, input: &Input) -> Result<(), String> {
        let nn = self.nodes.len();
        let now = self.now;
        match input {
            Input::Acquire { set } => {
                self.tokens = self.tokens.wrapping_add(1);
                let token = Token::from_random(&[self.tokens; 20]).unwrap();
                let op = self
                    .engine
                    .acquire(
                        now,
                        SETS[usize::from(*set)],
                        self.ttl,
                        token,
                        wall_clock(now),
                    )
                    .map_err(|e| e.to_string())?;
                self.in_flight.insert(op);
            }
            Input::Extend { which } if !self.locks.is_empty() => {
                let lock = &self.locks[which.index(self.locks.len())];
                match self.engine.extend(now, lock, self.ttl) {
                    Ok(op) => {
                        self.in_flight.insert(op);
                    }
                    Err(Error::Expired) => ensure!(!lock.is_valid(now), "valid but Expired"),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Input::Release { which } if !self.locks.is_empty() => {
                let lock = self.locks[which.index(self.locks.len())].clone();
                let op = self.engine.release(now, &lock);
                self.in_flight.insert(op);
            }
            Input::Cancel { which } if !self.in_flight.is_empty() => {
                let op = *self
                    .in_flight
                    .iter()
                    .nth(which.index(self.in_flight.len()))
                    .unwrap();
                self.engine.cancel(now, op).map_err(|e| e.to_string())?;
            }
            Input::Extend { .. } | Input::Release { .. } | Input::Cancel { .. } => {}
            Input::Deliver { n, max } => {
                let n = usize::from(*n) % nn;
                if let Some(link) = &mut self.links[n] {
                    link.deliver(&mut self.nodes[n], now, max.map(usize::from));
                }
            }
            Input::Reply { n, max } => {
                let n = usize::from(*n) % nn;
                if let Some(link) = &mut self.links[n] {
                    let bytes = link.read(max.map(usize::from));
                    let closed = link.readable() == 0 && link.is_closed(&self.nodes[n]);
                    self.engine.handle_input(now, NodeId::new(n), &bytes);
                    if closed {
                        self.links[n] = None;
                        self.engine.handle_disconnected(now, NodeId::new(n));
                    }
                }
            }
            Input::Garbage { n, bytes } => {
                self.engine
                    .handle_input(now, NodeId::new(usize::from(*n) % nn), bytes);
            }
            Input::Disconnect { n } => {
                let n = usize::from(*n) % nn;
                self.links[n] = None;
                self.engine.handle_disconnected(now, NodeId::new(n));
            }
            Input::Connect { n } => {
                let n = usize::from(*n) % nn;
                self.links[n] = Link::open(&mut self.nodes[n]);
                self.engine.handle_connected(now, NodeId::new(n));
            }
            Input::Advance { ms: d } => {
                self.now += ms(u64::from(*d));
                self.timeout()?;
            }
            Input::Timeout => {
                if let Some(t) = self.engine.poll_timeout() {
                    self.now = self.now.max(t);
                    self.timeout()?;
                }
            }
            Input::Stall { n, on } => self.nodes[usize::from(*n) % nn].set_stalled(*on),
            Input::Hang { n } => self.nodes[usize::from(*n) % nn].inject(
                redlock_sim::Fault::new(redlock_sim::Match::Any, redlock_sim::FaultAction::Hang)
                    .times(1),
            ),
            Input::FlushScripts { n } => self.nodes[usize::from(*n) % nn].flush_scripts(),
        }
        self.drain()
    }
}

/// Every operation completes exactly once, whatever the inputs (garbage bytes, disconnects,
/// stalls, hung connections, arbitrary time steps); once every node falls silent, driving
/// time to `poll_timeout()` finishes them all within a bounded number of `handle_timeout`
/// calls (each poisoned connection, each attempt's end and each retry wait is one), and every
/// `handle_timeout` leaves the next timeout strictly in the future.
#[test]
fn every_op_terminates() {
    let case = (
        prop_oneof![Just(1usize), Just(3), Just(5)],
        any::<u64>(),
        (10u64..2000, 5u64..500, 1u64..300, 0u64..300, 0u32..4),
        prop::collection::vec(input(), 0..120),
    );
    runner(256)
        .run(
            &case,
            |(nodes, seed, (ttl, timeout, delay, jitter, retries), inputs)| {
                let mut options = Options::default();
                options.retry_count = Some(retries);
                options.retry_delay = ms(delay);
                // Strictly less than the delay: a retry never falls due at the instant it is set.
                options.retry_jitter = ms(jitter.min(delay - 1));
                options.node_timeout = ms(timeout);
                let configs = (0..nodes)
                    .map(|i| NodeConfig::new("model", 7000 + u16::try_from(i).unwrap()))
                    .collect();
                let start = Instant::now();
                let mut solo = Solo {
                    now: start,
                    engine: Engine::new(Config::new(configs, options), start, seed).unwrap(),
                    nodes: (0..nodes).map(|i| Node::new(start, i as u64)).collect(),
                    links: (0..nodes).map(|_| None).collect(),
                    ttl: ms(ttl),
                    in_flight: BTreeSet::new(),
                    locks: Vec::new(),
                    tokens: 0,
                };
                for n in 0..nodes {
                    solo.apply(&Input::Connect { n: n as u8 })
                        .map_err(TestCaseError::fail)?;
                }
                for (i, input) in inputs.iter().enumerate() {
                    solo.apply(input)
                        .map_err(|e| TestCaseError::fail(format!("input {i} {input:?}: {e}")))?;
                }
                // Every node falls silent: only time moves.
                let bound = nodes + solo.in_flight.len() * 2 * (retries as usize + 1) + 1;
                let mut steps = 0;
                while let Some(t) = solo.engine.poll_timeout() {
                    prop_assert!(steps < bound, "still waiting after {} timeouts", steps);
                    solo.now = solo.now.max(t);
                    solo.timeout().map_err(TestCaseError::fail)?;
                    solo.drain().map_err(TestCaseError::fail)?;
                    steps += 1;
                }
                prop_assert!(
                    solo.in_flight.is_empty(),
                    "never completed: {:?}",
                    solo.in_flight
                );
                prop_assert_eq!(solo.engine.in_flight(), 0);
                Ok(())
            },
        )
        .unwrap();
}
