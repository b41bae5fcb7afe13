//! Restart-aware voting: a node that restarted recently may have lost the keys of locks that are
//! still valid elsewhere, so its grants do not count until `restart_grace` has passed.
//!
//! Each connection reads `INFO server` after its handshake. A node up for less than the grace
//! sits out for the rest of it; a node whose `run_id` changed since this client's last
//! connection restarted in between (whatever uptime it reports), and sits out a whole grace.

use crate::handshake::ServerInfo;
use std::time::{Duration, Instant};

/// Restart-aware voting state of one node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Voter {
    /// The `run_id` seen on the last connection.
    run_id: Option<String>,
    /// From when the node's grants count; `None` until `INFO server` answered on this connection.
    eligible_at: Option<Instant>,
}

impl Voter {
    /// A new connection: nothing counts until its `INFO server` is answered.
    pub(crate) fn reconnected(&mut self) {
        self.eligible_at = None;
    }

    /// `INFO server` answered at `now`: decide from when this node's grants count.
    pub(crate) fn on_info(&mut self, now: Instant, grace: Duration, info: ServerInfo) {
        let restarted = self
            .run_id
            .as_ref()
            .is_some_and(|prev| *prev != info.run_id);
        let wait = if restarted {
            grace
        } else {
            // Up for less than the grace: it may have lost keys of locks still valid elsewhere.
            grace.saturating_sub(Duration::from_secs(info.uptime_secs))
        };
        self.run_id = Some(info.run_id);
        self.eligible_at = Some(now + wait);
    }

    /// How long the node still sits out at `now` (with `grace` in force); `None` when its grants
    /// count.
    pub(crate) fn sits_out(&self, now: Instant, grace: Option<Duration>) -> Option<Duration> {
        let grace = grace?;
        match self.eligible_at {
            None => Some(grace),
            Some(at) if now < at => Some(at - now),
            Some(_) => None,
        }
    }
}
