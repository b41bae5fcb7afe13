//! What the `metrics` feature records, checked on each adapter against live servers: one run
//! through every recorded case (an acquire, a refusal, a timeout, a contended wait, an
//! extension, releases awaited and detached, a lease lost at its cap, unreachable nodes of
//! three kinds), then the recorder's contents, name by name and label by label.
//!
//! The recorder is global (one per process), so [`metrics_suite!`](crate::metrics_suite)
//! stamps out one `#[test]` and each adapter gets a test binary of its own.

use crate::conformance::{test_options, Client};
use crate::fake::FakeServer;
use crate::recorder::Recorded;
use metrics::Unit;
use redlock_async::metrics::{
    ACQUIRE_SECONDS, ACQUISITIONS_TOTAL, CONTENDED_WAIT_SECONDS, EXTENSIONS_TOTAL,
    LEASES_LOST_TOTAL, NODE_ERRORS_TOTAL, REFUSALS_TOTAL, RELEASES_TOTAL, TIMEOUTS_TOTAL,
};
use redlock_async::{AcquireOptions, HoldLimits, Retry};
use redlock_harness::Cluster;
use std::net::TcpListener;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(10);

/// Retries `delay` apart, as many as fit in `wait`.
fn bounded(wait: Duration, delay: Duration) -> AcquireOptions {
    AcquireOptions::new().wait(wait).retry(Retry {
        count: None,
        delay,
        jitter: Duration::from_millis(5),
    })
}

/// A loopback port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Polls `seen` every 10 ms for up to `within`; whether it became true.
fn eventually(within: Duration, mut seen: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if seen() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs every recorded case on adapter `C` and checks what the recorder holds.
pub fn recorded<C: Client>() {
    let store = Recorded::install();
    let cluster = Cluster::start(1);
    let options = test_options();
    let c = C::connect(&cluster.urls(), options.clone()).expect("connect");
    let mut twice = options.clone();
    twice.retry_count = Some(1);
    let other = C::connect(&cluster.urls(), twice).expect("connect the contender");

    // Connecting described the metrics, with their units.
    assert_eq!(store.unit(ACQUIRE_SECONDS), Some(Some(Unit::Seconds)));
    assert_eq!(
        store.unit(CONTENDED_WAIT_SECONDS),
        Some(Some(Unit::Seconds))
    );
    assert_eq!(store.unit(ACQUISITIONS_TOTAL), Some(None));
    assert_eq!(store.unit(NODE_ERRORS_TOTAL), Some(None));

    // Acquired, then refused (two attempts, Locked), then timed out (bounded at 200 ms).
    let lock = c.acquire(&["metrics:a"], TTL).expect("acquire");
    let err = other.acquire(&["metrics:a"], TTL).expect_err("held");
    assert!(err.is_locked(), "{}: {err}", C::NAME);
    let bound = Duration::from_millis(200);
    let err = other
        .acquire_with(
            &["metrics:a"],
            TTL,
            bounded(bound, Duration::from_millis(20)),
        )
        .expect_err("held past the bound");
    assert!(err.is_timed_out(), "{}: {err}", C::NAME);
    // Extended, then released.
    let lock = c.extend(&lock, TTL).expect("extend");
    c.release(&lock).expect("release");

    // A contended wait: held for 150 ms and never released, taken by a later attempt.
    let short = Duration::from_millis(150);
    let _left_to_expire = c.acquire(&["metrics:b"], short).expect("acquire briefly");
    let waited = other
        .acquire_with(
            &["metrics:b"],
            TTL,
            bounded(Duration::from_secs(3), Duration::from_millis(20)),
        )
        .expect("taken once the first expired");
    assert!(waited.attempts() > 1, "{}: one attempt", C::NAME);
    other.release(&waited).expect("release");

    // A lease lost at its cap; the hold's release is awaited. A 300 ms hold cap on a 2 s ttl:
    // only the keep-alive can say lost (the lease's own clock would say so near validity's
    // end, racing the keep-alive's timer).
    let seen = c
        .hold_for(
            "metrics:c",
            Duration::from_secs(2),
            HoldLimits::new().max_hold(Duration::from_millis(300)),
            Duration::from_secs(3),
        )
        .expect("hold");
    assert!(
        seen.loss.fired_at.is_some(),
        "{}: not lost at the cap",
        C::NAME
    );
    // A guard dropped in a task: its release is handed to the driver.
    let _released_by_the_guard = c
        .guard_dropped_in_task(&["metrics:d"], TTL)
        .expect("guarded");

    // Nodes that fail: a closed port (connect refused), a server answering garbage (the
    // engine drops the connection), a server killed under a live connection.
    let port = closed_port();
    let mut once = options.clone();
    once.retry_count = Some(0);
    let dead = C::connect(&[format!("redis://127.0.0.1:{port}")], once.clone()).expect("connect");
    let err = dead.acquire(&["metrics:e"], TTL).expect_err("no node");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let fake = FakeServer::garbage();
    let garbage = C::connect(&[fake.url()], once.clone()).expect("connect");
    let err = garbage.acquire(&["metrics:e"], TTL).expect_err("garbage");
    assert!(err.is_unreachable(), "{}: {err}", C::NAME);
    let doomed = Cluster::start(1);
    let killed = C::connect(&doomed.urls(), once).expect("connect");
    let lock = killed.acquire(&["metrics:f"], TTL).expect("acquire");
    assert_eq!(lock.attempts(), 1);
    doomed.kill(0);
    let doomed_addr = format!("127.0.0.1:{}", doomed.port(0));
    let dropped = eventually(Duration::from_secs(5), || {
        store.counter(
            NODE_ERRORS_TOTAL,
            &[("node", &doomed_addr), ("kind", "disconnected")],
        ) >= 1
    });
    assert!(dropped, "{}: the killed node's disconnect", C::NAME);

    // Acquires: a, b twice (held briefly, then after waiting), the hold's c, the guard's d,
    // the killed node's f.
    assert_eq!(store.counter(ACQUISITIONS_TOTAL, &[]), 6, "{}", C::NAME);
    assert_eq!(store.counter(REFUSALS_TOTAL, &[]), 1, "{}", C::NAME);
    assert_eq!(store.counter(TIMEOUTS_TOTAL, &[]), 1, "{}", C::NAME);
    let acquired = store.histogram(ACQUIRE_SECONDS, &[("outcome", "acquired")]);
    assert_eq!(acquired.len(), 6, "{}: {acquired:?}", C::NAME);
    assert!(
        acquired.iter().all(|s| *s > 0.0 && *s < 10.0),
        "{acquired:?}"
    );
    let locked = store.histogram(ACQUIRE_SECONDS, &[("outcome", "locked")]);
    assert_eq!(locked.len(), 1, "{}: {locked:?}", C::NAME);
    let timed_out = store.histogram(ACQUIRE_SECONDS, &[("outcome", "timed_out")]);
    assert_eq!(timed_out.len(), 1, "{}: {timed_out:?}", C::NAME);
    // Within its bound plus one node timeout (and a loaded machine's slack).
    assert!(
        timed_out[0] >= 0.15 && timed_out[0] < 0.2 + 1.0 + 0.5,
        "{}: {timed_out:?}",
        C::NAME
    );
    let unreachable = store.histogram(ACQUIRE_SECONDS, &[("outcome", "unreachable")]);
    assert_eq!(unreachable.len(), 2, "{}: {unreachable:?}", C::NAME);
    let contended = store.histogram(CONTENDED_WAIT_SECONDS, &[]);
    assert_eq!(contended.len(), 1, "{}: {contended:?}", C::NAME);
    // It waited for the 150 ms lock to run out (minus the moments between the two calls).
    assert!(
        contended[0] > 0.05 && contended[0] < 3.5,
        "{}: {contended:?}",
        C::NAME
    );

    assert_eq!(
        store.counter(EXTENSIONS_TOTAL, &[("outcome", "extended")]),
        1,
        "{}",
        C::NAME
    );
    // Awaited: a, b, and the hold's release.
    assert_eq!(
        store.counter(RELEASES_TOTAL, &[("outcome", "released")]),
        3,
        "{}",
        C::NAME
    );
    assert_eq!(
        store.counter(RELEASES_TOTAL, &[("outcome", "detached")]),
        1,
        "{}",
        C::NAME
    );
    assert_eq!(
        store.counter(LEASES_LOST_TOTAL, &[("reason", "cap")]),
        1,
        "{}",
        C::NAME
    );
    assert_eq!(
        store.counters_named(LEASES_LOST_TOTAL).len(),
        1,
        "{}: a lease lost for another reason: {:?}",
        C::NAME,
        store.counters_named(LEASES_LOST_TOTAL)
    );

    let refused = format!("127.0.0.1:{port}");
    assert!(
        store.counter(
            NODE_ERRORS_TOTAL,
            &[("node", &refused), ("kind", "connect_failed")]
        ) >= 1,
        "{}: {:?}",
        C::NAME,
        store.counters_named(NODE_ERRORS_TOTAL)
    );
    let fake_addr = fake.url().trim_start_matches("redis://").to_string();
    assert!(
        store.counter(
            NODE_ERRORS_TOTAL,
            &[("node", &fake_addr), ("kind", "bad_reply")]
        ) >= 1,
        "{}: {:?}",
        C::NAME,
        store.counters_named(NODE_ERRORS_TOTAL)
    );
    // The healthy node never failed.
    let healthy = format!("127.0.0.1:{}", cluster.port(0));
    let errors = store.counters_named(NODE_ERRORS_TOTAL);
    assert!(
        errors
            .iter()
            .all(|(labels, _)| labels.get("node") != Some(&healthy) && labels.len() == 2),
        "{}: {errors:?}",
        C::NAME
    );
}

/// Stamps out the metrics `#[test]` for one [`Client`] type; use it alone in its test binary
/// (the recorder it installs is the process's one).
#[macro_export]
macro_rules! metrics_suite {
    ($client:ty) => {
        #[test]
        fn metrics_recorded() {
            $crate::metrics::recorded::<$client>()
        }
    };
}
