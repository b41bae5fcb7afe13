//! One client connection's server-side state.

use bytes::{Bytes, BytesMut};
use redlock_core::Protocol;

/// Whether a connection is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Commands run and replies come back.
    Open,
    /// Input is read and thrown away; no reply will ever come (a
    /// [`FaultAction::Hang`](crate::FaultAction::Hang)).
    Hung,
    /// The node closed the connection (protocol error, a close fault, a crash or restart).
    Closed,
}

/// One client connection's server-side state: protocol, selected database, authentication,
/// name, and bytes of a command not yet complete. Made by [`Node::connect`](crate::Node::connect).
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) id: u64,
    pub(crate) generation: u64,
    pub(crate) protocol: Protocol,
    pub(crate) db: u32,
    pub(crate) authed: bool,
    pub(crate) name: Option<Bytes>,
    pub(crate) input: BytesMut,
    pub(crate) state: SessionState,
    /// `ASKING` was the previous command: the next one may run on an importing slot.
    pub(crate) asking: bool,
}

impl Session {
    /// A new open connection: RESP2, database 0, authenticated when the node has no password.
    pub(crate) fn new(id: u64, generation: u64, authed: bool) -> Session {
        Session {
            id,
            generation,
            protocol: Protocol::Resp2,
            db: 0,
            authed,
            name: None,
            input: BytesMut::new(),
            state: SessionState::Open,
            asking: false,
        }
    }

    /// The `CLIENT ID` of this connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The protocol replies are encoded in (RESP2 until `HELLO 3`).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The selected database.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The name set by `CLIENT SETNAME` or `HELLO … SETNAME`.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }

    /// Whether the connection is open, hung or closed. A session of a node that crashed or
    /// restarted reads as closed only after its next [`Node::feed`](crate::Node::feed); see
    /// [`Node::is_alive`](crate::Node::is_alive).
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Bytes received but not yet a complete command.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }
}
