//! Why an acquire failed, in one line a user can act on, and whether waiting looks pointless.
//!
//! The library reports what each node did in the last attempt ([`Error::attempts`]). A wrong
//! password shows there as the handshake's refusal (`WRONGPASS …`). A node that could not be
//! connected to shows only as "not connected": the library does not say why, so the CLI asks
//! itself, with a name lookup and a TCP connect of its own, to tell an unknown host and a
//! refused connection from a node that is merely slow.

use redlock_core::NodeConfig;
use redlock_tokio::{Error, Outcome};
use std::time::Duration;
use tokio::time::timeout;

/// How long the CLI's own look at a failing node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What kind of failure, for the exit status and whether to keep waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Another holder has the lock.
    Held,
    /// Nodes are slow, restarting, or failing in a way that may pass.
    Transient,
    /// Every failing node refused connections (looks permanent).
    Refused,
    /// A node's host name does not resolve, or a node refused the credentials (looks
    /// permanent, and is a configuration problem).
    Config,
}

/// One failed acquire, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The kind that decides.
    pub kind: Kind,
    /// One line, without the resource name.
    pub text: String,
}

impl Cause {
    /// Whether waiting longer is unlikely to help.
    pub fn permanent(&self) -> bool {
        matches!(self.kind, Kind::Refused | Kind::Config)
    }
}

/// One failing node's reason.
struct Reason {
    kind: Kind,
    text: String,
}

/// Explains `e`, probing nodes that were not connected. `nodes` are the configured nodes in
/// order (the attempts' order).
pub async fn classify(e: &Error, nodes: &[NodeConfig]) -> Cause {
    let attempt = match e {
        Error::Locked { .. } => {
            return Cause {
                kind: Kind::Held,
                text: "held by another holder".into(),
            }
        }
        Error::Config(_) | Error::InvalidUrl(_) => {
            return Cause {
                kind: Kind::Config,
                text: e.to_string(),
            }
        }
        other => match other.attempts().last() {
            Some(a) => a,
            None => {
                return Cause {
                    kind: Kind::Transient,
                    text: other.to_string(),
                }
            }
        },
    };
    let mut probes = tokio::task::JoinSet::new();
    let mut reasons: Vec<(usize, Reason)> = Vec::new();
    for (i, report) in attempt.nodes.iter().enumerate() {
        match &report.outcome {
            Outcome::Granted
            | Outcome::Refused
            | Outcome::Released(_)
            | Outcome::NotAwaited
            | Outcome::SittingOut { .. } => {}
            Outcome::Broken(redlock_core::ConnError::Handshake(text))
            | Outcome::ErrorReply(text)
                if is_auth(text) =>
            {
                reasons.push((
                    i,
                    Reason {
                        kind: Kind::Config,
                        text: format!("{} refused the credentials: {text}", report.addr),
                    },
                ))
            }
            Outcome::NotReady | Outcome::Disconnected => {
                if let Some(node) = nodes.get(i).cloned() {
                    probes.spawn(async move { (i, probe(&node).await) });
                }
            }
            other => reasons.push((
                i,
                Reason {
                    kind: Kind::Transient,
                    text: format!("{}: {other}", report.addr),
                },
            )),
        }
    }
    while let Some(done) = probes.join_next().await {
        if let Ok(found) = done {
            reasons.push(found);
        }
    }
    reasons.sort_by_key(|(i, _)| *i);
    let total = attempt.nodes.len();
    summarize(total, reasons.into_iter().map(|(_, r)| r).collect())
}

/// The cause from every failing node's reason.
fn summarize(total: usize, reasons: Vec<Reason>) -> Cause {
    let failed = reasons.len();
    let head = format!("too few nodes answered to form a quorum ({failed} of {total} failed)");
    if reasons.is_empty() {
        return Cause {
            kind: Kind::Transient,
            text: head,
        };
    }
    // The worst kind decides; a refusal counts as permanent only when every node refused.
    let mut kind = reasons
        .iter()
        .map(|r| r.kind)
        .max()
        .unwrap_or(Kind::Transient);
    if kind == Kind::Refused && !(failed == total && reasons.iter().all(|r| r.kind == kind)) {
        kind = Kind::Transient;
    }
    let all_refused = failed == total && reasons.iter().all(|r| r.kind == Kind::Refused);
    let detail = if all_refused {
        "connection refused on every node".to_string()
    } else {
        reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Cause {
        kind,
        text: format!("{head}: {detail}"),
    }
}

/// Whether a node's error reply means the credentials are wrong or missing.
fn is_auth(text: &str) -> bool {
    ["WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password"]
        .iter()
        .any(|p| text.starts_with(p))
}

/// Looks up and connects to `node` to say why the library could not connect to it.
async fn probe(node: &NodeConfig) -> Reason {
    let name = node.to_string();
    let transient = |text: String| Reason {
        kind: Kind::Transient,
        text,
    };
    let addrs = match timeout(
        PROBE_TIMEOUT,
        tokio::net::lookup_host((node.host.as_str(), node.port)),
    )
    .await
    {
        Err(_) => return transient(format!("{name}: name lookup timed out")),
        Ok(Err(e)) if e.to_string().contains("emporary") => {
            return transient(format!("{name}: name lookup failed: {e}"))
        }
        Ok(Err(_)) => {
            return Reason {
                kind: Kind::Config,
                text: format!("unknown host {:?}", node.host),
            }
        }
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
    };
    let Some(addr) = addrs.first() else {
        return Reason {
            kind: Kind::Config,
            text: format!("unknown host {:?} (no address)", node.host),
        };
    };
    match timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Err(_) => transient(format!("{name}: connect timed out")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reason {
            kind: Kind::Refused,
            text: format!("{name}: connection refused"),
        },
        Ok(Err(e)) => transient(format!("{name}: {e}")),
        Ok(Ok(_)) => transient(format!("{name}: not connected yet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: Kind, text: &str) -> Reason {
        Reason {
            kind,
            text: text.into(),
        }
    }

    #[test]
    fn the_worst_reason_decides() {
        let c = summarize(
            3,
            vec![
                r(Kind::Refused, "a: refused"),
                r(Kind::Config, "b refused the credentials: WRONGPASS x"),
            ],
        );
        assert_eq!(c.kind, Kind::Config);
        assert!(c.text.contains("WRONGPASS"), "{}", c.text);
        let c = summarize(
            2,
            vec![
                r(Kind::Refused, "a: refused"),
                r(Kind::Refused, "b: refused"),
            ],
        );
        assert_eq!(c.kind, Kind::Refused);
        assert!(
            c.text.ends_with("connection refused on every node"),
            "{}",
            c.text
        );
        assert!(c.permanent());
        // Some nodes refused, another timed out: may pass.
        let c = summarize(3, vec![r(Kind::Refused, "a"), r(Kind::Transient, "b")]);
        assert_eq!(c.kind, Kind::Transient);
        let c = summarize(3, vec![r(Kind::Refused, "a"), r(Kind::Refused, "b")]);
        assert_eq!(c.kind, Kind::Transient, "one node did answer");
        assert!(!c.permanent());
    }

    #[test]
    fn auth_errors() {
        assert!(is_auth("WRONGPASS invalid username-password pair"));
        assert!(is_auth("NOAUTH Authentication required."));
        assert!(!is_auth("OOM command not allowed"));
    }
}
