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
    let mut out = Vec::with_capacity(key.len() + 8);
    push_tagged(&mut out, key);
    out.extend_from_slice(b":fence");
    Bytes::from(out)
}

/// The channel a release of lock key `K` is announced on, in `K`'s cluster slot:
/// `redlock:released:{K}`, or `redlock:released:K` when `K` already has a hash tag. The release
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

/// Appends `key`, wrapped in `{…}` unless it already has a hash tag (a `{…}` with something
/// inside: the slot then comes from the tag).
fn push_tagged(out: &mut Vec<u8>, key: &[u8]) {
    let has_tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| key[open + 1..].iter().position(|b| *b == b'}'))
        .is_some_and(|len| len > 0);
    if has_tag {
        out.extend_from_slice(key);
    } else {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    }
}
