//! A held lock, as the engine hands it out after a successful acquire or extend.

use crate::token::Token;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A lock held on a quorum of nodes until [`Lock::valid_until`].
///
/// Cheap to clone. Pass it back to [`Engine::extend`](crate::Engine::extend) (which returns a
/// new `Lock` with a later validity) or [`Engine::release`](crate::Engine::release). A `Lock`
/// never changes after it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a lock stays on the nodes until released or expired; release it, or hold it in a guard"]
pub struct Lock {
    pub(crate) resources: Arc<[String]>,
    pub(crate) keys: Arc<[Bytes]>,
    pub(crate) token: Token,
    pub(crate) ttl: Duration,
    pub(crate) valid_until: Instant,
    pub(crate) fencing_token: Option<u64>,
    pub(crate) attempts: u32,
    /// The largest ttl an acquire or successful extend of this lock asked for. A native extend
    /// (`SET … IFEQ … PX`) sets the ttl exactly, so it goes only when its ttl is at least this:
    /// it then never shortens a key this holder counts on.
    pub(crate) longest_ttl: Duration,
}

impl Lock {
    /// The resource names, as given to `acquire`.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The token stored under every key.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The ttl of the operation that produced this lock.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The instant after which the lock must be treated as lost: `t0 + ttl - drift`, where `t0`
    /// is when the successful attempt started.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Validity left at `now` (zero once expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.valid_until.saturating_duration_since(now)
    }

    /// Whether the lock is still valid at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// The fencing token, when the engine runs with fencing; `None` otherwise.
    pub fn fencing_token(&self) -> Option<u64> {
        self.fencing_token
    }

    /// How many attempts the operation that produced this lock took.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}
