//! Errors: caller misuse (returned at once) and what the nodes did (data in an operation's result).

use crate::ids::{NodeId, OpId};
use crate::limits::{MAX_DURATION, MIN_TOKEN_BYTES};
use crate::resp::StreamError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Caller misuse, reported synchronously: nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The configuration lists no nodes.
    NoNodes,
    /// The operation id is not in flight (already completed or cancelled, or never existed).
    UnknownOp(OpId),
    /// An operation named no resources.
    NoResources,
    /// A resource name was empty.
    EmptyResource,
    /// A ttl that leaves no validity once the drift margin is taken off.
    TtlTooShort {
        /// The ttl asked for.
        ttl: Duration,
        /// The drift margin (`ttl × drift_factor + 2 ms`).
        drift: Duration,
    },
    /// A ttl longer than [`MAX_DURATION`].
    TtlTooLong {
        /// The ttl asked for.
        ttl: Duration,
    },
    /// A token made from fewer than [`MIN_TOKEN_BYTES`] random bytes.
    TokenTooShort {
        /// How many bytes were given.
        len: usize,
    },
    /// `extend` on a lock whose validity has already run out: the keys may be gone or taken.
    Expired,
    /// An option out of range.
    InvalidOption {
        /// The field of [`Options`](crate::Options).
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A node configuration that cannot work.
    InvalidNode {
        /// The node, as `host:port`.
        node: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same `host:port` appears twice: it would cast two votes.
    DuplicateNode {
        /// The node, as `host:port`.
        node: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoNodes => f.write_str("no Redis nodes configured"),
            Error::UnknownOp(op) => write!(f, "operation {op} is not in flight"),
            Error::NoResources => f.write_str("a lock needs at least one resource name"),
            Error::EmptyResource => f.write_str("resource names must not be empty"),
            Error::TtlTooShort { ttl, drift } => write!(
                f,
                "ttl {ttl:?} leaves no validity after the {drift:?} drift margin; use a longer ttl"
            ),
            Error::TtlTooLong { ttl } => write!(
                f,
                "ttl {ttl:?} is longer than the {:?} maximum",
                MAX_DURATION
            ),
            Error::TokenTooShort { len } => write!(
                f,
                "lock token made from {len} random bytes; at least {} are required",
                MIN_TOKEN_BYTES
            ),
            Error::Expired => f.write_str("the lock's validity has run out; acquire it again"),
            Error::InvalidOption { name, reason } => write!(f, "option {name} {reason}"),
            Error::InvalidNode { node, reason } => write!(f, "node {node}: {reason}"),
            Error::DuplicateNode { node } => write!(
                f,
                "node {node} is listed twice; each node must be independent and appear once"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Why a connection was declared broken (the engine then emits
/// [`Event::Reconnect`](crate::Event::Reconnect)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnError {
    /// A request got no reply within `node_timeout`.
    Timeout(Duration),
    /// The node sent bytes that are not RESP, or a reply too large to buffer.
    Stream(StreamError),
    /// A reply of a type the request cannot produce (e.g. a string where the script returns an integer).
    UnexpectedReply(String),
    /// A handshake command (AUTH, HELLO, SELECT, CLIENT SETNAME) was refused.
    Handshake(String),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Timeout(d) => write!(f, "no reply within {d:?}"),
            ConnError::Stream(e) => e.fmt(f),
            ConnError::UnexpectedReply(r) => write!(f, "unexpected reply {r}"),
            ConnError::Handshake(e) => write!(f, "handshake refused: {e}"),
        }
    }
}

impl std::error::Error for ConnError {}

/// What one node did in one attempt of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The script ran and granted (acquire/extend).
    Granted,
    /// The script ran and refused: another holder (acquire) or not our key any more (extend).
    Refused,
    /// The release script ran and deleted this many keys.
    Released(u32),
    /// The node answered with an error reply (e.g. `OOM`, `BUSY`, `NOAUTH`, or NOSCRIPT twice).
    ErrorReply(String),
    /// No reply within `node_timeout`.
    Timeout,
    /// The connection dropped before the reply.
    Disconnected,
    /// The connection broke for another reason (garbage bytes, handshake refused, …).
    Broken(ConnError),
    /// The node was not connected when the attempt started.
    NotReady,
    /// The attempt was decided before this node answered (quorum reached or impossible).
    NotAwaited,
    /// The node granted, but its vote did not count: it restarted recently (uptime below
    /// `restart_grace`, or a new `run_id`) and may have lost keys. It votes again after `remaining`.
    SittingOut {
        /// Until the node votes again.
        remaining: Duration,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Granted => f.write_str("granted"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::Released(n) => write!(f, "released {n} key(s)"),
            Outcome::ErrorReply(e) => write!(f, "replied {e:?}"),
            Outcome::Timeout => f.write_str("timed out"),
            Outcome::Disconnected => f.write_str("disconnected"),
            Outcome::Broken(e) => write!(f, "connection broken: {e}"),
            Outcome::NotReady => f.write_str("not connected"),
            Outcome::NotAwaited => f.write_str("not awaited"),
            Outcome::SittingOut { remaining } => {
                write!(f, "restarted recently; sits out for another {remaining:?}")
            }
        }
    }
}

/// One node's line in an [`Attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeReport {
    /// Which node.
    pub node: NodeId,
    /// Its address, `host:port`.
    pub addr: Arc<str>,
    /// What it did.
    pub outcome: Outcome,
    /// Why the node was not usable, when its outcome is [`Outcome::NotReady`] or
    /// [`Outcome::Disconnected`]: the last connection failure or handshake refusal the engine
    /// saw or was told of (e.g. `WRONGPASS invalid username-password pair`, `connection
    /// refused`).
    pub cause: Option<Arc<str>>,
}

impl NodeReport {
    /// A report of `outcome` for `node` at `addr`, with no cause (for adapters and tests that
    /// build attempts themselves).
    pub fn new(node: NodeId, addr: impl Into<Arc<str>>, outcome: Outcome) -> NodeReport {
        NodeReport {
            node,
            addr: addr.into(),
            outcome,
            cause: None,
        }
    }

    /// The report with `cause` as why the node was not usable.
    pub fn with_cause(mut self, cause: impl Into<Arc<str>>) -> NodeReport {
        self.cause = Some(cause.into());
        self
    }

    /// Why this node failed the attempt, in one line an operator can act on, or `None` when it
    /// granted, refused or released.
    pub fn failure(&self) -> Option<String> {
        match (&self.outcome, &self.cause) {
            (Outcome::Granted | Outcome::Refused | Outcome::Released(_), _) => None,
            (Outcome::NotAwaited, _) => None,
            (Outcome::Broken(ConnError::Handshake(e)), _) => Some(e.clone()),
            (Outcome::NotReady | Outcome::Disconnected, Some(cause)) => Some(cause.to_string()),
            (Outcome::ErrorReply(e), _) if e.starts_with("NOPERM") => Some(noperm(e)),
            (outcome, _) => Some(outcome.to_string()),
        }
    }
}

/// A `NOPERM` refusal, with what would fix it.
fn noperm(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    if ["'eval'", "'evalsha'", "'eval_ro'", "'evalsha_ro'"]
        .iter()
        .any(|c| lower.contains(c))
    {
        format!(
            "{error} (this operation needs a Lua script on this server: grant the ACL user \
             +@scripting (ACL SETUSER <user> +@scripting), or use a server whose own commands \
             stand in for it: Redis >= 8.4, Valkey >= 9.0 for release, Valkey >= 8.1 to extend)"
        )
    } else {
        format!("{error} (grant the ACL user this command on the lock keys)")
    }
}

/// `addr: outcome`, with the cause when there is one.
impl fmt::Display for NodeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.addr, self.outcome)?;
        if let (Outcome::NotReady | Outcome::Disconnected, Some(cause)) =
            (&self.outcome, &self.cause)
        {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

/// One round of an operation: what every node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// From sending to deciding.
    pub elapsed: Duration,
    /// One report per configured node, in node order.
    pub nodes: Vec<NodeReport>,
}

impl Attempt {
    /// How many nodes have this outcome.
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.nodes.iter().filter(|r| f(&r.outcome)).count()
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "after {:?}: ", self.elapsed)?;
        for (i, r) in self.nodes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// Acquire: enough nodes answered, and they refused: someone else holds a resource.
    Locked,
    /// Extend: enough nodes answered, and our keys are gone or belong to someone else.
    NotHeld,
    /// Too few nodes answered to reach quorum: nodes are down, slow or failing.
    Unreachable,
    /// The lock's validity ran out before the operation could succeed.
    Expired,
    /// The caller cancelled the operation.
    Cancelled,
}

/// A failed operation: why, and every attempt's per-node detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// Why it failed.
    pub failure: Failure,
    /// Each attempt in order; the last one decided the failure (empty for a cancel before any attempt ended).
    pub attempts: Vec<Attempt>,
    /// The operation ran out of the time its caller gave it
    /// ([`AcquireOptions`](crate::AcquireOptions)) with retries left: `failure` then says what
    /// the last attempt met (`Locked`: held by another holder; `Unreachable`: too few nodes
    /// answered by the deadline).
    pub timed_out: bool,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts.len();
        if self.timed_out {
            f.write_str("timed out: ")?;
        }
        match self.failure {
            Failure::Locked => write!(
                f,
                "locked by another holder (refused by a quorum, {n} attempt(s))"
            )?,
            Failure::NotHeld => write!(
                f,
                "lock no longer held (quorum refused to extend, {n} attempt(s))"
            )?,
            Failure::Unreachable => write!(
                f,
                "quorum unreachable: too few nodes answered ({n} attempt(s))"
            )?,
            Failure::Expired => write!(f, "lock validity ran out before quorum ({n} attempt(s))")?,
            Failure::Cancelled => write!(f, "cancelled")?,
        }
        if let Some(last) = self.attempts.last() {
            write!(f, "; last attempt {last}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OpError {}
