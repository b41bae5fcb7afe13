//! One [`Engine`] wired to N model [`Node`]s over [`Link`]s: the smallest driver loop, for tests
//! that want a working cluster and a few knobs rather than a full simulation.
//!
//! The rig owns the virtual clock (`rig.now`), moves every byte as soon as it is asked to
//! ([`Rig::pump`]), records everything the engine transmitted and emitted, closes a link when the
//! engine asks for a reconnect, and fires timeouts when told to ([`Rig::fire_timeout`],
//! [`Rig::advance`]). Reconnecting is left to the test ([`Rig::connect`]).
//!
//! ```
//! use redlock_core::Options;
//! use redlock_sim::Done;
//! use redlock_sim::Rig;
//! use std::time::Duration;
//!
//! let mut rig = Rig::new(3, Options::default(), 7);
//! rig.connect_all();
//! let wall = rig.wall();
//! let op = rig.engine.acquire(rig.now, ["job"], Duration::from_secs(5), Rig::token(1), wall).unwrap();
//! let done = rig.run_until_complete(op, 10).unwrap();
//! assert!(matches!(done, Done::Acquired(_)));
//! assert_eq!(rig.holders(b"job"), 3);
//! ```

use crate::clock::wall_clock;
use crate::completion::{completion, Done};
use crate::link::Link;
use crate::node::Node;
use crate::request::parse_commands;
use bytes::Bytes;
use redlock_core::{
    Config, Endpoint, Engine, Event, LinkId, NodeConfig, OpError, OpId, Options, Token,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// An engine, its model nodes and the links between them. Fields are public: reach in.
#[derive(Debug)]
pub struct Rig {
    /// The engine under test.
    pub engine: Engine,
    /// The model nodes, indexed like the engine's nodes.
    pub nodes: Vec<Node>,
    /// The open connection of each of the engine's links (link `i < nodes` is node `i`'s
    /// own), if any.
    pub links: Vec<Option<Link>>,
    /// The model node each link goes to.
    pub link_nodes: Vec<usize>,
    /// The virtual clock.
    pub now: Instant,
    /// Every `(link, bytes)` the engine transmitted, in order.
    pub sent: Vec<(LinkId, Bytes)>,
    /// Every event the engine emitted, in order.
    pub events: Vec<Event>,
    /// How many request bytes were written for a node with no open link (lost).
    pub lost_bytes: usize,
    completed: BTreeMap<OpId, Result<Done, OpError>>,
}

impl Rig {
    /// `n` nodes (`model-i:7000+i`) with `options`; the engine's jitter seed is `seed`.
    /// The clock starts at an arbitrary instant.
    pub fn new(n: usize, options: Options, seed: u64) -> Rig {
        let nodes = (0..n)
            .map(|i| NodeConfig::new(format!("model-{i}"), 7000 + u16::try_from(i).unwrap_or(0)))
            .collect();
        Rig::with_config(Config::new(nodes, options), seed, Instant::now())
    }

    /// A rig for `config`, starting its clock at `start`. Nodes whose configuration has a
    /// password require it.
    ///
    /// # Panics
    ///
    /// If the engine refuses the configuration.
    pub fn with_config(config: Config, seed: u64, start: Instant) -> Rig {
        let nodes: Vec<Node> = config
            .nodes
            .iter()
            .enumerate()
            .map(|(i, nc)| {
                let mut node = Node::new(start, i as u64);
                if let Some(pass) = &nc.password {
                    node.set_password(nc.username.as_deref(), pass);
                }
                node
            })
            .collect();
        let links = nodes.iter().map(|_| None).collect();
        Rig {
            engine: Engine::new(config, start, seed).expect("valid config"),
            link_nodes: (0..nodes.len()).collect(),
            nodes,
            links,
            now: start,
            sent: Vec::new(),
            events: Vec::new(),
            lost_bytes: 0,
            completed: BTreeMap::new(),
        }
    }

    /// The wall clock at [`Rig::now`], for `Engine::acquire`: a fixed date that moves with
    /// `now`, the same for every rig in the process (so two rigs sharing nodes have wall clocks
    /// in step, as NTP keeps real machines).
    pub fn wall(&self) -> SystemTime {
        wall_clock(self.now)
    }

    /// A token made of 20 copies of `byte`.
    pub fn token(byte: u8) -> Token {
        Token::from_random(&[byte; 20]).expect("20 bytes")
    }

    /// Opens link `i` (node `i`'s own for `i` below the number of nodes) to its node, if that
    /// node is up, and tells the engine; returns whether it connected.
    pub fn connect(&mut self, i: usize) -> bool {
        let node = self.link_nodes[i];
        if let Some(old) = self.links[i].take() {
            old.close(&mut self.nodes[node], self.now, 0);
        }
        match Link::open(&mut self.nodes[node]) {
            Some(link) => {
                self.links[i] = Some(link);
                self.engine.handle_connected(self.now, LinkId::new(i));
                true
            }
            None => false,
        }
    }

    /// The model node `endpoint` names: `model-i` on port `7000 + i`, as [`Rig::new`] names
    /// them.
    fn resolve(&self, endpoint: &Endpoint) -> Option<usize> {
        let i: usize = endpoint.host().strip_prefix("model-")?.parse().ok()?;
        (i < self.nodes.len() && usize::from(endpoint.port()) == 7000 + i).then_some(i)
    }

    /// Connects every node.
    pub fn connect_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.connect(i);
        }
    }

    /// Closes link `i` (node `i`'s own for `i` below the number of nodes; undelivered requests
    /// are lost) and tells the engine.
    pub fn disconnect(&mut self, i: usize) {
        if let Some(old) = self.links[i].take() {
            old.close(&mut self.nodes[self.link_nodes[i]], self.now, 0);
        }
        self.engine.handle_disconnected(self.now, LinkId::new(i));
    }

    /// Moves the engine's queued output onto the links and collects its events (closing any
    /// link it wants reconnected, opening and connecting the links it asks for). Nothing is
    /// delivered to the nodes.
    pub fn drain(&mut self) {
        loop {
            let mut busy = false;
            while let Some((node, bytes)) = self.engine.poll_transmit() {
                busy = true;
                match &mut self.links[node.index()] {
                    Some(link) => link.write(&bytes),
                    None => self.lost_bytes += bytes.len(),
                }
                self.sent.push((node, bytes));
            }
            while let Some(event) = self.engine.poll_event() {
                busy = true;
                if let Event::Reconnect { link, .. } = &event {
                    if let Some(old) = self.links[link.index()].take() {
                        old.close(&mut self.nodes[self.link_nodes[link.index()]], self.now, 0);
                    }
                }
                if let Event::Open { link, node, to } = &event {
                    assert_eq!(link.index(), self.links.len(), "links open in order");
                    let target = match to {
                        None => self.link_nodes[node.index()],
                        Some(endpoint) => self
                            .resolve(endpoint)
                            .unwrap_or_else(|| panic!("no model node at {endpoint}")),
                    };
                    self.links.push(None);
                    self.link_nodes.push(target);
                    self.connect(link.index());
                }
                if let Some((op, result)) = completion(&event) {
                    let first = self.completed.insert(op, result).is_none();
                    assert!(first, "{op} completed twice");
                }
                self.events.push(event);
            }
            if !busy {
                return;
            }
        }
    }

    /// Delivers everything in both directions until nothing moves: every request reaches its
    /// node, every reply reaches the engine. Nodes that are stalled or hung absorb requests.
    pub fn pump(&mut self) {
        loop {
            self.drain();
            let mut moved = false;
            for i in 0..self.links.len() {
                let node = self.link_nodes[i];
                let Some(link) = &mut self.links[i] else {
                    continue;
                };
                // Delivering nothing still lets a node that was stalled run what it buffered.
                if link.deliver(&mut self.nodes[node], self.now, None) > 0 {
                    moved = true;
                }
                let replies = link.read(None);
                let closed = link.is_closed(&self.nodes[node]);
                if !replies.is_empty() {
                    moved = true;
                    self.engine.handle_input(self.now, LinkId::new(i), &replies);
                }
                if closed {
                    self.disconnect(i);
                    moved = true;
                }
            }
            if !moved {
                self.drain();
                return;
            }
        }
    }

    /// Sets the clock to the engine's next timeout (if it is later) and fires it, then pumps.
    /// Returns `false` when the engine is waiting for nothing.
    pub fn fire_timeout(&mut self) -> bool {
        let Some(at) = self.engine.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(at);
        self.engine.handle_timeout(self.now);
        self.pump();
        true
    }

    /// Moves the clock forward by `d`, firing the engine's timeouts as they fall due, pumping
    /// after each.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.engine.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.engine.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.engine.handle_timeout(self.now);
        self.pump();
    }

    /// The result of `op`, if it completed.
    pub fn result(&self, op: OpId) -> Option<&Result<Done, OpError>> {
        self.completed.get(&op)
    }

    /// Pumps and fires timeouts (at most `max_timeouts`) until `op` completes.
    ///
    /// # Panics
    ///
    /// If `op` has not completed by then.
    pub fn run_until_complete(&mut self, op: OpId, max_timeouts: usize) -> Result<Done, OpError> {
        self.pump();
        for _ in 0..=max_timeouts {
            if let Some(r) = self.result(op) {
                return r.clone();
            }
            if !self.fire_timeout() {
                break;
            }
        }
        match self.result(op) {
            Some(r) => r.clone(),
            None => panic!("{op} did not complete within {max_timeouts} timeouts"),
        }
    }

    /// How many nodes hold `key` (database 0) at the current time.
    pub fn holders(&self, key: &[u8]) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.get(self.now, 0, key).is_some())
            .count()
    }

    /// The commands the engine sent to node `i` so far (on any link), parsed.
    pub fn commands_to(&self, i: usize) -> Vec<Vec<Bytes>> {
        let bytes: Vec<u8> = self
            .sent
            .iter()
            .filter(|(l, _)| self.link_nodes[l.index()] == i)
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        parse_commands(&bytes).expect("the engine sends valid commands")
    }
}
