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
/// For each key it deletes it announces the release: `ARGV[1 + i]`, when given, is the channel
/// of `KEYS[i]` ([`release_channel`](crate::release_channel)), and gets an empty message.
/// `pcall`: a user whose ACL forbids the channel still releases (waiters then fall back to
/// their retry delay).
pub const RELEASE: &str = r#"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
    if ARGV[i + 1] then redis.pcall('PUBLISH', ARGV[i + 1], '') end
  end
end
return n
"#;

/// The largest fencing token, and the largest fence counter the scripts accept: `2^53 - 1`.
///
/// Lua numbers are doubles, exact for integers below `2^53`. The fencing scripts compare
/// counters as numbers, so they refuse (with an error reply, changing nothing) a counter or
/// token at or above `2^53` rather than compare a rounded value. Tokens with the clock floor
/// are the wall clock in microseconds (about `2^50.6` in 2025), so this is reached around the
/// year 2255, or sooner by a counter someone set by hand.
///
/// ```
/// assert_eq!(redlock_core::MAX_FENCING_TOKEN, 9_007_199_254_740_991);
/// assert!(redlock_core::FENCE.contains("9007199254740992"));
/// ```
pub const MAX_FENCING_TOKEN: u64 = (1 << 53) - 1;

/// Fenced acquire (with `fencing` on). `KEYS` holds the lock keys, then as many fence-counter
/// keys. Refuses with `{0}` if any lock key holds another token. A counter that is not an integer
/// in `0..=MAX_FENCING_TOKEN` (see [`MAX_FENCING_TOKEN`]) is an error reply, and nothing changes.
/// Otherwise sets every lock key like [`ACQUIRE`] and replies `{1, c}`, `c` the largest fence
/// counter (0 when none is set yet), exact.
pub const FENCED_ACQUIRE: &str = r#"
local n = #KEYS / 2
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= ARGV[1] then return {0} end
end
local top = 0
for i = n + 1, 2 * n do
  local v = redis.call('GET', KEYS[i])
  if v then
    local c = tonumber(v)
    if not c or c < 0 or c >= 9007199254740992 or c % 1 ~= 0 then
      return redis.error_reply('fence counter ' .. KEYS[i] .. ' holds ' .. v .. ', not an integer below 2^53')
    end
    if c > top then top = c end
  end
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return {1, top}
"#;

/// Fence write-back (with `fencing` on): `KEYS` as for [`FENCED_ACQUIRE`], `ARGV[2]` the new
/// fencing token. Only while every lock key still holds `ARGV[1]`, raises each counter to the
/// token (never lowers it) and replies 1; otherwise changes nothing and replies 0. A token or
/// counter that is not an integer below `2^53` ([`MAX_FENCING_TOKEN`]) is an error reply, and
/// nothing changes: the comparison would not be exact. Counters have no expiry: they must
/// outlive every lock.
pub const FENCE: &str = r#"
local n = #KEYS / 2
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return 0 end
end
local t = tonumber(ARGV[2])
if not t or t < 1 or t >= 9007199254740992 or t % 1 ~= 0 then
  return redis.error_reply('fencing token ' .. ARGV[2] .. ' is not an integer below 2^53')
end
local raise = {}
for i = n + 1, 2 * n do
  local v = redis.call('GET', KEYS[i])
  local c = tonumber(v or '0')
  if not c or c < 0 or c >= 9007199254740992 or c % 1 ~= 0 then
    return redis.error_reply('fence counter ' .. KEYS[i] .. ' holds ' .. v .. ', not an integer below 2^53')
  end
  if t > c then raise[#raise + 1] = KEYS[i] end
end
for _, k in ipairs(raise) do redis.call('SET', k, ARGV[2]) end
return 1
"#;

/// The lock scripts. Each field is `None` for the built-in script (the constants in this module)
/// or `Some(source)` to override it, e.g. to add logging or extra bookkeeping, keeping the
/// contract in the module docs: acquire and extend reply with integer 1 (granted) or 0 (refused);
/// release replies with the integer count of keys it deleted.
///
/// While the acquire script is the built-in one, a single-key, unfenced acquire goes out as
/// `SET key token NX PX ttl`, which does the same without running Lua; overriding it makes every
/// acquire run the given script.
///
/// ```
/// let mut scripts = redlock_core::Scripts::default();
/// assert_eq!(scripts.source(redlock_core::ScriptKind::Acquire), redlock_core::ACQUIRE);
/// scripts.acquire = Some(format!("-- audited\n{}", redlock_core::ACQUIRE));
/// assert!(scripts.overrides_acquire());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scripts {
    /// The acquire script, `None` for [`ACQUIRE`].
    pub acquire: Option<String>,
    /// The extend script, `None` for [`EXTEND`].
    pub extend: Option<String>,
    /// The release script, `None` for [`RELEASE`].
    pub release: Option<String>,
    /// The fenced acquire script (used with `fencing`), `None` for [`FENCED_ACQUIRE`].
    pub fenced_acquire: Option<String>,
    /// The fence write-back script (used with `fencing`), `None` for [`FENCE`].
    pub fence: Option<String>,
}

/// Names one of the lock scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScriptKind {
    /// Takes the keys.
    Acquire,
    /// Pushes their expiry out.
    Extend,
    /// Deletes them.
    Release,
    /// Takes the keys and reads the fence counters.
    FencedAcquire,
    /// Writes the fencing token back.
    Fence,
}

impl Scripts {
    /// The source in force for `kind`: the override, or the built-in script.
    pub fn source(&self, kind: ScriptKind) -> &str {
        let (custom, builtin) = match kind {
            ScriptKind::Acquire => (&self.acquire, ACQUIRE),
            ScriptKind::Extend => (&self.extend, EXTEND),
            ScriptKind::Release => (&self.release, RELEASE),
            ScriptKind::FencedAcquire => (&self.fenced_acquire, FENCED_ACQUIRE),
            ScriptKind::Fence => (&self.fence, FENCE),
        };
        custom.as_deref().unwrap_or(builtin)
    }

    /// Whether the acquire script is overridden (then no acquire goes out as `SET NX`).
    pub fn overrides_acquire(&self) -> bool {
        self.acquire.is_some()
    }
}

/// Names the overridden scripts by their SHA-1, never printing their sources.
impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |s: &Option<String>| match s {
            None => "built-in".to_string(),
            Some(src) => format!("custom (sha1 {})", sha1_hex(src.as_bytes())),
        };
        f.debug_struct("Scripts")
            .field("acquire", &show(&self.acquire))
            .field("extend", &show(&self.extend))
            .field("release", &show(&self.release))
            .field("fenced_acquire", &show(&self.fenced_acquire))
            .field("fence", &show(&self.fence))
            .finish()
    }
}

/// A script's source with its precomputed SHA-1, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            acquire: Compiled::new(s.source(ScriptKind::Acquire)),
            extend: Compiled::new(s.source(ScriptKind::Extend)),
            release: Compiled::new(s.source(ScriptKind::Release)),
            fenced_acquire: Compiled::new(s.source(ScriptKind::FencedAcquire)),
            fence: Compiled::new(s.source(ScriptKind::Fence)),
        }
    }

    pub(crate) fn get(&self, id: ScriptKind) -> &Compiled {
        match id {
            ScriptKind::Acquire => &self.acquire,
            ScriptKind::Extend => &self.extend,
            ScriptKind::Release => &self.release,
            ScriptKind::FencedAcquire => &self.fenced_acquire,
            ScriptKind::Fence => &self.fence,
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
