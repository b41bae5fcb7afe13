//! Deterministic simulation, the liveness checker (see `redlock_tests::sim`).
#![allow(clippy::print_stderr)]

use redlock_tests::sim::{self, Check, Scenario};
use std::time::Instant;

#[test]
fn acquire_succeeds_with_a_quorum_up_and_no_contention() {
    let started = Instant::now();
    let checks = [Check::Liveness, Check::Engine];
    let sweep = sim::sweep(1000, &checks, Scenario::liveness);
    for l in &sweep.log {
        eprintln!("{l}");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "liveness: {} seeds in {secs:.1}s ({:.0}/s): {:?}",
        sweep.ran,
        sweep.ran as f64 / secs,
        sweep.stats
    );
    if let Some((seed, what)) = sweep.failure {
        panic!(
            "{}",
            sim::replay_message(
                "sim_liveness",
                "acquire_succeeds_with_a_quorum_up_and_no_contention",
                seed,
                &what
            )
        );
    }
}
