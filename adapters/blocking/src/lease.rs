//! `using` for threads: the routine runs on the caller's thread while a keeper thread extends
//! the lock; the routine checks [`Lease::is_lost`] (or blocks in [`Lease::wait_lost`]).

use crate::client::Redlock;
use redlock_async::Error;
use redlock_core::Lock;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State {
    lock: Lock,
    lost: bool,
    /// The routine finished: the keeper stops.
    done: bool,
}

/// The routine's view of a lock held by [`Redlock::using`]. Cheap to clone.
///
/// Lost when an extension fails or local validity runs out first; once lost it stays lost.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("deadline", &self.deadline())
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Lease {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock as last extended.
    pub fn lock(&self) -> Lock {
        self.state().lock.clone()
    }

    /// Until when the lock is valid; moves later with each successful extension.
    pub fn deadline(&self) -> Instant {
        self.state().lock.valid_until()
    }

    /// Whether the lock is lost (an extension failed, or the deadline has passed).
    pub fn is_lost(&self) -> bool {
        let s = self.state();
        s.lost || Instant::now() >= s.lock.valid_until()
    }

    /// The fencing token, when the client runs with fencing.
    pub fn fencing_token(&self) -> Option<u64> {
        self.state().lock.fencing_token()
    }

    /// Blocks up to `timeout` for the lease to be lost; returns whether it is.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut s = self.state();
        loop {
            let now = Instant::now();
            if s.lost || now >= s.lock.valid_until() {
                return true;
            }
            if now >= end {
                return false;
            }
            let wait = end.min(s.lock.valid_until()) - now;
            s = match self.inner.1.wait_timeout(s, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn mark_lost(&self) {
        self.state().lost = true;
        self.inner.1.notify_all();
    }
}

impl Redlock {
    /// Acquires `resources`, runs `routine` on this thread with a [`Lease`], and releases the
    /// lock when it returns or panics (the panic then continues). A keeper thread extends the
    /// lock to `ttl` whenever validity comes within `automatic_extension_threshold` of its end.
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
        let lease = Lease {
            inner: Arc::new((
                Mutex::new(State {
                    lock,
                    lost: false,
                    done: false,
                }),
                Condvar::new(),
            )),
        };
        let keeper = {
            let (client, lease) = (self.clone(), lease.clone());
            std::thread::Builder::new()
                .name("redlock-lease".into())
                .spawn(move || client.keep_alive(&lease, ttl))
                .expect("spawn the lease keeper thread")
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| routine(&lease)));
        lease.state().done = true;
        lease.inner.1.notify_all();
        let _ = keeper.join();
        let _ = self.release(&lease.lock());
        match outcome {
            Ok(v) => Ok(v),
            Err(panic) => resume_unwind(panic),
        }
    }

    fn keep_alive(&self, lease: &Lease, ttl: Duration) {
        let threshold = self.options().automatic_extension_threshold;
        loop {
            let mut s = lease.state();
            let valid_until = s.lock.valid_until();
            let left = valid_until.saturating_duration_since(Instant::now());
            let wake = valid_until - threshold.min(left / 2);
            while !s.done && Instant::now() < wake {
                let wait = wake.saturating_duration_since(Instant::now());
                s = match lease.inner.1.wait_timeout(s, wait) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            if s.done {
                return;
            }
            let lock = s.lock.clone();
            drop(s);
            match self.extend(&lock, ttl) {
                Ok(new) if Instant::now() < valid_until => lease.state().lock = new,
                Ok(_) => {
                    tracing::warn!(
                        "redlock: lease lost: validity ran out before the extension returned"
                    );
                    lease.mark_lost();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redlock: lease lost: extension failed");
                    lease.mark_lost();
                    return;
                }
            }
        }
    }
}
