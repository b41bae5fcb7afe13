//! The targets the issues set, checked in each round against the compared client measured in
//! that same round, then summed up over the rounds: the median figure and how many rounds met
//! the bound. A target is met when at least two thirds of the rounds met it (2 of 3).

use crate::row::{Row, NO_SPIN};
use std::fmt::Write as _;

/// One target checked in one round.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked and for which client: the same text in every round (the summary
    /// groups by it).
    pub name: String,
    /// The bound, as the reader sees it (`≥ 1.2×`); empty for a figure shown without one.
    pub bound: String,
    /// The measured figure, in `unit`.
    pub value: f64,
    /// `×` (a ratio), `%`, `MiB`, or an empty string (a count).
    pub unit: &'static str,
    /// What the figure was computed from.
    pub detail: String,
    /// Whether the bound held (`true` for a figure without one).
    pub met: bool,
}

impl Check {
    fn value_text(value: f64, unit: &str) -> String {
        match unit {
            "×" => format!("{value:.2}×"),
            "" => format!("{value:.0}"),
            u => format!("{value:.1} {u}"),
        }
    }

    fn verdict(&self) -> &'static str {
        match (self.bound.is_empty(), self.met) {
            (true, _) => "info",
            (false, true) => "MET",
            (false, false) => "NOT MET",
        }
    }
}

/// The async adapters, whose targets are the library's; the blocking adapter has its own.
const ASYNC: [&str; 3] = ["tokio", "async-std", "smol"];

/// Finds rows of one round.
struct Round<'a> {
    rows: &'a [Row],
}

impl<'a> Round<'a> {
    fn ours(&self, nodes: usize, c: usize, mode: &str, setup: &str) -> Vec<&'a Row> {
        self.rows
            .iter()
            .filter(|r| {
                r.client == "redlock"
                    && r.nodes == nodes
                    && r.concurrency == c
                    && r.mode == mode
                    && r.setup == setup
            })
            .collect()
    }

    /// The `--mode bare` row of `adapter`: its runtime alone, no library.
    fn runtime_alone(&self, adapter: &str) -> Option<&'a Row> {
        self.rows
            .iter()
            .find(|r| r.mode == "bare" && r.adapter == adapter)
    }

    /// The `--mode handoff` row at concurrency `c`: a thread per caller alone, no library.
    fn handoffs(&self, c: usize) -> Option<&'a Row> {
        self.rows
            .iter()
            .find(|r| r.mode == "handoff" && r.concurrency == c)
    }

    /// The first compared client's row for the case (plain nodes).
    fn theirs(&self, nodes: usize, c: usize, mode: &str) -> Option<&'a Row> {
        self.rows.iter().find(|r| {
            r.client != "redlock"
                && r.nodes == nodes
                && r.concurrency == c
                && r.mode == mode
                && r.setup.is_empty()
        })
    }
}

/// What the library's p50 is beside its runtime alone's, `added` µs apart: above it, the time
/// the library adds; below it (the spin before parking waits for replies where the runtime
/// alone parks), how far under.
fn library_share(added: f64) -> String {
    if added >= 0.0 {
        format!("the library adds {added:.0} µs")
    } else {
        format!("with the library {:.0} µs under it (the spin)", -added)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

/// The ops/s ratio of `ours` to `other` if both kept every core busy: the inverse ratio of their
/// CPU per operation, the client's and the servers' together (client and servers share the
/// machine's cores). `None` without the servers' figures.
pub fn cpu_bound(ours: &Row, other: &Row) -> Option<f64> {
    let total = |r: &Row| Some(r.m.cpu_us_per_op + r.server_cpu_us_per_op?);
    let (a, b) = (total(ours)?, total(other)?);
    (a > 0.0).then(|| b / a)
}

/// Every target that this round's rows allow checking. `two_trips` is the round's yardstick for
/// the one-client latency (two `redis-benchmark` one-client round trips, p50 each, added);
/// `wakeup` the server CPU of one request arriving alone (a contended hand-over's floor per
/// node).
pub fn checks(rows: &[Row], two_trips: Option<f64>, wakeup: Option<f64>) -> Vec<Check> {
    let round = Round { rows };
    let mut out = Vec::new();
    // Uncontended throughput at C=32: 1 node (the write policy's case) and 5 nodes.
    for (nodes, async_bound, blocking_bound) in [(1, 1.2, 1.0), (5, 2.0, 1.5)] {
        let Some(other) = round.theirs(nodes, 32, "uncontended") else {
            continue;
        };
        for r in round.ours(nodes, 32, "uncontended", "") {
            let bound = if ASYNC.contains(&r.adapter.as_str()) {
                async_bound
            } else {
                blocking_bound
            };
            let value = ratio(r.m.ops_per_s, other.m.ops_per_s);
            out.push(Check {
                name: format!(
                    "{nodes} node{}, C=32, uncontended: ops/s ÷ {}, {}",
                    if nodes == 1 { "" } else { "s" },
                    other.label(),
                    r.adapter
                ),
                bound: format!("≥ {bound}×"),
                value,
                unit: "×",
                detail: format!(
                    "{:.0} vs {:.0} ops/s{}",
                    r.m.ops_per_s,
                    other.m.ops_per_s,
                    cpu_bound(r, other)
                        .map(|b| format!("; the cores allow {b:.2}×"))
                        .unwrap_or_default()
                ),
                met: value >= bound,
            });
            if let (Some(h), false) = (round.handoffs(32), ASYNC.contains(&r.adapter.as_str())) {
                // What a thread per caller costs before any work, against the other client's
                // whole CPU: how far the cores let this adapter go.
                let value = ratio(h.m.cpu_us_per_op, other.m.cpu_us_per_op);
                // The blocking adapter runs smol's driver on smol's socket: its client CPU
                // is at least the hand-offs plus what that driver costs on smol.
                let smol = round
                    .ours(nodes, 32, "uncontended", "")
                    .into_iter()
                    .find(|s| s.adapter == "smol");
                let allow = match (other.server_cpu_us_per_op, r.server_cpu_us_per_op) {
                    (Some(theirs), Some(ours)) if h.m.cpu_us_per_op + ours > 0.0 => {
                        let total = other.m.cpu_us_per_op + theirs;
                        let alone = total / (h.m.cpu_us_per_op + ours);
                        let with_smol = smol
                            .map(|s| {
                                let b = total / (h.m.cpu_us_per_op + s.m.cpu_us_per_op + ours);
                                format!(", and with smol's client CPU (the same driver) {b:.2}×")
                            })
                            .unwrap_or_default();
                        format!(
                            "; with each side's server CPU, the hand-offs alone allow \
                             {alone:.2}×{with_smol}"
                        )
                    }
                    _ => String::new(),
                };
                out.push(Check {
                    name: format!(
                        "{nodes} node{}, C=32, uncontended: client CPU/op of 32 threads' \
                         hand-offs alone (no Redis) ÷ {}'s, {}",
                        if nodes == 1 { "" } else { "s" },
                        other.label(),
                        r.adapter
                    ),
                    bound: String::new(),
                    value,
                    unit: "×",
                    detail: format!(
                        "{:.1} vs {:.1} µs/op{allow}",
                        h.m.cpu_us_per_op, other.m.cpu_us_per_op
                    ),
                    met: true,
                });
            }
            if nodes == 5 && ASYNC.contains(&r.adapter.as_str()) {
                let value = ratio(r.m.cpu_us_per_op, other.m.cpu_us_per_op);
                out.push(Check {
                    name: format!(
                        "5 nodes, C=32, uncontended: client CPU/op ÷ {}, {}",
                        other.label(),
                        r.adapter
                    ),
                    bound: "≤ 0.5×".into(),
                    value,
                    unit: "×",
                    detail: format!(
                        "{:.1} vs {:.1} µs/op",
                        r.m.cpu_us_per_op, other.m.cpu_us_per_op
                    ),
                    met: value <= 0.5,
                });
            }
        }
    }
    // One-client latency against the server's own round trips.
    if let Some(trips) = two_trips.filter(|t| *t > 0.0) {
        for r in round.ours(1, 1, "uncontended", "") {
            let value = ratio(r.m.p50_us, trips);
            let alone = round.runtime_alone(&r.adapter);
            out.push(Check {
                name: format!(
                    "1 node, C=1: p50 ÷ two redis-benchmark round trips, {}",
                    r.adapter
                ),
                bound: "≤ 1.0×".into(),
                value,
                unit: "×",
                detail: format!(
                    "{:.0} µs vs {trips:.0} µs{}",
                    r.m.p50_us,
                    alone
                        .map(|a| format!("; the runtime alone {:.0} µs", a.m.p50_us))
                        .unwrap_or_default()
                ),
                met: value <= 1.0,
            });
            // The same client with its spin off: the CPU the spin costs for what it gains.
            let off = round.ours(1, 1, "uncontended", NO_SPIN);
            if let Some(off) = off.iter().find(|o| o.adapter == r.adapter) {
                let value = ratio(r.m.cpu_us_per_op, off.m.cpu_us_per_op);
                out.push(Check {
                    name: format!(
                        "1 node, C=1: client CPU per operation with the spin ÷ without, {}",
                        r.adapter
                    ),
                    bound: String::new(),
                    value,
                    unit: "×",
                    detail: format!(
                        "{:.0} vs {:.0} µs/op, for p50 {:.0} µs vs {:.0} µs",
                        r.m.cpu_us_per_op, off.m.cpu_us_per_op, r.m.p50_us, off.m.p50_us
                    ),
                    met: true,
                });
            }
            // The same two round trips on the runtime's own socket, no library: the part of
            // the target the runtime itself takes.
            if let Some(a) = alone {
                let value = ratio(a.m.p50_us, trips);
                out.push(Check {
                    name: format!(
                        "1 node, C=1: the runtime alone (no library), p50 ÷ two redis-benchmark round trips, {}",
                        r.adapter
                    ),
                    bound: String::new(),
                    value,
                    unit: "×",
                    detail: format!(
                        "{:.0} µs vs {trips:.0} µs; {}",
                        a.m.p50_us,
                        library_share(r.m.p50_us - a.m.p50_us)
                    ),
                    met: true,
                });
            }
        }
    }
    // Contended: 32 workers on one resource.
    for nodes in [1, 5] {
        let other = round.theirs(nodes, 32, "contended");
        for r in round.ours(nodes, 32, "contended", "") {
            let case = format!(
                "{nodes} node{}, C=32, contended",
                if nodes == 1 { "" } else { "s" }
            );
            out.push(Check {
                name: format!("{case}: most holders at once, {}", r.adapter),
                bound: "≤ 1".into(),
                value: r.m.max_holders as f64,
                unit: "",
                detail: format!("{} overlaps", r.m.violations),
                met: r.m.max_holders <= 1 && r.m.violations == 0,
            });
            let Some(other) = other else { continue };
            let value = ratio(r.m.p99_us, other.m.p99_us);
            out.push(Check {
                name: format!("{case}: p99 wait ÷ {}, {}", other.label(), r.adapter),
                bound: "≤ 0.1×".into(),
                value,
                unit: "×",
                detail: format!("{:.0} vs {:.0} µs", r.m.p99_us, other.m.p99_us),
                met: value <= 0.1,
            });
            let value = ratio(r.m.ops_per_s, other.m.ops_per_s);
            out.push(Check {
                name: format!("{case}: acquisitions/s ÷ {}, {}", other.label(), r.adapter),
                bound: "≥ 1.5×".into(),
                value,
                unit: "×",
                detail: format!("{:.0} vs {:.0}/s", r.m.ops_per_s, other.m.ops_per_s),
                met: value >= 1.5,
            });
            if let (Some(a), Some(b)) = (r.server_cpu_us_per_op, other.server_cpu_us_per_op) {
                let value = ratio(a, b);
                out.push(Check {
                    name: format!(
                        "{case}: server CPU/acquisition ÷ {}, {}",
                        other.label(),
                        r.adapter
                    ),
                    bound: "≤ 0.33×".into(),
                    value,
                    unit: "×",
                    detail: format!(
                        "{a:.1} vs {b:.1} µs{}",
                        wakeup
                            .map(|w| format!(
                                "; floor {:.1} µs: one server wake-up per node per hand-over",
                                w * nodes as f64
                            ))
                            .unwrap_or_default()
                    ),
                    met: value <= 1.0 / 3.0,
                });
            }
            // The floor of that target's figure is one wake-up per node per hand-over.
            if let Some(w) = r.server_wakeups_per_op {
                let theirs = other.server_wakeups_per_op;
                out.push(Check {
                    name: format!(
                        "{case}: server wake-ups per acquisition and node, {}",
                        r.adapter
                    ),
                    bound: String::new(),
                    value: w,
                    unit: "wake-ups",
                    detail: theirs
                        .map(|t| format!("{w:.2} vs {t:.2} for {}; floor 1", other.label()))
                        .unwrap_or_else(|| format!("{w:.2}; floor 1")),
                    met: true,
                });
            }
        }
    }
    // What TLS and a cluster cost, beside the plain case (no bound: shown for the reader).
    for (setup, nodes, what) in [
        ("tls", 5, "5 nodes over TLS"),
        ("cluster", 1, "a 3-primary cluster"),
    ] {
        let plain = round.ours(nodes, 32, "uncontended", "");
        for r in rows
            .iter()
            .filter(|r| r.client == "redlock" && r.setup == setup)
        {
            if let Some(p) = plain.iter().find(|p| p.adapter == r.adapter) {
                out.push(Check {
                    name: format!("{what}, C=32: ops/s ÷ plain, {}", r.adapter),
                    bound: String::new(),
                    value: ratio(r.m.ops_per_s, p.m.ops_per_s),
                    unit: "×",
                    detail: format!(
                        "{:.0} vs {:.0} ops/s; client CPU {:.1} vs {:.1} µs/op",
                        r.m.ops_per_s, p.m.ops_per_s, r.m.cpu_us_per_op, p.m.cpu_us_per_op
                    ),
                    met: true,
                });
            }
        }
    }
    // Many held leases.
    for r in rows.iter().filter(|r| r.mode == "held") {
        let Some(h) = &r.held else { continue };
        let case = format!(
            "{} leases held {:.0} s on {} nodes",
            h.leases, h.hold_s, r.nodes
        );
        let detail = format!(
            "{:.0} extends/s, {:.0} bytes per lease",
            h.extends_per_s, h.bytes_per_lease
        );
        for (what, bound, value, unit, met) in [
            ("leases lost", "= 0", h.lost as f64, "", h.lost == 0),
            (
                "client CPU, % of one core",
                "≤ 10 %",
                h.cpu_pct,
                "%",
                h.cpu_pct <= 10.0,
            ),
            (
                "resident memory growth",
                "≤ 20 MiB",
                h.rss_growth_mib,
                "MiB",
                h.rss_growth_mib <= 20.0,
            ),
        ] {
            out.push(Check {
                name: format!("{case}: {what}, {}", r.adapter),
                bound: bound.into(),
                value,
                unit,
                detail: detail.clone(),
                met,
            });
        }
    }
    out
}

/// One round's checks, a line each.
pub fn round_text(round: usize, checks: &[Check]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "Round {round}:");
    for c in checks {
        let _ = writeln!(
            t,
            "  {:<7} {}: {} ({}{}{})",
            c.verdict(),
            c.name,
            Check::value_text(c.value, c.unit),
            c.bound,
            if c.bound.is_empty() { "" } else { "; " },
            c.detail
        );
    }
    t
}

/// The summary over the rounds (Markdown): per target, the median figure, how many rounds met
/// it, and the verdict (met in at least two thirds of the rounds).
pub fn summary(rounds: &[Vec<Check>]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for c in rounds.iter().flatten() {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    let mut t = String::new();
    let _ = writeln!(t, "| target | bound | median | rounds met | verdict |");
    let _ = writeln!(t, "|---|---|---:|---:|---|");
    for name in names {
        let got: Vec<&Check> = rounds.iter().flatten().filter(|c| c.name == name).collect();
        let mut values: Vec<f64> = got.iter().map(|c| c.value).collect();
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        let first = got[0];
        let met = got.iter().filter(|c| c.met).count();
        let verdict = if first.bound.is_empty() {
            "info"
        } else if met * 3 >= got.len() * 2 {
            "MET"
        } else {
            "NOT MET"
        };
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {verdict} |",
            if first.bound.is_empty() {
                "–"
            } else {
                &first.bound
            },
            Check::value_text(median, first.unit),
            if first.bound.is_empty() {
                "–".to_string()
            } else {
                format!("{met} of {}", got.len())
            },
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::held::HeldFigures;
    use crate::row::Measured;

    fn row(client: &str, adapter: &str, nodes: usize, c: usize, mode: &str) -> Row {
        Row {
            client: client.into(),
            adapter: adapter.into(),
            mode: mode.into(),
            nodes,
            concurrency: c,
            ..Row::default()
        }
    }

    #[test]
    fn cpu_bound_ratio() {
        let with = |cpu, server| Row {
            m: Measured {
                cpu_us_per_op: cpu,
                ..Measured::default()
            },
            server_cpu_us_per_op: server,
            server_wakeups_per_op: None,
            ..Row::default()
        };
        // 50 µs of client and server CPU per op against 100: at most twice the ops/s.
        let b = cpu_bound(&with(20.0, Some(30.0)), &with(50.0, Some(50.0))).unwrap();
        assert!((b - 2.0).abs() < 1e-9);
        assert_eq!(cpu_bound(&with(20.0, None), &with(50.0, Some(50.0))), None);
        assert_eq!(
            cpu_bound(&with(0.0, Some(0.0)), &with(50.0, Some(50.0))),
            None
        );
    }

    #[test]
    fn ratios_against_the_same_round() {
        let mut ours = row("redlock", "tokio", 1, 32, "uncontended");
        ours.m.ops_per_s = 90_000.0;
        let mut blocking = row("redlock", "blocking", 1, 32, "uncontended");
        blocking.m.ops_per_s = 70_000.0;
        let mut theirs = row("rslock", "tokio", 1, 32, "uncontended");
        theirs.m.ops_per_s = 80_000.0;
        let got = checks(&[ours, blocking, theirs], None, None);
        let tokio = got.iter().find(|c| c.name.ends_with(", tokio")).unwrap();
        assert!((tokio.value - 1.125).abs() < 1e-9);
        assert_eq!((tokio.bound.as_str(), tokio.met), ("≥ 1.2×", false));
        let b = got.iter().find(|c| c.name.ends_with(", blocking")).unwrap();
        assert_eq!((b.bound.as_str(), b.met), ("≥ 1×", false));
        // No yardstick, no latency target; no compared client, no ratio.
        assert!(got.iter().all(|c| !c.name.contains("round trips")));
        let alone = checks(&[row("redlock", "tokio", 1, 32, "uncontended")], None, None);
        assert!(alone.is_empty());
    }

    #[test]
    fn the_blocking_adapter_is_shown_beside_what_its_hand_offs_alone_cost() {
        let mut blocking = row("redlock", "blocking", 1, 32, "uncontended");
        blocking.m.cpu_us_per_op = 30.0;
        blocking.server_cpu_us_per_op = Some(8.0);
        let mut tokio = row("redlock", "tokio", 1, 32, "uncontended");
        tokio.m.cpu_us_per_op = 10.0;
        let mut handoffs = row("thread hand-offs alone", "blocking", 1, 32, "handoff");
        handoffs.m.cpu_us_per_op = 12.0;
        let mut theirs = row("rslock", "tokio", 1, 32, "uncontended");
        theirs.m.cpu_us_per_op = 10.0;
        theirs.server_cpu_us_per_op = Some(5.0);
        let base = vec![blocking, tokio, handoffs.clone(), theirs];
        let got = checks(&base, None, None);
        let shown: Vec<_> = got
            .iter()
            .filter(|c| c.name.contains("hand-offs"))
            .collect();
        assert_eq!(shown.len(), 1, "for the blocking adapter only: {shown:?}");
        let c = shown[0];
        assert!(c.name.ends_with(", blocking"), "{}", c.name);
        assert!((c.value - 1.2).abs() < 1e-9, "12 µs against 10");
        assert_eq!(c.verdict(), "info");
        // (10 + 5) / (12 + 8): at most 0.75× the ops/s on a machine the CPU bounds.
        assert!(c.detail.contains("allow 0.75×"), "{}", c.detail);
        assert!(!c.detail.contains("smol"), "no smol row: {}", c.detail);
        // With the same driver's own cost on smol, (10 + 5) / (12 + 5 + 8).
        let mut smol = row("redlock", "smol", 1, 32, "uncontended");
        smol.m.cpu_us_per_op = 5.0;
        let mut rows = base;
        rows.push(smol);
        let with = checks(&rows, None, None);
        let c = with.iter().find(|c| c.name.contains("hand-offs")).unwrap();
        assert!(
            c.detail
                .contains("smol's client CPU (the same driver) 0.60×"),
            "{}",
            c.detail
        );
        // The hand-off row is nobody's compared client nor one of ours.
        let alone = checks(&[handoffs], None, None);
        assert!(alone.is_empty());
    }

    #[test]
    fn one_client_latency_beside_the_runtime_alone() {
        let mut ours = row("redlock", "smol", 1, 1, "uncontended");
        ours.m.p50_us = 150.0;
        let mut bare = row("runtime alone", "smol", 1, 1, "bare");
        bare.m.p50_us = 120.0;
        let mut tokio = row("redlock", "tokio", 1, 1, "uncontended");
        tokio.m.p50_us = 90.0;
        let got = checks(&[ours, bare, tokio], Some(100.0), None);
        let target = |a: &str| {
            got.iter()
                .find(|c| {
                    c.name == format!("1 node, C=1: p50 ÷ two redis-benchmark round trips, {a}")
                })
                .unwrap()
        };
        assert_eq!((target("smol").value, target("smol").met), (1.5, false));
        assert_eq!(
            target("smol").detail,
            "150 µs vs 100 µs; the runtime alone 120 µs"
        );
        assert_eq!((target("tokio").value, target("tokio").met), (0.9, true));
        assert_eq!(target("tokio").detail, "90 µs vs 100 µs");
        let alone: Vec<&Check> = got
            .iter()
            .filter(|c| c.name.contains("runtime alone"))
            .collect();
        assert_eq!(alone.len(), 1, "only smol's runtime was measured alone");
        assert_eq!((alone[0].value, alone[0].verdict()), (1.2, "info"));
        assert!(alone[0].name.ends_with(", smol"));
        assert_eq!(alone[0].detail, "120 µs vs 100 µs; the library adds 30 µs");
        assert_eq!(
            super::library_share(-24.4),
            "with the library 24 µs under it (the spin)"
        );
        // The bare row is nobody's compared client.
        assert!(got.iter().all(|c| !c.name.contains("÷ runtime alone")));
    }

    #[test]
    fn what_the_spin_costs_beside_the_one_client_case() {
        let mut ours = row("redlock", "tokio", 1, 1, "uncontended");
        (ours.m.p50_us, ours.m.cpu_us_per_op) = (90.0, 120.0);
        let mut off = row("redlock", "tokio", 1, 1, "uncontended");
        off.setup = super::NO_SPIN.into();
        (off.m.p50_us, off.m.cpu_us_per_op) = (160.0, 80.0);
        let mut smol_off = off.clone();
        smol_off.adapter = "smol".into();
        smol_off.m.cpu_us_per_op = 40.0;
        let smol = row("redlock", "smol", 1, 1, "uncontended");
        let got = checks(&[smol_off, off, ours, smol], Some(100.0), None);
        let spin: Vec<&Check> = got.iter().filter(|c| c.name.contains("spin")).collect();
        assert_eq!(spin.len(), 2, "one per adapter measured both ways");
        let tokio = spin.iter().find(|c| c.name.ends_with(", tokio")).unwrap();
        assert_eq!((tokio.value, tokio.verdict()), (1.5, "info"));
        assert_eq!(tokio.detail, "120 vs 80 µs/op, for p50 90 µs vs 160 µs");
        // The spin-off row is not a case of its own among the targets.
        let p50 = got
            .iter()
            .filter(|c| c.name.starts_with("1 node, C=1: p50"));
        assert_eq!(p50.count(), 2);
    }

    #[test]
    fn contended_and_held_targets() {
        let mut ours = row("redlock", "smol", 5, 32, "contended");
        ours.m.p99_us = 5_000.0;
        ours.m.ops_per_s = 3_000.0;
        ours.m.max_holders = 1;
        ours.server_cpu_us_per_op = Some(100.0);
        ours.server_wakeups_per_op = Some(1.0);
        let mut theirs = row("rslock", "tokio", 5, 32, "contended");
        theirs.m.p99_us = 100_000.0;
        theirs.m.ops_per_s = 1_800.0;
        theirs.server_cpu_us_per_op = Some(450.0);
        theirs.server_wakeups_per_op = Some(4.5);
        let mut held = row("redlock", "tokio", 5, 10_000, "held");
        held.held = Some(HeldFigures {
            leases: 10_000,
            lost: 0,
            cpu_pct: 12.0,
            rss_growth_mib: 8.0,
            hold_s: 60.0,
            ..HeldFigures::default()
        });
        let got = checks(&[ours, theirs, held], None, Some(20.0));
        let met = |part: &str| got.iter().find(|c| c.name.contains(part)).unwrap().met;
        assert!(met("p99 wait"));
        assert!(met("acquisitions/s"));
        assert!(met("server CPU/acquisition"));
        let floor = got.iter().find(|c| c.name.contains("server CPU")).unwrap();
        assert!(floor.detail.contains("floor 100.0 µs"), "{}", floor.detail);
        let wakes = got.iter().find(|c| c.name.contains("wake-ups")).unwrap();
        assert_eq!(
            (wakes.value, wakes.bound.as_str()),
            (1.0, ""),
            "a figure, no bound"
        );
        assert_eq!(wakes.detail, "1.00 vs 4.50 for rslock (tokio); floor 1");
        assert_eq!(Check::value_text(wakes.value, wakes.unit), "1.0 wake-ups");
        assert!(met("most holders"));
        assert!(met("leases lost"));
        assert!(!met("client CPU, %"));
        assert!(met("resident memory"));
    }

    #[test]
    fn summary_takes_the_median_and_counts_the_rounds() {
        let check = |value: f64| Check {
            name: "x".into(),
            bound: "≥ 1.2×".into(),
            value,
            unit: "×",
            detail: String::new(),
            met: value >= 1.2,
        };
        let s = summary(&[vec![check(1.3)], vec![check(1.1)], vec![check(1.25)]]);
        assert!(s.contains("| x | ≥ 1.2× | 1.25× | 2 of 3 | MET |"), "{s}");
        let s = summary(&[vec![check(1.3)], vec![check(1.1)], vec![check(1.0)]]);
        assert!(s.contains("| 1 of 3 | NOT MET |"), "{s}");
        assert!(round_text(1, &[check(1.0)]).contains("NOT MET x: 1.00× (≥ 1.2×; )"));
    }
}
