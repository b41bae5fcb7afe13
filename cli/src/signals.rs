//! The signals `redlock run` catches and passes on to the command's process group, as
//! `timeout(1)` does: INT, TERM, HUP, QUIT, USR1, USR2.

use rustix::process::Signal;
use tokio::signal::unix::{signal, SignalKind};

/// The caught signals, as tokio streams with their kill(2) number and name.
pub struct Signals {
    caught: Vec<(tokio::signal::unix::Signal, Signal, &'static str)>,
}

impl Signals {
    /// Installs the handlers (from now on these signals no longer kill `redlock`).
    pub fn new() -> std::io::Result<Signals> {
        let list = [
            (SignalKind::interrupt(), Signal::INT, "INT"),
            (SignalKind::terminate(), Signal::TERM, "TERM"),
            (SignalKind::hangup(), Signal::HUP, "HUP"),
            (SignalKind::quit(), Signal::QUIT, "QUIT"),
            (SignalKind::user_defined1(), Signal::USR1, "USR1"),
            (SignalKind::user_defined2(), Signal::USR2, "USR2"),
        ];
        let mut caught = Vec::new();
        for (kind, sig, name) in list {
            caught.push((signal(kind)?, sig, name));
        }
        Ok(Signals { caught })
    }

    /// The next signal received: the signal and its name.
    pub async fn next(&mut self) -> (Signal, &'static str) {
        std::future::poll_fn(|cx| {
            for (stream, sig, name) in &mut self.caught {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready((*sig, *name));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// The status a shell reports for a process killed by `sig`: 128 + its number.
pub fn status_for(sig: Signal) -> u8 {
    (128 + sig.as_raw()).clamp(0, 255) as u8
}
