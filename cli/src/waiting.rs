//! Acquiring for `redlock run`: one attempt at a time, the CLI deciding whether to try again, so
//! it can say why it waits (once, and again when the cause changes) and stop at once on a
//! failure that waiting will not fix.
//!
//! - `--no-wait` (or `--wait 0`): one attempt.
//! - `--wait D`: attempts until `D` has passed (the last one at `D`), whatever the cause; the
//!   last one decides.
//! - neither: waits as long as another holder has the lock (or nodes fail in ways that may
//!   pass), but stops at once on a wrong password, an unknown host, or connections refused on
//!   every node.

use crate::cause::{self, Cause, Kind};
use crate::report;
use crate::signals::{status_for, Signals};
use redlock_cli::duration::show;
use redlock_cli::exit;
use redlock_tokio::{Error, Lock, Redlock};
use std::time::{Duration, Instant, SystemTime};
use tokio::time::sleep_until;

/// Pause between attempts while another holder has the lock …
const HELD_DELAY: Duration = Duration::from_millis(100);
/// … give or take up to this much, so contenders spread apart.
const HELD_JITTER: Duration = Duration::from_millis(50);
/// Pause between attempts while nodes fail (no use hammering them).
const FAILING_DELAY: Duration = Duration::from_millis(250);

/// How long to wait for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// One attempt.
    Once,
    /// Until this instant.
    Until(Instant),
    /// As long as the failures may pass.
    Forever,
}

/// What the acquire loop needs to know.
pub struct Want<'a> {
    pub resource: &'a str,
    pub ttl: Duration,
    pub wait: Wait,
    pub quiet: bool,
    pub conflict_exit_code: u8,
    pub verbose: u8,
}

/// Acquires `want.resource`, or returns the exit status after saying why not (a signal while
/// waiting ends the wait with `128 + N`; the library releases what a cancelled attempt took).
pub async fn acquire(
    redlock: &Redlock,
    want: &Want<'_>,
    signals: &mut Signals,
) -> Result<Lock, u8> {
    let start = Instant::now();
    let mut said: Option<String> = None;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let result = tokio::select! {
            r = redlock.acquire([want.resource], want.ttl) => r,
            (sig, _) = signals.next() => return Err(status_for(sig)),
        };
        let e = match result {
            Ok(lock) => return Ok(lock),
            Err(e) => e,
        };
        let cause = cause::classify(&e);
        let delay = match cause.kind {
            Kind::Held => held_delay(),
            _ => FAILING_DELAY,
        };
        let give_up = match want.wait {
            Wait::Once => true,
            Wait::Until(end) => Instant::now() >= end,
            Wait::Forever => cause.permanent(),
        } || matches!(e, Error::Config(_) | Error::InvalidUrl(_));
        if give_up {
            let tries = match want.wait {
                Wait::Once => String::new(),
                _ if attempts == 1 => " (1 attempt)".to_string(),
                _ => format!(" (waited {}, {attempts} attempts)", show(start.elapsed())),
            };
            let hint = if want.verbose == 0 && cause.kind == Kind::Transient {
                "; -v shows each node"
            } else {
                ""
            };
            eprintln!(
                "redlock: could not acquire {:?}: {}{tries}{hint}",
                want.resource, cause.text
            );
            if want.verbose > 0 {
                report::detail(e.attempts());
            }
            return Err(exit_for(&cause, want.conflict_exit_code));
        }
        if said.as_deref() != Some(cause.text.as_str()) {
            match cause.kind {
                Kind::Held if want.quiet => {}
                Kind::Held => eprintln!(
                    "redlock: waiting for {} (held by another holder)",
                    want.resource
                ),
                _ => eprintln!("redlock: waiting for {}: {}", want.resource, cause.text),
            }
            if want.verbose > 0 && cause.kind != Kind::Held {
                report::detail(e.attempts());
            }
            said = Some(cause.text.clone());
        }
        // The last attempt comes at the deadline, so the whole of `--wait` is waited.
        let next = match want.wait {
            Wait::Until(end) => end.min(Instant::now() + delay),
            _ => Instant::now() + delay,
        };
        tokio::select! {
            _ = sleep_until(next.into()) => {}
            (sig, _) = signals.next() => return Err(status_for(sig)),
        }
    }
}

/// The exit status for a failure to acquire.
fn exit_for(cause: &Cause, conflict: u8) -> u8 {
    match cause.kind {
        Kind::Held => conflict,
        Kind::Config => exit::FAILURE,
        Kind::Refused | Kind::Transient => exit::UNREACHABLE,
    }
}

/// [`HELD_DELAY`] give or take up to [`HELD_JITTER`], from the clock's nanoseconds (spreading
/// contenders needs no more).
fn held_delay() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    let span = (HELD_JITTER.as_nanos() as u64 * 2).max(1);
    HELD_DELAY - HELD_JITTER + Duration::from_nanos(nanos % span)
}
