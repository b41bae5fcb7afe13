//! `Redlock`: the client every async adapter exposes.

use crate::connector::Connector;
use crate::driver::{Driver, Handle, Shared};
use crate::error::Error;
use crate::local_queue::{Begin, Key, Ticket};
use crate::node::Node;
use crate::runtime::BoxFuture;
use crate::runtime::Runtime;
use crate::tokens::Tokens;
use crate::waiters::{Started, Table, Traced, Waiters};
use redlock_core::{AcquireOptions, Engine, Lock, OpId, Options, Released, Retry};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tracing::field::Empty;
use tracing::{Instrument, Span};

/// Closes the driver when the last clone of a client (and every future holding one) is gone.
struct Inner<R: Runtime> {
    handle: Arc<Handle>,
    rt: R,
    options: Options,
    spare_core: bool,
    tokens: Tokens,
}

impl<R: Runtime> Drop for Inner<R> {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// A Redlock client over N independent Redis masters, on runtime `R`.
///
/// Cheap to clone (clones share one connection per node and one background driver task).
/// Adapter crates export it as `Redlock` with their runtime filled in.
pub struct Redlock<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for Redlock<R> {
    fn clone(&self) -> Self {
        Redlock {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Redlock<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.handle.lock();
        f.debug_struct("Redlock")
            .field("nodes", &s.engine.node_count())
            .field("in_flight", &s.engine.in_flight())
            .finish()
    }
}

impl<R: Runtime + Default> Redlock<R> {
    /// Connects to every node in `urls` (`redis://[user:pass@]host:port[/db]`, `rediss://…`,
    /// `redis+unix:///path`; see [`parse_node_url`](crate::parse_node_url)) on the default
    /// runtime instance. See [`Redlock::connect_with`].
    pub async fn connect<I, S>(urls: I, options: Options) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_with(R::default(), urls, options).await
    }

    /// Connects to `nodes`, given field by field (a password from a secret store needs no
    /// percent-encoding), on the default runtime instance. See [`Redlock::connect_with`].
    pub async fn connect_nodes<I>(nodes: I, options: Options) -> Result<Self, Error>
    where
        I: IntoIterator<Item = Node>,
    {
        Self::connect_nodes_with(R::default(), nodes, options).await
    }

    /// Connects to `nodes` over the streams `connector` opens instead of the runtime's sockets
    /// (TLS, when a node asks for it, runs over them), on the default runtime instance. See
    /// [`Connector`] and [`Redlock::connect_with`].
    pub async fn connect_via<C, I>(connector: C, nodes: I, options: Options) -> Result<Self, Error>
    where
        C: Connector,
        I: IntoIterator<Item = Node>,
    {
        Self::connect_via_with(R::default(), connector, nodes, options).await
    }
}

impl<R: Runtime> Redlock<R> {
    /// Parses `urls`, spawns the driver on `rt`, and waits for each node's first connection
    /// attempt (up to `max(node_timeout, 1 s)`). Nodes that are down are retried in the
    /// background with backoff; they do not stop the others from being used.
    ///
    /// Fails only for bad configuration: [`Error::InvalidUrl`] for an unparsable URL,
    /// [`Error::Config`] for no nodes, a node listed twice or an option out of range,
    /// [`Error::Tls`] for TLS settings that cannot be used (or a `rediss://` URL when the `tls`
    /// feature is off).
    pub async fn connect_with<I, S>(rt: R, urls: I, options: Options) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = crate::setup::parse_urls(urls)?;
        Self::launch(rt, nodes, options, None).await
    }

    /// [`Redlock::connect_nodes`] on `rt`.
    pub async fn connect_nodes_with<I>(rt: R, nodes: I, options: Options) -> Result<Self, Error>
    where
        I: IntoIterator<Item = Node>,
    {
        Self::launch(rt, nodes.into_iter().collect(), options, None).await
    }

    /// [`Redlock::connect_via`] on `rt`.
    pub async fn connect_via_with<C, I>(
        rt: R,
        connector: C,
        nodes: I,
        options: Options,
    ) -> Result<Self, Error>
    where
        C: Connector,
        I: IntoIterator<Item = Node>,
    {
        let connector: Arc<dyn Connector> = Arc::new(connector);
        Self::launch(rt, nodes.into_iter().collect(), options, Some(connector)).await
    }

    async fn launch(
        rt: R,
        nodes: Vec<Node>,
        options: Options,
        connector: Option<Arc<dyn Connector>>,
    ) -> Result<Self, Error> {
        let (engine, setup) = crate::setup::new_engine(&nodes, &options)?;
        let handle = Arc::new(Handle::new(engine));
        let spare_core = setup.spare_core;
        rt.spawn(Box::pin(Driver::new(
            rt.clone(),
            handle.clone(),
            setup,
            connector,
            options.spin_before_park,
        )));
        std::future::poll_fn(|cx| handle.poll_settled(cx)).await;
        crate::metrics::describe();
        Ok(Redlock {
            inner: Arc::new(Inner {
                handle,
                rt,
                options,
                spare_core,
                tokens: Tokens::new(),
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Whether the Redis servers this client's nodes run on this machine (nodes on loopback
    /// or a Unix socket; a cluster node counts as three primaries) leave the client one of
    /// the machine's cores. Only then does the client spend CPU to save latency with more than
    /// one operation in flight: its driver keeps polling for replies with company (on runtimes
    /// whose [`DriverSpin`](crate::DriverSpin) is `Busy`), wakes many callers in two parts so
    /// two writes are in flight, and the blocking adapter's waiting callers yield their thread
    /// for up to [`Options::spin_before_park`] before they park. Fixed at connect.
    ///
    /// ```no_run
    /// # async fn f(redlock: redlock_async::Redlock<impl redlock_async::Runtime>) {
    /// // One node on loopback, on a machine of two cores or more: true.
    /// println!("spare core: {}", redlock.leaves_a_core());
    /// # }
    /// ```
    pub fn leaves_a_core(&self) -> bool {
        self.inner.spare_core
    }

    pub(crate) fn runtime(&self) -> &R {
        &self.inner.rt
    }

    /// Acquires every resource in `resources` for `ttl`, retrying per the options.
    ///
    /// Returns the [`Lock`] (valid until [`Lock::valid_until`]), or [`Error::Locked`] when
    /// another holder kept a quorum, [`Error::Unreachable`] when too few nodes answered, or
    /// [`Error::Config`] for misuse. Dropping the future before it resolves releases whatever
    /// it may have taken. The lock is not released when dropped: pass it to
    /// [`Redlock::guard`] for that.
    pub async fn acquire<I, S>(&self, resources: I, ttl: Duration) -> Result<Lock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.acquire_with(resources, ttl, AcquireOptions::default())
            .await
    }

    /// [`Redlock::acquire`] with settings for this call: a bound on how long it may take
    /// ([`AcquireOptions::wait`], counted from this call, or [`AcquireOptions::deadline`]) and
    /// retry settings of its own ([`AcquireOptions::retry`]).
    ///
    /// The bound is kept by the engine, not raced by a timer here: no retry starts whose pause
    /// would end past it, and an attempt still waiting for nodes at the bound is cut there (and
    /// whatever it may have taken released), so the call returns by the bound plus the
    /// lateness of one timer. Running out of time is [`Error::TimedOut`], whose `last_failure`
    /// tells "held by another holder" ([`Failure::Locked`](crate::Failure::Locked)) from
    /// "nodes unreachable" ([`Failure::Unreachable`](crate::Failure::Unreachable)); running
    /// out of retries first is the plain [`Error::Locked`] or [`Error::Unreachable`].
    ///
    /// ```no_run
    /// # async fn demo<R: redlock_async::Runtime>(redlock: redlock_async::Redlock<R>) {
    /// use redlock_async::{AcquireOptions, Error, Failure, Retry};
    /// use std::time::Duration;
    /// let within = AcquireOptions::new()
    ///     .wait(Duration::from_millis(200))
    ///     .retry(Retry { count: None, delay: Duration::from_millis(20), jitter: Duration::from_millis(10) });
    /// match redlock.acquire_with(["orders:42"], Duration::from_secs(10), within).await {
    ///     Ok(lock) => { /* … */ }
    ///     Err(Error::TimedOut { last_failure: Failure::Locked, .. }) => { /* busy: try later */ }
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    pub async fn acquire_with<I, S>(
        &self,
        resources: I,
        ttl: Duration,
        options: AcquireOptions,
    ) -> Result<Lock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = resources
            .into_iter()
            .map(|r| r.as_ref().to_string())
            .collect();
        let span = op_span("acquire", &names, Some(ttl));
        // Drawn before `start` takes the client's lock: now and then it is a syscall.
        let token = self.inner.tokens.draw();
        let retry = options
            .retry
            .unwrap_or_else(|| Retry::from_options(self.options()));
        // Only an acquire that would wait however long it takes may wait in line: one with a
        // retry limit or a time bound keeps its attempts as documented.
        let in_line = self.options().wait_for_release
            && retry.count.is_none()
            && options.wait.is_none()
            && options.deadline.is_none();
        let key: Key = names.clone().into();
        // The wall clock is read with `now`: the floor of the fencing token (microseconds since
        // the epoch), which keeps tokens increasing when nodes restart empty.
        let begin = move |e: &mut Engine, now: Instant| {
            e.acquire_with(now, &names, ttl, token, SystemTime::now(), &options)
        };
        if !in_line {
            return self
                .start(
                    "acquire",
                    span.clone(),
                    |w| &mut w.acquires,
                    |s, now| begin(&mut s.engine, now),
                )
                .instrument(span)
                .await;
        }
        self.acquire_in_line(key, Box::new(begin), retry, span.clone())
            .instrument(span)
            .await
    }

    /// An unbounded acquire (see `local_queue`): starts at once when no other caller of this
    /// client holds or acquires `key`, else waits in line until one releases it (or, checked at
    /// each retry pause, none holds or acquires it any more).
    async fn acquire_in_line(
        &self,
        key: Key,
        begin: Begin,
        retry: Retry,
        span: Span,
    ) -> Result<Lock, Error> {
        let called = Instant::now();
        let mut place = InLine {
            client: self.clone(),
            key: key.clone(),
            ticket: None,
            done: false,
        };
        let started = {
            let mut s = self.inner.handle.lock();
            let s = &mut *s;
            let now = Instant::now();
            if s.queue.busy(&key, now) {
                place.ticket = Some(s.queue.enqueue(key.clone(), begin));
                None
            } else {
                s.queue.starting(&key);
                let started = begin(&mut s.engine, now).map(|op| {
                    Handle::wake_driver(s);
                    (op, s.waiters.acquires.register(op, None))
                });
                Some(started)
            }
        };
        let started = match (started, place.ticket) {
            (Some(started), _) => started,
            (None, Some(ticket)) => self.wait_in_line(&key, ticket, retry).await,
            (None, None) => unreachable!("either started or in line"),
        };
        place.ticket = None;
        let result = OpFuture {
            client: self.clone(),
            table: |w| &mut w.acquires,
            state: Some(started.map_err(Error::from)),
            kind: "acquire",
            span,
            started: called,
        }
        .await;
        place.done = true;
        let mut s = self.inner.handle.lock();
        let s = &mut *s;
        let held = result
            .as_ref()
            .ok()
            .map(|l| (l.token().clone(), l.valid_until()));
        s.queue.finished(&key, held);
        start_next(s, &key, Instant::now());
        result
    }

    /// Waits until the acquire holding `ticket` is started: by a release of this client (or
    /// the end of another acquire of `key`), or by itself when a retry pause passes and no
    /// caller of this client holds or acquires `key` any more.
    async fn wait_in_line(
        &self,
        key: &Key,
        ticket: Ticket,
        retry: Retry,
    ) -> Result<Started<Lock>, redlock_core::Error> {
        let mut jitter = Jitter(crate::setup::seed() | 1);
        let mut timer: Option<BoxFuture<()>> = None;
        std::future::poll_fn(|cx| loop {
            {
                let mut s = self.inner.handle.lock();
                let s = &mut *s;
                if let Some(started) = s.queue.poll_started(ticket, cx.waker()) {
                    // Registered by whoever started it, and kept until claimed.
                    return Poll::Ready(started.map(|op| {
                        let slot = s.waiters.acquires.claim(op);
                        (op, slot.expect("a started acquire in line is registered"))
                    }));
                }
            }
            let t = timer.get_or_insert_with(|| {
                let pause = jitter.pause(retry.delay, retry.jitter);
                self.inner.rt.sleep_until(Instant::now() + pause)
            });
            if t.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            timer = None;
            let mut s = self.inner.handle.lock();
            let s = &mut *s;
            let now = Instant::now();
            if !s.queue.busy(key, now) {
                s.queue.start_now(&mut s.engine, ticket, now);
                // Registered when taken: `poll_started` hands the op over on the next turn.
                if let Some(op) = s
                    .queue
                    .peek_started(ticket)
                    .and_then(|r| r.as_ref().ok().copied())
                {
                    s.waiters.acquires.register(op, None);
                    Handle::wake_driver(s);
                }
            }
        })
        .await
    }

    /// Extends `lock` to `ttl` from now; the returned lock replaces it.
    ///
    /// Returns [`Error::Expired`] at once for a lock past its validity, [`Error::NotHeld`] when a
    /// quorum no longer holds it, [`Error::Unreachable`] when too few nodes answered.
    pub async fn extend(&self, lock: &Lock, ttl: Duration) -> Result<Lock, Error> {
        let span = op_span("extend", lock.resources(), Some(ttl));
        self.start(
            "extend",
            span.clone(),
            |w| &mut w.extends,
            |s, now| s.engine.extend(now, lock, ttl),
        )
        .instrument(span)
        .await
    }

    /// Releases `lock`: sends the delete to every node it can reach (best effort) and returns
    /// once a majority confirmed it (the lock is then free for others) or every node answered,
    /// with how many had confirmed. Releasing an expired lock is safe: only keys still holding
    /// its token are deleted.
    pub async fn release(&self, lock: &Lock) -> Result<Released, Error> {
        let span = op_span("release", lock.resources(), None);
        self.start(
            "release",
            span.clone(),
            |w| &mut w.releases,
            |s, now| {
                let op = s.engine.release(now, lock);
                hand_over(s, now, lock);
                Ok(op)
            },
        )
        .instrument(span)
        .await
    }

    /// Waits until no request this client sent is still out: each has been answered by its
    /// node, timed out ([`Options::node_timeout`]) or been given up with its connection.
    /// Returns at once when none is.
    ///
    /// Calls return as soon as their outcome is known, which can be before every node has
    /// answered: [`release`](Redlock::release) returns once a majority confirmed, and a
    /// dropped [`Guard`](crate::Guard) only hands its release over. Call `flush` before the
    /// process (or the runtime) ends, so the other nodes get their deletes too instead of
    /// keeping the keys until their ttl. Operations started meanwhile (by clones) are waited
    /// for as well. Releases kept for a node that is down, to be sent when it is back, are not.
    ///
    /// Dropping the last clone of a client does the same in the background, for at most one
    /// node timeout, as long as the runtime keeps running the driver.
    ///
    /// ```no_run
    /// # async fn demo<R: redlock_async::Runtime>(redlock: redlock_async::Redlock<R>) {
    /// use std::time::Duration;
    /// let lock = redlock.acquire(["reports:nightly"], Duration::from_secs(60)).await.unwrap();
    /// // ... the work ...
    /// let _ = redlock.release(&lock).await; // back once a majority confirmed
    /// redlock.flush().await; // every node has answered: safe to exit now
    /// # }
    /// ```
    pub async fn flush(&self) {
        std::future::poll_fn(|cx| self.inner.handle.poll_flushed(cx)).await
    }

    /// Starts a release nobody waits for (used when a `using` future, a guard or a hold is
    /// dropped): handed to the driver, which sends it; its outcome is not reported.
    pub(crate) fn release_detached(&self, lock: &Lock) {
        tracing::debug!(resources = ?lock.resources(), "redlock: release handed to the driver");
        crate::metrics::release_detached();
        let mut s = self.inner.handle.lock();
        let now = Instant::now();
        s.engine.release(now, lock);
        hand_over(&mut s, now, lock);
        Handle::wake_driver(&mut s);
    }

    /// Starts an operation of `kind` (as its span names it) with `begin` and waits for its
    /// result in the table `table` picks.
    fn start<T: Traced>(
        &self,
        kind: &'static str,
        span: Span,
        table: fn(&mut Waiters) -> &mut Table<T>,
        begin: impl FnOnce(&mut Shared, Instant) -> Result<OpId, redlock_core::Error>,
    ) -> OpFuture<R, T> {
        let mut s = self.inner.handle.lock();
        // One clock read for the engine and the caller's elapsed time.
        let now = Instant::now();
        let started = begin(&mut s, now).map(|op| {
            Handle::wake_driver(&mut s);
            (op, table(&mut s.waiters).register(op, None))
        });
        drop(s);
        OpFuture {
            client: self.clone(),
            table,
            state: Some(started.map_err(Error::from)),
            kind,
            span,
            started: now,
        }
    }
}

/// After queueing `lock`'s release: starts the next acquire of this client waiting for it,
/// so that attempt goes out in the same write as the deletes, right behind them on every
/// node's connection (a node runs one connection's commands in order, so the attempt finds
/// the keys gone). First the next in this client's line for the same resources (see
/// `local_queue`); with none, the engine's oldest acquire waiting for a release of each
/// resource. Without this the waiter would hear of the release only from the node's
/// announcement, a round trip later. A release that frees nothing (the lock had expired)
/// costs the woken acquire one refused attempt.
fn hand_over(s: &mut Shared, now: Instant, lock: &Lock) {
    if !s.engine.options().wait_for_release {
        return;
    }
    let key: Key = lock.resources().into();
    s.queue.released(&key, lock.token());
    if start_next(s, &key, now) {
        return;
    }
    let prefix = s.engine.options().key_prefix.clone();
    for resource in lock.resources() {
        let mut redis_key = Vec::with_capacity(prefix.len() + resource.len());
        redis_key.extend_from_slice(prefix.as_bytes());
        redis_key.extend_from_slice(resource.as_bytes());
        s.engine.handle_released(now, &redis_key);
    }
}

/// Starts the first acquire in `key`'s line when no caller of this client holds or acquires
/// `key` any more; its result wakes its caller. Returns whether one started.
fn start_next(s: &mut Shared, key: &Key, now: Instant) -> bool {
    let Some((started, waker)) = s.queue.next(&mut s.engine, key, now) else {
        return false;
    };
    if let Ok(op) = started {
        // Its caller is woken when the result arrives, not now: nothing to do before that.
        s.waiters.acquires.register(op, waker);
        Handle::wake_driver(s);
    }
    true
}

/// An acquire's place in line, and its share of the line's state: dropping the acquire
/// leaves the line or, once started, lets the next start.
struct InLine<R: Runtime> {
    client: Redlock<R>,
    key: Key,
    /// While waiting to start.
    ticket: Option<Ticket>,
    /// The acquire ended and told the line.
    done: bool,
}

impl<R: Runtime> Drop for InLine<R> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut s = self.client.inner.handle.lock();
        let s = &mut *s;
        let now = Instant::now();
        match self.ticket {
            Some(ticket) => match s.queue.leave(ticket) {
                // Started by a release, and nobody will take the result.
                Some(Ok(op)) => {
                    s.waiters
                        .abandon(|w| &mut w.acquires, &mut s.engine, now, op, None);
                    s.queue.finished(&self.key, None);
                }
                Some(Err(_)) => s.queue.finished(&self.key, None),
                None => {}
            },
            // Dropped while its op ran: the op future abandoned it already.
            None => s.queue.finished(&self.key, None),
        }
        start_next(s, &self.key, now);
        Handle::wake_driver(s);
    }
}

/// Retry pauses for the line's timers: `delay` ± up to `jitter`, xorshift-drawn.
struct Jitter(u64);

impl Jitter {
    fn pause(&mut self, delay: Duration, jitter: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = jitter.as_nanos().saturating_mul(2) as u64;
        let offset = if span == 0 { 0 } else { self.0 % (span + 1) };
        (delay + Duration::from_nanos(offset)).saturating_sub(jitter)
    }
}

/// The span of one operation: its kind, resources and ttl at once; its attempt count, outcome
/// and elapsed time recorded when it completes.
fn op_span(kind: &'static str, resources: &[String], ttl: Option<Duration>) -> Span {
    tracing::debug_span!(
        "redlock.op",
        kind,
        resources = ?resources,
        ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        attempts = Empty,
        outcome = Empty,
        elapsed_us = Empty,
    )
}

/// Waits for one operation; dropping it abandons the operation (see `Waiters::abandon`).
struct OpFuture<R: Runtime, T> {
    client: Redlock<R>,
    /// The table the result arrives in.
    table: fn(&mut Waiters) -> &mut Table<T>,
    /// `Some(Ok((op, its result's slot)))` while waiting, `Some(Err)` for a synchronous
    /// refusal, `None` once done.
    state: Option<Result<Started<T>, Error>>,
    /// `acquire`, `extend` or `release`, for the metrics.
    kind: &'static str,
    /// The operation's span, completed with the outcome.
    span: Span,
    started: Instant,
}

impl<R: Runtime, T: Traced> OpFuture<R, T> {
    /// Records how the operation ended on its span (and in the metrics).
    fn finish(&self, result: Result<T, Error>) -> Result<T, Error> {
        let (attempts, outcome) = match &result {
            Ok(v) => (v.attempts(), "ok"),
            Err(e) => (
                u32::try_from(e.attempts().len()).unwrap_or(u32::MAX),
                e.kind(),
            ),
        };
        let elapsed = self.started.elapsed();
        crate::metrics::op_finished(self.kind, outcome, attempts, elapsed);
        let elapsed = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.span.record("attempts", attempts);
        self.span.record("outcome", outcome);
        self.span.record("elapsed_us", elapsed);
        result
    }
}

impl<R: Runtime, T: Traced> Future for OpFuture<R, T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(Ok((_, slot))) = &this.state {
            // Its own slot: no need for the client's mutex.
            let Poll::Ready(result) = slot.poll_take(cx.waker()) else {
                return Poll::Pending;
            };
            this.state = None;
            return Poll::Ready(this.finish(result.map_err(Error::from)));
        }
        match this.state.take() {
            Some(Err(e)) => Poll::Ready(this.finish(Err(e))),
            _ => panic!("OpFuture polled after completion"),
        }
    }
}

impl<R: Runtime, T> Drop for OpFuture<R, T> {
    fn drop(&mut self) {
        if let Some(Ok((op, slot))) = self.state.take() {
            let mut s = self.client.inner.handle.lock();
            let s = &mut *s;
            s.waiters
                .abandon(self.table, &mut s.engine, Instant::now(), op, Some(&slot));
            Handle::wake_driver(s);
        }
    }
}
