//! `redlock run`: `flock(1)` across machines.
//!
//! Acquire (retrying until `--wait` runs out), spawn the command, extend the lock while it runs,
//! release it when the command exits, and exit with the command's status. When the lock is lost
//! mid-run the command gets SIGTERM, then SIGKILL after `--kill-after`, and `redlock` exits with
//! [`exit::LOST`].

use crate::{report, NodeArgs};
use clap::Args;
use redlock_cli::duration::{self, parse as parse_duration};
use redlock_cli::exit;
use redlock_cli::local::send_signal;
use redlock_tokio::{Error, Lock, Options, Redlock};
use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{sleep_until, timeout, timeout_at};

/// Pause between acquire attempts while waiting (± half of it, at random).
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// How long the final release may take before `redlock` gives up on it (the keys expire anyway).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between extension attempts after one failed while validity remains.
const EXTEND_RETRY: Duration = Duration::from_millis(100);

/// The environment variable holding the resource name, for the command.
pub const ENV_RESOURCE: &str = "REDLOCK_RESOURCE";
/// The environment variable holding the fencing token (with `--fencing`), for the command.
pub const ENV_FENCING_TOKEN: &str = "REDLOCK_FENCING_TOKEN";

/// Arguments of `redlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    nodes: NodeArgs,
    /// How long the lock lives on the nodes without an extension; while the command runs it is
    /// extended each time half of it is left. A crashed holder blocks others for at most this.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "D")]
    ttl: Duration,
    /// Wait at most D for the lock (default: wait until it is acquired).
    #[arg(short, long, value_parser = parse_duration, value_name = "D", conflicts_with = "no_wait")]
    wait: Option<Duration>,
    /// Fail at once (one attempt) if the lock is held.
    #[arg(short, long)]
    no_wait: bool,
    /// Take a fencing token with the lock and pass it to the command as REDLOCK_FENCING_TOKEN
    /// (tokens of successive holders strictly increase).
    #[arg(long)]
    fencing: bool,
    /// After SIGTERM on a lost lock, wait this long for the command before SIGKILL.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "D")]
    kill_after: Duration,
    /// Exit status when the lock could not be acquired because it stayed held.
    #[arg(short = 'E', long, default_value_t = exit::CONFLICT, value_name = "N")]
    conflict_exit_code: u8,
    /// Exit status when the lock was lost while the command ran.
    #[arg(long, default_value_t = exit::LOST, value_name = "N")]
    lost_exit_code: u8,
    /// The resource to lock (its Redis key is --key-prefix followed by this name). The command
    /// gets it as REDLOCK_RESOURCE.
    #[arg(value_name = "RESOURCE")]
    resource: String,
    /// The command to run while holding the lock, and its arguments (after `--`).
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

/// Runs `redlock run`; returns the exit status.
pub fn main(args: RunArgs, verbose: u8) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redlock: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    rt.block_on(run(args, verbose))
}

/// SIGTERM, SIGHUP and SIGINT, caught so the lock is always released.
struct Signals {
    term: Signal,
    hup: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal: its number and its name as `kill(1)` takes it.
    async fn next(&mut self) -> (u8, &'static str) {
        tokio::select! {
            _ = self.term.recv() => (15, "-TERM"),
            _ = self.hup.recv() => (1, "-HUP"),
            _ = self.int.recv() => (2, "-INT"),
        }
    }
}

async fn run(args: RunArgs, verbose: u8) -> u8 {
    let mut options = Options::default();
    options.retry_count = Some(0); // `acquire` below does the waiting, with a deadline
    options.key_prefix = args.nodes.key_prefix.clone();
    options.fencing = args.fencing;
    let redlock = match Redlock::connect(args.nodes.urls(), options).await {
        Ok(r) => r,
        Err(e) => {
            report::error("bad configuration", &e, verbose);
            return exit::FAILURE;
        }
    };
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("redlock: cannot install signal handlers: {e}");
            return exit::FAILURE;
        }
    };
    let lock = match acquire(&redlock, &args, verbose, &mut signals).await {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    if verbose > 0 {
        let token = lock
            .fencing_token()
            .map(|t| format!(", fencing token {t}"))
            .unwrap_or_default();
        eprintln!(
            "redlock: acquired {:?} (valid for {}{token})",
            args.resource,
            duration::show(lock.remaining(Instant::now()))
        );
    }

    let mut cmd = tokio::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env(ENV_RESOURCE, &args.resource);
    match lock.fencing_token() {
        Some(t) => cmd.env(ENV_FENCING_TOKEN, t.to_string()),
        None => cmd.env_remove(ENV_FENCING_TOKEN),
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            release(&redlock, &lock, verbose).await;
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                exit::NOT_FOUND
            } else {
                exit::CANNOT_EXECUTE
            };
            eprintln!("redlock: cannot run {:?}: {e}", args.command[0]);
            return code;
        }
    };
    let pid = child.id().unwrap_or(0);

    let held = RefCell::new(lock);
    let keeper = keep(&redlock, &held, args.ttl, verbose);
    tokio::pin!(keeper);
    let lost = loop {
        tokio::select! {
            status = child.wait() => {
                let code = match status {
                    Ok(status) => status_code(status),
                    Err(e) => {
                        eprintln!("redlock: lost track of the command: {e}");
                        exit::FAILURE
                    }
                };
                let last = held.borrow().clone();
                release(&redlock, &last, verbose).await;
                return code;
            }
            why = &mut keeper => break why,
            (_, name) = signals.next() => {
                // Ctrl-C reaches the command through the terminal already; forward the rest.
                // The lock is released once the command exits.
                if name != "-INT" {
                    let _ = send_signal(name, pid);
                }
            }
        }
    };

    eprintln!(
        "redlock: lost the lock on {:?}: {lost}; sending SIGTERM to the command (pid {pid})",
        args.resource
    );
    let _ = send_signal("-TERM", pid);
    if timeout(args.kill_after, child.wait()).await.is_err() {
        eprintln!(
            "redlock: the command did not exit within {} of SIGTERM; sending SIGKILL",
            duration::show(args.kill_after)
        );
        let _ = child.kill().await;
    }
    // Best effort: the keys may still hold our token on some nodes.
    let last = held.borrow().clone();
    release(&redlock, &last, verbose).await;
    args.lost_exit_code
}

/// Acquires the lock, retrying until the deadline; `Err(exit status)` when it cannot.
async fn acquire(
    redlock: &Redlock,
    args: &RunArgs,
    verbose: u8,
    signals: &mut Signals,
) -> Result<Lock, u8> {
    let start = Instant::now();
    let deadline = if args.no_wait {
        Some(start)
    } else {
        args.wait.map(|w| start + w)
    };
    let context = format!("could not acquire {:?}", args.resource);
    let mut said_waiting = false;
    let mut n = 0u64;
    loop {
        let result = tokio::select! {
            r = redlock.acquire([&args.resource], args.ttl) => r,
            (sig, _) = signals.next() => return Err(128 + sig),
        };
        let e = match result {
            Ok(lock) => return Ok(lock),
            Err(e @ Error::Config(_)) => {
                report::error(&format!("cannot lock {:?}", args.resource), &e, verbose);
                return Err(exit::FAILURE);
            }
            Err(e) => e,
        };
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let code = if e.is_locked() {
                args.conflict_exit_code
            } else {
                exit::UNREACHABLE
            };
            let tries = match n + 1 {
                1 => "1 attempt".to_string(),
                k => format!("{k} attempts in {}", duration::show(now - start)),
            };
            report::error_with(&context, &e, &report::summary_with(&e, &tries), verbose);
            return Err(code);
        }
        if !said_waiting && (verbose > 0 || !e.is_locked()) {
            eprintln!(
                "redlock: waiting for {:?}: {}",
                args.resource,
                report::summary(&e)
            );
            said_waiting = true;
        }
        n += 1;
        let jitter = RandomState::new().hash_one(n) % (RETRY_DELAY.as_millis() as u64 + 1);
        let mut until = now + RETRY_DELAY / 2 + Duration::from_millis(jitter);
        if let Some(d) = deadline {
            until = until.min(d);
        }
        tokio::select! {
            _ = sleep_until(until.into()) => {}
            (sig, _) = signals.next() => return Err(128 + sig),
        }
    }
}

/// Extends the lock in `held` each time half the ttl is left, until it is lost; returns why.
async fn keep(redlock: &Redlock, held: &RefCell<Lock>, ttl: Duration, verbose: u8) -> String {
    loop {
        let lock = held.borrow().clone();
        let valid_until = lock.valid_until();
        let now = Instant::now();
        let extend_at = valid_until.checked_sub(ttl / 2).unwrap_or(now).max(now);
        sleep_until(extend_at.into()).await;
        loop {
            match timeout_at(valid_until.into(), redlock.extend(&lock, ttl)).await {
                Ok(Ok(new)) => {
                    if verbose > 1 {
                        eprintln!(
                            "redlock: extended (valid for {})",
                            duration::show(new.remaining(Instant::now()))
                        );
                    }
                    *held.borrow_mut() = new;
                    break;
                }
                Ok(Err(e @ (Error::NotHeld { .. } | Error::Expired { .. }))) => {
                    if verbose > 0 {
                        report::detail(e.attempts());
                    }
                    return format!("extension failed: {}", report::summary(&e));
                }
                Ok(Err(e)) => {
                    if verbose > 0 {
                        eprintln!(
                            "redlock: extension failed ({}); retrying while {} of validity remain",
                            report::summary(&e),
                            duration::show(valid_until.saturating_duration_since(Instant::now()))
                        );
                        report::detail(e.attempts());
                    }
                    let retry_at = (Instant::now() + EXTEND_RETRY).min(valid_until);
                    sleep_until(retry_at.into()).await;
                    if Instant::now() >= valid_until {
                        return format!(
                            "its validity ran out while extensions failed ({})",
                            report::summary(&e)
                        );
                    }
                }
                Err(_) => {
                    return "its validity ran out before a quorum confirmed an extension".into()
                }
            }
        }
    }
}

/// Releases `lock` (best effort, bounded by [`RELEASE_TIMEOUT`]).
async fn release(redlock: &Redlock, lock: &Lock, verbose: u8) {
    match timeout(RELEASE_TIMEOUT, redlock.release(lock)).await {
        Ok(Ok(r)) => {
            if verbose > 0 {
                eprintln!(
                    "redlock: released (confirmed by {} of {} node(s))",
                    r.confirmed,
                    r.attempt.nodes.len()
                );
            }
        }
        Ok(Err(e)) => {
            if verbose > 0 {
                report::error("release failed (the keys expire with the ttl)", &e, verbose);
            }
        }
        Err(_) => {
            if verbose > 0 {
                eprintln!("redlock: release timed out (the keys expire with the ttl)");
            }
        }
    }
}

/// The status a shell would report: the exit code, or 128 + the signal number.
fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => exit::FAILURE,
    }
}
