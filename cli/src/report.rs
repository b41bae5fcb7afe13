//! Errors as one readable line, with the per-node detail under `-v`.

use redlock_tokio::{Attempt, Error, Outcome};

/// The one-line summary of a lock error (no per-node detail).
pub fn summary(e: &Error) -> String {
    let n = e.attempts().len();
    summary_with(
        e,
        &if n == 1 {
            "1 attempt".to_string()
        } else {
            format!("{n} attempts")
        },
    )
}

/// [`summary`] with the parenthesised count of attempts replaced by `tries`.
pub fn summary_with(e: &Error, tries: &str) -> String {
    match e {
        Error::Locked { .. } => format!("held by another holder ({tries})"),
        Error::Unreachable { attempts } => {
            let why = attempts
                .last()
                .map(|a| {
                    let failed = a.count(|o| {
                        !matches!(
                            o,
                            Outcome::Granted | Outcome::Refused | Outcome::Released(_)
                        )
                    });
                    format!(": {failed} of {} nodes failed", a.nodes.len())
                })
                .unwrap_or_default();
            format!("too few nodes answered to form a quorum{why} ({tries})")
        }
        Error::NotHeld { .. } => format!("no longer held on a quorum of nodes ({tries})"),
        Error::Expired { .. } => "the lock's validity ran out".to_string(),
        Error::Config(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// Prints `redlock: CONTEXT: SUMMARY` to stderr, and under `-v` every attempt node by node.
pub fn error(context: &str, e: &Error, verbose: u8) {
    error_with(context, e, &summary(e), verbose);
}

/// [`error`] with a ready-made summary.
pub fn error_with(context: &str, e: &Error, summary: &str, verbose: u8) {
    let hint = if verbose == 0 && e.is_unreachable() {
        "; -v shows each node"
    } else {
        ""
    };
    eprintln!("redlock: {context}: {summary}{hint}");
    if verbose > 0 {
        detail(e.attempts());
    }
}

/// Prints every attempt, one line per node, to stderr.
pub fn detail(attempts: &[Attempt]) {
    for (i, a) in attempts.iter().enumerate() {
        eprintln!("  attempt {} (decided after {:?}):", i + 1, a.elapsed);
        for r in &a.nodes {
            eprintln!("    {:<22} {}", r.addr, r.outcome);
        }
    }
}
