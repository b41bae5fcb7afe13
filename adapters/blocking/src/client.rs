//! The blocking client: the async client, run by its driver on a private background thread;
//! each call blocks the calling thread until the async call's future resolves.

use crate::background::{Background, OnThread};
use crate::wait::Waiter;
use redlock_async::{AcquireOptions, Connector, Error, Lock, Node, Options, Released};
use smol::future::block_on;
use std::time::Duration;

/// The async client this one drives.
pub(crate) type AsyncRedlock = redlock_async::Redlock<OnThread>;

struct Inner {
    // Dropped in this order: the client first (which tells the driver to close), then the
    // thread (which lets the driver do so, and ends).
    client: AsyncRedlock,
    background: Background,
    waiter: Waiter,
}

/// How long the background thread outlives the client for the driver's last answers: the
/// driver's own bound (one node timeout) and a margin.
fn drain(options: &Options) -> Duration {
    options.node_timeout.saturating_add(Duration::from_secs(1))
}

/// A blocking Redlock client over N independent Redis masters.
///
/// Cheap to clone; clones share the connections and the background thread, which stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Redlock {
    inner: std::sync::Arc<Inner>,
}

impl std::fmt::Debug for Redlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.client.fmt(f)
    }
}

impl Redlock {
    /// Connects to every node in `urls` (`redis://[user:pass@]host:port[/db]`, `rediss://…`,
    /// `redis+unix:///path`), starting the background thread that owns the connections, and
    /// waits for each node's first connection attempt (up to `max(node_timeout, 1 s)`). Nodes
    /// that are down are retried in the background.
    ///
    /// Fails only for bad configuration ([`Error::InvalidUrl`], [`Error::Config`],
    /// [`Error::Tls`], including `rediss://` without the `tls` feature).
    ///
    /// # Panics
    ///
    /// When the OS refuses to start a thread.
    pub fn connect<I, S>(urls: I, options: Options) -> Result<Redlock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Redlock::start(drain(&options), |rt| {
            AsyncRedlock::connect_with(rt, urls, options)
        })
    }

    /// Connects to `nodes`, given field by field (a password from a secret store needs no
    /// percent-encoding). Otherwise as [`Redlock::connect`].
    ///
    /// # Panics
    ///
    /// When the OS refuses to start a thread.
    pub fn connect_nodes<I>(nodes: I, options: Options) -> Result<Redlock, Error>
    where
        I: IntoIterator<Item = Node>,
    {
        Redlock::start(drain(&options), |rt| {
            AsyncRedlock::connect_nodes_with(rt, nodes, options)
        })
    }

    /// Connects to `nodes` over the streams `connector` opens (its futures run on the
    /// background thread, under smol's reactor: wrap smol streams in [`Stream`](crate::Stream)).
    /// Otherwise as [`Redlock::connect`].
    ///
    /// # Panics
    ///
    /// When the OS refuses to start a thread.
    pub fn connect_via<C, I>(connector: C, nodes: I, options: Options) -> Result<Redlock, Error>
    where
        C: Connector,
        I: IntoIterator<Item = Node>,
    {
        Redlock::start(drain(&options), |rt| {
            AsyncRedlock::connect_via_with(rt, connector, nodes, options)
        })
    }

    /// `drain`: how long the thread may wait, once the client is dropped, for the driver to
    /// finish (it waits one node timeout for the requests still out).
    fn start<F>(drain: Duration, connect: impl FnOnce(OnThread) -> F) -> Result<Redlock, Error>
    where
        F: std::future::Future<Output = Result<AsyncRedlock, Error>>,
    {
        let background = Background::start(drain).expect("start the redlock driver thread");
        let client = block_on(connect(background.runtime()))?;
        let waiter = Waiter::new(client.options().spin_before_park, client.leaves_a_core());
        Ok(Redlock {
            inner: std::sync::Arc::new(Inner {
                client,
                background,
                waiter,
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        self.inner.client.options()
    }

    /// Acquires every resource in `resources` for `ttl`, retrying per the options; blocks until
    /// it succeeds or fails. Errors as in `redlock_async::Redlock::acquire`.
    pub fn acquire<I, S>(&self, resources: I, ttl: Duration) -> Result<Lock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.inner
            .waiter
            .block_on(self.inner.client.acquire(resources, ttl))
    }

    /// [`Redlock::acquire`] with settings for this call: a bound on how long it may block
    /// ([`AcquireOptions::wait`] or [`AcquireOptions::deadline`], kept by the engine: it
    /// returns by the bound plus one timer's lateness) and retry settings of its own. Running
    /// out of time is [`Error::TimedOut`], whose `last_failure` tells a lock held by another
    /// holder ([`Failure::Locked`](crate::Failure::Locked)) from nodes that did not answer
    /// ([`Failure::Unreachable`](crate::Failure::Unreachable)).
    pub fn acquire_with<I, S>(
        &self,
        resources: I,
        ttl: Duration,
        options: AcquireOptions,
    ) -> Result<Lock, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.inner
            .waiter
            .block_on(self.inner.client.acquire_with(resources, ttl, options))
    }

    /// Extends `lock` to `ttl` from now; the returned lock replaces it.
    pub fn extend(&self, lock: &Lock, ttl: Duration) -> Result<Lock, Error> {
        self.inner
            .waiter
            .block_on(self.inner.client.extend(lock, ttl))
    }

    /// Releases `lock`: sends the delete to every node it can reach and returns once a majority
    /// confirmed it or every node answered, with how many had confirmed.
    pub fn release(&self, lock: &Lock) -> Result<Released, Error> {
        self.inner.waiter.block_on(self.inner.client.release(lock))
    }

    /// Blocks until no request this client sent is still out: each has been answered by its
    /// node, timed out ([`Options::node_timeout`]) or been given up with its connection.
    /// Returns at once when none is.
    ///
    /// [`release`](Redlock::release) returns once a majority confirmed, and a dropped
    /// [`Guard`](crate::Guard) only hands its release over: call `flush` before the process
    /// exits so the other nodes get their deletes too. Dropping the last clone does the same,
    /// for at most one node timeout, before the background thread ends.
    ///
    /// ```no_run
    /// use redlock_blocking::{Options, Redlock};
    /// use std::time::Duration;
    /// let redlock = Redlock::connect(["redis://127.0.0.1:6379"], Options::default())?;
    /// let lock = redlock.acquire(["reports:nightly"], Duration::from_secs(60))?;
    /// // ... the work ...
    /// redlock.release(&lock)?;
    /// redlock.flush();
    /// # Ok::<(), redlock_blocking::Error>(())
    /// ```
    pub fn flush(&self) {
        block_on(self.inner.client.flush())
    }

    /// The async client, for `using`.
    pub(crate) fn client(&self) -> &AsyncRedlock {
        &self.inner.client
    }

    /// How callers block on an operation, for guards and holds.
    pub(crate) fn waiter(&self) -> &Waiter {
        &self.inner.waiter
    }

    /// The background thread, for `using`'s keep-alive task.
    pub(crate) fn background(&self) -> &Background {
        &self.inner.background
    }
}

#[cfg(test)]
mod tests {
    use super::Redlock;
    use redlock_async::Options;
    use std::time::Duration;

    /// Drops `client` on another thread, so a drop that never returns fails the test, not
    /// hangs it; panics with `what` unless the drop returns within 10 s.
    fn drop_within_bound(client: Redlock, what: &str) {
        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(client);
            let _ = done.send(());
        });
        dropped.recv_timeout(Duration::from_secs(10)).expect(what);
    }

    #[test]
    fn the_driver_thread_ends_with_the_last_clone() {
        // A loopback port nobody listens on: the connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let client = Redlock::connect([format!("redis://127.0.0.1:{port}")], Options::default())
            .expect("connect");
        let executor = client.background().executor();
        let clone = client.clone();
        drop(client);
        assert!(
            executor.upgrade().is_some(),
            "a clone still uses the thread"
        );
        drop_within_bound(clone, "dropping the last clone returns");
        assert!(
            executor.upgrade().is_none(),
            "the thread and its executor are gone"
        );
    }

    #[test]
    fn dropping_the_last_clone_waits_for_a_silent_node_at_most_its_timeout() {
        // A loopback listener that accepts and never answers: the handshake stays unanswered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = silent.local_addr().expect("its address").port();
        let mut options = Options::default();
        options.node_timeout = Duration::from_millis(300);
        let client =
            Redlock::connect([format!("redis://127.0.0.1:{port}")], options).expect("connect");
        let executor = client.background().executor();
        // The driver gives up one node timeout after the close; the thread then ends.
        drop_within_bound(
            client,
            "dropping the client returns although the node never answers",
        );
        assert!(executor.upgrade().is_none(), "the thread is gone");
        drop(silent);
    }

    #[test]
    fn callers_yield_with_company_only_while_the_local_servers_leave_a_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Loopback ports nobody listens on: each connection is refused at once.
        let ports: Vec<u16> = (0..=cores)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port()
            })
            .collect();
        let urls = |n: usize| -> Vec<String> {
            ports[..n]
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect()
        };
        let one = Redlock::connect(urls(1), Options::default()).expect("connect");
        assert_eq!(one.inner.waiter.yields(), cores > 1, "one local server");
        let all = Redlock::connect(urls(cores), Options::default()).expect("connect");
        assert!(!all.inner.waiter.yields(), "a local server per core");
        drop_within_bound(one, "dropped");
        drop_within_bound(all, "dropped");
    }
}
