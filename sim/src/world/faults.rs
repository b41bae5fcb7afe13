//! Faults injected over time: node crashes and restarts (with or without their keys), node
//! stalls, client pauses; never more nodes unavailable at once than the scenario allows.

use super::event::Ev;
use super::Sim;
use crate::clock::nanos;
use std::time::Duration;

impl Sim<'_> {
    /// How many nodes are down, stalled, or restarted too recently to count.
    pub(super) fn unavailable(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.down || n.stalled || self.now < n.back_at)
            .count()
    }

    pub(super) fn crash(&mut self, n: usize) {
        if self.stopped || self.nodes[n].down {
            return;
        }
        if self.unavailable()
            + usize::from(!self.nodes[n].stalled && self.now >= self.nodes[n].back_at)
            > self.sc.max_down
        {
            if let Some(every) = self.sc.crash_every {
                let at = self.now + nanos(self.rng.exp(every));
                self.push(at, Ev::Crash(n));
            }
            return;
        }
        self.note(|| format!("node {n} crashes"));
        self.stats.crashes += 1;
        let node = &mut self.nodes[n];
        node.node.crash();
        node.node.set_stalled(false);
        node.stalled = false;
        node.down = true;
        for conn in 0..self.conns.len() {
            let cn = &self.conns[conn];
            if cn.node == n && cn.session.is_some() && !cn.gone && !cn.closed {
                self.send_close(conn);
            }
        }
        let at = self.now + nanos(self.rng.duration(self.sc.down));
        self.push(at, Ev::Restart(n));
    }

    pub(super) fn restart(&mut self, n: usize) {
        let keep = self.rng.chance(self.sc.keep_data);
        self.note(|| {
            format!(
                "node {n} restarts {}",
                if keep { "with its keys" } else { "empty" }
            )
        });
        self.stats.empty_restarts += u64::from(!keep);
        let now = self.node_now(n);
        let node = &mut self.nodes[n];
        node.node.restart(now, keep);
        node.down = false;
        node.back_at = self.now + nanos(self.sc.rejoin);
        if !keep {
            node.emptied = Some(self.now);
        }
        if let (Some(every), false) = (self.sc.crash_every, self.stopped) {
            let at = self.now + nanos(self.rng.exp(every));
            self.push(at, Ev::Crash(n));
        }
    }

    pub(super) fn stall(&mut self, n: usize) {
        if self.stopped {
            return;
        }
        let every = self.sc.stall_every.unwrap_or(Duration::from_secs(1));
        let node = &self.nodes[n];
        let counted = !node.down && !node.stalled && self.now >= node.back_at;
        if node.down || node.stalled || self.unavailable() + usize::from(counted) > self.sc.max_down
        {
            let at = self.now + nanos(self.rng.exp(every));
            self.push(at, Ev::StallStart(n));
            return;
        }
        self.note(|| format!("node {n} stalls"));
        self.stats.stalls += 1;
        self.nodes[n].stalled = true;
        self.nodes[n].node.set_stalled(true);
        let len = nanos(self.rng.duration(self.sc.stall));
        self.push(self.now + len, Ev::StallEnd(n));
        let at = self.now + len + nanos(self.rng.exp(every));
        self.push(at, Ev::StallStart(n));
    }

    pub(super) fn unstall(&mut self, n: usize) {
        if !self.nodes[n].stalled {
            return; // crashed meanwhile
        }
        self.note(|| format!("node {n} resumes"));
        self.nodes[n].stalled = false;
        self.nodes[n].node.set_stalled(false);
        for conn in 0..self.conns.len() {
            if self.conns[conn].node == n && self.conns[conn].session.is_some() {
                self.node_input(conn, &[]);
            }
        }
    }

    pub(super) fn pause(&mut self, c: usize, len: u64) {
        let client = &mut self.clients[c];
        if client.paused {
            return;
        }
        client.paused = true;
        client.pause_id += 1;
        let id = client.pause_id;
        self.stats.pauses += 1;
        self.note(|| format!("client {c} pauses for {:.3}ms", len as f64 / 1e6));
        self.push(self.now + len, Ev::PauseEnd(c, id));
    }
}
