//! A client's connections and engine I/O: connecting and reconnecting with backoff, giving up
//! on a connection, handing the engine its input and timeouts, and moving its output onto the
//! network.

use super::event::{CEv, Ev};
use super::{Conn, Sim, UP};
use crate::clock::{local_of, nanos};
use crate::completion::completion;
use crate::report::Check;
use redlock_core::{Endpoint, Event, LinkId};

impl Sim<'_> {
    /// The model node an endpoint names: `node-N` on port `7000 + N`, as the clients'
    /// configurations name them.
    fn resolve(&self, endpoint: &Endpoint) -> Option<usize> {
        let n: usize = endpoint.host().strip_prefix("node-")?.parse().ok()?;
        (n < self.nodes.len() && usize::from(endpoint.port()) == 7000 + n).then_some(n)
    }

    /// Schedules a connection attempt for `slot` after the backoff (unless one is pending).
    pub(super) fn schedule_reconnect(&mut self, c: usize, slot: usize) {
        let client = &mut self.clients[c];
        if client.connecting[slot] {
            return;
        }
        client.connecting[slot] = true;
        let delay = client.backoff[slot];
        client.backoff[slot] = (delay * 2).min(nanos(self.sc.reconnect.1));
        let jitter = self.rng.range(0, delay / 2);
        self.push(
            self.now + delay + jitter,
            Ev::Client(c, CEv::Reconnect(slot)),
        );
    }

    pub(super) fn abandon(&mut self, conn: usize) {
        let flush = self.rng.chance(self.sc.flush_on_close);
        let cn = &mut self.conns[conn];
        cn.gone = true;
        cn.flush = flush;
        self.stats.reconnects += 1;
    }

    pub(super) fn client_event(&mut self, c: usize, cev: CEv) {
        match cev {
            CEv::Step(ticket) => {
                if ticket == self.clients[c].ticket {
                    self.step(c);
                }
            }
            CEv::Wake => {
                let now = self.now;
                let local = self.local(c);
                let client = &mut self.clients[c];
                if client.wake_at.is_some_and(|w| w <= now) {
                    client.wake_at = None;
                }
                client.engine.handle_timeout(local);
            }
            CEv::Bytes(conn, bytes) => {
                let slot = self.conns[conn].slot;
                if self.clients[c].links[slot] == Some(conn) {
                    let local = self.local(c);
                    self.clients[c]
                        .engine
                        .handle_input(local, LinkId::new(slot), &bytes);
                }
            }
            CEv::Closed(conn) => {
                let slot = self.conns[conn].slot;
                if self.clients[c].links[slot] == Some(conn) {
                    self.clients[c].links[slot] = None;
                    self.conns[conn].gone = true;
                    self.stats.reconnects += 1;
                    let local = self.local(c);
                    self.clients[c]
                        .engine
                        .handle_disconnected(local, LinkId::new(slot));
                    self.schedule_reconnect(c, slot);
                }
            }
            CEv::Connected(conn) => {
                let slot = self.conns[conn].slot;
                let client = &mut self.clients[c];
                client.connecting[slot] = false;
                client.backoff[slot] = nanos(self.sc.reconnect.0);
                client.links[slot] = Some(conn);
                let local = self.local(c);
                self.clients[c]
                    .engine
                    .handle_connected(local, LinkId::new(slot));
            }
            CEv::ConnectFailed(conn) => {
                let slot = self.conns[conn].slot;
                self.clients[c].connecting[slot] = false;
                self.schedule_reconnect(c, slot);
            }
            CEv::Reconnect(slot) => {
                if self.clients[c].links[slot].is_some() {
                    self.clients[c].connecting[slot] = false;
                    return;
                }
                let conn = self.conns.len();
                self.conns.push(Conn {
                    client: c,
                    slot,
                    node: self.clients[c].view[slot],
                    session: None,
                    tail: [0, 0],
                    lost: [false, false],
                    gone: false,
                    flush: false,
                    closed: false,
                });
                let at = self.now + self.latency();
                self.push(at, Ev::Syn(conn));
            }
            CEv::Write(w) => self.send_write(w),
        }
    }

    /// Moves the engine's output onto the network, handles its events, and arms its timer.
    pub(super) fn drain(&mut self, c: usize) {
        loop {
            let mut busy = false;
            while let Some((node, bytes)) = self.clients[c].engine.poll_transmit() {
                busy = true;
                match self.clients[c].links.get(node.index()).copied().flatten() {
                    Some(conn) => self.transmit(conn, UP, bytes),
                    None => self.violation(
                        Check::Engine,
                        format!("client {c} transmitted to {node}, which it is not connected to"),
                    ),
                }
            }
            while let Some(event) = self.clients[c].engine.poll_event() {
                busy = true;
                match event {
                    Event::Reconnect { link, reason } => {
                        let slot = link.index();
                        self.note(|| format!("client {c}: reconnect {link} ({reason})"));
                        if let Some(conn) = self.clients[c].links[slot].take() {
                            self.abandon(conn);
                        }
                        self.schedule_reconnect(c, slot);
                    }
                    // The handshake succeeded; the simulated client's backoff is its own.
                    Event::Ready { .. } => {}
                    Event::Open { link, node, to } => {
                        let client = &mut self.clients[c];
                        if link.index() != client.links.len() {
                            self.violation(
                                Check::Engine,
                                format!("client {c} asked to open {link} out of turn"),
                            );
                            continue;
                        }
                        let target = match &to {
                            None => client.view[node.index()],
                            Some(endpoint) => match self.resolve(endpoint) {
                                Some(n) => n,
                                None => {
                                    self.violation(
                                        Check::Engine,
                                        format!("client {c} asked for unknown {endpoint}"),
                                    );
                                    continue;
                                }
                            },
                        };
                        let client = &mut self.clients[c];
                        client.view.push(target);
                        client.links.push(None);
                        client.connecting.push(false);
                        client.backoff.push(nanos(self.sc.reconnect.0));
                        self.note(|| format!("client {c}: open {link} to node {target}"));
                        self.schedule_reconnect(c, link.index());
                    }
                    other => match completion(&other) {
                        Some((op, result)) => self.completed(c, op, result),
                        None => self.violation(Check::Engine, format!("unknown event {other:?}")),
                    },
                }
            }
            if !busy {
                break;
            }
        }
        // Arm the engine's timer.
        let now = self.now;
        let client = &mut self.clients[c];
        if let Some(t) = client.engine.poll_timeout() {
            let real = client.clock.real(local_of(t)).max(now + 1);
            if client.wake_at.is_none_or(|w| w > real) {
                client.wake_at = Some(real);
                self.push(real, Ev::Client(c, CEv::Wake));
            }
        }
    }
}
