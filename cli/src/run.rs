//! `redlock run`: `flock(1)` across machines.
//!
//! The lock is held with the library's lease ([`Redlock::using`]): it acquires (retrying per the
//! client's options), extends the lock each time half the ttl is left, and releases it when the
//! routine ends. The routine here spawns the command and waits for it; when the lease is lost
//! mid-run the command gets SIGTERM, then SIGKILL after `--kill-after`, and `redlock` exits with
//! [`exit::LOST`].
//!
//! The wait flags map onto the client's retry settings: `--no-wait` is one attempt
//! (`retry_count = Some(0)`); otherwise the client retries without limit (`None`), 100 ms ± 50 ms
//! apart, and `--wait D` stops that at `D`, after which one last single attempt decides (so the
//! exit status says whether the lock was held elsewhere or the nodes did not answer).

use crate::{report, NodeArgs};
use clap::Args;
use redlock_cli::duration::{self, parse as parse_duration};
use redlock_cli::exit;
use redlock_harness::signal as send_signal;
use redlock_tokio::{Error, Lease, Options, Redlock};
use std::cell::Cell;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{sleep_until, timeout};

/// Pause between acquire attempts while waiting (and between extension attempts while validity
/// remains) …
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// … give or take up to this much, at random, so contenders spread apart.
const RETRY_JITTER: Duration = Duration::from_millis(50);

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

/// What the routine has done so far, for the signal handling around it.
#[derive(Debug, Default)]
struct Progress {
    /// The lock was acquired and the routine began: signals now go to the command.
    started: Cell<bool>,
    /// The command's process id, once spawned.
    pid: Cell<Option<u32>>,
}

/// How one [`drive`] ended.
enum Driven {
    /// The routine ran; the exit status it chose.
    Done(u8),
    /// The lock could not be acquired.
    Failed(Error),
    /// A signal arrived before the lock was acquired (its number).
    Interrupted(u8),
    /// `--wait` ran out before the lock was acquired.
    TimedOut,
}

async fn run(args: RunArgs, verbose: u8) -> u8 {
    let once = args.no_wait || args.wait == Some(Duration::ZERO);
    let Some(redlock) = connect(&args, once, verbose).await else {
        return exit::FAILURE;
    };
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("redlock: cannot install signal handlers: {e}");
            return exit::FAILURE;
        }
    };
    let start = Instant::now();
    let deadline = args.wait.filter(|_| !once).map(|w| start + w);
    let progress = Progress::default();
    let mut driven = drive(&redlock, &args, verbose, &progress, &mut signals, deadline).await;
    if let Driven::TimedOut = driven {
        // The client gave up waiting at the deadline; one last attempt says why.
        drop(redlock);
        let Some(last) = connect(&args, true, verbose).await else {
            return exit::FAILURE;
        };
        driven = drive(&last, &args, verbose, &progress, &mut signals, None).await;
    }
    match driven {
        Driven::Done(code) => code,
        Driven::Interrupted(sig) => 128 + sig,
        Driven::Failed(e @ Error::Config(_)) => {
            report::error(&format!("cannot lock {:?}", args.resource), &e, verbose);
            exit::FAILURE
        }
        Driven::Failed(e) => {
            let tries = if deadline.is_some() {
                format!("waited {}", duration::show(start.elapsed()))
            } else {
                "1 attempt".to_string()
            };
            let context = format!("could not acquire {:?}", args.resource);
            report::error_with(&context, &e, &report::summary_with(&e, &tries), verbose);
            if e.is_locked() {
                args.conflict_exit_code
            } else {
                exit::UNREACHABLE
            }
        }
        Driven::TimedOut => exit::FAILURE,
    }
}

/// A client for `args`'s nodes: one attempt per acquire when `once`, otherwise retrying until
/// cancelled. `None` (after saying why) when the configuration is refused.
async fn connect(args: &RunArgs, once: bool, verbose: u8) -> Option<Redlock> {
    let mut options = Options::default();
    options.retry_count = if once { Some(0) } else { None };
    options.retry_delay = RETRY_DELAY;
    options.retry_jitter = RETRY_JITTER;
    // Extend each time half the ttl is left (the lease never waits past half the remainder).
    options.automatic_extension_threshold = args.ttl / 2;
    options.key_prefix = args.nodes.key_prefix.clone();
    options.fencing = args.fencing;
    match Redlock::connect(args.nodes.urls(), options).await {
        Ok(r) => Some(r),
        Err(e) => {
            report::error("bad configuration", &e, verbose);
            None
        }
    }
}

/// Holds the lock with `redlock`'s lease for the length of the command, passing signals on to
/// the command once it runs; before that a signal, or `deadline`, ends the wait (the library
/// releases whatever the cancelled attempt may have taken).
async fn drive(
    redlock: &Redlock,
    args: &RunArgs,
    verbose: u8,
    progress: &Progress,
    signals: &mut Signals,
    deadline: Option<Instant>,
) -> Driven {
    let held = redlock.using([&args.resource], args.ttl, |lease| {
        hold(lease, args, verbose, progress)
    });
    tokio::pin!(held);
    let waited = async {
        match deadline {
            Some(d) => sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(waited);
    let said_waiting = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tokio::pin!(said_waiting);
    let mut told = verbose == 0;
    loop {
        tokio::select! {
            result = &mut held => {
                return match result {
                    Ok(code) => Driven::Done(code),
                    Err(e) => Driven::Failed(e),
                };
            }
            (sig, name) = signals.next() => {
                if !progress.started.get() {
                    return Driven::Interrupted(sig);
                }
                // Ctrl-C reaches the command through the terminal already; forward the rest.
                // The lock is released once the command exits.
                if let (true, Some(pid)) = (name != "-INT", progress.pid.get()) {
                    let _ = send_signal(name, pid);
                }
            }
            _ = &mut waited, if !progress.started.get() => return Driven::TimedOut,
            _ = &mut said_waiting, if !told && !progress.started.get() => {
                told = true;
                eprintln!("redlock: waiting for {:?}", args.resource);
            }
        }
    }
}

/// The routine run under the lease: spawns the command, waits for it, and when the lease is
/// lost terminates it; returns the exit status.
async fn hold(lease: Lease, args: &RunArgs, verbose: u8, progress: &Progress) -> u8 {
    progress.started.set(true);
    if verbose > 0 {
        let token = lease
            .fencing_token()
            .map(|t| format!(", fencing token {t}"))
            .unwrap_or_default();
        eprintln!(
            "redlock: acquired {:?} (valid for {}{token})",
            args.resource,
            duration::show(lease.deadline().saturating_duration_since(Instant::now()))
        );
    }
    let mut cmd = tokio::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env(ENV_RESOURCE, &args.resource);
    match lease.fencing_token() {
        Some(t) => cmd.env(ENV_FENCING_TOKEN, t.to_string()),
        None => cmd.env_remove(ENV_FENCING_TOKEN),
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("redlock: cannot run {:?}: {e}", args.command[0]);
            return if e.kind() == std::io::ErrorKind::NotFound {
                exit::NOT_FOUND
            } else {
                exit::CANNOT_EXECUTE
            };
        }
    };
    let pid = child.id().unwrap_or(0);
    progress.pid.set(child.id());
    tokio::select! {
        status = child.wait() => {
            return match status {
                Ok(status) => status_code(status),
                Err(e) => {
                    eprintln!("redlock: lost track of the command: {e}");
                    exit::FAILURE
                }
            };
        }
        _ = lease.lost() => {}
    }
    let why = if Instant::now() >= lease.deadline() {
        "its validity ran out before a quorum confirmed an extension"
    } else {
        "an extension was refused or failed"
    };
    eprintln!(
        "redlock: lost the lock on {:?}: {why}; sending SIGTERM to the command (pid {pid})",
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
    args.lost_exit_code
}

/// The status a shell would report: the exit code, or 128 + the signal number.
fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => exit::FAILURE,
    }
}
