//! `redlock-bench` against real `redis-server` processes (the matrix starts its own, on free
//! loopback ports, and stops them by pid).

use std::process::{Command, Output, Stdio};

const BENCH: &str = env!("CARGO_BIN_EXE_redlock-bench");

fn bench(args: &[&str]) -> Command {
    let mut c = Command::new(BENCH);
    c.args(args);
    c
}

fn output(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .expect("redlock-bench runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bench_matrix_prints_the_table_with_server_cpu_and_round_trips() {
    let out = output(bench(&[
        "--node-counts",
        "1",
        "--concurrencies",
        "1",
        "--adapters",
        "tokio",
        "--duration",
        "0.3",
        "--extras",
        "none",
    ]));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 0, "{stdout}\n{stderr}");
    // The servers' CPU is measured by the matrix, which started them: a figure, not "–".
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| 1 | 1 | uncontended | redlock (tokio) |"))
        .unwrap_or_else(|| panic!("no uncontended row:\n{stdout}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // A number (it may round to 0 on a starved machine: the kernel counts in 10 ms ticks); "–"
    // would mean it was not measured.
    let server: Result<f64, _> = cells[9].parse();
    assert!(server.is_ok(), "server CPU cell {:?} in {row}", cells[9]);
    assert!(
        stdout.contains("\"server_cpu_us_per_op\":"),
        "JSON lines carry it:\n{stdout}"
    );
    // Target 1's yardstick was measured beside the case, not only before the matrix.
    assert!(stdout.contains("in each round): "), "{stdout}");
    // The latency target, with its verdict over the rounds.
    assert!(
        stdout.contains("| 1 node, C=1: p50 ÷ two redis-benchmark round trips, tokio | ≤ 1.0× |")
            && stdout.contains("| 1 of 1 | MET |")
            || stdout.contains("| 0 of 1 | NOT MET |"),
        "{stdout}"
    );
}

#[test]
fn bench_matrix_extras_run_beside_their_plain_cases() {
    let out = output(bench(&[
        "--node-counts",
        "5",
        "--concurrencies",
        "32",
        "--adapters",
        "smol",
        "--duration",
        "0.3",
        "--repeat",
        "2",
        "--extras",
        "tls,cluster,held",
        "--held-duration",
        "1",
        "--leases",
        "20",
    ]));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 0, "{stdout}\n{stderr}");
    // Each round's targets, then the table of medians.
    assert!(
        stdout.contains("Round 1:") && stdout.contains("Round 2:"),
        "{stdout}"
    );
    let plain = stdout
        .lines()
        .position(|l| l.starts_with("| 5 | 32 | uncontended | redlock (smol) |"))
        .unwrap_or_else(|| panic!("no plain row:\n{stdout}"));
    let tls = stdout
        .lines()
        .position(|l| l.starts_with("| 5 (TLS) | 32 | uncontended | redlock (smol) |"))
        .unwrap_or_else(|| panic!("no TLS row:\n{stdout}\n{stderr}"));
    assert_eq!(
        tls,
        plain + 1,
        "the TLS case sits beside the plain one:\n{stdout}"
    );
    // The cluster case: measured, or shown as not run with the reason.
    assert!(
        stdout.contains("| 1 cluster (3 primaries) | 32 | uncontended |"),
        "{stdout}"
    );
    // The held leases: none lost in a one-second hold of twenty.
    let held = stdout
        .lines()
        .find(|l| l.starts_with("| 20 | 5 | redlock (smol) |"))
        .unwrap_or_else(|| panic!("no held row:\n{stdout}\n{stderr}"));
    let cells: Vec<&str> = held.split('|').map(str::trim).collect();
    assert_eq!(cells[6], "0", "leases lost: {held}");
    assert!(
        stdout.contains(
            "20 leases held 1 s on 5 nodes: leases lost, smol | = 0 | 0 | 2 of 2 | MET |"
        ),
        "{stdout}"
    );
}

#[test]
fn one_case_ends_with_its_json_line() {
    let nodes = redlock_harness::Cluster::start(1);
    let out = output(bench(&[
        "--urls",
        &nodes.urls_arg(),
        "--concurrency",
        "2",
        "--duration",
        "0.2",
        "--mode",
        "contended",
        "--adapter",
        "smol",
        "--ttl-ms",
        "5000",
    ]));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 0, "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(v["client"], "redlock");
    assert_eq!(v["adapter"], "smol");
    assert_eq!(v["mode"], "contended");
    assert_eq!(v["nodes"], 1);
    assert_eq!(v["concurrency"], 2);
    assert_eq!(v["ttl_ms"], 5000);
    assert_eq!(v["violations"], 0);
    assert!(v["ops"].as_u64().is_some_and(|n| n > 0), "{last}");
    assert!(v["p50_us"].as_f64().is_some_and(|x| x > 0.0), "{last}");
    assert!(v.get("server_cpu_us_per_op").is_none(), "{last}");
}
