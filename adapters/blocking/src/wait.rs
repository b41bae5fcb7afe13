//! How a calling thread waits for an operation's result: while it is this client's only
//! caller waiting, it spins for up to `Options::spin_before_park` before it parks.

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
    /// Callers of this client blocked right now: with company, spinning would take the cores
    /// the others (and the driver's thread) need.
    waiting: Arc<AtomicUsize>,
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
    /// Spins for up to `spin` (zero: never) before parking.
    pub(crate) fn new(spin: Duration) -> Self {
        Waiter {
            spin,
            waiting: Arc::new(AtomicUsize::new(0)),
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
            if self.spins() {
                let start = Instant::now();
                while !signal.woken.load(Ordering::Acquire)
                    && start.elapsed() < self.spin
                    && self.spins()
                {
                    std::hint::spin_loop();
                }
            }
            // `park` may return without an unpark: wait for the flag.
            while !signal.woken.swap(false, Ordering::Acquire) {
                std::thread::park();
            }
        }
    }

    /// Whether a waiting caller may spin now: spinning is on and it waits alone.
    fn spins(&self) -> bool {
        !self.spin.is_zero() && self.waiting.load(Ordering::Relaxed) == 1
    }

    /// How many callers are blocked, for the tests.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::Waiter;
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

    #[test]
    fn runs_a_future_woken_from_another_thread_to_its_end() {
        for spin in [Duration::ZERO, Duration::from_millis(5)] {
            let waiter = Waiter::new(spin);
            let polls = Arc::new(AtomicUsize::new(0));
            let out = waiter.block_on(Slow {
                polls: polls.clone(),
                ready: 3,
                delay: Duration::from_millis(1),
            });
            assert_eq!(out, 3, "polled once more per wake, and not after Ready");
            assert_eq!(waiter.waiting(), 0, "no longer counted once it returned");
        }
    }

    #[test]
    fn spins_only_while_alone() {
        let waiter = Waiter::new(Duration::from_micros(100));
        waiter.waiting.fetch_add(1, Ordering::Relaxed);
        assert!(waiter.spins(), "one caller waiting");
        waiter.waiting.fetch_add(1, Ordering::Relaxed);
        assert!(!waiter.spins(), "two: both park");
        let off = Waiter::new(Duration::ZERO);
        off.waiting.fetch_add(1, Ordering::Relaxed);
        assert!(!off.spins(), "spinning turned off");
    }

    #[test]
    fn a_spinning_caller_still_sees_a_wake_that_comes_after_its_spin() {
        // The wake comes long after the spin ends: the thread must have parked and been
        // unparked, not missed it.
        let waiter = Waiter::new(Duration::from_micros(50));
        let out = waiter.block_on(Slow {
            polls: Arc::new(AtomicUsize::new(0)),
            ready: 2,
            delay: Duration::from_millis(20),
        });
        assert_eq!(out, 2);
    }
}
