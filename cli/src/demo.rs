//! `redlock demo`: five local nodes, 32 contending workers, and a check that the lock held.
//!
//! Every worker has its own client (as 32 processes on 32 machines would) and, holding the lock,
//! increments a shared counter with a deliberately racy read-pause-write and records when it
//! entered and left. Afterwards the counter must equal the number of acquisitions and no two
//! recorded holds may overlap. Part-way through, one node is paused (SIGSTOP) for a second and
//! resumed: a quorum of 3 out of 5 keeps the lock working.

use clap::Args;
use redlock_cli::exit;
use redlock_harness::{Cluster, StartError};
use redlock_tokio::{Options, Redlock};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `redlock demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many redis-server nodes to start (`--nodes` elsewhere means node URLs).
    #[arg(
        long,
        env = "REDLOCK_DEMO_NODE_COUNT",
        default_value_t = 5,
        value_name = "N"
    )]
    node_count: usize,
    /// How many contending workers.
    #[arg(
        long,
        env = "REDLOCK_DEMO_WORKERS",
        default_value_t = 32,
        value_name = "W"
    )]
    workers: usize,
    /// How many times each worker takes the lock.
    #[arg(
        long,
        env = "REDLOCK_DEMO_ROUNDS",
        default_value_t = 30,
        value_name = "K"
    )]
    rounds: usize,
    /// Do not pause a node part-way through.
    #[arg(long, env = "REDLOCK_DEMO_NO_FAULT")]
    no_fault: bool,
}

/// The resource every worker contends for.
const RESOURCE: &str = "redlock-demo:counter";

#[derive(Debug, Default)]
struct Shared {
    counter: AtomicU64,
    holders: AtomicUsize,
    max_holders: AtomicUsize,
    acquisitions: AtomicU64,
    /// (entered, left) of every hold.
    holds: Mutex<Vec<(Instant, Instant)>>,
}

/// Runs `redlock demo`; returns the exit status (0 when verified).
pub fn main(args: DemoArgs, verbose: u8) -> u8 {
    let nodes = match Cluster::try_start(args.node_count.max(1)) {
        Ok(nodes) => nodes,
        Err(e @ StartError::NotInstalled) => {
            eprintln!("redlock demo: {e}");
            return exit::FAILURE;
        }
        Err(e) => {
            eprintln!("redlock demo: could not start the nodes: {e}");
            return exit::FAILURE;
        }
    };
    println!(
        "redlock demo: started {} redis-server nodes: {}",
        nodes.len(),
        nodes
            .urls()
            .iter()
            .map(|u| u.trim_start_matches("redis://"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redlock demo: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let code = rt.block_on(demo(&args, &nodes, verbose));
    drop(nodes);
    println!("redlock demo: nodes stopped");
    code
}

async fn demo(args: &DemoArgs, nodes: &Cluster, verbose: u8) -> u8 {
    let total = (args.workers * args.rounds) as u64;
    let shared = Arc::new(Shared::default());
    let mut options = Options::default();
    options.retry_count = None;
    options.retry_delay = Duration::from_millis(20);
    options.retry_jitter = Duration::from_millis(20);
    let ttl = Duration::from_secs(5);
    println!(
        "redlock demo: {} workers x {} rounds on {RESOURCE:?} (ttl {ttl:?}, quorum {} of {})",
        args.workers,
        args.rounds,
        nodes.len() / 2 + 1,
        nodes.len()
    );
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.workers {
        let client = match Redlock::connect(nodes.urls(), options.clone()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("redlock demo: cannot connect: {e}");
                return exit::FAILURE;
            }
        };
        let shared = shared.clone();
        let rounds = args.rounds;
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let lock = client.acquire([RESOURCE], ttl).await?;
                let entered = Instant::now();
                let inside = shared.holders.fetch_add(1, Ordering::SeqCst) + 1;
                shared.max_holders.fetch_max(inside, Ordering::SeqCst);
                // A racy increment: only mutual exclusion keeps it correct.
                let seen = shared.counter.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
                shared.counter.store(seen + 1, Ordering::SeqCst);
                shared.holders.fetch_sub(1, Ordering::SeqCst);
                let left = Instant::now();
                shared
                    .holds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((entered, left));
                shared.acquisitions.fetch_add(1, Ordering::SeqCst);
                client.release(&lock).await?;
            }
            Ok::<(), redlock_tokio::Error>(())
        }));
    }

    let tty = std::io::stderr().is_terminal();
    let fault_node = nodes.len() - 1;
    let mut fault: Option<Instant> = None;
    let mut faulted = args.no_fault || nodes.len() < 3;
    let mut last_line = Instant::now();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let done = shared.acquisitions.load(Ordering::SeqCst);
        let elapsed = start.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "{done}/{total} acquisitions  {:.0}/s  counter {}  max holders {}{}",
            done as f64 / elapsed,
            shared.counter.load(Ordering::SeqCst),
            shared.max_holders.load(Ordering::SeqCst),
            if fault.is_some() {
                format!("  (node {} paused)", fault_node + 1)
            } else {
                String::new()
            }
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if last_line.elapsed() >= Duration::from_secs(1) || done == total {
            eprintln!("{line}");
            last_line = Instant::now();
        }
        if done >= total || tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        if !faulted && done >= total / 3 {
            if nodes.try_stop(fault_node).is_ok() {
                fault = Some(Instant::now());
                if !tty || verbose > 0 {
                    eprintln!("paused node {} (SIGSTOP)", fault_node + 1);
                }
            }
            faulted = true;
        }
        if fault.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
            let _ = nodes.try_cont(fault_node);
            fault = None;
            if !tty || verbose > 0 {
                eprintln!("resumed node {} (SIGCONT)", fault_node + 1);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
    }
    if fault.is_some() {
        let _ = nodes.try_cont(fault_node);
    }
    if tty {
        eprintln!();
    }
    if interrupted {
        eprintln!("redlock demo: interrupted");
        for t in &tasks {
            t.abort();
        }
        return 130;
    }
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("a worker failed: {e}")),
            Err(e) => failures.push(format!("a worker panicked: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let counter = shared.counter.load(Ordering::SeqCst);
    let acquisitions = shared.acquisitions.load(Ordering::SeqCst);
    let max_holders = shared.max_holders.load(Ordering::SeqCst);
    let mut holds = std::mem::take(&mut *shared.holds.lock().unwrap_or_else(|p| p.into_inner()));
    holds.sort();
    let overlaps = holds.windows(2).filter(|w| w[1].0 < w[0].1).count();
    if counter != total {
        failures.push(format!(
            "counter is {counter}, expected {total} ({acquisitions} acquisitions)"
        ));
    }
    if overlaps > 0 || max_holders > 1 {
        failures.push(format!(
            "holds overlapped: {overlaps} overlapping pair(s), at most {max_holders} holders at once"
        ));
    }
    if failures.is_empty() {
        println!(
            "redlock demo: OK in {:.1}s: counter = {counter} = {} workers x {} rounds; \
             {} holds, no two overlapped (max holders {max_holders})",
            elapsed.as_secs_f64(),
            args.workers,
            args.rounds,
            holds.len()
        );
        0
    } else {
        for f in &failures {
            eprintln!("redlock demo: FAILED: {f}");
        }
        exit::FAILURE
    }
}
