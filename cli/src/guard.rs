//! The guard: a small second `redlock` process that kills the command's process group if
//! `redlock run` dies (SIGKILL, a crash, the OOM killer) while the command runs, so no command
//! outlives the process that keeps its lock alive.
//!
//! `redlock run` starts the guard (its own executable, `redlock __guard`, in a process group of
//! its own so a terminal's signals do not reach it) with a pipe as its standard input, and
//! writes the command's process group id into it. When `redlock run` exits, however it exits,
//! the kernel closes the pipe; the guard reads end-of-file and sends SIGKILL to the group, unless
//! `redlock run` said `done` first (after the group had exited). A pipe's end-of-file works on
//! every Unix, so this is not Linux-only as `PR_SET_PDEATHSIG` would be, and it reaches the
//! command's descendants, which a parent-death signal (delivered to the direct child only)
//! does not. It needs no `unsafe` (no `pre_exec`).

use rustix::io::Errno;
use rustix::process::{kill_process_group, Pid, Signal};
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The hidden subcommand that runs the guard.
pub const SUBCOMMAND: &str = "__guard";

/// `redlock run`'s handle on its guard.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Guard {
    /// Starts the guard process (not yet watching anything).
    pub fn start() -> io::Result<Guard> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Guard { child, pipe })
    }

    /// Tells the guard which process group to kill should this process die.
    pub fn watch(&mut self, pgid: i32) -> io::Result<()> {
        let pipe = self
            .pipe
            .as_mut()
            .ok_or_else(|| io::Error::other("guard closed"))?;
        writeln!(pipe, "{pgid}")?;
        pipe.flush()
    }

    /// The group has exited: the guard leaves it alone and exits.
    pub fn stand_down(mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = writeln!(pipe, "done");
        }
        let _ = self.child.wait();
    }
}

/// Runs the guard: reads a process group id, then waits for `done` or end-of-file; on
/// end-of-file (the `redlock run` that started it is gone) kills the group. Returns the exit
/// status.
pub fn main() -> u8 {
    let stdin = io::stdin();
    let mut pgid: Option<Pid> = None;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "done" => return 0,
            n => pgid = n.parse::<i32>().ok().and_then(Pid::from_raw).or(pgid),
        }
    }
    if let Some(pgid) = pgid {
        match kill_process_group(pgid, Signal::KILL) {
            Ok(()) => eprintln!(
                "redlock: `redlock run` died while its command ran; killed the command's \
                 process group {}",
                pgid.as_raw_pid()
            ),
            Err(Errno::SRCH) => {}
            Err(e) => eprintln!(
                "redlock: `redlock run` died; could not kill process group {}: {e}",
                pgid.as_raw_pid()
            ),
        }
    }
    0
}
