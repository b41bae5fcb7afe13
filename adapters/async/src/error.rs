//! The one error type every adapter returns.

use redlock_core::{Attempt, Failure, OpError};
use std::fmt;

/// Why a lock call failed. Node-caused failures carry every attempt's per-node detail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Enough nodes answered and refused: someone else holds (one of) the resources.
    Locked {
        /// Every attempt, last one deciding.
        attempts: Vec<Attempt>,
    },
    /// Too few nodes answered to form a quorum: nodes are down, slow or failing.
    Unreachable {
        /// Every attempt, last one deciding.
        attempts: Vec<Attempt>,
    },
    /// `extend`: a quorum no longer holds the lock's token (it expired or was taken).
    NotHeld {
        /// Every attempt, last one deciding.
        attempts: Vec<Attempt>,
    },
    /// The lock's validity ran out: before `extend` was called (no attempts), or before a
    /// quorum answered.
    Expired {
        /// Every attempt, last one deciding (empty when refused before sending).
        attempts: Vec<Attempt>,
    },
    /// A bounded acquire ran out of the time it was given, with retries left.
    /// `last_failure` says what the last attempt met: [`Failure::Locked`] (another holder has
    /// the resource) or [`Failure::Unreachable`] (too few nodes answered in time).
    TimedOut {
        /// Every attempt, last one deciding.
        attempts: Vec<Attempt>,
        /// What the last attempt met.
        last_failure: Failure,
    },
    /// Bad configuration or a call that can never succeed (no resources, ttl shorter than the
    /// drift margin, a node listed twice, …). Nothing was sent.
    Config(redlock_core::Error),
    /// A node URL that cannot be used (its credentials are never shown). Nothing was sent.
    InvalidUrl(crate::node_url::UrlError),
    /// A node's TLS settings that cannot be used (a CA file that cannot be read, TLS not built
    /// in, …). Nothing was sent.
    Tls(crate::tls_error::TlsError),
}

impl Error {
    /// The attempts behind a node-caused failure (empty for [`Error::Config`]).
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            Error::Locked { attempts }
            | Error::Unreachable { attempts }
            | Error::NotHeld { attempts }
            | Error::Expired { attempts }
            | Error::TimedOut { attempts, .. } => attempts,
            Error::Config(_) | Error::InvalidUrl(_) | Error::Tls(_) => &[],
        }
    }

    /// Whether another holder has the resource (retrying later may succeed).
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }

    /// Whether nodes failed (down, slow, erroring), as opposed to refusing.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Whether a bounded acquire ran out of time (see [`Error::TimedOut`]).
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Error::TimedOut { .. })
    }

    /// A short name for the kind of failure (`locked`, `unreachable`, `not_held`, `expired`,
    /// `timed_out`, `config`, `invalid_url`, `tls`), for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Locked { .. } => "locked",
            Error::Unreachable { .. } => "unreachable",
            Error::NotHeld { .. } => "not_held",
            Error::Expired { .. } => "expired",
            Error::TimedOut { .. } => "timed_out",
            Error::Config(_) => "config",
            Error::InvalidUrl(_) => "invalid_url",
            Error::Tls(_) => "tls",
        }
    }
}

impl From<redlock_core::Error> for Error {
    fn from(e: redlock_core::Error) -> Self {
        match e {
            redlock_core::Error::Expired => Error::Expired {
                attempts: Vec::new(),
            },
            other => Error::Config(other),
        }
    }
}

impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        let attempts = e.attempts;
        if e.timed_out {
            return Error::TimedOut {
                attempts,
                last_failure: e.failure,
            };
        }
        match e.failure {
            Failure::Locked => Error::Locked { attempts },
            Failure::NotHeld => Error::NotHeld { attempts },
            Failure::Expired => Error::Expired { attempts },
            // A cancelled operation has no caller left to see it; and anything newer is,
            // from the caller's side, a failure to reach agreement.
            _ => Error::Unreachable { attempts },
        }
    }
}

/// One line by default: what happened and, for a failure to reach the nodes, each failing node
/// with its cause (`127.0.0.1:7002: WRONGPASS invalid username-password pair`). The alternate
/// form (`{:#}`) adds every attempt's per-node detail.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts().len();
        let unreachable = match self {
            Error::TimedOut {
                last_failure: Failure::Locked,
                ..
            } => {
                write!(
                    f,
                    "timed out waiting for the lock: held by another holder ({n} attempt(s))"
                )?;
                false
            }
            Error::TimedOut {
                last_failure: Failure::Expired,
                ..
            } => {
                write!(
                    f,
                    "timed out waiting for the lock: granted too late to leave validity ({n} attempt(s))"
                )?;
                false
            }
            Error::TimedOut { .. } => {
                write!(
                    f,
                    "timed out waiting for the lock: quorum unreachable ({n} attempt(s))"
                )?;
                true
            }
            Error::Unreachable { .. } => {
                write!(f, "quorum unreachable ({n} attempt(s))")?;
                true
            }
            _ => false,
        };
        match self {
            Error::TimedOut { .. } | Error::Unreachable { .. } => {}
            Error::Locked { .. } => write!(f, "locked by another holder ({n} attempt(s))")?,
            Error::NotHeld { .. } => write!(f, "lock no longer held on a quorum ({n} attempt(s))")?,
            Error::Expired { .. } => write!(f, "lock validity ran out")?,
            Error::Config(e) => return write!(f, "{e}"),
            Error::InvalidUrl(e) => return write!(f, "{e}"),
            Error::Tls(e) => return write!(f, "{e}"),
        }
        if unreachable {
            let failing = self.attempts().last().into_iter().flat_map(|last| {
                last.nodes
                    .iter()
                    .filter_map(|r| Some((r.addr.clone(), r.failure()?)))
            });
            for (i, (addr, why)) in failing.enumerate() {
                f.write_str(if i == 0 { ": " } else { "; " })?;
                write!(f, "{addr}: {why}")?;
            }
        }
        if f.alternate() {
            for (i, attempt) in self.attempts().iter().enumerate() {
                write!(f, "\n  attempt {}: {attempt}", i + 1)?;
            }
        }
        Ok(())
    }
}

/// `Display` already says the cause of [`Error::Config`], [`Error::InvalidUrl`] and
/// [`Error::Tls`], so `source`
/// returns `None`: a reporter that walks the chain prints it once.
impl std::error::Error for Error {}

impl From<crate::node_url::UrlError> for Error {
    fn from(e: crate::node_url::UrlError) -> Self {
        Error::InvalidUrl(e)
    }
}

impl From<crate::tls_error::TlsError> for Error {
    fn from(e: crate::tls_error::TlsError) -> Self {
        Error::Tls(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redlock_core::{ConnError, NodeId, NodeReport, Outcome};
    use std::time::Duration;

    fn report(i: usize, outcome: Outcome, cause: Option<&str>) -> NodeReport {
        let r = NodeReport::new(NodeId::new(i), format!("127.0.0.1:700{i}"), outcome);
        match cause {
            Some(c) => r.with_cause(c),
            None => r,
        }
    }

    #[test]
    fn unreachable_names_each_failing_node_and_its_cause_in_one_line() {
        let attempt = Attempt {
            elapsed: Duration::from_millis(3),
            nodes: vec![
                report(1, Outcome::Granted, None),
                report(
                    2,
                    Outcome::Broken(ConnError::Handshake(
                        "WRONGPASS invalid username-password pair".into(),
                    )),
                    None,
                ),
                report(3, Outcome::NotReady, Some("connection refused")),
            ],
        };
        let e = Error::Unreachable {
            attempts: vec![attempt.clone(), attempt],
        };
        let short = e.to_string();
        assert_eq!(
            short,
            "quorum unreachable (2 attempt(s)): 127.0.0.1:7002: WRONGPASS invalid \
             username-password pair; 127.0.0.1:7003: connection refused"
        );
        assert!(!short.contains('\n'));
        let full = format!("{e:#}");
        assert!(full.starts_with(&short));
        assert_eq!(full.lines().count(), 3, "{full}");
        assert!(full.contains("127.0.0.1:7001 granted"), "{full}");
    }
}
