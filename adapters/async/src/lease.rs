//! `using`: hold a lock for the length of a routine, extending it automatically, and tell the
//! routine the moment it can no longer rely on it.

use crate::client::Redlock;
use crate::error::Error;
use crate::runtime::Runtime;
use redlock_core::Lock;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct State {
    lock: Lock,
    lost: bool,
    wakers: Vec<Waker>,
}

/// The routine's view of a lock held by [`Redlock::using`]. Cheap to clone.
///
/// The lease is *lost* when an extension fails or when local validity runs out before an
/// extension succeeded, whichever comes first. Once lost it stays lost: stop touching the
/// protected resource.
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
    fn new(lock: Lock) -> Lease {
        Lease {
            state: Arc::new(Mutex::new(State {
                lock,
                lost: false,
                wakers: Vec::new(),
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

    /// Whether the lock is lost (an extension failed, or the deadline has passed).
    pub fn is_lost(&self) -> bool {
        let s = self.state();
        s.lost || Instant::now() >= s.lock.valid_until()
    }

    /// The fencing token, when the client runs with fencing.
    pub fn fencing_token(&self) -> Option<u64> {
        self.state().lock.fencing_token()
    }

    /// Resolves when the lease is lost. Race it against your work to stop in time.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let lease = self.clone();
        std::future::poll_fn(move |cx| {
            let mut s = lease.state();
            if s.lost {
                Poll::Ready(())
            } else {
                s.wakers.push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    fn set(&self, lock: Lock) {
        self.state().lock = lock;
    }

    fn mark_lost(&self) {
        let wakers = {
            let mut s = self.state();
            s.lost = true;
            std::mem::take(&mut s.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Releases the lock if `using` is dropped before it finished.
struct ReleaseOnDrop<R: Runtime> {
    client: Redlock<R>,
    lease: Lease,
    armed: bool,
}

impl<R: Runtime> Drop for ReleaseOnDrop<R> {
    fn drop(&mut self) {
        if self.armed {
            self.client.release_detached(&self.lease.lock());
        }
    }
}

impl<R: Runtime> Redlock<R> {
    /// Acquires `resources`, runs `routine` with a [`Lease`], and releases the lock when the
    /// routine returns (whatever it returns), panics, or this future is dropped.
    ///
    /// While the routine runs the lock is extended to `ttl` each time validity comes within
    /// `automatic_extension_threshold` of its end (or half the remaining validity, if that is
    /// shorter). Returns the routine's output, or the acquire error.
    pub async fn using<I, S, F, Fut, T>(
        &self,
        resources: I,
        ttl: Duration,
        routine: F,
    ) -> Result<T, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        let lock = self.acquire(resources, ttl).await?;
        let lease = Lease::new(lock);
        let mut guard = ReleaseOnDrop {
            client: self.clone(),
            lease: lease.clone(),
            armed: true,
        };
        let routine = routine(lease.clone());
        let keeper = self.keep_alive(lease.clone(), ttl);
        let outcome = RunWhile {
            routine: Box::pin(routine),
            keeper: Some(Box::pin(keeper)),
        }
        .await;
        guard.armed = false;
        let _ = self.release(&lease.lock()).await;
        match outcome {
            Ok(value) => Ok(value),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Extends the lease until it is lost (runs until dropped).
    async fn keep_alive(&self, lease: Lease, ttl: Duration) {
        let threshold = self.options().automatic_extension_threshold;
        loop {
            let lock = lease.lock();
            let valid_until = lock.valid_until();
            let left = valid_until.saturating_duration_since(Instant::now());
            let wake = valid_until - threshold.min(left / 2);
            self.runtime().sleep_until(wake).await;
            let extend = Box::pin(self.extend(&lock, ttl));
            let expiry = self.runtime().sleep_until(valid_until);
            match first(extend, expiry).await {
                First::A(Ok(new)) => {
                    tracing::debug!(valid_for = ?new.remaining(Instant::now()), "redlock: lease extended");
                    lease.set(new);
                }
                First::A(Err(e)) => {
                    tracing::warn!(error = %e, "redlock: lease lost: extension failed");
                    lease.mark_lost();
                    return;
                }
                First::B(()) => {
                    tracing::warn!(
                        "redlock: lease lost: validity ran out before an extension succeeded"
                    );
                    lease.mark_lost();
                    return;
                }
            }
        }
    }
}

enum First<A, B> {
    A(A),
    B(B),
}

/// Whichever of two futures finishes first (the other is dropped).
async fn first<A: Future + Unpin, B: Future + Unpin>(
    mut a: A,
    mut b: B,
) -> First<A::Output, B::Output> {
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(First::A(v));
        }
        if let Poll::Ready(v) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(First::B(v));
        }
        Poll::Pending
    })
    .await
}

/// Polls the routine to completion while also polling the keeper; a panic in the routine is
/// caught so the lock can be released before it propagates.
struct RunWhile<F: Future, K> {
    routine: Pin<Box<F>>,
    keeper: Option<Pin<Box<K>>>,
}

impl<F: Future, K: Future<Output = ()>> Future for RunWhile<F, K> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match catch_unwind(AssertUnwindSafe(|| this.routine.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => return Poll::Ready(Ok(v)),
            Err(panic) => return Poll::Ready(Err(panic)),
            Ok(Poll::Pending) => {}
        }
        if let Some(k) = &mut this.keeper {
            if k.as_mut().poll(cx).is_ready() {
                this.keeper = None; // lost: nothing more to extend
            }
        }
        Poll::Pending
    }
}
