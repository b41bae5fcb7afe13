//! How resource names become Redis keys: the lock key, and the fence-counter key beside it in
//! the same cluster slot.

use crate::slot::{hash_tag, key_slot, tag_for_slot};
use bytes::Bytes;

/// The Redis key of `resource`: `prefix` (the `key_prefix` option) followed by the name.
pub(crate) fn redis_key(prefix: &str, resource: &str) -> Bytes {
    let mut k = Vec::with_capacity(prefix.len() + resource.len());
    k.extend_from_slice(prefix.as_bytes());
    k.extend_from_slice(resource.as_bytes());
    Bytes::from(k)
}

/// The fence-counter key of a lock key, in the same cluster slot: `{K}:fence`, or `K:fence` when
/// `K` already has a hash tag (a `{…}` with something inside: the slot then comes from the tag).
/// `K` is the Redis key, i.e. the resource name with any `key_prefix` in front. A key that has
/// no tag but contains a `}` (such as `a{}b` or `x}y`) cannot be a tag itself, so it gets a
/// two-byte tag of its own slot in front instead: `{TT}K:fence` (see `push_tagged`). Either way
/// [`key_slot`] of the result is `K`'s.
///
/// ```
/// use redlock_core::{fence_key, key_slot};
/// assert_eq!(&fence_key(b"orders:42")[..], b"{orders:42}:fence");
/// assert_eq!(&fence_key(b"{user1}:x")[..], b"{user1}:x:fence");
/// let odd = fence_key(b"a{}b");
/// assert!(odd.starts_with(b"{") && odd.ends_with(b"}a{}b:fence") && odd.len() == 14);
/// assert_eq!(key_slot(&odd), key_slot(b"a{}b"));
/// ```
pub fn fence_key(key: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(key.len() + 8);
    push_tagged(&mut out, key);
    out.extend_from_slice(b":fence");
    Bytes::from(out)
}

/// The channel a release of lock key `K` is announced on, in `K`'s cluster slot:
/// `redlock:released:{K}`, or `redlock:released:K` when `K` already has a hash tag (and, as for
/// [`fence_key`], `redlock:released:{TT}K` when `K` has no tag but contains a `}`). The release
/// script publishes an empty message there for each key it deletes; waiting clients subscribe
/// (see [`Options::wait_for_release`](crate::Options::wait_for_release)).
///
/// ```
/// assert_eq!(&redlock_core::release_channel(b"orders:42")[..], b"redlock:released:{orders:42}");
/// assert_eq!(&redlock_core::release_channel(b"{user1}:x")[..], b"redlock:released:{user1}:x");
/// ```
pub fn release_channel(key: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(key.len() + 19);
    out.extend_from_slice(RELEASE_CHANNEL_PREFIX);
    push_tagged(&mut out, key);
    Bytes::from(out)
}

/// What every release channel starts with.
pub(crate) const RELEASE_CHANNEL_PREFIX: &[u8] = b"redlock:released:";

/// Appends `key` so that the appended bytes, with anything without braces before or after them,
/// hash to `key`'s cluster slot ([`key_slot`]). Three cases, each with its proof:
///
/// - `key` has a hash tag: it goes in as is. A prefix without `{` (such as
///   [`RELEASE_CHANNEL_PREFIX`]) leaves its first `{` the first of the whole, and a suffix comes
///   after the `}` that closes it: the tag, hence the slot, is unchanged.
/// - `key` has no tag, is not empty and has no `}`: it goes in as `{key}`. The first `{` is the
///   one added, the first `}` after it the one added (the key has none), and what lies between
///   is the whole key, not empty: the tag is `key`, hashed exactly as the tagless key is.
/// - otherwise (no tag, and a `}` inside or empty): no tag can equal the key (a tag never holds
///   a `}` and is never empty), so it goes in as `{TT}key`, `TT` the two bytes without `}` of
///   [`tag_for_slot`] whose CRC is `key`'s slot. The first `{` is the one added, the first `}`
///   after it closes `TT`: the tag is `TT`, of `key`'s slot.
///
/// The keys of the first two cases keep the names earlier versions gave them, so their fence
/// counters carry over an upgrade.
fn push_tagged(out: &mut Vec<u8>, key: &[u8]) {
    if hash_tag(key).is_some() {
        out.extend_from_slice(key);
    } else if !key.is_empty() && !key.contains(&b'}') {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    } else {
        out.push(b'{');
        out.extend_from_slice(&tag_for_slot(key_slot(key)));
        out.push(b'}');
        out.extend_from_slice(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Keys built from the bytes that matter to hash tags, plus a few others.
    fn tricky_keys() -> Vec<Vec<u8>> {
        const ALPHABET: &[u8] = b"{}{}a:b\x00\xff";
        let mut keys: Vec<Vec<u8>> = [
            &b"orders:42"[..],
            b"a{}b",
            b"{}",
            b"}",
            b"{",
            b"x}y",
            b"}{a}",
            b"}{a",
            b"{{}}",
            b"foo{}{bar}",
            b"foo{{bar}}zap",
            b"foo{bar}{zap}",
            b"",
        ]
        .iter()
        .map(|k| k.to_vec())
        .collect();
        let mut rng = Rng::new(15);
        for _ in 0..20_000 {
            let len = rng.below_inclusive(12) as usize;
            keys.push(
                (0..len)
                    .map(|_| ALPHABET[rng.below_inclusive(ALPHABET.len() as u64 - 1) as usize])
                    .collect(),
            );
        }
        for _ in 0..2_000 {
            let len = rng.below_inclusive(40) as usize;
            keys.push((0..len).map(|_| rng.next_u64() as u8).collect());
        }
        keys
    }

    #[test]
    fn derived_keys_share_the_slot() {
        for key in tricky_keys() {
            let slot = key_slot(&key);
            assert_eq!(key_slot(&fence_key(&key)), slot, "fence_key({key:?})");
            assert_eq!(
                key_slot(&release_channel(&key)),
                slot,
                "release_channel({key:?})"
            );
        }
    }

    #[test]
    fn derived_keys_keep_their_names() {
        assert_eq!(&fence_key(b"orders:42")[..], b"{orders:42}:fence");
        assert_eq!(&fence_key(b"{user1}:x")[..], b"{user1}:x:fence");
        assert_eq!(&fence_key(b"a{b")[..], b"{a{b}:fence");
        assert_eq!(
            &release_channel(b"orders:42")[..],
            b"redlock:released:{orders:42}"
        );
        let tt = tag_for_slot(key_slot(b"a{}b"));
        let mut want = vec![b'{', tt[0], tt[1], b'}'];
        want.extend_from_slice(b"a{}b:fence");
        assert_eq!(&fence_key(b"a{}b")[..], &want[..]);
    }

    #[test]
    fn distinct_keys_get_distinct_fence_keys() {
        // Within each case the derivation is injective; across cases the only ways to meet are
        // a tagged key that spells another key's wrapping (`{a}` and `a`, as before), and the
        // empty key (which the engine never makes) with its own two-byte tag. Both stay in one
        // slot, and a shared counter still only grows.
        let keys = tricky_keys();
        let mut seen = std::collections::HashMap::new();
        for key in &keys {
            if let Some(other) = seen.insert(fence_key(key), key.clone()) {
                assert!(
                    other == *key
                        || hash_tag(key).is_some()
                        || hash_tag(&other).is_some()
                        || key.is_empty()
                        || other.is_empty(),
                    "{key:?} and {other:?}"
                );
            }
        }
    }
}
