//! Exploring many seeds: which seeds to run (from the environment), running them on several
//! threads with the smallest failing seed reported whatever the thread count, sweeping a
//! profile, and the failure message that replays a seed.

use crate::report::{Check, Stats};
use crate::scenario::Scenario;
use crate::world::run;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Mutex;

/// Which seeds to run: `SIM_SEED=n` runs exactly seed `n`; otherwise `SIM_SEEDS` seeds (default
/// `default`) from `SIM_SEED_START` (default 0).
pub(crate) fn seeds_from_env(default: u64) -> std::ops::Range<u64> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(seed) = var("SIM_SEED") {
        return seed..seed + 1;
    }
    let start = var("SIM_SEED_START").unwrap_or(0);
    start..start + var("SIM_SEEDS").unwrap_or(default)
}

/// Threads to explore with: `SIM_THREADS`, default the available parallelism.
pub(crate) fn threads_from_env() -> usize {
    std::env::var("SIM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// The result of [`explore`].
#[derive(Debug)]
pub struct Exploration<T> {
    /// How many seeds ran.
    pub ran: u64,
    /// The smallest seed for which `check` returned `Err`, with the error.
    pub failure: Option<(u64, String)>,
    /// The `Ok` values of the seeds that ran, in no particular order (aggregate them with
    /// something commutative).
    pub oks: Vec<T>,
}

/// Runs `check` on every seed in `seeds` over `threads` threads, stopping once the smallest
/// failing seed is known (every smaller seed has passed). Deterministic: the reported failure
/// is the smallest failing seed whatever the thread count.
pub fn explore<T: Send>(
    seeds: std::ops::Range<u64>,
    threads: usize,
    check: impl Fn(u64) -> Result<T, String> + Sync,
) -> Exploration<T> {
    let best = AtomicU64::new(u64::MAX);
    let ran = AtomicU64::new(0);
    let failures: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());
    let oks: Mutex<Vec<T>> = Mutex::new(Vec::new());
    let threads = threads.max(1) as u64;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (best, ran, failures, oks, check, seeds) =
                (&best, &ran, &failures, &oks, &check, seeds.clone());
            s.spawn(move || {
                let mut seed = seeds.start + t;
                while seed < seeds.end && seed < best.load(AtomicOrdering::SeqCst) {
                    ran.fetch_add(1, AtomicOrdering::Relaxed);
                    match check(seed) {
                        Ok(v) => oks.lock().expect("not poisoned").push(v),
                        Err(e) => {
                            best.fetch_min(seed, AtomicOrdering::SeqCst);
                            failures.lock().expect("not poisoned").insert(seed, e);
                        }
                    }
                    seed += threads;
                }
            });
        }
    });
    Exploration {
        ran: ran.into_inner(),
        failure: failures
            .into_inner()
            .expect("not poisoned")
            .into_iter()
            .next(),
        oks: oks.into_inner().expect("not poisoned"),
    }
}

/// The result of [`sweep_seeds`].
#[derive(Debug)]
pub struct Sweep {
    /// How many seeds ran.
    pub ran: u64,
    /// The smallest failing seed and its first violation of the checks asked for.
    pub failure: Option<(u64, String)>,
    /// Counters summed over the passing seeds.
    pub stats: Stats,
    /// Run digests of the passing seeds, XOR-ed (order-independent).
    pub digest: u64,
    /// The log of the run, when exactly one seed ran and `SIM_LOG` is set.
    pub log: Vec<String>,
}

/// Runs the scenario `make(seed)` for every seed of [`seeds_from_env`]`(default)`, on
/// [`threads_from_env`] threads, and reports the smallest seed with a violation of one of
/// `checks` (violations of other checkers are ignored).
pub(crate) fn sweep(
    default: u64,
    checks: &[Check],
    make: impl Fn(u64) -> Scenario + Sync,
) -> Sweep {
    sweep_seeds(seeds_from_env(default), checks, make)
}

/// Runs the scenario `make(seed)` for every seed in `seeds` (whatever `SIM_SEED`/`SIM_SEEDS`
/// say), on `SIM_THREADS` threads (default: the available parallelism), and reports the
/// smallest seed with a violation of one of `checks` (violations of other checkers are
/// ignored). With exactly one seed and `SIM_LOG` set, the run's log comes back in
/// [`Sweep::log`].
pub fn sweep_seeds(
    seeds: std::ops::Range<u64>,
    checks: &[Check],
    make: impl Fn(u64) -> Scenario + Sync,
) -> Sweep {
    let single = seeds.end - seeds.start == 1;
    let log: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let ex = explore(seeds, threads_from_env(), |seed| {
        let mut sc = make(seed);
        sc.log = single && log_from_env();
        let report = run(&sc);
        if sc.log {
            *log.lock().expect("not poisoned") = report.log.clone();
        }
        match report.first(checks) {
            Some(v) => Err(v.to_string()),
            None => Ok((report.stats, report.hash)),
        }
    });
    let mut stats = Stats::default();
    let mut digest = 0;
    for (s, h) in &ex.oks {
        stats.add(s);
        digest ^= h;
    }
    Sweep {
        ran: ex.ran,
        failure: ex.failure,
        stats,
        digest,
        log: log.into_inner().expect("not poisoned"),
    }
}

/// Sweeps `make` as the test `test_binary::test_name`, over the seeds the environment asks for
/// (`SIM_SEED=s` exactly one, else `SIM_SEEDS` seeds, default `default_seeds`, from
/// `SIM_SEED_START`, default 0; see [`sweep_seeds`] for the rest): prints the sweep's log and its
/// seeds per second, and on a violation fails with the seed and the line that replays it.
/// Returns the sweep (every seed passed), for tests that check what it exercised.
#[allow(clippy::print_stderr)] // progress for `--nocapture`, in test support code
pub fn check_sweep(
    test_binary: &str,
    test_name: &str,
    default_seeds: u64,
    checks: &[Check],
    make: impl Fn(u64) -> Scenario + Sync,
) -> Sweep {
    let started = std::time::Instant::now();
    let sweep = sweep(default_seeds, checks, make);
    for l in &sweep.log {
        eprintln!("{l}");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{test_name}: {} seeds in {secs:.1}s ({:.0}/s): {:?}",
        sweep.ran,
        sweep.ran as f64 / secs,
        sweep.stats
    );
    if let Some((seed, what)) = &sweep.failure {
        panic!("{}", replay_message(test_binary, test_name, *seed, what));
    }
    sweep
}

/// Formats a violation for a failing test: the seed, what broke, and the command that replays
/// it (with the run's log when `SIM_LOG=1`).
pub(crate) fn replay_message(test_binary: &str, test_name: &str, seed: u64, what: &str) -> String {
    format!(
        "seed={seed}: {what}\nreplay: SIM_SEED={seed} SIM_LOG=1 cargo test -p redlock-sim --test \
         {test_binary} -- --exact {test_name} --nocapture"
    )
}

/// Whether `SIM_LOG` asks for the run's log (honoured when a single seed runs).
pub(crate) fn log_from_env() -> bool {
    std::env::var("SIM_LOG").is_ok_and(|v| v != "0" && !v.is_empty())
}
