//! The blocking client: threads move bytes, callers wait on a condition variable.

use redlock_async::batching::Batching;
use redlock_async::setup::{fresh_token, new_engine};
use redlock_async::waiters::Waiters;
use redlock_async::Error;
use redlock_core::{Done, Engine, Lock, NodeConfig, NodeId, OpId, Options, Released};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often idle threads look at the `closed` flag.
const TICK: Duration = Duration::from_millis(100);

struct State {
    engine: Engine,
    waiters: Waiters,
    /// Write handles (clones of the reader threads' sockets); `None` while a node is down.
    writers: Vec<Option<Arc<TcpStream>>>,
    /// Bytes the engine sent to each node that are not written yet.
    out: Vec<Vec<u8>>,
    /// A thread is writing `out`; others only append to it.
    flushing: bool,
    /// Whether a flush should wait for other callers' requests.
    batching: Batching,
    /// The latest the timer thread will look at the engine again.
    timer_at: Instant,
    settled: Vec<bool>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Connection attempts settled, or the client closed.
    changed: Condvar,
    /// The engine wants a timeout earlier than the timer thread's sleep.
    timer: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on `changed` (connections settled, client closed) for at most `timeout`.
    fn wait<'a>(&self, g: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        wait_on(&self.changed, g, timeout)
    }

    /// After any input to the engine: moves what it sent into the output buffers, hands results
    /// to waiters, drops sockets the engine gave up on, tells the timer thread about an earlier
    /// timeout, then writes the buffers unless another thread already is, and finally wakes the
    /// callers whose results arrived.
    ///
    /// Writing happens without the lock, one `write` per node for everything queued: while one
    /// thread writes, the requests others start pile up and go out together in its next round.
    fn settle<'a>(&'a self, mut s: MutexGuard<'a, State>, now: Instant) {
        let mut woken = Vec::new();
        self.collect(&mut s, now, &mut woken);
        if !s.flushing {
            s.flushing = true;
            let output = s.out.iter().any(|b| !b.is_empty());
            if output && s.batching.worth_waiting(s.engine.in_flight()) {
                // Let the callers that are runnable start their requests first, so they join
                // this write instead of each costing one.
                drop(s);
                std::thread::yield_now();
                s = self.lock();
            }
            loop {
                let State { out, writers, .. } = &mut *s;
                let jobs: Vec<(usize, Arc<TcpStream>, Vec<u8>)> = out
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, bytes)| !bytes.is_empty())
                    // Bytes for a node that is down are dropped: the engine knows it is down.
                    .filter_map(|(i, bytes)| {
                        let bytes = std::mem::take(bytes);
                        Some((i, writers[i].clone()?, bytes))
                    })
                    .collect();
                if jobs.is_empty() {
                    break;
                }
                s.batching.record(true, 0);
                drop(s);
                let failed: Vec<(usize, Arc<TcpStream>)> = jobs
                    .into_iter()
                    .filter_map(|(i, w, bytes)| (&*w).write_all(&bytes).is_err().then_some((i, w)))
                    .collect();
                s = self.lock();
                let now = Instant::now();
                for (i, w) in failed {
                    // Unless the node already reconnected on a new socket.
                    if s.writers[i]
                        .as_ref()
                        .is_some_and(|cur| Arc::ptr_eq(cur, &w))
                    {
                        s.writers[i] = None;
                        let _ = w.shutdown(Shutdown::Both);
                        s.engine.handle_disconnected(now, NodeId::new(i));
                    }
                }
                self.collect(&mut s, now, &mut woken);
            }
            s.flushing = false;
        }
        s.batching.record(false, woken.len());
        drop(s);
        // After the writes: a caller told its acquire failed finds the cleanup already sent.
        woken.into_iter().for_each(Waker::wake);
    }

    fn collect(&self, s: &mut State, now: Instant, woken: &mut Vec<Waker>) {
        let State {
            engine,
            waiters,
            writers,
            out,
            ..
        } = s;
        // Dispatch first: releasing a lock nobody waits for sends more.
        waiters.dispatch(
            engine,
            now,
            |node| {
                // The reader thread sees the shutdown, and reconnects.
                if let Some(w) = writers[node.index()].take() {
                    let _ = w.shutdown(Shutdown::Both);
                }
            },
            woken,
        );
        while let Some((node, bytes)) = engine.poll_transmit() {
            if writers[node.index()].is_some() {
                out[node.index()].extend_from_slice(&bytes);
            }
        }
        if let Some(t) = s.engine.poll_timeout() {
            if t < s.timer_at {
                s.timer_at = t;
                self.timer.notify_one();
            }
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    options: Options,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.closed = true;
        for w in s.writers.iter_mut().filter_map(Option::take) {
            let _ = w.shutdown(Shutdown::Both);
        }
        self.shared.changed.notify_all();
        self.shared.timer.notify_all();
    }
}

/// A blocking Redlock client over N independent Redis masters.
///
/// Cheap to clone; clones share the connections and threads, which stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Redlock {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Redlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.shared.lock();
        f.debug_struct("Redlock")
            .field("nodes", &s.engine.node_count())
            .finish()
    }
}

impl Redlock {
    /// Connects to every node in `urls` (`redis://[user:pass@]host:port[/db]`), starting one
    /// thread per node and a timer thread, and waits for each node's first connection attempt
    /// (up to `max(node_timeout, 1 s)`). Nodes that are down are retried in the background.
    ///
    /// Fails only for bad configuration ([`Error::Config`]), including `rediss://` (no TLS here).
    pub fn connect<I, S>(urls: I, options: Options) -> Result<Redlock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let (engine, nodes, connect_timeout) = new_engine(urls, &options)?;
        let n = nodes.len();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                engine,
                waiters: Waiters::default(),
                writers: (0..n).map(|_| None).collect(),
                out: vec![Vec::new(); n],
                flushing: false,
                batching: Batching::default(),
                timer_at: Instant::now(),
                settled: vec![false; n],
                closed: false,
            }),
            changed: Condvar::new(),
            timer: Condvar::new(),
        });
        for (i, node) in nodes.into_iter().enumerate() {
            let shared = shared.clone();
            let write_timeout = options.node_timeout;
            std::thread::Builder::new()
                .name(format!("redlock-node-{i}"))
                .spawn(move || node_thread(&shared, i, &node, connect_timeout, write_timeout))
                .expect("spawn a node thread");
        }
        let timer = shared.clone();
        std::thread::Builder::new()
            .name("redlock-timer".into())
            .spawn(move || timer_thread(&timer))
            .expect("spawn the timer thread");
        let mut s = shared.lock();
        let deadline = Instant::now() + connect_timeout + TICK;
        while !s.settled.iter().all(|d| *d) && Instant::now() < deadline {
            s = shared.wait(s, TICK);
        }
        drop(s);
        Ok(Redlock {
            inner: Arc::new(Inner { shared, options }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Acquires every resource in `resources` for `ttl`, retrying per the options; blocks until
    /// it succeeds or fails. Errors as in `redlock_async::Redlock::acquire`.
    pub fn acquire<I, S>(&self, resources: I, ttl: Duration) -> Result<Lock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = resources
            .into_iter()
            .map(|r| r.as_ref().to_string())
            .collect();
        let _span = tracing::debug_span!("redlock.acquire", resources = ?names).entered();
        // Drawn before `run` takes the client's lock: it is a syscall.
        let token = fresh_token();
        match self.run(|e, now| e.acquire(now, &names, ttl, token))? {
            Done::Acquired(lock) => Ok(lock),
            other => unreachable!("acquire produced {other:?}"),
        }
    }

    /// Extends `lock` to `ttl` from now; the returned lock replaces it.
    pub fn extend(&self, lock: &Lock, ttl: Duration) -> Result<Lock, Error> {
        let _span = tracing::debug_span!("redlock.extend", resources = ?lock.resources()).entered();
        match self.run(|e, now| e.extend(now, lock, ttl))? {
            Done::Extended(lock) => Ok(lock),
            other => unreachable!("extend produced {other:?}"),
        }
    }

    /// Releases `lock`: sends the delete to every node it can reach and returns once a majority
    /// confirmed it or every node answered, with how many had confirmed.
    pub fn release(&self, lock: &Lock) -> Result<Released, Error> {
        let _span =
            tracing::debug_span!("redlock.release", resources = ?lock.resources()).entered();
        match self.run(|e, now| e.release(now, lock))? {
            Done::Released(r) => Ok(r),
            other => unreachable!("release produced {other:?}"),
        }
    }

    fn run(
        &self,
        begin: impl FnOnce(&mut Engine, Instant) -> Result<OpId, redlock_core::Error>,
    ) -> Result<Done, Error> {
        let shared = &self.inner.shared;
        let mut s = shared.lock();
        let now = Instant::now();
        let op = begin(&mut s.engine, now)?;
        // Wake exactly this thread when the result arrives (waiting on the shared condition
        // variable would wake every waiting caller on every event). An unpark that comes before
        // the park below makes the park return at once, so nothing is missed.
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        s.waiters.register(op);
        let _ = s.waiters.take(op, Some(&waker));
        shared.settle(s, now);
        loop {
            std::thread::park_timeout(TICK);
            if let Some(result) = shared.lock().waiters.take(op, Some(&waker)) {
                return result.map_err(Error::from);
            }
        }
    }
}

/// Unparks one thread: the waker a blocked caller leaves in the waiter table.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits on `cv` for at most `timeout`; a poisoned lock is used as is (see `Shared::lock`).
fn wait_on<'a>(cv: &Condvar, g: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
    match cv.wait_timeout(g, timeout) {
        Ok((g, _)) => g,
        Err(p) => p.into_inner().0,
    }
}

/// Feeds the engine its timeouts. Sleeps until the engine's next one (at most `TICK`, to see
/// `closed`); `Shared::collect` wakes it when an earlier one appears.
fn timer_thread(shared: &Shared) {
    let mut s = shared.lock();
    while !s.closed {
        let now = Instant::now();
        match s.engine.poll_timeout() {
            Some(t) if now >= t => {
                s.engine.handle_timeout(now);
                shared.settle(s, now);
                s = shared.lock();
            }
            next => {
                let until = next.map_or(now + TICK, |t| t.min(now + TICK));
                s.timer_at = until;
                s = wait_on(&shared.timer, s, until - now);
            }
        }
    }
}

fn node_thread(
    shared: &Shared,
    i: usize,
    node: &NodeConfig,
    connect_timeout: Duration,
    write_timeout: Duration,
) {
    let id = NodeId::new(i);
    let mut backoff = BACKOFF_MIN;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.lock().closed {
            return;
        }
        let stream = connect(node, connect_timeout);
        let mut s = shared.lock();
        s.settled[i] = true;
        let reader = match stream.and_then(|w| Ok((w.try_clone()?, w))) {
            Ok((reader, writer)) if !s.closed => {
                let _ = writer.set_write_timeout(Some(write_timeout));
                let _ = reader.set_read_timeout(Some(TICK));
                s.writers[i] = Some(Arc::new(writer));
                // Nothing meant for the last connection goes out on this one.
                s.out[i].clear();
                let now = Instant::now();
                s.engine.handle_connected(now, id);
                shared.changed.notify_all();
                shared.settle(s, now);
                backoff = BACKOFF_MIN;
                tracing::debug!(node = %node, "redlock: connected");
                reader
            }
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(node = %node, error = %e, "redlock: connect failed");
                shared.changed.notify_all();
                let until = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                while !s.closed && Instant::now() < until {
                    s = shared.wait(s, until.saturating_duration_since(Instant::now()));
                }
                continue;
            }
        };
        read_loop(shared, id, reader, &mut buf);
        let mut s = shared.lock();
        if let Some(w) = s.writers[i].take() {
            let _ = w.shutdown(Shutdown::Both);
        }
        let now = Instant::now();
        s.engine.handle_disconnected(now, id);
        shared.settle(s, now);
        tracing::debug!(node = %node, "redlock: disconnected");
        let mut s = shared.lock();
        let until = now + backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        while !s.closed && Instant::now() < until {
            s = shared.wait(s, until.saturating_duration_since(Instant::now()));
        }
    }
}

/// Reads until the socket closes, fails, or the client closes.
fn read_loop(shared: &Shared, id: NodeId, mut reader: TcpStream, buf: &mut [u8]) {
    loop {
        match reader.read(buf) {
            Ok(0) => return,
            Ok(n) => {
                let mut s = shared.lock();
                let now = Instant::now();
                s.engine.handle_input(now, id, &buf[..n]);
                shared.settle(s, now);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                let s = shared.lock();
                // The engine dropped this connection (Reconnect) or the client closed.
                if s.closed || s.writers[id.index()].is_none() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn connect(node: &NodeConfig, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in (node.host.as_str(), node.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address for host")))
}
