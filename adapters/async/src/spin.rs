//! When the driver keeps polling for replies instead of letting its thread park: for at most
//! `Options::spin_before_park` after its last write, while replies are awaited; with other
//! operations in flight only where the runtime and the machine allow it
//! ([`DriverSpin`](crate::DriverSpin)).

use std::time::{Duration, Instant};

/// The driver's spin window.
#[derive(Debug)]
pub(crate) struct Spin {
    window: Duration,
    /// Whether to spin with more than one operation in flight too.
    busy: bool,
    until: Option<Instant>,
}

impl Spin {
    /// A window of `window` after each write (zero: never spin); `busy`: also while more than
    /// one operation is in flight.
    pub(crate) fn new(window: Duration, busy: bool) -> Self {
        Spin {
            window,
            busy,
            until: None,
        }
    }

    /// After a pass at `now` that found nothing more to do: whether it wrote, how many
    /// operations are in flight and how many requests are unanswered. Returns whether to poll
    /// again soon rather than park.
    pub(crate) fn keep_polling(
        &mut self,
        now: Instant,
        wrote: bool,
        in_flight: usize,
        unanswered: usize,
    ) -> bool {
        if self.window.is_zero() {
            return false;
        }
        if wrote {
            self.until = now.checked_add(self.window);
        }
        // A lone operation waiting only for its retry's timer needs no spinning. With company,
        // the driver spins even when no reply is due: callers are about to start requests,
        // and a driver already queued to run takes their wake-ups without a thread's.
        let worth = (in_flight == 1 && unanswered > 0) || (in_flight > 1 && self.busy);
        worth && self.until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::Spin;
    use std::time::{Duration, Instant};

    #[test]
    fn spins_for_a_lone_operation_until_the_window_after_its_write_ends() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let mut spin = Spin::new(us(100), false);
        assert!(!spin.keep_polling(t0, false, 1, 1), "nothing written yet");
        assert!(spin.keep_polling(t0, true, 1, 1));
        assert!(spin.keep_polling(t0 + us(99), false, 1, 1));
        assert!(!spin.keep_polling(t0 + us(100), false, 1, 1), "window over");
        assert!(
            spin.keep_polling(t0 + us(150), true, 1, 1),
            "a new write opens a new one"
        );
        assert!(
            !spin.keep_polling(t0 + us(160), false, 2, 2),
            "not with company"
        );
        assert!(
            !spin.keep_polling(t0 + us(160), false, 0, 0),
            "nothing to wait for"
        );
        assert!(
            !spin.keep_polling(t0 + us(160), false, 1, 0),
            "an operation waiting for its retry timer, no reply due"
        );
    }

    #[test]
    fn a_busy_spin_keeps_polling_with_company() {
        let t0 = Instant::now();
        let mut spin = Spin::new(Duration::from_micros(100), true);
        assert!(spin.keep_polling(t0, true, 32, 40));
        assert!(spin.keep_polling(t0, false, 1, 1));
        assert!(
            spin.keep_polling(t0, false, 32, 0),
            "callers are about to start requests"
        );
        assert!(!spin.keep_polling(t0, false, 1, 0));
    }

    #[test]
    fn a_zero_window_never_spins() {
        let mut spin = Spin::new(Duration::ZERO, true);
        assert!(!spin.keep_polling(Instant::now(), true, 1, 1));
    }
}
