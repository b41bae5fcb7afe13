//! Which Redis Cluster hash slot a key lives in: CRC16 (XMODEM) of the key, or of its hash tag,
//! modulo 16384, as the cluster specification defines it.

/// How many hash slots a cluster has.
pub(crate) const SLOTS: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final xor): the
/// checksum Redis Cluster hashes keys with.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0, |crc, b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The CRC of every byte value from a zero register, so [`crc16`] takes one lookup per byte.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The hash tag of `key`, if it has one: the bytes between the first `{` and the first `}`
/// after it, when there is at least one byte between them. A key with a tag hashes by its tag
/// alone, so keys sharing a tag share a slot.
pub(crate) fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|b| *b == b'{')?;
    let rest = &key[open + 1..];
    let len = rest.iter().position(|b| *b == b'}')?;
    (len > 0).then(|| &rest[..len])
}

/// The cluster hash slot of `key` (`0..16384`): CRC16/XMODEM of its hash tag when it has one
/// (the bytes between the first `{` and the next `}`, if not empty), else of the whole key,
/// modulo 16384. What `CLUSTER KEYSLOT` answers.
///
/// ```
/// use redlock_core::key_slot;
/// assert_eq!(key_slot(b"foo"), 12182);
/// // Keys with the same hash tag share a slot, whatever surrounds the tag.
/// assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
/// assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
/// // An empty tag is no tag: the whole key is hashed.
/// assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

/// A two-byte hash tag, without `}`, whose slot is `slot` (taken modulo 16384): how
/// [`fence_key`](crate::fence_key) places a key that cannot be its own tag in that key's slot.
///
/// CRC16/XMODEM of a two-byte message `m` from a zero register is `m · x¹⁶ mod P`, a bijection
/// on 16-bit values, so each of the four CRC values `slot + k·16384` has exactly one two-byte
/// preimage, found by running the register backwards sixteen steps. The first preimage without
/// a `}` byte is returned; the test `every_slot_has_a_tag` checks all 16384 slots have one
/// (at most the third candidate is ever needed).
pub(crate) fn tag_for_slot(slot: u16) -> [u8; 2] {
    let slot = slot % SLOTS;
    let mut tag = [0, 0];
    for k in 0..4u16 {
        tag = uncrc(slot | (k << 14)).to_be_bytes();
        if !tag.contains(&b'}') {
            break;
        }
    }
    tag
}

/// The two-byte message whose CRC16/XMODEM is `crc`: sixteen steps of the register run
/// backwards. A forward step shifts left and xors 0x1021 when the top bit falls out, so the
/// new low bit is the bit that fell out (0x1021 is odd); a backward step reads it there.
fn uncrc(crc: u16) -> u16 {
    let mut reg = crc;
    for _ in 0..16 {
        reg = if reg & 1 != 0 {
            ((reg ^ 0x1021) >> 1) | 0x8000
        } else {
            reg >> 1
        };
    }
    reg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_known_vectors() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 0x31C3, "below 16384 already");
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), Some(&b"user1000"[..]));
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        // An empty tag is no tag.
        assert_eq!(hash_tag(b"foo{}{bar}"), None);
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        // The first `{`, then the first `}` after it.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
        assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
        assert_eq!(hash_tag(b"foo{bar}{zap}"), Some(&b"bar"[..]));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // A `}` before the first `{` does not close anything.
        assert_eq!(hash_tag(b"}a{b"), None);
        assert_eq!(hash_tag(b"}a{b}"), Some(&b"b"[..]));
        assert_eq!(hash_tag(b"{"), None);
        assert_eq!(hash_tag(b"{}"), None);
        assert_eq!(hash_tag(b""), None);
    }

    #[test]
    fn every_slot_has_a_tag() {
        for slot in 0..SLOTS {
            let tag = tag_for_slot(slot);
            assert!(!tag.contains(&b'}'), "slot {slot}: {tag:?}");
            assert_eq!(crc16(&tag) % SLOTS, slot);
            let mut key = vec![b'{'];
            key.extend_from_slice(&tag);
            key.extend_from_slice(b"}x");
            assert_eq!(key_slot(&key), slot);
        }
    }

    #[test]
    fn uncrc_inverts_crc16() {
        for m in (0..=u16::MAX).step_by(7) {
            assert_eq!(uncrc(crc16(&m.to_be_bytes())), m);
        }
    }
}
