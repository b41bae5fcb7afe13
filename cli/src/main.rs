//! `redlock`: a Redis distributed lock on the command line.
//!
//! - `redlock run RESOURCE -- CMD ARGS…`: `flock(1)` across machines, stopping the command as
//!   `timeout(1)` would when the lock cannot be kept.
//! - `redlock status RESOURCE…`: what every node holds for a resource.
//! - `redlock demo`: five local nodes, 32 contending workers, verified.
//! - `redlock completions SHELL`: a completion script.
//!
//! Exit statuses are documented in [`redlock_cli::exit`] and in `redlock run --help`.

// A command-line program: printing to stdout and stderr is its job (the lints are for the
// library crates).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cause;
mod demo;
mod group;
mod guard;
mod inspect;
mod nodes;
mod report;
mod run;
mod signals;
mod status;
mod waiting;

use clap::{CommandFactory, Parser, Subcommand};
use redlock_cli::exit;
use std::process::ExitCode;

const EXIT_STATUS_HELP: &str = "\
Exit status of `redlock run`:
  the command's own status when it ran to the end with the lock held
  (128+N when it was killed by signal N)
  120  could not acquire: the lock stayed held by another holder (--conflict-exit-code)
  121  the lock could not be kept while the command ran; its process group was
       stopped (--lost-exit-code)
  122  could not acquire: too few nodes answered to form a quorum
  125  redlock itself failed (bad arguments, bad node URL, wrong password, unknown host)
  126  the command could not be executed
  127  the command was not found

Every flag can also be set with a REDLOCK_* variable (shown as [env: …]); the
password comes from REDLOCK_PASSWORD or --password-file, never from a flag.
Durations: 10s, 500ms, 1m30s, or a bare number of seconds (10, 0.5).";

/// A Redis distributed lock (Redlock) on the command line.
#[derive(Debug, Parser)]
#[command(name = "redlock", version, after_help = EXIT_STATUS_HELP)]
struct Cli {
    /// Show per-node detail with errors (and progress of waits and extensions).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, env = "REDLOCK_VERBOSE")]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Acquire RESOURCE, run a command while holding it (extended automatically), release it
    /// when the command's process group has exited, and exit with the command's status.
    #[command(
        after_help = format!("{}\n\n{EXIT_STATUS_HELP}", run::TIMELINE_HELP),
        override_usage = "redlock run [OPTIONS] <RESOURCE> [--] <COMMAND> [ARGS]..."
    )]
    Run(run::RunArgs),
    /// Show, for each resource and each node, whether its key exists, its remaining ttl and
    /// holder, and whether the nodes agree. Exit status: 0 when every resource is free, 120
    /// when one is held by a quorum, 122 when a node could not be asked and that leaves it
    /// undecided.
    Status(status::StatusArgs),
    /// Start 5 local redis-server nodes, run 32 contending workers over a shared counter,
    /// verify the counter and that no two holders overlapped, and stop the nodes.
    Demo(demo::DemoArgs),
    /// Print a completion script for SHELL to stdout (e.g. `redlock completions bash >
    /// /etc/bash_completion.d/redlock`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    // The guard `redlock run` starts for itself: not part of the interface.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == guard::SUBCOMMAND)
    {
        return ExitCode::from(guard::main());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::FAILURE } else { 0 });
        }
    };
    let verbose = cli.verbose;
    let code = match cli.command {
        Command::Run(args) => run::main(args, verbose),
        Command::Status(args) => status::main(args, verbose),
        Command::Demo(args) => demo::main(args, verbose),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "redlock",
                &mut std::io::stdout(),
            );
            0
        }
    };
    ExitCode::from(code)
}
