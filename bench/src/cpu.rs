//! CPU time used by a process (all threads, user + system), from `/proc/<pid>/stat`: this one
//! (the client's figure) or another (the Redis servers' figure in the benchmark).

use std::time::Duration;

/// User plus system CPU time consumed so far by every thread of this process, including threads
/// that have exited. `None` where `/proc` is not available (not Linux).
///
/// The kernel counts in clock ticks ([`clock_ticks_per_second`], 100 on Linux), so the
/// resolution is 10 ms: measure over seconds, not single operations.
pub fn process_time() -> Option<Duration> {
    stat_time("/proc/self/stat")
}

/// Like [`process_time`], for process `pid`. `None` when it is gone or `/proc` is not there.
pub fn pid_time(pid: u32) -> Option<Duration> {
    stat_time(&format!("/proc/{pid}/stat"))
}

fn stat_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    parse_stat(&stat, clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)` via `getconf CLK_TCK` (asked once), or 100 when that fails.
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// Fields 14 (utime) and 15 (stime) of a `/proc/PID/stat` line, counted after the command
/// name (which sits in parentheses and may itself contain spaces or parentheses).
fn parse_stat(stat: &str, ticks: u64) -> Option<Duration> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let ticks_total = utime + stime;
    Some(Duration::from_nanos(
        ticks_total * 1_000_000_000 / ticks.max(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 3 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat("garbage", 100), None);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            let start = process_time().expect("readable");
            let mut x = 0u64;
            let until = std::time::Instant::now() + Duration::from_millis(50);
            while std::time::Instant::now() < until {
                x = x.wrapping_add(1);
            }
            assert!(x > 0);
            assert!(process_time().expect("readable") >= start);
            let me = pid_time(std::process::id()).expect("readable by pid");
            assert!(me >= start);
            assert_eq!(pid_time(u32::MAX), None, "no such process");
        }
    }
}
