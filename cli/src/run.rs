//! `redlock run`: `flock(1)` across machines, with `timeout(1)`'s handling of the command.
//!
//! The command runs in a process group of its own; every signal `redlock` sends goes to the
//! whole group (kill(2) on the group id). The lock is kept alive with the library's lease
//! ([`Redlock::keep_alive`]) and released once every process of the group has exited, not just
//! the command. If no extension has succeeded in time, the group is stopped on the timeline of
//! [`redlock_cli::timeline`]: SIGTERM, then SIGKILL `--kill-after` later, still before the
//! lock's validity ends by `redlock`'s own clock. INT, TERM, HUP, QUIT, USR1 and USR2 sent to
//! `redlock` are passed on to the group. If `redlock` itself dies, the guard ([`crate::guard`])
//! kills the group.

use crate::group::{self, Exit, Group};
use crate::guard::Guard;
use crate::nodes::NodeArgs;
use crate::report;
use crate::signals::Signals;
use crate::waiting::{self, Wait, Want};
use clap::Args;
use redlock_cli::duration::{parse as parse_duration, show};
use redlock_cli::exit;
use redlock_cli::secret::mask_url;
use redlock_cli::timeline::Timeline;
use redlock_tokio::{Lease, Lock, Options, Redlock};
use rustix::process::Signal;
use std::time::{Duration, Instant};
use tokio::time::sleep_until;

/// Pause between extension attempts while validity remains.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// … give or take up to this much.
const RETRY_JITTER: Duration = Duration::from_millis(50);

/// The environment variable holding the resource name, for the command.
pub const ENV_RESOURCE: &str = "REDLOCK_RESOURCE";
/// The environment variable holding the fencing token (with `--fencing`), for the command.
pub const ENV_FENCING_TOKEN: &str = "REDLOCK_FENCING_TOKEN";

/// What `redlock run --help` says about stopping the command.
pub const TIMELINE_HELP: &str = "\
How the command is stopped when the lock cannot be kept:
  The command runs in its own process group; signals go to the whole group.
  The lock is extended each time half of --ttl is left. If no extension has
  succeeded by the time --kill-after plus a safety margin (ttl/20, at least 50ms)
  is left, the group gets SIGTERM, and SIGKILL --kill-after later: still before
  the lock's validity ends, so no process of the group runs once another holder
  can take the lock. A refused extension sends SIGTERM at once. Hence
  --kill-after plus the margin must fit in a quarter of --ttl.

  acquired -- extend (ttl/2 left) -- retries -- SIGTERM -- SIGKILL -- validity ends

  INT, TERM, HUP, QUIT, USR1 and USR2 sent to redlock are passed on to the group.
  The lock is released once every process of the group has exited. If redlock
  itself dies (even by SIGKILL), a guard process kills the group.";

/// Arguments of `redlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    nodes: NodeArgs,
    /// How long the lock lives on the nodes without an extension; while the command runs it is
    /// extended each time half of it is left. A crashed holder blocks others for at most this.
    /// A bare number is seconds.
    #[arg(long, env = "REDLOCK_TTL", value_parser = parse_duration, default_value = "10s", value_name = "D")]
    ttl: Duration,
    /// Wait at most D for the lock, whatever the cause (default: as long as another holder has
    /// it; a wrong password, an unknown host or refused connections end the wait at once).
    #[arg(short, long, env = "REDLOCK_WAIT", value_parser = parse_duration, value_name = "D", conflicts_with = "no_wait")]
    wait: Option<Duration>,
    /// Fail at once (one attempt) if the lock is held.
    #[arg(short, long, env = "REDLOCK_NO_WAIT")]
    no_wait: bool,
    /// Do not say "waiting for RESOURCE (held by another holder)".
    #[arg(short, long, env = "REDLOCK_QUIET")]
    quiet: bool,
    /// Take a fencing token with the lock and pass it to the command as REDLOCK_FENCING_TOKEN
    /// (tokens of successive holders strictly increase).
    #[arg(long, env = "REDLOCK_FENCING")]
    fencing: bool,
    /// When the lock cannot be kept: from SIGTERM to SIGKILL of the command's process group.
    /// With the safety margin it must fit in a quarter of --ttl (see below). Default: the
    /// longest that fits, a fifth of --ttl (2s for 10s).
    #[arg(short, long, env = "REDLOCK_KILL_AFTER", value_parser = parse_duration, value_name = "D")]
    kill_after: Option<Duration>,
    /// Exit status when the lock could not be acquired because it stayed held.
    #[arg(short = 'E', long, env = "REDLOCK_CONFLICT_EXIT_CODE", default_value_t = exit::CONFLICT, value_name = "N")]
    conflict_exit_code: u8,
    /// Exit status when the lock could not be kept while the command ran.
    #[arg(long, env = "REDLOCK_LOST_EXIT_CODE", default_value_t = exit::LOST, value_name = "N")]
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
    let kill_after = args
        .kill_after
        .unwrap_or_else(|| Timeline::default_kill_after(args.ttl));
    let timeline = match Timeline::new(args.ttl, kill_after) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("redlock: {e}");
            return exit::FAILURE;
        }
    };
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
    // The command is spawned from this (the main) thread, which lives until `redlock` exits.
    rt.block_on(run(args, timeline, verbose))
}

async fn run(args: RunArgs, timeline: Timeline, verbose: u8) -> u8 {
    let (urls, nodes) = match args.nodes.urls().and_then(|u| Ok((u, args.nodes.nodes()?))) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("redlock: bad configuration: {e}");
            return exit::FAILURE;
        }
    };
    if verbose > 0 {
        let shown: Vec<String> = urls.iter().map(|u| mask_url(u)).collect();
        eprintln!("redlock: nodes {}", shown.join(","));
    }
    let mut options = Options::default();
    // One attempt per acquire: the CLI decides when to try again (see `waiting`). Extensions
    // are retried by the keep-alive whatever this says.
    options.retry_count = Some(0);
    options.retry_delay = RETRY_DELAY;
    options.retry_jitter = RETRY_JITTER;
    options.automatic_extension_threshold = args.ttl / 2;
    options.key_prefix = args.nodes.key_prefix.clone();
    options.fencing = args.fencing;
    let redlock = match Redlock::connect_nodes(nodes, options).await {
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
    let wait = match (args.no_wait, args.wait) {
        (true, _) | (false, Some(Duration::ZERO)) => Wait::Once,
        (false, Some(d)) => Wait::Until(Instant::now() + d),
        (false, None) => Wait::Forever,
    };
    let want = Want {
        resource: &args.resource,
        ttl: args.ttl,
        wait,
        quiet: args.quiet,
        conflict_exit_code: args.conflict_exit_code,
        verbose,
    };
    let code = match waiting::acquire(&redlock, &want, &mut signals).await {
        Ok(lock) => hold(&redlock, lock, &args, timeline, &mut signals, verbose).await,
        Err(code) => code,
    };
    // A release returns once a majority confirmed, and a failed attempt's cleanup may still be
    // out: the process must not end before every node has its delete (or timed out), or the
    // slower nodes keep the key until its ttl.
    redlock.flush().await;
    code
}

/// Keeps `lock` alive while the command's group runs, stops the group on the timeline when the
/// lock cannot be kept, and releases the lock once the group is gone; returns the exit status.
async fn hold(
    redlock: &Redlock,
    mut lock: Lock,
    args: &RunArgs,
    timeline: Timeline,
    signals: &mut Signals,
    verbose: u8,
) -> u8 {
    // An acquire that took long may leave too little validity for the first extension to come
    // before the SIGTERM point: extend once before starting the command.
    if lock.remaining(Instant::now()) < timeline.enough_left() {
        match redlock.extend(&lock, args.ttl).await {
            Ok(l) => lock = l,
            Err(e) => {
                let _ = redlock.release(&lock).await;
                report::error(
                    &format!(
                        "acquired {:?} with too little validity left, and could not extend it",
                        args.resource
                    ),
                    &e,
                    verbose,
                );
                return exit::UNREACHABLE;
            }
        }
    }
    let (lease, keeper) = redlock.keep_alive(lock, args.ttl);
    let keeper = tokio::spawn(keeper);
    let code = supervise(&lease, args, timeline, signals, verbose).await;
    keeper.abort();
    let _ = redlock.release(&lease.lock()).await;
    code
}

/// Starts the command's group under a guard and sees it through; returns the exit status.
async fn supervise(
    lease: &Lease,
    args: &RunArgs,
    timeline: Timeline,
    signals: &mut Signals,
    verbose: u8,
) -> u8 {
    if verbose > 0 {
        let token = lease
            .fencing_token()
            .map(|t| format!(", fencing token {t}"))
            .unwrap_or_default();
        eprintln!(
            "redlock: acquired {:?} (valid for {}{token})",
            args.resource,
            show(lease.deadline().saturating_duration_since(Instant::now()))
        );
    }
    group::become_subreaper();
    let mut guard = match Guard::start() {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!(
                "redlock: cannot start the guard process ({e}); the command will not be killed \
                 if redlock dies"
            );
            None
        }
    };
    let mut cmd = std::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env(ENV_RESOURCE, &args.resource);
    match lease.fencing_token() {
        Some(t) => cmd.env(ENV_FENCING_TOKEN, t.to_string()),
        None => cmd.env_remove(ENV_FENCING_TOKEN),
    };
    let mut group = match Group::spawn(cmd) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("redlock: cannot run {:?}: {e}", args.command[0]);
            if let Some(g) = guard {
                g.stand_down();
            }
            return if e.kind() == std::io::ErrorKind::NotFound {
                exit::NOT_FOUND
            } else {
                exit::CANNOT_EXECUTE
            };
        }
    };
    if let Some(g) = &mut guard {
        if let Err(e) = g.watch(group.pid()) {
            eprintln!("redlock: the guard process failed ({e}); the command will not be killed if redlock dies");
        }
    }
    let code = watch(lease, &mut group, args, timeline, signals, verbose).await;
    if let Some(g) = guard {
        g.stand_down();
    }
    code
}

/// Waits until every process of `group` has exited, stopping the group on the timeline when
/// the lease cannot be kept and passing signals on; returns the exit status.
async fn watch(
    lease: &Lease,
    group: &mut Group,
    args: &RunArgs,
    timeline: Timeline,
    signals: &mut Signals,
    verbose: u8,
) -> u8 {
    let pgid = group.pid();
    let mut leader: Option<u8> = None;
    let mut termed: Option<Instant> = None;
    let mut killed = false;
    let mut lost = false;
    loop {
        let valid_until = lease.deadline();
        let term_at = timeline.term_at(valid_until);
        let kill_at = termed.map(|t| timeline.kill_at(t, valid_until));
        tokio::select! {
            exit = group.next() => match exit {
                Exit::Leader(code) => {
                    leader = Some(code);
                    if verbose > 0 {
                        eprintln!("redlock: the command exited ({code}); waiting for the rest of its process group {pgid}");
                    }
                }
                Exit::Gone => break,
            },
            _ = lease.lost(), if !lost => {
                lost = true;
                if termed.is_none() {
                    let left = lease.deadline().saturating_duration_since(Instant::now());
                    eprintln!(
                        "redlock: lost the lock on {:?}: {}; sending SIGTERM to the command's \
                         process group {pgid}",
                        args.resource,
                        if left.is_zero() { "its validity ran out".to_string() } else { "an extension was refused".to_string() },
                    );
                    let _ = group.signal(Signal::TERM);
                    termed = Some(Instant::now());
                }
            }
            _ = sleep_until(term_at.into()), if termed.is_none() => {
                if lease.deadline() <= valid_until {
                    eprintln!(
                        "redlock: lost the lock on {:?}: no extension succeeded in time (validity \
                         ends in {}); sending SIGTERM to the command's process group {pgid}, \
                         SIGKILL in {}",
                        args.resource,
                        show(valid_until.saturating_duration_since(Instant::now())),
                        show(timeline.kill_after),
                    );
                    let _ = group.signal(Signal::TERM);
                    termed = Some(Instant::now());
                }
            }
            _ = sleep_until(kill_at.unwrap_or(valid_until).into()), if kill_at.is_some() && !killed => {
                eprintln!(
                    "redlock: the command's process group {pgid} did not exit within {} of \
                     SIGTERM; sending SIGKILL",
                    show(termed.map(|t| t.elapsed()).unwrap_or_default())
                );
                let _ = group.signal(Signal::KILL);
                killed = true;
            }
            (sig, name) = signals.next() => {
                if verbose > 0 {
                    eprintln!("redlock: passing SIG{name} on to process group {pgid}");
                }
                let _ = group.signal(sig);
            }
        }
    }
    match (termed, leader) {
        (Some(_), _) => args.lost_exit_code,
        (None, Some(code)) => code,
        (None, None) => exit::FAILURE,
    }
}
