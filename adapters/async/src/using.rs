//! `using`: hold a lock for the length of a routine, kept alive by the keep-alive policy, and
//! released however the routine ends.

use crate::client::Redlock;
use crate::error::Error;
use crate::lease::Lease;
use crate::runtime::Runtime;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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
    /// While the routine runs the lock is kept alive as [`Redlock::keep_alive`] describes:
    /// extended to `ttl` each time validity comes within `automatic_extension_threshold` of its
    /// end (or half the remaining validity, if that is shorter). Returns the routine's output,
    /// or the acquire error.
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
        let (lease, keeper) = self.keep_alive(lock, ttl);
        let mut guard = ReleaseOnDrop {
            client: self.clone(),
            lease: lease.clone(),
            armed: true,
        };
        let routine = routine(lease.clone());
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
