//! The tables of callers waiting for operation results, and the event dispatch that fills them.
//!
//! Each operation's result goes into its own [`Slot`], shared by its caller and the driver: the
//! caller polls its slot without the client's mutex (which the driver holds while it feeds the
//! engine a pass's replies; a caller blocked on it puts its thread to sleep). The tables, under
//! the client's mutex, say which slot an operation's result goes to.
//!
//! One table per kind of operation, typed by what that kind produces, so a caller waiting for an
//! acquire can only ever be handed a lock.

use redlock_core::{
    ConnError, Endpoint, Engine, Event, LinkId, Lock, NodeId, OpError, OpId, Released,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Instant;

enum State<T> {
    Waiting(Option<Waker>),
    Done(Result<T, OpError>),
    /// The caller took the result.
    Taken,
}

/// One operation's result: filled by the driver (under the client's mutex), taken by its caller
/// (without it).
pub(crate) struct Slot<T>(Mutex<State<T>>);

impl<T> Slot<T> {
    fn new(waker: Option<Waker>) -> Arc<Slot<T>> {
        Arc::new(Slot(Mutex::new(State::Waiting(waker))))
    }

    /// A panic while holding it leaves at worst a result nobody takes.
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the result if it has arrived; otherwise remembers `waker` to wake on arrival.
    pub(crate) fn poll_take(&self, waker: &Waker) -> Poll<Result<T, OpError>>
    where
        T: Traced,
    {
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Waiting(w) => {
                let w = match w {
                    Some(w) if w.will_wake(waker) => w,
                    _ => waker.clone(),
                };
                *state = State::Waiting(Some(w));
                Poll::Pending
            }
            State::Done(result) => {
                drop(state);
                // Taken by the caller, so the event lands inside the caller's span.
                T::trace(&result);
                Poll::Ready(result)
            }
            // Polled again after completion: the future that owns the slot refuses that first.
            State::Taken => Poll::Pending,
        }
    }
}

/// An operation started for a caller, and the slot its result arrives in.
pub(crate) type Started<T> = (OpId, Arc<Slot<T>>);

/// The callers waiting for operations of one kind, each producing a `T`.
pub(crate) struct Table<T> {
    /// Slots whose result has not arrived, and arrived results nobody has claimed yet (an
    /// acquire started for a caller in the client's line, before that caller picks it up).
    slots: HashMap<OpId, Arc<Slot<T>>>,
    /// What becomes of a result nobody will take: an acquired lock is released.
    unclaimed: fn(&mut Engine, Instant, T),
}

impl<T> Table<T> {
    fn new(unclaimed: fn(&mut Engine, Instant, T)) -> Self {
        Table {
            slots: HashMap::new(),
            unclaimed,
        }
    }

    /// Someone will wait for `op` (`waker`, when given, is woken when its result arrives):
    /// returns the slot the result arrives in. A caller that keeps it polls it; one started
    /// for a caller in the client's line is dropped here, and that caller takes the slot
    /// with [`claim`](Table::claim) when its turn comes.
    pub(crate) fn register(&mut self, op: OpId, waker: Option<Waker>) -> Arc<Slot<T>> {
        let slot = Slot::new(waker);
        self.slots.insert(op, slot.clone());
        slot
    }

    /// The slot of `op`, registered for a caller in the client's line, for that caller.
    pub(crate) fn claim(&mut self, op: OpId) -> Option<Arc<Slot<T>>> {
        let slot = self.slots.get(&op)?.clone();
        if !matches!(*slot.state(), State::Waiting(_)) {
            // Filled already: the driver is done with it.
            self.slots.remove(&op);
        }
        Some(slot)
    }

    /// Hands `result` to `op`'s waiter, pushing its waker onto `woken`; a result nobody waits
    /// for goes to `unclaimed`.
    fn fill(
        &mut self,
        engine: &mut Engine,
        now: Instant,
        op: OpId,
        result: Result<T, OpError>,
        woken: &mut Vec<Waker>,
    ) {
        let unclaimed = |result: Result<T, OpError>, engine: &mut Engine| {
            if let Ok(value) = result {
                (self.unclaimed)(engine, now, value);
            }
        };
        let Some(slot) = self.slots.get(&op) else {
            return unclaimed(result, engine);
        };
        let mut state = slot.state();
        if !matches!(*state, State::Waiting(_)) {
            drop(state);
            return unclaimed(result, engine);
        }
        if let State::Waiting(Some(w)) = std::mem::replace(&mut *state, State::Done(result)) {
            woken.push(w);
        }
        drop(state);
        // Held by its caller (who clones it under the client's mutex, as this runs): the table
        // is done with it. Else it stays until its caller claims it.
        if Arc::strong_count(slot) > 1 {
            self.slots.remove(&op);
        }
    }

    /// The waiter for `op` is gone, holding `held` if it had taken the slot. Returns whether
    /// the operation is still in flight; a result that had arrived goes to `unclaimed`.
    fn abandon(
        &mut self,
        engine: &mut Engine,
        now: Instant,
        op: OpId,
        held: Option<&Slot<T>>,
    ) -> bool {
        let listed = self.slots.remove(&op);
        let Some(slot) = listed.as_deref().or(held) else {
            return false;
        };
        let state = std::mem::replace(&mut *slot.state(), State::Taken);
        match state {
            State::Waiting(_) => true,
            State::Done(Ok(value)) => {
                (self.unclaimed)(engine, now, value);
                false
            }
            State::Done(Err(_)) | State::Taken => false,
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

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            acquires: Table::new(|engine, now, lock| {
                engine.release(now, &lock);
            }),
            extends: Table::new(|_, _, _| {}),
            releases: Table::new(|_, _, _| {}),
        }
    }
}

impl Waiters {
    /// The waiter for `op`, in the table `table` picks, is gone (its future was dropped),
    /// holding `held` if it had taken its slot. An operation still in flight is cancelled (for
    /// an acquire the engine releases whatever it may hold); a lock that was acquired but never
    /// handed over is released. An extend or release keeps its requests already queued, so the
    /// nodes still run them; only the result is dropped.
    pub(crate) fn abandon<T>(
        &mut self,
        table: fn(&mut Waiters) -> &mut Table<T>,
        engine: &mut Engine,
        now: Instant,
        op: OpId,
        held: Option<&Slot<T>>,
    ) {
        if table(self).abandon(engine, now, op, held) {
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
                    self.acquires.fill(engine, now, op, result, woken);
                }
                Event::Extended { op, result } => {
                    self.extends.fill(engine, now, op, result, woken);
                }
                Event::Released { op, result } => {
                    self.releases.fill(engine, now, op, result, woken);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ready_engine, Counting};
    use redlock_core::Token;
    use std::time::{Duration, SystemTime};

    /// Starts an acquire of `name`, its request drained from the engine.
    fn acquire(engine: &mut Engine, now: Instant, name: &str) -> OpId {
        let token = Token::from_random(&[7; 20]).unwrap();
        let op = engine
            .acquire(
                now,
                [name],
                Duration::from_secs(60),
                token,
                SystemTime::now(),
            )
            .unwrap();
        while engine.poll_transmit().is_some() {}
        op
    }

    /// The node grants the one request out.
    fn grant(engine: &mut Engine, now: Instant) {
        engine.handle_input(now, NodeId::new(0), b"+OK\r\n");
    }

    fn dispatch(waiters: &mut Waiters, engine: &mut Engine, now: Instant) -> Vec<Waker> {
        let mut woken = Vec::new();
        waiters.dispatch(engine, now, |_| {}, &mut woken);
        woken
    }

    #[test]
    fn a_caller_takes_its_result_from_its_own_slot() {
        let now = Instant::now();
        let mut engine = ready_engine(now);
        let mut waiters = Waiters::default();
        let op = acquire(&mut engine, now, "r");
        let slot = waiters.acquires.register(op, None);
        let count = Arc::new(Counting::default());
        let waker = Waker::from(count.clone());
        assert!(slot.poll_take(&waker).is_pending());
        grant(&mut engine, now);
        for w in dispatch(&mut waiters, &mut engine, now) {
            w.wake();
        }
        assert_eq!(count.count(), 1, "woken once");
        // The driver is done with it: only the caller holds the slot now.
        assert_eq!(waiters.acquires.len(), 0);
        match slot.poll_take(&waker) {
            Poll::Ready(Ok(lock)) => assert_eq!(lock.resources(), ["r"]),
            other => panic!("no lock: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }

    #[test]
    fn a_result_for_a_caller_in_line_waits_until_claimed() {
        let now = Instant::now();
        let mut engine = ready_engine(now);
        let mut waiters = Waiters::default();
        let op = acquire(&mut engine, now, "r");
        let count = Arc::new(Counting::default());
        waiters
            .acquires
            .register(op, Some(Waker::from(count.clone())));
        grant(&mut engine, now);
        for w in dispatch(&mut waiters, &mut engine, now) {
            w.wake();
        }
        assert_eq!(count.count(), 1, "the caller in line is woken");
        // Not claimed yet: the table keeps it, and hands it over once.
        let slot = waiters.acquires.claim(op).expect("kept until claimed");
        assert!(waiters.acquires.claim(op).is_none(), "handed over once");
        let waker = Waker::from(count);
        assert!(matches!(slot.poll_take(&waker), Poll::Ready(Ok(_))));
    }

    #[test]
    fn a_claim_before_the_result_leaves_the_fill_to_the_driver() {
        let now = Instant::now();
        let mut engine = ready_engine(now);
        let mut waiters = Waiters::default();
        let op = acquire(&mut engine, now, "r");
        waiters.acquires.register(op, None);
        let slot = waiters.acquires.claim(op).expect("registered");
        grant(&mut engine, now);
        dispatch(&mut waiters, &mut engine, now);
        assert_eq!(waiters.acquires.len(), 0, "filled and let go");
        let waker = Waker::from(Arc::new(Counting::default()));
        assert!(matches!(slot.poll_take(&waker), Poll::Ready(Ok(_))));
    }

    #[test]
    fn a_lock_nobody_takes_is_released() {
        let now = Instant::now();
        let mut engine = ready_engine(now);
        let mut waiters = Waiters::default();
        // Acquired for a caller in line who left before claiming it.
        let op = acquire(&mut engine, now, "r");
        waiters.acquires.register(op, None);
        grant(&mut engine, now);
        dispatch(&mut waiters, &mut engine, now);
        waiters.abandon(|w| &mut w.acquires, &mut engine, now, op, None);
        let (_, bytes) = engine.poll_transmit().expect("the release is sent");
        assert!(bytes.windows(4).any(|w| w == b"EVAL"), "a release script");
        assert_eq!(waiters.acquires.len(), 0);

        // Acquired for a caller holding its slot, whose future was then dropped.
        let mut engine = ready_engine(now);
        let op = acquire(&mut engine, now, "s");
        let slot = waiters.acquires.register(op, None);
        grant(&mut engine, now);
        dispatch(&mut waiters, &mut engine, now);
        waiters.abandon(|w| &mut w.acquires, &mut engine, now, op, Some(&slot));
        assert!(engine.poll_transmit().is_some(), "the release is sent");

        // Abandoned while it ran: cancelled, which releases it on every node.
        let mut engine = ready_engine(now);
        let op = acquire(&mut engine, now, "t");
        let slot = waiters.acquires.register(op, None);
        waiters.abandon(|w| &mut w.acquires, &mut engine, now, op, Some(&slot));
        assert_eq!(engine.in_flight(), 0, "the acquire is gone");
        let (_, bytes) = engine.poll_transmit().expect("the release is sent");
        assert!(bytes.windows(4).any(|w| w == b"EVAL"), "a release script");
        assert_eq!(waiters.acquires.len(), 0);
    }
}
