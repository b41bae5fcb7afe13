//! Cluster routing on a member node: which keys a command names, and whether this node serves
//! it or answers `MOVED`, `ASK`, `TRYAGAIN`, `CROSSSLOT` or `CLUSTERDOWN`, as Redis's
//! `getNodeByQuery` decides.

use crate::cluster::ClusterView;
use crate::identity::Identity;
use crate::request::int_arg;
use crate::value::Value;
use bytes::Bytes;
use redlock_core::key_slot;

/// The error for keys of one command in different slots (Redis's exact text).
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The error for a multi-key command on a slot being migrated when only some keys are here.
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";

/// The error for a slot no node serves.
pub const CLUSTERDOWN: &str = "CLUSTERDOWN Hash slot not served";

/// The keys `name` (upper case) names in `argv`, for the commands the model runs, when the
/// argument count is one the command accepts (otherwise the command's own error comes first,
/// as in Redis). Empty for commands without keys (`PING`, `INFO`, `CLUSTER`…) and for
/// commands this node's `identity` does not have (they answer unknown command).
pub(crate) fn command_keys<'a>(name: &str, argv: &'a [Bytes], identity: Identity) -> &'a [Bytes] {
    let n = argv.len();
    match name {
        "GET" | "PTTL" | "TTL" if n == 1 => &argv[..1],
        "SET" if n >= 2 => &argv[..1],
        "PEXPIRE" | "EXPIRE" if n == 2 => &argv[..1],
        "DEL" | "EXISTS" if n >= 1 => argv,
        "DELEX" if identity.has_delex() && n >= 1 => &argv[..1],
        "DELIFEQ" if identity.has_delifeq() && n == 2 => &argv[..1],
        "EVAL" | "EVALSHA" if n >= 2 => match int_arg(&argv[1]).map(usize::try_from) {
            Some(Ok(k)) if k <= n - 2 => &argv[2..2 + k],
            _ => &[],
        },
        _ => &[],
    }
}

/// What a cluster member does with a command naming `keys`: `None` to run it here, or the
/// redirect / error to answer instead. `exists` says whether a key is live here (read without
/// touching it); `asking` whether the connection sent `ASKING` just before.
///
/// - Keys in different slots: `CROSSSLOT`. No keys: run here.
/// - A slot no one serves in this view: `CLUSTERDOWN`.
/// - A slot this node owns and migrates to T: run it if every key is here; `ASK slot T` if none
///   is; `TRYAGAIN` if some are.
/// - A slot another node owns, imported here, after `ASKING`: run it, unless several distinct
///   keys are named and one is missing (`TRYAGAIN`).
/// - Otherwise a slot another node owns: `MOVED slot owner`.
pub(crate) fn route(
    view: &ClusterView,
    keys: &[Bytes],
    asking: bool,
    exists: impl Fn(&Bytes) -> bool,
) -> Option<Value> {
    let first = keys.first()?;
    let slot = key_slot(first);
    let mut distinct = false;
    for k in &keys[1..] {
        if k != first {
            if key_slot(k) != slot {
                return Some(Value::error(CROSSSLOT));
            }
            distinct = true;
        }
    }
    let Some(owner) = view.owner(slot) else {
        return Some(Value::error(CLUSTERDOWN));
    };
    let migrating = view.owns(slot).then(|| view.migrating(slot)).flatten();
    let importing = (!view.owns(slot)).then(|| view.importing(slot)).flatten();
    let missing = if migrating.is_some() || importing.is_some() {
        keys.iter().filter(|k| !exists(k)).count()
    } else {
        0
    };
    if let Some(target) = migrating {
        return match missing {
            0 => None,
            m if m == keys.len() => Some(Value::error(format!("ASK {slot} {target}"))),
            _ => Some(Value::error(TRYAGAIN)),
        };
    }
    if importing.is_some() && asking {
        return (distinct && missing > 0).then(|| Value::error(TRYAGAIN));
    }
    (!view.owns(slot)).then(|| Value::error(format!("MOVED {slot} {owner}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ks: &[&str]) -> Vec<Bytes> {
        ks.iter()
            .map(|k| Bytes::copy_from_slice(k.as_bytes()))
            .collect()
    }

    #[test]
    fn keys_of_commands() {
        let id = Identity::default();
        let argv = keys(&["2", "a", "b", "tok"]);
        assert_eq!(
            command_keys("EVALSHA", &keys(&["sha", "2", "a", "b", "t"]), id),
            &keys(&["a", "b"])[..]
        );
        assert!(command_keys("EVAL", &keys(&["src", "3", "a"]), id).is_empty());
        assert!(command_keys("EVAL", &keys(&["src", "-1", "a"]), id).is_empty());
        assert_eq!(command_keys("DEL", &argv, id).len(), 4);
        assert!(
            command_keys("GET", &argv, id).is_empty(),
            "wrong arity: no routing"
        );
        assert!(
            command_keys("DELEX", &argv, id).is_empty(),
            "Redis 7.2 has no DELEX"
        );
        assert!(command_keys("PING", &argv, id).is_empty());
        assert_eq!(command_keys("SET", &argv, id), &argv[..1]);
    }

    #[test]
    fn decisions() {
        // "a" is in slot 15495, "b" in 3300, "{a}x" with "a".
        let mut v = ClusterView::even("me:1", &["me:1", "o:2"]);
        let all = |_: &Bytes| true;
        let none = |_: &Bytes| false;
        assert_eq!(route(&v, &[], false, all), None);
        assert_eq!(route(&v, &keys(&["b"]), false, all), None);
        assert_eq!(
            route(&v, &keys(&["a"]), false, all),
            Some(Value::error("MOVED 15495 o:2"))
        );
        assert_eq!(
            route(&v, &keys(&["a", "b"]), false, all),
            Some(Value::error(CROSSSLOT))
        );
        v.set_migrating(3300, Some("o:2"));
        assert_eq!(route(&v, &keys(&["b"]), false, all), None);
        assert_eq!(
            route(&v, &keys(&["b"]), false, none),
            Some(Value::error("ASK 3300 o:2"))
        );
        let only_b = |k: &Bytes| &k[..] == b"b";
        assert_eq!(
            route(&v, &keys(&["b", "{b}x"]), false, only_b),
            Some(Value::error(TRYAGAIN))
        );
        v.set_importing(15495, Some("o:2"));
        assert_eq!(
            route(&v, &keys(&["a"]), false, none),
            Some(Value::error("MOVED 15495 o:2")),
            "importing, without ASKING"
        );
        assert_eq!(route(&v, &keys(&["a"]), true, none), None);
        assert_eq!(
            route(&v, &keys(&["a", "a"]), true, none),
            None,
            "one distinct key"
        );
        assert_eq!(
            route(&v, &keys(&["a", "{a}x"]), true, |k: &Bytes| &k[..] == b"a"),
            Some(Value::error(TRYAGAIN))
        );
        v.clear_owner(3300..=3300);
        assert_eq!(
            route(&v, &keys(&["b"]), false, all),
            Some(Value::error(CLUSTERDOWN))
        );
    }
}
