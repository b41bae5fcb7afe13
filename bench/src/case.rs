//! One case: `--concurrency` workers on one client for `--duration`, against `--urls`, on one
//! adapter; prints the case's JSON line.

use crate::ceiling::ceilings;
use crate::row::{Measured, Row};
use crate::{cpu, Adapter, BenchArgs, Mode};
use redlock_async::{BoxFuture, Runtime};
use redlock_cli::exit;
use redlock_core::Options;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
    /// `Options::spin_before_park`, when not the library's default.
    spin: Option<Duration>,
}

impl Case {
    fn options(&self) -> Options {
        let mut o = Options::default();
        match self.mode {
            Mode::Uncontended | Mode::Held | Mode::Bare | Mode::Handoff => o.retry_count = Some(0),
            Mode::Contended => {
                o.retry_count = None;
                o.retry_delay = CONTENDED_RETRY_DELAY;
                o.retry_jitter = CONTENDED_RETRY_DELAY;
            }
        }
        if let Some(spin) = self.spin {
            o.spin_before_park = spin;
        }
        o
    }

    fn resource(&self, worker: usize, i: u64) -> String {
        match self.mode {
            Mode::Uncontended | Mode::Held | Mode::Bare | Mode::Handoff => {
                format!("{}:{worker}:{i}", self.prefix)
            }
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

fn measured(ctx: &Ctx, tallies: Vec<Tally>, cpu0: Option<Duration>) -> Measured {
    let cpu = match (cpu0, cpu::process_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    let completed: u64 = tallies.iter().map(|t| t.completed).sum();
    let errors = tallies.iter().map(|t| t.errors).sum();
    let lat: Vec<u64> = tallies.into_iter().flat_map(|t| t.lat_ns).collect();
    let mut m = Measured::from_latencies(lat, completed, errors, ctx.case.duration, cpu);
    // Otherwise a fresh resource per operation: one holder each, by construction.
    if ctx.case.mode == Mode::Contended {
        m.max_holders = ctx.max_holders.load(Ordering::SeqCst) as u64;
    }
    m.violations = ctx.violations.load(Ordering::SeqCst);
    m
}

/// Runs the case `args` describe and prints its JSON line (after the ceiling's lines with
/// `--ceiling`); returns the exit status.
pub fn main(args: &BenchArgs) -> u8 {
    let case = Case {
        urls: args
            .urls
            .iter()
            .chain(&args.node)
            .map(|u| u.trim().to_string())
            .collect(),
        concurrency: args.concurrency.max(1),
        duration: args.duration.unwrap_or(Duration::from_secs(5)),
        mode: args.mode,
        ttl: Duration::from_millis(args.ttl_ms),
        prefix: format!("redlock-bench:{}:{}", std::process::id(), unique()),
        spin: args.spin_us.map(Duration::from_micros),
    };
    if args.mode == Mode::Held {
        return held_main(args, &case);
    }
    if args.mode == Mode::Bare {
        return bare_main(args, &case);
    }
    if args.mode == Mode::Handoff {
        return handoff_main(args, &case);
    }
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
            eprintln!("redlock-bench: failed: {e}");
            return exit::FAILURE;
        }
    };
    if args.ceiling {
        match ceilings(&case.urls[0], case.duration, &[1, 50]) {
            Ok(cs) => {
                for c in cs {
                    println!("{}", c.json());
                }
            }
            Err(e) => eprintln!("redlock-bench: ceiling not measured: {e}"),
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
        server_wakeups_per_op: None,
        setup: String::new(),
        held: None,
    };
    println!("{}", row.json());
    0
}

/// `--mode held`: the many-held-leases case ([`crate::held`]) on an async adapter.
fn held_main(args: &BenchArgs, case: &Case) -> u8 {
    let (urls, leases, hold, ttl, prefix) = (
        &case.urls,
        args.leases.max(1),
        case.duration,
        case.ttl,
        &case.prefix,
    );
    let result = match args.adapter {
        Adapter::Tokio => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(crate::held::run::<redlock_tokio::Tokio>(
                    urls, leases, hold, ttl, prefix,
                ))
            }),
        Adapter::AsyncStd => async_std::task::block_on(crate::held::run::<
            redlock_async_std::AsyncStd,
        >(urls, leases, hold, ttl, prefix)),
        Adapter::Smol => smol::block_on(crate::held::run::<redlock_smol::Smol>(
            urls, leases, hold, ttl, prefix,
        )),
        Adapter::Blocking => Err("the held case runs on the async adapters".to_string()),
    };
    let (m, held) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("redlock-bench: failed: {e}");
            return exit::FAILURE;
        }
    };
    let row = Row {
        client: "redlock".into(),
        adapter: args.adapter.name().into(),
        mode: args.mode.name().into(),
        nodes: case.urls.len(),
        concurrency: leases,
        duration_s: case.duration.as_secs_f64(),
        ttl_ms: args.ttl_ms,
        m,
        server_cpu_us_per_op: None,
        server_wakeups_per_op: None,
        setup: String::new(),
        held: Some(held),
    };
    println!("{}", row.json());
    0
}

/// `--mode bare`: the runtime alone ([`crate::bare`]); prints its JSON line, client
/// `runtime alone`.
fn bare_main(args: &BenchArgs, case: &Case) -> u8 {
    let m = match crate::bare::run(
        args.adapter,
        &case.urls[0],
        case.ttl,
        case.duration,
        &case.prefix,
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("redlock-bench: failed: {e}");
            return exit::FAILURE;
        }
    };
    let row = Row {
        client: crate::bare::CLIENT.into(),
        adapter: args.adapter.name().into(),
        mode: args.mode.name().into(),
        nodes: 1,
        concurrency: 1,
        duration_s: case.duration.as_secs_f64(),
        ttl_ms: args.ttl_ms,
        m,
        ..Row::default()
    };
    println!("{}", row.json());
    0
}

/// `--mode handoff`: the thread hand-offs alone ([`crate::handoff`]); prints its JSON line,
/// client `thread hand-offs alone`, adapter `blocking` (whose cost it is).
fn handoff_main(args: &BenchArgs, case: &Case) -> u8 {
    let row = Row {
        client: crate::handoff::CLIENT.into(),
        adapter: Adapter::Blocking.name().into(),
        mode: args.mode.name().into(),
        nodes: case.urls.len().max(1),
        concurrency: case.concurrency,
        duration_s: case.duration.as_secs_f64(),
        ttl_ms: args.ttl_ms,
        m: crate::handoff::run(case.concurrency, case.duration),
        ..Row::default()
    };
    println!("{}", row.json());
    0
}

fn unique() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}
