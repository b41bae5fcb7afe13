//! Deterministic simulation, the liveness checker (see the `redlock_sim` crate docs).

use redlock_sim::{self as sim, Check, Scenario};

#[test]
fn acquire_succeeds_with_a_quorum_up_and_no_contention() {
    let checks = [Check::Liveness, Check::Engine];
    let sweep = sim::check_sweep(
        "sim_liveness",
        "acquire_succeeds_with_a_quorum_up_and_no_contention",
        1000,
        &checks,
        Scenario::liveness,
    );
    // The nodes claim a mix of servers (old Redis, Redis 8.4, Valkey 8.1 / 9.0 / 9.2): the
    // checkers watched native releases and extends too.
    if sweep.ran >= 100 {
        let st = &sweep.stats;
        assert!(st.native_deletes > 0 && st.native_sets > 0, "{st:?}");
    }
}
