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

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test owns the clock
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    fn info(run_id: &str, uptime_secs: u64) -> ServerInfo {
        ServerInfo {
            run_id: run_id.into(),
            uptime_secs,
        }
    }

    #[test]
    fn without_a_grace_every_grant_counts() {
        let v = Voter::default();
        assert_eq!(v.sits_out(Instant::now(), None), None);
    }

    #[test]
    fn a_node_sits_out_until_info_answers() {
        let mut v = Voter::default();
        let now = Instant::now();
        assert_eq!(v.sits_out(now, Some(GRACE)), Some(GRACE));
        v.on_info(now, GRACE, info("a", 3600));
        assert_eq!(v.sits_out(now, Some(GRACE)), None);
        v.reconnected();
        assert_eq!(v.sits_out(now, Some(GRACE)), Some(GRACE));
    }

    #[test]
    fn a_young_node_sits_out_the_rest_of_the_grace() {
        let mut v = Voter::default();
        let now = Instant::now();
        v.on_info(now, GRACE, info("a", 10));
        assert_eq!(v.sits_out(now, Some(GRACE)), Some(Duration::from_secs(20)));
        assert_eq!(v.sits_out(now + Duration::from_secs(20), Some(GRACE)), None);
    }

    #[test]
    fn the_same_run_id_on_reconnect_does_not_sit_out() {
        let mut v = Voter::default();
        let now = Instant::now();
        v.on_info(now, GRACE, info("a", 3600));
        v.reconnected();
        v.on_info(now, GRACE, info("a", 3601));
        assert_eq!(v.sits_out(now, Some(GRACE)), None);
    }

    #[test]
    fn a_changed_run_id_sits_out_a_whole_grace_whatever_its_uptime() {
        let mut v = Voter::default();
        let now = Instant::now();
        v.on_info(now, GRACE, info("a", 3600));
        v.reconnected();
        v.on_info(now, GRACE, info("b", 3600));
        assert_eq!(v.sits_out(now, Some(GRACE)), Some(GRACE));
        let later = now + GRACE - Duration::from_millis(1);
        assert_eq!(
            v.sits_out(later, Some(GRACE)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(v.sits_out(now + GRACE, Some(GRACE)), None);
    }
}
