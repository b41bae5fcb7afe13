//! One connection the engine keeps: which node it serves, what for, and what belongs to that
//! socket's server (its restart-aware vote, the releases it missed).
//!
//! A standalone node has one link for its lock requests. A RESP2 node whose waiters subscribe to
//! release announcements gets a second one (a RESP2 connection that subscribes can send nothing
//! else). A cluster node has its seed link plus one per shard primary the slot map names.

use crate::conn::Conn;
use crate::ids::NodeId;
use crate::request::Call;
use crate::voter::Voter;
use std::collections::VecDeque;

/// What a link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// The node's own connection, to its configured address (a cluster's seed).
    Main,
    /// Subscriptions to release channels for a RESP2 node, to its configured address.
    Subscriber,
}

#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) conn: Conn,
    pub(crate) node: NodeId,
    pub(crate) role: Role,
    /// Restart-aware voting for the server behind this socket.
    pub(crate) voter: Voter,
    /// Releases for acquires whose connection broke after they were written (they may still
    /// run there): sent once this link's next handshake succeeds.
    pub(crate) missed: VecDeque<Call>,
}

impl Link {
    pub(crate) fn new(conn: Conn, node: NodeId, role: Role) -> Link {
        Link {
            conn,
            node,
            role,
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
