//! One operation's quorum state: the votes of the current attempt and the attempts before it.

use crate::acquire_options::Retry;
use crate::error::{Attempt, Failure, Outcome};
use crate::token::Token;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Acquire,
    /// Extending a lock valid until the given instant; retries stop there.
    Extend {
        valid_until: Instant,
        fencing_token: Option<u64>,
        /// The largest ttl set on the keys so far (`Lock::longest_ttl`).
        longest_ttl: Duration,
    },
    Release,
}

/// Which round of an attempt is being voted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The script of the operation itself.
    Main,
    /// Fencing only: writing the fencing token back while holding the keys.
    Fence { token: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Votes outstanding. Past `deadline` no success is possible any more.
    Voting { deadline: Option<Instant> },
    /// Between attempts.
    Waiting { until: Instant },
}

#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) kind: Kind,
    pub(crate) resources: Arc<[String]>,
    pub(crate) keys: Arc<[Bytes]>,
    pub(crate) token: Token,
    pub(crate) ttl: Duration,
    /// Fence-counter keys, one per lock key (fenced acquires only).
    pub(crate) fence_keys: Option<Arc<[Bytes]>>,
    /// Number of the current (or last) attempt, from 1.
    pub(crate) attempt: u32,
    /// Number of the current vote round; replies carry it so stale ones are ignored.
    pub(crate) round: u32,
    pub(crate) stage: Stage,
    /// Fence counters reported with each grant (fenced acquires only; a cluster node's is the
    /// largest of its parts').
    pub(crate) counters: Vec<Option<u64>>,
    /// Per node, the parts of its vote still to come (see [`Parts`]).
    pub(crate) parts: Vec<Parts>,
    pub(crate) t0: Instant,
    /// This attempt's outcome per node; `None` while awaited.
    pub(crate) votes: Vec<Option<Outcome>>,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) phase: Phase,
    /// The caller's wall clock when the operation started (acquires only): the fencing floor.
    pub(crate) wall: Option<Wall>,
    /// How a failed attempt is retried (the client's settings, or an acquire's own).
    pub(crate) retry: Retry,
    /// The instant the operation must be over by (bounded acquires only).
    pub(crate) deadline: Option<Instant>,
    /// The release channels of its keys (acquires with `wait_for_release` only; else empty).
    pub(crate) channels: Arc<[Bytes]>,
    /// Refused once and waiting for a release: its channels are subscribed.
    pub(crate) watching: bool,
    /// A release was announced after a node refused the current attempt: retry at once.
    pub(crate) rewake: bool,
}

/// A node's vote being put together from the requests its part of a round was split into: a
/// cluster node runs one per hash slot of the lock's keys, and with replica acknowledgement a
/// `WAIT` follows each grant. The node grants only when every part granted; the first part that
/// did not decides its vote; a release's deletes add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Parts {
    /// Replies still to come.
    pub(crate) left: u32,
    /// Keys the release parts answered so far deleted.
    pub(crate) deleted: u32,
}

/// A wall-clock reading taken with an acquire, and the engine's instant it goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wall {
    /// Microseconds since the Unix epoch (0 for a reading before it).
    unix_micros: u64,
    /// The engine's `now` when the reading was taken.
    at: Instant,
}

impl Wall {
    pub(crate) fn new(wall: SystemTime, at: Instant) -> Wall {
        let unix_micros = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Wall { unix_micros, at }
    }

    /// The fencing floor at `now`: the reading advanced by the time elapsed since on the
    /// engine's clock, so that an acquire still retrying long after it was called gets a
    /// current floor, not the one of its first attempt.
    pub(crate) fn floor(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.at).as_micros();
        self.unix_micros
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    Granted,
    Impossible,
    Undecided,
}

impl Op {
    pub(crate) fn tally(&self, quorum: usize) -> Tally {
        let yes = self
            .votes
            .iter()
            .filter(|v| matches!(v, Some(Outcome::Granted)))
            .count();
        let open = self.votes.iter().filter(|v| v.is_none()).count();
        if yes >= quorum {
            Tally::Granted
        } else if yes + open < quorum {
            Tally::Impossible
        } else {
            Tally::Undecided
        }
    }

    /// The token this attempt writes: per attempt for acquires (see `Token::for_attempt`); the
    /// lock's own token for extend and release.
    pub(crate) fn attempt_token(&self) -> Token {
        match self.kind {
            Kind::Acquire => self.token.for_attempt(self.attempt),
            _ => self.token.clone(),
        }
    }

    /// When time next matters to this operation: the end of its vote (the attempt's own
    /// deadline, or the operation's when sooner), or the start of its next attempt.
    pub(crate) fn wakes_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Voting { deadline } => match (deadline, self.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Phase::Waiting { until } => Some(until),
        }
    }

    /// Whether the operation's own deadline has come at `now`.
    pub(crate) fn out_of_time(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    pub(crate) fn all_answered(&self) -> bool {
        self.votes.iter().all(Option::is_some)
    }
}

/// Why the given (final) attempt failed, for the error the caller sees.
///
/// A refusal is an answer: when every node that answered either refused or granted, and at least
/// one refused, the resource is held by someone else (or, for an extend, no longer ours),
/// whatever the nodes that did not answer were doing. Only an attempt with no refusal, or with a
/// node that answered with an error, is a failure to reach the nodes.
pub(crate) fn classify(kind: Kind, last: &Attempt, quorum: usize, too_late: bool) -> Failure {
    if too_late {
        return Failure::Expired;
    }
    let granted = last.count(|o| matches!(o, Outcome::Granted));
    let refused = last.count(|o| matches!(o, Outcome::Refused));
    let erred = last.count(|o| matches!(o, Outcome::ErrorReply(_)));
    let refusal = refused > 0 && erred == 0;
    if granted + refused >= quorum || refusal {
        match kind {
            Kind::Extend { .. } => Failure::NotHeld,
            _ => Failure::Locked,
        }
    } else {
        Failure::Unreachable
    }
}
