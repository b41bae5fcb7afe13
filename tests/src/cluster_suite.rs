//! The conformance checks that matter for a Redlock node that is a whole Redis Cluster, run
//! against a real local cluster (`redlock_harness::RedisCluster`, 3 primaries) as the only
//! node: the round trip over RESP2 and RESP3, locks across slots, contention, `using` with
//! automatic extension, a bounded acquire, fencing and waiting for a release. What changes the
//! cluster underneath (a slot migration, a failover, replica acknowledgement) is in
//! [`cluster_changes`](crate::cluster_changes).

use crate::conformance::{test_options, Client};
use redlock_async::{AcquireOptions, Error, Node, Options, Protocol, Retry};
use redlock_harness::{RedisCluster, Reply};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const TTL: Duration = Duration::from_secs(10);

/// The live suite's options (short node timeout and retries), over `protocol`.
pub(crate) fn options(protocol: Protocol) -> Options {
    let mut o = test_options();
    o.protocol = protocol;
    o
}

/// Two attempts, 20 ms apart.
pub(crate) fn twice() -> AcquireOptions {
    AcquireOptions::new().retry(Retry {
        count: Some(1),
        delay: Duration::from_millis(20),
        jitter: Duration::ZERO,
    })
}

/// `PTTL key` on the primary that owns its slot.
pub(crate) fn pttl_routed(cluster: &RedisCluster, key: &str) -> i64 {
    match cluster.cmd_routed(key, &["PTTL", key]) {
        Reply::Int(n) => n,
        other => panic!("PTTL {key:?} answered {other:?}"),
    }
}

/// `n` keys `{prefix}{i}` whose slots are on `n` different primaries (so a lock on them is
/// split over `n` shards).
pub(crate) fn keys_on_distinct_primaries(
    cluster: &RedisCluster,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut keys = Vec::with_capacity(n);
    for i in 0..200 {
        let key = format!("{prefix}{i}");
        let primary = cluster.primary_of_slot(redlock_core::key_slot(key.as_bytes()));
        if seen.insert(primary) {
            keys.push(key);
            if keys.len() == n {
                return keys;
            }
        }
    }
    panic!("no {n} keys {prefix}N on {n} different primaries among 200");
}

/// Acquire, extend and release with the cluster as the only node, over `protocol` (the RESP3
/// client is given as `Node::cluster`, the RESP2 one as a `redis+cluster://` URL): the key
/// holds the token on its slot's primary, the extension resets its ttl there, a second client
/// is refused (`Locked`, taking nothing of a multi-resource lock it was refused), the release
/// deletes it; a second release confirms nothing and extending a released lock is `NotHeld`.
pub fn round_trip<C: Client>(protocol: Protocol) {
    let cluster = RedisCluster::start(3, 0);
    let connect = || match protocol {
        Protocol::Resp3 => {
            let seeds = (0..3).map(|i| ("127.0.0.1", cluster.port(i)));
            let node = Node::cluster(seeds).expect("three seeds");
            C::connect_nodes(vec![node], options(protocol))
        }
        _ => C::connect(&[cluster.cluster_url()], options(protocol)),
    };
    let a = connect().expect("connect a");
    let b = connect().expect("connect b");
    let lock = a.acquire(&["rt:a"], TTL).expect("acquire");
    assert!(lock.is_valid(Instant::now()));
    assert_eq!(
        cluster.get_routed("rt:a").as_deref(),
        Some(lock.token().as_str()),
        "{}: the token is on the slot's primary",
        C::NAME
    );
    let extended = a.extend(&lock, Duration::from_secs(30)).expect("extend");
    assert!(extended.valid_until() > lock.valid_until());
    assert!(
        pttl_routed(&cluster, "rt:a") > 20_000,
        "{}: the extension reset the ttl on the primary",
        C::NAME
    );
    let err = b
        .acquire_with(&["rt:a"], TTL, twice())
        .expect_err("held by a");
    assert!(err.is_locked(), "{}: expected Locked, got {err}", C::NAME);
    let others = keys_on_distinct_primaries(&cluster, "rt:m", 2);
    let multi = [others[0].as_str(), "rt:a", others[1].as_str()];
    let err = b
        .acquire_with(&multi, TTL, twice())
        .expect_err("one of three held by a");
    assert!(err.is_locked(), "{}: expected Locked, got {err}", C::NAME);
    // The parts granted on the other shards were released when the node's vote failed; that
    // release may still be on its way.
    let deadline = Instant::now() + Duration::from_secs(2);
    while others.iter().any(|k| cluster.exists_routed(k)) {
        assert!(
            Instant::now() < deadline,
            "{}: a refused multi-slot lock kept its other keys",
            C::NAME
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let released = a.release(&extended).expect("release");
    assert_eq!(released.confirmed, 1, "{}: the one node confirmed", C::NAME);
    assert!(!cluster.exists_routed("rt:a"), "{}: released", C::NAME);
    assert_eq!(a.release(&extended).expect("release twice").confirmed, 0);
    let err = a.extend(&extended, TTL).expect_err("extend after release");
    assert!(
        matches!(err, Error::NotHeld { .. }),
        "{}: expected NotHeld, got {err}",
        C::NAME
    );
    let all = b.acquire(&multi, TTL).expect("free again");
    b.release(&all).expect("release");
}

/// A lock on keys in different slots (on every primary): granted, visible on the primaries
/// that own the keys, refused to a second client while held, extended on every shard at once,
/// released everywhere.
pub fn locks_across_slots<C: Client>() {
    let cluster = RedisCluster::start(3, 0);
    let a = C::connect(&[cluster.cluster_url()], test_options()).expect("connect");
    let b = C::connect(&[cluster.cluster_url()], test_options()).expect("connect");
    let one = a.acquire(&["cl:one"], TTL).expect("one key");
    assert!(cluster.exists_routed("cl:one"), "{}", C::NAME);
    a.release(&one).expect("release");
    assert!(!cluster.exists_routed("cl:one"), "{}", C::NAME);
    let mut keys = keys_on_distinct_primaries(&cluster, "cl:", 3);
    // Two keys in one slot as well: one script per slot, not per key.
    keys.push(format!("{{{}}}:same-slot", keys[0]));
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let lock = a.acquire(&keys, TTL).expect("across slots");
    for k in &keys {
        assert_eq!(
            cluster.get_routed(k).as_deref(),
            Some(lock.token().as_str()),
            "{}: {k} held",
            C::NAME
        );
    }
    let err = b
        .acquire_with(&[keys[2]], TTL, twice())
        .expect_err("held by a");
    assert!(err.is_locked(), "{}: {err}", C::NAME);
    let extended = a
        .extend(&lock, Duration::from_secs(30))
        .expect("multi-slot extend");
    assert!(extended.valid_until() > lock.valid_until());
    for k in &keys {
        let pttl = pttl_routed(&cluster, k);
        assert!(
            pttl > 20_000,
            "{}: {k} extended on its shard: {pttl}",
            C::NAME
        );
    }
    let released = a.release(&extended).expect("release");
    assert_eq!(released.confirmed, 1, "{}", C::NAME);
    for k in &keys {
        assert!(!cluster.exists_routed(k), "{}: {k} released", C::NAME);
    }
    let again = b.acquire(&keys, TTL).expect("free again");
    b.release(&again).expect("release");
}

/// Two clients, 4 threads each, 25 rounds per thread on one lock whose two keys are on
/// different shards, each round incrementing a counter on the cluster with GET then SET inside
/// the lock: never two holders at once, no lost update; a refused acquire is `Locked`.
pub fn contention<C: Client>() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let keys = keys_on_distinct_primaries(&cluster, "ct:", 2);
    let mut o = test_options();
    o.retry_count = Some(500);
    o.retry_delay = Duration::from_millis(5);
    o.retry_jitter = Duration::from_millis(5);
    let clients = [
        C::connect(&[cluster.cluster_url()], o.clone()).expect("connect a"),
        C::connect(&[cluster.cluster_url()], o).expect("connect b"),
    ];
    cluster.cmd_routed("ct:counter", &["SET", "ct:counter", "0"]);
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..2 * THREADS)
        .map(|t| {
            let client = clients[t % 2].clone();
            let (cluster, keys) = (cluster.clone(), keys.clone());
            let (holders, max_holders) = (holders.clone(), max_holders.clone());
            std::thread::spawn(move || {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                for _ in 0..ROUNDS {
                    let lock = client
                        .acquire(&keys, Duration::from_secs(3))
                        .unwrap_or_else(|e| panic!("{}: acquire: {e:#}", C::NAME));
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    let value: u64 = cluster
                        .get_routed("ct:counter")
                        .and_then(|v| v.parse().ok())
                        .expect("a number");
                    let next = (value + 1).to_string();
                    cluster.cmd_routed("ct:counter", &["SET", "ct:counter", next.as_str()]);
                    assert!(lock.is_valid(Instant::now()), "work outlived the lock");
                    holders.fetch_sub(1, Ordering::SeqCst);
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
    assert_eq!(
        cluster.get_routed("ct:counter"),
        Some((2 * THREADS * ROUNDS).to_string()),
        "{}: lost updates: the lock let two writers interleave",
        C::NAME
    );
    let held = clients[0].acquire(&[keys[0].as_str()], TTL).expect("held");
    let err = clients[1]
        .acquire_with(&[keys[1].as_str(), keys[0].as_str()], TTL, twice())
        .expect_err("held by the other client");
    assert!(err.is_locked(), "{}: {err}", C::NAME);
    clients[0].release(&held).expect("release");
}

/// `using` keeps a lock on two shards through four ttl periods (automatic extension; another
/// client refused throughout, always as `Locked`), then releases it.
pub fn using_keeps_lock<C: Client>() {
    let cluster = RedisCluster::start(3, 0);
    let keys = keys_on_distinct_primaries(&cluster, "us:", 2);
    let holder = C::connect(&[cluster.cluster_url()], test_options()).expect("connect");
    let mut once = test_options();
    once.retry_count = Some(0);
    let probe = C::connect(&[cluster.cluster_url()], once).expect("connect probe");
    let done = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let ttl = Duration::from_millis(800);
    let hold = ttl * 4;
    let t0 = Instant::now();
    let held_until = t0 + hold;
    let prober = {
        let (done, refusals, probe, key) = (
            done.clone(),
            refusals.clone(),
            probe.clone(),
            keys[1].clone(),
        );
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            // Bounded: the routine ends after `hold`; 100 probes are well past it.
            for _ in 0..100 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let r = probe.acquire(&[&key], TTL);
                let returned = Instant::now();
                match r {
                    Ok(lock) if returned < held_until => panic!(
                        "probe acquired {lock:?} {:?} into a {hold:?} routine that held it",
                        returned - t0
                    ),
                    Ok(lock) => {
                        let _ = probe.release(&lock);
                    }
                    Err(e) => refusals.lock().expect("lock").push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let resources: Vec<&str> = keys.iter().map(String::as_str).collect();
    let lost = holder.using_for(&resources, ttl, hold).expect("using");
    done.store(true, Ordering::SeqCst);
    prober.join().expect("probe saw the lock free while held");
    assert!(
        !lost,
        "{}: lease lost while the cluster was healthy",
        C::NAME
    );
    let refusals = refusals.lock().expect("lock");
    assert!(refusals.len() >= 10, "probe ran {} times", refusals.len());
    assert!(
        refusals.iter().all(|e| e.starts_with("locked")),
        "{}: probe failures were not all Locked: {refusals:?}",
        C::NAME
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while keys.iter().any(|k| cluster.exists_routed(k)) {
        assert!(
            Instant::now() < deadline,
            "{}: not released after the routine",
            C::NAME
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lock = probe.acquire(&resources, TTL).expect("free after using");
    probe.release(&lock).expect("release");
}

/// An acquire bounded to 200 ms on a lock held on the cluster returns `TimedOut` (last failure
/// `Locked`) within its bound plus one node timeout, after retrying inside it
/// ([`bounded_on_held`](crate::conformance::bounded_on_held)); once released, the lock is free
/// within the bound.
pub fn bounded_acquire<C: Client>() {
    let cluster = RedisCluster::start(3, 0);
    let (waiter, within) = crate::conformance::bounded_on_held::<C>(&[cluster.cluster_url()]);
    let lock = waiter
        .acquire_with(&["bound:a"], TTL, within)
        .expect("free within the bound");
    waiter.release(&lock).expect("release");
}

/// With fencing, each holder's token is larger than the last one's, for a one-key lock and
/// for a lock across shards (the counters live in each key's own slot), across two clients.
pub fn fenced<C: Client>() {
    let cluster = RedisCluster::start(3, 0);
    let mut o = test_options();
    o.fencing = true;
    let clients = [
        C::connect(&[cluster.cluster_url()], o.clone()).expect("connect a"),
        C::connect(&[cluster.cluster_url()], o).expect("connect b"),
    ];
    let multi = keys_on_distinct_primaries(&cluster, "fence:", 3);
    let multi: Vec<&str> = multi.iter().map(String::as_str).collect();
    for resources in [&["fence:one"][..], &multi[..]] {
        let mut last = 0;
        for round in 0..6 {
            let client = &clients[round % 2];
            let lock = client.acquire(resources, TTL).expect("fenced acquire");
            let token = lock
                .fencing_token()
                .unwrap_or_else(|| panic!("{}: a fenced lock without a token", C::NAME));
            assert!(
                token > last,
                "{}: {resources:?} round {round}: token {token} after {last}",
                C::NAME
            );
            last = token;
            client.release(&lock).expect("release");
        }
    }
}

/// A release wakes a waiter of another client well under the retry delay, on a cluster node:
/// with a 2 s retry delay, the waiter holds the lock within 200 ms of the holder's release,
/// over `protocol` (RESP3: the announcement, published on the key's shard, reaches the seed
/// connection; RESP2: a subscriber connection to the seed).
pub fn release_wakes_waiter<C: Client>(protocol: Protocol) {
    let cluster = RedisCluster::start(3, 0);
    let mut o = options(protocol);
    o.retry_delay = Duration::from_secs(2);
    o.retry_jitter = Duration::ZERO;
    o.retry_count = Some(20);
    // A key whose shard is not the seed's: the announcement must cross the cluster bus.
    let key = keys_on_distinct_primaries(&cluster, "wake:", 3)
        .into_iter()
        .find(|k| cluster.primary_of_slot(cluster.slot_of(k)) != 0)
        .expect("a key off the first seed");
    let what = format!("a 3-primary cluster, {protocol:?}");
    crate::conformance::release_wakes_waiter_at::<C>(&[cluster.cluster_url()], o, &key, &what);
}

/// Instantiates the cluster suite ([`cluster_suite`](mod@crate::cluster_suite) and
/// [`cluster_changes`](crate::cluster_changes)) for one adapter's [`Client`].
#[macro_export]
macro_rules! cluster_suite {
    ($client:ty) => {
        use $crate::cluster_changes;
        use $crate::cluster_suite as cluster;
        use $crate::conformance::Protocol as ClusterProtocol;
        #[test]
        fn cluster_round_trip_resp2() {
            cluster::round_trip::<$client>(ClusterProtocol::Resp2)
        }
        #[test]
        fn cluster_round_trip_resp3() {
            cluster::round_trip::<$client>(ClusterProtocol::Resp3)
        }
        #[test]
        fn cluster_locks_across_slots() {
            cluster::locks_across_slots::<$client>()
        }
        #[test]
        fn cluster_contention() {
            cluster::contention::<$client>()
        }
        #[test]
        fn cluster_using_keeps_lock() {
            cluster::using_keeps_lock::<$client>()
        }
        #[test]
        fn cluster_bounded_acquire() {
            cluster::bounded_acquire::<$client>()
        }
        #[test]
        fn cluster_fenced() {
            cluster::fenced::<$client>()
        }
        #[test]
        fn cluster_release_wakes_waiter_resp2() {
            cluster::release_wakes_waiter::<$client>(ClusterProtocol::Resp2)
        }
        #[test]
        fn cluster_release_wakes_waiter_resp3() {
            cluster::release_wakes_waiter::<$client>(ClusterProtocol::Resp3)
        }
        #[test]
        fn cluster_slot_migration() {
            cluster_changes::slot_migration::<$client>()
        }
        #[test]
        fn cluster_contention_during_migration() {
            cluster_changes::contention_during_migration::<$client>()
        }
        #[test]
        fn cluster_failover_keeps_acknowledged_lock() {
            cluster_changes::failover_keeps_acknowledged_lock::<$client>(1)
        }
        #[test]
        fn cluster_failover_of_the_seed_keeps_acknowledged_lock() {
            cluster_changes::failover_keeps_acknowledged_lock::<$client>(0)
        }
        #[test]
        fn cluster_replica_ack_unmet_names_wait() {
            cluster_changes::replica_ack_unmet_names_wait::<$client>()
        }
        #[test]
        fn cluster_url_on_standalone_server() {
            cluster_changes::cluster_url_on_standalone_server::<$client>()
        }
    };
}
