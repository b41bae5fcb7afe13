//! A cluster node whose cluster changes underneath the locks: a slot migrated while locks are
//! taken, extended and released (`ASK` during the migration, `MOVED` after it), a primary
//! killed and its replica promoted with replica acknowledgement on, replica acknowledgement
//! that cannot be met, and a `redis+cluster://` URL that names a standalone server.

use crate::cluster_suite::{keys_on_distinct_primaries, pttl_routed, twice, TTL};
use crate::conformance::{test_options, Client};
use redlock_async::{Error, Lock, Options, ReplicaAck};
use redlock_harness::{Cluster, RedisCluster, Reply};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many times [`retrying`] calls an operation at most.
const TRIES: usize = 20;

/// Calls `f` until it succeeds, at most [`TRIES`] times 100 ms apart while its error is
/// neither `Locked` nor `NotHeld` (a client re-learning the cluster may meet a moved shard or a
/// connection still reconnecting once); then panics naming `what` and every error seen.
fn retrying<C: Client, T>(what: &str, mut f: impl FnMut() -> Result<T, Error>) -> T {
    let mut seen = Vec::new();
    for _ in 0..TRIES {
        match f() {
            Ok(v) => return v,
            Err(e) if e.is_locked() || matches!(e, Error::NotHeld { .. }) => {
                panic!("{}: {what}: {e:#}\nafter {seen:?}", C::NAME)
            }
            Err(e) => seen.push(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{}: {what}: failed {TRIES} times: {seen:#?}", C::NAME)
}

/// Whether node `i` answers a `GET` of `key` with a redirect (it does not serve the key: during
/// a migration the source answers `ASK` for keys it no longer has).
fn redirects(cluster: &RedisCluster, i: usize, key: &str) -> bool {
    matches!(cluster.cmd(i, &["GET", key]),
        Reply::Error(e) if e.starts_with("ASK ") || e.starts_with("MOVED "))
}

/// Asserts `key` holds `lock`'s token where the cluster routes it, and is not on node
/// `not_on` (the migration's source, which must redirect for it).
fn held_on_target(cluster: &RedisCluster, key: &str, lock: &Lock, not_on: usize, name: &str) {
    assert_eq!(
        cluster.get_routed(key).as_deref(),
        Some(lock.token().as_str()),
        "{name}: {key} holds the token"
    );
    assert!(
        redirects(cluster, not_on, key),
        "{name}: {key} is still on the source node {not_on}"
    );
}

/// One slot migrated from its primary to another while locks on its keys come and go:
/// before the keys move, a held lock is extended on the source and another released there,
/// new locks (one key, and two keys of the slot) are taken and released on the target through
/// `ASK`; after `move_keys`, the held lock is extended through `ASK`; after the migration ends,
/// it is extended and released through `MOVED`. A second client is refused (`Locked`) at every
/// stage, and every operation succeeds.
pub fn slot_migration<C: Client>() {
    let cluster = RedisCluster::start(3, 0);
    let mut o = test_options();
    o.retry_count = Some(20);
    let a = C::connect(&[cluster.cluster_url()], o.clone()).expect("connect a");
    let b = C::connect(&[cluster.cluster_url()], o).expect("connect b");
    let refused = |key: &str, stage: &str| {
        let err = b.acquire_with(&[key], TTL, twice()).expect_err("held by a");
        assert!(err.is_locked(), "{}: {stage}: {key}: {err:#}", C::NAME);
    };
    let slot = cluster.slot_of("{mig}held");
    let from = cluster.primary_of_slot(slot);
    let to = (from + 1) % 3;
    let held = retrying::<C, _>("acquire {mig}held", || a.acquire(&["{mig}held"], TTL));
    let gone = retrying::<C, _>("acquire {mig}gone", || a.acquire(&["{mig}gone"], TTL));
    let pair = retrying::<C, _>("acquire two keys", || {
        a.acquire(&["{mig}p1", "{mig}p2"], TTL)
    });

    cluster.begin_migration(slot, to);
    // The source still has these keys: it serves them.
    let held = retrying::<C, _>("extend on the source", || {
        a.extend(&held, Duration::from_secs(30))
    });
    assert!(pttl_routed(&cluster, "{mig}held") > 20_000, "{}", C::NAME);
    refused("{mig}held", "migrating, keys on the source");
    let r = retrying::<C, _>("release on the source", || a.release(&gone));
    assert_eq!(r.confirmed, 1, "{}: release on the source", C::NAME);
    // A new key is not on the source: it answers ASK, and the lock lands on the target.
    let new = retrying::<C, _>("acquire through ASK", || a.acquire(&["{mig}new"], TTL));
    held_on_target(&cluster, "{mig}new", &new, from, C::NAME);
    refused("{mig}new", "migrating, key on the target");
    // Two new keys of the slot: the source sends the script on (ASK), but the target serves a
    // multi-key command only when it has every key (TRYAGAIN until the migration ends).
    let err = a
        .acquire_with(&["{mig}n1", "{mig}n2"], TTL, twice())
        .expect_err("a multi-key lock on new keys of a migrating slot");
    assert!(
        !err.is_locked() && err.to_string().contains("TRYAGAIN"),
        "{}: {err:#}",
        C::NAME
    );
    let pair = retrying::<C, _>("extend two keys on the source", || {
        a.extend(&pair, Duration::from_secs(30))
    });
    refused("{mig}p2", "migrating, two keys on the source");

    let moved = cluster.move_keys(slot);
    assert!(moved >= 1, "{}: {{mig}}held moved", C::NAME);
    held_on_target(&cluster, "{mig}held", &held, from, C::NAME);
    let held = retrying::<C, _>("extend through ASK", || {
        a.extend(&held, Duration::from_secs(40))
    });
    assert!(pttl_routed(&cluster, "{mig}held") > 30_000, "{}", C::NAME);
    refused("{mig}held", "migrating, keys moved");
    held_on_target(&cluster, "{mig}p1", &pair, from, C::NAME);
    let pair = retrying::<C, _>("extend two keys through ASK", || {
        a.extend(&pair, Duration::from_secs(40))
    });
    assert!(pttl_routed(&cluster, "{mig}p1") > 30_000, "{}", C::NAME);
    let r = retrying::<C, _>("release two keys through ASK", || a.release(&pair));
    assert_eq!(r.confirmed, 1, "{}: released the pair", C::NAME);
    assert!(!cluster.exists_routed("{mig}p2"), "{}", C::NAME);
    let r = retrying::<C, _>("release through ASK", || a.release(&new));
    assert_eq!(r.confirmed, 1, "{}: release through ASK", C::NAME);
    assert!(!cluster.exists_routed("{mig}new"), "{}", C::NAME);

    cluster.finish_migration(slot);
    assert_eq!(cluster.primary_of_slot(slot), to);
    // The clients' maps still name the source: it answers MOVED.
    let held = retrying::<C, _>("extend through MOVED", || {
        a.extend(&held, Duration::from_secs(30))
    });
    refused("{mig}held", "migrated");
    let r = retrying::<C, _>("release after the migration", || a.release(&held));
    assert_eq!(r.confirmed, 1, "{}: release after the migration", C::NAME);
    assert!(!cluster.exists_routed("{mig}held"), "{}", C::NAME);
    for keys in [&["{mig}held"][..], &["{mig}new"], &["{mig}n1", "{mig}n2"]] {
        let lock = retrying::<C, _>("acquire after the migration", || b.acquire(keys, TTL));
        b.release(&lock).expect("release");
    }
}

/// Two clients, two threads each, take and release a lock on one key of a slot while that
/// slot migrates (begin, keys moved, end): never two holders at once, every acquire and
/// release succeeds (bounded retries), and the lock changes hands in every stage.
pub fn contention_during_migration<C: Client>() {
    const THREADS: usize = 4;
    const MAX_ROUNDS: usize = 2000;
    let cluster = RedisCluster::start(3, 0);
    let mut o = test_options();
    o.retry_count = Some(500);
    o.retry_delay = Duration::from_millis(5);
    o.retry_jitter = Duration::from_millis(5);
    let clients = [
        C::connect(&[cluster.cluster_url()], o.clone()).expect("connect a"),
        C::connect(&[cluster.cluster_url()], o).expect("connect b"),
    ];
    let slot = cluster.slot_of("{cmig}lock");
    let from = cluster.primary_of_slot(slot);
    let to = (from + 2) % 3;
    let stop = Arc::new(AtomicBool::new(false));
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = clients[t % 2].clone();
            let (stop, holders, max_holders, rounds) = (
                stop.clone(),
                holders.clone(),
                max_holders.clone(),
                rounds.clone(),
            );
            std::thread::spawn(move || {
                for _ in 0..MAX_ROUNDS {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let lock = client
                        .acquire(&["{cmig}lock"], Duration::from_secs(3))
                        .unwrap_or_else(|e| panic!("{}: acquire: {e:#}", C::NAME));
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    assert!(lock.is_valid(Instant::now()), "work outlived the lock");
                    holders.fetch_sub(1, Ordering::SeqCst);
                    client
                        .release(&lock)
                        .unwrap_or_else(|e| panic!("{}: release: {e:#}", C::NAME));
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let mut progress = Vec::new();
    // Each stage runs until the lock changed hands 20 more times (at most 5 s).
    let stage = |progress: &mut Vec<usize>, name: &str| {
        let start = rounds.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while rounds.load(Ordering::SeqCst) < start + 20 {
            assert!(
                Instant::now() < deadline,
                "{}: no progress {name} (at {} rounds)",
                C::NAME,
                rounds.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        progress.push(rounds.load(Ordering::SeqCst));
    };
    stage(&mut progress, "before the migration");
    cluster.begin_migration(slot, to);
    stage(&mut progress, "while migrating");
    cluster.move_keys(slot);
    stage(&mut progress, "after the keys moved");
    cluster.finish_migration(slot);
    stage(&mut progress, "after the migration");
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("worker panicked");
    }
    assert_eq!(
        max_holders.load(Ordering::SeqCst),
        1,
        "{}: two holders at once",
        C::NAME
    );
    assert!(
        !cluster.exists_routed("{cmig}lock"),
        "{}: every lock released ({progress:?} rounds at each stage)",
        C::NAME
    );
}

/// The live suite's options with replica acknowledgement: `replicas` within 100 ms.
fn acknowledged(replicas: u32) -> Options {
    let mut o = test_options();
    o.replica_ack = Some(ReplicaAck {
        replicas,
        timeout: Duration::from_millis(100),
    });
    o
}

/// With replica acknowledgement on (1 replica, 100 ms), on 3 primaries with two replicas each:
/// a lock is acquired, the primary that owns its slot is killed and a replica promoted, and the
/// lock is still held: another client is refused (`Locked`), the holder extends it once it has
/// re-learned the slot map, and releases it; then the other client takes it. (Two replicas so
/// that the promoted one still has a replica to acknowledge the extension: with one, `WAIT 1`
/// cannot be met until the dead primary returns.) `primary` is the one killed: 0 is also the
/// clients' first seed (their slot-map connection is lost with it and dialled to the next
/// seed), 1 is not.
pub fn failover_keeps_acknowledged_lock<C: Client>(primary: usize) {
    let cluster = RedisCluster::start(3, 2);
    let a = C::connect(&[cluster.cluster_url()], acknowledged(1)).expect("connect a");
    let b = C::connect(&[cluster.cluster_url()], acknowledged(1)).expect("connect b");
    let key = keys_on_distinct_primaries(&cluster, "fo:", 3)
        .into_iter()
        .find(|k| cluster.primary_of_slot(cluster.slot_of(k)) == primary)
        .expect("a key on the primary to kill");
    let lock = a
        .acquire(&[&key], Duration::from_secs(30))
        .expect("acquire, acknowledged");
    let replicas = cluster.replicas_of(primary);
    assert_eq!(replicas.len(), 2, "{}: replicas: {replicas:?}", C::NAME);
    cluster.kill(primary);
    let killed = Instant::now();
    // Either replica may win the election: poll both, 20 s in all.
    let promoted = (0..100).find_map(|_| {
        replicas
            .iter()
            .copied()
            .find(|&r| cluster.wait_promoted(r, Duration::from_millis(100)))
    });
    let promoted =
        promoted.unwrap_or_else(|| panic!("{}: neither of {replicas:?} was promoted", C::NAME));
    let took = killed.elapsed();
    assert_eq!(
        cluster.primary_of_slot(cluster.slot_of(&key)),
        promoted,
        "{}: the promoted replica owns the lock's slot (promoted {took:?} after the kill)",
        C::NAME
    );
    assert_eq!(
        cluster.get_routed(&key).as_deref(),
        Some(lock.token().as_str()),
        "{}: the promoted replica has the lock key",
        C::NAME
    );
    // The other client may first meet the dead shard: it re-learns the map and then is refused.
    let mut before = Vec::new();
    let refusal = (0..TRIES).find_map(|_| {
        match b.acquire_with(&[&key], TTL, twice()) {
            Ok(l) => panic!(
                "{}: {l:?} taken after the failover: the lock was lost",
                C::NAME
            ),
            Err(e) if e.is_locked() => return Some(e),
            Err(e) => before.push(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(100));
        None
    });
    assert!(
        refusal.is_some(),
        "{}: never refused after the failover: {before:#?}",
        C::NAME
    );
    let extended = retrying::<C, _>("extend after the failover", || {
        a.extend(&lock, Duration::from_secs(30))
    });
    assert!(
        pttl_routed(&cluster, &key) > 20_000,
        "{}: extended on the promoted replica",
        C::NAME
    );
    let released = retrying::<C, _>("release after the failover", || a.release(&extended));
    assert_eq!(released.confirmed, 1, "{}", C::NAME);
    assert!(!cluster.exists_routed(&key), "{}: released", C::NAME);
    let again = retrying::<C, _>("acquire after the release", || b.acquire(&[&key], TTL));
    b.release(&again).expect("release");
}

/// Replica acknowledgement asking for more replicas than the shards have (2, on a cluster with
/// one replica per primary): the acquire fails within a bounded time, not as `Locked`, with an
/// error naming `WAIT`; what was granted is released.
pub fn replica_ack_unmet_names_wait<C: Client>() {
    let cluster = RedisCluster::start(3, 1);
    let mut o = acknowledged(2);
    o.retry_count = Some(1);
    let c = C::connect(&[cluster.cluster_url()], o).expect("connect");
    let start = Instant::now();
    let err = c
        .acquire(&["ack:a"], TTL)
        .expect_err("two replicas asked, one exists");
    let took = start.elapsed();
    assert!(!err.is_locked(), "{}: {err:#}", C::NAME);
    assert!(
        err.to_string().contains("WAIT"),
        "{}: the error names WAIT: {err:#}",
        C::NAME
    );
    assert!(
        took < Duration::from_secs(3),
        "{}: two attempts took {took:?}",
        C::NAME
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while cluster.exists_routed("ack:a") {
        assert!(
            Instant::now() < deadline,
            "{}: the unacknowledged grant was not released",
            C::NAME
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `redis+cluster://` URL naming a standalone server (cluster support disabled): the acquire
/// fails as unreachable, within a bounded time, with an error naming `CLUSTER SLOTS` and the
/// server's refusal.
pub fn cluster_url_on_standalone_server<C: Client>() {
    let server = Cluster::start(1);
    let mut o = test_options();
    o.retry_count = Some(1);
    let url = format!("redis+cluster://127.0.0.1:{}", server.port(0));
    let c = C::connect(&[url], o.clone()).expect("connect");
    let start = Instant::now();
    let err = c.acquire(&["sa:a"], TTL).expect_err("not a cluster");
    let took = start.elapsed();
    assert!(err.is_unreachable(), "{}: {err:#}", C::NAME);
    let shown = err.to_string();
    assert!(
        shown.contains("CLUSTER SLOTS") && shown.contains("cluster support disabled"),
        "{}: the error names CLUSTER SLOTS and the refusal: {shown}",
        C::NAME
    );
    assert!(
        took < 2 * o.node_timeout + Duration::from_secs(1),
        "{}: took {took:?}",
        C::NAME
    );
    assert_eq!(server.exists_any("sa:a"), 0, "{}", C::NAME);
}
