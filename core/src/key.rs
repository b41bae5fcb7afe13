//! How resource names become Redis keys: the lock key, and the fence-counter key beside it in
//! the same cluster slot.

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
/// `K` is the Redis key, i.e. the resource name with any `key_prefix` in front.
///
/// ```
/// assert_eq!(&redlock_core::fence_key(b"orders:42")[..], b"{orders:42}:fence");
/// assert_eq!(&redlock_core::fence_key(b"{user1}:x")[..], b"{user1}:x:fence");
/// assert_eq!(&redlock_core::fence_key(b"a{}b")[..], b"{a{}b}:fence");
/// ```
pub fn fence_key(key: &[u8]) -> Bytes {
    let has_tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| key[open + 1..].iter().position(|b| *b == b'}'))
        .is_some_and(|len| len > 0);
    let mut out = Vec::with_capacity(key.len() + 8);
    if has_tag {
        out.extend_from_slice(key);
    } else {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    }
    out.extend_from_slice(b":fence");
    Bytes::from(out)
}
