//! Waiting in line inside the client. When an unbounded acquire (no retry limit, no wait bound)
//! asks for resources that another caller of the same client holds or is acquiring, it does
//! not try the nodes: it joins a line for those resources, and the client starts it when that
//! caller releases them, in the same write as the release (right behind the deletes on every
//! node's connection, so the attempt finds the keys gone). Without the line every such caller
//! tries, is refused, and tries again when the release is announced: refused attempts are
//! most of the servers' work under contention, and whoever answers first wins, not whoever
//! came first.
//!
//! Safety does not depend on it: the nodes still decide every acquire. The line only decides
//! when this client's callers try. Each one in line also keeps a timer (the retry pause): when
//! it fires and nothing of this client holds or acquires the resources any more (a lock was
//! dropped without a release, say, and has expired), it starts on its own.

use redlock_core::{Engine, Error as CoreError, OpId, Token};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

/// Starts a queued acquire on the engine (its names, ttl, token and options inside).
pub(crate) type Begin = Box<dyn FnOnce(&mut Engine, Instant) -> Result<OpId, CoreError> + Send>;

/// The resources an acquire asks for, in its order: one line per distinct list.
pub(crate) type Key = Arc<[String]>;

/// A place in line.
pub(crate) type Ticket = u64;

/// This client's callers on one list of resources.
#[derive(Default)]
struct Line {
    /// Acquires of these resources started on the engine and not finished.
    acquiring: usize,
    /// Locks on them this client acquired and has not released: token and validity end.
    held: Vec<(Token, Instant)>,
    /// Acquires waiting to start, first come first.
    waiting: VecDeque<Ticket>,
}

struct Place {
    key: Key,
    begin: Option<Begin>,
    /// Set once started (by whoever started it): the engine's answer.
    started: Option<Result<OpId, CoreError>>,
    waker: Option<Waker>,
}

/// Every line of one client (kept under the client's mutex).
#[derive(Default)]
pub(crate) struct LocalQueue {
    lines: HashMap<Key, Line>,
    places: HashMap<Ticket, Place>,
    next: Ticket,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue")
            .field("lines", &self.lines.len())
            .field("waiting", &self.places.len())
            .finish()
    }
}

impl LocalQueue {
    /// Whether a caller of this client holds (unexpired, at `now`) or is acquiring `key`.
    pub(crate) fn busy(&mut self, key: &Key, now: Instant) -> bool {
        let Some(line) = self.lines.get_mut(key) else {
            return false;
        };
        line.held.retain(|(_, until)| *until > now);
        line.acquiring > 0 || !line.held.is_empty()
    }

    /// An acquire of `key` is starting on the engine now.
    pub(crate) fn starting(&mut self, key: &Key) {
        self.lines.entry(key.clone()).or_default().acquiring += 1;
    }

    /// Puts an acquire of `key` in line; `begin` starts it.
    pub(crate) fn enqueue(&mut self, key: Key, begin: Begin) -> Ticket {
        let ticket = self.next;
        self.next += 1;
        self.lines
            .entry(key.clone())
            .or_default()
            .waiting
            .push_back(ticket);
        self.places.insert(
            ticket,
            Place {
                key,
                begin: Some(begin),
                started: None,
                waker: None,
            },
        );
        ticket
    }

    /// For the acquire holding `ticket`: its start, once someone started it (taking it), else
    /// `None` after noting `waker` to wake when that happens.
    pub(crate) fn poll_started(
        &mut self,
        ticket: Ticket,
        waker: &Waker,
    ) -> Option<Result<OpId, CoreError>> {
        let place = self.places.get_mut(&ticket)?;
        match place.started.take() {
            Some(started) => {
                self.places.remove(&ticket);
                Some(started)
            }
            None => {
                if !place.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    place.waker = Some(waker.clone());
                }
                None
            }
        }
    }

    /// The start of the acquire holding `ticket`, if it has one, without taking it.
    pub(crate) fn peek_started(&self, ticket: Ticket) -> Option<&Result<OpId, CoreError>> {
        self.places.get(&ticket)?.started.as_ref()
    }

    /// Starts the acquire holding `ticket` out of turn (its timer fired with its resources
    /// free of this client's callers), unless it was started already.
    pub(crate) fn start_now(&mut self, engine: &mut Engine, ticket: Ticket, now: Instant) {
        let Some(place) = self.places.get_mut(&ticket) else {
            return;
        };
        let Some(begin) = place.begin.take() else {
            return;
        };
        let key = place.key.clone();
        if let Some(line) = self.lines.get_mut(&key) {
            line.waiting.retain(|t| *t != ticket);
            line.acquiring += 1;
        }
        let started = begin(engine, now);
        if let Some(place) = self.places.get_mut(&ticket) {
            place.started = Some(started);
        }
    }

    /// An acquire of `key` started on the engine ended: with this lock (token, validity end)
    /// or without. Then starts the next in line if the resources are free of this client's
    /// callers (see [`LocalQueue::next`]).
    pub(crate) fn finished(&mut self, key: &Key, held: Option<(Token, Instant)>) {
        if let Some(line) = self.lines.get_mut(key) {
            line.acquiring = line.acquiring.saturating_sub(1);
            line.held.extend(held);
        }
    }

    /// This client released a lock on `key` (its token): it is no longer held here.
    pub(crate) fn released(&mut self, key: &Key, token: &Token) {
        if let Some(line) = self.lines.get_mut(key) {
            line.held.retain(|(t, _)| t != token);
        }
    }

    /// The acquire holding `ticket` is gone (its future dropped) before it started: leaves the
    /// line. Returns its start if it had started after all (the caller abandons that op).
    pub(crate) fn leave(&mut self, ticket: Ticket) -> Option<Result<OpId, CoreError>> {
        let place = self.places.remove(&ticket)?;
        if let Some(line) = self.lines.get_mut(&place.key) {
            line.waiting.retain(|t| *t != ticket);
        }
        place.started
    }

    /// When `key` is free of this client's callers (at `now`): starts the first acquire in its
    /// line on `engine` and returns that acquire's op (to register for its result) and its
    /// waker. Otherwise (or with nobody in line) `None`; a line with nothing left is dropped.
    pub(crate) fn next(
        &mut self,
        engine: &mut Engine,
        key: &Key,
        now: Instant,
    ) -> Option<(Result<OpId, CoreError>, Option<Waker>)> {
        if self.busy(key, now) {
            return None;
        }
        let line = self.lines.get_mut(key)?;
        let Some(ticket) = line.waiting.pop_front() else {
            self.lines.remove(key);
            return None;
        };
        line.acquiring += 1;
        let place = self.places.get_mut(&ticket)?;
        let begin = place.begin.take()?;
        let started = begin(engine, now);
        place.started = Some(started.clone());
        Some((started, place.waker.take()))
    }

    /// Whether anyone waits in `key`'s line.
    #[cfg(test)]
    pub(crate) fn has_waiting(&self, key: &Key) -> bool {
        self.lines.get(key).is_some_and(|l| !l.waiting.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redlock_core::{Config, NodeConfig, Options};
    use std::time::{Duration, SystemTime};

    fn engine(now: Instant) -> Engine {
        let config = Config::new(vec![NodeConfig::new("127.0.0.1", 1)], Options::default());
        Engine::new(config, now, 7).expect("valid")
    }

    fn begin(name: &'static str) -> Begin {
        Box::new(move |e: &mut Engine, now| {
            e.acquire_with(
                now,
                [name],
                Duration::from_secs(10),
                Token::from_random(&[7u8; 20]).unwrap(),
                SystemTime::now(),
                &Default::default(),
            )
        })
    }

    #[test]
    fn a_line_starts_first_come_first_when_the_resources_are_free() {
        let now = Instant::now();
        let mut e = engine(now);
        let mut q = LocalQueue::default();
        let key: Key = vec!["r".to_string()].into();
        assert!(!q.busy(&key, now));
        q.starting(&key);
        assert!(q.busy(&key, now), "an acquire of this client is under way");
        let first = q.enqueue(key.clone(), begin("r"));
        let second = q.enqueue(key.clone(), begin("r"));
        assert!(q.next(&mut e, &key, now).is_none(), "still busy");
        let token = Token::from_random(&[1u8; 20]).unwrap();
        q.finished(&key, Some((token.clone(), now + Duration::from_secs(1))));
        assert!(q.busy(&key, now), "held now");
        assert!(q.next(&mut e, &key, now).is_none());
        q.released(&key, &token);
        let (started, _) = q.next(&mut e, &key, now).expect("the first in line starts");
        assert!(started.is_ok());
        let waker = Waker::noop();
        assert!(q.poll_started(first, waker).is_some_and(|r| r.is_ok()));
        assert!(q.poll_started(second, waker).is_none(), "still in line");
        assert!(
            q.next(&mut e, &key, now).is_none(),
            "the first is acquiring"
        );
        // A lock dropped without a release stops counting once it expires.
        q.finished(&key, Some((token, now + Duration::from_millis(5))));
        assert!(q.busy(&key, now));
        let later = now + Duration::from_millis(6);
        assert!(!q.busy(&key, later));
        assert!(q.has_waiting(&key));
        q.start_now(&mut e, second, later);
        assert!(!q.has_waiting(&key));
        assert!(q.poll_started(second, waker).is_some());
        q.finished(&key, None);
        assert!(q.next(&mut e, &key, later).is_none(), "nobody left");
        assert!(q.lines.is_empty(), "the empty line is dropped");
    }

    #[test]
    fn leaving_the_line_before_the_start() {
        let now = Instant::now();
        let mut e = engine(now);
        let mut q = LocalQueue::default();
        let key: Key = vec!["r".to_string()].into();
        q.starting(&key);
        let t = q.enqueue(key.clone(), begin("r"));
        assert!(q.leave(t).is_none(), "had not started");
        q.finished(&key, None);
        assert!(q.next(&mut e, &key, now).is_none());
    }
}
