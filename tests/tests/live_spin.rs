//! The driver's spin (`Options::spin_before_park`) against a real redis-server: while a lone
//! operation waits for its reply, the driver asks its runtime to poll it again rather than
//! park; with the spin off it never does.

use redlock_async::{BoxFuture, Options, Runtime};
use redlock_harness::Cluster;
use redlock_tests::conformance::test_options;
use redlock_tokio::{Tokio, TokioConn};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

/// tokio, counting the driver's spins.
#[derive(Clone, Default)]
struct Counting {
    spins: Arc<AtomicUsize>,
}

impl Runtime for Counting {
    type Conn = TokioConn;

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<TokioConn>> {
        Tokio.connect(host, port)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Tokio.sleep_until(deadline)
    }

    fn spawn(&self, task: BoxFuture<()>) {
        Tokio.spawn(task)
    }

    fn yield_to_io(&self, cx: &mut Context<'_>) {
        self.spins.fetch_add(1, Ordering::Relaxed);
        Tokio.yield_to_io(cx)
    }
}

/// Spins counted over 20 acquire-and-release rounds of one caller with `spin`.
fn spins_with(urls: &[String], spin: Duration) -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let counting = Counting::default();
        let mut options: Options = test_options();
        options.spin_before_park = spin;
        let client = redlock_async::Redlock::connect_with(counting.clone(), urls, options)
            .await
            .expect("connect");
        let before = counting.spins.load(Ordering::Relaxed);
        for i in 0..20 {
            let lock = client
                .acquire([format!("spin:{i}")], Duration::from_secs(10))
                .await
                .expect("acquire");
            client.release(&lock).await.expect("release");
        }
        counting.spins.load(Ordering::Relaxed) - before
    })
}

#[test]
fn the_driver_spins_for_a_lone_operation_only_when_asked() {
    let cluster = Cluster::start(1);
    let urls = cluster.urls();
    // Long enough that every round trip of a loaded CI machine falls inside it.
    let spinning = spins_with(&urls, Duration::from_millis(50));
    assert!(
        spinning >= 40,
        "one spin at least per round trip (40), counted {spinning}"
    );
    assert_eq!(spins_with(&urls, Duration::ZERO), 0, "spin off: never");
}
