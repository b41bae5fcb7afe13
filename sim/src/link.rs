//! A client connection to a model [`Node`] as two byte queues, with no sockets and no clock.
//!
//! A [`Link`] is what a TCP connection is to a simulator: bytes the client wrote that have not
//! reached the node yet, and reply bytes the node produced that the client has not read yet.
//! The simulator decides when (and how much of) each queue moves: [`Link::deliver`] moves
//! request bytes into the node (which runs the complete commands and queues the replies),
//! [`Link::read`] hands reply bytes to the client. Partial moves split the stream anywhere, as
//! TCP may. Message delay, reordering across connections and loss are the simulator's choice of
//! what to move next, and what to throw away on [`Link::close`].
//!
//! ```
//! use redlock_sim::{Link, Node};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut node = Node::new(now, 0);
//! let mut link = Link::open(&mut node).unwrap();
//! link.write(b"*1\r\n$4\r\nPING\r\n");
//! link.deliver(&mut node, now, Some(5)); // half a command: nothing runs yet
//! assert_eq!(link.readable(), 0);
//! link.deliver(&mut node, now, None);
//! assert_eq!(&link.read(None)[..], b"+PONG\r\n");
//! ```

use crate::node::Node;
use crate::session::Session;
use bytes::{Bytes, BytesMut};
use std::time::Instant;

/// One connection between a client and a model node. Made by [`Link::open`].
#[derive(Debug, Clone)]
pub struct Link {
    session: Session,
    to_node: BytesMut,
    to_client: BytesMut,
}

impl Link {
    /// Connects to `node`; `None` while the node is down.
    pub fn open(node: &mut Node) -> Option<Link> {
        Some(Link {
            session: node.connect()?,
            to_node: BytesMut::new(),
            to_client: BytesMut::new(),
        })
    }

    /// The node-side state of this connection.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The client writes `bytes` (queued until delivered).
    pub fn write(&mut self, bytes: &[u8]) {
        self.to_node.extend_from_slice(bytes);
    }

    /// Request bytes written and not yet delivered to the node.
    pub fn in_flight(&self) -> usize {
        self.to_node.len()
    }

    /// Reply bytes the client has not read yet.
    pub fn readable(&self) -> usize {
        self.to_client.len()
    }

    /// Delivers up to `max` request bytes (all when `None`) to `node` at `now`; the replies to
    /// every command they complete queue up for the client. Returns how many bytes moved.
    /// Bytes delivered to a closed or hung connection are lost.
    pub fn deliver(&mut self, node: &mut Node, now: Instant, max: Option<usize>) -> usize {
        let n = max.map_or(self.to_node.len(), |m| m.min(self.to_node.len()));
        let chunk = self.to_node.split_to(n);
        let replies = node.feed(now, &mut self.session, &chunk);
        self.to_client.extend_from_slice(&replies);
        n
    }

    /// Lets `node` run input it buffered while stalled (see
    /// [`Node::set_stalled`](crate::Node::set_stalled)).
    pub fn pump(&mut self, node: &mut Node, now: Instant) {
        let replies = node.feed(now, &mut self.session, &[]);
        self.to_client.extend_from_slice(&replies);
    }

    /// Takes up to `max` reply bytes (all when `None`) for the client.
    pub fn read(&mut self, max: Option<usize>) -> Bytes {
        let n = max.map_or(self.to_client.len(), |m| m.min(self.to_client.len()));
        self.to_client.split_to(n).freeze()
    }

    /// Whether the node side is gone (closed by the node, or the node crashed or restarted):
    /// once the readable bytes are read, the client sees end of stream.
    pub fn is_closed(&self, node: &Node) -> bool {
        !node.is_alive(&self.session)
    }

    /// The client closes the connection. The first `flush` undelivered request bytes still
    /// reach the node and run (TCP sends what was written before the FIN); the rest, and every
    /// unread reply, is lost.
    pub fn close(mut self, node: &mut Node, now: Instant, flush: usize) {
        if flush > 0 {
            self.deliver(node, now, Some(flush));
        }
    }
}
