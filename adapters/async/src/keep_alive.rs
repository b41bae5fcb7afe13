//! The keep-alive policy, the one both `using`s (this crate's and `redlock-blocking`'s) run:
//! when to extend a held lock, and how long an extension may take before the lease is lost.

use crate::client::Redlock;
use crate::lease::Lease;
use crate::runtime::Runtime;
use redlock_core::Lock;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// When to start extending a lock valid until `valid_until`, seen at `now`: `threshold` before
/// its end, or halfway through what is left when that comes sooner (a short ttl must not be
/// extended after it ran out).
fn extend_at(valid_until: Instant, now: Instant, threshold: Duration) -> Instant {
    let left = valid_until.saturating_duration_since(now);
    valid_until - threshold.min(left / 2)
}

impl<R: Runtime> Redlock<R> {
    /// Keeps `lock` alive: returns the [`Lease`] that tracks it and the future that extends it.
    ///
    /// While polled, the future extends the lock to `ttl` each time its validity comes within
    /// `automatic_extension_threshold` of its end (or half the remaining validity, if that is
    /// shorter), and updates the lease. It resolves when the lease is lost: an extension failed,
    /// or the validity ran out before one succeeded (the engine retries an extension until
    /// then). Dropping the future stops the extensions; releasing the lock stays the caller's
    /// job. [`Redlock::using`] is this plus acquire and release around a routine.
    pub fn keep_alive(
        &self,
        lock: Lock,
        ttl: Duration,
    ) -> (Lease, impl Future<Output = ()> + Send + 'static) {
        let lease = Lease::new(lock);
        let keeper = keep_alive(self.clone(), lease.clone(), ttl);
        (lease, keeper)
    }
}

/// Extends `lease` until it is lost (see [`Redlock::keep_alive`]).
async fn keep_alive<R: Runtime>(client: Redlock<R>, lease: Lease, ttl: Duration) {
    let threshold = client.options().automatic_extension_threshold;
    loop {
        let lock = lease.lock();
        let valid_until = lock.valid_until();
        let wake = extend_at(valid_until, Instant::now(), threshold);
        client.runtime().sleep_until(wake).await;
        // The extension races the validity: past it the lock may be someone else's, whatever
        // the extension later says.
        let extend = Box::pin(client.extend(&lock, ttl));
        let expiry = client.runtime().sleep_until(valid_until);
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

#[cfg(test)]
mod tests {
    use super::extend_at;
    use std::time::{Duration, Instant};

    #[test]
    fn extends_threshold_before_the_end_or_halfway_when_sooner() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Plenty left: the threshold decides.
        assert_eq!(extend_at(now + ms(10_000), now, ms(500)), now + ms(9_500));
        // Less than twice the threshold left: halfway.
        assert_eq!(extend_at(now + ms(600), now, ms(500)), now + ms(300));
        // Already past: at once.
        assert_eq!(extend_at(now, now + ms(5), ms(500)), now);
    }
}
