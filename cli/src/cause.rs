//! Why an acquire failed, in one line a user can act on, and whether waiting looks pointless.
//!
//! The library reports what each node did in the last attempt ([`Error::attempts`]) and, for a
//! node it could not use, why ([`NodeReport::failure`]): the handshake's refusal (`WRONGPASS
//! …`), or the last connect failure (`Connection refused`, a name that does not resolve, a TLS
//! certificate the settings do not trust). This sorts those into what waiting may fix and what
//! it will not.

use redlock_tokio::{Error, NodeReport, Outcome};

/// What kind of failure, for the exit status and whether to keep waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Another holder has the lock.
    Held,
    /// Nodes are slow, restarting, or failing in a way that may pass.
    Transient,
    /// Every failing node refused connections (looks permanent).
    Refused,
    /// A node's host name does not resolve, a node refused the credentials, or its TLS
    /// certificate is not trusted (looks permanent, and is a configuration problem).
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

/// Explains `e` from the library's per-node outcomes and causes.
pub fn classify(e: &Error) -> Cause {
    let attempt = match e {
        Error::Locked { .. } => {
            return Cause {
                kind: Kind::Held,
                text: "held by another holder".into(),
            }
        }
        Error::Config(_) | Error::InvalidUrl(_) | Error::Tls(_) => {
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
    let reasons = attempt.nodes.iter().filter_map(reason).collect();
    summarize(attempt.nodes.len(), reasons)
}

/// Why one node failed the attempt; `None` when it did not fail.
fn reason(report: &NodeReport) -> Option<Reason> {
    let addr = &report.addr;
    let transient = |text: String| {
        Some(Reason {
            kind: Kind::Transient,
            text,
        })
    };
    match &report.outcome {
        Outcome::Granted
        | Outcome::Refused
        | Outcome::Released(_)
        | Outcome::NotAwaited
        | Outcome::SittingOut { .. } => None,
        Outcome::Broken(redlock_core::ConnError::Handshake(text)) | Outcome::ErrorReply(text)
            if is_auth(text) =>
        {
            Some(Reason {
                kind: Kind::Config,
                text: format!("{addr} refused the credentials: {text}"),
            })
        }
        Outcome::NotReady | Outcome::Disconnected => match report.cause.as_deref() {
            Some(cause) => {
                let (kind, text) = connect_failure(addr, cause);
                Some(Reason { kind, text })
            }
            None => transient(format!("{addr}: not connected yet")),
        },
        other => transient(format!("{addr}: {other}")),
    }
}

/// What a connect failure's cause (the I/O error's text, as the library reports it) means.
fn connect_failure(addr: &str, cause: &str) -> (Kind, String) {
    let lower = cause.to_lowercase();
    if lower.contains("connection refused") {
        (Kind::Refused, format!("{addr}: connection refused"))
    } else if lower.contains("temporary failure in name resolution") {
        (
            Kind::Transient,
            format!("{addr}: name lookup failed: {cause}"),
        )
    } else if [
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "nodename nor servname",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        (Kind::Config, format!("unknown host {host:?}"))
    } else if lower.contains("certificate") {
        (Kind::Config, format!("{addr}: {cause}"))
    } else {
        (Kind::Transient, format!("{addr}: {cause}"))
    }
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
    fn connect_failures() {
        let (k, t) = connect_failure("127.0.0.1:1", "Connection refused (os error 111)");
        assert_eq!(
            (k, t.as_str()),
            (Kind::Refused, "127.0.0.1:1: connection refused")
        );
        let (k, t) = connect_failure(
            "db.invalid:6379",
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(
            (k, t.as_str()),
            (Kind::Config, "unknown host \"db.invalid\"")
        );
        let (k, _) = connect_failure(
            "db:6379",
            "failed to lookup address information: Temporary failure in name resolution",
        );
        assert_eq!(k, Kind::Transient);
        let (k, t) = connect_failure(
            "localhost:6380",
            "TLS: invalid peer certificate: UnknownIssuer",
        );
        assert_eq!(k, Kind::Config);
        assert!(t.contains("UnknownIssuer"), "{t}");
        let (k, _) = connect_failure("h:1", "connect timed out after 1s");
        assert_eq!(k, Kind::Transient);
    }

    #[test]
    fn auth_errors() {
        assert!(is_auth("WRONGPASS invalid username-password pair"));
        assert!(is_auth("NOAUTH Authentication required."));
        assert!(!is_auth("OOM command not allowed"));
    }
}
