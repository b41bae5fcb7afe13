//! What can happen in a simulated run, and the queue order: earliest time first, then the
//! order of scheduling (so equal times run in a fixed order).

use crate::checker::Write;
use bytes::Bytes;
use std::cmp::Ordering;

/// Something that happens to one client (queued while it is paused).
#[derive(Debug)]
pub(super) enum CEv {
    Step(u64),
    Wake,
    Bytes(usize, Bytes),
    Closed(usize),
    Connected(usize),
    ConnectFailed(usize),
    Reconnect(usize),
    Write(Write),
}

/// Something that happens in the world.
#[derive(Debug)]
pub(super) enum Ev {
    Client(usize, CEv),
    PauseStart(usize),
    PauseEnd(usize, u64),
    ToNode(usize, Bytes),
    Syn(usize),
    Crash(usize),
    Restart(usize),
    StallStart(usize),
    StallEnd(usize),
    /// A slot migration starts in cluster `k`.
    Migrate(usize),
    /// Cluster `k`'s migration moves a key or ends.
    MigrateStep(usize),
    /// Member `n` learns that `slot` is now owned by model node `owner`.
    LearnOwner(usize, u16, usize),
    Store(Write),
    Stop,
    GiveUp,
}

/// An event at a time, with its scheduling order.
pub(super) struct Scheduled {
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Reversed: `BinaryHeap` is a max-heap, the earliest (time, seq) must come out first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}
