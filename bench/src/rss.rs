//! Resident memory of this process (`VmRSS` in `/proc/self/status`), for the many-held-leases
//! case's memory figures.

/// This process's resident set size in bytes; `None` where `/proc` is not available.
pub fn resident_bytes() -> Option<u64> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The `VmRSS:  1234 kB` line of a `/proc/PID/status` text, in bytes.
fn parse_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rss_line() {
        let text = "Name:\tredlock-bench\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(parse_status(text), Some(2 * 1024 * 1024));
        assert_eq!(parse_status("Name:\tx\n"), None);
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(resident_bytes().is_some_and(|b| b > 0));
        }
    }
}
