//! The lock scripts' semantics: what each script the engine sends does to a node's keys. The
//! model does not interpret Lua; it knows the scripts by source and runs these natively.

use crate::keyspace::Keyspace;
use crate::request::{int_arg, parse_int};
use crate::value::Value;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Which lock script semantics a script source stands for; the model runs these natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// Refuse with 0 if any key exists; otherwise `SET key ARGV[1] PX ARGV[2]` for every key and
    /// return 1.
    Acquire,
    /// If every key holds `ARGV[1]`, `PEXPIRE` each to `ARGV[2]` and return 1; otherwise 0.
    Extend,
    /// Delete every key holding `ARGV[1]`; return how many.
    Release,
    /// [`redlock_core::FENCED_ACQUIRE`]: `KEYS` are n lock keys then n fence-counter keys.
    /// Refuse with `{0}` if any lock key exists; an error reply if a counter is not an integer
    /// below 2^53 (the script's numbers are doubles); otherwise `SET` every lock key to
    /// `ARGV[1]` with `PX ARGV[2]` and reply `{1, c}`, `c` the largest counter (0 when none is
    /// set).
    FencedAcquire,
    /// [`redlock_core::FENCE`]: `KEYS` as for [`FencedAcquire`](ScriptKind::FencedAcquire).
    /// Only if every lock key holds `ARGV[1]`, raise each counter to `ARGV[2]` (never lower it;
    /// no expiry) and reply 1; otherwise change nothing and reply 0. A token or counter that is
    /// not an integer below 2^53 is an error reply, changing nothing.
    Fence,
    /// A script that touches nothing and replies this integer (for user-supplied scripts that
    /// misbehave, e.g. a fence write-back that skips the write).
    Reply(i64),
}

impl ScriptKind {
    /// Runs this script on `ks` at `now` in database `db` with `KEYS` = `keys` and `ARGV` =
    /// `args`, and returns its reply. `sha` names the script in error replies, as Redis does.
    pub(crate) fn run(
        self,
        ks: &mut Keyspace,
        now: Instant,
        db: u32,
        sha: &str,
        keys: &[Bytes],
        args: &[Bytes],
    ) -> Value {
        let script_error = |detail: &str| {
            Value::error(format!(
                "ERR Error running script (call to f_{sha}): @user_script: {detail}"
            ))
        };
        let Some(token) = args.first() else {
            return script_error("ARGV[1] (the token) is missing");
        };
        for k in keys {
            ks.expire_key(now, db, k);
        }
        match self {
            ScriptKind::Acquire => {
                let Some(ms) = args
                    .get(1)
                    .and_then(int_arg)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n > 0)
                else {
                    return script_error("ERR invalid expire time in 'set' command");
                };
                // As the script: refuse only a key held with another token.
                if ks.any_held_by_other(db, keys, token) {
                    return Value::Int(0);
                }
                for k in keys {
                    ks.insert(
                        db,
                        k.clone(),
                        token.clone(),
                        Some(now + Duration::from_millis(ms)),
                    );
                }
                Value::Int(1)
            }
            ScriptKind::Extend => {
                let Some(ms) = args.get(1).and_then(int_arg) else {
                    return script_error("ERR value is not an integer or out of range");
                };
                if !ks.all_hold(db, keys, token) {
                    return Value::Int(0);
                }
                for k in keys {
                    // As the script: raise the remaining ttl, never lower it.
                    let left = ks
                        .stored(db, k)
                        .and_then(|e| e.expires)
                        .map(|at| at.saturating_duration_since(now));
                    if left.is_some_and(|left| {
                        left < Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                    }) {
                        ks.pexpire(now, db, k, ms);
                    }
                }
                Value::Int(1)
            }
            ScriptKind::Release => {
                let mut n = 0;
                for k in keys {
                    if ks.stored(db, k).is_some_and(|e| e.value == *token) {
                        ks.del(now, db, k);
                        n += 1;
                    }
                }
                Value::Int(n)
            }
            ScriptKind::FencedAcquire => {
                let Some(ms) = args
                    .get(1)
                    .and_then(int_arg)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n > 0)
                else {
                    return script_error("ERR invalid expire time in 'set' command");
                };
                let (locks, counters) = keys.split_at(keys.len() / 2);
                if ks.any_held_by_other(db, locks, token) {
                    return Value::Array(vec![Value::Int(0)]);
                }
                let mut top = 0;
                for k in counters {
                    match counter(ks, now, db, k) {
                        Ok(c) => top = top.max(c),
                        Err(e) => return e,
                    }
                }
                for k in locks {
                    ks.insert(
                        db,
                        k.clone(),
                        token.clone(),
                        Some(now + Duration::from_millis(ms)),
                    );
                }
                Value::Array(vec![Value::Int(1), Value::Int(top)])
            }
            ScriptKind::Fence => {
                let (locks, counters) = keys.split_at(keys.len() / 2);
                if !ks.all_hold(db, locks, token) {
                    return Value::Int(0);
                }
                let arg = args.get(1).cloned().unwrap_or_default();
                let Some(t) = exact(&arg).filter(|t| *t >= 1) else {
                    return Value::error(format!(
                        "ERR fencing token {} is not an integer below 2^53",
                        String::from_utf8_lossy(&arg)
                    ));
                };
                let mut raise = Vec::new();
                for k in counters {
                    match counter(ks, now, db, k) {
                        Ok(c) if t > c => raise.push(k.clone()),
                        Ok(_) => {}
                        Err(e) => return e,
                    }
                }
                for k in raise {
                    ks.insert(db, k, arg.clone(), None);
                }
                Value::Int(1)
            }
            ScriptKind::Reply(n) => Value::Int(n),
        }
    }
}

/// The largest integer the scripts compare exactly (their numbers are doubles): 2^53 - 1.
const EXACT: i64 = (1 << 53) - 1;

/// `text` as a decimal integer in `0..=2^53 - 1`, or `None`.
fn exact(text: &[u8]) -> Option<i64> {
    parse_int(text).filter(|n| (0..=EXACT).contains(n))
}

/// A fence counter as the scripts read it: 0 when unset, an error reply (as the script's) when
/// it is not an integer below 2^53.
fn counter(ks: &Keyspace, now: Instant, db: u32, key: &Bytes) -> Result<i64, Value> {
    match ks.entry(now, db, key) {
        None => Ok(0),
        Some(e) => exact(&e.value).ok_or_else(|| {
            Value::error(format!(
                "ERR fence counter {} holds {}, not an integer below 2^53",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&e.value)
            ))
        }),
    }
}
