//! When to try a node again: exponential backoff from 20 ms to 1 s, jittered so that many
//! clients of one node do not reconnect in step, and reset only once a handshake succeeded (a
//! node that accepts TCP and then refuses the handshake must not be hammered).

use std::time::Duration;

const MIN: Duration = Duration::from_millis(20);
const MAX: Duration = Duration::from_secs(1);

/// One node's reconnect backoff.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The un-jittered wait before the next try.
    wait: Duration,
    /// xorshift64 state for the jitter (never 0).
    rng: u64,
}

impl Backoff {
    /// A fresh backoff; `seed` varies the jitter between nodes and clients.
    pub(crate) fn new(seed: u64) -> Backoff {
        Backoff {
            wait: MIN,
            rng: seed | 1,
        }
    }

    /// How long to wait before the next try: the current wait, jittered to between half and all
    /// of it; the wait then doubles, up to one second.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.wait;
        self.wait = (wait * 2).min(MAX);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = wait / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.rng % (span + 1))
    }

    /// The node's handshake succeeded: the next failure starts again from the minimum.
    pub(crate) fn reset(&mut self) {
        self.wait = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_a_second_jittered_and_resets() {
        let mut b = Backoff::new(7);
        let waits: Vec<Duration> = (0..10).map(|_| b.next_wait()).collect();
        assert!(waits[0] >= MIN / 2 && waits[0] <= MIN, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX), "{waits:?}");
        assert!(waits[9] >= MAX / 2, "capped, not stuck low: {waits:?}");
        b.reset();
        assert!(b.next_wait() <= MIN);
    }

    #[test]
    fn a_refused_handshake_does_not_reset_it_so_retries_stay_bounded() {
        // What the driver does for a node that accepts TCP and refuses the handshake: every
        // connect succeeds, no handshake does, so the backoff never resets. Over ten seconds
        // that is at most a handful of tries a second, not one per round trip.
        let mut b = Backoff::new(3);
        let mut elapsed = Duration::ZERO;
        let mut tries = 0;
        while elapsed < Duration::from_secs(10) {
            elapsed += b.next_wait();
            tries += 1;
        }
        assert!(tries <= 30, "{tries} tries in 10 s");
    }

    #[test]
    fn clients_with_different_seeds_spread_apart() {
        let a: Vec<Duration> = {
            let mut b = Backoff::new(1);
            (0..6).map(|_| b.next_wait()).collect()
        };
        let c: Vec<Duration> = {
            let mut b = Backoff::new(99);
            (0..6).map(|_| b.next_wait()).collect()
        };
        assert_ne!(a, c);
    }
}
