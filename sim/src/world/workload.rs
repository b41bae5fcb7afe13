//! What the clients do with locks: acquire one or two resources (sometimes cancelling), then
//! while holding write to the fenced store, extend or release; and what the checkers record of
//! it (hold windows, fencing tokens handed out, store writes, acquire waits).

use super::event::{CEv, Ev};
use super::{Sim, State};
use crate::checker::{Verdict, Window, Write};
use crate::clock::{local_of, ms, nanos, MS};
use crate::completion::Done;
use crate::report::Check;
use redlock_core::{Failure, Lock, OpError, OpId, Token};
use std::time::Duration;

impl Sim<'_> {
    /// Schedules the client's next step after `delay` (superseding any step already scheduled).
    pub(super) fn schedule_step(&mut self, c: usize, delay: u64) {
        self.clients[c].ticket += 1;
        let t = self.clients[c].ticket;
        self.push(self.now + delay, Ev::Client(c, CEv::Step(t)));
    }

    pub(super) fn step(&mut self, c: usize) {
        let local = self.local(c);
        match self.clients[c].state.clone() {
            State::Idle => {
                if !self.stopped {
                    self.start_acquire(c);
                }
            }
            State::Acquiring { op, .. } => {
                // Only reached when the acquire was picked for cancelling.
                match self.clients[c].engine.cancel(local, op) {
                    Ok(()) => {
                        self.note(|| format!("client {c} cancels {op}"));
                        self.stats.cancelled += 1;
                        self.clients[c].cancelled.insert(op);
                        self.clients[c].state = State::Idle;
                        let d = nanos(self.rng.duration(self.sc.think));
                        self.schedule_step(c, d);
                    }
                    Err(e) => self.violation(Check::Engine, format!("cancel {op}: {e}")),
                }
            }
            State::Holding { lock, handout, res } => {
                if !lock.is_valid(local) {
                    // Noticed late: the lock ran out on this client's clock (its hold ended
                    // then). Release anyway: it deletes only keys that still hold its token.
                    self.stats.overstayed += 1;
                    self.release(c, &lock);
                    return;
                }
                if self.stopped {
                    self.release(c, &lock);
                    return;
                }
                let roll = self.rng.below(100);
                if roll < 45 {
                    self.write(c, &lock, handout, &res);
                    self.schedule_hold_step(c, &lock);
                } else if roll < 60 {
                    // As auto-extension does: the lock's own ttl, which never shortens the keys.
                    // `extend_any_ttl` draws a fresh one (possibly shorter than what is left).
                    let ttl = if self.sc.extend_any_ttl {
                        self.ttl()
                    } else {
                        lock.ttl()
                    };
                    match self.clients[c].engine.extend(local, &lock, ttl) {
                        Ok(op) => {
                            self.note(|| format!("client {c} extends h{handout} ({op})"));
                            self.clients[c].state = State::Extending {
                                op,
                                lock,
                                handout,
                                res,
                            };
                        }
                        Err(e) => {
                            self.violation(Check::Engine, format!("extend of a valid lock: {e}"))
                        }
                    }
                } else {
                    self.release(c, &lock);
                }
            }
            State::Extending { .. } | State::Releasing { .. } => {}
        }
    }

    pub(super) fn ttl(&mut self) -> Duration {
        let (lo, hi) = self.sc.ttl;
        ms(self.rng.range(lo.as_millis() as u64, hi.as_millis() as u64))
    }

    pub(super) fn start_acquire(&mut self, c: usize) {
        let mut res = vec![self.rng.below(self.sc.resources as u64) as usize];
        if self.sc.resources > 1 && self.rng.chance(self.sc.multi) {
            let other = self.rng.below(self.sc.resources as u64 - 1) as usize;
            res.push(if other >= res[0] { other + 1 } else { other });
        }
        let ttl = self.ttl();
        let mut random = [0u8; 20];
        for chunk in random.chunks_mut(8) {
            let r = self.rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        let token = Token::from_random(&random).expect("20 bytes");
        let names: Vec<&str> = res.iter().map(|r| self.names[*r].as_str()).collect();
        let (local, wall) = (self.local(c), self.wall(c));
        match self.clients[c]
            .engine
            .acquire(local, names, ttl, token, wall)
        {
            Ok(op) => {
                self.note(|| format!("client {c} acquires {res:?} for {ttl:?} ({op})"));
                self.clients[c].state = State::Acquiring {
                    op,
                    started: self.now,
                    res,
                };
                if self.rng.chance(self.sc.cancel) {
                    let d = self.rng.range(0, nanos(ttl));
                    self.schedule_step(c, d);
                } else {
                    self.clients[c].ticket += 1;
                }
            }
            Err(e) => self.violation(Check::Engine, format!("acquire refused: {e}")),
        }
    }

    pub(super) fn release(&mut self, c: usize, lock: &Lock) {
        let now = self.now;
        for w in std::mem::take(&mut self.clients[c].windows) {
            let w = &mut self.windows[w];
            w.end = w.end.min(now);
        }
        let local = self.local(c);
        let op = self.clients[c].engine.release(local, lock);
        self.note(|| format!("client {c} releases ({op})"));
        self.clients[c].state = State::Releasing { op };
        self.clients[c].ticket += 1;
    }

    pub(super) fn schedule_hold_step(&mut self, c: usize, lock: &Lock) {
        let end = self.clients[c].clock.real(local_of(lock.valid_until()));
        let left = end.saturating_sub(self.now);
        let d = self.rng.range(0, left + left / 3 + MS);
        self.schedule_step(c, d);
    }

    pub(super) fn write(&mut self, c: usize, lock: &Lock, handout: u64, res: &[usize]) {
        let Some(token) = lock.fencing_token() else {
            return;
        };
        let resource = res[self.rng.below(res.len() as u64) as usize];
        let w = Write {
            client: c,
            resource,
            token,
            handout,
        };
        if self.rng.chance(self.sc.pause_after_check) {
            // Checked the lock, then stopped the world: the write goes out after the pause.
            let len = nanos(self.rng.duration(self.sc.pause));
            self.pause(c, len);
            self.clients[c].deferred.push_back(CEv::Write(w));
        } else {
            self.send_write(w);
        }
    }

    pub(super) fn send_write(&mut self, w: Write) {
        let at = self.now + self.latency();
        self.push(at, Ev::Store(w));
    }

    pub(super) fn store_write(&mut self, w: Write) {
        self.hash.u64(w.token);
        let verdict = self.store.write(&w);
        if verdict == Verdict::Rejected {
            self.stats.writes_rejected += 1;
            self.note(|| {
                format!(
                    "store rejects r{} token {} from client {} (h{})",
                    w.resource, w.token, w.client, w.handout
                )
            });
            return;
        }
        self.stats.writes_accepted += 1;
        self.note(|| {
            format!(
                "store accepts r{} token {} from client {} (h{})",
                w.resource, w.token, w.client, w.handout
            )
        });
        if let Verdict::Stale {
            newer,
            newer_handout,
        } = verdict
        {
            let detail = format!(
                "store accepted a write to r{} with token {} from client {} (lock #{}) after \
                 accepting one from lock #{} (client and token {:?}), handed out later",
                w.resource, w.token, w.client, w.handout, newer_handout, newer
            );
            self.violation(Check::StaleWrite, detail);
        }
    }

    pub(super) fn completed(&mut self, c: usize, op: OpId, result: Result<Done, OpError>) {
        self.hash.u64(op.get());
        self.hash.u64(u64::from(result.is_ok()));
        if self.clients[c].cancelled.remove(&op) {
            return;
        }
        let now = self.now;
        let local = self.local(c);
        let think = nanos(self.rng.duration(self.sc.think));
        match (self.clients[c].state.clone(), result) {
            (
                State::Acquiring {
                    op: o,
                    started,
                    res,
                },
                Ok(Done::Acquired(lock)),
            ) if o == op => {
                self.acquired(c, lock, res, started);
            }
            (State::Acquiring { op: o, started, .. }, Err(e)) if o == op => {
                self.note(|| format!("client {c}: {op} failed: {e}"));
                match e.failure {
                    Failure::Locked => self.stats.locked += 1,
                    Failure::Unreachable => self.stats.unreachable += 1,
                    Failure::Expired => self.stats.expired += 1,
                    _ => {}
                }
                if self.sc.liveness.is_some() {
                    let waited = Duration::from_nanos(now - started);
                    self.violation(
                        Check::Liveness,
                        format!(
                            "client {c}: acquire failed after {waited:?} with a quorum up: {e}"
                        ),
                    );
                }
                self.clients[c].state = State::Idle;
                self.schedule_step(c, think);
            }
            (
                State::Extending {
                    op: o,
                    lock: old,
                    handout,
                    res,
                },
                result,
            ) if o == op => {
                let lock = match result {
                    Ok(Done::Extended(lock)) => {
                        if !lock.is_valid(local) {
                            self.violation(
                                Check::Engine,
                                format!("client {c}: extended lock already expired"),
                            );
                        }
                        if lock.token() != old.token()
                            || lock.fencing_token() != old.fencing_token()
                        {
                            self.violation(
                                Check::Engine,
                                format!("client {c}: extend changed the lock's tokens"),
                            );
                        }
                        self.stats.extended += 1;
                        // From now on the client goes by the new lock (which may end earlier).
                        for w in std::mem::take(&mut self.clients[c].windows) {
                            let w = &mut self.windows[w];
                            w.end = w.end.min(now);
                        }
                        let end = self.clients[c].clock.real(local_of(lock.valid_until()));
                        self.note(|| {
                            format!(
                                "client {c} extended h{handout} until {:.6}ms",
                                end as f64 / 1e6
                            )
                        });
                        for &r in &res {
                            self.open_window(c, handout, r, end);
                        }
                        lock
                    }
                    Ok(other) => {
                        self.violation(Check::Engine, format!("extend produced {other:?}"));
                        old
                    }
                    Err(e) => {
                        self.note(|| format!("client {c}: extend failed: {e}"));
                        if e.failure == Failure::Expired {
                            self.stats.expired += 1;
                        }
                        old
                    }
                };
                self.clients[c].state = State::Holding {
                    lock: lock.clone(),
                    handout,
                    res,
                };
                self.schedule_hold_step(c, &lock);
            }
            (State::Releasing { op: o }, _) if o == op => {
                self.stats.released += 1;
                self.clients[c].state = State::Idle;
                self.schedule_step(c, think);
            }
            (state, result) => self.violation(
                Check::Engine,
                format!("client {c}: {op} completed with {result:?} while {state:?}"),
            ),
        }
    }

    pub(super) fn acquired(&mut self, c: usize, lock: Lock, res: Vec<usize>, started: u64) {
        let local = self.local(c);
        if !lock.is_valid(local) {
            self.violation(
                Check::Engine,
                format!("client {c}: a lock handed out already expired"),
            );
        }
        self.stats.acquired += 1;
        self.handouts += 1;
        let handout = self.handouts;
        let end = self.clients[c].clock.real(local_of(lock.valid_until()));
        let token = lock.fencing_token();
        self.note(|| {
            format!(
                "client {c} ACQUIRED {res:?} h{handout} token {token:?} until {:.6}ms",
                end as f64 / 1e6
            )
        });
        if self.sc.options.fencing {
            match token {
                None => self.violation(
                    Check::Engine,
                    format!("client {c}: fencing on, but the lock has no token"),
                ),
                Some(t) => {
                    if t > 1 {
                        self.stats.fenced += 1;
                    }
                    for &r in &res {
                        if let Some(detail) = self.handed.hand_out(r, t, handout, c) {
                            self.violation(Check::TokenOrder, detail);
                        }
                    }
                }
            }
        }
        for &r in &res {
            self.open_window(c, handout, r, end);
        }
        self.check_wait(c, started, "took");
        self.clients[c].state = State::Holding {
            lock: lock.clone(),
            handout,
            res,
        };
        self.schedule_hold_step(c, &lock);
    }

    pub(super) fn check_wait(&mut self, c: usize, started: u64, what: &str) {
        let waited = self.now - started;
        self.stats.max_wait = self.stats.max_wait.max(waited);
        if let Some(bound) = self.sc.liveness {
            if waited > nanos(bound) {
                let detail = format!(
                    "client {c}: acquire {what} after {:?} (bound {bound:?})",
                    Duration::from_nanos(waited)
                );
                self.violation(Check::Liveness, detail);
            }
        }
    }

    pub(super) fn open_window(&mut self, c: usize, handout: u64, resource: usize, end: u64) {
        self.clients[c].windows.push(self.windows.len());
        self.windows.push(Window {
            client: c,
            handout,
            resource,
            start: self.now,
            end,
        });
    }
}
