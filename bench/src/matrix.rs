//! The matrix: local nodes, every adapter and compared program on the same cases, each in a
//! fresh process; the servers' CPU around each case; the table and the targets.

use crate::ceiling::{ceilings, Ceiling};
use crate::row::{Row, NO_SPIN};
use crate::targets::{self, Check};
use crate::tls_certs::SelfSigned;
use crate::{cpu, Adapter, BenchArgs, Extra, Mode};
use redlock_cli::exit;
use redlock_harness::{Cluster, RedisCluster, Serve};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A set of servers the matrix runs cases against.
#[derive(Clone)]
struct Servers {
    /// How the rows name it: empty (plain nodes), `tls`, `cluster`, or [`NO_SPIN`] (plain
    /// nodes, our client with its spin off).
    setup: &'static str,
    /// The node URLs a case is given.
    urls: Vec<String>,
    /// The server processes, for their CPU time (all of a cluster's members).
    pids: Vec<Option<u32>>,
    /// Each node's plain TCP address, to count its wake-ups (`INFO stats`); empty for a
    /// cluster (its members' reads include each other's traffic).
    addrs: Vec<std::net::SocketAddr>,
}

impl Servers {
    fn plain(nodes: &Cluster) -> Servers {
        Servers {
            setup: "",
            urls: nodes.urls(),
            pids: (0..nodes.len()).map(|i| nodes.try_pid(i)).collect(),
            addrs: (0..nodes.len()).map(|i| nodes.addr(i)).collect(),
        }
    }

    /// CPU time used so far by all the servers (`None` when one cannot be read).
    fn time(&self) -> Option<Duration> {
        self.pids.iter().map(|p| p.and_then(cpu::pid_time)).sum()
    }
}

/// A case the matrix could not run, shown in the table with the reason.
struct Skipped {
    setup: &'static str,
    nodes: usize,
    concurrency: usize,
    mode: &'static str,
    label: String,
    reason: String,
}

/// What the matrix has measured so far.
struct Results {
    /// Per round, its rows.
    rounds: Vec<Vec<Row>>,
    /// Per round, two one-client `redis-benchmark` round trips (SET + EVALSHA p50), measured
    /// beside the 1-node C=1 uncontended case: the latency target's yardstick.
    trips: Vec<Option<f64>>,
    /// Per round, the server CPU per request of those one-client runs: what one wake-up of
    /// the server costs (each request arrives alone).
    wakeups: Vec<Option<f64>>,
    skipped: Vec<Skipped>,
}

/// Everything one case needs besides its servers.
struct Plan<'a> {
    args: &'a BenchArgs,
    duration: Duration,
    programs: Vec<(Option<Adapter>, PathBuf)>,
}

impl Plan<'_> {
    /// Runs `mode` at concurrency `c` on `servers`, every round, every program in turn in each
    /// (so slow spells of a shared machine hit every client alike), for the programs `which`
    /// keeps; `between` runs after each round.
    fn run(
        &self,
        servers: &Servers,
        c: usize,
        mode: Mode,
        which: impl Fn(Option<Adapter>) -> bool,
        results: &mut Results,
        mut between: impl FnMut(usize, &mut Results),
    ) {
        for round in 0..results.rounds.len() {
            self.run_round(servers, c, mode, &which, round, results);
            between(round, results);
        }
    }

    /// One round of [`Plan::run`], without the `between`.
    fn run_round(
        &self,
        servers: &Servers,
        c: usize,
        mode: Mode,
        which: &impl Fn(Option<Adapter>) -> bool,
        round: usize,
        results: &mut Results,
    ) {
        let rounds = results.rounds.len();
        for (adapter, program) in self.programs.iter().filter(|(a, _)| which(*a)) {
            let mut cmd = Command::new(program);
            if servers.urls.iter().any(|u| u.contains(',')) {
                for u in &servers.urls {
                    cmd.args(["--node", u]);
                }
            } else {
                cmd.args(["--urls", &servers.urls.join(",")]);
            }
            let duration = if mode == Mode::Held {
                self.args.held_duration
            } else {
                self.duration
            };
            cmd.args(["--concurrency", &c.to_string()])
                .args(["--duration", &duration.as_secs_f64().to_string()])
                .args(["--mode", mode.name()])
                .args(["--ttl-ms", &self.args.ttl_ms.to_string()]);
            if mode == Mode::Held {
                cmd.args(["--leases", &self.args.leases.to_string()]);
            }
            if let Some(a) = adapter {
                cmd.args(["--adapter", a.name()]);
            }
            if servers.setup == NO_SPIN {
                cmd.args(["--spin-us", "0"]);
            }
            let what = format!(
                "{}{} node(s), C={c}, {}, {}{}",
                servers.urls.len(),
                match servers.setup {
                    "" => String::new(),
                    s => format!(" {s}"),
                },
                mode.name(),
                adapter.map_or_else(|| program.display().to_string(), |a| a.name().into()),
                if rounds > 1 {
                    format!(" (round {})", round + 1)
                } else {
                    String::new()
                }
            );
            eprintln!("redlock-bench: {what}");
            let server0 = servers.time();
            let reads0 = crate::wakeups::reads(&servers.addrs);
            // The held case acquires all its leases before the hold and releases them after.
            let limit = duration * 2 + Duration::from_secs(120);
            match run_case(cmd, limit, self.args.verbose) {
                Ok(mut row) => {
                    // Over the whole case (connect and warm-up included: a few dozen
                    // operations against tens of thousands).
                    if let (Some(a), Some(b)) = (server0, servers.time()) {
                        if row.m.ops > 0 && !matches!(mode, Mode::Held | Mode::Handoff) {
                            let us = b.saturating_sub(a).as_secs_f64() * 1e6;
                            row.server_cpu_us_per_op = Some(us / row.m.ops as f64);
                        }
                    }
                    let reads = (reads0, crate::wakeups::reads(&servers.addrs));
                    let serverless = matches!(mode, Mode::Held | Mode::Handoff);
                    if let (Some(a), Some(b), false) = (reads.0, reads.1, serverless) {
                        row.server_wakeups_per_op =
                            crate::wakeups::per_op(a, b, row.m.ops, servers.addrs.len());
                    }
                    row.setup = servers.setup.to_string();
                    println!("{}", row.json());
                    results.rounds[round].push(row);
                }
                Err(e) => eprintln!("redlock-bench: case failed ({what}): {e}"),
            }
        }
    }
}

/// Runs the matrix `args` describe, printing each case's JSON line, each round's targets, then
/// the table of median rounds and the targets over the rounds; returns the exit status
/// ([`exit::FAILURE`] when a contended case saw two holders at once).
pub fn main(args: &BenchArgs) -> u8 {
    let duration = args.duration.unwrap_or(Duration::from_secs(2));
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("redlock-bench: cannot find my own executable: {e}");
            return exit::FAILURE;
        }
    };
    let mut programs: Vec<(Option<Adapter>, PathBuf)> = args
        .adapters
        .iter()
        .map(|a| (Some(*a), exe.clone()))
        .collect();
    programs.extend(args.compare.iter().map(|p| (None, p.clone())));
    let plan = Plan {
        args,
        duration,
        programs,
    };
    let rounds = args.repeat.max(1);
    let mut results = Results {
        rounds: vec![Vec::new(); rounds],
        trips: vec![None; rounds],
        wakeups: vec![None; rounds],
        skipped: Vec::new(),
    };
    let compared = |a: Option<Adapter>| a.is_none();
    let ours = |a: Option<Adapter>| a.is_some();
    let mut ceiling: Vec<Ceiling> = Vec::new();
    for &n in &args.node_counts {
        eprintln!("redlock-bench: starting {n} local redis-server node(s)");
        let nodes = match Cluster::try_start(n) {
            Ok(nodes) => nodes,
            Err(e) => {
                eprintln!("redlock-bench: {e}");
                return exit::FAILURE;
            }
        };
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
        let servers = Servers::plain(&nodes);
        for &c in &args.concurrencies {
            for mode in [Mode::Uncontended, Mode::Contended] {
                if !args.modes.contains(&mode) {
                    continue;
                }
                let yardstick = n == 1 && c == 1 && mode == Mode::Uncontended;
                let beside_blocking = n == 1 && c == 32 && mode == Mode::Uncontended;
                plan.run(
                    &servers,
                    c,
                    mode,
                    |_| true,
                    &mut results,
                    |round, results| {
                        if beside_blocking {
                            // The least a thread per caller costs (no Redis), what the
                            // blocking adapter's C=32 cases sit on.
                            let blocking = |a: Option<Adapter>| a == Some(Adapter::Blocking);
                            plan.run_round(&servers, c, Mode::Handoff, &blocking, round, results);
                        }
                        if !yardstick {
                            return;
                        }
                        // The runtimes alone, what the library's one-client p50 sits on.
                        plan.run_round(&servers, 1, Mode::Bare, &ours, round, results);
                        // Ours again without the spin, for what it costs.
                        let no_spin = Servers {
                            setup: NO_SPIN,
                            ..servers.clone()
                        };
                        plan.run_round(&no_spin, 1, Mode::Uncontended, &ours, round, results);
                        eprintln!("redlock-bench: redis-benchmark round trips (1 client)");
                        let server0 = servers.time();
                        match ceilings(&nodes.url(0), duration, &[1]) {
                            Ok(cs) => {
                                for c in &cs {
                                    println!("{}", c.json());
                                }
                                results.trips[round] = Some(cs.iter().map(|c| c.p50_us).sum());
                                let requests: usize = cs.iter().map(|c| c.requests).sum();
                                if let (Some(a), Some(b)) = (server0, servers.time()) {
                                    let us = b.saturating_sub(a).as_secs_f64() * 1e6;
                                    results.wakeups[round] = Some(us / requests.max(1) as f64);
                                }
                            }
                            Err(e) => eprintln!("redlock-bench: round trips not measured: {e}"),
                        }
                    },
                );
            }
        }
    }
    let label = |p: &(Option<Adapter>, PathBuf)| {
        p.1.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    };
    let compared_labels: Vec<String> = plan
        .programs
        .iter()
        .filter(|p| compared(p.0))
        .map(label)
        .collect();
    if args.extras.contains(&Extra::Tls) {
        match tls_servers(5) {
            Ok((servers, _certs, _nodes)) => {
                plan.run(
                    &servers,
                    32,
                    Mode::Uncontended,
                    ours,
                    &mut results,
                    |_, _| {},
                );
                for l in &compared_labels {
                    results.skipped.push(Skipped {
                        setup: "tls",
                        nodes: 5,
                        concurrency: 32,
                        mode: "uncontended",
                        label: l.clone(),
                        reason: "not run: bench/rslock builds redis-rs without its TLS features"
                            .into(),
                    });
                }
            }
            Err(e) => results.skipped.push(Skipped {
                setup: "tls",
                nodes: 5,
                concurrency: 32,
                mode: "uncontended",
                label: "every client".into(),
                reason: format!("not run: {e}"),
            }),
        }
    }
    if args.extras.contains(&Extra::Cluster) {
        match cluster_servers() {
            Ok((servers, _cluster)) => {
                plan.run(
                    &servers,
                    32,
                    Mode::Uncontended,
                    ours,
                    &mut results,
                    |_, _| {},
                );
                for l in &compared_labels {
                    results.skipped.push(Skipped {
                        setup: "cluster",
                        nodes: 1,
                        concurrency: 32,
                        mode: "uncontended",
                        label: l.clone(),
                        reason: "not run: rslock takes standalone nodes only".into(),
                    });
                }
            }
            Err(e) => results.skipped.push(Skipped {
                setup: "cluster",
                nodes: 1,
                concurrency: 32,
                mode: "uncontended",
                label: "every client".into(),
                reason: format!("not run: {e}"),
            }),
        }
    }
    // On one adapter (tokio when listed): the case measures the keep-alive, which is the
    // same driver on every runtime, and takes a minute a round.
    let held_on = args
        .adapters
        .iter()
        .copied()
        .filter(|a| *a != Adapter::Blocking)
        .min_by_key(|a| *a != Adapter::Tokio);
    if let (true, Some(on)) = (args.extras.contains(&Extra::Held), held_on) {
        eprintln!("redlock-bench: starting 5 local redis-server nodes (held leases)");
        match Cluster::try_start(5) {
            Ok(nodes) => {
                let servers = Servers::plain(&nodes);
                let only = |a: Option<Adapter>| a == Some(on);
                plan.run(&servers, 1, Mode::Held, only, &mut results, |_, _| {});
            }
            Err(e) => eprintln!("redlock-bench: held leases not measured: {e}"),
        }
    }
    let checks: Vec<Vec<Check>> = results
        .rounds
        .iter()
        .zip(results.trips.iter().zip(&results.wakeups))
        .map(|(rows, (trips, wakeup))| targets::checks(rows, *trips, *wakeup))
        .collect();
    println!();
    if rounds > 1 {
        for (i, c) in checks.iter().enumerate() {
            print!("{}", targets::round_text(i + 1, c));
        }
        println!();
    }
    let medians = medians(&results.rounds);
    print!(
        "{}",
        table(
            &medians,
            &results.skipped,
            &ceiling,
            &results.trips,
            &results.wakeups,
        )
    );
    println!();
    print!("{}", targets::summary(&checks));
    let bad = results.rounds.iter().flatten().any(|r| r.m.violations > 0);
    if bad {
        eprintln!("redlock-bench: a contended case saw two holders at once");
        return exit::FAILURE;
    }
    0
}

/// `n` nodes serving TLS with a throw-away certificate, as `rediss://…#insecure` URLs; the
/// certificate files and the nodes live as long as the returned values.
fn tls_servers(n: usize) -> Result<(Servers, SelfSigned, Cluster), String> {
    let certs = SelfSigned::generate()?;
    eprintln!("redlock-bench: starting {n} local redis-server node(s) over TLS");
    let serve = Serve {
        tls: Some(certs.server_tls()),
        unix_socket: false,
    };
    let nodes = Cluster::try_start_serving(n, &serve).map_err(|e| e.to_string())?;
    let servers = Servers {
        setup: "tls",
        urls: (0..n)
            .map(|i| format!("rediss://127.0.0.1:{}#insecure", nodes.tls_port(i)))
            .collect(),
        pids: (0..n).map(|i| nodes.try_pid(i)).collect(),
        addrs: (0..n).map(|i| nodes.addr(i)).collect(),
    };
    Ok((servers, certs, nodes))
}

/// One Redis Cluster of 3 primaries as one node (`redis+cluster://`), when this build reads
/// such URLs; else why not.
fn cluster_servers() -> Result<(Servers, RedisCluster), String> {
    // Asked of the library before starting anything: cluster nodes are work in progress.
    if let Err(e) = redlock_async::parse_node_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001") {
        return Err(format!(
            "this build does not take redis+cluster:// nodes ({e})"
        ));
    }
    eprintln!("redlock-bench: starting a Redis Cluster of 3 primaries");
    let cluster = RedisCluster::try_start(3, 0).map_err(|e| e.to_string())?;
    let servers = Servers {
        setup: "cluster",
        urls: vec![cluster.cluster_url()],
        pids: (0..cluster.len()).map(|i| cluster.try_pid(i)).collect(),
        addrs: Vec::new(),
    };
    Ok((servers, cluster))
}

/// Per case (setup, nodes, concurrency, mode, client), the median round by ops/s, with the
/// safety figures (holders, overlaps) from every round; in the table's order: each TLS case
/// beside its plain one, the cluster beside one standalone node.
fn medians(rounds: &[Vec<Row>]) -> Vec<Row> {
    let key = |r: &Row| {
        (
            r.setup.clone(),
            r.nodes,
            r.concurrency,
            r.mode.clone(),
            r.label(),
        )
    };
    let mut keys = Vec::new();
    for r in rounds.iter().flatten() {
        if !keys.contains(&key(r)) {
            keys.push(key(r));
        }
    }
    let mut out: Vec<Row> = keys
        .iter()
        .filter_map(|k| {
            let mut all: Vec<&Row> = rounds.iter().flatten().filter(|r| key(r) == *k).collect();
            all.sort_by(|a, b| a.m.ops_per_s.total_cmp(&b.m.ops_per_s));
            let mut median = (*all.get(all.len() / 2)?).clone();
            median.m.violations = all.iter().map(|x| x.m.violations).sum();
            median.m.max_holders = all.iter().map(|x| x.m.max_holders).max().unwrap_or(0);
            Some(median)
        })
        .collect();
    out.sort_by_key(|r| position(&r.setup, r.nodes, r.concurrency, &r.mode));
    out
}

/// A table position: held or not, nodes, concurrency, mode, plain or not.
type Position = (usize, usize, usize, usize, usize);

/// Where a case sits in the table: the grid's order, a TLS or cluster case right after the
/// plain case it is compared with, the held leases last.
fn position(
    setup: &str,
    nodes: usize,
    c: usize,
    mode: &str,
) -> (usize, usize, usize, usize, usize) {
    let mode_i = match mode {
        "uncontended" => 0,
        "bare" | "handoff" => 1,
        "contended" => 2,
        _ => 3,
    };
    let held = usize::from(mode == "held");
    let setup_i = usize::from(!setup.is_empty());
    (held, nodes, c, mode_i, setup_i)
}

/// How the table's nodes column names a set of servers.
fn nodes_cell(setup: &str, nodes: usize) -> String {
    match setup {
        "tls" => format!("{nodes} (TLS)"),
        "cluster" => "1 cluster (3 primaries)".into(),
        NO_SPIN => format!("{nodes} (spin off)"),
        _ => nodes.to_string(),
    }
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

/// The results table (Markdown): the median rows, the cases not run (in their places, with
/// why), the ceiling, the latency yardstick of each round, and the held leases' figures.
fn table(
    rows: &[Row],
    skipped: &[Skipped],
    ceiling: &[Ceiling],
    trips: &[Option<f64>],
    wakeups: &[Option<f64>],
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| nodes | C | mode | client | ops/s | p50 µs | p99 µs | CPU µs/op | server CPU µs/op | max holders | violations |"
    );
    let _ = writeln!(t, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut lines: Vec<(Position, String)> = rows
        .iter()
        .filter(|r| r.mode != "held")
        .map(|r| {
            (
                position(&r.setup, r.nodes, r.concurrency, &r.mode),
                format!(
                    "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} | {} |",
                    nodes_cell(&r.setup, r.nodes),
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
                ),
            )
        })
        .collect();
    lines.extend(skipped.iter().map(|s| {
        (
            position(s.setup, s.nodes, s.concurrency, s.mode),
            format!(
                "| {} | {} | {} | {}: {} | – | – | – | – | – | – | – |",
                nodes_cell(s.setup, s.nodes),
                s.concurrency,
                s.mode,
                s.label,
                s.reason
            ),
        )
    }));
    // Stable: within a position, the rows keep the order they were measured in.
    lines.sort_by_key(|(p, _)| *p);
    for (_, line) in lines {
        let _ = writeln!(t, "{line}");
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
    let measured: Vec<String> = trips.iter().flatten().map(|x| format!("{x:.0}")).collect();
    if !measured.is_empty() {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "Two one-client round trips (p50 SET NX PX + p50 EVALSHA, redis-benchmark, taken beside \
             the 1-node C=1 case in each round): {} µs",
            measured.join(", ")
        );
    }
    let wakeups: Vec<String> = wakeups
        .iter()
        .flatten()
        .map(|x| format!("{x:.1}"))
        .collect();
    if !wakeups.is_empty() {
        let _ = writeln!(
            t,
            "Server CPU per request in those one-client runs (one server wake-up per request: the \
             floor of a contended hand-over, which is one wake-up per node): {} µs",
            wakeups.join(", ")
        );
    }
    let held: Vec<&Row> = rows.iter().filter(|r| r.mode == "held").collect();
    if !held.is_empty() {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "| held leases | nodes | client | ttl | held for | lost | extends/s | client CPU % of a core | RSS growth MiB | bytes per lease |"
        );
        let _ = writeln!(t, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in held {
            let Some(h) = &r.held else { continue };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {:.0} s | {:.0} s | {} | {:.0} | {:.1} | {:.1} | {:.0} |",
                h.leases,
                r.nodes,
                r.label(),
                r.ttl_ms as f64 / 1000.0,
                h.hold_s,
                h.lost,
                h.extends_per_s,
                h.cpu_pct,
                h.rss_growth_mib,
                h.bytes_per_lease
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::held::HeldFigures;

    fn row(setup: &str, nodes: usize, c: usize, mode: &str, ops: f64) -> Row {
        let mut r = Row {
            client: "redlock".into(),
            adapter: "tokio".into(),
            mode: mode.into(),
            nodes,
            concurrency: c,
            setup: setup.into(),
            ..Row::default()
        };
        r.m.ops_per_s = ops;
        r
    }

    #[test]
    fn medians_keep_every_rounds_safety_figures_and_the_table_order() {
        let mut bad = row("", 5, 32, "contended", 10.0);
        bad.m.violations = 1;
        bad.m.max_holders = 2;
        let rounds = vec![
            vec![
                row("tls", 5, 32, "uncontended", 5.0),
                bad,
                row("", 1, 32, "uncontended", 7.0),
            ],
            vec![
                row("tls", 5, 32, "uncontended", 6.0),
                row("", 5, 32, "contended", 30.0),
                row("", 5, 32, "uncontended", 9.0),
            ],
            vec![row("", 5, 32, "contended", 20.0)],
        ];
        let m = medians(&rounds);
        let order: Vec<(String, usize, String)> = m
            .iter()
            .map(|r| (r.setup.clone(), r.nodes, r.mode.clone()))
            .collect();
        assert_eq!(
            order,
            [
                ("".into(), 1, "uncontended".into()),
                ("".into(), 5, "uncontended".into()),
                ("tls".into(), 5, "uncontended".into()),
                ("".into(), 5, "contended".into()),
            ]
        );
        let contended = &m[3];
        assert_eq!(contended.m.ops_per_s, 20.0, "the median round");
        assert_eq!((contended.m.violations, contended.m.max_holders), (1, 2));
    }

    #[test]
    fn table_shows_skipped_cases_in_place_and_the_held_figures() {
        let mut held = row("", 5, 10_000, "held", 1000.0);
        held.ttl_ms = 10_000;
        held.held = Some(HeldFigures {
            leases: 10_000,
            hold_s: 60.0,
            extends_per_s: 1050.0,
            cpu_pct: 4.5,
            rss_growth_mib: 9.0,
            bytes_per_lease: 943.0,
            ..HeldFigures::default()
        });
        let rows = [
            row("", 1, 32, "uncontended", 70_000.0),
            row("", 1, 32, "contended", 9.0),
            held,
        ];
        let skipped = [Skipped {
            setup: "cluster",
            nodes: 1,
            concurrency: 32,
            mode: "uncontended",
            label: "every client".into(),
            reason: "not run: no".into(),
        }];
        let t = table(
            &rows,
            &skipped,
            &[],
            &[Some(160.0), None, Some(170.0)],
            &[Some(20.5)],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[2].starts_with("| 1 | 32 | uncontended | redlock (tokio) | 70000 |"),
            "{t}"
        );
        assert!(
            lines[3].starts_with(
                "| 1 cluster (3 primaries) | 32 | uncontended | every client: not run: no |"
            ),
            "{t}"
        );
        assert!(lines[4].contains("| contended |"), "{t}");
        assert!(t.contains("in each round): 160, 170 µs"), "{t}");
        assert!(t.contains("one wake-up per node): 20.5 µs"), "{t}");
        assert!(
            t.contains(
                "| 10000 | 5 | redlock (tokio) | 10 s | 60 s | 0 | 1050 | 4.5 | 9.0 | 943 |"
            ),
            "{t}"
        );
    }
}
