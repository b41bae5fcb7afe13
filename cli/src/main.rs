//! `redlock`: a Redis distributed lock on the command line.
//!
//! - `redlock run RESOURCE -- CMD ARGS…`: `flock(1)` across machines.
//! - `redlock status RESOURCE…`: what every node holds for a resource.
//! - `redlock demo`: five local nodes, 32 contending workers, verified.
//!
//! Exit statuses are documented in [`redlock_cli::exit`] and in `redlock run --help`.

// A command-line program: printing to stdout and stderr is its job (the lints are for the
// library crates).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod demo;
mod report;
mod run;
mod status;

use clap::{Args, Parser, Subcommand};
use redlock_cli::exit;
use std::process::ExitCode;

const EXIT_STATUS_HELP: &str = "\
Exit status of `redlock run`:
  the command's own status when it ran to the end with the lock held
  (128+N when it was killed by signal N)
  120  could not acquire: the lock stayed held by another holder (--conflict-exit-code)
  121  the lock was lost while the command ran; it got SIGTERM (--lost-exit-code)
  122  could not acquire: too few nodes answered to form a quorum
  125  redlock itself failed (bad arguments, bad node URL)
  126  the command could not be executed
  127  the command was not found";

/// A Redis distributed lock (Redlock) on the command line.
#[derive(Debug, Parser)]
#[command(name = "redlock", version, after_help = EXIT_STATUS_HELP)]
struct Cli {
    /// Show per-node detail with errors (and progress of waits and extensions).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Acquire RESOURCE, run a command while holding it (extended automatically), release it
    /// when the command exits, and exit with the command's status.
    #[command(
        after_help = EXIT_STATUS_HELP,
        override_usage = "redlock run [OPTIONS] <RESOURCE> [--] <COMMAND> [ARGS]..."
    )]
    Run(run::RunArgs),
    /// Show, for each resource and each node, whether its key exists, its remaining ttl and
    /// holder, and whether the nodes agree.
    Status(status::StatusArgs),
    /// Start 5 local redis-server nodes, run 32 contending workers over a shared counter,
    /// verify the counter and that no two holders overlapped, and stop the nodes.
    Demo(demo::DemoArgs),
}

/// Where the lock lives: shared by `run` and `status`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Redis nodes (independent masters), comma-separated URLs
    /// redis://user:pass@host:port/db (user:pass@ and /db optional)
    #[arg(
        long,
        env = "REDLOCK_NODES",
        default_value = "redis://127.0.0.1:6379",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    nodes: Vec<String>,
    /// Prepended to the resource name to form the Redis key.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    key_prefix: String,
}

impl NodeArgs {
    /// The node URLs, trimmed, empty entries dropped.
    fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect()
    }
}

fn main() -> ExitCode {
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
    };
    ExitCode::from(code)
}
