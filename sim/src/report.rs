//! What a run reports: violations by checker, counters, the run digest and its log.

use std::fmt;
use std::time::Duration;

/// Which checker a violation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Two clients held a resource at the same real instant.
    Exclusion,
    /// A fencing token handed out was not larger than one handed out before for the resource.
    TokenOrder,
    /// The fenced store accepted a write from a holder superseded by one it already heard from.
    StaleWrite,
    /// An acquire failed or took too long with a quorum up and no contention.
    Liveness,
    /// The engine broke its own contract.
    Engine,
}

/// One checker finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which checker.
    pub check: Check,
    /// When (real simulated time since the start).
    pub at: Duration,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at {:?}: {}", self.check, self.at, self.detail)
    }
}

/// Counters of one run, to see that it exercised something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Locks acquired.
    pub acquired: u64,
    /// Successful extensions.
    pub extended: u64,
    /// Releases completed.
    pub released: u64,
    /// Acquires that failed because the resource was locked.
    pub locked: u64,
    /// Acquires that failed for want of a quorum (nodes down, slow, sitting out).
    pub unreachable: u64,
    /// Operations that ran out of validity.
    pub expired: u64,
    /// Acquires cancelled.
    pub cancelled: u64,
    /// Acquired locks with a fencing token larger than 1.
    pub fenced: u64,
    /// Writes the fenced store accepted.
    pub writes_accepted: u64,
    /// Writes the fenced store rejected as older than one it saw.
    pub writes_rejected: u64,
    /// Holds that outlived their validity (the client noticed late).
    pub overstayed: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Restarts that lost the node's keys.
    pub empty_restarts: u64,
    /// Node stalls.
    pub stalls: u64,
    /// Client pauses.
    pub pauses: u64,
    /// Connections a client gave up on (engine `Reconnect`) or saw closed.
    pub reconnects: u64,
    /// Chunks lost.
    pub lost: u64,
    /// Acquires still retrying when the clients gave up (10 s after the end).
    pub given_up: u64,
    /// `DELEX` / `DELIFEQ` commands the nodes ran (native releases).
    pub native_deletes: u64,
    /// `SET … IFEQ` commands the nodes ran (native extends).
    pub native_sets: u64,
    /// Slot migrations finished (clusters).
    pub migrations: u64,
    /// Keys moved by slot migrations.
    pub keys_migrated: u64,
    /// `MOVED` and `ASK` replies the nodes sent.
    pub redirects: u64,
    /// Simulation events processed.
    pub events: u64,
    /// Longest an acquire took to succeed, in nanoseconds.
    pub max_wait: u64,
    /// Real simulated time at the end, in nanoseconds.
    pub end: u64,
}

impl Stats {
    /// Adds `other` into `self` (maxima for `max_wait` and `end`).
    pub fn add(&mut self, o: &Stats) {
        self.acquired += o.acquired;
        self.extended += o.extended;
        self.released += o.released;
        self.locked += o.locked;
        self.unreachable += o.unreachable;
        self.expired += o.expired;
        self.cancelled += o.cancelled;
        self.fenced += o.fenced;
        self.writes_accepted += o.writes_accepted;
        self.writes_rejected += o.writes_rejected;
        self.overstayed += o.overstayed;
        self.crashes += o.crashes;
        self.empty_restarts += o.empty_restarts;
        self.stalls += o.stalls;
        self.pauses += o.pauses;
        self.reconnects += o.reconnects;
        self.lost += o.lost;
        self.given_up += o.given_up;
        self.native_deletes += o.native_deletes;
        self.native_sets += o.native_sets;
        self.migrations += o.migrations;
        self.keys_migrated += o.keys_migrated;
        self.redirects += o.redirects;
        self.events += o.events;
        self.max_wait = self.max_wait.max(o.max_wait);
        self.end = self.end.max(o.end);
    }
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's seed.
    pub seed: u64,
    /// Every violation, in the order found (exclusion is checked at the end).
    pub violations: Vec<Violation>,
    /// Counters.
    pub stats: Stats,
    /// Digest of everything that happened: same scenario, same hash.
    pub hash: u64,
    /// The run, event by event, when [`Scenario::log`](crate::Scenario::log) was set.
    pub log: Vec<String>,
}

impl Report {
    /// The first violation of one of `checks`.
    pub fn first(&self, checks: &[Check]) -> Option<&Violation> {
        self.violations.iter().find(|v| checks.contains(&v.check))
    }
}
