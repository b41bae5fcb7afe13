//! When a write should wait a moment for company. The driver writes each node's queued requests
//! in one call, and gives other callers one chance (a yield) to add theirs first, when that can
//! pay off.

/// Tracks whether other callers may be about to start requests that could join a write.
#[derive(Debug, Default)]
pub(crate) struct Batching {
    woken_since_write: usize,
}

impl Batching {
    /// Whether to yield once before writing: other operations are in flight (`in_flight`
    /// counts the one being written), or more than one caller was woken since the last write.
    /// For a lone operation nothing would join, and the yield itself costs (on tokio it wakes a
    /// parked worker thread).
    pub(crate) fn worth_waiting(&self, in_flight: usize) -> bool {
        in_flight > 1 || self.woken_since_write > 1
    }

    /// How many callers were woken since the last write: those whose next requests may join
    /// the coming one.
    pub(crate) fn woken(&self) -> usize {
        self.woken_since_write
    }

    /// After a pass: whether it wrote anything, and how many callers it woke.
    pub(crate) fn record(&mut self, wrote: bool, woken: usize) {
        if wrote {
            self.woken_since_write = 0;
        }
        self.woken_since_write += woken;
    }
}

#[cfg(test)]
mod tests {
    use super::Batching;

    #[test]
    fn waits_only_when_company_may_come() {
        let mut b = Batching::default();
        assert!(!b.worth_waiting(1), "a lone operation writes at once");
        b.record(false, 3); // a pass woke three callers and wrote nothing
        assert!(b.worth_waiting(1), "they may be about to start operations");
        assert_eq!(b.woken(), 3);
        b.record(true, 0);
        assert!(!b.worth_waiting(1));
        assert_eq!(b.woken(), 0, "counted from the last write");
        assert!(b.worth_waiting(2), "another operation is in flight");
    }
}
