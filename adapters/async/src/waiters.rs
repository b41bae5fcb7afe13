//! The tables of callers waiting for operation results, and the event dispatch that fills them.
//! Synchronous (plain tables under the client's mutex): callers and the driver both touch them.
//!
//! One table per kind of operation, typed by what that kind produces, so a caller waiting for an
//! acquire can only ever be handed a lock.

use redlock_core::{
    ConnError, Endpoint, Engine, Event, LinkId, Lock, NodeId, OpError, OpId, Released,
};
use std::collections::HashMap;
use std::task::Waker;
use std::time::Instant;

enum Slot<T> {
    Waiting(Option<Waker>),
    Done(Result<T, OpError>),
}

/// The callers waiting for operations of one kind, each producing a `T`.
pub(crate) struct Table<T> {
    slots: HashMap<OpId, Slot<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// Someone will wait for `op`.
    pub(crate) fn register(&mut self, op: OpId) {
        self.slots.insert(op, Slot::Waiting(None));
    }

    /// Takes `op`'s result if it has arrived; otherwise remembers `waker` (when given) to wake
    /// on arrival and returns `None`.
    pub(crate) fn take(&mut self, op: OpId, waker: Option<&Waker>) -> Option<Result<T, OpError>>
    where
        T: Traced,
    {
        match self.slots.remove(&op) {
            Some(Slot::Done(result)) => {
                // Taken by the caller, so the event lands inside the caller's span.
                T::trace(&result);
                Some(result)
            }
            Some(Slot::Waiting(old)) => {
                let w = waker.cloned().or(old);
                self.slots.insert(op, Slot::Waiting(w));
                None
            }
            None => None,
        }
    }

    /// Hands `result` to `op`'s waiter, pushing its waker onto `woken`; gives the result back
    /// when nobody waits for it.
    fn fill(
        &mut self,
        op: OpId,
        result: Result<T, OpError>,
        woken: &mut Vec<Waker>,
    ) -> Option<Result<T, OpError>> {
        match self.slots.get_mut(&op) {
            Some(slot @ Slot::Waiting(_)) => {
                if let Slot::Waiting(Some(w)) = std::mem::replace(slot, Slot::Done(result)) {
                    woken.push(w);
                }
                None
            }
            _ => Some(result),
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }
}

/// A change of a link the driver acts on.
pub(crate) enum LinkChange {
    /// A link's handshake succeeded.
    Ready(LinkId),
    /// A link's connection must be closed and opened again, for this reason.
    Reconnect(LinkId, ConnError),
    /// The engine needs a new link for a node: to the node's address, or to this endpoint.
    Open(LinkId, NodeId, Option<Endpoint>),
}

/// Who waits for which operation.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Acquires, producing the lock.
    pub(crate) acquires: Table<Lock>,
    /// Extends, producing the extended lock.
    pub(crate) extends: Table<Lock>,
    /// Releases.
    pub(crate) releases: Table<Released>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.acquires.len() + self.extends.len() + self.releases.len();
        f.debug_struct("Waiters")
            .field("waiting", &waiting)
            .finish()
    }
}

impl Waiters {
    /// The waiter for `op` is gone (its future was dropped). An operation still in flight is
    /// cancelled (for an acquire the engine releases whatever it may hold); a lock that was
    /// acquired but never handed over is released.
    pub(crate) fn abandon(&mut self, engine: &mut Engine, now: Instant, op: OpId) {
        let waiting = match self.acquires.slots.remove(&op) {
            Some(Slot::Done(Ok(lock))) => {
                engine.release(now, &lock);
                false
            }
            Some(Slot::Waiting(_)) => true,
            Some(Slot::Done(Err(_))) => false,
            // An extend or release keeps its requests already queued, so the nodes still run
            // them; only the result is dropped.
            None => [
                self.extends
                    .slots
                    .remove(&op)
                    .map(|s| matches!(s, Slot::Waiting(_))),
                self.releases
                    .slots
                    .remove(&op)
                    .map(|s| matches!(s, Slot::Waiting(_))),
            ]
            .into_iter()
            .flatten()
            .any(|w| w),
        };
        if waiting {
            // Nobody will take the result; an acquire is undone (released everywhere).
            let _ = engine.cancel(now, op);
        }
    }

    /// Drains the engine's events: results go to their waiters, whose wakers are pushed onto
    /// `woken` (wake them after letting go of any lock the waiters need); a lock acquired for
    /// nobody is released; `on_link` hears of each link that became ready, must reconnect, or is
    /// to be opened.
    pub(crate) fn dispatch(
        &mut self,
        engine: &mut Engine,
        now: Instant,
        mut on_link: impl FnMut(LinkChange),
        woken: &mut Vec<Waker>,
    ) {
        while let Some(event) = engine.poll_event() {
            match event {
                Event::Acquired { op, result } => {
                    if let Some(Ok(lock)) = self.acquires.fill(op, result, woken) {
                        engine.release(now, &lock);
                    }
                }
                Event::Extended { op, result } => {
                    self.extends.fill(op, result, woken);
                }
                Event::Released { op, result } => {
                    self.releases.fill(op, result, woken);
                }
                Event::Ready { link } => on_link(LinkChange::Ready(link)),
                Event::Reconnect { link, reason } => on_link(LinkChange::Reconnect(link, reason)),
                Event::Open { link, node, to } => on_link(LinkChange::Open(link, node, to)),
                _ => {}
            }
        }
    }
}

/// What a finished operation's trace event says.
pub(crate) trait Traced: Sized {
    /// One event: what the operation produced, or what every node did.
    fn trace(result: &Result<Self, OpError>);
    /// How many attempts the successful operation took.
    fn attempts(&self) -> u32;
}

impl Traced for Lock {
    fn trace(result: &Result<Lock, OpError>) {
        match result {
            Ok(lock) => tracing::debug!(
                attempts = lock.attempts(),
                fencing_token = lock.fencing_token(),
                "redlock: held"
            ),
            Err(e) => tracing::debug!(error = %e, "redlock: failed"),
        }
    }

    fn attempts(&self) -> u32 {
        Lock::attempts(self)
    }
}

impl Traced for Released {
    fn trace(result: &Result<Released, OpError>) {
        match result {
            Ok(r) => {
                tracing::debug!(confirmed = r.confirmed, nodes = %r.attempt, "redlock: released")
            }
            Err(e) => tracing::debug!(error = %e, "redlock: failed"),
        }
    }

    fn attempts(&self) -> u32 {
        1 // a release is never retried
    }
}
