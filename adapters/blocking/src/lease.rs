//! `using` for threads: the routine runs on the caller's thread while the async crate's
//! keep-alive extends the lock as a task on the background thread; the routine checks
//! [`Lease::is_lost`] (or blocks in [`Lease::wait_lost`]).

use crate::client::Redlock;
use redlock_async::{Error, Lock};
use smol::future::{block_on, or};
use smol::Timer;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// The routine's view of a lock held by [`Redlock::using`]. Cheap to clone.
///
/// Lost when an extension fails or local validity runs out first; once lost it stays lost.
#[derive(Clone)]
pub struct Lease(pub(crate) redlock_async::Lease);

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Lease {
    /// The lock as last extended.
    pub fn lock(&self) -> Lock {
        self.0.lock()
    }

    /// Until when the lock is valid; moves later with each successful extension.
    pub fn deadline(&self) -> Instant {
        self.0.deadline()
    }

    /// When the lease counts as lost unless an extension succeeds first: a margin (a twentieth
    /// of the ttl, 10 ms to 1 s) before [`deadline`](Lease::deadline).
    pub fn lost_at(&self) -> Instant {
        self.0.lost_at()
    }

    /// Whether the lock is lost (an extension failed, or [`lost_at`](Lease::lost_at) has
    /// passed).
    pub fn is_lost(&self) -> bool {
        self.0.is_lost()
    }

    /// The fencing token, when the client runs with fencing.
    pub fn fencing_token(&self) -> Option<u64> {
        self.0.fencing_token()
    }

    /// Blocks up to `timeout` for the lease to be lost; returns whether it is.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let end = Instant::now().checked_add(timeout);
        // One future for the whole wait: the lease keeps one waker for it however often the
        // loop comes round.
        let mut lost = std::pin::pin!(self.0.lost());
        loop {
            if self.is_lost() {
                return true;
            }
            let now = Instant::now();
            if end.is_some_and(|end| now >= end) {
                return false;
            }
            // Wake when the lease counts as lost too: validity can run out with no extension
            // failing. An extension moves it later, and the loop then waits again.
            let wake = end.map_or(self.lost_at(), |end| end.min(self.lost_at()));
            block_on(or(lost.as_mut(), async {
                Timer::at(wake).await;
            }));
        }
    }
}

impl Redlock {
    /// Acquires `resources`, runs `routine` on this thread with a [`Lease`], and releases the
    /// lock when it returns or panics (the panic then continues). Meanwhile a task on the
    /// background thread extends the lock to `ttl` whenever validity comes within
    /// `automatic_extension_threshold` of its end (`redlock_async::Redlock::keep_alive`).
    pub fn using<I, S, T>(
        &self,
        resources: I,
        ttl: Duration,
        routine: impl FnOnce(&Lease) -> T,
    ) -> Result<T, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let lock = self.acquire(resources, ttl)?;
        let (lease, keeper) = self.client().keep_alive(lock, ttl);
        let keeper = self.background().spawn(keeper);
        let lease = Lease(lease);
        let outcome = catch_unwind(AssertUnwindSafe(|| routine(&lease)));
        // Waits for an extension under way to stop, so the lock released is the latest.
        block_on(keeper.cancel());
        let _ = self.release(&lease.lock());
        match outcome {
            Ok(v) => Ok(v),
            Err(panic) => resume_unwind(panic),
        }
    }
}
