//! The two names the engine hands out: a node's position and an operation's number.
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
