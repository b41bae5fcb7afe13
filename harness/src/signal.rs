//! Signals by process id, through `kill(1)` (the workspace forbids `unsafe`, so no `libc`).

use std::io;
use std::process::{Command, Stdio};

/// Sends `sig` (as `kill(1)` spells it: `-TERM`, `-STOP`, `-CONT`, …) to process `pid`.
///
/// Returns an error when `kill` cannot be run or refuses (no such process, not ours).
pub fn signal(sig: &str, pid: u32) -> io::Result<()> {
    let out = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`kill {sig} {pid}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether a process with this pid exists (`kill -0 pid` succeeds).
///
/// A zombie (exited but not reaped) still counts; [`Cluster`](crate::Cluster) always reaps its
/// children.
pub fn pid_exists(pid: u32) -> bool {
    signal("-0", pid).is_ok()
}
