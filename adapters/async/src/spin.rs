//! Spinning before parking ([`Options::spin`](redlock_core::Options::spin)): a thread about to
//! park until a reply arrives keeps checking for it a little while instead. A parked thread's
//! wake-up goes through the kernel's scheduler (and, on a virtual machine, an idle virtual CPU's
//! wake-up), which costs more than a loopback round trip to Redis; a spinning thread sees the
//! reply as soon as it lands, for the CPU it burns meanwhile.
//!
//! The driver spins only while a lone operation waits for replies: then no other caller needs
//! the thread it runs on (its caller waits for the same replies), and many concurrent callers
//! never pay for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most operations in flight for which the driver spins: one. With more, other callers
/// share the driver's thread (a single-threaded executor, or the blocking adapter's background
/// thread) and their requests fill the wait anyway.
pub(crate) const MAX_IN_FLIGHT: usize = 1;

/// When the driver may spin: from a write for a lone operation until `budget` later, or until
/// that operation ends or others join it; with `idle` (the driver has a thread to itself), also
/// from the end of the last operation until `budget` later, waiting for the next request.
#[derive(Debug)]
pub(crate) struct SpinWindow {
    budget: Duration,
    idle: bool,
    until: Option<Instant>,
}

impl SpinWindow {
    /// A window of `budget` per write (and per operation ended, with `idle`); zero never opens.
    pub(crate) fn new(budget: Duration, idle: bool) -> SpinWindow {
        SpinWindow {
            budget,
            idle,
            until: None,
        }
    }

    /// After a pass that saw `in_flight` operations, `wrote` (or not) and woke `woke` callers,
    /// at `now`: a write for a lone operation opens the window, and so does, with `idle`,
    /// waking a caller with none left in flight; more than one operation closes it, and so
    /// does none left without `idle`.
    pub(crate) fn record(&mut self, wrote: bool, woke: usize, in_flight: usize, now: Instant) {
        let lone = in_flight > 0 && in_flight <= MAX_IN_FLIGHT;
        let ended = in_flight == 0 && self.idle;
        if self.budget.is_zero() || !(lone || ended) {
            self.until = None;
        } else if (lone && wrote) || (ended && woke > 0) {
            self.until = Some(now + self.budget);
        }
    }

    /// Whether the driver should spin rather than park at `now`.
    pub(crate) fn is_open(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

/// Spins the driver started, in this process (read by tests: whether the option is used).
static DRIVER_SPINS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn count_driver_spin() {
    DRIVER_SPINS.fetch_add(1, Ordering::Relaxed);
}

/// How many times, in this process, a driver spun before parking ([`Options::spin`]
/// (redlock_core::Options::spin)). For tests and diagnostics; not a stable interface.
#[doc(hidden)]
pub fn driver_spins() -> u64 {
    DRIVER_SPINS.load(Ordering::Relaxed)
}

/// One step of a spin: a hint to the CPU, then the core to any other runnable thread (on a
/// machine with few cores, Redis itself may be waiting for it).
pub(crate) fn relax() {
    std::hint::spin_loop();
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::SpinWindow;
    use std::time::{Duration, Instant};

    #[test]
    fn opens_for_a_lone_operation_after_a_write_and_closes() {
        let t = Instant::now();
        let us = Duration::from_micros;
        let mut w = SpinWindow::new(us(100), false);
        w.record(false, 0, 1, t);
        assert!(!w.is_open(t), "nothing written, nothing to wait for");
        w.record(true, 0, 1, t);
        assert!(w.is_open(t + us(99)));
        assert!(!w.is_open(t + us(100)), "bounded by the budget");
        w.record(false, 0, 1, t + us(10));
        assert!(w.is_open(t + us(50)), "a partial reply keeps the window");
        w.record(true, 0, 2, t + us(10));
        assert!(!w.is_open(t + us(20)), "another operation joined");
        w.record(true, 0, 1, t + us(30));
        w.record(false, 1, 0, t + us(40));
        assert!(!w.is_open(t + us(50)), "the operation ended");
        let mut off = SpinWindow::new(Duration::ZERO, true);
        off.record(true, 0, 1, t);
        off.record(false, 1, 0, t);
        assert!(!off.is_open(t), "a zero budget never spins");
    }

    #[test]
    fn with_a_thread_of_its_own_also_spins_between_operations() {
        let t = Instant::now();
        let us = Duration::from_micros;
        let mut w = SpinWindow::new(us(100), true);
        w.record(false, 0, 0, t);
        assert!(!w.is_open(t), "no operation ended: nothing to expect");
        w.record(false, 1, 0, t);
        assert!(w.is_open(t + us(99)), "its caller may start the next one");
        assert!(!w.is_open(t + us(100)), "bounded by the budget");
        w.record(false, 0, 0, t + us(50));
        assert!(
            w.is_open(t + us(99)),
            "a pass with nothing new keeps the window"
        );
        w.record(false, 1, 0, t + us(50));
        assert!(
            w.is_open(t + us(149)),
            "another operation ended: the window starts again"
        );
        w.record(true, 0, 2, t + us(60));
        assert!(!w.is_open(t + us(70)), "many operations: no spinning");
    }
}
