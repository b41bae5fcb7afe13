//! The many-held-leases case (`--mode held`): `--leases` locks on one client, each kept alive
//! by [`Redlock::hold`](redlock_async::Redlock::hold) with ttl `--ttl-ms` for `--duration`.
//! What it answers: does holding many leases at once lose any, and what does it cost the client
//! in CPU and memory while they are only being kept alive.

use crate::row::Measured;
use crate::{cpu, rss};
use redlock_async::{Redlock, Runtime};
use redlock_core::Options;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How often the case looks at every lease's deadline to count extensions. An extension every
/// `ttl - 500 ms` (9.5 s at the default ttl) is never missed at this pace.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The case's own figures, in its JSON line (`"held":{…}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeldFigures {
    /// Leases held at once.
    pub leases: u64,
    /// Leases lost while held (must be 0).
    pub lost: u64,
    /// Extensions seen over the hold (each lease's deadline moving later).
    pub extends: u64,
    /// `extends` ÷ the hold's length.
    pub extends_per_s: f64,
    /// How long the leases were held, seconds (after the last was acquired).
    pub hold_s: f64,
    /// The client process's CPU time over the hold ÷ its length, in percent of one core.
    pub cpu_pct: f64,
    /// Resident memory at the end of the hold minus before the first acquire, MiB.
    pub rss_growth_mib: f64,
    /// The same growth ÷ `leases`, bytes.
    pub bytes_per_lease: f64,
}

/// Connects to `urls`, acquires `leases` locks (fresh resources under `prefix`), holds them
/// for `hold`, counts extensions and losses, then releases them. Returns the figures (the
/// extensions standing in for operations) or why the case could not run.
pub async fn run<R: Runtime + Default>(
    urls: &[String],
    leases: usize,
    hold: Duration,
    ttl: Duration,
    prefix: &str,
) -> Result<(Measured, HeldFigures), String> {
    let rt = R::default();
    let client = Redlock::<R>::connect(urls, Options::default())
        .await
        .map_err(|e| e.to_string())?;
    let rss0 = rss::resident_bytes().unwrap_or(0);
    let mut holds = Vec::with_capacity(leases);
    for i in 0..leases {
        let lock = client
            .acquire([format!("{prefix}:held:{i}")], ttl)
            .await
            .map_err(|e| format!("acquiring lease {i} of {leases} failed: {e}"))?;
        holds.push(client.hold(lock, ttl));
    }
    let mut deadlines: Vec<Instant> = holds.iter().map(|h| h.lease().deadline()).collect();
    let cpu0 = cpu::process_time();
    let t0 = Instant::now();
    let end = t0 + hold;
    let mut extends = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        rt.sleep_until((now + SAMPLE_EVERY).min(end)).await;
        for (h, seen) in holds.iter().zip(deadlines.iter_mut()) {
            let d = h.lease().deadline();
            if d > *seen {
                extends += 1;
                *seen = d;
            }
        }
    }
    let held_for = t0.elapsed();
    let cpu = match (cpu0, cpu::process_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    let rss1 = rss::resident_bytes().unwrap_or(0);
    let lost = holds.iter().filter(|h| h.lease().is_lost()).count() as u64;
    for h in holds {
        let _ = h.release().await;
    }
    let growth = rss1.saturating_sub(rss0) as f64;
    let secs = held_for.as_secs_f64().max(f64::MIN_POSITIVE);
    let figures = HeldFigures {
        leases: leases as u64,
        lost,
        extends,
        extends_per_s: extends as f64 / secs,
        hold_s: secs,
        cpu_pct: cpu.as_secs_f64() / secs * 100.0,
        rss_growth_mib: growth / (1024.0 * 1024.0),
        bytes_per_lease: growth / leases.max(1) as f64,
    };
    let measured = Measured {
        ops: extends,
        errors: lost,
        ops_per_s: figures.extends_per_s,
        cpu_us_per_op: if extends > 0 {
            cpu.as_secs_f64() * 1e6 / extends as f64
        } else {
            0.0
        },
        max_holders: 1,
        ..Measured::default()
    };
    Ok((measured, figures))
}
