//! Deterministic simulation, the safety checkers (see `redlock_tests::sim`).
#![allow(clippy::print_stderr)]

use redlock_tests::sim::{self, Check, Scenario};
use std::time::Instant;

#[test]
fn safety_when_assumptions_hold() {
    let started = Instant::now();
    let checks = [
        Check::Exclusion,
        Check::TokenOrder,
        Check::StaleWrite,
        Check::Engine,
    ];
    let sweep = sim::sweep(300, &checks, Scenario::safety);
    for l in &sweep.log {
        eprintln!("{l}");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "safety: {} seeds in {secs:.1}s ({:.0}/s): {:?}",
        sweep.ran,
        sweep.ran as f64 / secs,
        sweep.stats
    );
    if let Some((seed, what)) = sweep.failure {
        panic!(
            "{}",
            sim::replay_message("sim_safety", "safety_when_assumptions_hold", seed, &what)
        );
    }
}
