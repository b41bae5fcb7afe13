//! The names the engine hands out: a node's position, a connection's number and an
//! operation's number.
//!
//! They live apart from the engine so that everything which only needs to *name* a node or an
//! operation (errors, events, connections) depends on this small module, not on the engine.

use std::fmt;

/// A node's position in [`Config::nodes`](crate::Config::nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

impl NodeId {
    /// The node at `index` in the configuration.
    pub const fn new(index: usize) -> NodeId {
        NodeId(index)
    }

    /// Its index in the configuration.
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node#{}", self.0)
    }
}

/// One connection the engine asked for. The first ones, `0..nodes`, are the nodes' own
/// connections, in the order of [`Config::nodes`](crate::Config::nodes) (a [`NodeId`] converts
/// into its node's link); the engine numbers the ones it asks for later with
/// [`Event::Open`](crate::Event::Open) from there on (a cluster's shard primaries, a RESP2
/// node's subscriber connection).
///
/// ```
/// use redlock_core::{LinkId, NodeId};
/// let own = LinkId::from(NodeId::new(2));
/// assert_eq!(own.index(), 2);
/// assert!(own == NodeId::new(2));
/// assert_eq!(LinkId::new(7).to_string(), "link#7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(usize);

impl LinkId {
    /// The link numbered `index`.
    pub const fn new(index: usize) -> LinkId {
        LinkId(index)
    }

    /// Its number: an index into the adapter's table of connections.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A node's own connection.
impl From<NodeId> for LinkId {
    fn from(node: NodeId) -> LinkId {
        LinkId(node.0)
    }
}

/// A link is its node's own connection when their numbers agree.
impl PartialEq<NodeId> for LinkId {
    fn eq(&self, node: &NodeId) -> bool {
        self.0 == node.0
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// Names one in-flight operation; unique for the engine's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(u64);

impl OpId {
    /// The operation numbered `n` (the engine numbers them from 1).
    pub(crate) fn new(n: u64) -> OpId {
        OpId(n)
    }

    /// The raw number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op#{}", self.0)
    }
}
