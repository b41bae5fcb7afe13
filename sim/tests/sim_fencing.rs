//! Deterministic simulation, the fencing checkers under every fault (see the `redlock_sim` docs).

use redlock_sim::{self as sim, Check, Scenario};

#[test]
fn fencing_under_all_faults() {
    let checks = [Check::TokenOrder, Check::StaleWrite, Check::Engine];
    sim::check_sweep(
        "sim_fencing",
        "fencing_under_all_faults",
        1000,
        &checks,
        Scenario::fencing,
    );
}
