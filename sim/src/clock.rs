//! Virtual time: nanosecond counters since the start of a run, drifting clocks that map real
//! (simulated) time to each participant's local time, the instants handed to engines and
//! nodes (one base instant, captured once per process, plus a virtual offset; nothing reads the
//! real clock after that), and wall clocks (a fixed date plus real time plus an offset).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// The wall-clock date of real time 0 in every run: 2025-06-15 (about 2^50.6 µs since the
/// epoch, where fencing tokens with the clock floor live).
pub(crate) const WALL_START: Duration = Duration::from_secs(1_750_000_000);

/// A machine's wall clock at real time `t` (nanoseconds), `offset` nanoseconds ahead of real
/// time. Wall clocks are modelled apart from rate drift: NTP keeps them within a bounded offset
/// of real time, whatever the rate of the machine's monotonic clock.
pub(crate) fn wall(t: u64, offset: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + WALL_START + Duration::from_nanos(t.saturating_add(offset))
}

/// The wall clock that goes with instant `i`, for tests that drive engines by hand (the
/// [`Rig`]'s clock): a fixed date (2025-06-15) at an instant captured once per process, moving
/// with `i`. Every engine given it has a wall clock in step with the others.
///
/// ```
/// use std::time::{Duration, Instant};
/// let now = Instant::now();
/// let later = redlock_sim::wall_clock(now + Duration::from_secs(5));
/// assert_eq!(later.duration_since(redlock_sim::wall_clock(now)).unwrap(), Duration::from_secs(5));
/// ```
///
/// [`Rig`]: crate::Rig
pub fn wall_clock(i: Instant) -> SystemTime {
    let start = SystemTime::UNIX_EPOCH + WALL_START;
    match i.checked_duration_since(base()) {
        Some(after) => start + after,
        None => start - base().duration_since(i),
    }
}

/// One millisecond, in nanoseconds.
pub(crate) const MS: u64 = 1_000_000;
/// One second, in nanoseconds.
pub(crate) const SEC: u64 = 1_000_000_000;

/// `d` in whole nanoseconds (saturating).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A drifting clock: `local(t) = offset + t × (1 + ppm / 10⁶)`, in nanoseconds, where `t` is
/// real (simulated) time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clock {
    /// Local time at real time 0, in nanoseconds.
    pub offset: u64,
    /// Rate error in parts per million (positive: fast). Must be above -10⁶.
    pub ppm: i64,
}

impl Clock {
    /// Local time at real time `t`.
    pub fn local(&self, t: u64) -> u64 {
        let rate = u128::try_from(1_000_000 + self.ppm).unwrap_or(1);
        self.offset + (u128::from(t) * rate / 1_000_000) as u64
    }

    /// The earliest real time at which local time is at least `local`.
    pub fn real(&self, local: u64) -> u64 {
        if local <= self.local(0) {
            return 0;
        }
        let rate = u128::try_from(1_000_000 + self.ppm).unwrap_or(1);
        let mut t = (u128::from(local - self.offset) * 1_000_000).div_ceil(rate) as u64;
        while self.local(t) < local {
            t += 1;
        }
        while t > 0 && self.local(t - 1) >= local {
            t -= 1;
        }
        t
    }
}

/// The instant every virtual time is an offset of, captured once per process.
pub(crate) fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The instant of local time `local` (nanoseconds).
pub(crate) fn instant(local: u64) -> Instant {
    base() + Duration::from_nanos(local)
}

/// The local time (nanoseconds) of instant `i`.
pub(crate) fn local_of(i: Instant) -> u64 {
    nanos(i.saturating_duration_since(base()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_round_trip() {
        for ppm in [-200_000, -10_000, -1, 0, 1, 7_777, 50_000] {
            let c = Clock { offset: 123, ppm };
            for t in [0, 1, 999, 1_000_000, 3_000_000_007, 60 * SEC] {
                let l = c.local(t);
                let r = c.real(l);
                assert!(r <= t && c.local(r) >= l, "ppm {ppm} t {t}");
                assert!(r == 0 || c.local(r - 1) < l);
            }
        }
    }
}
