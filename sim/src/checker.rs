//! The checkers' bookkeeping, apart from the simulation that feeds it: hold windows and the
//! mutual-exclusion check over them, the fenced store, and the ledger of fencing tokens handed
//! out. Each says what is wrong as text; the simulation files it as a [`Violation`].

use crate::report::{Check, Violation};
use std::collections::BTreeMap;
use std::time::Duration;

/// A client holds `resource` over real times `start..end` (nanoseconds), under the lock handed
/// out as number `handout`.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// The holder.
    pub(crate) client: usize,
    /// Which lock, counting every handout of the run from 1.
    pub(crate) handout: u64,
    /// The resource held.
    pub(crate) resource: usize,
    /// When the hold began.
    pub(crate) start: u64,
    /// When it ended (release, the end of validity, or a newer lock from an extend).
    pub(crate) end: u64,
}

/// Mutual exclusion: per resource, no two clients' windows overlap. Returns the first ten
/// overlaps, earliest first.
pub(crate) fn exclusion(windows: &[Window]) -> Vec<Violation> {
    let mut by_resource: BTreeMap<usize, Vec<Window>> = BTreeMap::new();
    for w in windows {
        if w.start < w.end {
            by_resource.entry(w.resource).or_default().push(w.clone());
        }
    }
    let mut found = Vec::new();
    for (r, mut ws) in by_resource {
        ws.sort_by_key(|w| (w.start, w.end));
        for i in 0..ws.len() {
            for j in i + 1..ws.len() {
                if ws[j].start >= ws[i].end {
                    break;
                }
                if ws[j].client != ws[i].client {
                    let (a, b) = (&ws[i], &ws[j]);
                    found.push((
                        b.start,
                        format!(
                            "r{r}: client {} (lock #{}) holds {:.6}..{:.6}ms and client {} \
                             (lock #{}) holds {:.6}..{:.6}ms",
                            a.client,
                            a.handout,
                            a.start as f64 / 1e6,
                            a.end as f64 / 1e6,
                            b.client,
                            b.handout,
                            b.start as f64 / 1e6,
                            b.end as f64 / 1e6
                        ),
                    ));
                }
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .take(10)
        .map(|(at, detail)| Violation {
            check: Check::Exclusion,
            at: Duration::from_nanos(at),
            detail,
        })
        .collect()
}

/// A write to the fenced store by the holder of lock `handout`, carrying its fencing token.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    /// The writer.
    pub(crate) client: usize,
    /// The resource written.
    pub(crate) resource: usize,
    /// The writer's fencing token.
    pub(crate) token: u64,
    /// The writer's lock, counting every handout of the run from 1.
    pub(crate) handout: u64,
}

/// What the fenced store made of a [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refused: its token is below the largest the store has seen for the resource.
    Rejected,
    /// Accepted, and rightly.
    Accepted,
    /// Accepted although the store already accepted a write from a lock handed out later
    /// (`newer_handout`, written by `newer`: client and token): a stale write got through.
    Stale {
        /// Client and token of the newer lock's first accepted write, if known.
        newer: Option<(usize, u64)>,
        /// The newest lock the store has heard from.
        newer_handout: u64,
    },
}

#[derive(Debug, Clone, Default)]
struct StoreSlot {
    max_token: u64,
    max_handout: u64,
    last_writer: Option<(usize, u64)>,
}

/// A store that accepts a write when its token is not below the largest it has seen for the
/// resource, and remembers the newest lock it heard from to tell stale writes apart.
#[derive(Debug, Clone)]
pub(crate) struct FencedStore(Vec<StoreSlot>);

impl FencedStore {
    /// A store for `resources` resources, never written.
    pub(crate) fn new(resources: usize) -> FencedStore {
        FencedStore(vec![StoreSlot::default(); resources])
    }

    /// Applies `w` and says what became of it.
    pub(crate) fn write(&mut self, w: &Write) -> Verdict {
        let slot = &mut self.0[w.resource];
        if w.token < slot.max_token {
            return Verdict::Rejected;
        }
        let stale = (w.handout < slot.max_handout).then_some(slot.last_writer);
        slot.max_token = w.token;
        if w.handout > slot.max_handout {
            slot.max_handout = w.handout;
            slot.last_writer = Some((w.client, w.token));
        }
        match stale {
            None => Verdict::Accepted,
            Some(newer) => Verdict::Stale {
                newer,
                newer_handout: slot.max_handout,
            },
        }
    }
}

/// Per resource, the largest fencing token handed out so far, with its lock and client.
#[derive(Debug, Clone)]
pub(crate) struct TokenLedger(Vec<Option<(u64, u64, usize)>>);

impl TokenLedger {
    /// A ledger for `resources` resources, nothing handed out.
    pub(crate) fn new(resources: usize) -> TokenLedger {
        TokenLedger(vec![None; resources])
    }

    /// Client `c` got token `t` for resource `r` with lock `handout`. Returns what is wrong
    /// when `t` is not larger than every token handed out for `r` before.
    pub(crate) fn hand_out(&mut self, r: usize, t: u64, handout: u64, c: usize) -> Option<String> {
        let wrong = match self.0[r] {
            Some((prev, h, pc)) if t <= prev => Some(format!(
                "r{r}: client {c} got token {t} (lock #{handout}) after client {pc} got {prev} \
                 (lock #{h})"
            )),
            _ => None,
        };
        if self.0[r].is_none_or(|(prev, _, _)| t > prev) {
            self.0[r] = Some((t, handout, c));
        }
        wrong
    }
}
