//! The simulated network: per-chunk latency with jitter and spikes, FIFO per direction of a
//! connection, chunks split at random, a lost chunk black-holing its direction, and the node
//! end of each connection.

use super::event::{CEv, Ev};
use super::{Sim, DOWN, UP};
use crate::clock::nanos;
use crate::session::SessionState;
use bytes::Bytes;

impl Sim<'_> {
    /// A chunk's one-way latency: drawn from the range, occasionally a spike on top.
    pub(super) fn latency(&mut self) -> u64 {
        let mut l = nanos(self.rng.duration(self.sc.latency));
        if self.rng.chance(self.sc.spike) {
            l += self.rng.range(0, nanos(self.sc.spike_max));
        }
        l.max(1)
    }

    /// When the next chunk (or close, or accept) on `conn` towards its client arrives.
    pub(super) fn down_at(&mut self, conn: usize) -> u64 {
        let at = (self.now + self.latency()).max(self.conns[conn].tail[DOWN]);
        self.conns[conn].tail[DOWN] = at;
        at
    }

    /// Sends `bytes` over `conn` in direction `dir`, perhaps split, perhaps lost.
    pub(super) fn transmit(&mut self, conn: usize, dir: usize, bytes: Bytes) {
        self.hash.u64(conn as u64 * 2 + dir as u64);
        self.hash.bytes(&bytes);
        if self.conns[conn].lost[dir] {
            return;
        }
        let mut cuts = Vec::new();
        if bytes.len() > 1 && self.rng.chance(self.sc.split) {
            for _ in 0..self.rng.range(1, 3) {
                cuts.push(self.rng.range(1, bytes.len() as u64 - 1) as usize);
            }
            cuts.sort_unstable();
            cuts.dedup();
        }
        cuts.push(bytes.len());
        let mut from = 0;
        for to in cuts {
            let piece = bytes.slice(from..to);
            from = to;
            if self.rng.chance(self.sc.loss) {
                self.stats.lost += 1;
                self.conns[conn].lost[dir] = true;
                let (c, n) = (self.conns[conn].client, self.conns[conn].node);
                self.note(|| {
                    let way = if dir == UP { "to" } else { "from" };
                    format!("conn {conn} (client {c} {way} node {n}) loses a chunk and all after")
                });
                return;
            }
            let at = (self.now + self.latency()).max(self.conns[conn].tail[dir]);
            self.conns[conn].tail[dir] = at;
            let ev = if dir == UP {
                Ev::ToNode(conn, piece)
            } else {
                Ev::Client(self.conns[conn].client, CEv::Bytes(conn, piece))
            };
            self.push(at, ev);
        }
    }

    /// The node side of `conn` is gone: the client sees end of stream after the data in flight.
    pub(super) fn send_close(&mut self, conn: usize) {
        self.conns[conn].closed = true;
        if self.conns[conn].lost[DOWN] {
            return;
        }
        let at = self.down_at(conn);
        let c = self.conns[conn].client;
        self.push(at, Ev::Client(c, CEv::Closed(conn)));
    }

    pub(super) fn node_input(&mut self, conn: usize, bytes: &[u8]) {
        let n = self.conns[conn].node;
        let now = self.node_now(n);
        let cn = &mut self.conns[conn];
        if cn.gone && !cn.flush {
            return;
        }
        let Some(session) = cn.session.as_mut() else {
            return;
        };
        let node = &mut self.nodes[n].node;
        if !node.is_alive(session) {
            if !cn.closed && !cn.gone {
                self.send_close(conn);
            }
            return;
        }
        let out = node.feed(now, session, bytes);
        let closed = session.state() == SessionState::Closed;
        let gone = cn.gone;
        if self.sc.log {
            let c = cn.client;
            for cmd in node.take_log() {
                let words: Vec<String> = cmd
                    .iter()
                    .skip(usize::from(cmd[0].eq_ignore_ascii_case(b"EVALSHA")) * 2)
                    .map(|a| {
                        let a = String::from_utf8_lossy(a);
                        if a.len() > 12 {
                            format!("{}…", &a[..8])
                        } else {
                            a.into_owned()
                        }
                    })
                    .collect();
                let line = format!(
                    "  node {n} runs for client {c} (conn {conn}{}): {}",
                    if gone { ", abandoned" } else { "" },
                    words.join(" ")
                );
                self.note(|| line);
            }
            if !out.is_empty() {
                let text = String::from_utf8_lossy(&out).replace("\r\n", " ");
                self.note(|| format!("  node {n} replies to client {c}: {text}"));
            }
        }
        if gone {
            return;
        }
        self.stats.redirects += out
            .windows(6)
            .filter(|w| w == b"-MOVED" || w.starts_with(b"-ASK "))
            .count() as u64;
        if !out.is_empty() {
            self.transmit(conn, DOWN, out);
        }
        if closed && !self.conns[conn].closed {
            self.send_close(conn);
        }
    }
}
