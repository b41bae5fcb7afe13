//! `hold` for threads: a lock kept alive by a task on the background thread until the hold is
//! released or dropped, with its [`Lease`] for the holding thread to check.

use crate::background::OnThread;
use crate::client::Redlock;
use crate::lease::Lease;
use crate::wait::Waiter;
use redlock_async::{Error, HoldLimits, Lock, Released};
use std::time::Duration;

/// A lock kept alive in the background, with its [`Lease`] (which it derefs to).
///
/// The keep-alive runs on the client's background thread as `redlock_async::Redlock::keep_alive`
/// describes. [`Hold::release`] stops it and blocks for the release's outcome. **Dropping** the
/// hold stops it and hands a release to the background thread without waiting: it is sent to
/// every connected node, but nothing confirms it; a node that misses it keeps the key until the
/// ttl (as last extended) runs out.
#[must_use = "dropping a hold releases the lock at once"]
#[derive(Debug)]
pub struct Hold {
    inner: redlock_async::Hold<OnThread>,
    lease: Lease,
    waiter: Waiter,
}

impl Redlock {
    /// Keeps `lock` alive (extended to `ttl` each time) until the returned [`Hold`] is released
    /// or dropped: [`Redlock::using`] for code that cannot put its work in a closure.
    pub fn hold(&self, lock: Lock, ttl: Duration) -> Hold {
        self.hold_with(lock, ttl, HoldLimits::default())
    }

    /// [`Redlock::hold`] with caps on the lease: total hold time, number of extensions (see
    /// [`HoldLimits`]).
    pub fn hold_with(&self, lock: Lock, ttl: Duration, limits: HoldLimits) -> Hold {
        let inner = self.client().hold_with(lock, ttl, limits);
        let lease = Lease(inner.lease().clone());
        Hold {
            inner,
            lease,
            waiter: self.waiter().clone(),
        }
    }
}

impl Hold {
    /// The lease: the lock as last extended, and the loss signal.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Stops the keep-alive and releases the lock, blocking for the outcome.
    pub fn release(self) -> Result<Released, Error> {
        self.waiter.block_on(self.inner.release())
    }
}

impl std::ops::Deref for Hold {
    type Target = Lease;

    fn deref(&self) -> &Lease {
        &self.lease
    }
}
