//! The native compare-and-delete and compare-and-set commands: `DELEX key [IFEQ|IFNE value]`,
//! `DELIFEQ key value`, and the condition `SET … IFEQ|IFNE cmp` checks, as Redis 8.4 and Valkey
//! 8.1 / 9.0 / 9.2 define them. Only a node whose [`Identity`](crate::Identity) has a command
//! runs it ([`crate::commands`] routes the others to the older server's error).

use crate::commands::Server;
use crate::identity::Defect;
use crate::value::Value;
use bytes::Bytes;
use std::time::Instant;

/// A condition on a key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `IFEQ v`: the key exists and holds exactly `v`.
    Equal(Bytes),
    /// `IFNE v`: the key does not hold `v` (for `SET`, a missing key passes; for `DELEX`, there
    /// is nothing to delete).
    NotEqual(Bytes),
}

impl Condition {
    /// Whether `current` (the key's live value, if any) passes.
    pub(crate) fn holds(&self, current: Option<&Bytes>) -> bool {
        match self {
            Condition::Equal(v) => current == Some(v),
            Condition::NotEqual(v) => current != Some(v),
        }
    }
}

/// The error for the digest conditions, which the model does not compute (XXH3).
pub(crate) const NO_DIGESTS: &str = "ERR the model does not implement IFDEQ/IFDNE (value digests)";

impl Server {
    /// `DELEX key [IFEQ|IFNE value]` on a node that has it: `:1` deleted, `:0` not (missing key
    /// or condition false). Redis deletes unconditionally without a condition; Valkey requires
    /// one.
    pub(crate) fn delex(&mut self, now: Instant, db: u32, argv: &[Bytes]) -> Value {
        let condition = match argv {
            [_] if self.identity.delex_condition_optional() => None,
            [_, cond, value] => match cond.to_ascii_uppercase().as_slice() {
                b"IFEQ" => Some(Condition::Equal(value.clone())),
                b"IFNE" => Some(Condition::NotEqual(value.clone())),
                b"IFDEQ" | b"IFDNE" if self.identity.delex_condition_optional() => {
                    return Value::error(NO_DIGESTS)
                }
                _ => return Value::error("ERR syntax error"),
            },
            _ if self.identity.delex_condition_optional() => {
                return Value::error("ERR syntax error")
            }
            _ => return Value::error("ERR wrong number of arguments for 'delex' command"),
        };
        self.natives.deletes += 1;
        let key = &argv[0];
        let deletes = match (&condition, self.identity.defect) {
            (None, _) => true,
            (Some(_), Some(Defect::DeleteIgnoresValue)) => true,
            (Some(c), _) => {
                let current = self.keys.get(now, db, key);
                current.is_some() && c.holds(current.as_ref())
            }
        };
        Value::Int(i64::from(deletes && self.keys.del(now, db, key)))
    }

    /// `DELIFEQ key value` on a node that has it: `:1` when the key held `value` and is gone,
    /// else `:0`.
    pub(crate) fn delifeq(&mut self, now: Instant, db: u32, key: &Bytes, value: &Bytes) -> Value {
        self.natives.deletes += 1;
        let holds = self.identity.defect == Some(Defect::DeleteIgnoresValue)
            || self.keys.get(now, db, key).as_ref() == Some(value);
        Value::Int(i64::from(holds && self.keys.del(now, db, key)))
    }

    /// Whether `SET`'s `condition` lets it write over `current` (counting the native set).
    pub(crate) fn set_condition_holds(
        &mut self,
        condition: &Condition,
        current: Option<&Bytes>,
    ) -> bool {
        self.natives.sets += 1;
        self.identity.defect == Some(Defect::SetIgnoresValue) || condition.holds(current)
    }
}

/// How many native commands a node ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NativeCounts {
    /// `DELEX` and `DELIFEQ`.
    pub(crate) deletes: u64,
    /// `SET` with `IFEQ` or `IFNE`.
    pub(crate) sets: u64,
}

#[cfg(test)]
mod tests {
    use crate::identity::{Defect, Identity};
    use crate::node::Node;
    use crate::session::Session;
    use crate::value::Value;
    use bytes::Bytes;
    use std::time::{Duration, Instant};

    struct Model {
        node: Node,
        session: Session,
        now: Instant,
    }

    impl Model {
        fn new(identity: Identity) -> Model {
            let now = Instant::now();
            let mut node = Node::new(now, 0);
            node.set_identity(identity);
            let session = node.connect().expect("up");
            Model { node, session, now }
        }

        fn run(&mut self, args: &[&str]) -> Value {
            let args: Vec<Bytes> = args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            self.node.execute(self.now, &mut self.session, &args)
        }

        fn get(&self, key: &str) -> Option<Bytes> {
            self.node.get(self.now, 0, key.as_bytes())
        }

        fn pttl(&self, key: &str) -> Option<Option<Duration>> {
            self.node.ttl(self.now, 0, key.as_bytes())
        }
    }

    fn err(r: &Value, prefix: &str) -> bool {
        matches!(r, Value::Error(e) if e.starts_with(prefix))
    }

    fn bulk(s: &str) -> Value {
        Value::bulk(s)
    }

    #[test]
    fn an_older_server_refuses_the_native_commands_as_unknown() {
        for old in [Identity::REDIS_7_2, Identity::redis(8, 2, 1)] {
            let mut m = Model::new(old);
            m.run(&["SET", "k", "t"]);
            let r = m.run(&["DELEX", "k", "IFEQ", "t"]);
            assert!(err(&r, "ERR unknown command 'DELEX'"), "{r:?}");
            let r = m.run(&["DELIFEQ", "k", "t"]);
            assert!(err(&r, "ERR unknown command 'DELIFEQ'"), "{r:?}");
            let r = m.run(&["SET", "k", "u", "IFEQ", "t", "PX", "100"]);
            assert_eq!(r, Value::error("ERR syntax error"));
            assert_eq!(m.get("k"), Some(Bytes::from_static(b"t")), "{old}");
        }
        let mut m = Model::new(Identity::VALKEY_8_1);
        let r = m.run(&["DELIFEQ", "k", "t"]);
        assert!(err(&r, "ERR unknown command"), "{r:?}");
        let r = m.run(&["DELEX", "k", "IFEQ", "t"]);
        assert!(err(&r, "ERR unknown command"), "{r:?}");
        // Valkey has no SET IFNE, Redis 8.4 no DELIFEQ, a renamed DELEX is unknown.
        let r = m.run(&["SET", "k", "u", "IFNE", "t"]);
        assert_eq!(r, Value::error("ERR syntax error"));
        let r = Model::new(Identity::REDIS_8_4).run(&["DELIFEQ", "k", "t"]);
        assert!(err(&r, "ERR unknown command"), "{r:?}");
        let r = Model::new(Identity::REDIS_8_4.renamed()).run(&["DELEX", "k", "IFEQ", "t"]);
        assert!(err(&r, "ERR unknown command"), "{r:?}");
    }

    #[test]
    fn delex_deletes_only_a_key_holding_the_value() {
        for server in [Identity::REDIS_8_4, Identity::VALKEY_9_2] {
            let mut m = Model::new(server);
            assert_eq!(m.run(&["DELEX", "k", "IFEQ", "t"]), Value::Int(0));
            m.run(&["SET", "k", "other", "PX", "100"]);
            assert_eq!(m.run(&["DELEX", "k", "IFEQ", "t"]), Value::Int(0));
            assert_eq!(m.get("k"), Some(Bytes::from_static(b"other")));
            assert_eq!(m.run(&["delex", "k", "ifeq", "other"]), Value::Int(1));
            assert_eq!(m.get("k"), None);
            m.run(&["SET", "k", "t"]);
            assert_eq!(m.run(&["DELEX", "k", "IFNE", "t"]), Value::Int(0));
            assert_eq!(m.run(&["DELEX", "k", "IFNE", "u"]), Value::Int(1));
            assert_eq!(m.run(&["DELEX", "k", "IFNE", "u"]), Value::Int(0));
            // An expired key is not there.
            m.run(&["SET", "k", "t", "PX", "10"]);
            m.now += Duration::from_millis(11);
            assert_eq!(m.run(&["DELEX", "k", "IFEQ", "t"]), Value::Int(0));
            assert_eq!(
                m.run(&["DELEX", "k", "IFXX", "t"]),
                Value::error("ERR syntax error")
            );
            assert_eq!(m.node.native_deletes(), 7, "{server}");
        }
        // Redis deletes without a condition; Valkey requires one.
        let mut m = Model::new(Identity::REDIS_8_4);
        m.run(&["SET", "k", "t"]);
        assert_eq!(m.run(&["DELEX", "k"]), Value::Int(1));
        assert_eq!(
            m.run(&["DELEX", "k", "IFEQ"]),
            Value::error("ERR syntax error")
        );
        let r = Model::new(Identity::VALKEY_9_2).run(&["DELEX", "k"]);
        assert!(err(&r, "ERR wrong number of arguments"), "{r:?}");
    }

    #[test]
    fn delifeq_deletes_only_a_key_holding_the_value() {
        for server in [Identity::VALKEY_9_0, Identity::VALKEY_9_2] {
            let mut m = Model::new(server);
            assert_eq!(m.run(&["DELIFEQ", "k", "t"]), Value::Int(0));
            m.run(&["SET", "k", "other"]);
            assert_eq!(m.run(&["DELIFEQ", "k", "t"]), Value::Int(0));
            assert_eq!(m.get("k"), Some(Bytes::from_static(b"other")));
            assert_eq!(m.run(&["DELIFEQ", "k", "other"]), Value::Int(1));
            assert_eq!(m.run(&["DELIFEQ", "k", "other"]), Value::Int(0));
            let r = m.run(&["DELIFEQ", "k"]);
            assert!(err(&r, "ERR wrong number of arguments"), "{r:?}");
        }
    }

    #[test]
    fn set_ifeq_sets_only_a_key_holding_the_value() {
        let ms = Duration::from_millis;
        for server in [
            Identity::REDIS_8_4,
            Identity::VALKEY_8_1,
            Identity::VALKEY_9_0,
        ] {
            let mut m = Model::new(server);
            // A missing key is not created.
            assert_eq!(
                m.run(&["SET", "k", "t", "IFEQ", "t", "PX", "5000"]),
                Value::Nil
            );
            assert_eq!(m.get("k"), None);
            m.run(&["SET", "k", "t", "PX", "100"]);
            // Another value: nothing changes, value or ttl.
            assert_eq!(
                m.run(&["SET", "k", "u", "IFEQ", "u", "PX", "5000"]),
                Value::Nil
            );
            assert_eq!(m.get("k"), Some(Bytes::from_static(b"t")));
            assert_eq!(m.pttl("k"), Some(Some(ms(100))));
            // The value it holds: set, with the new ttl.
            assert_eq!(
                m.run(&["SET", "k", "t", "ifeq", "t", "PX", "5000"]),
                Value::ok()
            );
            assert_eq!(m.get("k"), Some(Bytes::from_static(b"t")));
            assert_eq!(m.pttl("k"), Some(Some(ms(5000))));
            // GET replies the old value whether or not it set.
            assert_eq!(m.run(&["SET", "k", "v", "IFEQ", "x", "GET"]), bulk("t"));
            assert_eq!(m.run(&["SET", "k", "v", "IFEQ", "t", "GET"]), bulk("t"));
            assert_eq!(
                m.pttl("k"),
                Some(None),
                "a SET without expiry drops the ttl"
            );
            // IFEQ goes with neither NX nor XX, and needs its value.
            for bad in [
                &["SET", "k", "v", "NX", "IFEQ", "v"][..],
                &["SET", "k", "v", "IFEQ", "v", "XX"],
                &["SET", "k", "v", "IFEQ"],
            ] {
                assert_eq!(m.run(bad), Value::error("ERR syntax error"), "{bad:?}");
            }
            assert_eq!(m.node.native_sets(), 5, "{server}");
        }
        // Redis 8.4's IFNE: sets unless the key holds the value; a missing key is created.
        let mut m = Model::new(Identity::REDIS_8_4);
        assert_eq!(m.run(&["SET", "k", "t", "IFNE", "x"]), Value::ok());
        assert_eq!(m.run(&["SET", "k", "u", "IFNE", "t"]), Value::Nil);
        assert_eq!(m.run(&["SET", "k", "u", "IFNE", "x"]), Value::ok());
        assert_eq!(m.get("k"), Some(Bytes::from_static(b"u")));
    }

    #[test]
    fn info_and_hello_name_the_server() {
        let info = |identity: Identity| {
            let mut m = Model::new(identity);
            match m.run(&["INFO", "server"]) {
                Value::Verbatim(text) => String::from_utf8_lossy(&text).into_owned(),
                other => panic!("{other:?}"),
            }
        };
        let redis = info(Identity::REDIS_8_4);
        assert!(redis.contains("\r\nredis_version:8.4.0\r\n"), "{redis}");
        assert!(!redis.contains("server_name"), "{redis}");
        let valkey = info(Identity::VALKEY_9_0);
        assert!(
            valkey.contains(
                "\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.0.0\r\n"
            ),
            "{valkey}"
        );
        let mut m = Model::new(Identity::VALKEY_8_1);
        let Value::Map(hello) = m.run(&["HELLO", "3"]) else {
            panic!("HELLO replies a map")
        };
        assert!(hello.contains(&(bulk("server"), bulk("valkey"))));
        assert!(hello.contains(&(bulk("version"), bulk("8.1.1"))));
    }

    #[test]
    fn defects_ignore_the_value() {
        let mut m = Model::new(Identity::VALKEY_9_2.with_defect(Defect::DeleteIgnoresValue));
        m.run(&["SET", "a", "other"]);
        m.run(&["SET", "b", "other"]);
        assert_eq!(m.run(&["DELEX", "a", "IFEQ", "t"]), Value::Int(1));
        assert_eq!(m.run(&["DELIFEQ", "b", "t"]), Value::Int(1));
        assert_eq!(m.run(&["DELIFEQ", "b", "t"]), Value::Int(0), "nothing left");
        let mut m = Model::new(Identity::REDIS_8_4.with_defect(Defect::SetIgnoresValue));
        m.run(&["SET", "a", "other"]);
        assert_eq!(m.run(&["SET", "a", "t", "IFEQ", "t"]), Value::ok());
        assert_eq!(m.run(&["SET", "b", "t", "IFEQ", "t"]), Value::ok());
        assert_eq!(m.get("b"), Some(Bytes::from_static(b"t")));
    }
}
