//! `redlock-bench`: acquire+release throughput, latency and client CPU against live nodes.
//!
//! With `--urls` (or `--node`), one case ([`case`]): `--concurrency` workers for `--duration`, all
//! on one client, in `--mode uncontended` (a fresh resource per operation) or `--mode contended`
//! (every worker on one resource, retrying; the holders are counted to catch any overlap); or
//! `--mode held` ([`held`]): `--leases` locks held at once and kept alive for `--duration`. It ends with
//! one JSON line ([`row`]: `ops_per_s`, `p50_us`, `p99_us`, `cpu_us_per_op`, `max_holders`,
//! `violations`, …), the same line other clients' benchmark programs taking these flags print
//! (`bench/rslock`).
//!
//! Without `--urls`, the matrix ([`matrix`]): local nodes (1 and 5), every adapter, concurrency
//! 1 and 32, both modes, each case in a fresh process (so its CPU time is its own), the programs
//! given with `--compare` on the same cases, and the `redis-benchmark` ceiling ([`ceiling`]) for
//! the same commands, then the extra cases (5 nodes over TLS, a Redis Cluster, many held leases);
//! then a table and every target ([`targets`]) per round and over the rounds. The matrix also reads the servers'
//! CPU time around each case: client and servers share the machine's cores, so their CPU per
//! operation, added up, bounds how far apart two clients' ops/s can be.

// A command-line program: printing to stdout and stderr is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bare;
mod case;
mod ceiling;
mod cpu;
mod handoff;
mod held;
mod matrix;
mod row;
mod rss;
mod targets;
mod tls_certs;
mod wakeups;

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
    /// Run one case against this node (repeatable): the URL is taken whole, commas included
    /// (a `redis+cluster://` URL lists its seeds with commas).
    #[arg(long, value_name = "URL")]
    node: Vec<String>,
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
    /// `--mode held`: how many leases are held at once.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    leases: usize,
    /// One case: how long a lone operation spins for its replies before parking
    /// (`Options::spin_before_park`), in µs; 0 turns it off. Default: the library's.
    #[arg(long, value_name = "US")]
    spin_us: Option<u64>,
    /// One case: also measure the redis-benchmark ceiling against the first URL (printed as
    /// JSON lines before the case's line).
    #[arg(long)]
    ceiling: bool,
    /// Matrix: another client's benchmark program taking the same flags and printing the same
    /// JSON line; run on every case (repeatable).
    #[arg(long, value_name = "PROGRAM")]
    compare: Vec<PathBuf>,
    /// Matrix: run the whole matrix this many times (each case's rounds interleaved with the
    /// other clients'); print every round's figures and targets, then per case the median
    /// round (by ops/s) and, per target, the median ratio and how many rounds met it.
    #[arg(long, default_value_t = 1, value_name = "R")]
    repeat: usize,
    /// Matrix: the cases beyond the grid of node counts, concurrencies and modes (`none` for
    /// the grid alone).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tls,cluster,held",
        value_name = "X,…"
    )]
    extras: Vec<Extra>,
    /// Matrix: how long the many-held-leases case holds its leases (seconds or a duration;
    /// the target is stated for 60 s, a shorter hold gives a quick look).
    #[arg(long, value_parser = parse_duration, default_value = "60", value_name = "S")]
    held_duration: Duration,
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
    /// Matrix: modes of the grid.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "uncontended,contended",
        value_name = "M,…"
    )]
    modes: Vec<Mode>,
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
    /// `--leases` locks acquired, then held and kept alive (extended) for `--duration`.
    Held,
    /// No library: the adapter's runtime alone does an operation's two round trips on its own
    /// socket, one caller, first URL only (`bare.rs`): the one-client latency floor.
    Bare,
    /// No library, no Redis: `--concurrency` threads each hand a request to one thread and
    /// park until it is answered, twice per operation (`handoff.rs`): the least a thread per
    /// caller costs, beside the blocking adapter's C=32 case. `--adapter` and the URLs are
    /// not used.
    Handoff,
}

/// A case of the matrix beyond its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Extra {
    /// 5 nodes over TLS, C=32, uncontended (beside the plain-TCP case).
    Tls,
    /// One Redis Cluster of 3 primaries as one node, C=32, uncontended (beside 1 standalone
    /// node).
    Cluster,
    /// `--leases` leases held at once on 5 nodes for `--held-duration`.
    Held,
    /// No extra case.
    None,
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
            Mode::Held => "held",
            Mode::Bare => "bare",
            Mode::Handoff => "handoff",
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
    ExitCode::from(if args.urls.is_empty() && args.node.is_empty() {
        matrix::main(&args)
    } else {
        case::main(&args)
    })
}
