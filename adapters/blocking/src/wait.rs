//! How a calling thread waits for an operation's result, for up to
//! `Options::spin_before_park` before it parks: while it is this client's only caller waiting,
//! it spins; with company, while the local servers leave the client a core, it yields its
//! thread to the others.
//!
//! Waking a parked thread is the dearest step of a blocking call: the driver's `futex` wake,
//! and the switch into the woken thread. A thread that yields stays runnable, so its wake is a
//! flag. Measured with `redlock-bench --concurrency 32 --adapter blocking` on 2 cores against
//! one local node, alternated with a build that parked at once (4 rounds contended, 6
//! uncontended): a contended resource changed hands 8.1–11.9k times a second against 6.2–7.9k;
//! uncontended operations ran at about the same rate (33–50k against 37–43k a second) with a
//! lower p50 (509–689 µs against 716–826) for 3–38% more client CPU each. With five local
//! nodes, which leave no core, yielding took their CPU: 15–20k against 20–26k a second.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Blocks callers on their futures; shared by a client's clones, guards and holds.
#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    spin: Duration,
    /// Whether a caller with company yields before it parks (the local servers leave a core).
    yields: bool,
    /// Callers of this client blocked right now: with company, spinning would take the cores
    /// the others (and the driver's thread) need.
    waiting: Arc<AtomicUsize>,
    /// How often a caller parked, for the tests.
    #[cfg(test)]
    parks: Arc<AtomicUsize>,
}

/// What a caller does before it parks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    /// Polls its flag: it waits alone.
    Spin,
    /// Yields its thread between looks at its flag: others wait too.
    Yield,
    /// Nothing.
    Park,
}

/// Wakes one blocked thread: set, then unpark.
struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Counts a caller as waiting while it lives.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Waiter {
    /// Spins (alone) or yields (with company, if `yields`) for up to `spin` (zero: never)
    /// before parking.
    pub(crate) fn new(spin: Duration, yields: bool) -> Self {
        Waiter {
            spin,
            yields,
            waiting: Arc::new(AtomicUsize::new(0)),
            #[cfg(test)]
            parks: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `fut` to completion on this thread. Returns its output.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(&self.waiting);
        let mut fut = pin!(fut);
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(false),
            thread: std::thread::current(),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            if self.before() != Before::Park {
                // Looked at on every turn: a caller spinning alone yields once company comes.
                let start = Instant::now();
                while !signal.woken.load(Ordering::Acquire) && start.elapsed() < self.spin {
                    match self.before() {
                        Before::Spin => std::hint::spin_loop(),
                        Before::Yield => std::thread::yield_now(),
                        Before::Park => break,
                    }
                }
            }
            // `park` may return without an unpark: wait for the flag.
            while !signal.woken.swap(false, Ordering::Acquire) {
                #[cfg(test)]
                self.parks.fetch_add(1, Ordering::Relaxed);
                std::thread::park();
            }
        }
    }

    /// What a waiting caller does now before it parks: spin while it waits alone, yield with
    /// company where that is allowed, nothing when the spin is off.
    fn before(&self) -> Before {
        if self.spin.is_zero() {
            Before::Park
        } else if self.waiting.load(Ordering::Relaxed) == 1 {
            Before::Spin
        } else if self.yields {
            Before::Yield
        } else {
            Before::Park
        }
    }

    /// Whether callers with company yield, for the tests.
    #[cfg(test)]
    pub(crate) fn yields(&self) -> bool {
        self.yields
    }

    /// How many callers are blocked, for the tests.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::{Before, Waiter};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    /// Pending until `ready` polls have happened, waking itself from another thread after
    /// `delay` each time; counts its polls.
    struct Slow {
        polls: Arc<AtomicUsize>,
        ready: usize,
        delay: Duration,
    }

    impl Future for Slow {
        type Output = usize;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= self.ready {
                return Poll::Ready(n);
            }
            let waker = cx.waker().clone();
            let delay = self.delay;
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                waker.wake();
            });
            Poll::Pending
        }
    }

    /// A waiter with `company` other callers counted as blocked.
    fn waiter(spin: Duration, yields: bool, company: usize) -> Waiter {
        let waiter = Waiter::new(spin, yields);
        waiter.waiting.fetch_add(company, Ordering::Relaxed);
        waiter
    }

    #[test]
    fn runs_a_future_woken_from_another_thread_to_its_end() {
        for spin in [Duration::ZERO, Duration::from_millis(5)] {
            for (yields, company) in [(false, 0), (true, 0), (false, 1), (true, 1)] {
                let waiter = waiter(spin, yields, company);
                let polls = Arc::new(AtomicUsize::new(0));
                let out = waiter.block_on(Slow {
                    polls: polls.clone(),
                    ready: 3,
                    delay: Duration::from_millis(1),
                });
                assert_eq!(out, 3, "polled once more per wake, and not after Ready");
                assert_eq!(
                    waiter.waiting(),
                    company,
                    "no longer counted once it returned"
                );
            }
        }
    }

    #[test]
    fn spins_alone_and_yields_with_company_where_allowed() {
        let us = Duration::from_micros(100);
        assert_eq!(waiter(us, true, 1).before(), Before::Spin, "one caller");
        assert_eq!(waiter(us, false, 1).before(), Before::Spin);
        assert_eq!(waiter(us, true, 2).before(), Before::Yield, "two");
        assert_eq!(
            waiter(us, false, 2).before(),
            Before::Park,
            "no core to spare"
        );
        let off = Duration::ZERO;
        assert_eq!(waiter(off, true, 1).before(), Before::Park, "turned off");
        assert_eq!(waiter(off, true, 2).before(), Before::Park);
    }

    #[test]
    fn a_caller_with_company_yields_through_a_quick_wake_instead_of_parking() {
        // The wake comes 1 ms after the wait starts, well inside the window (bounded: the
        // wait ends at the wake, or parks when the window ends).
        let quick = || Slow {
            polls: Arc::new(AtomicUsize::new(0)),
            ready: 2,
            delay: Duration::from_millis(1),
        };
        let yielding = waiter(Duration::from_secs(10), true, 1);
        assert_eq!(yielding.block_on(quick()), 2);
        assert_eq!(yielding.parks.load(Ordering::Relaxed), 0, "never parked");
        let parking = waiter(Duration::from_secs(10), false, 1);
        assert_eq!(parking.block_on(quick()), 2);
        assert!(parking.parks.load(Ordering::Relaxed) >= 1, "parked at once");
    }

    #[test]
    fn a_spinning_or_yielding_caller_still_sees_a_wake_that_comes_after_its_window() {
        // The wake comes long after the window ends: the thread must have parked and been
        // unparked, not missed it.
        for (yields, company) in [(false, 0), (true, 1)] {
            let waiter = waiter(Duration::from_micros(50), yields, company);
            let out = waiter.block_on(Slow {
                polls: Arc::new(AtomicUsize::new(0)),
                ready: 2,
                delay: Duration::from_millis(20),
            });
            assert_eq!(out, 2);
            assert!(waiter.parks.load(Ordering::Relaxed) >= 1);
        }
    }
}
