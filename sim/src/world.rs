//! The simulated world: clients (each its own engine, on its own clock), model nodes (each on
//! its own clock), the connections between them, and the event loop that runs a scenario to
//! the end. Network, faults, client I/O and the clients' workload are in the submodules; this
//! file holds the state they share and the dispatch.

mod client;
mod event;
mod faults;
mod migration;
mod network;
mod workload;

use crate::checker::{exclusion, FencedStore, TokenLedger, Window};
use crate::clock::{base, instant, nanos, wall, Clock, MS, SEC};
use crate::digest::Fnv;
use crate::node::Node;
use crate::report::{Check, Report, Stats, Violation};
use crate::rng::Rng;
use crate::scenario::Scenario;
use crate::session::Session;
use event::{CEv, Ev, Scheduled};
use migration::Shards;
use redlock_core::{Config, Engine, Lock, NodeConfig, OpId};
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// How long after [`Scenario::duration`] clients still wait for acquires in flight.
const GIVE_UP: u64 = 10 * SEC;

/// Direction of a connection: client to node.
const UP: usize = 0;
/// Direction of a connection: node to client.
const DOWN: usize = 1;

#[derive(Debug, Clone)]
enum State {
    Idle,
    Acquiring {
        op: OpId,
        started: u64,
        res: Vec<usize>,
    },
    Holding {
        lock: Lock,
        handout: u64,
        res: Vec<usize>,
    },
    Extending {
        op: OpId,
        lock: Lock,
        handout: u64,
        res: Vec<usize>,
    },
    Releasing {
        op: OpId,
    },
}

struct Client {
    engine: Engine,
    clock: Clock,
    /// How far this client's wall clock runs ahead of real time (nanoseconds).
    wall: u64,
    view: Vec<usize>,
    links: Vec<Option<usize>>,
    connecting: Vec<bool>,
    backoff: Vec<u64>,
    state: State,
    ticket: u64,
    paused: bool,
    pause_id: u64,
    deferred: VecDeque<CEv>,
    wake_at: Option<u64>,
    windows: Vec<usize>,
    cancelled: BTreeSet<OpId>,
}

struct Conn {
    client: usize,
    slot: usize,
    node: usize,
    session: Option<Session>,
    tail: [u64; 2],
    lost: [bool; 2],
    gone: bool,
    flush: bool,
    closed: bool,
}

struct NodeState {
    node: Node,
    clock: Clock,
    down: bool,
    stalled: bool,
    back_at: u64,
    /// When it last restarted empty (real time), if ever.
    emptied: Option<u64>,
}

struct Sim<'a> {
    sc: &'a Scenario,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    clients: Vec<Client>,
    nodes: Vec<NodeState>,
    /// The clusters (empty when every node is a standalone Redlock node).
    shards: Vec<Shards>,
    conns: Vec<Conn>,
    windows: Vec<Window>,
    handouts: u64,
    handed: TokenLedger,
    store: FencedStore,
    names: Vec<String>,
    violations: Vec<Violation>,
    stats: Stats,
    hash: Fnv,
    stopped: bool,
    log: Vec<String>,
}

/// Runs `scenario` to the end and checks it.
pub fn run(scenario: &Scenario) -> Report {
    let mut sim = Sim::new(scenario);
    sim.run();
    sim.finish()
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario) -> Sim<'a> {
        let _ = base();
        let mut rng = Rng::new(sc.seed);
        // A stream of its own, so that wall clocks leave every other draw of a seed as it was.
        let mut walls = Rng::new(sc.seed ^ 0x3A11_C10C_3A11_C10C);
        let mut views = vec![None; sc.nodes];
        let shards: Vec<Shards> = sc
            .clusters
            .iter()
            .map(|members| {
                let (shards, member_views) = Shards::new(members.clone());
                for (m, v) in members.iter().zip(member_views) {
                    views[*m] = Some(v);
                }
                shards
            })
            .collect();
        // Which member each client seeds each cluster with: a stream of its own too.
        let mut seeds = Rng::new(sc.seed ^ 0x5EED_C105_5EED_C105);
        let nodes = (0..sc.nodes)
            .map(|i| {
                let clock = Clock {
                    offset: 3600 * SEC + rng.range(0, 10 * SEC),
                    ppm: rng.range_i(sc.node_ppm.0, sc.node_ppm.1),
                };
                // Up for an hour already: restart-aware voting does not hold fresh clusters up.
                let mut node = Node::new(instant(clock.local(0) - 3600 * SEC), i as u64);
                node.set_identity(sc.servers.get(i).copied().unwrap_or_default());
                node.record(sc.log);
                for (source, kind) in &sc.learn {
                    node.learn_script(source, *kind);
                }
                node.set_cluster(views[i].take());
                for (_, fault) in sc.faults.iter().filter(|(n, _)| *n == i) {
                    node.inject(fault.clone());
                }
                NodeState {
                    node,
                    clock,
                    down: false,
                    stalled: false,
                    back_at: 0,
                    emptied: None,
                }
            })
            .collect();
        let clients = (0..sc.clients)
            .map(|c| {
                let redlock_nodes = if shards.is_empty() {
                    sc.nodes
                } else {
                    shards.len()
                };
                let picked: Vec<usize> = match &sc.views {
                    Some(v) => v[c].clone(),
                    None => (0..redlock_nodes).collect(),
                };
                // The model node each Redlock node's own link goes to: the node itself, or a
                // cluster's seed.
                let view: Vec<usize> = picked
                    .iter()
                    .map(|k| match shards.get(*k) {
                        Some(s) => s.members[seeds.below(s.members.len() as u64) as usize],
                        None => *k,
                    })
                    .collect();
                let clock = Clock {
                    offset: rng.range(0, 10 * SEC),
                    ppm: rng.range_i(sc.client_ppm.0, sc.client_ppm.1),
                };
                let configs = view
                    .iter()
                    .map(|n| {
                        let node = NodeConfig::new(format!("node-{n}"), 7000 + *n as u16);
                        if shards.is_empty() {
                            node
                        } else {
                            node.as_cluster()
                        }
                    })
                    .collect();
                let engine = Engine::new(
                    Config::new(configs, sc.options.clone()),
                    instant(clock.local(0)),
                    rng.next_u64(),
                )
                .expect("a valid scenario");
                Client {
                    engine,
                    clock,
                    wall: walls.range(0, nanos(sc.wall_offset)),
                    links: vec![None; view.len()],
                    connecting: vec![false; view.len()],
                    backoff: vec![nanos(sc.reconnect.0); view.len()],
                    view,
                    state: State::Idle,
                    ticket: 0,
                    paused: false,
                    pause_id: 0,
                    deferred: VecDeque::new(),
                    wake_at: None,
                    windows: Vec::new(),
                    cancelled: BTreeSet::new(),
                }
            })
            .collect();
        Sim {
            sc,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            clients,
            nodes,
            shards,
            conns: Vec::new(),
            windows: Vec::new(),
            handouts: 0,
            handed: TokenLedger::new(sc.resources),
            store: FencedStore::new(sc.resources),
            names: (0..sc.resources).map(|r| format!("r{r}")).collect(),
            violations: Vec::new(),
            stats: Stats::default(),
            hash: Fnv::new(),
            stopped: false,
            log: Vec::new(),
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn note(&mut self, f: impl FnOnce() -> String) {
        if self.sc.log {
            let line = format!("{:>12.6}ms {}", self.now as f64 / 1e6, f());
            self.log.push(line);
        }
    }

    fn violation(&mut self, check: Check, detail: String) {
        self.note(|| format!("VIOLATION {check:?}: {detail}"));
        self.violations.push(Violation {
            check,
            at: Duration::from_nanos(self.now),
            detail,
        });
    }

    fn local(&self, c: usize) -> Instant {
        instant(self.clients[c].clock.local(self.now))
    }

    /// Client `c`'s wall clock now, as its adapter would read `SystemTime::now()`; the Unix
    /// epoch (no fencing floor) when the scenario removed the floor.
    fn wall(&self, c: usize) -> SystemTime {
        if self.sc.floor {
            wall(self.now, self.clients[c].wall)
        } else {
            SystemTime::UNIX_EPOCH
        }
    }

    fn node_now(&self, n: usize) -> Instant {
        instant(self.nodes[n].clock.local(self.now))
    }

    fn run(&mut self) {
        let sc = self.sc;
        for n in 0..sc.nodes {
            let identity = self.nodes[n].node.identity();
            self.note(|| format!("node {n} is {identity}"));
        }
        for c in 0..sc.clients {
            for slot in 0..self.clients[c].view.len() {
                self.clients[c].connecting[slot] = true;
                let at = self.rng.range(0, MS);
                self.push(at, Ev::Client(c, CEv::Reconnect(slot)));
            }
            let d = self.rng.range(MS, 50 * MS);
            self.schedule_step(c, d);
            if let Some(every) = sc.pause_every {
                let at = nanos(self.rng.exp(every));
                self.push(at, Ev::PauseStart(c));
            }
        }
        for n in 0..sc.nodes {
            if let Some(every) = sc.crash_every {
                let at = nanos(self.rng.exp(every));
                self.push(at, Ev::Crash(n));
            }
            if let Some(every) = sc.stall_every {
                let at = nanos(self.rng.exp(every));
                self.push(at, Ev::StallStart(n));
            }
        }
        if let Some(every) = sc.migrate_every {
            for k in 0..self.shards.len() {
                if self.shards[k].members.len() > 1 {
                    let at = nanos(self.rng.exp(every));
                    self.push(at, Ev::Migrate(k));
                }
            }
        }
        self.push(nanos(sc.duration), Ev::Stop);
        self.push(nanos(sc.duration) + GIVE_UP, Ev::GiveUp);
        let hard_end = nanos(sc.duration) + GIVE_UP + 60 * SEC;
        while let Some(s) = self.queue.pop() {
            if s.at > hard_end || self.stats.events > 5_000_000 {
                let detail = format!(
                    "the run never went quiet ({} events, {} queued)",
                    self.stats.events,
                    self.queue.len() + 1
                );
                self.violation(Check::Engine, detail);
                break;
            }
            self.now = s.at;
            self.stats.events += 1;
            self.hash.u64(s.at);
            self.dispatch(s.ev);
        }
        self.stats.end = self.now;
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Client(c, cev) => {
                self.hash.u64(1 + c as u64);
                if self.clients[c].paused {
                    self.clients[c].deferred.push_back(cev);
                } else {
                    self.client_event(c, cev);
                    self.drain(c);
                }
            }
            Ev::PauseStart(c) => {
                if !self.stopped {
                    let len = nanos(self.rng.duration(self.sc.pause));
                    self.pause(c, len);
                    if let Some(every) = self.sc.pause_every {
                        let at = self.now + len + nanos(self.rng.exp(every));
                        self.push(at, Ev::PauseStart(c));
                    }
                }
            }
            Ev::PauseEnd(c, id) => {
                if self.clients[c].paused && self.clients[c].pause_id == id {
                    self.note(|| format!("client {c} resumes"));
                    self.clients[c].paused = false;
                    while !self.clients[c].paused {
                        let Some(cev) = self.clients[c].deferred.pop_front() else {
                            break;
                        };
                        self.client_event(c, cev);
                        self.drain(c);
                    }
                }
            }
            Ev::ToNode(conn, bytes) => self.node_input(conn, &bytes),
            Ev::Syn(conn) => {
                let n = self.conns[conn].node;
                if self.nodes[n].down {
                    let at = self.now + self.latency();
                    let c = self.conns[conn].client;
                    self.push(at, Ev::Client(c, CEv::ConnectFailed(conn)));
                } else {
                    self.conns[conn].session = self.nodes[n].node.connect();
                    let at = self.down_at(conn);
                    let c = self.conns[conn].client;
                    self.push(at, Ev::Client(c, CEv::Connected(conn)));
                }
            }
            Ev::Crash(n) => self.crash(n),
            Ev::Restart(n) => self.restart(n),
            Ev::StallStart(n) => self.stall(n),
            Ev::StallEnd(n) => self.unstall(n),
            Ev::Migrate(k) => self.start_migration(k),
            Ev::MigrateStep(k) => self.migrate_step(k),
            Ev::LearnOwner(n, slot, owner) => self.learn_owner(n, slot, owner),
            Ev::Store(w) => self.store_write(w),
            Ev::Stop => {
                self.note(|| "stop: no new operations".into());
                self.stopped = true;
            }
            Ev::GiveUp => {
                // Callers stop waiting: acquires still retrying are cancelled (after the
                // liveness check has seen them).
                for c in 0..self.clients.len() {
                    if let State::Acquiring { op, started, .. } = self.clients[c].state {
                        self.check_wait(c, started, "still in flight");
                        self.stats.given_up += 1;
                        let local = self.local(c);
                        if self.clients[c].engine.cancel(local, op).is_ok() {
                            self.note(|| format!("client {c} gives up on {op}"));
                            self.clients[c].cancelled.insert(op);
                            self.clients[c].state = State::Idle;
                        }
                        self.drain(c);
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Report {
        for n in &self.nodes {
            self.stats.native_deletes += n.node.native_deletes();
            self.stats.native_sets += n.node.native_sets();
        }
        let overlaps = exclusion(&self.windows);
        self.violations.extend(overlaps);
        Report {
            seed: self.sc.seed,
            violations: self.violations,
            stats: self.stats,
            hash: self.hash.value(),
            log: self.log,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state)
            .finish()
    }
}
