//! How a calling thread waits for its future: `block_on` that spins before parking
//! ([`Options::spin`](redlock_async::Options::spin)). The reply comes from the background
//! thread; a parked caller costs that thread a futex wake-up and itself a trip through the
//! scheduler, while a spinning one sees the wake-up flag as soon as it is set.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How callers of one client wait: the spin budget, and the one caller allowed to spin at a
/// time (with many callers, spinning threads would take the cores the background thread and
/// Redis need).
#[derive(Debug)]
pub(crate) struct Waiting {
    spin: Duration,
    spinner: AtomicBool,
    /// Waits that spun (read by tests: whether the option is used).
    spins: AtomicU64,
}

/// Wakes the waiting thread: sets the flag a spinning caller watches, and unparks a parked one.
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
        // Cheap when the thread is not parked (an atomic swap).
        self.thread.unpark();
    }
}

impl Waiting {
    /// Callers spin up to `spin` (zero: they park at once).
    pub(crate) fn new(spin: Duration) -> Waiting {
        Waiting {
            spin,
            spinner: AtomicBool::new(false),
            spins: AtomicU64::new(0),
        }
    }

    /// Runs `future` to completion on the calling thread, spinning before each park when no
    /// other caller of this client spins.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(false),
            thread: std::thread::current(),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            // Cleared before the poll: a wake-up during it is one to act on.
            signal.woken.store(false, Ordering::Release);
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            self.spin_for(&signal.woken);
            while !signal.woken.load(Ordering::Acquire) {
                // Returns on an unpark, or spuriously: the flag decides.
                std::thread::park();
            }
        }
    }

    /// Spins until `woken` is set or the budget runs out, if this caller may spin.
    fn spin_for(&self, woken: &AtomicBool) {
        if self.spin.is_zero()
            || woken.load(Ordering::Acquire)
            || self
                .spinner
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.spins.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + self.spin;
        while !woken.load(Ordering::Acquire) && Instant::now() < until {
            relax();
        }
        self.spinner.store(false, Ordering::Release);
    }

    /// How many waits spun before parking.
    #[cfg(test)]
    pub(crate) fn spins(&self) -> u64 {
        self.spins.load(Ordering::Relaxed)
    }
}

/// One step of a spin: a hint to the CPU, then the core to any other runnable thread (the
/// background thread or Redis may be waiting for it on a machine with few cores).
pub(crate) fn relax() {
    std::hint::spin_loop();
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::Waiting;
    use std::time::Duration;

    /// Blocks on a result another thread sends after 5 ms (longer than any budget here, so the
    /// wait ends parked whether it spun or not); returns how many waits spun.
    fn spins_waiting_for_a_late_result(spin: Duration) -> u64 {
        let waiting = Waiting::new(spin);
        let (tx, rx) = smol::channel::bounded(1);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx.send_blocking(7)
        });
        assert_eq!(waiting.block_on(rx.recv()), Ok(7));
        assert!(sender.join().is_ok_and(|sent| sent.is_ok()));
        waiting.spins()
    }

    #[test]
    fn spins_before_parking_only_with_a_budget() {
        assert_eq!(spins_waiting_for_a_late_result(Duration::ZERO), 0);
        assert_eq!(
            spins_waiting_for_a_late_result(Duration::from_micros(200)),
            1
        );
    }

    #[test]
    fn one_caller_spins_at_a_time() {
        let waiting = Waiting::new(Duration::from_micros(200));
        // Another caller is spinning: this one parks at once.
        waiting
            .spinner
            .store(true, std::sync::atomic::Ordering::Release);
        let (tx, rx) = smol::channel::bounded(1);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            tx.send_blocking(())
        });
        assert_eq!(waiting.block_on(rx.recv()), Ok(()));
        let _ = sender.join();
        assert_eq!(waiting.spins(), 0);
    }
}
