//! `hold`: a lease without a closure. The lock is kept alive by a task on the runtime until the
//! hold is released or dropped; optional caps bound how long and how often.

use crate::client::Redlock;
use crate::error::Error;
use crate::keep_alive::{first, keep_alive};
use crate::lease::Lease;
use crate::runtime::Runtime;
use redlock_core::{Lock, Released};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Caps on a kept-alive lease. The default caps nothing.
///
/// When a cap is reached the keep-alive stops extending and the lease is marked lost: at
/// `max_hold` after the hold began, or when validity comes within the lease's safety margin of
/// its end after the last allowed extension, whichever comes first. The lock itself stays on
/// the nodes until it is released (dropping the hold does) or its ttl runs out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldLimits {
    /// The longest the lease may be held, from when the keep-alive starts.
    pub max_hold: Option<Duration>,
    /// The most extensions the keep-alive makes.
    pub max_extensions: Option<u32>,
}

impl HoldLimits {
    /// No caps.
    pub fn new() -> HoldLimits {
        HoldLimits::default()
    }

    /// Caps the total hold time at `max`.
    #[must_use]
    pub fn max_hold(mut self, max: Duration) -> HoldLimits {
        self.max_hold = Some(max);
        self
    }

    /// Caps the number of extensions at `max` (0: never extend).
    #[must_use]
    pub fn max_extensions(mut self, max: u32) -> HoldLimits {
        self.max_extensions = Some(max);
        self
    }
}

/// Tells the keep-alive task of a hold to stop.
#[derive(Default)]
struct Stop {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Stop {
    fn stop(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A lock kept alive in the background, with its [`Lease`] (which it derefs to).
///
/// Made by [`Redlock::hold`]. A task spawned on the client's runtime extends the lock as
/// [`Redlock::keep_alive`] describes and signals loss through the lease
/// ([`Lease::lost`], [`Lease::is_lost`]). [`Hold::release`] stops the task and releases the
/// lock, returning the outcome. **Dropping** the hold stops the task and hands a release to the
/// driver without waiting, with the same guarantees as dropping a [`Guard`](crate::Guard): the
/// release is sent to every connected node, but nothing confirms it; a node that misses it
/// keeps the key until the ttl (as last extended) runs out.
#[must_use = "dropping a hold releases the lock at once"]
pub struct Hold<R: Runtime> {
    client: Redlock<R>,
    lease: Lease,
    stop: Arc<Stop>,
    armed: bool,
}

impl<R: Runtime> std::fmt::Debug for Hold<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("lease", &self.lease).finish()
    }
}

impl<R: Runtime> Redlock<R> {
    /// Keeps `lock` alive (extended to `ttl` each time) in a task on the runtime until the
    /// returned [`Hold`] is released or dropped: [`Redlock::using`] for code that cannot put
    /// its work in a closure.
    pub fn hold(&self, lock: Lock, ttl: Duration) -> Hold<R> {
        self.hold_with(lock, ttl, HoldLimits::default())
    }

    /// [`Redlock::hold`] with caps on the lease (see [`HoldLimits`]).
    pub fn hold_with(&self, lock: Lock, ttl: Duration, limits: HoldLimits) -> Hold<R> {
        let lease = Lease::new(lock);
        let stop = Arc::new(Stop::default());
        let keeper = Box::pin(keep_alive(self.clone(), lease.clone(), ttl, limits));
        let stopped = {
            let stop = stop.clone();
            std::future::poll_fn(move |cx| stop.poll_stopped(cx))
        };
        self.runtime().spawn(Box::pin(async move {
            // Stopped first: once the hold is gone no new extension starts.
            let _ = first(Box::pin(stopped), keeper).await;
        }));
        Hold {
            client: self.clone(),
            lease,
            stop,
            armed: true,
        }
    }
}

impl<R: Runtime> Hold<R> {
    /// The lease: the lock as last extended, and the loss signal.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Stops the keep-alive and releases the lock (as last extended), returning the outcome.
    /// An extension under way is already queued ahead of the release on every node, so it
    /// cannot outlive it.
    pub async fn release(mut self) -> Result<Released, Error> {
        self.armed = false;
        self.stop.stop();
        let lock = self.lease.lock();
        let fallback = self.client.guard(lock.clone());
        let result = self.client.release(&lock).await;
        let _ = fallback.into_lock();
        result
    }
}

impl<R: Runtime> std::ops::Deref for Hold<R> {
    type Target = Lease;

    fn deref(&self) -> &Lease {
        &self.lease
    }
}

impl<R: Runtime> Drop for Hold<R> {
    /// Stops the keep-alive and hands the release to the driver (see the type's documentation).
    fn drop(&mut self) {
        self.stop.stop();
        if self.armed {
            self.client.release_detached(&self.lease.lock());
        }
    }
}

/// When a capped keep-alive must stop extending: `None` while it may go on; otherwise the
/// instant the lease is then lost (the earlier of the hold's end and `lost_at`).
pub(crate) fn capped_at(
    limits: &HoldLimits,
    extensions: u32,
    hold_end: Option<Instant>,
    next_extension: Instant,
    lost_at: Instant,
) -> Option<Instant> {
    let out_of_extensions = limits.max_extensions.is_some_and(|m| extensions >= m);
    let out_of_time = hold_end.is_some_and(|end| next_extension >= end);
    (out_of_extensions || out_of_time).then(|| hold_end.map_or(lost_at, |end| end.min(lost_at)))
}

#[cfg(test)]
mod tests {
    use super::{capped_at, HoldLimits};
    use std::time::{Duration, Instant};

    #[test]
    fn caps_stop_the_extensions_and_set_the_loss() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let none = HoldLimits::new();
        assert_eq!(capped_at(&none, 1000, None, now, now + ms(5)), None);
        let two = HoldLimits::new().max_extensions(2);
        assert_eq!(capped_at(&two, 1, None, now, now + ms(5)), None);
        assert_eq!(
            capped_at(&two, 2, None, now, now + ms(5)),
            Some(now + ms(5))
        );
        let short = HoldLimits::new().max_hold(ms(100));
        let end = Some(now + ms(100));
        // The next extension would start inside the hold: go on.
        assert_eq!(capped_at(&short, 0, end, now + ms(50), now + ms(90)), None);
        // It would start at or past the end: lost at the end, or at lost_at when sooner.
        assert_eq!(
            capped_at(&short, 0, end, now + ms(100), now + ms(150)),
            Some(now + ms(100))
        );
        assert_eq!(
            capped_at(&short, 0, end, now + ms(120), now + ms(90)),
            Some(now + ms(90))
        );
    }
}
