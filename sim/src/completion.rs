//! One view of every operation's completion, for code that treats all operations alike (the
//! rig's result table, the simulated clients, tests). The core types each completion by the
//! operation's kind; this folds them back into one shape without losing the kind.

use redlock_core::{Event, Lock, OpError, OpId, Released};

/// What a successful operation produced, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// An acquire's lock.
    Acquired(Lock),
    /// An extend's lock.
    Extended(Lock),
    /// A release's result.
    Released(Released),
}

/// The operation `event` completes and its result; `None` for events that complete none.
pub fn completion(event: &Event) -> Option<(OpId, Result<Done, OpError>)> {
    match event {
        Event::Acquired { op, result } => Some((*op, result.clone().map(Done::Acquired))),
        Event::Extended { op, result } => Some((*op, result.clone().map(Done::Extended))),
        Event::Released { op, result } => Some((*op, result.clone().map(Done::Released))),
        _ => None,
    }
}
