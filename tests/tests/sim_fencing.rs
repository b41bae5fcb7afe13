//! Deterministic simulation, the fencing checkers under every fault (see `redlock_tests::sim`).
#![allow(clippy::print_stderr)]

use redlock_tests::sim::{self, Check, Scenario};
use std::time::Instant;

#[test]
fn fencing_under_all_faults() {
    let started = Instant::now();
    let checks = [Check::TokenOrder, Check::StaleWrite, Check::Engine];
    let sweep = sim::sweep(1000, &checks, Scenario::fencing);
    for l in &sweep.log {
        eprintln!("{l}");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fencing: {} seeds in {secs:.1}s ({:.0}/s): {:?}",
        sweep.ran,
        sweep.ran as f64 / secs,
        sweep.stats
    );
    if let Some((seed, what)) = sweep.failure {
        panic!(
            "{}",
            sim::replay_message("sim_fencing", "fencing_under_all_faults", seed, &what)
        );
    }
}
