//! One conformance suite, four adapters.
//!
//! [`Client`] is the adapters' common surface, called from plain threads: the async adapters
//! are driven with their runtime's `block_on`, the blocking one directly. The checks are written
//! once, as generic functions here; [`conformance_suite!`](crate::conformance_suite) stamps out
//! the `#[test]`s for one adapter on 1, 3 and 5 live nodes.

use crate::fake::FakeServer;
use crate::transports::Relay;
pub use redlock_async::Protocol;
use redlock_async::{
    open_connection, AcquireOptions, Address, BoxFuture, Connection, Error, Failure, HoldLimits,
    Lock, Node, Options, Released, Retry, Runtime,
};
use redlock_harness::{Cluster, Reply};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

/// What a `using` routine that waits for loss observed.
#[derive(Debug, Clone, Copy)]
pub struct LossSeen {
    /// When `lost()` fired (`None`: it did not, within the wait).
    pub fired_at: Option<Instant>,
    /// The lease deadline at that moment.
    pub deadline: Instant,
}

/// What a capped or uncapped `hold` observed (see [`Client::hold_for`]).
#[derive(Debug, Clone)]
pub struct HoldSeen {
    /// The lock as acquired.
    pub acquired: Lock,
    /// When the hold began (just after the acquire returned, just before `hold_with`).
    pub began: Instant,
    /// Whether and when `lost()` fired, and the lease deadline then.
    pub loss: LossSeen,
    /// The lock as last extended, when the wait ended.
    pub last: Lock,
    /// What the explicit release returned.
    pub released: Released,
}

/// The surface every adapter offers, called from a plain thread.
pub trait Client: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Adapter name, for messages.
    const NAME: &'static str;
    /// `Redlock::connect`.
    fn connect(urls: &[String], options: Options) -> Result<Self, Error>;
    /// `Redlock::connect_nodes`.
    fn connect_nodes(nodes: Vec<Node>, options: Options) -> Result<Self, Error>;
    /// `Redlock::connect_via` with a connector that opens this runtime's TCP streams to the
    /// loopback port `relay` routes each node's host name to.
    fn connect_via(relay: Arc<Relay>, nodes: Vec<Node>, options: Options) -> Result<Self, Error>;
    /// `open_connection` on this adapter's runtime (smol's for the blocking adapter), the
    /// stream dropped once open.
    fn open(node: &Node) -> std::io::Result<()>;
    /// `acquire`.
    fn acquire(&self, resources: &[&str], ttl: Duration) -> Result<Lock, Error>;
    /// `extend`.
    fn extend(&self, lock: &Lock, ttl: Duration) -> Result<Lock, Error>;
    /// `release`.
    fn release(&self, lock: &Lock) -> Result<Released, Error>;
    /// `using` with a routine that holds for `hold`, then reports whether the lease was lost.
    fn using_for(&self, resources: &[&str], ttl: Duration, hold: Duration) -> Result<bool, Error>;
    /// `using` with a routine that calls `started`, then waits up to `max` for loss.
    fn using_until_lost(
        &self,
        resources: &[&str],
        ttl: Duration,
        max: Duration,
        started: Box<dyn FnOnce() + Send>,
    ) -> Result<LossSeen, Error>;
    /// Starts an acquire and drops it after `after` (or when it finishes first). `None` for an
    /// adapter whose calls cannot be abandoned (blocking).
    fn acquire_abandoned(&self, resources: &[&str], ttl: Duration, after: Duration) -> Option<()>;
    /// `acquire_with`.
    fn acquire_with(
        &self,
        resources: &[&str],
        ttl: Duration,
        options: AcquireOptions,
    ) -> Result<Lock, Error>;
    /// Acquires, wraps the lock in a guard, moves the guard into a task (a runtime task; a
    /// thread for the blocking adapter) that drops it, and returns the lock once the task ended.
    fn guard_dropped_in_task(&self, resources: &[&str], ttl: Duration) -> Result<Lock, Error>;
    /// Acquires, wraps the lock in a guard, drops the guard and then this client (which must be
    /// the last clone) at once; returns the lock.
    fn guard_dropped_then_closed(self, resources: &[&str], ttl: Duration) -> Result<Lock, Error>;
    /// `flush`.
    fn flush(&self);
    /// Acquires, wraps the lock in a guard and releases it with `Guard::release`.
    fn guard_released(&self, resources: &[&str], ttl: Duration) -> Result<Released, Error>;
    /// Acquires `resource`, holds it with `limits`, waits up to `max` for `lost()`, then
    /// releases with `Hold::release`.
    fn hold_for(
        &self,
        resource: &str,
        ttl: Duration,
        limits: HoldLimits,
        max: Duration,
    ) -> Result<HoldSeen, Error>;
    /// Acquires `n` resources named `{prefix}{i}` and holds each; one watcher per hold (a
    /// runtime task; a thread for the blocking adapter) waits for its `lost()`; then calls
    /// `between` and collects what each watcher saw, waiting up to `max` in all. The holds are
    /// dropped after `after` has run.
    #[allow(clippy::too_many_arguments)]
    fn holds_until_lost(
        &self,
        prefix: &str,
        n: usize,
        ttl: Duration,
        between: Box<dyn FnOnce() + Send>,
        max: Duration,
        after: Box<dyn FnOnce() + Send>,
    ) -> Result<Vec<LossSeen>, Error>;
}

/// An async runtime the suite can block on.
pub trait BlockOn: Runtime + Default {
    /// Adapter name.
    const NAME: &'static str;
    /// A loopback TCP stream to `port` on this runtime, as a [`Connection`].
    fn tcp(port: u16) -> BoxFuture<std::io::Result<Box<dyn Connection>>>;
    /// Runs `f` to completion on this runtime.
    fn block_on<F: Future + Send>(f: F) -> F::Output
    where
        F::Output: Send;
}

impl BlockOn for redlock_tokio::Tokio {
    const NAME: &'static str = "tokio";
    fn tcp(port: u16) -> BoxFuture<std::io::Result<Box<dyn Connection>>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(Box::new(redlock_tokio::Stream(s)) as Box<dyn Connection>)
        })
    }
    fn block_on<F: Future + Send>(f: F) -> F::Output
    where
        F::Output: Send,
    {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .block_on(f)
    }
}

impl BlockOn for redlock_smol::Smol {
    const NAME: &'static str = "smol";
    fn tcp(port: u16) -> BoxFuture<std::io::Result<Box<dyn Connection>>> {
        Box::pin(async move {
            let s = smol::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(Box::new(redlock_smol::Stream(s)) as Box<dyn Connection>)
        })
    }
    fn block_on<F: Future + Send>(f: F) -> F::Output
    where
        F::Output: Send,
    {
        smol::block_on(f)
    }
}

impl BlockOn for redlock_async_std::AsyncStd {
    const NAME: &'static str = "async-std";
    fn tcp(port: u16) -> BoxFuture<std::io::Result<Box<dyn Connection>>> {
        Box::pin(async move {
            let s = async_std::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(Box::new(redlock_async_std::Stream(s)) as Box<dyn Connection>)
        })
    }
    fn block_on<F: Future + Send>(f: F) -> F::Output
    where
        F::Output: Send,
    {
        async_std::task::block_on(f)
    }
}

/// An async adapter behind the blocking [`Client`] surface.
pub struct AsyncClient<R: BlockOn>(redlock_async::Redlock<R>);

impl<R: BlockOn> std::fmt::Debug for AsyncClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: BlockOn> Clone for AsyncClient<R> {
    fn clone(&self) -> Self {
        AsyncClient(self.0.clone())
    }
}

/// Resolves with `f`'s output, or `None` once `deadline` passes (dropping `f`).
async fn until<R: Runtime, F: Future>(rt: &R, deadline: Instant, f: F) -> Option<F::Output> {
    let mut f: Pin<Box<F>> = Box::pin(f);
    let mut sleep: BoxFuture<()> = rt.sleep_until(deadline);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

impl<R: BlockOn> Client for AsyncClient<R> {
    const NAME: &'static str = R::NAME;

    fn connect(urls: &[String], options: Options) -> Result<Self, Error> {
        R::block_on(redlock_async::Redlock::<R>::connect(urls.to_vec(), options)).map(AsyncClient)
    }

    fn connect_nodes(nodes: Vec<Node>, options: Options) -> Result<Self, Error> {
        R::block_on(redlock_async::Redlock::<R>::connect_nodes(nodes, options)).map(AsyncClient)
    }

    fn connect_via(relay: Arc<Relay>, nodes: Vec<Node>, options: Options) -> Result<Self, Error> {
        let connector =
            move |address: &Address| -> BoxFuture<std::io::Result<Box<dyn Connection>>> {
                match relay.route(address) {
                    Ok(port) => R::tcp(port),
                    Err(e) => Box::pin(async move { Err(e) }),
                }
            };
        R::block_on(redlock_async::Redlock::<R>::connect_via(
            connector, nodes, options,
        ))
        .map(AsyncClient)
    }

    fn open(node: &Node) -> std::io::Result<()> {
        R::block_on(open_connection(&R::default(), node)).map(drop)
    }

    fn acquire(&self, resources: &[&str], ttl: Duration) -> Result<Lock, Error> {
        R::block_on(self.0.acquire(resources.to_vec(), ttl))
    }

    fn extend(&self, lock: &Lock, ttl: Duration) -> Result<Lock, Error> {
        R::block_on(self.0.extend(lock, ttl))
    }

    fn release(&self, lock: &Lock) -> Result<Released, Error> {
        R::block_on(self.0.release(lock))
    }

    fn using_for(&self, resources: &[&str], ttl: Duration, hold: Duration) -> Result<bool, Error> {
        let rt = R::default();
        R::block_on(self.0.using(resources.to_vec(), ttl, |lease| async move {
            rt.sleep_until(Instant::now() + hold).await;
            lease.is_lost()
        }))
    }

    fn using_until_lost(
        &self,
        resources: &[&str],
        ttl: Duration,
        max: Duration,
        started: Box<dyn FnOnce() + Send>,
    ) -> Result<LossSeen, Error> {
        let rt = R::default();
        R::block_on(self.0.using(resources.to_vec(), ttl, |lease| async move {
            started();
            let fired = until(&rt, Instant::now() + max, lease.lost()).await;
            LossSeen {
                fired_at: fired.map(|()| Instant::now()),
                deadline: lease.deadline(),
            }
        }))
    }

    fn acquire_abandoned(&self, resources: &[&str], ttl: Duration, after: Duration) -> Option<()> {
        let rt = R::default();
        let redlock = self.0.clone();
        let resources: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
        R::block_on(async move {
            // Finished before the cut: the caller holds a lock like any other, and releases it.
            if let Some(Ok(lock)) =
                until(&rt, Instant::now() + after, redlock.acquire(resources, ttl)).await
            {
                redlock.release(&lock).await.expect("release");
            }
        });
        Some(())
    }

    fn acquire_with(
        &self,
        resources: &[&str],
        ttl: Duration,
        options: AcquireOptions,
    ) -> Result<Lock, Error> {
        R::block_on(self.0.acquire_with(resources.to_vec(), ttl, options))
    }

    fn guard_dropped_in_task(&self, resources: &[&str], ttl: Duration) -> Result<Lock, Error> {
        let lock = R::block_on(self.0.acquire(resources.to_vec(), ttl))?;
        let guard = self.0.guard(lock.clone());
        let (done, ended) = std::sync::mpsc::channel();
        R::block_on(async move {
            R::default().spawn(Box::pin(async move {
                drop(guard);
                let _ = done.send(());
            }));
        });
        ended
            .recv_timeout(Duration::from_secs(10))
            .expect("the task that drops the guard ran");
        Ok(lock)
    }

    fn guard_dropped_then_closed(self, resources: &[&str], ttl: Duration) -> Result<Lock, Error> {
        let lock = R::block_on(self.0.acquire(resources.to_vec(), ttl))?;
        drop(self.0.guard(lock.clone()));
        drop(self);
        Ok(lock)
    }

    fn flush(&self) {
        R::block_on(self.0.flush())
    }

    fn guard_released(&self, resources: &[&str], ttl: Duration) -> Result<Released, Error> {
        R::block_on(async {
            let lock = self.0.acquire(resources.to_vec(), ttl).await?;
            self.0.guard(lock).release().await
        })
    }

    fn hold_for(
        &self,
        resource: &str,
        ttl: Duration,
        limits: HoldLimits,
        max: Duration,
    ) -> Result<HoldSeen, Error> {
        let rt = R::default();
        R::block_on(async {
            let acquired = self.0.acquire([resource], ttl).await?;
            // Taken before the hold starts its clock (its keeper may run on another thread at
            // once), so a cap measured from here is never early.
            let began = Instant::now();
            let hold = self.0.hold_with(acquired.clone(), ttl, limits);
            let fired = until(&rt, began + max, hold.lost()).await;
            let loss = LossSeen {
                fired_at: fired.map(|()| Instant::now()),
                deadline: hold.deadline(),
            };
            let last = hold.lock();
            let released = hold.release().await?;
            Ok(HoldSeen {
                acquired,
                began,
                loss,
                last,
                released,
            })
        })
    }

    fn holds_until_lost(
        &self,
        prefix: &str,
        n: usize,
        ttl: Duration,
        between: Box<dyn FnOnce() + Send>,
        max: Duration,
        after: Box<dyn FnOnce() + Send>,
    ) -> Result<Vec<LossSeen>, Error> {
        let (seen, heard) = std::sync::mpsc::channel();
        let holds = R::block_on(async {
            let mut holds = Vec::with_capacity(n);
            for i in 0..n {
                let lock = self.0.acquire([format!("{prefix}{i}")], ttl).await?;
                let hold = self.0.hold(lock, ttl);
                let lease = hold.lease().clone();
                let seen = seen.clone();
                R::default().spawn(Box::pin(async move {
                    lease.lost().await;
                    let fired_at = Instant::now();
                    let _ = seen.send(LossSeen {
                        fired_at: Some(fired_at),
                        deadline: lease.deadline(),
                    });
                }));
                holds.push(hold);
            }
            Ok::<_, Error>(holds)
        })?;
        between();
        let end = Instant::now() + max;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match heard.recv_timeout(left) {
                Ok(s) => out.push(s),
                Err(_) => break,
            }
        }
        after();
        drop(holds);
        Ok(out)
    }
}

/// The blocking adapter is already a [`Client`] in all but name.
#[derive(Clone, Debug)]
pub struct BlockingClient(redlock_blocking::Redlock);

impl Client for BlockingClient {
    const NAME: &'static str = "blocking";

    fn connect(urls: &[String], options: Options) -> Result<Self, Error> {
        redlock_blocking::Redlock::connect(urls, options).map(BlockingClient)
    }

    fn connect_nodes(nodes: Vec<Node>, options: Options) -> Result<Self, Error> {
        redlock_blocking::Redlock::connect_nodes(nodes, options).map(BlockingClient)
    }

    fn connect_via(relay: Arc<Relay>, nodes: Vec<Node>, options: Options) -> Result<Self, Error> {
        // The connector's futures run on the client's background thread, under smol.
        let connector =
            move |address: &Address| -> BoxFuture<std::io::Result<Box<dyn Connection>>> {
                let route = relay.route(address);
                Box::pin(async move {
                    let s = smol::net::TcpStream::connect(("127.0.0.1", route?)).await?;
                    Ok(Box::new(redlock_blocking::Stream(s)) as Box<dyn Connection>)
                })
            };
        redlock_blocking::Redlock::connect_via(connector, nodes, options).map(BlockingClient)
    }

    fn open(node: &Node) -> std::io::Result<()> {
        smol::block_on(open_connection(&redlock_smol::Smol, node)).map(drop)
    }

    fn acquire(&self, resources: &[&str], ttl: Duration) -> Result<Lock, Error> {
        self.0.acquire(resources, ttl)
    }

    fn extend(&self, lock: &Lock, ttl: Duration) -> Result<Lock, Error> {
        self.0.extend(lock, ttl)
    }

    fn release(&self, lock: &Lock) -> Result<Released, Error> {
        self.0.release(lock)
    }

    fn using_for(&self, resources: &[&str], ttl: Duration, hold: Duration) -> Result<bool, Error> {
        self.0.using(resources, ttl, |lease| {
            std::thread::sleep(hold);
            lease.is_lost()
        })
    }

    fn using_until_lost(
        &self,
        resources: &[&str],
        ttl: Duration,
        max: Duration,
        started: Box<dyn FnOnce() + Send>,
    ) -> Result<LossSeen, Error> {
        self.0.using(resources, ttl, |lease| {
            started();
            let fired = lease.wait_lost(max);
            LossSeen {
                fired_at: fired.then(Instant::now),
                deadline: lease.deadline(),
            }
        })
    }

    fn acquire_abandoned(&self, _: &[&str], _: Duration, _: Duration) -> Option<()> {
        None
    }

    fn acquire_with(
        &self,
        resources: &[&str],
        ttl: Duration,
        options: AcquireOptions,
    ) -> Result<Lock, Error> {
        self.0.acquire_with(resources, ttl, options)
    }

    fn guard_dropped_in_task(&self, resources: &[&str], ttl: Duration) -> Result<Lock, Error> {
        let lock = self.0.acquire(resources, ttl)?;
        let guard = self.0.guard(lock.clone());
        std::thread::spawn(move || drop(guard))
            .join()
            .expect("the thread that drops the guard");
        Ok(lock)
    }

    fn guard_dropped_then_closed(self, resources: &[&str], ttl: Duration) -> Result<Lock, Error> {
        let lock = self.0.acquire(resources, ttl)?;
        drop(self.0.guard(lock.clone()));
        drop(self);
        Ok(lock)
    }

    fn flush(&self) {
        self.0.flush()
    }

    fn guard_released(&self, resources: &[&str], ttl: Duration) -> Result<Released, Error> {
        let lock = self.0.acquire(resources, ttl)?;
        self.0.guard(lock).release()
    }

    fn hold_for(
        &self,
        resource: &str,
        ttl: Duration,
        limits: HoldLimits,
        max: Duration,
    ) -> Result<HoldSeen, Error> {
        let acquired = self.0.acquire([resource], ttl)?;
        let began = Instant::now();
        let hold = self.0.hold_with(acquired.clone(), ttl, limits);
        let fired = hold.wait_lost(max);
        let loss = LossSeen {
            fired_at: fired.then(Instant::now),
            deadline: hold.deadline(),
        };
        let last = hold.lock();
        let released = hold.release()?;
        Ok(HoldSeen {
            acquired,
            began,
            loss,
            last,
            released,
        })
    }

    fn holds_until_lost(
        &self,
        prefix: &str,
        n: usize,
        ttl: Duration,
        between: Box<dyn FnOnce() + Send>,
        max: Duration,
        after: Box<dyn FnOnce() + Send>,
    ) -> Result<Vec<LossSeen>, Error> {
        let mut holds = Vec::with_capacity(n);
        let mut watchers = Vec::with_capacity(n);
        for i in 0..n {
            let lock = self.0.acquire([format!("{prefix}{i}")], ttl)?;
            let hold = self.0.hold(lock, ttl);
            let lease = hold.lease().clone();
            watchers.push(std::thread::spawn(move || {
                let fired = lease.wait_lost(max);
                LossSeen {
                    fired_at: fired.then(Instant::now),
                    deadline: lease.deadline(),
                }
            }));
            holds.push(hold);
        }
        between();
        let out = watchers
            .into_iter()
            .map(|w| w.join().expect("watcher"))
            .filter(|s| s.fired_at.is_some())
            .collect();
        after();
        drop(holds);
        Ok(out)
    }
}

/// Options for live tests: short timeouts and retry delays so faults show quickly.
pub fn test_options() -> Options {
    let mut o = Options::default();
    // Short enough that faults show quickly, long enough that a loaded 2-core CI machine does
    // not time out healthy nodes.
    o.node_timeout = Duration::from_millis(1000);
    o.retry_delay = Duration::from_millis(20);
    o.retry_jitter = Duration::from_millis(10);
    o.automatic_extension_threshold = Duration::from_millis(300);
    o
}

fn once(options: &Options) -> Options {
    let mut o = options.clone();
    o.retry_count = Some(0);
    o
}

const TTL: Duration = Duration::from_secs(5);

/// Acquire, extend and release; keys appear on every node and are gone after release.
pub fn round_trip<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    let lock = c.acquire(&["rt:a"], TTL).expect("acquire");
    assert!(lock.is_valid(Instant::now()));
    // Acquire returns once a quorum granted; the rest may still be in flight.
    let holding = |cluster: &Cluster| {
        (0..nodes)
            .filter(|i| cluster.get(*i, "rt:a").as_deref() == Some(lock.token().as_str()))
            .count()
    };
    assert!(
        holding(&cluster) > nodes / 2,
        "{}: token on fewer than a quorum",
        C::NAME
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while holding(&cluster) < nodes {
        assert!(
            Instant::now() < deadline,
            "{}: healthy nodes never all granted",
            C::NAME
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let extended = c.extend(&lock, Duration::from_secs(20)).expect("extend");
    assert!(extended.valid_until() > lock.valid_until());
    // Extend, too, returns at a majority: node 0 may answer a moment later.
    let deadline = Instant::now() + Duration::from_secs(2);
    while cluster.pttl(0, "rt:a") <= 10_000 {
        assert!(
            Instant::now() < deadline,
            "{}: extend never reset the ttl on node 0",
            C::NAME
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let released = c.release(&extended).expect("release");
    // It returns once a majority confirmed; the rest got the delete too.
    assert!(
        released.confirmed > nodes / 2,
        "{}: release returned after {} of {nodes} confirmations",
        C::NAME,
        released.confirmed
    );
    assert_eq!(cluster.exists_after("rt:a", Duration::from_secs(2)), 0);
    // Releasing again is harmless and confirms nothing.
    assert_eq!(c.release(&extended).expect("release twice").confirmed, 0);
    // Extending a released lock is refused as not held.
    let err = c.extend(&extended, TTL).expect_err("extend after release");
    assert!(
        matches!(err, Error::NotHeld { .. }),
        "{} got {err}",
        C::NAME
    );
}

/// A second client is refused while the first holds; a multi-resource lock refuses anyone
/// holding any of its resources, and takes nothing when refused.
pub fn exclusion<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let a = C::connect(&cluster.urls(), test_options()).expect("connect a");
    let b = C::connect(&cluster.urls(), once(&test_options())).expect("connect b");
    let held = a.acquire(&["ex:1"], TTL).expect("a acquires");
    let err = b.acquire(&["ex:1"], TTL).expect_err("b must be refused");
    assert!(err.is_locked(), "{}: expected Locked, got {err}", C::NAME);
    assert_eq!(err.attempts().len(), 1);
    let err = b
        .acquire(&["ex:2", "ex:1", "ex:3"], TTL)
        .expect_err("multi must be refused");
    assert!(err.is_locked(), "{err}");
    assert_eq!(
        cluster.exists_any("ex:2") + cluster.exists_any("ex:3"),
        0,
        "a refused multi-lock took nothing"
    );
    a.release(&held).expect("release");
    let multi = b
        .acquire(&["ex:2", "ex:1", "ex:3"], TTL)
        .expect("b acquires all three");
    assert_eq!(multi.resources().len(), 3);
    let err = C::connect(&cluster.urls(), once(&test_options()))
        .expect("connect c")
        .acquire(&["ex:3"], TTL)
        .expect_err("c refused on one of the three");
    assert!(err.is_locked(), "{err}");
    b.release(&multi).expect("release");
}

/// 32 workers × 50 rounds on one resource, each incrementing a plain counter with GET then SET
/// inside the lock: the counter equals the acquisitions and no two holders ever overlap.
pub fn contention<C: Client>(nodes: usize) {
    const WORKERS: usize = 32;
    const ROUNDS: usize = 50;
    let cluster = Arc::new(Cluster::start(nodes));
    let mut options = test_options();
    options.retry_count = None;
    options.retry_delay = Duration::from_millis(5);
    options.retry_jitter = Duration::from_millis(5);
    let client = C::connect(&cluster.urls(), options).expect("connect");
    cluster.cmd(0, &["SET", "contention:counter", "0"]);
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let acquired = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, cluster) = (client.clone(), cluster.clone());
            let (holders, max_holders, acquired) =
                (holders.clone(), max_holders.clone(), acquired.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let lock = client
                        .acquire(&["contention:lock"], Duration::from_secs(3))
                        .expect("acquire");
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    let value = match cluster.cmd(0, &["GET", "contention:counter"]) {
                        Reply::Bulk(b) => {
                            String::from_utf8_lossy(&b).parse::<u64>().expect("number")
                        }
                        other => panic!("GET counter: {other:?}"),
                    };
                    cluster.cmd(0, &["SET", "contention:counter", &(value + 1).to_string()]);
                    assert!(lock.is_valid(Instant::now()), "work outlived the lock");
                    holders.fetch_sub(1, Ordering::SeqCst);
                    acquired.fetch_add(1, Ordering::SeqCst);
                    client.release(&lock).expect("release");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker panicked");
    }
    assert_eq!(
        max_holders.load(Ordering::SeqCst),
        1,
        "{}: two holders at once",
        C::NAME
    );
    assert_eq!(acquired.load(Ordering::SeqCst), WORKERS * ROUNDS);
    assert_eq!(
        cluster.get(0, "contention:counter"),
        Some((WORKERS * ROUNDS).to_string()),
        "{}: lost updates: the lock let two writers interleave",
        C::NAME
    );
    assert_eq!(
        cluster.exists_after("contention:lock", Duration::from_secs(2)),
        0
    );
}

/// 5 nodes, one paused: acquires still succeed promptly; after SIGCONT the node is used again.
pub fn paused_node<C: Client>() {
    let cluster = Cluster::start(5);
    let options = test_options();
    let c = C::connect(&cluster.urls(), options.clone()).expect("connect");
    cluster.stop(4);
    for round in 0..5 {
        let start = Instant::now();
        let lock = c
            .acquire(&[&format!("pause:{round}")], TTL)
            .expect("acquire with one node paused");
        let took = start.elapsed();
        assert!(
            took < options.node_timeout + Duration::from_millis(250),
            "{}: acquire took {took:?} with one node paused",
            C::NAME
        );
        c.release(&lock).expect("release");
    }
    cluster.cont(4);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lock = c
            .acquire(&["pause:back"], TTL)
            .expect("acquire after SIGCONT");
        let on_node = cluster.get(4, "pause:back");
        c.release(&lock).expect("release");
        if on_node.as_deref() == Some(lock.token().as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: node 4 never came back into use",
            C::NAME
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 5 nodes, 3 killed: acquire fails as unreachable (not locked); after restart it succeeds.
pub fn quorum_lost<C: Client>() {
    let cluster = Cluster::start(5);
    let mut options = test_options();
    options.retry_count = Some(1);
    let c = C::connect(&cluster.urls(), options).expect("connect");
    for i in 0..3 {
        cluster.kill(i);
    }
    let err = c.acquire(&["ql:a"], TTL).expect_err("3 of 5 down");
    assert!(
        err.is_unreachable(),
        "{}: expected Unreachable, got {err}",
        C::NAME
    );
    assert_eq!(err.attempts().len(), 2, "retry_count 1 means two attempts");
    // Its release may still be on its way when acquire returns.
    assert_eq!(
        cluster.exists_after("ql:a", Duration::from_secs(2)),
        0,
        "a failed acquire is released where it was granted"
    );
    for i in 0..3 {
        cluster.restart(i);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let lock = loop {
        match c.acquire(&["ql:a"], TTL) {
            Ok(lock) => break lock,
            Err(e) if Instant::now() < deadline && e.is_unreachable() => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{}: no recovery after restart: {e}", C::NAME),
        }
    };
    c.release(&lock).expect("release");
}

/// A node that answers garbage is a failing node: typed error, no panic, the others still work.
pub fn garbage_node<C: Client>() {
    let cluster = Cluster::start(2);
    let fake = FakeServer::garbage();
    let mut urls = cluster.urls();
    urls.push(fake.url());
    let c = C::connect(&urls, test_options()).expect("connect");
    for round in 0..3 {
        let lock = c
            .acquire(&[&format!("garbage:{round}")], TTL)
            .expect("two good nodes of three");
        let key = &lock.resources()[0];
        let holding = cluster.exists_any(key);
        assert_eq!(
            holding,
            2,
            "{}: quorum of 3 with one garbage node needs both good nodes",
            C::NAME
        );
        c.release(&lock).expect("release");
    }
    // One good node of three: quorum cannot be reached.
    let lonely = Cluster::start(1);
    let other = FakeServer::garbage();
    let mut options = test_options();
    options.retry_count = Some(0);
    let c = C::connect(&[lonely.url(0), fake.url(), other.url()], options).expect("connect");
    let err = c
        .acquire(&["garbage:x"], TTL)
        .expect_err("one good node of three");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    // The failed attempt's release is queued behind its acquire; it may still be on the way
    // (on a fresh connection the release script first meets NOSCRIPT) when acquire returns.
    let released = (0..100).any(|_| {
        let gone = lonely.exists_any("garbage:x") == 0;
        if !gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        gone
    });
    assert!(released, "{}: released after the failed attempt", C::NAME);
}

/// `using` keeps the lock through several ttl periods (others refused throughout), then
/// releases it.
pub fn using_keeps_lock<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let holder = C::connect(&cluster.urls(), test_options()).expect("connect");
    let probe = C::connect(&cluster.urls(), once(&test_options())).expect("connect probe");
    let done = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let ttl = Duration::from_millis(800);
    let hold = ttl * 4;
    // The routine starts after `t0` and runs for `hold`, so until `t0 + hold` it certainly holds
    // the lock. After that, `using` releases before `done` is set: a probe succeeding then is
    // legitimate, not a violation.
    let t0 = Instant::now();
    let held_until = t0 + hold;
    let prober = {
        let (done, refusals, probe) = (done.clone(), refusals.clone(), probe.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            while !done.load(Ordering::SeqCst) {
                let r = probe.acquire(&["using:a"], TTL);
                let returned = Instant::now();
                match r {
                    Ok(lock) if returned < held_until => panic!(
                        "probe acquired {lock:?} {:?} into a {hold:?} routine that held it",
                        returned - t0
                    ),
                    Ok(lock) => {
                        let _ = probe.release(&lock);
                    }
                    Err(e) => refusals.lock().expect("lock").push(e.is_locked()),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let lost = holder.using_for(&["using:a"], ttl, hold).expect("using");
    done.store(true, Ordering::SeqCst);
    prober.join().expect("probe saw the lock free while held");
    assert!(!lost, "{}: lease lost while nodes were healthy", C::NAME);
    let refusals = refusals.lock().expect("lock");
    assert!(refusals.len() >= 10, "probe ran {} times", refusals.len());
    assert!(
        refusals.iter().all(|locked| *locked),
        "{}: probe failures were not all Locked",
        C::NAME
    );
    assert_eq!(
        cluster.exists_after("using:a", Duration::from_secs(2)),
        0,
        "released after the routine"
    );
    let lock = probe.acquire(&["using:a"], TTL).expect("free after using");
    probe.release(&lock).expect("release");
}

/// Killing the nodes mid-routine makes `lost()` fire before the lease deadline passes.
pub fn using_notices_loss<C: Client>(nodes: usize) {
    let cluster = Arc::new(Cluster::start(nodes));
    let holder = C::connect(&cluster.urls(), test_options()).expect("connect");
    let killer = cluster.clone();
    let started: Box<dyn FnOnce() + Send> = Box::new(move || {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            for i in 0..killer.len() {
                killer.kill(i);
            }
        });
    });
    let ttl = Duration::from_secs(2);
    let seen = holder
        .using_until_lost(&["loss:a"], ttl, ttl * 3, started)
        .expect("using");
    let fired = seen
        .fired_at
        .unwrap_or_else(|| panic!("{}: lost() never fired", C::NAME));
    assert!(
        fired <= seen.deadline,
        "{}: lost() fired {:?} after the deadline",
        C::NAME,
        fired - seen.deadline
    );
}

/// Dropping acquire futures at every stage (before sending, mid-flight, after completion)
/// leaves no key on any node once things settle.
pub fn cancellation<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    if c.acquire_abandoned(&["cancel:probe"], TTL, Duration::ZERO)
        .is_none()
    {
        return; // blocking calls cannot be abandoned
    }
    for i in 0..60u64 {
        let after = Duration::from_micros(i * 25);
        c.acquire_abandoned(&[&format!("cancel:{i}"), "cancel:shared"], TTL, after);
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..nodes {
        let keys = cluster.keys(i);
        assert!(
            keys.is_empty(),
            "{}: node {i} kept {keys:?} after abandoned acquires",
            C::NAME
        );
    }
    // And the client still works.
    let lock = c
        .acquire(&["cancel:shared"], TTL)
        .expect("acquire after cancellations");
    c.release(&lock).expect("release");
}

/// `flush` waits for the node a release did not wait for (paused: it answers once resumed),
/// and returns once it has answered: the key is then gone from every node.
pub fn flush_waits_for_every_node<C: Client>() {
    let cluster = Cluster::start(3);
    let mut options = test_options();
    // Longer than the pause below: the paused node answers, it does not time out.
    options.node_timeout = Duration::from_secs(5);
    let c = C::connect(&cluster.urls(), options).expect("connect");
    let lock = c.acquire(&["flush:a"], TTL).expect("acquire");
    cluster.stop(2);
    let released = c.release(&lock).expect("release");
    assert_eq!(released.confirmed, 2, "{}: back at the majority", C::NAME);
    let (done, flushed) = std::sync::mpsc::channel();
    let flusher = c.clone();
    let thread = std::thread::spawn(move || {
        flusher.flush();
        let _ = done.send(());
    });
    let early = flushed.recv_timeout(Duration::from_millis(300));
    cluster.cont(2);
    assert!(
        early.is_err(),
        "{}: flush returned while node 2 (paused) had not answered the delete",
        C::NAME
    );
    flushed
        .recv_timeout(Duration::from_secs(5))
        .expect("flush returns once node 2 answered");
    thread.join().expect("the flushing thread");
    assert_eq!(
        cluster.exists_any("flush:a"),
        0,
        "{}: flush returned before every node deleted the key",
        C::NAME
    );
    // With nothing out, it returns at once.
    c.flush();
}

/// The last client handle dropped right after a guard: the guard's release still reaches every
/// node (the driver sends what is queued and waits for the answers before it closes).
pub fn close_sends_a_dropped_guards_release<C: Client>() {
    let cluster = Cluster::start(3);
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    let lock = c
        .guard_dropped_then_closed(&["close:a"], TTL)
        .expect("acquire");
    assert_eq!(lock.resources(), ["close:a"]);
    // The ttl is 5 s: a key gone within 2 s was released, not expired.
    assert_eq!(
        cluster.exists_after("close:a", Duration::from_secs(2)),
        0,
        "{}: the guard's release was lost when the client closed",
        C::NAME
    );
}

/// A guard dropped in another task (thread, for the blocking adapter) releases the key on every
/// node without anyone awaiting it; `Guard::release` returns the outcome.
pub fn guard_drop_releases<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    let lock = c.guard_dropped_in_task(&["guard:a"], TTL).expect("acquire");
    assert!(lock.is_valid(Instant::now()));
    // The ttl is 5 s: a key gone within 2 s was released, not expired.
    assert_eq!(
        cluster.exists_after("guard:a", Duration::from_secs(2)),
        0,
        "{}: a dropped guard left the key on the nodes",
        C::NAME
    );
    let again = c.acquire(&["guard:a"], TTL).expect("free after the drop");
    c.release(&again).expect("release");
    let released = c.guard_released(&["guard:b"], TTL).expect("guard release");
    assert!(
        released.confirmed > nodes / 2,
        "{}: {} confirmations",
        C::NAME,
        released.confirmed
    );
    assert_eq!(cluster.exists_after("guard:b", Duration::from_secs(2)), 0);
}

/// The bound on a held lock, on any deployment at `urls`: an acquire bounded to 200 ms returns
/// `TimedOut` (last failure `Locked`) within its bound plus one node timeout, after retrying
/// through it; a per-call retry count of 0 overrides the client's "for ever" (`Locked` after one
/// attempt). The holder releases at the end; returns the waiter (its client retries for ever)
/// and the 200 ms bound, for the caller's own checks.
pub fn bounded_on_held<C: Client>(urls: &[String]) -> (C, AcquireOptions) {
    let options = test_options();
    let holder = C::connect(urls, options.clone()).expect("connect");
    let mut forever = options.clone();
    forever.retry_count = None;
    let waiter = C::connect(urls, forever).expect("connect waiter");
    let held = holder.acquire(&["bound:a"], TTL).expect("holder");
    let bound = Duration::from_millis(200);
    let within = AcquireOptions::new().wait(bound).retry(Retry {
        count: None,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
    });
    let start = Instant::now();
    let err = waiter
        .acquire_with(&["bound:a"], TTL, within)
        .expect_err("held by another");
    let took = start.elapsed();
    assert!(
        matches!(
            err,
            Error::TimedOut {
                last_failure: Failure::Locked,
                ..
            }
        ),
        "{}: {err}",
        C::NAME
    );
    assert!(
        took <= bound + options.node_timeout,
        "{}: a 200 ms bound took {took:?}",
        C::NAME
    );
    assert!(
        err.attempts().len() > 1,
        "{}: retried inside the bound: {err}",
        C::NAME
    );
    // The per-call retry count overrides the client's "for ever".
    let once = AcquireOptions::new().retry(Retry {
        count: Some(0),
        delay: Duration::from_millis(20),
        jitter: Duration::ZERO,
    });
    let err = waiter
        .acquire_with(&["bound:a"], TTL, once)
        .expect_err("held");
    assert!(err.is_locked(), "{}: {err}", C::NAME);
    assert_eq!(err.attempts().len(), 1);
    holder.release(&held).expect("release");
    (waiter, within)
}

/// An acquire bounded to 200 ms on a held lock returns `TimedOut` (last failure `Locked`)
/// within its bound plus one node timeout, after retrying through it ([`bounded_on_held`]); on
/// nodes that do not answer, `TimedOut` with `Unreachable`.
pub fn bounded_acquire<C: Client>() {
    let cluster = Cluster::start(3);
    let options = test_options();
    let (waiter, within) = bounded_on_held::<C>(&cluster.urls());
    let bound = Duration::from_millis(200);
    // Two of three nodes stop answering: no quorum can form, and the bound still holds.
    cluster.stop(1);
    cluster.stop(2);
    let start = Instant::now();
    let err = waiter
        .acquire_with(&["bound:b"], TTL, within)
        .expect_err("two of three paused");
    let took = start.elapsed();
    cluster.cont(1);
    cluster.cont(2);
    assert!(
        matches!(
            err,
            Error::TimedOut {
                last_failure: Failure::Unreachable,
                ..
            }
        ),
        "{}: {err}",
        C::NAME
    );
    assert!(
        took <= bound + options.node_timeout,
        "{}: a 200 ms bound took {took:?} on paused nodes",
        C::NAME
    );
    assert_eq!(cluster.exists_after("bound:b", Duration::from_secs(3)), 0);
}

/// Extending a lock whose keys are gone and taken fails at once as `NotHeld`: one attempt, no
/// retry pause, though the client retries 10 times 500 ms apart.
pub fn not_held_at_once<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let mut options = test_options();
    options.retry_delay = Duration::from_millis(500);
    options.retry_jitter = Duration::ZERO;
    let a = C::connect(&cluster.urls(), options.clone()).expect("connect a");
    let b = C::connect(&cluster.urls(), options).expect("connect b");
    let lock = a.acquire(&["nh:a"], TTL).expect("a acquires");
    for i in 0..nodes {
        cluster.cmd(i, &["DEL", "nh:a"]);
    }
    let taken = b.acquire(&["nh:a"], TTL).expect("b takes it");
    let start = Instant::now();
    let err = a.extend(&lock, TTL).expect_err("not ours any more");
    let took = start.elapsed();
    assert!(matches!(err, Error::NotHeld { .. }), "{}: {err}", C::NAME);
    assert_eq!(err.attempts().len(), 1, "{}: {err:#}", C::NAME);
    assert!(
        took < Duration::from_millis(400),
        "{}: NotHeld took {took:?}",
        C::NAME
    );
    b.release(&taken).expect("release");
}

/// `lost()` fires before `valid_until`, every time, in a run of 100 losses: 100 holds on one
/// node, which then stops answering, so every lease runs out with its extension unanswered.
pub fn lost_before_valid_until<C: Client>() {
    const LOSSES: usize = 100;
    let cluster = Arc::new(Cluster::start(1));
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    // A 4 s ttl: the loss margin is 200 ms, room for the watcher tasks' wake-up latency on a
    // loaded 2-core machine running the rest of the suite beside this test.
    let ttl = Duration::from_secs(4);
    let (stop, cont) = (cluster.clone(), cluster.clone());
    let seen = c
        .holds_until_lost(
            "loss100:",
            LOSSES,
            ttl,
            Box::new(move || stop.stop(0)),
            ttl * 3,
            Box::new(move || cont.cont(0)),
        )
        .expect("holds");
    assert_eq!(
        seen.len(),
        LOSSES,
        "{}: only {} of {LOSSES} leases were signalled lost",
        C::NAME,
        seen.len()
    );
    for s in &seen {
        let fired = s.fired_at.expect("fired");
        assert!(
            fired < s.deadline,
            "{}: lost() fired {:?} after valid_until",
            C::NAME,
            fired - s.deadline
        );
    }
}

/// `hold` keeps a lock past its ttl without a closure; caps end the lease (extensions, total
/// time) before validity does; `Hold::release` releases.
pub fn hold_and_caps<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    let probe = C::connect(&cluster.urls(), once(&test_options())).expect("probe");
    let ttl = Duration::from_millis(800);
    // Uncapped: held through 1.5 ttl, extended, never lost.
    let seen = {
        let c = c.clone();
        let t =
            std::thread::spawn(move || c.hold_for("hold:a", ttl, HoldLimits::new(), ttl + ttl / 2));
        std::thread::sleep(ttl);
        let err = probe.acquire(&["hold:a"], TTL).expect_err("held");
        assert!(err.is_locked(), "{}: {err}", C::NAME);
        t.join().expect("holder").expect("hold")
    };
    assert!(
        seen.loss.fired_at.is_none(),
        "{}: lost while healthy",
        C::NAME
    );
    assert!(
        seen.last.valid_until() > seen.acquired.valid_until(),
        "{}: never extended",
        C::NAME
    );
    assert!(seen.released.confirmed > nodes / 2);
    assert_eq!(cluster.exists_after("hold:a", Duration::from_secs(2)), 0);
    // No extensions allowed: lost before the first lock's validity ends, never extended.
    let seen = c
        .hold_for("hold:b", ttl, HoldLimits::new().max_extensions(0), ttl * 3)
        .expect("hold");
    let fired = seen.loss.fired_at.expect("lost at the cap");
    assert_eq!(
        seen.last,
        seen.acquired,
        "{}: extended past the cap",
        C::NAME
    );
    assert!(fired < seen.acquired.valid_until(), "{}", C::NAME);
    // A 300 ms hold cap: lost at the cap, long before validity runs out.
    let cap = Duration::from_millis(300);
    let seen = c
        .hold_for("hold:c", ttl, HoldLimits::new().max_hold(cap), ttl * 3)
        .expect("hold");
    let fired = seen.loss.fired_at.expect("lost at the cap");
    assert!(
        fired >= seen.began + cap,
        "{}: lost before the cap",
        C::NAME
    );
    assert!(
        fired < seen.began + cap + Duration::from_millis(250),
        "{}: lost {:?} after the cap",
        C::NAME,
        fired - (seen.began + cap)
    );
    assert!(fired < seen.loss.deadline);
    assert_eq!(cluster.exists_after("hold:c", Duration::from_secs(2)), 0);
}

/// Bad configuration is reported at once, before any connection.
pub fn bad_config<C: Client>() {
    let err = C::connect(&["http://127.0.0.1:1".to_string()], test_options()).expect_err("bad url");
    assert!(matches!(err, Error::InvalidUrl(_)), "{err}");
    let twice = [
        "redis://127.0.0.1:1".to_string(),
        "redis://127.0.0.1:1/".to_string(),
    ];
    let err = C::connect(&twice, test_options()).expect_err("a node listed twice");
    assert!(
        matches!(
            err,
            Error::Config(redlock_core::Error::DuplicateNode { .. })
        ),
        "{err}"
    );
    let err = C::connect(&[], test_options()).expect_err("no nodes");
    assert!(matches!(err, Error::Config(_)), "{err}");
    let cluster = Cluster::start(1);
    let c = C::connect(&cluster.urls(), test_options()).expect("connect");
    let err = c.acquire(&[], TTL).expect_err("no resources");
    assert!(matches!(err, Error::Config(_)), "{err}");
    let err = c
        .acquire(&["x"], Duration::from_millis(1))
        .expect_err("ttl shorter than drift");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

/// Options for the waiting tests: `protocol` (RESP3: announcements arrive as pushes on the lock
/// connections; RESP2: on a subscriber connection of each node's own), a fixed retry delay of
/// `delay`.
fn waiting_options(protocol: Protocol, delay: Duration) -> Options {
    let mut o = test_options();
    o.protocol = protocol;
    o.retry_delay = delay;
    o.retry_jitter = Duration::ZERO;
    o.retry_count = Some(20);
    o
}

/// A release wakes a waiter of another client in well under the retry delay: with a 2 s retry
/// delay, the waiter holds the lock within 200 ms of the holder's release, over either protocol.
pub fn release_wakes_waiter<C: Client>(nodes: usize, protocol: Protocol) {
    let cluster = Cluster::start(nodes);
    let options = waiting_options(protocol, Duration::from_secs(2));
    let what = format!("{nodes} nodes, {protocol:?}");
    release_wakes_waiter_at::<C>(&cluster.urls(), options, "wake:a", &what);
}

/// [`release_wakes_waiter`] on any deployment at `urls`, with `options` (a retry delay of 2 s),
/// on `key`; `what` names the deployment in messages.
pub fn release_wakes_waiter_at<C: Client>(
    urls: &[String],
    options: Options,
    key: &str,
    what: &str,
) {
    let holder = C::connect(urls, options.clone()).expect("connect holder");
    let waiter = C::connect(urls, options).expect("connect waiter");
    let lock = holder.acquire(&[key], TTL).expect("holder acquires");
    let started = Instant::now();
    let thread = {
        let key = key.to_string();
        std::thread::spawn(move || {
            let lock = waiter.acquire(&[&key], TTL).expect("waiter acquires");
            let at = Instant::now();
            waiter.release(&lock).expect("waiter releases");
            (at, lock.attempts())
        })
    };
    // Long enough for the waiter's first attempt to be refused and its subscription to land.
    std::thread::sleep(Duration::from_millis(400));
    let released = Instant::now();
    holder.release(&lock).expect("holder releases");
    let (acquired, attempts) = thread.join().expect("waiter thread");
    assert!(
        acquired >= released,
        "{}: acquired while held ({:?} after start)",
        C::NAME,
        acquired - started
    );
    let woke = acquired - released;
    assert!(
        woke < Duration::from_millis(200),
        "{}: {what}: acquired {woke:?} after the release (retry delay 2 s)",
        C::NAME
    );
    assert!(attempts >= 2, "{}: {attempts} attempts", C::NAME);
}

/// A holder that releases without announcing (a raw `DEL`, as a peer library without the
/// announcement would): the waiter still gets the lock through its retry delay.
pub fn unannounced_release_still_progresses<C: Client>(nodes: usize, protocol: Protocol) {
    let cluster = Cluster::start(nodes);
    let delay = Duration::from_millis(300);
    let waiter = C::connect(&cluster.urls(), waiting_options(protocol, delay)).expect("connect");
    for i in 0..nodes {
        cluster.cmd(i, &["SET", "mixed:a", "peer-token", "PX", "10000"]);
    }
    let thread = std::thread::spawn(move || {
        let lock = waiter.acquire(&["mixed:a"], TTL).expect("waiter acquires");
        let at = Instant::now();
        waiter.release(&lock).expect("waiter releases");
        at
    });
    std::thread::sleep(Duration::from_millis(500));
    let deleted = Instant::now();
    for i in 0..nodes {
        cluster.cmd(i, &["DEL", "mixed:a"]);
    }
    let acquired = thread.join().expect("waiter thread");
    assert!(
        acquired >= deleted,
        "{}: acquired while the peer held it",
        C::NAME
    );
    // The next retry is due at most one delay after the DEL; allow a loaded machine slack.
    assert!(
        acquired - deleted < delay + Duration::from_millis(700),
        "{}: acquired {:?} after the unannounced release",
        C::NAME,
        acquired - deleted
    );
}

/// Callers of one client on one resource take turns through the client's line: with a 2 s
/// retry delay, 8 callers each acquire and release 5 times within 3 s, never two holders at
/// once, and a caller started by a release gets the lock on its first attempt.
pub fn callers_of_one_client_take_turns<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let mut options = waiting_options(Protocol::Resp2, Duration::from_secs(2));
    options.retry_count = None;
    let client = C::connect(&cluster.urls(), options).expect("connect");
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (client, inside) = (client.clone(), inside.clone());
            std::thread::spawn(move || {
                let mut retried = 0;
                for _ in 0..5 {
                    let lock = client.acquire(&["line:a"], TTL).expect("acquire");
                    let others = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(others, 0, "{}: two holders at once", C::NAME);
                    std::thread::sleep(Duration::from_millis(1));
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    if lock.attempts() > 1 {
                        retried += 1;
                    }
                    client.release(&lock).expect("release");
                }
                retried
            })
        })
        .collect();
    let retried: u32 = threads
        .into_iter()
        .map(|t| t.join().expect("caller thread"))
        .sum();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{}: {nodes} nodes: 40 turns took {took:?} (retry delay 2 s)",
        C::NAME
    );
    // Only a caller that came while no one of the client held it and lost the race to one
    // that did may have been refused.
    assert!(retried <= 8, "{}: {retried} of 40 turns retried", C::NAME);
}

/// A lock dropped without a release does not hold up the client's line past its expiry: the
/// next caller gets the resource within a retry pause (plus slack) of the ttl's end.
pub fn dropped_lock_does_not_block_the_line<C: Client>(nodes: usize) {
    let cluster = Cluster::start(nodes);
    let mut options = waiting_options(Protocol::Resp2, Duration::from_millis(100));
    options.retry_count = None;
    let client = C::connect(&cluster.urls(), options).expect("connect");
    let ttl = Duration::from_millis(500);
    let forgotten = client.acquire(&["line:b"], ttl).expect("first acquire");
    let expires = forgotten.valid_until();
    drop(forgotten);
    let lock = client.acquire(&["line:b"], TTL).expect("second acquire");
    let at = Instant::now();
    assert!(
        at >= expires,
        "{}: acquired before the first expired",
        C::NAME
    );
    assert!(
        at - expires < Duration::from_millis(900),
        "{}: acquired {:?} after the forgotten lock expired",
        C::NAME,
        at - expires
    );
    client.release(&lock).expect("release");
}

/// Stamps out the suite's `#[test]`s for one [`Client`] type.
#[macro_export]
macro_rules! conformance_suite {
    ($client:ty) => {
        use $crate::conformance as suite;
        #[test]
        fn round_trip_1() {
            suite::round_trip::<$client>(1)
        }
        #[test]
        fn round_trip_3() {
            suite::round_trip::<$client>(3)
        }
        #[test]
        fn round_trip_5() {
            suite::round_trip::<$client>(5)
        }
        #[test]
        fn exclusion_1() {
            suite::exclusion::<$client>(1)
        }
        #[test]
        fn exclusion_3() {
            suite::exclusion::<$client>(3)
        }
        #[test]
        fn exclusion_5() {
            suite::exclusion::<$client>(5)
        }
        #[test]
        fn contention_1() {
            suite::contention::<$client>(1)
        }
        #[test]
        fn contention_3() {
            suite::contention::<$client>(3)
        }
        #[test]
        fn contention_5() {
            suite::contention::<$client>(5)
        }
        #[test]
        fn paused_node_5() {
            suite::paused_node::<$client>()
        }
        #[test]
        fn quorum_lost_5() {
            suite::quorum_lost::<$client>()
        }
        #[test]
        fn garbage_node_3() {
            suite::garbage_node::<$client>()
        }
        #[test]
        fn using_keeps_lock_1() {
            suite::using_keeps_lock::<$client>(1)
        }
        #[test]
        fn using_keeps_lock_3() {
            suite::using_keeps_lock::<$client>(3)
        }
        #[test]
        fn using_keeps_lock_5() {
            suite::using_keeps_lock::<$client>(5)
        }
        #[test]
        fn using_notices_loss_3() {
            suite::using_notices_loss::<$client>(3)
        }
        #[test]
        fn cancellation_3() {
            suite::cancellation::<$client>(3)
        }
        #[test]
        fn bad_config() {
            suite::bad_config::<$client>()
        }
        #[test]
        fn guard_drop_releases_3() {
            suite::guard_drop_releases::<$client>(3)
        }
        #[test]
        fn flush_waits_for_every_node_3() {
            suite::flush_waits_for_every_node::<$client>()
        }
        #[test]
        fn close_sends_a_dropped_guards_release_3() {
            suite::close_sends_a_dropped_guards_release::<$client>()
        }
        #[test]
        fn bounded_acquire_3() {
            suite::bounded_acquire::<$client>()
        }
        #[test]
        fn not_held_at_once_1() {
            suite::not_held_at_once::<$client>(1)
        }
        #[test]
        fn not_held_at_once_3() {
            suite::not_held_at_once::<$client>(3)
        }
        #[test]
        fn lost_before_valid_until_100() {
            suite::lost_before_valid_until::<$client>()
        }
        #[test]
        fn hold_and_caps_3() {
            suite::hold_and_caps::<$client>(3)
        }
        #[test]
        fn callers_of_one_client_take_turns_1() {
            suite::callers_of_one_client_take_turns::<$client>(1)
        }
        #[test]
        fn callers_of_one_client_take_turns_5() {
            suite::callers_of_one_client_take_turns::<$client>(5)
        }
        #[test]
        fn dropped_lock_does_not_block_the_line_3() {
            suite::dropped_lock_does_not_block_the_line::<$client>(3)
        }
        #[test]
        fn release_wakes_waiter_1() {
            suite::release_wakes_waiter::<$client>(1, suite::Protocol::Resp3)
        }
        #[test]
        fn release_wakes_waiter_3() {
            suite::release_wakes_waiter::<$client>(3, suite::Protocol::Resp3)
        }
        #[test]
        fn release_wakes_waiter_resp2_1() {
            suite::release_wakes_waiter::<$client>(1, suite::Protocol::Resp2)
        }
        #[test]
        fn release_wakes_waiter_resp2_5() {
            suite::release_wakes_waiter::<$client>(5, suite::Protocol::Resp2)
        }
        #[test]
        fn unannounced_release_still_progresses_3() {
            suite::unannounced_release_still_progresses::<$client>(3, suite::Protocol::Resp3)
        }
        #[test]
        fn unannounced_release_still_progresses_resp2_3() {
            suite::unannounced_release_still_progresses::<$client>(3, suite::Protocol::Resp2)
        }
    };
}
