//! Overlapping the client's work with the nodes'. When many callers' replies arrive in one read,
//! waking them all before the next write makes client and node take turns: the node idles while
//! every caller runs and the driver gathers their requests into one write, then the client
//! idles while the node works through it. Waking them in parts (the next part after the first
//! part's requests are written) keeps two writes in flight, so each side works while the other
//! does.
//!
//! Each extra write costs the node a wake-up. That is worth it when the nodes have CPU to
//! spare, and not when they compete with the client for this machine's cores: nodes on
//! loopback or a Unix socket run here, so parts are used only while those leave the client a
//! core. Measured with `redlock-bench` on 2 cores (C=32, uncontended): two parts raise one local
//! node's operations per second by a half or more, and cost five local nodes some.

use std::collections::VecDeque;
use std::task::Waker;

/// Fewer callers woken at once than this are woken together: a part of one or two would cost
/// a write each for little overlap.
const MIN_TO_SPLIT: usize = 4;

/// Whether `local` server processes on this machine leave the client one of its `cores`: the
/// rule for work that costs the nodes or the client CPU to save latency (more parts here, the
/// driver's spinning with company).
pub(crate) fn leaves_a_core(local: usize, cores: usize) -> bool {
    local < cores
}

/// Whether, and into how many parts, woken callers are split.
#[derive(Debug)]
pub(crate) struct Overlap {
    parts: usize,
    /// Callers whose results are in, still to be woken (one part per pass).
    held: VecDeque<Waker>,
    part: usize,
}

impl Overlap {
    /// Parts for a client whose local servers leave it a core (`spare_core`, from
    /// [`leaves_a_core`]): two, else one.
    pub(crate) fn new(spare_core: bool) -> Overlap {
        Overlap {
            parts: if spare_core { 2 } else { 1 },
            held: VecDeque::new(),
            part: 1,
        }
    }

    /// Called with the callers a pass is about to wake, after its write: when they are many and
    /// none is held back, keeps all but the first part for the next passes; when some are held
    /// back, adds the next part. Returns whether any are still held back (the driver then runs
    /// another pass as soon as the woken callers have had their turn).
    pub(crate) fn pace(&mut self, woken: &mut Vec<Waker>) -> bool {
        if !self.held.is_empty() {
            let n = self.part.min(self.held.len());
            woken.extend(self.held.drain(..n));
        } else if self.parts > 1 && woken.len() >= MIN_TO_SPLIT {
            self.part = woken.len().div_ceil(self.parts);
            self.held.extend(woken.drain(self.part..));
        }
        !self.held.is_empty()
    }

    /// Whether callers are held back: the driver then writes without waiting for company (the
    /// callers woken last pass have had their turn).
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Every caller still held back, to wake now (the driver is ending).
    pub(crate) fn release(&mut self, woken: &mut Vec<Waker>) {
        woken.extend(self.held.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::{leaves_a_core, Overlap};
    use crate::testing::Counting;
    use std::sync::Arc;
    use std::task::Waker;

    fn wakers(n: usize) -> (Arc<Counting>, Vec<Waker>) {
        let c = Arc::new(Counting::default());
        (c.clone(), (0..n).map(|_| Waker::from(c.clone())).collect())
    }

    #[test]
    fn many_callers_are_woken_in_two_parts_one_per_pass() {
        let mut o = Overlap::new(leaves_a_core(1, 2));
        let (_, mut woken) = wakers(9);
        assert!(o.pace(&mut woken), "the second part is held back");
        assert_eq!(woken.len(), 5);
        assert!(o.holding());
        woken.clear(); // the driver woke them
        assert!(!o.pace(&mut woken), "the next pass wakes the rest");
        assert_eq!(woken.len(), 4);
        assert!(!o.holding());
    }

    #[test]
    fn few_callers_or_busy_cores_are_woken_together() {
        let mut o = Overlap::new(leaves_a_core(1, 2));
        let (_, mut woken) = wakers(3);
        assert!(!o.pace(&mut woken));
        assert_eq!(woken.len(), 3);
        let mut o = Overlap::new(leaves_a_core(5, 2));
        let (_, mut woken) = wakers(32);
        assert!(
            !o.pace(&mut woken),
            "five local nodes on two cores: one part"
        );
        assert_eq!(woken.len(), 32);
        let mut o = Overlap::new(leaves_a_core(0, 1));
        let (_, mut woken) = wakers(32);
        assert!(
            o.pace(&mut woken),
            "remote nodes: two parts even on one core"
        );
    }

    #[test]
    fn a_new_batch_waits_until_the_held_part_is_out() {
        let mut o = Overlap::new(leaves_a_core(0, 2));
        let (_, mut woken) = wakers(8);
        assert!(o.pace(&mut woken));
        woken.clear();
        // Replies of other callers arrived meanwhile: they go with the held part, unsplit.
        let (_, mut more) = wakers(6);
        woken.append(&mut more);
        assert!(!o.pace(&mut woken));
        assert_eq!(woken.len(), 10);
    }

    #[test]
    fn release_hands_back_every_held_caller() {
        let mut o = Overlap::new(leaves_a_core(0, 2));
        let (count, mut woken) = wakers(10);
        o.pace(&mut woken);
        for w in woken.drain(..) {
            w.wake();
        }
        o.release(&mut woken);
        for w in woken.drain(..) {
            w.wake();
        }
        assert_eq!(count.count(), 10, "nobody is left asleep");
        assert!(!o.holding());
    }
}
