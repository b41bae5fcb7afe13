//! The run digest: FNV-1a over everything a run moves and decides, so that determinism can be
//! asserted (same scenario, same digest).

/// FNV-1a, 64 bits.
#[derive(Debug, Clone)]
pub(crate) struct Fnv(u64);

impl Fnv {
    /// The empty digest (FNV's offset basis).
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in `b`.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Mixes in `v` (little-endian bytes).
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// The digest so far.
    pub(crate) fn value(&self) -> u64 {
        self.0
    }
}
