//! The simulator's checkers have teeth: run deliberately broken configurations and assert the
//! simulator finds the violation within a small seed budget; run the same scenarios correctly
//! configured and assert it finds none (so what it found is the breakage, not noise).
//!
//! - Quorum lowered to N/2: 4 nodes, but every client is configured with only 3 of them
//!   (a different one left out per client), so a quorum of its 3 is 2 = N/2 of the real nodes.
//! - Drift ignored: node clocks run 3–6% fast and client clocks 3–6% slow, and the clients
//!   use `drift_factor = 0` (the control uses 0.12, which covers a rate ratio of 1.06/0.94).
//! - Fence write-back skipped: `Options::scripts.fence` replaced by a script that replies 1
//!   without writing the counter (the model runs it as `ScriptKind::Reply(1)`), with wall clocks
//!   up to 1 s apart (in step, the clock floor alone would keep tokens in order).
//! - Clock floor of fencing tokens, with restarts that always lose data: clients' wall clocks
//!   apart by up to 10 × `restart_grace`, or the floor removed (clients pass the
//!   Unix epoch as their wall clock). The control is the same scenario within the floor's
//!   assumptions (`sim_findings`' `sweep_fencing_with_empty_restarts`, and the fencing profile
//!   in `sim_fencing`).
//! - Native commands that ignore their value: nodes claiming Redis 8.4 / Valkey 9.0 whose
//!   `DELEX … IFEQ` / `DELIFEQ` delete whatever the key holds, or nodes claiming Redis 8.4 /
//!   Valkey 8.1 whose `SET … IFEQ` sets it whatever it holds (`Defect`), under contention with
//!   latency spikes the request timeout waits out. The control is the same servers without the
//!   defect.
//!
//! Seeds are fixed (0..budget), whatever `SIM_SEED`/`SIM_SEEDS` say.
#![allow(clippy::print_stderr)]

use redlock_sim::ScriptKind;
use redlock_sim::{self as sim, Check, Rng, Scenario};
use redlock_sim::{Defect, Identity};
use std::time::{Duration, Instant};

const SKIPPED_FENCE: &str = "-- the fence write-back, skipped\nreturn 1\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Contention: clients hammering one resource, short holds, fast retries.
fn contended(seed: u64, nodes: usize, clients: usize) -> Scenario {
    let mut s = Scenario::calm(seed, nodes, clients);
    s.ttl = (ms(40), ms(120));
    s.options.retry_count = Some(20);
    s.options.retry_delay = ms(2);
    s.options.retry_jitter = ms(1);
    s.latency = (Duration::from_micros(50), ms(2));
    s.duration = ms(1500);
    s.think = (ms(1), ms(5));
    s
}

fn half_quorum(seed: u64, broken: bool) -> Scenario {
    let mut s = contended(seed, 4, 3);
    if broken {
        let skip = Rng::new(seed).below(4) as usize;
        s.views = Some(
            (0..s.clients)
                .map(|c| (0..4).filter(|n| *n != (skip + c) % 4).collect())
                .collect(),
        );
    }
    s
}

fn drifting(seed: u64, drift_factor: f64) -> Scenario {
    let mut s = contended(seed, 3, 3);
    s.options.drift_factor = drift_factor;
    s.node_ppm = (30_000, 60_000);
    s.client_ppm = (-60_000, -30_000);
    s
}

fn fenced(seed: u64, skip_write_back: bool) -> Scenario {
    let mut s = contended(seed, 3, 3);
    s.options.fencing = true;
    // Wall clocks apart: with clocks in step the floor alone would keep order here.
    s.wall_offset = Duration::from_secs(1);
    s.pause_after_check = 0.3;
    s.pause = (ms(1), ms(200));
    if skip_write_back {
        s.options.scripts.fence = Some(SKIPPED_FENCE.into());
        s.learn = vec![(SKIPPED_FENCE.into(), ScriptKind::Reply(1))];
    }
    s
}

/// Runs seeds `0..budget` and returns how many it took to find a violation of `check`.
fn finds(name: &str, budget: u64, check: Check, make: impl Fn(u64) -> Scenario + Sync) -> u64 {
    let started = Instant::now();
    let sweep = sim::sweep_seeds(0..budget, &[check], make);
    let (seed, what) = sweep
        .failure
        .unwrap_or_else(|| panic!("{name}: no {check:?} violation in {budget} seeds"));
    eprintln!(
        "{name}: {check:?} found at seed {seed} ({} seed(s) needed, {:.1}s): {what}",
        seed + 1,
        started.elapsed().as_secs_f64()
    );
    seed + 1
}

/// Runs seeds `0..seeds` of the correctly configured scenario: no violation of `checks`.
fn control(name: &str, seeds: u64, checks: &[Check], make: impl Fn(u64) -> Scenario + Sync) {
    let started = Instant::now();
    let sweep = sim::sweep_seeds(0..seeds, checks, make);
    eprintln!(
        "{name} (control): {} seeds clean in {:.1}s, {} locks acquired",
        sweep.ran,
        started.elapsed().as_secs_f64(),
        sweep.stats.acquired
    );
    if let Some((seed, what)) = sweep.failure {
        panic!("{name} (control) seed={seed}: {what}");
    }
    assert!(sweep.stats.acquired > seeds * 10, "too little happened");
}

/// The safety profile (random clients, options and faults, drift within `drift_factor`) on 4
/// nodes, every client configured with 3 of them (each leaving out a different one): its quorum
/// of 3 is 2, which is N/2 of the 4 nodes that actually hold keys.
fn safety_half_quorum(seed: u64) -> Scenario {
    let mut s = Scenario::safety(seed);
    s.nodes = 4;
    s.max_down = 4;
    let skip = Rng::new(seed).below(4) as usize;
    s.views = Some(
        (0..s.clients)
            .map(|c| (0..4).filter(|n| *n != (skip + c) % 4).collect())
            .collect(),
    );
    s
}

#[test]
fn quorum_of_half_the_nodes_breaks_exclusion() {
    finds("quorum N/2", 100, Check::Exclusion, |s| {
        half_quorum(s, true)
    });
    finds(
        "quorum N/2 (safety profile)",
        1000,
        Check::Exclusion,
        safety_half_quorum,
    );
    control("quorum N/2", 50, &[Check::Exclusion], |s| {
        half_quorum(s, false)
    });
}

#[test]
fn ignoring_drift_breaks_exclusion() {
    finds("drift ignored", 100, Check::Exclusion, |s| drifting(s, 0.0));
    // The safety profile's clocks (within its drift_factor), with the factor then ignored.
    finds(
        "drift ignored (safety profile)",
        1000,
        Check::Exclusion,
        |s| {
            let mut s = Scenario::safety(s);
            s.options.drift_factor = 0.0;
            s
        },
    );
    control("drift ignored", 50, &[Check::Exclusion], |s| {
        drifting(s, 0.12)
    });
}

#[test]
fn skipping_the_fence_write_back_breaks_fencing() {
    finds("fence skipped", 100, Check::TokenOrder, |s| fenced(s, true));
    finds("fence skipped", 100, Check::StaleWrite, |s| fenced(s, true));
    for check in [Check::TokenOrder, Check::StaleWrite] {
        finds("fence skipped (fencing profile)", 1000, check, |s| {
            let mut s = Scenario::fencing(s);
            // Counters kept, wall clocks apart: only the write-back can keep order.
            s.keep_data = 1.0;
            s.wall_offset = Duration::from_secs(1);
            s.options.scripts.fence = Some(SKIPPED_FENCE.into());
            s.learn = vec![(SKIPPED_FENCE.into(), ScriptKind::Reply(1))];
            s
        });
    }
    control(
        "fence skipped",
        50,
        &[Check::TokenOrder, Check::StaleWrite],
        |s| fenced(s, false),
    );
}

/// Restarts that always lose data, everything else as the fencing profile's half with empty
/// restarts (`restart_grace` set, wall clocks within half of it unless changed).
fn empty_restarts(seed: u64) -> Scenario {
    let mut s = Scenario::fencing_empty_restarts(seed);
    s.keep_data = 0.0;
    s
}

#[test]
fn a_wall_clock_offset_above_the_grace_breaks_fencing() {
    finds(
        "wall clocks up to 10 graces apart",
        300,
        Check::TokenOrder,
        |s| {
            let mut s = empty_restarts(s);
            s.wall_offset = s.options.restart_grace.expect("set") * 10;
            s
        },
    );
}

#[test]
fn removing_the_clock_floor_breaks_fencing() {
    finds("no floor", 300, Check::TokenOrder, |s| {
        let mut s = empty_restarts(s);
        s.floor = false;
        s
    });
}

/// Contention on three nodes that all claim `server`, with latency spikes the request timeout
/// waits out (so an extend can reach a node after the key it extends expired there and
/// another client took it).
fn native(seed: u64, server: Identity) -> Scenario {
    let mut s = contended(seed, 3, 3);
    s.servers = vec![server; 3];
    s.spike = 0.05;
    s.spike_max = ms(100);
    s.options.node_timeout = ms(250);
    s
}

/// The safety profile's server mix, every node's native commands with `defect`.
fn safety_with(seed: u64, defect: Defect) -> Scenario {
    let mut s = Scenario::safety(seed);
    s.servers = s.servers.iter().map(|i| i.with_defect(defect)).collect();
    s
}

#[test]
fn a_native_delete_ignoring_its_value_breaks_exclusion() {
    let d = Defect::DeleteIgnoresValue;
    for server in [Identity::REDIS_8_4, Identity::VALKEY_9_0] {
        finds(&format!("{server} deletes"), 100, Check::Exclusion, |s| {
            native(s, server.with_defect(d))
        });
        control(&format!("{server} deletes"), 50, &[Check::Exclusion], |s| {
            native(s, server)
        });
    }
    finds("deletes (safety profile)", 1000, Check::Exclusion, |s| {
        safety_with(s, d)
    });
}

#[test]
fn a_native_set_ignoring_its_value_breaks_exclusion() {
    let d = Defect::SetIgnoresValue;
    for server in [Identity::REDIS_8_4, Identity::VALKEY_8_1] {
        finds(&format!("{server} sets"), 100, Check::Exclusion, |s| {
            native(s, server.with_defect(d))
        });
        control(&format!("{server} sets"), 50, &[Check::Exclusion], |s| {
            native(s, server)
        });
    }
    // Not swept over the safety profile: it needs an extend delayed past its key's expiry yet
    // within the request timeout, which that profile makes rare (none in 1000 seeds).
}
