//! Deterministic simulation, the liveness checker (see the `redlock_sim` crate docs).

use redlock_sim::{self as sim, Check, Scenario};

#[test]
fn acquire_succeeds_with_a_quorum_up_and_no_contention() {
    let checks = [Check::Liveness, Check::Engine];
    sim::check_sweep(
        "sim_liveness",
        "acquire_succeeds_with_a_quorum_up_and_no_contention",
        1000,
        &checks,
        Scenario::liveness,
    );
}
