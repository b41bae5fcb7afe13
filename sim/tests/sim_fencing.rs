//! Deterministic simulation, the fencing checkers under every fault (see the `redlock_sim` docs).

use redlock_sim::{self as sim, Check, Scenario};

#[test]
fn fencing_under_all_faults() {
    let checks = [Check::TokenOrder, Check::StaleWrite, Check::Engine];
    let sweep = sim::check_sweep(
        "sim_fencing",
        "fencing_under_all_faults",
        1000,
        &checks,
        Scenario::fencing,
    );
    // The nodes claim a mix of servers (old Redis, Redis 8.4, Valkey 8.1 / 9.0 / 9.2): the
    // checkers watched native releases and extends too.
    if sweep.ran >= 100 {
        let st = &sweep.stats;
        assert!(st.native_deletes > 0 && st.native_sets > 0, "{st:?}");
    }
}
