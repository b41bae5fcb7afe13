//! The private background thread the async driver runs on: a one-thread smol executor, smol's
//! reactor for sockets and timers, and a stop signal that ends the thread when the client is
//! dropped.

use redlock_async::{BoxFuture, DriverSpin, Runtime};
use redlock_smol::SmolConn;
use smol::channel::{self, Sender};
use smol::{Executor, Task};
use std::future::Future;
use std::io;
use std::sync::{Arc, Weak};
use std::task::Context;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many callers woken since the driver's last write make its thread yield to them before
/// the next (`Runtime::yield_to_callers`). A contended resource's hand-over wakes two (the
/// releaser, who then waits in line, and the next holder, busy with its lock): nothing for
/// the write, and the yield only delays it.
///
/// Measured with `redlock-bench --concurrency 32 --adapter blocking` against one local node on
/// 2 cores, three builds alternated (6 rounds): without the thread's yield, 34–46k uncontended
/// operations a second and 7.6–10.3k contended hand-overs; yielding at every such write,
/// 43–59k and 7.9–10.2k; yielding from three callers woken, 38–61k and 8.7–11.7k.
const YIELD_THREAD_FOR: usize = 3;

/// The [`Runtime`] the async client sees: smol's sockets and timers, and tasks on the
/// background thread's executor.
///
/// It holds the executor weakly: the driver task holds a clone, and a strong reference there
/// would keep the executor (and the task itself) alive after the thread has gone.
#[derive(Clone)]
pub(crate) struct OnThread {
    executor: Weak<Executor<'static>>,
}

impl Runtime for OnThread {
    type Conn = SmolConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<SmolConn>> {
        Box::pin(SmolConn::connect(host, port))
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: std::path::PathBuf) -> BoxFuture<io::Result<SmolConn>> {
        Box::pin(SmolConn::connect_unix(path))
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }

    /// The callers' threads spin on their results instead (`crate::wait`).
    fn driver_spin(&self) -> DriverSpin {
        DriverSpin::Never
    }

    /// The callers are threads: the ones just woken start their requests only once they run,
    /// and often on this core, so when they are many the driver's thread yields to them before
    /// the write they may join.
    fn yield_to_callers(&self, cx: &mut Context<'_>, woken: usize) {
        if woken >= YIELD_THREAD_FOR {
            std::thread::yield_now();
        }
        cx.waker().wake_by_ref();
    }

    fn spawn(&self, task: BoxFuture<()>) {
        // No executor means the thread has stopped: nothing is left to run the task for.
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(task).detach();
        }
    }
}

/// The thread, its executor, and the sender whose drop stops it.
pub(crate) struct Background {
    executor: Arc<Executor<'static>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts the thread (named `redlock-driver`); it runs spawned tasks until this is dropped,
    /// then for at most `drain` more while any is unfinished (the driver waits for the answers
    /// still out before it closes the sockets).
    pub(crate) fn start(drain: Duration) -> io::Result<Background> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = channel::bounded::<()>(1);
        let ex = executor.clone();
        let thread = std::thread::Builder::new()
            .name("redlock-driver".into())
            .spawn(move || {
                // `recv` fails once the sender is dropped; nothing is ever sent.
                smol::block_on(ex.run(async {
                    let _ = stopped.recv().await;
                }));
                // The client's close woke the driver: it ends once the nodes have answered what
                // is still out (bounded by its node timeout). Run it until then, checking every
                // millisecond; anything still pending at `drain` is dropped with the executor.
                let until = Instant::now() + drain;
                smol::block_on(ex.run(async {
                    while !ex.is_empty() && Instant::now() < until {
                        smol::Timer::after(Duration::from_millis(1)).await;
                    }
                }));
                while ex.try_tick() {}
            })?;
        Ok(Background {
            executor,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime to hand the async client.
    pub(crate) fn runtime(&self) -> OnThread {
        OnThread {
            executor: Arc::downgrade(&self.executor),
        }
    }

    /// Runs `future` on the thread; dropping (or cancelling) the task stops it.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        self.executor.spawn(future)
    }

    /// The executor, to see from a test that it is gone once the client is.
    #[cfg(test)]
    pub(crate) fn executor(&self) -> Weak<Executor<'static>> {
        Arc::downgrade(&self.executor)
    }
}

impl Drop for Background {
    /// Stops the thread and waits for it, so the sockets are closed when the client is gone.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // Only our own tasks run there and none holds a blocking client, but never wait
            // for ourselves.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Background;
    use redlock_async::Runtime;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn yielding_to_the_callers_asks_for_the_next_poll() {
        let background = Background::start(Duration::from_millis(10)).expect("a thread");
        let woken = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        background
            .runtime()
            .yield_to_callers(&mut Context::from_waker(&waker), 0);
        background
            .runtime()
            .yield_to_callers(&mut Context::from_waker(&waker), 32);
        assert_eq!(
            woken.0.load(Ordering::Relaxed),
            2,
            "with or without the thread's yield"
        );
    }
}
