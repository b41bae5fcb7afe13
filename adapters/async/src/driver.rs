//! The driver: one background task per client that owns every socket and moves bytes, time and
//! events between them and the engine. Callers only touch the engine (under the mutex) to start
//! operations and the waiter table to collect results, then wake the driver.

use crate::runtime::{BoxFuture, Connection, Runtime};
use crate::waiters::Waiters;
use bytes::Bytes;
use redlock_core::{Engine, NodeConfig, NodeId};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// State shared between the driver and the callers.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) waiters: Waiters,
    driver: Option<Waker>,
    /// Set when the last client handle is dropped: the driver closes its sockets and ends.
    closed: bool,
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
            driver: None,
            closed: false,
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
        if let Some(w) = &shared.driver {
            w.wake_by_ref();
        }
    }

    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        Handle::wake_driver(&mut s);
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
        out: VecDeque<Bytes>,
        written: usize,
    },
}

/// The background task. Spawned by `Redlock::connect`.
pub(crate) struct Driver<R: Runtime> {
    rt: R,
    handle: Arc<Handle>,
    nodes: Vec<NodeConfig>,
    io: Vec<NodeIo<R::Conn>>,
    backoff: Vec<Duration>,
    connect_timeout: Duration,
    sleep: Option<(Instant, BoxFuture<()>)>,
    buf: Box<[u8]>,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(
        rt: R,
        handle: Arc<Handle>,
        nodes: Vec<NodeConfig>,
        connect_timeout: Duration,
    ) -> Self {
        let now = Instant::now();
        Driver {
            rt,
            handle,
            io: nodes
                .iter()
                .map(|_| NodeIo::Idle { retry_at: now })
                .collect(),
            backoff: vec![BACKOFF_MIN; nodes.len()],
            nodes,
            connect_timeout,
            sleep: None,
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    fn drop_node(&mut self, i: usize, now: Instant) {
        let wait = self.backoff[i];
        self.backoff[i] = (wait * 2).min(BACKOFF_MAX);
        self.io[i] = NodeIo::Idle {
            retry_at: now + wait,
        };
    }

    /// One pass over every node; returns whether anything happened.
    fn step(&mut self, cx: &mut Context<'_>, s: &mut Shared, now: Instant) -> bool {
        let mut progress = false;
        if s.engine.poll_timeout().is_some_and(|t| now >= t) {
            s.engine.handle_timeout(now);
            progress = true;
        }
        for i in 0..self.io.len() {
            let node = NodeId::new(i);
            match &mut self.io[i] {
                NodeIo::Idle { retry_at } => {
                    if now >= *retry_at {
                        let n = &self.nodes[i];
                        let fut = self.rt.connect(n.host.clone(), n.port);
                        self.io[i] = NodeIo::Connecting {
                            fut,
                            deadline: now + self.connect_timeout,
                        };
                        progress = true;
                    }
                }
                NodeIo::Connecting { fut, deadline } => match fut.as_mut().poll(cx) {
                    Poll::Ready(Ok(conn)) => {
                        s.settled[i] = true;
                        self.backoff[i] = BACKOFF_MIN;
                        let _ = s.engine.handle_connected(now, node);
                        self.io[i] = NodeIo::Up {
                            conn,
                            out: VecDeque::new(),
                            written: 0,
                        };
                        tracing::debug!(node = %self.nodes[i], "redlock: connected");
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        s.settled[i] = true;
                        tracing::debug!(node = %self.nodes[i], error = %e, "redlock: connect failed");
                        self.drop_node(i, now);
                        progress = true;
                    }
                    Poll::Pending if now >= *deadline => {
                        s.settled[i] = true;
                        tracing::debug!(node = %self.nodes[i], "redlock: connect timed out");
                        self.drop_node(i, now);
                        progress = true;
                    }
                    Poll::Pending => {}
                },
                NodeIo::Up { conn, .. } => loop {
                    match conn.poll_read(cx, &mut self.buf) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            let _ = s.engine.handle_input(now, node, &self.buf[..n]);
                            progress = true;
                        }
                        Poll::Ready(_) => {
                            let _ = s.engine.handle_disconnected(now, node);
                            tracing::debug!(node = %self.nodes[i], "redlock: disconnected");
                            self.drop_node(i, now);
                            progress = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                },
            }
        }
        while let Some((node, bytes)) = s.engine.poll_transmit() {
            if let NodeIo::Up { out, .. } = &mut self.io[node.index()] {
                out.push_back(bytes);
            }
        }
        for i in 0..self.io.len() {
            let NodeIo::Up { conn, out, written } = &mut self.io[i] else {
                continue;
            };
            while let Some(front) = out.front() {
                match conn.poll_write(cx, &front[*written..]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        *written += n;
                        if *written == front.len() {
                            out.pop_front();
                            *written = 0;
                        }
                    }
                    Poll::Ready(_) => {
                        let _ = s.engine.handle_disconnected(now, NodeId::new(i));
                        self.drop_node(i, now);
                        progress = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        let mut reconnect = Vec::new();
        s.waiters
            .dispatch(&mut s.engine, now, |node| reconnect.push(node));
        for node in reconnect {
            self.drop_node(node.index(), now);
            progress = true;
        }
        if s.settled.iter().all(|d| *d) {
            if let Some(w) = s.settle_waker.take() {
                w.wake();
            }
        }
        progress
    }

    fn next_wake(&self, s: &Shared) -> Option<Instant> {
        let io = self.io.iter().filter_map(|n| match n {
            NodeIo::Idle { retry_at } => Some(*retry_at),
            NodeIo::Connecting { deadline, .. } => Some(*deadline),
            NodeIo::Up { .. } => None,
        });
        io.chain(s.engine.poll_timeout()).min()
    }
}

impl<R: Runtime> Future for Driver<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let handle = this.handle.clone();
        let mut s = handle.lock();
        if s.closed {
            // Dropping the sockets closes them; pending waiters died with their handles.
            return Poll::Ready(());
        }
        if !s.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.driver = Some(cx.waker().clone());
        }
        loop {
            let now = Instant::now();
            while this.step(cx, &mut s, now) {}
            let Some(wake) = this.next_wake(&s) else {
                this.sleep = None;
                return Poll::Pending;
            };
            if this.sleep.as_ref().is_none_or(|(at, _)| *at != wake) {
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
