//! A node's keys: numbered databases of byte-string values that expire on the caller's virtual
//! clock (every call takes `now`; nothing reads a real clock), with Redis's lazy expiry.

use bytes::Bytes;
use redlock_core::key_slot;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The value.
    pub(crate) value: Bytes,
    /// When it expires, if ever.
    pub(crate) expires: Option<Instant>,
}

impl Entry {
    /// Redis keeps a key until the clock passes its expiry time.
    pub(crate) fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now <= at)
    }
}

/// One key as [`Node::dump`](crate::Node::dump) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDump {
    /// The database.
    pub db: u32,
    /// The key.
    pub key: Bytes,
    /// Its value.
    pub value: Bytes,
    /// When it expires, if ever.
    pub expires: Option<Instant>,
}

/// Every database of one node. Expired keys stay stored until touched (lazy expiry) but read as
/// absent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keyspace {
    data: BTreeMap<(u32, Bytes), Entry>,
}

impl Keyspace {
    /// The live entry for `key` in `db` at `now`.
    pub(crate) fn entry(&self, now: Instant, db: u32, key: &[u8]) -> Option<&Entry> {
        self.data
            .get(&(db, Bytes::copy_from_slice(key)))
            .filter(|e| e.live(now))
    }

    /// The stored entry for `key` in `db`, expired or not (callers expire it first).
    pub(crate) fn stored(&self, db: u32, key: &Bytes) -> Option<&Entry> {
        self.data.get(&(db, key.clone()))
    }

    /// The value of `key` in `db` at `now`, if it exists.
    pub(crate) fn get(&self, now: Instant, db: u32, key: &[u8]) -> Option<Bytes> {
        self.entry(now, db, key).map(|e| e.value.clone())
    }

    /// The time `key` has left at `now`: `None` if it does not exist, `Some(None)` if it has no
    /// expiry.
    pub(crate) fn ttl(&self, now: Instant, db: u32, key: &[u8]) -> Option<Option<Duration>> {
        self.entry(now, db, key)
            .map(|e| e.expires.map(|at| at.saturating_duration_since(now)))
    }

    /// Stores `value` under `key` in `db`, replacing what was there.
    pub(crate) fn insert(&mut self, db: u32, key: Bytes, value: Bytes, expires: Option<Instant>) {
        self.data.insert((db, key), Entry { value, expires });
    }

    /// Deletes `key` from `db`; returns whether it existed at `now`.
    pub(crate) fn del(&mut self, now: Instant, db: u32, key: &[u8]) -> bool {
        let existed = self.entry(now, db, key).is_some();
        self.data.remove(&(db, Bytes::copy_from_slice(key)));
        existed
    }

    /// Drops `key` if it has expired at `now`, as Redis's lazy expiry does.
    pub(crate) fn expire_key(&mut self, now: Instant, db: u32, key: &Bytes) {
        let k = (db, key.clone());
        if self.data.get(&k).is_some_and(|e| !e.live(now)) {
            self.data.remove(&k);
        }
    }

    /// `PEXPIRE`: whether the key existed. A non-positive time deletes the key, as Redis does.
    pub(crate) fn pexpire(&mut self, now: Instant, db: u32, key: &Bytes, ms: i64) -> bool {
        self.expire_key(now, db, key);
        let Some(e) = self.data.get_mut(&(db, key.clone())) else {
            return false;
        };
        match u64::try_from(ms) {
            Ok(ms) if ms > 0 => e.expires = Some(now + Duration::from_millis(ms)),
            _ => {
                self.data.remove(&(db, key.clone()));
            }
        }
        true
    }

    /// Whether every key in `keys` holds `token` (the extend and fence scripts' condition).
    pub(crate) fn all_hold(&self, db: u32, keys: &[Bytes], token: &Bytes) -> bool {
        keys.iter()
            .all(|k| self.stored(db, k).is_some_and(|e| e.value == *token))
    }

    /// Whether some key in `keys` holds another token (the acquire scripts' refusal).
    pub(crate) fn any_held_by_other(&self, db: u32, keys: &[Bytes], token: &Bytes) -> bool {
        keys.iter()
            .any(|k| self.stored(db, k).is_some_and(|e| e.value != *token))
    }

    /// How many live keys `db` has at `now` (`DBSIZE`).
    pub(crate) fn len(&self, now: Instant, db: u32) -> usize {
        self.data
            .iter()
            .filter(|((d, _), e)| *d == db && e.live(now))
            .count()
    }

    /// Per database with live keys at `now`: how many keys, and how many of them expire.
    pub(crate) fn counts(&self, now: Instant) -> BTreeMap<u32, (usize, usize)> {
        let mut counts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
        for ((db, _), e) in &self.data {
            if e.live(now) {
                let c = counts.entry(*db).or_default();
                c.0 += 1;
                c.1 += usize::from(e.expires.is_some());
            }
        }
        counts
    }

    /// Deletes every key of `db` (`FLUSHDB`).
    pub(crate) fn flush_db(&mut self, db: u32) {
        self.data.retain(|(d, _), _| *d != db);
    }

    /// Deletes every key (`FLUSHALL`, or a restart without persistence).
    pub(crate) fn clear(&mut self) {
        self.data.clear();
    }

    /// The live keys of `db` at `now` whose cluster hash slot is `slot`, in key order.
    pub(crate) fn keys_in_slot(&self, now: Instant, db: u32, slot: u16) -> Vec<Bytes> {
        self.data
            .iter()
            .filter(|((d, k), e)| *d == db && e.live(now) && key_slot(k) == slot)
            .map(|((_, k), _)| k.clone())
            .collect()
    }

    /// Removes `key` from `db` and returns it, if it is live at `now`.
    pub(crate) fn take(&mut self, now: Instant, db: u32, key: &[u8]) -> Option<KeyDump> {
        let key = Bytes::copy_from_slice(key);
        let e = self.data.remove(&(db, key.clone()))?;
        e.live(now).then_some(KeyDump {
            db,
            key,
            value: e.value,
            expires: e.expires,
        })
    }

    /// Every live key at `now`, ordered by database and key.
    pub(crate) fn dump(&self, now: Instant) -> Vec<KeyDump> {
        self.data
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|((db, key), e)| KeyDump {
                db: *db,
                key: key.clone(),
                value: e.value.clone(),
                expires: e.expires,
            })
            .collect()
    }
}
