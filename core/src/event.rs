//! What the engine reports back through [`Engine::poll_event`](crate::Engine::poll_event).

use crate::endpoint::Endpoint;
use crate::error::{Attempt, ConnError, OpError};
use crate::ids::{LinkId, NodeId, OpId};
use crate::lock::Lock;

/// Something the adapter must act on or deliver.
///
/// Each operation completes with the event of its kind, exactly once (cancelled ones included):
/// an `acquire` with [`Event::Acquired`], an `extend` with [`Event::Extended`], a `release` with
/// [`Event::Released`], so what an operation produces is known from its kind, never matched at
/// run time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An `acquire` finished: the lock, or why not.
    Acquired {
        /// The id `acquire` returned.
        op: OpId,
        /// The lock, valid until [`Lock::valid_until`](crate::Lock::valid_until).
        result: Result<Lock, OpError>,
    },
    /// An `extend` finished: the lock with its later validity (it replaces the old one), or why
    /// not. A shorter ttl than the lock's leaves the keys and the validity as they were.
    Extended {
        /// The id `extend` returned.
        op: OpId,
        /// The extended lock.
        result: Result<Lock, OpError>,
    },
    /// A `release` finished.
    Released {
        /// The id `release` returned.
        op: OpId,
        /// How many nodes confirmed the delete.
        result: Result<Released, OpError>,
    },
    /// A link's handshake succeeded: it takes requests from now on. An adapter resets its
    /// reconnect backoff for the link here (not on TCP connect: a node that accepts connections
    /// and then refuses the handshake must not be reconnected to at full speed).
    Ready {
        /// The link (for a node's own connection, `LinkId::from(node)`).
        link: LinkId,
    },
    /// The engine stopped trusting a link's byte stream. Close that socket (do not feed its
    /// bytes any more), reconnect with backoff, then call
    /// [`Engine::handle_connected`](crate::Engine::handle_connected).
    Reconnect {
        /// The link.
        link: LinkId,
        /// Why.
        reason: ConnError,
    },
    /// The engine needs one more connection for `node`, numbered `link` (the next number
    /// after every link so far). Open it like the node's own (its credentials, TLS settings
    /// and connector), to the node's own address when `to` is `None` (a RESP2 node's
    /// subscriber connection), else to `to` (a cluster's shard primary; with TLS, verify the
    /// certificate against `to`'s host unless the node names a server explicitly). Then call
    /// [`Engine::handle_connected`](crate::Engine::handle_connected) with `link`, and keep it
    /// up as the node's own: reconnect with backoff when it fails. Links are never closed by
    /// the engine.
    Open {
        /// The new link's number.
        link: LinkId,
        /// The node it serves.
        node: NodeId,
        /// Where to, when not the node's own address.
        to: Option<Endpoint>,
    },
}

impl Event {
    /// The operation this event completes; `None` for the links' events.
    pub fn op(&self) -> Option<OpId> {
        match self {
            Event::Acquired { op, .. }
            | Event::Extended { op, .. }
            | Event::Released { op, .. } => Some(*op),
            Event::Ready { .. } | Event::Reconnect { .. } | Event::Open { .. } => None,
        }
    }
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
