//! Signals by process id, through the `kill` system call (rustix's safe wrapper: the workspace
//! forbids `unsafe`, and a `kill(1)` binary may be missing in a minimal container).

use rustix::process::{kill_process, test_kill_process, Pid, Signal};
use std::io;

/// Sends `sig` (as `kill(1)` spells it: `-TERM`, `-STOP`, `-CONT`, `-KILL`, `-INT`, `-HUP`,
/// `-QUIT`, `-USR1`, `-USR2`, or `-0` to only check) to process `pid`.
///
/// Returns an error for a name not in that list, a pid that is not a process id, or when the
/// system refuses (no such process, not ours).
pub fn signal(sig: &str, pid: u32) -> io::Result<()> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {pid}")))?;
    let result = match sig.trim_start_matches('-').trim_start_matches("SIG") {
        "0" => test_kill_process(target),
        name => {
            let sig = signal_named(name).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("unknown signal {sig}"))
            })?;
            kill_process(target, sig)
        }
    };
    result.map_err(|e| io::Error::other(format!("kill {sig} {pid}: {e}")))
}

/// The signal called `name` (without `SIG`), among those the tests and the demo use.
pub fn signal_named(name: &str) -> Option<Signal> {
    Some(match name {
        "TERM" | "15" => Signal::TERM,
        "KILL" | "9" => Signal::KILL,
        "INT" | "2" => Signal::INT,
        "HUP" | "1" => Signal::HUP,
        "QUIT" | "3" => Signal::QUIT,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "STOP" => Signal::STOP,
        "CONT" => Signal::CONT,
        _ => return None,
    })
}

/// Whether a process with this pid exists (`kill(pid, 0)` succeeds, or fails only for lack of
/// permission).
///
/// A zombie (exited but not reaped) still counts; [`Cluster`](crate::Cluster) always reaps its
/// children.
pub fn pid_exists(pid: u32) -> bool {
    match i32::try_from(pid).ok().and_then(Pid::from_raw) {
        Some(p) => !matches!(test_kill_process(p), Err(e) if e == rustix::io::Errno::SRCH),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_a_child_by_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        assert!(pid_exists(child.id()));
        signal("-0", child.id()).expect("exists");
        assert!(signal("-BOGUS", child.id()).is_err());
        signal("-KILL", child.id()).expect("killed");
        let status = child.wait().expect("reaped");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(signal("-TERM", child.id()).is_err(), "gone");
    }
}
