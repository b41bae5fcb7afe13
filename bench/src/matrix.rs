//! The matrix: local nodes, every adapter and compared program on the same cases, each in a
//! fresh process; the servers' CPU around each case; the table and the targets.

use crate::ceiling::{ceilings, Ceiling};
use crate::row::Row;
use crate::{cpu, Adapter, BenchArgs, Mode};
use redlock_cli::exit;
use redlock_harness::Cluster;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the matrix `args` describe, printing each case's JSON line and then the table; returns
/// the exit status ([`exit::FAILURE`] when a contended case saw two holders at once).
pub fn main(args: &BenchArgs) -> u8 {
    let verbose = args.verbose;
    let duration = args.duration.unwrap_or(Duration::from_secs(2));
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("redlock-bench: cannot find my own executable: {e}");
            return exit::FAILURE;
        }
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut ceiling: Vec<Ceiling> = Vec::new();
    // Two one-client round trips (SET + EVALSHA p50), measured in every round of the 1-node
    // C=1 uncontended case: target 1's yardstick, taken beside what it measures.
    let mut trips: Vec<f64> = Vec::new();
    for &n in &args.node_counts {
        eprintln!("redlock-bench: starting {n} local redis-server node(s)");
        let nodes = match Cluster::try_start(n) {
            Ok(nodes) => nodes,
            Err(e) => {
                eprintln!("redlock-bench: {e}");
                return exit::FAILURE;
            }
        };
        let urls = nodes.urls_arg();
        if ceiling.is_empty() {
            eprintln!("redlock-bench: redis-benchmark ceiling (1 and 50 clients)");
            match ceilings(&nodes.url(0), duration, &[1, 50]) {
                Ok(cs) => {
                    for c in &cs {
                        println!("{}", c.json());
                    }
                    ceiling = cs;
                }
                Err(e) => eprintln!("redlock-bench: ceiling not measured: {e}"),
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
                        eprintln!("redlock-bench: {what}");
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
                            Err(e) => eprintln!("redlock-bench: case failed ({what}): {e}"),
                        }
                    }
                    if n == 1 && c == 1 && mode == Mode::Uncontended {
                        eprintln!("redlock-bench: redis-benchmark round trips (1 client)");
                        match ceilings(&nodes.url(0), duration, &[1]) {
                            Ok(cs) => {
                                for c in &cs {
                                    println!("{}", c.json());
                                }
                                trips.push(cs.iter().map(|c| c.p50_us).sum());
                            }
                            Err(e) => eprintln!("redlock-bench: round trips not measured: {e}"),
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
        eprintln!("redlock-bench: a contended case saw two holders at once");
        return exit::FAILURE;
    }
    0
}

/// CPU time used so far by all the local nodes' `redis-server` processes (`None` when one
/// cannot be read).
fn servers_time(nodes: &Cluster) -> Option<Duration> {
    (0..nodes.len())
        .map(|i| nodes.try_pid(i).and_then(cpu::pid_time))
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
    use crate::row::Measured;

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
}
