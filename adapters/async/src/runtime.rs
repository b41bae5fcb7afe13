//! What a runtime must supply: connect (TCP, and optionally a Unix socket), sleep until an
//! instant, spawn. Nothing else.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A connected byte stream (a TCP socket, usually; a Unix socket, a TLS session, or whatever a
/// [`Connector`](crate::Connector) returns).
///
/// The runtimes' own read/write traits differ (tokio's `AsyncRead` is not `futures-io`'s), so
/// the driver asks for just these two calls; each adapter forwards them to its socket (the
/// adapter crates' `Stream` wrapper does so for any stream of their runtime).
pub trait Connection: Send + Unpin + 'static {
    /// Reads into `buf`; `Ok(0)` means the peer closed. Registers `cx` when not ready.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes some of `buf`, returning how much. Registers `cx` when not ready.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
}

/// An async runtime, as the driver needs it.
///
/// Implemented by `redlock-tokio`, `redlock-async-std` and `redlock-smol`; implement it yourself
/// to run on another executor.
pub trait Runtime: Clone + Send + Sync + Unpin + 'static {
    /// The socket type.
    type Conn: Connection;
    /// Opens a TCP connection to `host:port` (with `TCP_NODELAY`: lock traffic is small).
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<Self::Conn>>;
    /// Opens a connection to the Unix socket at `path`. The default refuses (`Unsupported`):
    /// a runtime without Unix sockets still serves TCP nodes.
    fn connect_unix(&self, path: PathBuf) -> BoxFuture<io::Result<Self::Conn>> {
        Box::pin(async move {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this runtime cannot connect to the Unix socket {}",
                    path.display()
                ),
            ))
        })
    }
    /// A future that resolves at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
    /// Runs `task` in the background until it completes.
    fn spawn(&self, task: BoxFuture<()>);
    /// Asks for the task polled with `cx` to be polled again once the runtime has run the
    /// tasks ready now and looked at its sockets; the caller then returns `Poll::Pending`. The
    /// driver spins so (`Options::spin_before_park`) while a lone operation waits for replies.
    ///
    /// The default wakes the task at once (`cx.waker().wake_by_ref()`): smol's and
    /// async-std's executors then poll their reactor without blocking before they run it
    /// again. tokio's adapter uses `tokio::task::yield_now`, which does that on tokio.
    fn yield_to_io(&self, cx: &mut Context<'_>) {
        cx.waker().wake_by_ref();
    }
    /// Asks for the task polled with `cx` to be polled again once the callers it woke since
    /// its last write (`woken` of them) have had a chance to start their next requests; the
    /// caller then returns `Poll::Pending`. The driver does so once before a write that other
    /// callers' requests may join, so they go out in one write instead of one each.
    ///
    /// The default wakes the task at once (`cx.waker().wake_by_ref()`): on an executor that
    /// puts it behind the tasks ready now, the callers among them. The blocking adapter, whose
    /// callers are threads, also yields its driver's thread to them when there are many.
    fn yield_to_callers(&self, cx: &mut Context<'_>, woken: usize) {
        let _ = woken;
        cx.waker().wake_by_ref();
    }
    /// When the driver may spin on this runtime (default [`DriverSpin::Alone`]).
    fn driver_spin(&self) -> DriverSpin {
        DriverSpin::Alone
    }
}

/// When the driver spins for replies (`Options::spin_before_park`) rather than let its thread
/// park, on a given runtime ([`Runtime::driver_spin`]). Each spin lasts at most
/// `spin_before_park` after a write.
///
/// Measured side by side on 2 cores against one local node, 32 callers (`redlock-bench`, 5–6
/// rounds alternated, 2026-11-30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverSpin {
    /// Never. The blocking adapter's: its driver has a thread of its own, so spinning there
    /// would only take a core from the callers' threads, which spin on their results instead.
    Never,
    /// While one operation is in flight and waits for replies. smol's: its sockets learn of
    /// replies from its reactor, which an executor thread kept busy by a spinning driver polls
    /// less often (spinning with company too: 79–89k operations/s against 130–133k).
    Alone,
    /// Also while other operations are in flight, as long as the servers on this machine
    /// (nodes on loopback or a Unix socket; a cluster node counts its primaries) leave the
    /// client a core: callers are about to start requests,
    /// and a driver already queued to run takes their wake-ups without a thread's. tokio's
    /// (uncontended 74–79k -> 86–109k operations/s; one contended resource 10–13k -> 13–15k
    /// acquisitions/s, at 72–86 µs of client CPU each instead of 58–71) and async-std's
    /// (contended 9–12k -> 13–15k acquisitions/s; uncontended unchanged). With five local
    /// nodes on two cores it cost about 3 µs of client CPU per operation for no gain.
    Busy,
}
