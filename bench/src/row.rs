//! The JSON line a case ends with, written and read with serde: the same fields whichever
//! client's program printed it (`bench/rslock` prints them too, without `max_us`).

use crate::held::HeldFigures;
use serde::{Deserialize, Serialize, Serializer};

/// A case's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Operations that completed within the case's duration (the latency sample).
    #[serde(default)]
    pub ops: u64,
    /// Operations that failed within the case's duration.
    #[serde(default)]
    pub errors: u64,
    /// `ops` ÷ the case's duration.
    #[serde(serialize_with = "tenths")]
    pub ops_per_s: f64,
    /// Median acquire+release latency, µs.
    #[serde(serialize_with = "tenths")]
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    #[serde(serialize_with = "tenths")]
    pub p99_us: f64,
    /// Slowest counted operation, µs.
    #[serde(default, serialize_with = "tenths")]
    pub max_us: f64,
    /// The client process's user+system CPU time ÷ every completed operation, µs.
    #[serde(serialize_with = "hundredths")]
    pub cpu_us_per_op: f64,
    /// Most holders seen inside the critical section at once (must be 1).
    pub max_holders: u64,
    /// Entries into the critical section while someone else was inside (must be 0).
    pub violations: u64,
}

impl Measured {
    /// The figures of `lat_ns` (each counted operation's latency, ns, in any order) over
    /// `duration`, with `completed` operations done in all (the CPU figure divides `cpu` by
    /// them) and `errors` failed; one holder at most, by construction of the caller's case.
    pub fn from_latencies(
        mut lat_ns: Vec<u64>,
        completed: u64,
        errors: u64,
        duration: std::time::Duration,
        cpu: std::time::Duration,
    ) -> Measured {
        lat_ns.sort_unstable();
        let pct = |p: usize| -> f64 {
            if lat_ns.is_empty() {
                return 0.0;
            }
            let i = (lat_ns.len() * p / 100).min(lat_ns.len() - 1);
            lat_ns[i] as f64 / 1000.0
        };
        let ops = lat_ns.len() as u64;
        Measured {
            ops,
            errors,
            ops_per_s: ops as f64 / duration.as_secs_f64(),
            p50_us: pct(50),
            p99_us: pct(99),
            max_us: lat_ns.last().map_or(0.0, |n| *n as f64 / 1000.0),
            cpu_us_per_op: if completed > 0 {
                cpu.as_secs_f64() * 1e6 / completed as f64
            } else {
                0.0
            },
            max_holders: u64::from(ops > 0),
            violations: 0,
        }
    }
}

/// The setup of our one-client case run again with `--spin-us 0`: what the spin costs and
/// buys, beside the case with the library's default.
pub const NO_SPIN: &str = "no spin";

/// One case's result, as the JSON line carries it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// Which client library ran it (`redlock`, `rslock`, …).
    #[serde(default = "unknown")]
    pub client: String,
    /// Which of the client's runtimes ran it.
    #[serde(default)]
    pub adapter: String,
    /// `uncontended` or `contended`.
    #[serde(default)]
    pub mode: String,
    /// How many nodes.
    #[serde(default)]
    pub nodes: usize,
    /// How many concurrent workers.
    #[serde(default)]
    pub concurrency: usize,
    /// The measured span, seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// The lock ttl, milliseconds.
    #[serde(default)]
    pub ttl_ms: u64,
    /// The figures.
    #[serde(flatten)]
    pub m: Measured,
    /// CPU time of the Redis servers over the case ÷ its operations: measured by the matrix,
    /// which started the servers (a single case leaves it out).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hundredths_opt"
    )]
    pub server_cpu_us_per_op: Option<f64>,
    /// Reads from client sockets by the Redis servers over the case ÷ its operations ÷ the
    /// nodes: how many times each node woke per operation (measured by the matrix, plain nodes
    /// only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hundredths_opt"
    )]
    pub server_wakeups_per_op: Option<f64>,
    /// Where the nodes ran when not as plain standalone servers over TCP: `tls` (each node
    /// over TLS) or `cluster` (one Redis Cluster as one node); or [`NO_SPIN`]. Set by the
    /// matrix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub setup: String,
    /// The many-held-leases case's own figures (`--mode held` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldFigures>,
}

impl Row {
    /// The row as one line of JSON.
    pub fn json(&self) -> String {
        // Plain structs of strings and finite numbers always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a case's JSON line; `None` when it is not one (another JSON line, or not JSON).
    pub fn from_json(line: &str) -> Option<Row> {
        serde_json::from_str(line).ok()
    }

    /// `client (adapter)`, or the client alone.
    pub fn label(&self) -> String {
        if self.adapter.is_empty() {
            self.client.clone()
        } else {
            format!("{} ({})", self.client, self.adapter)
        }
    }
}

fn unknown() -> String {
    "?".into()
}

/// Rounded to 0.1: the precision the figures have, and lines people can read.
fn tenths<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((x * 10.0).round() / 10.0)
}

/// Rounded to 0.01 (CPU per operation is often a few µs).
fn hundredths<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((x * 100.0).round() / 100.0)
}

fn hundredths_opt<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match x {
        Some(x) => hundredths(x, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Row {
        Row {
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
            server_wakeups_per_op: Some(1.02),
            setup: String::new(),
            held: None,
        }
    }

    #[test]
    fn json_round_trip() {
        let row = sample();
        let line = row.json();
        assert!(!line.contains('\n'), "one line: {line}");
        let back = Row::from_json(&line).expect("parses");
        assert_eq!(back.json(), line);
        assert_eq!(back.server_cpu_us_per_op, Some(28.5));
        assert_eq!(back.server_wakeups_per_op, Some(1.02));
        assert_eq!(back.m.ops, 100);
        assert_eq!(back.label(), "redlock (tokio)");
        // A single case does not know the servers' CPU: the field is left out, not zero.
        let bare = Row {
            server_cpu_us_per_op: None,
            server_wakeups_per_op: None,
            ..row
        };
        assert!(!bare.json().contains("server_cpu"));
        assert!(!bare.json().contains("server_wakeups"));
        assert_eq!(
            Row::from_json(&bare.json()).unwrap().server_cpu_us_per_op,
            None
        );
        assert!(Row::from_json("not json").is_none());
    }

    #[test]
    fn figures_are_rounded_in_the_line() {
        let mut row = sample();
        row.m.p50_us = 120.456;
        row.m.cpu_us_per_op = 33.256;
        let line = row.json();
        assert!(line.contains("\"p50_us\":120.5,"), "{line}");
        assert!(line.contains("\"cpu_us_per_op\":33.26,"), "{line}");
        assert!(
            line.starts_with(
                "{\"client\":\"redlock\",\"adapter\":\"tokio\",\"mode\":\"contended\""
            ),
            "{line}"
        );
    }

    #[test]
    fn reads_another_clients_line() {
        // As bench/rslock prints it: no max_us, an integral duration.
        let line = r#"{"client":"rslock","adapter":"tokio","mode":"uncontended","nodes":5,"concurrency":32,"duration_s":2,"ttl_ms":10000,"ops":34772,"errors":0,"ops_per_s":17386.0,"p50_us":1754.0,"p99_us":3308.0,"cpu_us_per_op":50.60,"max_holders":1,"violations":0}"#;
        let row = Row::from_json(line).expect("parses");
        assert_eq!(row.label(), "rslock (tokio)");
        assert_eq!((row.nodes, row.concurrency), (5, 32));
        assert_eq!(row.m.max_us, 0.0);
        assert_eq!(row.m.cpu_us_per_op, 50.6);
        assert_eq!(row.server_cpu_us_per_op, None);
        // The figures a table needs are required; a redis-benchmark line is not a case's row.
        let ceiling = r#"{"client":"redis-benchmark","command":"SET NX PX","clients":1,"ops_per_s":11528.0,"p50_us":79.0,"p99_us":295.0}"#;
        assert!(Row::from_json(ceiling).is_none());
    }
}
