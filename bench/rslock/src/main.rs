//! The `redlock bench` single case, run with the rslock crate (0.10, redis-rs multiplexed
//! connections on tokio), so the two clients can sit in one table.
//!
//! Same flags (`--urls URL,… --concurrency C --duration S --mode uncontended|contended
//! [--adapter tokio] [--ttl-ms MS]`), same method (one client shared by C spawned tasks on a
//! tokio multi-thread runtime, 50 warm-up operations, contended retries uniform in 0–20 ms, one
//! yield inside the critical section, CPU from `/proc/self/stat`), same JSON line at the end.
//!
//! It lives in its own cargo project so that rslock and redis-rs never enter the main
//! workspace's dependency tree.

use rslock::LockManager;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Uncontended,
    Contended,
}

struct Case {
    urls: Vec<String>,
    concurrency: usize,
    duration: Duration,
    mode: Mode,
    ttl: Duration,
    prefix: String,
}

struct Ctx {
    case: Case,
    end: Instant,
    holders: AtomicUsize,
    max_holders: AtomicUsize,
    violations: AtomicU64,
}

#[derive(Default)]
struct Tally {
    lat_ns: Vec<u64>,
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

fn usage(msg: &str) -> ! {
    eprintln!(
        "rslock-bench: {msg}\nusage: rslock-bench --urls URL,… [--concurrency C] [--duration S] \
         [--mode uncontended|contended] [--adapter tokio] [--ttl-ms MS]"
    );
    std::process::exit(2)
}

fn parse_args() -> Case {
    let mut case = Case {
        urls: Vec::new(),
        concurrency: 1,
        duration: Duration::from_secs(5),
        mode: Mode::Uncontended,
        ttl: Duration::from_millis(10_000),
        prefix: format!("rslock-bench:{}", std::process::id()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--urls" => case.urls = value().split(',').map(|s| s.trim().to_string()).collect(),
            "--concurrency" => {
                case.concurrency = value()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --concurrency"))
            }
            "--duration" => {
                let v = value();
                let secs: f64 = v
                    .trim_end_matches('s')
                    .parse()
                    .unwrap_or_else(|_| usage("bad --duration"));
                case.duration = Duration::from_secs_f64(secs);
            }
            "--mode" => {
                case.mode = match value().as_str() {
                    "uncontended" => Mode::Uncontended,
                    "contended" => Mode::Contended,
                    other => usage(&format!("unknown mode {other}")),
                }
            }
            "--adapter" => {
                if value() != "tokio" {
                    usage("rslock runs on tokio only");
                }
            }
            "--ttl-ms" => {
                case.ttl =
                    Duration::from_millis(value().parse().unwrap_or_else(|_| usage("bad --ttl-ms")))
            }
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if case.urls.is_empty() {
        usage("--urls is required");
    }
    case
}

fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz: u64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100);
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz.max(1)))
}

async fn worker(manager: LockManager, w: usize, ctx: Arc<Ctx>) -> Tally {
    let mut t = Tally::default();
    for i in 0u64.. {
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        let resource = match ctx.case.mode {
            Mode::Uncontended => format!("{}:{w}:{i}", ctx.case.prefix),
            Mode::Contended => format!("{}:contended", ctx.case.prefix),
        };
        match manager.lock(resource.as_bytes(), ctx.case.ttl).await {
            Ok(lock) => {
                if ctx.case.mode == Mode::Contended {
                    let inside = ctx.holders.fetch_add(1, Ordering::SeqCst) + 1;
                    ctx.max_holders.fetch_max(inside, Ordering::SeqCst);
                    if inside > 1 {
                        ctx.violations.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                    ctx.holders.fetch_sub(1, Ordering::SeqCst);
                }
                manager.unlock(&lock).await;
                t.record(&ctx, start, true);
            }
            Err(_) => t.record(&ctx, start, false),
        }
    }
    t
}

fn main() {
    let case = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let line = rt.block_on(async move {
        let mut manager = LockManager::new(case.urls.clone());
        match case.mode {
            Mode::Uncontended => manager.set_retry(1, Duration::from_millis(1)),
            Mode::Contended => manager.set_retry(u32::MAX, Duration::from_millis(20)),
        }
        for i in 0..50 {
            let lock = manager
                .lock(format!("{}:warmup:{i}", case.prefix).as_bytes(), case.ttl)
                .await
                .unwrap_or_else(|e| {
                    eprintln!("rslock-bench: warm-up acquire failed: {e}");
                    std::process::exit(1)
                });
            manager.unlock(&lock).await;
        }
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        let (nodes, concurrency, duration, mode, ttl) = (
            case.urls.len(),
            case.concurrency,
            case.duration,
            case.mode,
            case.ttl,
        );
        let ctx = Arc::new(Ctx {
            end: t0 + case.duration,
            case,
            holders: AtomicUsize::new(0),
            max_holders: AtomicUsize::new(0),
            violations: AtomicU64::new(0),
        });
        let handles: Vec<_> = (0..concurrency)
            .map(|w| tokio::spawn(worker(manager.clone(), w, ctx.clone())))
            .collect();
        let mut tallies = Vec::new();
        for h in handles {
            tallies.push(h.await.unwrap_or_default());
        }
        let cpu = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
        let completed: u64 = tallies.iter().map(|t| t.completed).sum();
        let errors: u64 = tallies.iter().map(|t| t.errors).sum();
        let mut lat: Vec<u64> = tallies.into_iter().flat_map(|t| t.lat_ns).collect();
        lat.sort_unstable();
        let pct = |p: usize| {
            if lat.is_empty() {
                0.0
            } else {
                lat[(lat.len() * p / 100).min(lat.len() - 1)] as f64 / 1000.0
            }
        };
        let ops = lat.len() as u64;
        let max_holders = match mode {
            Mode::Uncontended => u64::from(ops > 0),
            Mode::Contended => ctx.max_holders.load(Ordering::SeqCst) as u64,
        };
        format!(
            "{{\"client\":\"rslock\",\"adapter\":\"tokio\",\"mode\":\"{}\",\"nodes\":{nodes},\
             \"concurrency\":{concurrency},\"duration_s\":{},\"ttl_ms\":{},\"ops\":{ops},\
             \"errors\":{errors},\"ops_per_s\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\
             \"cpu_us_per_op\":{:.2},\"max_holders\":{max_holders},\"violations\":{}}}",
            match mode {
                Mode::Uncontended => "uncontended",
                Mode::Contended => "contended",
            },
            duration.as_secs_f64(),
            ttl.as_millis(),
            ops as f64 / duration.as_secs_f64(),
            pct(50),
            pct(99),
            if completed > 0 {
                cpu.as_secs_f64() * 1e6 / completed as f64
            } else {
                0.0
            },
            ctx.violations.load(Ordering::SeqCst)
        )
    });
    println!("{line}");
}
