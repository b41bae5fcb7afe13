//! A node's script cache, as Redis keeps it (empty at start and after a restart or
//! `SCRIPT FLUSH`, filled by `EVAL` and `SCRIPT LOAD`), and the scripts the model knows how to
//! run, by SHA-1.

use crate::script::ScriptKind;
use bytes::Bytes;
use redlock_core::{script_sha, ACQUIRE, EXTEND, FENCE, FENCED_ACQUIRE, RELEASE};
use std::collections::{BTreeMap, HashMap};

/// Loaded scripts and known semantics.
#[derive(Debug, Clone)]
pub(crate) struct ScriptCache {
    /// Loaded scripts: SHA-1 → source.
    loaded: BTreeMap<String, Bytes>,
    /// Scripts the model knows how to run: SHA-1 → semantics.
    known: HashMap<String, ScriptKind>,
}

impl ScriptCache {
    /// An empty cache that knows the engine's default scripts.
    pub(crate) fn new() -> ScriptCache {
        let mut cache = ScriptCache {
            loaded: BTreeMap::new(),
            known: HashMap::new(),
        };
        cache.learn(ACQUIRE, ScriptKind::Acquire);
        cache.learn(EXTEND, ScriptKind::Extend);
        cache.learn(RELEASE, ScriptKind::Release);
        cache.learn(FENCED_ACQUIRE, ScriptKind::FencedAcquire);
        cache.learn(FENCE, ScriptKind::Fence);
        cache
    }

    /// Runs `source` with `kind`'s semantics from now on (it is not loaded).
    pub(crate) fn learn(&mut self, source: &str, kind: ScriptKind) {
        self.known.insert(sha_of(source.as_bytes()), kind);
    }

    /// Loads `source`, as `SCRIPT LOAD` does; returns its SHA-1.
    pub(crate) fn load(&mut self, source: &str) -> String {
        let sha = sha_of(source.as_bytes());
        self.loaded
            .insert(sha.clone(), Bytes::copy_from_slice(source.as_bytes()));
        sha
    }

    /// Whether the script with this SHA-1 (any case) is loaded.
    pub(crate) fn is_loaded(&self, sha: &str) -> bool {
        self.loaded.contains_key(&sha.to_ascii_lowercase())
    }

    /// Forgets every loaded script (`SCRIPT FLUSH`, a restart).
    pub(crate) fn flush(&mut self) {
        self.loaded.clear();
    }

    /// The semantics of the script with this SHA-1 (lower case), loaded or not.
    pub(crate) fn kind_of_sha(&self, sha: &str) -> Option<ScriptKind> {
        self.known.get(sha).copied()
    }

    /// The semantics of the script an `EVAL` (source) or `EVALSHA` (SHA-1, any case) names.
    pub(crate) fn kind_named_by(&self, evalsha: bool, script: &[u8]) -> Option<ScriptKind> {
        if evalsha {
            self.kind_of_sha(&String::from_utf8_lossy(script).to_ascii_lowercase())
        } else {
            self.kind_of_sha(&sha_of(script))
        }
    }
}

/// [`script_sha`], remembered per thread: simulations hash the same few sources millions of
/// times.
fn sha_of(source: &[u8]) -> String {
    thread_local! {
        static SHAS: std::cell::RefCell<HashMap<Vec<u8>, String>> =
            std::cell::RefCell::new(HashMap::new());
    }
    SHAS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(sha) = m.get(source) {
            return sha.clone();
        }
        let sha = script_sha(&String::from_utf8_lossy(source));
        if m.len() >= 256 {
            m.clear();
        }
        m.insert(source.to_vec(), sha.clone());
        sha
    })
}
