//! `Options::spin` against a live server: with a budget, the driver spins instead of parking
//! while a lone operation waits for its replies; without one it never does. Counted by the
//! driver itself (`redlock_async::driver_spins`, this process's total), not timed: each window
//! opens at the write, so a wait spins whether or not the reply comes within it.
//!
//! Only one test here runs clients, so no other client spins meanwhile.

use redlock_async::{driver_spins, Options, OptionsExt as _, MAX_SPIN};
use redlock_harness::Cluster;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(20);
const OPS: usize = 10;

/// Runs `OPS` acquire+release pairs on a blocking and a smol client with `spin`; returns how
/// many times their drivers spun.
fn spins_with(cluster: &Cluster, spin: Duration) -> u64 {
    let options = Options::default().spin(spin);
    let before = driver_spins();
    let blocking =
        redlock_blocking::Redlock::connect(cluster.urls(), options.clone()).expect("connect");
    for i in 0..OPS {
        let lock = blocking
            .acquire([format!("spin:blocking:{i}")], TTL)
            .expect("acquire");
        blocking.release(&lock).expect("release");
    }
    drop(blocking);
    smol::block_on(async {
        let client = redlock_smol::Redlock::connect(cluster.urls(), options)
            .await
            .expect("connect");
        for i in 0..OPS {
            let lock = client
                .acquire([format!("spin:smol:{i}")], TTL)
                .await
                .expect("acquire");
            client.release(&lock).await.expect("release");
        }
    });
    driver_spins() - before
}

#[test]
fn the_driver_spins_only_with_a_budget() {
    let cluster = Cluster::start(1);
    assert_eq!(
        spins_with(&cluster, Duration::ZERO),
        0,
        "no budget, no spin"
    );
    // Both clients' lone operations wait for replies after every write.
    assert!(
        spins_with(&cluster, MAX_SPIN) >= 2 * OPS as u64,
        "every write for a lone operation opens a spin"
    );
}

#[test]
fn a_spin_beyond_the_limit_is_refused() {
    let options = Options::default().spin(MAX_SPIN + Duration::from_micros(1));
    let err = options.validate().expect_err("over the limit");
    assert!(err.to_string().contains("spin"), "{err}");
}
