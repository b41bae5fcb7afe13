//! `Guard` for threads: a held lock released when dropped, without blocking the dropping thread.

use crate::background::OnThread;
use crate::client::Redlock;
use crate::wait::Waiter;
use redlock_async::{Error, Lock, Released};
use std::time::Duration;

/// A held lock that is released when the guard is dropped. Derefs to the [`Lock`].
///
/// **What `Drop` does:** it hands a release to the client's background thread and returns at
/// once; that thread sends the delete to every connected node. **What it does not guarantee:**
/// that the release succeeds or when it arrives. A node that is down, slow or partitioned (or a
/// client dropped before its thread wrote the request) keeps the key until its ttl runs out,
/// and nothing reports it. [`Guard::release`] blocks for the outcome and returns it. A guard
/// does not extend the lock ([`Redlock::hold`] does).
#[must_use = "dropping a guard releases the lock at once"]
#[derive(Debug)]
pub struct Guard(redlock_async::Guard<OnThread>, Waiter);

impl Redlock {
    /// Wraps `lock` in a [`Guard`] that releases it when dropped.
    pub fn guard(&self, lock: Lock) -> Guard {
        Guard(self.client().guard(lock), self.waiter().clone())
    }
}

impl Guard {
    /// The lock, as last extended.
    pub fn lock(&self) -> &Lock {
        self.0.lock()
    }

    /// Extends the lock to `ttl` from now; on success the guard holds the extended lock.
    pub fn extend(&mut self, ttl: Duration) -> Result<(), Error> {
        self.1.block_on(self.0.extend(ttl))
    }

    /// Releases the lock now, blocking for the outcome.
    pub fn release(self) -> Result<Released, Error> {
        self.1.block_on(self.0.release())
    }

    /// Gives the lock back without releasing it: the caller takes over.
    pub fn into_lock(self) -> Lock {
        self.0.into_lock()
    }
}

impl std::ops::Deref for Guard {
    type Target = Lock;

    fn deref(&self) -> &Lock {
        self.0.lock()
    }
}
