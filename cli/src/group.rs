//! The command's process group: spawned as its own group, signalled as a whole with kill(2),
//! and watched until every member has exited.
//!
//! On Linux `redlock` is made a child subreaper first, so the command's orphaned descendants
//! become `redlock`'s children: one thread reaps the group with `waitpid(-pgid)` and knows when
//! the last member is gone (no zombie of an absent init keeps it "alive"). Elsewhere orphans go
//! to init, and the thread then polls `kill(-pgid, 0)` until the group is empty.

use rustix::io::Errno;
use rustix::process::{
    kill_process_group, test_kill_process_group, waitpgid, Pid, Signal, WaitOptions,
};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the reaper thread reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command itself (the group's leader) exited with this shell-style status.
    Leader(u8),
    /// Every process of the group has exited.
    Gone,
}

/// A running command in its own process group.
#[derive(Debug)]
pub struct Group {
    pgid: Pid,
    events: mpsc::UnboundedReceiver<Exit>,
    gone: bool,
}

/// Makes this process the reaper of its orphaned descendants (Linux); elsewhere nothing.
/// Call before spawning.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    {
        // Failure leaves orphans to init; the group is then watched by polling.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    }
}

impl Group {
    /// Starts `cmd` as the leader of a new process group (its pgid is its pid).
    pub fn spawn(mut cmd: Command) -> io::Result<Group> {
        cmd.process_group(0).stdin(Stdio::inherit());
        let child = cmd.spawn()?;
        let pgid = Pid::from_child(&child);
        // The reaper thread waits for the group; the `Child` is not waited on through std.
        drop(child);
        let (tx, events) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("redlock-reaper".into())
            .spawn(move || reap(pgid, &tx))?;
        Ok(Group {
            pgid,
            events,
            gone: false,
        })
    }

    /// The command's pid, which is also the group id.
    pub fn pid(&self) -> i32 {
        self.pgid.as_raw_pid()
    }

    /// Sends `sig` to every process of the group. A group already gone is not an error.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        match kill_process_group(self.pgid, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The next exit: the leader's, then the whole group's (then pending forever).
    pub async fn next(&mut self) -> Exit {
        if self.gone {
            return std::future::pending().await;
        }
        match self.events.recv().await {
            Some(Exit::Gone) | None => {
                self.gone = true;
                Exit::Gone
            }
            Some(e) => e,
        }
    }
}

/// Reaps every member of group `pgid` that is (or becomes) our child, reporting the leader's
/// status, then waits until no process of the group is left and reports [`Exit::Gone`].
fn reap(pgid: Pid, tx: &mpsc::UnboundedSender<Exit>) {
    let mut leader_seen = false;
    loop {
        match waitpgid(pgid, WaitOptions::empty()) {
            Ok(Some((pid, status))) => {
                if pid == pgid {
                    leader_seen = true;
                    let code = match (status.exit_status(), status.terminating_signal()) {
                        (Some(code), _) => (code & 0xff) as u8,
                        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
                        (None, None) => redlock_cli::exit::FAILURE,
                    };
                    let _ = tx.send(Exit::Leader(code));
                }
            }
            Ok(None) | Err(Errno::INTR) => {}
            // No child of ours is left in the group.
            Err(_) => break,
        }
    }
    if !leader_seen {
        let _ = tx.send(Exit::Leader(redlock_cli::exit::FAILURE));
    }
    // Members that are not our children (no subreaper, or escaped our tree): poll until the
    // group is empty. A zombie left for init counts until init reaps it.
    while !matches!(test_kill_process_group(pgid), Err(Errno::SRCH)) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = tx.send(Exit::Gone);
}
