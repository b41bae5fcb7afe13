//! One connection the engine keeps: which node it serves, what for, and what belongs to that
//! socket's server (its restart-aware vote, the releases it missed).
//!
//! A standalone node has one link for its lock requests. A RESP2 node whose waiters subscribe to
//! release announcements gets a second one (a RESP2 connection that subscribes can send nothing
//! else). A cluster node has its seed link (the slot map) plus one per shard primary the slot
//! map names, which carry its lock requests.

use crate::conn::Conn;
use crate::endpoint::Endpoint;
use crate::ids::NodeId;
use crate::request::Call;
use crate::voter::Voter;
use std::collections::VecDeque;
use std::sync::Arc;

/// What a link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// A standalone node's own connection: its lock requests.
    Main,
    /// A cluster node's own connection, to its configured seed address: the slot map (and,
    /// over RESP3, release announcements).
    Seed,
    /// Subscriptions to release channels for a RESP2 node, to its configured address.
    Subscriber,
    /// A cluster's shard primary at this endpoint: the lock requests for its slots.
    Shard(Endpoint),
}

impl Role {
    /// Whether lock requests go over this link (so its server's version, restarts and
    /// replies matter).
    pub(crate) fn carries_locks(&self) -> bool {
        matches!(self, Role::Main | Role::Shard(_))
    }
}

#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) conn: Conn,
    pub(crate) node: NodeId,
    pub(crate) role: Role,
    /// The host it connects to: what an empty host in a cluster's reply stands for.
    pub(crate) host: Arc<str>,
    /// Restart-aware voting for the server behind this socket.
    pub(crate) voter: Voter,
    /// Releases for acquires whose connection broke after they were written (they may still
    /// run there): sent once this link's next handshake succeeds.
    pub(crate) missed: VecDeque<Call>,
}

impl Link {
    pub(crate) fn new(conn: Conn, node: NodeId, role: Role, host: Arc<str>) -> Link {
        Link {
            conn,
            node,
            role,
            host,
            voter: Voter::default(),
            missed: VecDeque::new(),
        }
    }

    /// Whether what breaks on this link is the node's cause (a subscriber's trouble is not:
    /// lock requests never go there).
    pub(crate) fn speaks_for_node(&self) -> bool {
        self.role != Role::Subscriber
    }
}
