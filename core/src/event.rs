//! What the engine reports back through [`Engine::poll_event`](crate::Engine::poll_event).

use crate::engine::{NodeId, OpId};
use crate::error::{Attempt, ConnError, OpError};
use crate::lock::Lock;

/// Something the adapter must act on or deliver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An operation finished. Emitted exactly once per operation (cancelled ones included).
    Completed {
        /// The id `acquire` / `extend` / `release` returned.
        op: OpId,
        /// What it produced.
        result: Result<Done, OpError>,
    },
    /// The engine stopped trusting a node's byte stream. Close that socket (do not feed its
    /// bytes any more), reconnect with backoff, then call
    /// [`Engine::handle_connected`](crate::Engine::handle_connected).
    Reconnect {
        /// The node.
        node: NodeId,
        /// Why.
        reason: ConnError,
    },
}

/// A successful operation's product.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Done {
    /// `acquire` took the lock.
    Acquired(Lock),
    /// `extend` pushed its validity out (never in: a shorter ttl leaves the keys and the
    /// validity as they were); the new `Lock` replaces the old one.
    Extended(Lock),
    /// `release` ran on every node it could reach.
    Released(Released),
}

/// The result of a release: sent to every node, returned once a majority confirmed a delete (the
/// lock is then free for others) or every node answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// How many nodes had confirmed deleting at least one of the lock's keys when the release
    /// returned. A majority means the lock is released; nodes not yet heard from (reported
    /// [`Outcome::NotAwaited`](crate::Outcome::NotAwaited)) still got the delete.
    pub confirmed: usize,
    /// What every node did, as far as the release waited for it.
    pub attempt: Attempt,
}
