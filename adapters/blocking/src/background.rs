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
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
