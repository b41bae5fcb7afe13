//! The table of callers waiting for operation results, and the event dispatch that fills it.
//! Synchronous (a plain table under the client's mutex): callers and the driver both touch it.

use redlock_core::{Done, Engine, Event, NodeId, OpError, OpId};
use std::collections::HashMap;
use std::task::Waker;
use std::time::Instant;

enum Slot {
    Waiting(Option<Waker>),
    Done(Result<Done, OpError>),
}

/// Who waits for which operation.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: HashMap<OpId, Slot>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("waiting", &self.slots.len())
            .finish()
    }
}

impl Waiters {
    /// Someone will wait for `op`.
    pub(crate) fn register(&mut self, op: OpId) {
        self.slots.insert(op, Slot::Waiting(None));
    }

    /// Takes `op`'s result if it has arrived; otherwise remembers `waker` (when given) to wake
    /// on arrival and returns `None`.
    pub(crate) fn take(
        &mut self,
        op: OpId,
        waker: Option<&Waker>,
    ) -> Option<Result<Done, OpError>> {
        match self.slots.remove(&op) {
            Some(Slot::Done(result)) => {
                trace_result(&result);
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

    /// The waiter for `op` is gone (its future was dropped). An operation still in flight is
    /// cancelled (for an acquire the engine releases whatever it may hold); a lock that was
    /// acquired but never handed over is released.
    pub(crate) fn abandon(&mut self, engine: &mut Engine, now: Instant, op: OpId) {
        match self.slots.remove(&op) {
            Some(Slot::Done(Ok(Done::Acquired(lock)))) => {
                let _ = engine.release(now, &lock);
            }
            Some(Slot::Waiting(_)) => {
                // An acquire is undone (released everywhere). An extend or release keeps its
                // requests already queued, so the nodes still run them; only the result is dropped.
                let _ = engine.cancel(now, op);
            }
            _ => {}
        }
    }

    /// Drains the engine's events: results go to their waiters, whose wakers are pushed onto
    /// `woken` (wake them after letting go of any lock the waiters need); a lock acquired for
    /// nobody is released; `on_reconnect` is called for each node to reconnect.
    pub(crate) fn dispatch(
        &mut self,
        engine: &mut Engine,
        now: Instant,
        mut on_reconnect: impl FnMut(NodeId),
        woken: &mut Vec<Waker>,
    ) {
        while let Some(event) = engine.poll_event() {
            match event {
                Event::Completed { op, result } => match self.slots.get_mut(&op) {
                    Some(slot @ Slot::Waiting(_)) => {
                        if let Slot::Waiting(Some(w)) = std::mem::replace(slot, Slot::Done(result))
                        {
                            woken.push(w);
                        }
                    }
                    _ => {
                        if let Ok(Done::Acquired(lock)) = result {
                            let _ = engine.release(now, &lock);
                        }
                    }
                },
                Event::Reconnect { node, reason } => {
                    tracing::warn!(node = engine.node_addr(node).unwrap_or("?"), %reason, "redlock: reconnecting");
                    on_reconnect(node);
                }
                _ => {}
            }
        }
    }
}

/// One event per finished operation, inside the caller's span: what it produced and, for
/// failures and releases, what every node did.
fn trace_result(result: &Result<Done, OpError>) {
    match result {
        Ok(Done::Acquired(lock)) | Ok(Done::Extended(lock)) => tracing::debug!(
            attempts = lock.attempts(),
            fencing_token = lock.fencing_token(),
            "redlock: held"
        ),
        Ok(Done::Released(r)) => {
            tracing::debug!(confirmed = r.confirmed, nodes = %r.attempt, "redlock: released")
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "redlock: failed"),
    }
}
