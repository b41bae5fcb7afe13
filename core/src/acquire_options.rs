//! Per-call settings of one acquire: how long it may take in all, and how it retries.

use crate::config::Options;
use crate::error::Error;
use crate::limits::MAX_DURATION;
use std::time::{Duration, Instant};

/// How a failed attempt is retried: the client-wide [`Options::retry_count`],
/// [`Options::retry_delay`] and [`Options::retry_jitter`], or a call's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// How many times a failed attempt is tried again; `None`: until the deadline (or a cancel).
    pub count: Option<u32>,
    /// Pause between attempts.
    pub delay: Duration,
    /// The pause varies by up to this much either way.
    pub jitter: Duration,
}

impl Retry {
    /// The client-wide settings in `options`.
    pub fn from_options(options: &Options) -> Retry {
        Retry {
            count: options.retry_count,
            delay: options.retry_delay,
            jitter: options.retry_jitter,
        }
    }
}

/// Settings for one acquire, over the client's [`Options`]. The default changes nothing.
///
/// A bound (`wait` from the call, or an absolute `deadline`, whichever ends first) is enforced
/// by the engine: no retry starts once its pause would end at or past the bound, and an attempt
/// still voting at the bound is cut there (its unanswered nodes count as not awaited, and the
/// keys it may have taken are released). The operation then fails with
/// [`OpError::timed_out`](crate::OpError::timed_out) set, its `failure` saying what the last
/// attempt met ([`Failure::Locked`](crate::Failure::Locked): held by another holder;
/// [`Failure::Unreachable`](crate::Failure::Unreachable): too few nodes answered). The first
/// attempt is always sent, even with a zero bound.
///
/// ```
/// use redlock_core::{AcquireOptions, Retry};
/// use std::time::Duration;
/// let bounded = AcquireOptions::new()
///     .wait(Duration::from_millis(200))
///     .retry(Retry { count: None, delay: Duration::from_millis(20), jitter: Duration::from_millis(5) });
/// assert_eq!(bounded.wait, Some(Duration::from_millis(200)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcquireOptions {
    /// The longest the acquire may take, from the `now` it starts at.
    pub wait: Option<Duration>,
    /// The instant (on the caller's `now` clock) the acquire must be over by.
    pub deadline: Option<Instant>,
    /// Retry settings for this call instead of the client's.
    pub retry: Option<Retry>,
}

impl AcquireOptions {
    /// No bound, the client's retry settings.
    pub fn new() -> AcquireOptions {
        AcquireOptions::default()
    }

    /// Bounds the acquire to `wait` from when it starts.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> AcquireOptions {
        self.wait = Some(wait);
        self
    }

    /// Bounds the acquire to end by `deadline`.
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> AcquireOptions {
        self.deadline = Some(deadline);
        self
    }

    /// Retries this acquire per `retry` instead of the client's options.
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> AcquireOptions {
        self.retry = Some(retry);
        self
    }

    /// Checks the durations are at most [`MAX_DURATION`]; returns [`Error::InvalidOption`]
    /// naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let durations = [
            ("wait", self.wait),
            ("retry.delay", self.retry.map(|r| r.delay)),
            ("retry.jitter", self.retry.map(|r| r.jitter)),
        ];
        for (name, d) in durations {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return Err(Error::InvalidOption {
                    name,
                    reason: "must be at most a year (redlock_core::MAX_DURATION)".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The bound for an acquire starting at `now`: the earlier of `now + wait` and `deadline`.
    pub(crate) fn bound(&self, now: Instant) -> Option<Instant> {
        let from_wait = self.wait.map(|w| now + w);
        match (from_wait, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
