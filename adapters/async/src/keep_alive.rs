//! The keep-alive policy, the one both `using`s (this crate's and `redlock-blocking`'s) run:
//! when to extend a held lock, and how long an extension may take before the lease is lost.

use crate::client::Redlock;
use crate::error::Error;
use crate::hold::{capped_at, HoldLimits};
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
    /// shorter), and updates the lease. It resolves when the lease is lost: the nodes refused an
    /// extension, or the validity ran out before one succeeded (an extension that failed to
    /// reach a quorum is tried again, `retry_delay` apart, while the retry can start inside
    /// validity, whatever `retry_count` says). Dropping the future stops the extensions; releasing the lock stays the caller's
    /// job. [`Redlock::using`] is this plus acquire and release around a routine.
    pub fn keep_alive(
        &self,
        lock: Lock,
        ttl: Duration,
    ) -> (Lease, impl Future<Output = ()> + Send + 'static) {
        self.keep_alive_with(lock, ttl, HoldLimits::default())
    }

    /// [`Redlock::keep_alive`] with caps on the lease (see [`HoldLimits`]): once a cap is
    /// reached the future stops extending, marks the lease lost (at the cap's end, or when
    /// validity comes within the loss margin, whichever is sooner) and resolves.
    pub fn keep_alive_with(
        &self,
        lock: Lock,
        ttl: Duration,
        limits: HoldLimits,
    ) -> (Lease, impl Future<Output = ()> + Send + 'static) {
        let lease = Lease::new(lock);
        let keeper = keep_alive(self.clone(), lease.clone(), ttl, limits);
        (lease, keeper)
    }
}

/// When to try a failed extension again, or `None` when the lease is lost: only a failure to
/// reach the nodes is worth another try (a refusal means the keys are gone or someone else's),
/// and only when the retry, `delay` after `now`, still starts inside validity. The client's
/// `retry_count` bounds how often an *acquire* is tried; a held lock is worth trying to keep
/// until it runs out, whatever that count.
fn retry_extend_at(
    error: &Error,
    now: Instant,
    delay: Duration,
    valid_until: Instant,
) -> Option<Instant> {
    let at = now + delay;
    (error.is_unreachable() && at < valid_until).then_some(at)
}

/// Extends `lease` until it is lost or a cap in `limits` is reached (see
/// [`Redlock::keep_alive_with`]).
pub(crate) async fn keep_alive<R: Runtime>(
    client: Redlock<R>,
    lease: Lease,
    ttl: Duration,
    limits: HoldLimits,
) {
    let threshold = client.options().automatic_extension_threshold;
    let retry_delay = client.options().retry_delay;
    let hold_end = limits.max_hold.map(|max| Instant::now() + max);
    let mut extensions = 0u32;
    let mut retry = None;
    loop {
        let lock = lease.lock();
        // Everything aims at `lost_at`, a margin before validity ends: the lease must be known
        // lost while the lock is still valid, whatever the timers' lateness.
        let valid_until = lease.lost_at();
        let wake = retry.unwrap_or_else(|| extend_at(valid_until, Instant::now(), threshold));
        if let Some(at) = capped_at(&limits, extensions, hold_end, wake, valid_until) {
            client.runtime().sleep_until(at).await;
            tracing::info!(
                resources = ?lock.resources(),
                extensions,
                "redlock: lease ended: its cap was reached"
            );
            crate::metrics::lease_lost("cap");
            lease.mark_lost();
            return;
        }
        client.runtime().sleep_until(wake).await;
        // The extension races the validity: past it the lock may be someone else's, whatever
        // the extension later says.
        let extend = Box::pin(client.extend(&lock, ttl));
        let expiry = client.runtime().sleep_until(valid_until);
        match first(extend, expiry).await {
            First::A(Ok(new)) => {
                tracing::debug!(
                    resources = ?new.resources(),
                    valid_for = ?new.remaining(Instant::now()),
                    "redlock: lease extended"
                );
                lease.set(new);
                extensions = extensions.saturating_add(1);
                retry = None;
            }
            First::A(Err(e)) => {
                retry = retry_extend_at(&e, Instant::now(), retry_delay, valid_until);
                if retry.is_some() {
                    tracing::debug!(error = %e, "redlock: extension failed; trying again");
                    continue;
                }
                tracing::warn!(resources = ?lock.resources(), error = %e, "redlock: lease lost: extension failed");
                crate::metrics::extension_lost(&e);
                lease.mark_lost();
                return;
            }
            First::B(()) => {
                tracing::warn!(
                    resources = ?lock.resources(),
                    "redlock: lease lost: validity ran out before an extension succeeded"
                );
                crate::metrics::lease_lost("expired");
                lease.mark_lost();
                return;
            }
        }
    }
}

pub(crate) enum First<A, B> {
    A(A),
    B(B),
}

/// Whichever of two futures finishes first (the other is dropped).
pub(crate) async fn first<A: Future + Unpin, B: Future + Unpin>(
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
    use super::{extend_at, retry_extend_at};
    use crate::error::Error;
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

    #[test]
    fn a_failed_extension_is_tried_again_only_when_unreachable_and_inside_validity() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let unreachable = Error::Unreachable { attempts: vec![] };
        let not_held = Error::NotHeld { attempts: vec![] };
        let end = now + ms(1_000);
        assert_eq!(
            retry_extend_at(&unreachable, now, ms(200), end),
            Some(now + ms(200))
        );
        // The retry would start as the lock runs out: lost now, not later.
        assert_eq!(
            retry_extend_at(&unreachable, now + ms(800), ms(200), end),
            None
        );
        // A refusal is an answer: the keys are gone or someone else's.
        assert_eq!(retry_extend_at(&not_held, now, ms(200), end), None);
    }
}
