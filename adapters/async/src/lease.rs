//! The lease: a held lock as its keep-alive last extended it, and the signal that it is lost.

use redlock_core::Lock;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long before the lock's validity ends a lease counts as lost: a twentieth of the ttl,
/// between 10 ms and 1 s. Timers fire late (by a millisecond or two on an idle machine, tens of
/// milliseconds on a loaded one), so a lease that waited for `valid_until` itself would tell the
/// routine after the lock could already be someone else's.
pub(crate) fn loss_margin(ttl: Duration) -> Duration {
    (ttl / 20).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

struct State {
    lock: Lock,
    lost: bool,
    /// One waker per pending [`Lost`] future, by its slot number; a future replaces its own
    /// entry on each poll and removes it when dropped, so a `select!` loop that polls the same
    /// future again and again keeps one.
    waiting: Vec<(u64, Waker)>,
    next_slot: u64,
}

/// The routine's view of a lock held by [`Redlock::using`](crate::Redlock::using) (or kept
/// alive by [`Redlock::keep_alive`](crate::Redlock::keep_alive)). Cheap to clone.
///
/// The lease is *lost* when an extension fails or when validity comes within a safety margin of
/// its end (a twentieth of the ttl, 10 ms to 1 s: see [`Lease::lost_at`]) before an extension
/// succeeded, whichever comes first, so the routine hears of it while the lock is still valid
/// by this process's clock. Once lost it stays lost: stop touching the protected resource.
#[derive(Clone)]
pub struct Lease {
    state: Arc<Mutex<State>>,
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
    pub(crate) fn new(lock: Lock) -> Lease {
        Lease {
            state: Arc::new(Mutex::new(State {
                lock,
                lost: false,
                waiting: Vec::new(),
                next_slot: 0,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock as last extended.
    pub fn lock(&self) -> Lock {
        self.state().lock.clone()
    }

    /// Until when the lock is valid; moves later with each successful extension.
    pub fn deadline(&self) -> Instant {
        self.state().lock.valid_until()
    }

    /// When the lease counts as lost unless an extension succeeds first: the margin before
    /// [`deadline`](Lease::deadline). Moves later with each successful extension.
    pub fn lost_at(&self) -> Instant {
        let s = self.state();
        s.lock.valid_until() - loss_margin(s.lock.ttl())
    }

    /// Whether the lock is lost (an extension failed, or [`lost_at`](Lease::lost_at) has
    /// passed).
    pub fn is_lost(&self) -> bool {
        let lost_at = self.lost_at();
        self.state().lost || Instant::now() >= lost_at
    }

    /// The fencing token, when the client runs with fencing.
    pub fn fencing_token(&self) -> Option<u64> {
        self.state().lock.fencing_token()
    }

    /// Resolves when the lease is lost. Race it against your work to stop in time.
    ///
    /// The future may be polled any number of times (in a `select!` loop, say): the lease keeps
    /// one waker for it, the latest, and forgets it when the future is dropped.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        Lost {
            lease: self.clone(),
            slot: None,
        }
    }

    /// The keep-alive extended the lock: `lock` replaces it.
    pub(crate) fn set(&self, lock: Lock) {
        self.state().lock = lock;
    }

    /// The keep-alive gave up: the lease is lost for good; every pending [`Lost`] resolves.
    pub(crate) fn mark_lost(&self) {
        let waiting = {
            let mut s = self.state();
            s.lost = true;
            std::mem::take(&mut s.waiting)
        };
        waiting.into_iter().for_each(|(_, w)| w.wake());
    }

    /// How many wakers the lease keeps for pending [`Lost`] futures.
    #[cfg(test)]
    fn waker_count(&self) -> usize {
        self.state().waiting.len()
    }
}

/// What [`Lease::lost`] returns.
struct Lost {
    lease: Lease,
    /// This future's entry in `State::waiting`, once it has been polled.
    slot: Option<u64>,
}

impl Future for Lost {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut s = this.lease.state();
        if s.lost {
            return Poll::Ready(());
        }
        let kept = this
            .slot
            .and_then(|slot| s.waiting.iter_mut().find(|(n, _)| *n == slot));
        match kept {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => {
                let slot = s.next_slot;
                s.next_slot += 1;
                s.waiting.push((slot, cx.waker().clone()));
                this.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Lost {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut s = self.lease.state();
            if let Some(i) = s.waiting.iter().position(|(n, _)| *n == slot) {
                s.waiting.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ready_engine, Counting};
    use redlock_core::{Event, Token};
    use std::time::{Duration, SystemTime};

    /// A lock from a one-node engine fed the replies a Redis would send.
    fn held_lock() -> Lock {
        let now = Instant::now();
        let mut engine = ready_engine(now);
        let token = Token::from_random(&[7; 20]).unwrap();
        let _ = engine.acquire(
            now,
            ["r"],
            Duration::from_secs(60),
            token,
            SystemTime::now(),
        );
        let (node, _) = engine.poll_transmit().unwrap();
        // The SET NX is granted.
        engine.handle_input(now, node, b"+OK\r\n");
        match engine.poll_event() {
            Some(Event::Acquired {
                result: Ok(lock), ..
            }) => lock,
            other => panic!("no lock: {other:?}"),
        }
    }

    #[test]
    fn polling_one_lost_future_keeps_one_waker() {
        let lease = Lease::new(held_lock());
        let mut lost = std::pin::pin!(lease.lost());
        let mut last = Arc::new(Counting::default());
        for _ in 0..10_000 {
            // A fresh waker each time: the worst case for a "same waker?" check.
            last = Arc::new(Counting::default());
            let waker = Waker::from(last.clone());
            assert!(lost
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        assert_eq!(lease.waker_count(), 1);
        lease.mark_lost();
        assert_eq!(last.count(), 1, "the latest waker is woken");
        assert_eq!(lease.waker_count(), 0);
        let waker = Waker::noop();
        assert!(lost
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_ready());
    }

    #[test]
    fn each_lost_future_keeps_one_waker_until_dropped() {
        let lease = Lease::new(held_lock());
        let mut cx = Context::from_waker(Waker::noop());
        let mut a = Box::pin(lease.lost());
        let mut b = Box::pin(lease.lost());
        for _ in 0..3 {
            assert!(a.as_mut().poll(&mut cx).is_pending());
            assert!(b.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(lease.waker_count(), 2);
        drop(a);
        assert_eq!(lease.waker_count(), 1);
        drop(b);
        assert_eq!(lease.waker_count(), 0);
        // A future never polled registers nothing.
        drop(lease.lost());
        assert_eq!(lease.waker_count(), 0);
    }
}
