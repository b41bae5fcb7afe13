//! `redlock bench`: acquire+release throughput, latency and client CPU against live nodes.
//!
//! With `--urls`, one case: `--concurrency` workers for `--duration`, all on one client, in
//! `--mode uncontended` (a fresh resource per operation) or `--mode contended` (every worker on
//! one resource, retrying; the holders are counted to catch any overlap). It ends with one JSON
//! line (`ops_per_s`, `p50_us`, `p99_us`, `cpu_us_per_op`, `max_holders`, `violations`, …), the
//! same line other clients' benchmark programs taking these flags print (`bench/rslock`).
//!
//! Without `--urls`, the matrix: local nodes (1 and 5), every adapter, concurrency 1 and 32,
//! both modes, each case in a fresh process (so its CPU time is its own), the programs given
//! with `--compare` on the same cases, and the `redis-benchmark` ceiling for the same commands;
//! then a table and the targets as ratios. The matrix also reads the servers' CPU time around
//! each case: client and servers share the machine's cores, so their CPU per operation, added
//! up, bounds how far apart two clients' ops/s can be.

use clap::{Args, ValueEnum};
use redlock_async::{BoxFuture, Runtime};
use redlock_cli::client::{Conn, Reply};
use redlock_cli::duration::parse as parse_duration;
use redlock_cli::local::{LocalNodes, StartError, INSTALL_HINT};
use redlock_cli::{cpu, exit};
use redlock_core::Options;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Arguments of `redlock bench`.
#[derive(Debug, Args)]
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
    #[arg(long, value_parser = parse_seconds, value_name = "S")]
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
    fn name(self) -> &'static str {
        match self {
            Mode::Uncontended => "uncontended",
            Mode::Contended => "contended",
        }
    }
}

impl Adapter {
    fn name(self) -> &'static str {
        match self {
            Adapter::Tokio => "tokio",
            Adapter::AsyncStd => "async-std",
            Adapter::Smol => "smol",
            Adapter::Blocking => "blocking",
        }
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) => Duration::try_from_secs_f64(s).map_err(|e| format!("{text:?}: {e}")),
        Err(_) => parse_duration(text),
    }
}

/// Runs `redlock bench`; returns the exit status.
pub fn main(args: BenchArgs, verbose: u8) -> u8 {
    if args.urls.is_empty() {
        matrix(&args, verbose)
    } else {
        single(&args)
    }
}

// ---------------------------------------------------------------------------------------------
// One case.

/// Retry pause for contended cases: uniform in 0–20 ms (10 ms ± 10 ms), as `bench/rslock` uses.
const CONTENDED_RETRY_DELAY: Duration = Duration::from_millis(10);
/// Sequential acquire+release pairs before measuring (connections up, scripts loaded).
const WARMUP_OPS: usize = 50;

/// What one case is.
#[derive(Debug, Clone)]
struct Case {
    urls: Vec<String>,
    concurrency: usize,
    duration: Duration,
    mode: Mode,
    ttl: Duration,
    /// Resource names of this run start with it (unique per process).
    prefix: String,
}

impl Case {
    fn options(&self) -> Options {
        let mut o = Options::default();
        match self.mode {
            Mode::Uncontended => o.retry_count = Some(0),
            Mode::Contended => {
                o.retry_count = None;
                o.retry_delay = CONTENDED_RETRY_DELAY;
                o.retry_jitter = CONTENDED_RETRY_DELAY;
            }
        }
        o
    }

    fn resource(&self, worker: usize, i: u64) -> String {
        match self.mode {
            Mode::Uncontended => format!("{}:{worker}:{i}", self.prefix),
            Mode::Contended => format!("{}:contended", self.prefix),
        }
    }
}

/// Shared by the workers of one case.
#[derive(Debug)]
struct Ctx {
    case: Case,
    /// When measurement ends; operations finishing later are not counted.
    end: Instant,
    holders: AtomicUsize,
    max_holders: AtomicUsize,
    violations: AtomicU64,
}

impl Ctx {
    /// Marks entry into the critical section; counts an overlap when someone else is inside.
    fn enter(&self) {
        let now_inside = self.holders.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_holders.fetch_max(now_inside, Ordering::SeqCst);
        if now_inside > 1 {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leave(&self) {
        self.holders.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One worker's measurements.
#[derive(Debug, Default)]
struct Tally {
    /// Latency of each counted acquire+release, in nanoseconds.
    lat_ns: Vec<u64>,
    /// Operations that completed, counted or not (the CPU figure divides by these).
    completed: u64,
    errors: u64,
}

impl Tally {
    fn record(&mut self, ctx: &Ctx, start: Instant, ok: bool) {
        let done = Instant::now();
        if ok {
            self.completed += 1;
        }
        if done <= ctx.end {
            if ok {
                self.lat_ns.push((done - start).as_nanos() as u64);
            } else {
                self.errors += 1;
            }
        }
    }
}

/// Yields to the executor once (so a contended holder stays inside long enough for an overlap
/// to be seen).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn async_worker<R: Runtime>(
    client: redlock_async::Redlock<R>,
    w: usize,
    ctx: Arc<Ctx>,
) -> Tally {
    let mut t = Tally::default();
    let contended = ctx.case.mode == Mode::Contended;
    for i in 0u64.. {
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        match client
            .acquire([ctx.case.resource(w, i)], ctx.case.ttl)
            .await
        {
            Ok(lock) => {
                if contended {
                    ctx.enter();
                    YieldNow(false).await;
                    ctx.leave();
                }
                let ok = client.release(&lock).await.is_ok();
                t.record(&ctx, start, ok);
            }
            Err(_) => t.record(&ctx, start, false),
        }
    }
    t
}

type Spawn = fn(BoxFuture<Tally>) -> BoxFuture<Tally>;

async fn run_async<R: Runtime + Default>(case: Case, spawn: Spawn) -> Result<Measured, String> {
    let client = redlock_async::Redlock::<R>::connect(&case.urls, case.options())
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..WARMUP_OPS {
        let lock = client
            .acquire([format!("{}:warmup:{i}", case.prefix)], case.ttl)
            .await
            .map_err(|e| format!("warm-up acquire failed: {e}"))?;
        let _ = client.release(&lock).await;
    }
    let cpu0 = cpu::process_time();
    let t0 = Instant::now();
    let ctx = Arc::new(new_ctx(&case, t0));
    let handles: Vec<BoxFuture<Tally>> = (0..case.concurrency)
        .map(|w| spawn(Box::pin(async_worker(client.clone(), w, ctx.clone()))))
        .collect();
    let mut tallies = Vec::with_capacity(handles.len());
    for h in handles {
        tallies.push(h.await);
    }
    Ok(measured(&ctx, tallies, cpu0))
}

fn new_ctx(case: &Case, t0: Instant) -> Ctx {
    Ctx {
        case: case.clone(),
        end: t0 + case.duration,
        holders: AtomicUsize::new(0),
        max_holders: AtomicUsize::new(0),
        violations: AtomicU64::new(0),
    }
}

fn run_blocking(case: Case) -> Result<Measured, String> {
    let client = redlock_blocking::Redlock::connect(&case.urls, case.options())
        .map_err(|e| e.to_string())?;
    for i in 0..WARMUP_OPS {
        let lock = client
            .acquire([format!("{}:warmup:{i}", case.prefix)], case.ttl)
            .map_err(|e| format!("warm-up acquire failed: {e}"))?;
        let _ = client.release(&lock);
    }
    let cpu0 = cpu::process_time();
    let ctx = new_ctx(&case, Instant::now());
    let contended = case.mode == Mode::Contended;
    let tallies = std::thread::scope(|s| {
        let handles: Vec<_> = (0..case.concurrency)
            .map(|w| {
                let (client, ctx) = (&client, &ctx);
                s.spawn(move || {
                    let mut t = Tally::default();
                    for i in 0u64.. {
                        let start = Instant::now();
                        if start >= ctx.end {
                            break;
                        }
                        match client.acquire([ctx.case.resource(w, i)], ctx.case.ttl) {
                            Ok(lock) => {
                                if contended {
                                    ctx.enter();
                                    std::thread::yield_now();
                                    ctx.leave();
                                }
                                let ok = client.release(&lock).is_ok();
                                t.record(ctx, start, ok);
                            }
                            Err(_) => t.record(ctx, start, false),
                        }
                    }
                    t
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect::<Vec<_>>()
    });
    Ok(measured(&ctx, tallies, cpu0))
}

/// A case's figures.
#[derive(Debug, Clone, Default)]
struct Measured {
    ops: u64,
    errors: u64,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    cpu_us_per_op: f64,
    max_holders: u64,
    violations: u64,
}

fn measured(ctx: &Ctx, tallies: Vec<Tally>, cpu0: Option<Duration>) -> Measured {
    let cpu = match (cpu0, cpu::process_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    let completed: u64 = tallies.iter().map(|t| t.completed).sum();
    let errors = tallies.iter().map(|t| t.errors).sum();
    let mut lat: Vec<u64> = tallies.into_iter().flat_map(|t| t.lat_ns).collect();
    lat.sort_unstable();
    let pct = |p: usize| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = (lat.len() * p / 100).min(lat.len() - 1);
        lat[i] as f64 / 1000.0
    };
    let ops = lat.len() as u64;
    let max_holders = match ctx.case.mode {
        // A fresh resource per operation: one holder each, by construction.
        Mode::Uncontended => u64::from(ops > 0),
        Mode::Contended => ctx.max_holders.load(Ordering::SeqCst) as u64,
    };
    Measured {
        ops,
        errors,
        ops_per_s: ops as f64 / ctx.case.duration.as_secs_f64(),
        p50_us: pct(50),
        p99_us: pct(99),
        max_us: lat.last().map_or(0.0, |n| *n as f64 / 1000.0),
        cpu_us_per_op: if completed > 0 {
            cpu.as_secs_f64() * 1e6 / completed as f64
        } else {
            0.0
        },
        max_holders,
        violations: ctx.violations.load(Ordering::SeqCst),
    }
}

fn single(args: &BenchArgs) -> u8 {
    let case = Case {
        urls: args.urls.iter().map(|u| u.trim().to_string()).collect(),
        concurrency: args.concurrency.max(1),
        duration: args.duration.unwrap_or(Duration::from_secs(5)),
        mode: args.mode,
        ttl: Duration::from_millis(args.ttl_ms),
        prefix: format!("redlock-bench:{}:{}", std::process::id(), unique()),
    };
    let result = match args.adapter {
        Adapter::Tokio => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(run_async::<redlock_tokio::Tokio>(case.clone(), |f| {
                    // Spawned here, not when the returned future is first polled.
                    let task = tokio::spawn(f);
                    Box::pin(async move { task.await.unwrap_or_default() })
                }))
            }),
        Adapter::AsyncStd => async_std::task::block_on(run_async::<redlock_async_std::AsyncStd>(
            case.clone(),
            |f| Box::pin(async_std::task::spawn(f)),
        )),
        Adapter::Smol => smol::block_on(run_async::<redlock_smol::Smol>(case.clone(), |f| {
            Box::pin(smol::spawn(f))
        })),
        Adapter::Blocking => run_blocking(case.clone()),
    };
    let m = match result {
        Ok(m) => m,
        Err(e) => {
            eprintln!("redlock: bench failed: {e}");
            return exit::FAILURE;
        }
    };
    if args.ceiling {
        match Conn::open_url(&case.urls[0], Duration::from_secs(2))
            .map_err(|e| e.to_string())
            .and_then(|_| ceilings(&case.urls[0], case.duration, &[1, 50]))
        {
            Ok(cs) => {
                for c in cs {
                    println!("{}", c.json());
                }
            }
            Err(e) => eprintln!("redlock: ceiling not measured: {e}"),
        }
    }
    let row = Row {
        client: "redlock".into(),
        adapter: args.adapter.name().into(),
        mode: args.mode.name().into(),
        nodes: case.urls.len(),
        concurrency: case.concurrency,
        duration_s: case.duration.as_secs_f64(),
        ttl_ms: args.ttl_ms,
        m,
        server_cpu_us_per_op: None,
    };
    println!("{}", row.json());
    0
}

fn unique() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

// ---------------------------------------------------------------------------------------------
// The JSON line, written and read without a JSON library (flat objects of strings and numbers).

/// One case's result, as the JSON line carries it.
#[derive(Debug, Clone, Default)]
struct Row {
    client: String,
    adapter: String,
    mode: String,
    nodes: usize,
    concurrency: usize,
    duration_s: f64,
    ttl_ms: u64,
    m: Measured,
    /// CPU time of the Redis servers over the case ÷ its operations: measured by the matrix,
    /// which started the servers (a single case leaves it out).
    server_cpu_us_per_op: Option<f64>,
}

impl Row {
    fn json(&self) -> String {
        let m = &self.m;
        format!(
            "{{\"client\":{},\"adapter\":{},\"mode\":{},\"nodes\":{},\"concurrency\":{},\
             \"duration_s\":{},\"ttl_ms\":{},\"ops\":{},\"errors\":{},\"ops_per_s\":{:.1},\
             \"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"cpu_us_per_op\":{:.2},\
             \"max_holders\":{},\"violations\":{}{}}}",
            quote(&self.client),
            quote(&self.adapter),
            quote(&self.mode),
            self.nodes,
            self.concurrency,
            self.duration_s,
            self.ttl_ms,
            m.ops,
            m.errors,
            m.ops_per_s,
            m.p50_us,
            m.p99_us,
            m.max_us,
            m.cpu_us_per_op,
            m.max_holders,
            m.violations,
            self.server_cpu_us_per_op
                .map(|x| format!(",\"server_cpu_us_per_op\":{x:.2}"))
                .unwrap_or_default()
        )
    }

    fn from_json(line: &str) -> Option<Row> {
        let fields = parse_flat_json(line)?;
        let s = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| match v {
                    Value::Str(s) => Some(s.clone()),
                    Value::Num(_) => None,
                })
        };
        let n = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| match v {
                    Value::Num(x) => Some(*x),
                    Value::Str(_) => None,
                })
        };
        Some(Row {
            client: s("client").unwrap_or_else(|| "?".into()),
            adapter: s("adapter").unwrap_or_default(),
            mode: s("mode").unwrap_or_default(),
            nodes: n("nodes").unwrap_or(0.0) as usize,
            concurrency: n("concurrency").unwrap_or(0.0) as usize,
            duration_s: n("duration_s").unwrap_or(0.0),
            ttl_ms: n("ttl_ms").unwrap_or(0.0) as u64,
            m: Measured {
                ops: n("ops").unwrap_or(0.0) as u64,
                errors: n("errors").unwrap_or(0.0) as u64,
                ops_per_s: n("ops_per_s")?,
                p50_us: n("p50_us")?,
                p99_us: n("p99_us")?,
                max_us: n("max_us").unwrap_or(0.0),
                cpu_us_per_op: n("cpu_us_per_op")?,
                max_holders: n("max_holders")? as u64,
                violations: n("violations")? as u64,
            },
            server_cpu_us_per_op: n("server_cpu_us_per_op"),
        })
    }

    fn label(&self) -> String {
        if self.adapter.is_empty() {
            self.client.clone()
        } else {
            format!("{} ({})", self.client, self.adapter)
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
}

/// Parses `{"k": "v", "n": 1.5, …}` (strings and numbers only; `true`/`false`/`null` read as
/// 1/0/0). `None` for anything else.
fn parse_flat_json(line: &str) -> Option<Vec<(String, Value)>> {
    let mut chars = line.trim().chars().peekable();
    let mut out = Vec::new();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
    };
    let read_str = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        let mut s = String::new();
        loop {
            match it.next()? {
                '"' => return Some(s),
                '\\' => match it.next()? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| it.next()).collect();
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    c => s.push(c),
                },
                c => s.push(c),
            }
        }
    };
    if chars.next()? != '{' {
        return None;
    }
    loop {
        skip_ws(&mut chars);
        match chars.next()? {
            '}' => return Some(out),
            ',' => continue,
            '"' => {}
            _ => return None,
        }
        let key = read_str(&mut chars)?;
        skip_ws(&mut chars);
        if chars.next()? != ':' {
            return None;
        }
        skip_ws(&mut chars);
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            Value::Str(read_str(&mut chars)?)
        } else {
            let mut raw = String::new();
            while chars.peek().is_some_and(|c| !matches!(c, ',' | '}')) {
                raw.push(chars.next()?);
            }
            match raw.trim() {
                "true" => Value::Num(1.0),
                "false" | "null" => Value::Num(0.0),
                num => Value::Num(num.parse().ok()?),
            }
        };
        out.push((key, value));
    }
}

// ---------------------------------------------------------------------------------------------
// The redis-benchmark ceiling.

/// A plain compare-and-delete, the shape of a one-key release.
const COMPARE_AND_DELETE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// One redis-benchmark measurement.
#[derive(Debug, Clone)]
struct Ceiling {
    command: &'static str,
    clients: usize,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Ceiling {
    fn json(&self) -> String {
        format!(
            "{{\"client\":\"redis-benchmark\",\"command\":{},\"clients\":{},\"ops_per_s\":{:.1},\
             \"p50_us\":{:.1},\"p99_us\":{:.1}}}",
            quote(self.command),
            self.clients,
            self.rps,
            self.p50_us,
            self.p99_us
        )
    }
}

/// `SET key token NX PX ttl` and `EVALSHA compare-and-delete` with each of `client_counts`
/// clients against `url`, with random keys; each run sized to last about `duration`.
fn ceilings(
    url: &str,
    duration: Duration,
    client_counts: &[usize],
) -> Result<Vec<Ceiling>, String> {
    let node = redlock_async::parse_node_url(url).map_err(|e| e.to_string())?;
    let mut conn = Conn::open(&node, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let sha = match conn
        .call(&["SCRIPT", "LOAD", COMPARE_AND_DELETE])
        .map_err(|e| e.to_string())?
    {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => return Err(format!("SCRIPT LOAD answered {other:?}")),
    };
    let token = "0123456789abcdef0123456789abcdef01234567";
    let mut out = Vec::new();
    for &clients in client_counts {
        let set: Vec<String> = [
            "SET",
            "redlock-ceiling:__rand_int__",
            token,
            "NX",
            "PX",
            "10000",
        ]
        .map(String::from)
        .to_vec();
        let cad: Vec<String> = ["EVALSHA", &sha, "1", "redlock-ceiling:__rand_int__", token]
            .map(String::from)
            .to_vec();
        for (name, cmd) in [("SET NX PX", set), ("EVALSHA compare-and-delete", cad)] {
            // Calibrate: a short run, then one sized to the duration.
            let probe = redis_benchmark(&node, clients, 2000 * clients.min(10), &cmd)?;
            let n = ((probe.0 * duration.as_secs_f64()) as usize).clamp(1000, 2_000_000);
            let (rps, p50, p99) = redis_benchmark(&node, clients, n, &cmd)?;
            out.push(Ceiling {
                command: name,
                clients,
                rps,
                p50_us: p50,
                p99_us: p99,
            });
        }
    }
    Ok(out)
}

/// Runs `redis-benchmark --csv` and returns (requests/s, p50 µs, p99 µs).
fn redis_benchmark(
    node: &redlock_core::NodeConfig,
    clients: usize,
    requests: usize,
    cmd: &[String],
) -> Result<(f64, f64, f64), String> {
    let mut c = Command::new("redis-benchmark");
    c.args(["-h", &node.host, "-p", &node.port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "100000000", "--csv"]);
    if let Some(p) = &node.password {
        if let Some(u) = &node.username {
            c.args(["--user", u]);
        }
        c.args(["-a", p]);
    }
    if node.db != 0 {
        c.args(["--dbnum", &node.db.to_string()]);
    }
    let out = c
        .args(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("redis-benchmark was not found on PATH: {INSTALL_HINT}")
            }
            _ => format!("cannot run redis-benchmark: {e}"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_benchmark_csv(&text).ok_or_else(|| format!("unexpected redis-benchmark output: {text}"))
}

/// Reads redis-benchmark's `--csv` output (Redis 7: `"test","rps","avg_latency_ms",…`).
fn parse_benchmark_csv(text: &str) -> Option<(f64, f64, f64)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = split_csv(lines.next()?);
    let row: Vec<String> = split_csv(lines.next()?);
    let col = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| h == name)?;
        row.get(i)?.parse().ok()
    };
    Some((
        col("rps")?,
        col("p50_latency_ms")? * 1000.0,
        col("p99_latency_ms")? * 1000.0,
    ))
}

fn split_csv(line: &str) -> Vec<String> {
    // The test name may contain commas inside quotes; nothing else does.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

// ---------------------------------------------------------------------------------------------
// The matrix.

fn matrix(args: &BenchArgs, verbose: u8) -> u8 {
    let duration = args.duration.unwrap_or(Duration::from_secs(2));
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("redlock: cannot find my own executable: {e}");
            return exit::FAILURE;
        }
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut ceiling: Vec<Ceiling> = Vec::new();
    // Two one-client round trips (SET + EVALSHA p50), measured in every round of the 1-node
    // C=1 uncontended case: target 1's yardstick, taken beside what it measures.
    let mut trips: Vec<f64> = Vec::new();
    for &n in &args.node_counts {
        eprintln!("redlock bench: starting {n} local redis-server node(s)");
        let nodes = match LocalNodes::start(n) {
            Ok(nodes) => nodes,
            Err(e @ StartError::NotInstalled) | Err(e @ StartError::Failed(_)) => {
                eprintln!("redlock: {e}");
                return exit::FAILURE;
            }
        };
        let urls = nodes.nodes_arg();
        if ceiling.is_empty() {
            eprintln!("redlock bench: redis-benchmark ceiling (1 and 50 clients)");
            match ceilings(&nodes.url(0), duration, &[1, 50]) {
                Ok(cs) => {
                    for c in &cs {
                        println!("{}", c.json());
                    }
                    ceiling = cs;
                }
                Err(e) => eprintln!("redlock: ceiling not measured: {e}"),
            }
        }
        let mut programs: Vec<(Option<Adapter>, PathBuf)> = args
            .adapters
            .iter()
            .map(|a| (Some(*a), exe.clone()))
            .collect();
        programs.extend(args.compare.iter().map(|p| (None, p.clone())));
        for &c in &args.concurrencies {
            for mode in [Mode::Uncontended, Mode::Contended] {
                // Every program once per round, rounds interleaved, so slow spells of a
                // shared machine hit every client alike; the median round is reported.
                let mut runs: Vec<Vec<Row>> = vec![Vec::new(); programs.len()];
                for round in 0..args.repeat.max(1) {
                    for (p, (adapter, program)) in programs.iter().enumerate() {
                        let mut cmd = Command::new(program);
                        if adapter.is_some() {
                            cmd.arg("bench");
                        }
                        cmd.args(["--urls", &urls])
                            .args(["--concurrency", &c.to_string()])
                            .args(["--duration", &duration.as_secs_f64().to_string()])
                            .args(["--mode", mode.name()])
                            .args(["--ttl-ms", &args.ttl_ms.to_string()]);
                        if let Some(a) = adapter {
                            cmd.args(["--adapter", a.name()]);
                        }
                        let what = format!(
                            "{n} node(s), C={c}, {}, {}{}",
                            mode.name(),
                            adapter
                                .map_or_else(|| program.display().to_string(), |a| a.name().into()),
                            if args.repeat > 1 {
                                format!(" (round {})", round + 1)
                            } else {
                                String::new()
                            }
                        );
                        eprintln!("redlock bench: {what}");
                        let server0 = servers_time(&nodes);
                        match run_case(cmd, duration + Duration::from_secs(60), verbose) {
                            Ok(mut row) => {
                                // Over the whole case (connect and warm-up included: a few
                                // dozen operations against tens of thousands).
                                if let (Some(a), Some(b)) = (server0, servers_time(&nodes)) {
                                    if row.m.ops > 0 {
                                        let us = b.saturating_sub(a).as_secs_f64() * 1e6;
                                        row.server_cpu_us_per_op = Some(us / row.m.ops as f64);
                                    }
                                }
                                println!("{}", row.json());
                                runs[p].push(row);
                            }
                            Err(e) => eprintln!("redlock: case failed ({what}): {e}"),
                        }
                    }
                    if n == 1 && c == 1 && mode == Mode::Uncontended {
                        eprintln!("redlock bench: redis-benchmark round trips (1 client)");
                        match ceilings(&nodes.url(0), duration, &[1]) {
                            Ok(cs) => {
                                for c in &cs {
                                    println!("{}", c.json());
                                }
                                trips.push(cs.iter().map(|c| c.p50_us).sum());
                            }
                            Err(e) => eprintln!("redlock: round trips not measured: {e}"),
                        }
                    }
                }
                for mut r in runs {
                    r.sort_by(|a, b| a.m.ops_per_s.total_cmp(&b.m.ops_per_s));
                    let violations: u64 = r.iter().map(|x| x.m.violations).sum();
                    let max_holders = r.iter().map(|x| x.m.max_holders).max().unwrap_or(0);
                    if let Some(mut median) = r.get(r.len() / 2).cloned() {
                        // Safety figures from every round, not only the median one.
                        median.m.violations = violations;
                        median.m.max_holders = max_holders;
                        rows.push(median);
                    }
                }
            }
        }
    }
    println!();
    print!("{}", table(&rows, &ceiling, &trips));
    let bad = rows.iter().any(|r| r.m.violations > 0);
    if bad {
        eprintln!("redlock: a contended case saw two holders at once");
        return exit::FAILURE;
    }
    0
}

/// CPU time used so far by all the local nodes' `redis-server` processes (`None` when one
/// cannot be read).
fn servers_time(nodes: &LocalNodes) -> Option<Duration> {
    (0..nodes.len())
        .map(|i| nodes.pid(i).and_then(cpu::pid_time))
        .sum()
}

/// Runs one case program and reads its last JSON line; kills it (by pid) after `limit`.
fn run_case(mut cmd: Command, limit: Duration, verbose: u8) -> Result<Row, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if verbose > 0 {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no result within {limit:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let row = out.lines().rev().find_map(|l| {
        l.trim_start()
            .starts_with('{')
            .then(|| Row::from_json(l))
            .flatten()
    });
    match row {
        Some(row) if status.success() => Ok(row),
        _ => Err(format!(
            "{status}; stderr: {}",
            err.lines().last().unwrap_or("(empty)")
        )),
    }
}

/// The ops/s ratio of `ours` to `other` if both kept every core busy: the inverse ratio of their
/// CPU per operation, the client's and the servers' together (client and servers share the
/// machine's cores). `None` without the servers' figures.
fn cpu_bound(ours: &Row, other: &Row) -> Option<f64> {
    let total = |r: &Row| Some(r.m.cpu_us_per_op + r.server_cpu_us_per_op?);
    let (a, b) = (total(ours)?, total(other)?);
    (a > 0.0).then(|| b / a)
}

/// The results table (Markdown), the ceiling, and the targets as ratios. Target 1's yardstick is
/// the median of `trips` (two one-client round trips, measured in each round), or the
/// ceiling's one-client figures when there are none.
fn table(rows: &[Row], ceiling: &[Ceiling], trips: &[f64]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| nodes | C | mode | client | ops/s | p50 µs | p99 µs | CPU µs/op | server CPU µs/op | max holders | violations |"
    );
    let _ = writeln!(t, "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} | {} |",
            r.nodes,
            r.concurrency,
            r.mode,
            r.label(),
            r.m.ops_per_s,
            r.m.p50_us,
            r.m.p99_us,
            r.m.cpu_us_per_op,
            r.server_cpu_us_per_op
                .map_or_else(|| "–".to_string(), |x| format!("{x:.1}")),
            r.m.max_holders,
            r.m.violations
        );
    }
    if !ceiling.is_empty() {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "| redis-benchmark (1 node) | clients | ops/s | p50 µs | p99 µs |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|");
        for c in ceiling {
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.0} | {:.0} |",
                c.command, c.clients, c.rps, c.p50_us, c.p99_us
            );
        }
    }
    let _ = writeln!(t);
    // Target 1: 1 node, C=1, p50 vs two redis-benchmark round trips.
    let mut sorted = trips.to_vec();
    sorted.sort_by(f64::total_cmp);
    let two_trips: f64 = match sorted.get(sorted.len() / 2) {
        Some(median) => *median,
        None => ceiling
            .iter()
            .filter(|c| c.clients == 1)
            .map(|c| c.p50_us)
            .sum(),
    };
    let ours = |nodes: usize, c: usize, mode: &str| {
        rows.iter()
            .filter(move |r| {
                r.client == "redlock" && r.nodes == nodes && r.concurrency == c && r.mode == mode
            })
            .collect::<Vec<_>>()
    };
    if two_trips > 0.0 {
        let parts: Vec<String> = ours(1, 1, "uncontended")
            .iter()
            .map(|r| {
                format!(
                    "{} {:.2}× ({:.0} µs)",
                    r.adapter,
                    r.m.p50_us / two_trips,
                    r.m.p50_us
                )
            })
            .collect();
        let _ = writeln!(
            t,
            "Target 1 (≤ 1.2×): 1 node, C=1, p50 of acquire+release ÷ (p50 SET NX PX + p50 EVALSHA, \
             1 client = {two_trips:.0} µs{}): {}",
            if trips.is_empty() {
                String::new()
            } else {
                format!(", median of {} taken between the rounds", trips.len())
            },
            parts.join(", ")
        );
    }
    // Target 2: 5 nodes, C=32, uncontended, vs every compared client.
    let others: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.client != "redlock" && r.nodes == 5 && r.concurrency == 32 && r.mode == "uncontended"
        })
        .collect();
    for other in others {
        let parts: Vec<String> = ours(5, 32, "uncontended")
            .iter()
            .map(|r| {
                format!(
                    "{} {:.2}× ops/s{}, {:.2}× CPU/op",
                    r.adapter,
                    r.m.ops_per_s / other.m.ops_per_s.max(f64::MIN_POSITIVE),
                    cpu_bound(r, other)
                        .map(|b| format!(" (the cores allow {b:.2}×)"))
                        .unwrap_or_default(),
                    r.m.cpu_us_per_op / other.m.cpu_us_per_op.max(f64::MIN_POSITIVE)
                )
            })
            .collect();
        let _ = writeln!(
            t,
            "Target 2 (≥ 2× ops/s, ≤ 0.5× CPU/op): 5 nodes, C=32, uncontended, vs {} \
             ({:.0} ops/s, {:.1} µs/op): {}",
            other.label(),
            other.m.ops_per_s,
            other.m.cpu_us_per_op,
            parts.join(", ")
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let row = Row {
            client: "redlock".into(),
            adapter: "tokio".into(),
            mode: "contended".into(),
            nodes: 5,
            concurrency: 32,
            duration_s: 2.0,
            ttl_ms: 10000,
            m: Measured {
                ops: 100,
                errors: 1,
                ops_per_s: 50.0,
                p50_us: 120.5,
                p99_us: 900.0,
                max_us: 2000.0,
                cpu_us_per_op: 33.25,
                max_holders: 1,
                violations: 0,
            },
            server_cpu_us_per_op: Some(28.5),
        };
        let back = Row::from_json(&row.json()).expect("parses");
        assert_eq!(back.json(), row.json());
        assert_eq!(back.server_cpu_us_per_op, Some(28.5));
        // A single case does not know the servers' CPU: the field is left out, not zero.
        let bare = Row {
            server_cpu_us_per_op: None,
            ..row
        };
        assert!(!bare.json().contains("server_cpu"));
        assert_eq!(
            Row::from_json(&bare.json()).unwrap().server_cpu_us_per_op,
            None
        );
        assert!(Row::from_json("not json").is_none());
        let fields = parse_flat_json(r#"{"a": "x\"y", "b": -1.5e3, "c": true}"#).unwrap();
        assert_eq!(fields[0], ("a".into(), Value::Str("x\"y".into())));
        assert_eq!(fields[1], ("b".into(), Value::Num(-1500.0)));
        assert_eq!(fields[2], ("c".into(), Value::Num(1.0)));
    }

    #[test]
    fn cpu_bound_ratio() {
        let row = |cpu, server| Row {
            m: Measured {
                cpu_us_per_op: cpu,
                ..Measured::default()
            },
            server_cpu_us_per_op: server,
            ..Row::default()
        };
        // 50 µs of client and server CPU per op against 100: at most twice the ops/s.
        let b = cpu_bound(&row(20.0, Some(30.0)), &row(50.0, Some(50.0))).unwrap();
        assert!((b - 2.0).abs() < 1e-9);
        assert_eq!(cpu_bound(&row(20.0, None), &row(50.0, Some(50.0))), None);
        assert_eq!(
            cpu_bound(&row(0.0, Some(0.0)), &row(50.0, Some(50.0))),
            None
        );
    }

    #[test]
    fn target_one_uses_the_round_trips_taken_between_rounds() {
        let ours = Row {
            client: "redlock".into(),
            adapter: "tokio".into(),
            mode: "uncontended".into(),
            nodes: 1,
            concurrency: 1,
            m: Measured {
                p50_us: 300.0,
                ..Measured::default()
            },
            ..Row::default()
        };
        let ceiling: Vec<Ceiling> = ["SET NX PX", "EVALSHA compare-and-delete"]
            .into_iter()
            .map(|command| Ceiling {
                command,
                clients: 1,
                rps: 10_000.0,
                p50_us: 100.0,
                p99_us: 200.0,
            })
            .collect();
        let rows = [ours];
        let with = table(&rows, &ceiling, &[150.0, 400.0, 250.0]);
        assert!(
            with.contains("1 client = 250 µs, median of 3") && with.contains("tokio 1.20×"),
            "{with}"
        );
        let without = table(&rows, &ceiling, &[]);
        assert!(
            without.contains("1 client = 200 µs)") && without.contains("tokio 1.50×"),
            "{without}"
        );
    }

    #[test]
    fn benchmark_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                    \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                    \"SET k,x NX\",\"25000.00\",\"0.040\",\"0.016\",\"0.039\",\"0.055\",\"0.071\",\"0.551\"\n";
        let (rps, p50, p99) = parse_benchmark_csv(text).unwrap();
        assert_eq!(rps, 25000.0);
        assert!((p50 - 39.0).abs() < 1e-9 && (p99 - 71.0).abs() < 1e-9);
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("x").is_err());
    }
}
