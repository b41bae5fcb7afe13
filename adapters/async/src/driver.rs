//! The driver: one background task per client that owns every socket and moves bytes, time and
//! events between them and the engine. Callers touch the engine (under the mutex) only to start
//! or abandon operations, then wake the driver; each collects its result from a slot of its
//! own (`waiters.rs`), without the mutex.
//!
//! The sockets are the engine's links: each node's own connection first, then the ones the engine
//! asks for (`Event::Open`: a cluster's shard primaries, a RESP2 node's subscriber), each opened
//! like its node's and reconnected with its own backoff.
//!
//! Each pass reads every socket, then takes the lock once to feed the engine and collect what it
//! sends, then writes each link's bytes in one call. The lock is never held across a syscall
//! (callers on other threads would block on it), and a node gets one write per pass however
//! many requests are queued for it: every write costs a syscall here and a wake-up in Redis.
//! A pass with nothing to feed (nothing read, no timeout due, no caller since the last one)
//! does not take the lock at all: a spinning driver makes many such passes, and each would
//! keep callers waiting on the lock.

use crate::backoff::Backoff;
use crate::batching::Batching;
use crate::connector::{Connector, Dial};
use crate::local_queue::LocalQueue;
use crate::overlap::Overlap;
use crate::runtime::{BoxFuture, Connection, DriverSpin, Runtime};
use crate::setup::Setup;
use crate::spin::Spin;
use crate::waiters::{LinkChange, Waiters};
use redlock_core::{Engine, LinkId, NodeConfig};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// State shared between the driver and the callers.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) waiters: Waiters,
    /// This client's unbounded acquires waiting in line behind its own callers.
    pub(crate) queue: LocalQueue,
    driver: Option<Waker>,
    /// Set with every wake of the driver by a caller (and read by the driver without the
    /// lock): a pass that read nothing, with no timeout due and nobody having called, leaves
    /// the engine alone (see `Driver::quiet`).
    poked: Arc<AtomicBool>,
    /// Set when the last client handle is dropped: the driver waits (a bounded time) for the
    /// requests still out to be answered, then closes its sockets and ends.
    closed: bool,
    /// Callers of `flush`, woken once the engine has no request unanswered.
    flushers: Vec<Waker>,
    /// Nodes whose first connection attempt has finished (either way); `connect` waits for all.
    settled: Vec<bool>,
    settle_waker: Option<Waker>,
}

/// The mutex around [`Shared`], with the wake-ups callers need.
pub(crate) struct Handle(Mutex<Shared>);

impl Handle {
    pub(crate) fn new(engine: Engine) -> Handle {
        let n = engine.node_count();
        Handle(Mutex::new(Shared {
            engine,
            waiters: Waiters::default(),
            queue: LocalQueue::default(),
            driver: None,
            poked: Arc::new(AtomicBool::new(false)),
            closed: false,
            flushers: Vec::new(),
            settled: vec![false; n],
            settle_waker: None,
        }))
    }

    /// Locks the shared state. A panic while holding it cannot leave the engine half-updated in
    /// a way that matters more than losing the client, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After starting or abandoning an operation: the driver has bytes to send or a new timeout.
    pub(crate) fn wake_driver(shared: &mut Shared) {
        shared.poked.store(true, Ordering::Release);
        if let Some(w) = &shared.driver {
            w.wake_by_ref();
        }
    }

    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        Handle::wake_driver(&mut s);
    }

    /// Resolves once no request is unanswered ([`Engine::unanswered`]): everything sent has
    /// been answered, timed out or given up with its connection.
    pub(crate) fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.engine.unanswered() == 0 {
            return Poll::Ready(());
        }
        if !s.flushers.iter().any(|w| w.will_wake(cx.waker())) {
            s.flushers.push(cx.waker().clone());
        }
        // Bytes the engine queued may be waiting for the driver's next pass.
        Handle::wake_driver(&mut s);
        Poll::Pending
    }

    /// Resolves once every node's first connection attempt has finished.
    pub(crate) fn poll_settled(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.settled.iter().all(|d| *d) {
            Poll::Ready(())
        } else {
            s.settle_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

enum NodeIo<C> {
    Idle {
        retry_at: Instant,
    },
    Connecting {
        fut: BoxFuture<std::io::Result<C>>,
        deadline: Instant,
    },
    Up {
        conn: C,
        /// Bytes for the node; `out[written..]` is still to go.
        out: Vec<u8>,
        written: usize,
    },
}

impl<C> NodeIo<C> {
    fn has_output(&self) -> bool {
        matches!(self, NodeIo::Up { out, written, .. } if *written < out.len())
    }
}

/// What the unlocked I/O phase saw, applied to the engine in this order under the lock.
enum Seen {
    Connected(usize),
    /// A connection attempt failed or timed out, and why.
    ConnectFailed(usize, String),
    /// Bytes from the node, at this range of `Driver::input`.
    Input(usize, Range<usize>),
    Disconnected(usize),
}

/// How much one pass reads from one node before letting the engine catch up: bounds the
/// driver's buffer when a node floods it.
const READ_PER_PASS: usize = 256 * 1024;

/// The background task. Spawned by `Redlock::connect`.
pub(crate) struct Driver<R: Runtime> {
    rt: R,
    handle: Arc<Handle>,
    /// Each link's name, for log lines: its node's, or the shard's address.
    names: Vec<String>,
    /// How to open each link's connection (a node's own dials first, in node order).
    dials: Vec<Dial>,
    /// The user's own, when given; else the runtime's sockets.
    connector: Option<Arc<dyn Connector>>,
    /// Boxed: the runtime's sockets, TLS sessions and user connections are all one type here
    /// (one indirect call per read or write, next to a syscall).
    io: Vec<NodeIo<Box<dyn Connection>>>,
    backoff: Vec<Backoff>,
    /// Per node, the last failure logged, so each change of state is logged once, not on
    /// every retry.
    logged: Vec<Option<String>>,
    connect_timeout: Duration,
    sleep: Option<(Instant, BoxFuture<()>)>,
    /// Scratch space reused across passes.
    buf: Box<[u8]>,
    input: Vec<u8>,
    seen: Vec<Seen>,
    woken: Vec<Waker>,
    changes: Vec<LinkChange>,
    /// Whether the last poll ended by yielding before a write.
    yielded: bool,
    /// Whether a write should wait for other callers' requests.
    batching: Batching,
    /// Once the client is closed: until when the driver waits for the requests still out.
    close_by: Option<Instant>,
    /// Wakes many callers in parts, so client and nodes work at the same time.
    overlap: Overlap,
    /// Polls again instead of parking while replies are due (`spin.rs`: for a lone operation,
    /// or with company where the runtime and the cores allow it).
    spin: Spin,
    /// The callers' flag (`Shared::poked`).
    poked: Arc<AtomicBool>,
    /// The waker the callers have (`Shared::driver`).
    registered: Option<Waker>,
    /// What the last pass that fed the engine left: the engine's next timeout (one scan of its
    /// operations per such pass), its operations in flight and its requests unanswered.
    engine_wake: Option<Instant>,
    in_flight: usize,
    unanswered: usize,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(
        rt: R,
        handle: Arc<Handle>,
        setup: Setup,
        connector: Option<Arc<dyn Connector>>,
        spin: Duration,
    ) -> Self {
        let Setup {
            configs: nodes,
            dials,
            connect_timeout,
            spare_core,
        } = setup;
        let now = Instant::now();
        let poked = handle.lock().poked.clone();
        let overlap = Overlap::new(spare_core);
        let spin = match rt.driver_spin() {
            DriverSpin::Never => Spin::new(Duration::ZERO, false),
            DriverSpin::Alone => Spin::new(spin, false),
            // Spinning with company takes a core; only while the local servers leave one.
            DriverSpin::Busy => Spin::new(spin, spare_core),
        };
        Driver {
            rt,
            handle,
            io: nodes
                .iter()
                .map(|_| NodeIo::Idle { retry_at: now })
                .collect(),
            backoff: (0..nodes.len())
                .map(|i| Backoff::new(crate::setup::seed() ^ i as u64))
                .collect(),
            logged: vec![None; nodes.len()],
            names: nodes.iter().map(NodeConfig::to_string).collect(),
            dials,
            connector,
            connect_timeout,
            sleep: None,
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            input: Vec::new(),
            seen: Vec::new(),
            woken: Vec::new(),
            changes: Vec::new(),
            yielded: false,
            batching: Batching::default(),
            close_by: None,
            overlap,
            spin,
            poked,
            registered: None,
            engine_wake: None,
            in_flight: 0,
            unanswered: 0,
        }
    }

    /// A new link the engine asked for: connect it at once.
    fn open(&mut self, link: LinkId, dial: Dial, name: String, now: Instant) {
        // Links are numbered in order; a gap would be an engine bug, not worth a panic here.
        if link.index() != self.io.len() {
            tracing::error!(%link, "redlock: link opened out of turn; ignored");
            return;
        }
        self.io.push(NodeIo::Idle { retry_at: now });
        self.backoff
            .push(Backoff::new(crate::setup::seed() ^ link.index() as u64));
        self.logged.push(None);
        self.names.push(name);
        self.dials.push(dial);
    }

    fn drop_node(&mut self, i: usize, now: Instant) {
        let wait = self.backoff[i].next_wait();
        self.io[i] = NodeIo::Idle {
            retry_at: now + wait,
        };
    }

    /// Logs `node`'s failure once per distinct cause.
    fn log_failure(&mut self, i: usize, cause: String) {
        if self.logged[i].as_ref() != Some(&cause) {
            tracing::warn!(node = %self.names[i], %cause, "redlock: node unusable");
            self.logged[i] = Some(cause);
        }
    }

    /// Without the lock: starts and polls connection attempts and reads every socket until it
    /// would block (or `READ_PER_PASS`). Returns whether a socket has more to read right away.
    fn read_all(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut more = false;
        for i in 0..self.io.len() {
            if let NodeIo::Idle { retry_at } = self.io[i] {
                if now < retry_at {
                    continue;
                }
                self.io[i] = NodeIo::Connecting {
                    fut: self.dials[i].open(&self.rt, self.connector.as_ref()),
                    deadline: now + self.connect_timeout,
                };
            }
            match &mut self.io[i] {
                NodeIo::Idle { .. } => {}
                NodeIo::Connecting { fut, deadline } => match fut.as_mut().poll(cx) {
                    Poll::Ready(Ok(conn)) => {
                        // The backoff resets only once the handshake succeeds (`Event::Ready`).
                        self.io[i] = NodeIo::Up {
                            conn,
                            out: Vec::new(),
                            written: 0,
                        };
                        self.seen.push(Seen::Connected(i));
                        tracing::debug!(node = %self.names[i], "redlock: connected");
                        // Its first read registers for readiness.
                        more = true;
                    }
                    Poll::Ready(Err(e)) => {
                        let cause = e.to_string();
                        self.log_failure(i, cause.clone());
                        crate::metrics::node_error(&self.names[i], "connect_failed");
                        self.seen.push(Seen::ConnectFailed(i, cause));
                        self.drop_node(i, now);
                    }
                    Poll::Pending if now >= *deadline => {
                        let cause = format!("connect timed out after {:?}", self.connect_timeout);
                        self.log_failure(i, cause.clone());
                        crate::metrics::node_error(&self.names[i], "connect_timeout");
                        self.seen.push(Seen::ConnectFailed(i, cause));
                        self.drop_node(i, now);
                    }
                    Poll::Pending => {}
                },
                NodeIo::Up { conn, .. } => {
                    let start = self.input.len();
                    let closed = loop {
                        if self.input.len() - start >= READ_PER_PASS {
                            more = true;
                            break false;
                        }
                        match conn.poll_read(cx, &mut self.buf) {
                            Poll::Ready(Ok(n)) if n > 0 => {
                                self.input.extend_from_slice(&self.buf[..n])
                            }
                            Poll::Ready(_) => break true,
                            Poll::Pending => break false,
                        }
                    };
                    if self.input.len() > start {
                        self.seen.push(Seen::Input(i, start..self.input.len()));
                    }
                    if closed {
                        tracing::debug!(node = %self.names[i], "redlock: disconnected");
                        crate::metrics::node_error(&self.names[i], "disconnected");
                        self.seen.push(Seen::Disconnected(i));
                        self.drop_node(i, now);
                    }
                }
            }
        }
        more
    }

    /// Under the lock: feeds the engine what `read_all` and `write_all` saw and any timeout due,
    /// moves what it sends into the nodes' output buffers, and collects the wakers of callers
    /// whose results arrived into `self.woken`.
    fn apply(&mut self, s: &mut Shared, now: Instant) {
        for seen in self.seen.drain(..) {
            match seen {
                Seen::Connected(i) => {
                    if let Some(settled) = s.settled.get_mut(i) {
                        *settled = true;
                    }
                    s.engine.handle_connected(now, LinkId::new(i));
                }
                Seen::ConnectFailed(i, cause) => {
                    if let Some(settled) = s.settled.get_mut(i) {
                        *settled = true;
                    }
                    s.engine.handle_connect_failed(now, LinkId::new(i), &cause);
                }
                Seen::Input(i, range) => {
                    s.engine
                        .handle_input(now, LinkId::new(i), &self.input[range]);
                }
                Seen::Disconnected(i) => {
                    s.engine.handle_disconnected(now, LinkId::new(i));
                }
            }
        }
        self.input.clear();
        // The last pass's figure: an operation started since with an earlier timeout is seen at
        // the end of this pass, which then comes round again at once.
        if self.engine_wake.is_some_and(|t| now >= t) {
            s.engine.handle_timeout(now);
        }
        // Dispatch first: releasing a lock nobody waits for queues more bytes.
        let changes = &mut self.changes;
        s.waiters.dispatch(
            &mut s.engine,
            now,
            |change| changes.push(change),
            &mut self.woken,
        );
        for change in std::mem::take(&mut self.changes) {
            match change {
                LinkChange::Ready(link) => {
                    let i = link.index();
                    self.backoff[i].reset();
                    if self.logged[i].take().is_some() {
                        tracing::info!(node = %self.names[i], "redlock: node usable again");
                    }
                }
                LinkChange::Reconnect(link, reason) => {
                    crate::metrics::node_reconnect(&self.names[link.index()], &reason);
                    self.log_failure(link.index(), reason.to_string());
                    self.drop_node(link.index(), now);
                }
                LinkChange::Open(link, node, to) => {
                    let Some(own) = self.dials.get(node.index()) else {
                        continue;
                    };
                    let (dial, name) = match &to {
                        None => (
                            own.clone(),
                            format!("{} (subscriber)", self.names[node.index()]),
                        ),
                        Some(endpoint) => (own.to(endpoint), endpoint.to_string()),
                    };
                    tracing::debug!(%link, link_name = %name, "redlock: opening a link");
                    self.open(link, dial, name, now);
                }
            }
        }
        while let Some((link, bytes)) = s.engine.poll_transmit() {
            // A link that is not up was (or is about to be) reported disconnected; the engine
            // does not count on these bytes.
            if let Some(NodeIo::Up { out, .. }) = self.io.get_mut(link.index()) {
                out.extend_from_slice(&bytes);
            }
        }
        if s.settled.iter().all(|d| *d) {
            self.woken.extend(s.settle_waker.take());
        }
        self.engine_wake = s.engine.poll_timeout();
        self.in_flight = s.engine.in_flight();
        self.unanswered = s.engine.unanswered();
        if !s.flushers.is_empty() && self.unanswered == 0 {
            self.woken.append(&mut s.flushers);
        }
    }

    /// Whether this pass can leave the engine alone: nothing was read or seen, no caller woke
    /// the driver since the last pass that fed it (starting an operation, closing, flushing),
    /// no timeout is due and the driver's waker is the one the callers have. Most passes of a
    /// spin are like that, and would otherwise take the lock callers need.
    fn quiet(&self, now: Instant, waker: &Waker) -> bool {
        // Cleared first in any case: a pass that takes the lock sees what the callers did.
        let poked = self.poked.swap(false, Ordering::AcqRel);
        !poked
            && self.seen.is_empty()
            && self.close_by.is_none()
            && self.engine_wake.is_none_or(|t| now < t)
            && self.registered.as_ref().is_some_and(|w| w.will_wake(waker))
    }

    /// Without the lock: writes each node's buffered bytes, as much as its socket takes (and
    /// registers for writability when it takes less). A node whose write fails is dropped and
    /// reported in `self.seen`; returns whether that happened.
    fn write_all(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut failed = false;
        for i in 0..self.io.len() {
            let NodeIo::Up { conn, out, written } = &mut self.io[i] else {
                continue;
            };
            let ok = loop {
                if *written == out.len() {
                    out.clear();
                    *written = 0;
                    break true;
                }
                match conn.poll_write(cx, &out[*written..]) {
                    Poll::Ready(Ok(n)) if n > 0 => *written += n,
                    Poll::Ready(_) => break false,
                    Poll::Pending => break true,
                }
            };
            if !ok {
                tracing::debug!(node = %self.names[i], "redlock: write failed");
                crate::metrics::node_error(&self.names[i], "write_failed");
                self.seen.push(Seen::Disconnected(i));
                self.drop_node(i, now);
                failed = true;
            }
        }
        failed
    }

    /// When the driver must act next: a connection to retry or time out, or the engine's
    /// timeout as the last pass that fed it left it.
    fn next_wake(&self) -> Option<Instant> {
        let io = self.io.iter().filter_map(|n| match n {
            NodeIo::Idle { retry_at } => Some(*retry_at),
            NodeIo::Connecting { deadline, .. } => Some(*deadline),
            NodeIo::Up { .. } => None,
        });
        io.chain(self.engine_wake).min()
    }
}

impl<R: Runtime> Future for Driver<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let handle = this.handle.clone();
        loop {
            let now = Instant::now();
            let mut again = this.read_all(cx, now);
            let wake_at = if this.quiet(now, cx.waker()) {
                this.next_wake()
            } else {
                let mut s = handle.lock();
                if !s.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.driver = Some(cx.waker().clone());
                    this.registered = s.driver.clone();
                }
                this.apply(&mut s, now);
                let mut wake_at = this.next_wake();
                if s.closed {
                    // The last handle is gone, maybe right after a release that returned at a
                    // majority or a guard's drop: the other nodes' deletes are still out. Wait
                    // for their answers (at most one node timeout), then end: dropping the
                    // sockets closes them.
                    let by = *this
                        .close_by
                        .get_or_insert(now + s.engine.options().node_timeout);
                    if this.unanswered == 0 || now >= by {
                        drop(s);
                        this.overlap.release(&mut this.woken);
                        for w in this.woken.drain(..) {
                            w.wake();
                        }
                        return Poll::Ready(());
                    }
                    wake_at = Some(wake_at.map_or(by, |w| w.min(by)));
                }
                wake_at
            };
            let (in_flight, unanswered) = (this.in_flight, this.unanswered);
            let output = this.io.iter().any(NodeIo::has_output);
            // Callers held back by `overlap` mean the last pass's callers have had their turn.
            if !this.yielded
                && output
                && !this.overlap.holding()
                && this.batching.worth_waiting(in_flight)
            {
                // Let the tasks that are ready run first: the requests they start join this
                // write instead of each costing one (on tokio a caller's wake-up would
                // otherwise run this task right after it, once per request).
                this.yielded = true;
                this.rt.yield_to_callers(cx, this.batching.woken());
                return Poll::Pending;
            }
            this.yielded = false;
            again |= this.write_all(cx, now);
            this.batching.record(output, this.woken.len());
            let holding = this.overlap.pace(&mut this.woken);
            // After the writes: a caller told its acquire failed finds the cleanup already sent.
            for w in this.woken.drain(..) {
                w.wake();
            }
            if holding {
                // The next part is woken on the pass after this one's callers have run (and
                // started their requests): back of the queue, behind them.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if again {
                continue;
            }
            if this.spin.keep_polling(now, output, in_flight, unanswered) {
                // A reply is likely less than a round trip away: parking now would add the
                // thread's wake-up to it.
                this.rt.yield_to_io(cx);
                return Poll::Pending;
            }
            let Some(wake) = wake_at else {
                // An armed timer may stay: firing when nothing is due only costs a pass.
                return Poll::Pending;
            };
            // Re-arm only for an earlier instant. The next deadline moves later with nearly
            // every reply, and a new timer each pass costs an allocation and a timer-wheel
            // update; one that fires early costs a pass and is re-armed then.
            if this.sleep.as_ref().is_none_or(|(at, _)| wake < *at) {
                this.sleep = Some((wake, this.rt.sleep_until(wake)));
            }
            let (_, sleep) = this.sleep.as_mut().expect("just set");
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => this.sleep = None, // time to act: go round again
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_url::parse_node;
    use crate::testing::Counting;
    use redlock_core::{Config, Options, Token};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::SystemTime;

    /// A node that takes every write and never answers.
    struct Silent(Arc<Mutex<Vec<u8>>>);

    impl Connection for Silent {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut [u8]) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
    }

    /// Connects at once to a [`Silent`] node sharing `written`; its timers never fire.
    #[derive(Clone, Default)]
    struct SilentRt {
        written: Arc<Mutex<Vec<u8>>>,
        /// Calls of `yield_to_callers`.
        yields: Arc<AtomicUsize>,
    }

    impl Runtime for SilentRt {
        type Conn = Silent;
        fn connect(&self, _: String, _: u16) -> BoxFuture<std::io::Result<Silent>> {
            let conn = Silent(self.written.clone());
            Box::pin(async move { Ok(conn) })
        }
        fn sleep_until(&self, _: Instant) -> BoxFuture<()> {
            Box::pin(std::future::pending())
        }
        fn spawn(&self, _: BoxFuture<()>) {}
        fn yield_to_callers(&self, cx: &mut Context<'_>, _: usize) {
            self.yields.fetch_add(1, Ordering::Relaxed);
            cx.waker().wake_by_ref();
        }
    }

    fn sets(written: &Mutex<Vec<u8>>) -> usize {
        let written = written.lock().unwrap();
        written.windows(3).filter(|w| w == b"SET").count()
    }

    fn acquire(handle: &Handle, name: &str) {
        let mut s = handle.lock();
        let token = Token::from_random(&[7; 20]).unwrap();
        let ttl = Duration::from_secs(10);
        s.engine
            .acquire(Instant::now(), [name], ttl, token, SystemTime::now())
            .unwrap();
        Handle::wake_driver(&mut s);
    }

    /// Polls `driver` once on another thread; `None` when that poll did not return within 5 s.
    fn poll_elsewhere(
        mut driver: Driver<SilentRt>,
        waker: Waker,
    ) -> Option<(Driver<SilentRt>, Poll<()>)> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let poll = Pin::new(&mut driver).poll(&mut Context::from_waker(&waker));
            let _ = tx.send((driver, poll));
        });
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// A driver on `rt` for one silent node, connected and ready, that spins for the whole
    /// test once it has written; the client's handle; the waker it was polled with, counting.
    fn ready_driver(rt: SilentRt) -> (Driver<SilentRt>, Arc<Handle>, Arc<Counting>) {
        let node = parse_node("redis://127.0.0.1:6379").unwrap();
        let mut options = Options::default();
        // Plain `SET NX`, no `INFO server`: nothing to answer before the node is ready.
        options.native_commands = false;
        options.wait_for_release = false;
        let config = Config::new(vec![node.to_config()], options);
        let engine = Engine::new(config, Instant::now(), 42).unwrap();
        let handle = Arc::new(Handle::new(engine));
        let dials = crate::connector::prepare(std::slice::from_ref(&node)).unwrap();
        let setup = Setup {
            configs: vec![node.to_config()],
            spare_core: crate::setup::spare_core(&dials),
            dials,
            connect_timeout: Duration::from_secs(1),
        };
        let mut driver = Driver::new(rt, handle.clone(), setup, None, Duration::from_secs(60));
        let woken = Arc::new(Counting::default());
        let waker = Waker::from(woken.clone());
        assert!(Pin::new(&mut driver)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        (driver, handle, woken)
    }

    #[test]
    fn a_write_others_may_join_first_yields_to_the_callers_through_the_runtime() {
        let rt = SilentRt::default();
        let (mut driver, handle, woken) = ready_driver(rt.clone());
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        acquire(&handle, "a");
        acquire(&handle, "b");
        assert!(Pin::new(&mut driver).poll(&mut cx).is_pending());
        assert_eq!(
            rt.yields.load(Ordering::Relaxed),
            1,
            "yielded to the callers"
        );
        assert_eq!(sets(&rt.written), 0, "before writing");
        assert!(woken.count() >= 1, "and asked to be polled again");
        assert!(Pin::new(&mut driver).poll(&mut cx).is_pending());
        assert_eq!(sets(&rt.written), 2, "both went out on the next pass");
        assert_eq!(rt.yields.load(Ordering::Relaxed), 1, "once per write");
    }

    #[test]
    fn a_spinning_pass_with_nothing_new_leaves_the_lock_to_callers() {
        let rt = SilentRt::default();
        let written = rt.written.clone();
        let (mut driver, handle, woken) = ready_driver(rt);
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);

        acquire(&handle, "a");
        // Batching yields once before the write; the pass after it writes and spins.
        for _ in 0..2 {
            assert!(Pin::new(&mut driver).poll(&mut cx).is_pending());
        }
        assert_eq!(sets(&written), 1, "the acquire went out");
        let spins = woken.count();
        assert!(spins >= 1, "a lone operation's driver spins");

        // A spin's pass that read nothing and was not called does not wait for the lock.
        let guard = handle.lock();
        let polled = poll_elsewhere(driver, waker.clone());
        drop(guard);
        let (driver, poll) = polled.expect("the quiet pass blocked on the client's lock");
        assert!(poll.is_pending());
        assert!(woken.count() > spins, "still spinning");

        // A caller's new operation is seen on the next pass.
        acquire(&handle, "b");
        let mut driver = driver;
        for _ in 0..2 {
            assert!(Pin::new(&mut driver).poll(&mut cx).is_pending());
        }
        assert_eq!(sets(&written), 2, "the second acquire went out");
    }
}
