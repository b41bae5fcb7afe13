//! The Lua scripts that take, extend and give back a lock, and their SHA-1 names.
//!
//! Every key of one operation goes into one script, so a multi-resource lock is all-or-nothing
//! on each node. Contract shared by all scripts: `KEYS` are the Redis keys of the resources,
//! `ARGV[1]` is the lock token, `ARGV[2]` the ttl in milliseconds (acquire and extend).

use crate::sha1::sha1_hex;

/// Default acquire script: refuses (returns 0) if any key holds another token, otherwise sets
/// every key to the token with the ttl and returns 1. A key already holding this very token is
/// the same request run twice (see the NOSCRIPT re-send in `conn.rs`; tokens are unique per
/// attempt), so it grants again rather than refuse its own lock.
pub const ACQUIRE: &str = r#"
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= ARGV[1] then return 0 end
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return 1
"#;

/// Default extend script: if every key holds the token, raises each key's remaining ttl to
/// `ARGV[2]` (never lowers it: the caller's current lock stays true while the extend is in
/// flight, and after it fails) and returns 1; otherwise changes nothing and returns 0.
pub const EXTEND: &str = r#"
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return 0 end
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
"#;

/// Default release script: deletes every key that holds the token; returns how many it deleted.
pub const RELEASE: &str = r#"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"#;

/// Fenced acquire (with `fencing` on). `KEYS` holds the lock keys, then as many fence-counter
/// keys. Refuses with `{0}` if any lock key holds another token; otherwise sets every lock key like
/// [`ACQUIRE`] and replies `{1, c}`, `c` the largest fence counter (0 when none is set yet).
pub const FENCED_ACQUIRE: &str = r#"
local n = #KEYS / 2
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= ARGV[1] then return {0} end
end
local top = 0
for i = n + 1, 2 * n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if c > top then top = c end
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return {1, top}
"#;

/// Fence write-back (with `fencing` on): `KEYS` as for [`FENCED_ACQUIRE`], `ARGV[2]` the new
/// fencing token. Only while every lock key still holds `ARGV[1]`, raises each counter to the
/// token (never lowers it) and replies 1; otherwise changes nothing and replies 0. Counters have
/// no expiry: they must outlive every lock.
pub const FENCE: &str = r#"
local n = #KEYS / 2
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return 0 end
end
local t = tonumber(ARGV[2])
for i = n + 1, 2 * n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if t > c then redis.call('SET', KEYS[i], ARGV[2]) end
end
return 1
"#;

/// The lock scripts. Override them to add behaviour (logging, extra bookkeeping), keeping
/// the contract in the module docs: acquire and extend reply with integer 1 (granted) or 0
/// (refused); release replies with the integer count of keys it deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    /// Source of the acquire script.
    pub acquire: String,
    /// Source of the extend script.
    pub extend: String,
    /// Source of the release script.
    pub release: String,
    /// Source of the fenced acquire script (used with `fencing`).
    pub fenced_acquire: String,
    /// Source of the fence write-back script (used with `fencing`).
    pub fence: String,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            acquire: ACQUIRE.into(),
            extend: EXTEND.into(),
            release: RELEASE.into(),
            fenced_acquire: FENCED_ACQUIRE.into(),
            fence: FENCE.into(),
        }
    }
}

/// Which of the scripts a request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptId {
    Acquire,
    Extend,
    Release,
    FencedAcquire,
    Fence,
    /// Not a script: a single-key acquire sent as `SET key token NX PX ttl`.
    SetNx,
}

/// A script's source with its precomputed SHA-1, as sent on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) source: bytes::Bytes,
    pub(crate) sha: bytes::Bytes,
}

impl Compiled {
    fn new(source: &str) -> Compiled {
        Compiled {
            sha: bytes::Bytes::from(sha1_hex(source.as_bytes())),
            source: bytes::Bytes::copy_from_slice(source.as_bytes()),
        }
    }
}

/// All scripts, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct ScriptSet {
    acquire: Compiled,
    extend: Compiled,
    release: Compiled,
    fenced_acquire: Compiled,
    fence: Compiled,
}

impl ScriptSet {
    pub(crate) fn new(s: &Scripts) -> ScriptSet {
        ScriptSet {
            acquire: Compiled::new(&s.acquire),
            extend: Compiled::new(&s.extend),
            release: Compiled::new(&s.release),
            fenced_acquire: Compiled::new(&s.fenced_acquire),
            fence: Compiled::new(&s.fence),
        }
    }

    pub(crate) fn get(&self, id: ScriptId) -> &Compiled {
        match id {
            ScriptId::Acquire => &self.acquire,
            ScriptId::Extend => &self.extend,
            ScriptId::Release => &self.release,
            ScriptId::FencedAcquire => &self.fenced_acquire,
            ScriptId::Fence => &self.fence,
            // The script a SET NX stands in for, sent instead when it must run again.
            ScriptId::SetNx => &self.acquire,
        }
    }
}

/// Returns the SHA-1 (lowercase hex) Redis uses to name `source` in `EVALSHA`.
///
/// ```
/// assert_eq!(redlock_core::script_sha(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
/// ```
pub fn script_sha(source: &str) -> String {
    sha1_hex(source.as_bytes())
}
