//! `redlock-bench`: acquire+release throughput, latency and client CPU against live nodes.
//!
//! With `--urls`, one case ([`case`]): `--concurrency` workers for `--duration`, all on one
//! client, in `--mode uncontended` (a fresh resource per operation) or `--mode contended` (every
//! worker on one resource, retrying; the holders are counted to catch any overlap). It ends with
//! one JSON line ([`row`]: `ops_per_s`, `p50_us`, `p99_us`, `cpu_us_per_op`, `max_holders`,
//! `violations`, …), the same line other clients' benchmark programs taking these flags print
//! (`bench/rslock`).
//!
//! Without `--urls`, the matrix ([`matrix`]): local nodes (1 and 5), every adapter, concurrency
//! 1 and 32, both modes, each case in a fresh process (so its CPU time is its own), the programs
//! given with `--compare` on the same cases, and the `redis-benchmark` ceiling ([`ceiling`]) for
//! the same commands; then a table and the targets as ratios. The matrix also reads the servers'
//! CPU time around each case: client and servers share the machine's cores, so their CPU per
//! operation, added up, bounds how far apart two clients' ops/s can be.

// A command-line program: printing to stdout and stderr is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod case;
mod ceiling;
mod cpu;
mod matrix;
mod row;

use clap::{Parser, ValueEnum};
use redlock_cli::duration::parse as parse_duration;
use redlock_cli::exit;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Benchmark acquire+release against live nodes: one case with --urls; otherwise the whole
/// matrix on local nodes, with the redis-benchmark ceiling.
#[derive(Debug, Parser)]
#[command(name = "redlock-bench", version)]
pub struct BenchArgs {
    /// Run one case against these nodes (comma-separated URLs). Without it, run the whole
    /// matrix on local redis-server nodes.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    urls: Vec<String>,
    /// Concurrent workers (one case).
    #[arg(long, default_value_t = 1, value_name = "C")]
    concurrency: usize,
    /// How long each case runs: seconds (`2`, `0.5`) or a duration (`1500ms`). Default 5 for
    /// one case, 2 per case in the matrix.
    #[arg(long, value_parser = parse_duration, value_name = "S")]
    duration: Option<Duration>,
    /// One case: a fresh resource per operation, or every worker on one resource.
    #[arg(long, value_enum, default_value_t = Mode::Uncontended)]
    mode: Mode,
    /// One case: which adapter runs it.
    #[arg(long, value_enum, default_value_t = Adapter::Tokio)]
    adapter: Adapter,
    /// The lock ttl, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    ttl_ms: u64,
    /// One case: also measure the redis-benchmark ceiling against the first URL (printed as
    /// JSON lines before the case's line).
    #[arg(long)]
    ceiling: bool,
    /// Matrix: another client's benchmark program taking the same flags and printing the same
    /// JSON line; run on every case (repeatable).
    #[arg(long, value_name = "PROGRAM")]
    compare: Vec<PathBuf>,
    /// Matrix: run every case this many times (interleaved) and report the median by ops/s.
    #[arg(long, default_value_t = 1, value_name = "R")]
    repeat: usize,
    /// Matrix: node counts.
    #[arg(long, value_delimiter = ',', default_value = "1,5", value_name = "N,…")]
    node_counts: Vec<usize>,
    /// Matrix: concurrency levels.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,32",
        value_name = "C,…"
    )]
    concurrencies: Vec<usize>,
    /// Matrix: adapters.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tokio,async-std,smol,blocking",
        value_name = "A,…"
    )]
    adapters: Vec<Adapter>,
    /// Matrix: show each case's own stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Which workload a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A fresh resource per operation: acquire succeeds at once.
    Uncontended,
    /// Every worker on one resource, retrying until it gets it.
    Contended,
}

/// Which adapter runs a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Adapter {
    /// redlock-tokio (multi-thread runtime).
    Tokio,
    /// redlock-async-std.
    AsyncStd,
    /// redlock-smol.
    Smol,
    /// redlock-blocking (one thread per worker).
    Blocking,
}

impl Mode {
    /// The name as `--mode` takes it and the JSON line carries it.
    fn name(self) -> &'static str {
        match self {
            Mode::Uncontended => "uncontended",
            Mode::Contended => "contended",
        }
    }
}

impl Adapter {
    /// The name as `--adapter` takes it and the JSON line carries it.
    fn name(self) -> &'static str {
        match self {
            Adapter::Tokio => "tokio",
            Adapter::AsyncStd => "async-std",
            Adapter::Smol => "smol",
            Adapter::Blocking => "blocking",
        }
    }
}

fn main() -> ExitCode {
    let args = match BenchArgs::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::FAILURE } else { 0 });
        }
    };
    ExitCode::from(if args.urls.is_empty() {
        matrix::main(&args)
    } else {
        case::main(&args)
    })
}
