//! When `redlock run` stops the command: the timeline that makes SIGKILL land before the lock
//! can pass on to another holder.
//!
//! ```text
//! acquired ── extend ──── retries ──── SIGTERM ──── SIGKILL ──── valid_until
//!             (ttl/2 left)             (kill-after    (margin
//!                                       + margin left) left)
//! ```
//!
//! Every point is measured back from the lock's validity as `redlock` computes it (its own
//! clock, the drift margin already taken off), and moves later with each extension. If no
//! extension has succeeded by the SIGTERM point, the command's process group gets SIGTERM, and
//! SIGKILL `--kill-after` later, which is still `margin` before validity ends. The margin
//! absorbs a late timer on a busy machine: `max(ttl / 20, 50 ms)`. Between the first extension
//! try and SIGTERM at least a quarter of the ttl is left for retries, hence the rule
//! `kill-after + margin ≤ ttl / 4`.

use crate::duration::show;
use std::time::{Duration, Instant};

/// The smallest safety margin, whatever the ttl.
pub const MIN_MARGIN: Duration = Duration::from_millis(50);

/// The stop timeline for one ttl and one `--kill-after`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The lock's ttl.
    pub ttl: Duration,
    /// From SIGTERM to SIGKILL.
    pub kill_after: Duration,
    /// From SIGKILL to the end of validity.
    pub margin: Duration,
}

impl Timeline {
    /// The timeline for `ttl` and `kill_after`, or a message saying why `kill_after` does not
    /// fit in `ttl` and what would.
    ///
    /// ```
    /// use redlock_cli::timeline::Timeline;
    /// use std::time::Duration;
    /// let t = Timeline::new(Duration::from_secs(10), Duration::from_secs(2)).unwrap();
    /// assert_eq!(t.margin, Duration::from_millis(500));
    /// assert!(Timeline::new(Duration::from_secs(10), Duration::from_secs(3)).is_err());
    /// ```
    pub fn new(ttl: Duration, kill_after: Duration) -> Result<Timeline, String> {
        let margin = (ttl / 20).max(MIN_MARGIN);
        if kill_after + margin <= ttl / 4 {
            return Ok(Timeline {
                ttl,
                kill_after,
                margin,
            });
        }
        // The smallest ttl that fits: kill_after ≤ ttl/5 while the margin is ttl/20, or
        // kill_after + 50ms ≤ ttl/4 while the margin is the minimum.
        let need = (kill_after * 5).max((kill_after + MIN_MARGIN) * 4);
        Err(format!(
            "--kill-after {} does not fit in --ttl {}: SIGKILL must land before the lock can \
             pass on, so --kill-after plus the safety margin ({}) must be at most a quarter of \
             --ttl ({}); use --ttl {} or more, or a shorter --kill-after",
            show(kill_after),
            show(ttl),
            show(margin),
            show(ttl / 4),
            show(need)
        ))
    }

    /// The default `--kill-after` for `ttl`: the longest that fits (a fifth of a ttl of 1 s or
    /// more: 2 s for 10 s), or zero for a ttl too short to fit any.
    ///
    /// ```
    /// use redlock_cli::timeline::Timeline;
    /// use std::time::Duration;
    /// assert_eq!(Timeline::default_kill_after(Duration::from_secs(10)), Duration::from_secs(2));
    /// assert_eq!(Timeline::default_kill_after(Duration::from_millis(100)), Duration::ZERO);
    /// ```
    pub fn default_kill_after(ttl: Duration) -> Duration {
        (ttl / 4).saturating_sub((ttl / 20).max(MIN_MARGIN))
    }

    /// How much validity must be left when the lease is first kept alive: the first extension
    /// starts halfway through what is left, which must come before the SIGTERM point with room
    /// for a try.
    pub fn enough_left(&self) -> Duration {
        (self.kill_after + self.margin) * 2 + self.ttl / 8
    }

    /// When the command gets SIGTERM if the lock, valid until `valid_until`, has not been
    /// extended by then.
    pub fn term_at(&self, valid_until: Instant) -> Instant {
        sub(valid_until, self.kill_after + self.margin)
    }

    /// When the command gets SIGKILL, having had SIGTERM at `termed`, for a lock valid until
    /// `valid_until`: `kill_after` later, or `margin` before validity ends if that comes first.
    pub fn kill_at(&self, termed: Instant, valid_until: Instant) -> Instant {
        (termed + self.kill_after).min(sub(valid_until, self.margin))
    }
}

/// `at - d`, or `at` when that cannot be represented (an `Instant` near the clock's origin).
fn sub(at: Instant, d: Duration) -> Instant {
    at.checked_sub(d).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn fits_a_quarter_of_the_ttl() {
        let t = Timeline::new(S(10), S(2)).unwrap();
        assert_eq!((t.kill_after, t.margin), (S(2), MS(500)));
        let t = Timeline::new(S(2), MS(300)).unwrap();
        assert_eq!(t.margin, MS(100));
        // Short ttls keep the minimum margin.
        let t = Timeline::new(MS(400), MS(50)).unwrap();
        assert_eq!(t.margin, MIN_MARGIN);
        assert!(Timeline::new(MS(400), MS(51)).is_err());
        assert!(Timeline::new(S(10), MS(2001)).is_err());
        assert!(Timeline::new(S(10), Duration::ZERO).is_ok());
        for ttl in [MS(10), MS(200), MS(999), S(1), S(5), S(10), S(3600)] {
            let d = Timeline::default_kill_after(ttl);
            assert!(
                Timeline::new(ttl, d).is_ok() || d.is_zero(),
                "{ttl:?}: {d:?}"
            );
        }
        assert_eq!(Timeline::default_kill_after(S(5)), S(1));
    }

    #[test]
    fn refusal_names_a_ttl_that_fits() {
        let e = Timeline::new(S(10), S(10)).unwrap_err();
        assert!(
            e.contains("--kill-after 10s does not fit in --ttl 10s"),
            "{e}"
        );
        assert!(e.contains("use --ttl 50s or more"), "{e}");
        assert!(Timeline::new(S(50), S(10)).is_ok());
        let e = Timeline::new(MS(100), MS(10)).unwrap_err();
        assert!(e.contains("use --ttl 240ms or more"), "{e}");
        assert!(Timeline::new(MS(240), MS(10)).is_ok());
    }

    #[test]
    fn sigkill_lands_margin_before_validity_ends() {
        let t = Timeline::new(S(10), S(2)).unwrap();
        let now = Instant::now();
        let end = now + S(10);
        assert_eq!(t.term_at(end), end - MS(2500));
        assert_eq!(t.kill_at(t.term_at(end), end), end - MS(500));
        // Terminated early (a refused extension): kill-after decides.
        assert_eq!(t.kill_at(now, end), now + S(2));
        // Terminated late (lost with little left): the margin decides.
        assert_eq!(t.kill_at(end - S(1), end), end - MS(500));
        // The first extension (halfway through what is left) comes before SIGTERM.
        let left = t.enough_left();
        assert!(left / 2 > t.kill_after + t.margin, "{left:?}");
        assert!(left < S(10), "a fresh lock has enough: {left:?}");
    }
}
