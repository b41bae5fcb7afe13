//! The ceiling: what `redis-benchmark` gets from one node for the commands a lock costs
//! (`SET NX PX`, and a compare-and-delete script for the release).

use redlock_harness::{Conn, Reply, INSTALL_HINT};
use serde::Serialize;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A plain compare-and-delete, the shape of a one-key release.
pub(crate) const COMPARE_AND_DELETE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// One redis-benchmark measurement.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// What was run (`SET NX PX`, `EVALSHA compare-and-delete`).
    pub command: &'static str,
    /// How many redis-benchmark clients.
    pub clients: usize,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// How many requests the run sent.
    pub requests: usize,
}

/// A [`Ceiling`] as its JSON line carries it.
#[derive(Serialize)]
struct Line<'a> {
    client: &'static str,
    command: &'a str,
    clients: usize,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Ceiling {
    /// The measurement as one line of JSON (`"client":"redis-benchmark"`).
    pub fn json(&self) -> String {
        let tenths = |x: f64| (x * 10.0).round() / 10.0;
        serde_json::to_string(&Line {
            client: "redis-benchmark",
            command: self.command,
            clients: self.clients,
            ops_per_s: tenths(self.rps),
            p50_us: tenths(self.p50_us),
            p99_us: tenths(self.p99_us),
        })
        .unwrap_or_default()
    }
}

/// `SET key token NX PX ttl` and `EVALSHA compare-and-delete` with each of `client_counts`
/// clients against `url`, with random keys; each run sized to last about `duration`.
pub fn ceilings(
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
                requests: n,
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

/// Reads redis-benchmark's `--csv` output (Redis 7: `"test","rps","avg_latency_ms",…`): the
/// header line and the first row. redis-benchmark quotes every field and our commands hold no
/// quote or backslash, so each line, in brackets, is a JSON array of strings; anything else
/// (a doubled quote, say) does not parse and gives `None`.
fn parse_benchmark_csv(text: &str) -> Option<(f64, f64, f64)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let fields = |line: &str| serde_json::from_str::<Vec<String>>(&format!("[{line}]")).ok();
    let header = fields(lines.next()?)?;
    let row = fields(lines.next()?)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                    \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                    \"SET k,x NX\",\"25000.00\",\"0.040\",\"0.016\",\"0.039\",\"0.055\",\"0.071\",\"0.551\"\n";
        let (rps, p50, p99) = parse_benchmark_csv(text).unwrap();
        assert_eq!(rps, 25000.0);
        assert!((p50 - 39.0).abs() < 1e-9 && (p99 - 71.0).abs() < 1e-9);
        assert_eq!(parse_benchmark_csv("\"test\",\"rps\"\n"), None, "no row");
        assert_eq!(parse_benchmark_csv("test,rps\nSET,1\n"), None, "unquoted");
        assert_eq!(
            parse_benchmark_csv("\"test\",\"rps\"\n\"SET\",\"1\"\n"),
            None,
            "no latency columns"
        );
    }

    #[test]
    fn ceiling_line() {
        let c = Ceiling {
            command: "SET NX PX",
            clients: 50,
            rps: 80670.04,
            p50_us: 335.0,
            p99_us: 1007.0,
            requests: 100_000,
        };
        let v: serde_json::Value = serde_json::from_str(&c.json()).unwrap();
        assert_eq!(v["client"], "redis-benchmark");
        assert_eq!(v["command"], "SET NX PX");
        assert_eq!(v["clients"], 50);
        assert_eq!(v["ops_per_s"], 80670.0);
    }
}
