//! Which server a model node claims to be (Redis or Valkey, and its version): what `INFO server`
//! and `HELLO` report, and so which native compare-and-set / compare-and-delete commands it
//! runs. A node without them answers as an older server does: `-ERR unknown command` for
//! `DELEX` / `DELIFEQ`, `-ERR syntax error` for `SET … IFEQ`.

use std::fmt;

/// The product a node claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    /// Redis: `INFO server` names `redis_version` and no `server_name`.
    Redis,
    /// Valkey: `server_name:valkey` and `valkey_version` (its `redis_version` is a frozen
    /// 7.2.4).
    Valkey,
}

/// A deliberate bug in a node's native commands, so tests can show the checkers catch one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Defect {
    /// `DELEX key IFEQ|IFNE value` and `DELIFEQ key value` delete the key whatever it holds.
    DeleteIgnoresValue,
    /// `SET key value IFEQ|IFNE cmp` sets the key whatever it holds (creating it if missing).
    SetIgnoresValue,
}

/// The server a model node claims to be, and how its native commands behave.
///
/// What each version has (as the Redis and Valkey command docs say): `DELEX key [IFEQ|IFNE
/// value]` from Redis 8.4 and Valkey 9.2 (Valkey requires the condition); `DELIFEQ key value`
/// from Valkey 9.0; `SET … IFEQ cmp` from Redis 8.4 and Valkey 8.1, and `SET … IFNE cmp` from
/// Redis 8.4. The digest conditions (`IFDEQ`, `IFDNE`) are not modelled: they answer an error
/// saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Redis or Valkey.
    pub product: Product,
    /// `major.minor.patch` of the product.
    pub version: (u32, u32, u32),
    /// `DELEX` and `DELIFEQ` renamed away (`rename-command DELEX ""`): `INFO` still names a
    /// version that has them, but they answer `-ERR unknown command`, as on an older server.
    pub renamed: bool,
    /// A deliberate bug, if any.
    pub defect: Option<Defect>,
}

impl Identity {
    /// Redis 7.2.4: no native commands (the model's default).
    pub const REDIS_7_2: Identity = Identity::redis(7, 2, 4);
    /// Redis 8.4.0: `DELEX`, `SET … IFEQ|IFNE`.
    pub const REDIS_8_4: Identity = Identity::redis(8, 4, 0);
    /// Valkey 8.1.1: `SET … IFEQ` only.
    pub const VALKEY_8_1: Identity = Identity::valkey(8, 1, 1);
    /// Valkey 9.0.0: `DELIFEQ`, `SET … IFEQ`.
    pub const VALKEY_9_0: Identity = Identity::valkey(9, 0, 0);
    /// Valkey 9.2.0: `DELEX … IFEQ|IFNE`, `DELIFEQ`, `SET … IFEQ`.
    pub const VALKEY_9_2: Identity = Identity::valkey(9, 2, 0);
    /// One of each: every native form the core sends, and a server with none.
    pub const MIX: [Identity; 5] = [
        Identity::REDIS_7_2,
        Identity::REDIS_8_4,
        Identity::VALKEY_8_1,
        Identity::VALKEY_9_0,
        Identity::VALKEY_9_2,
    ];

    /// Redis `major.minor.patch`, configured as shipped.
    pub const fn redis(major: u32, minor: u32, patch: u32) -> Identity {
        Identity {
            product: Product::Redis,
            version: (major, minor, patch),
            renamed: false,
            defect: None,
        }
    }

    /// Valkey `major.minor.patch`, configured as shipped.
    pub const fn valkey(major: u32, minor: u32, patch: u32) -> Identity {
        Identity {
            product: Product::Valkey,
            ..Identity::redis(major, minor, patch)
        }
    }

    /// This identity with `DELEX` and `DELIFEQ` renamed away (see [`Identity::renamed`]).
    pub const fn renamed(self) -> Identity {
        Identity {
            renamed: true,
            ..self
        }
    }

    /// This identity with a deliberate bug.
    pub const fn with_defect(self, defect: Defect) -> Identity {
        Identity {
            defect: Some(defect),
            ..self
        }
    }

    fn at_least(&self, redis: Option<(u32, u32)>, valkey: Option<(u32, u32)>) -> bool {
        let since = match self.product {
            Product::Redis => redis,
            Product::Valkey => valkey,
        };
        since.is_some_and(|(major, minor)| self.version >= (major, minor, 0))
    }

    /// Whether the node runs `DELEX` (Redis 8.4, Valkey 9.2; not when renamed away).
    pub fn has_delex(&self) -> bool {
        !self.renamed && self.at_least(Some((8, 4)), Some((9, 2)))
    }

    /// Whether `DELEX` may go without a condition (Redis: it then deletes as `DEL` does).
    pub(crate) fn delex_condition_optional(&self) -> bool {
        self.product == Product::Redis
    }

    /// Whether the node runs `DELIFEQ` (Valkey 9.0; not when renamed away).
    pub fn has_delifeq(&self) -> bool {
        !self.renamed && self.at_least(None, Some((9, 0)))
    }

    /// Whether `SET` takes `IFEQ` (Redis 8.4, Valkey 8.1).
    pub fn has_set_ifeq(&self) -> bool {
        self.at_least(Some((8, 4)), Some((8, 1)))
    }

    /// Whether `SET` takes `IFNE` (Redis 8.4).
    pub fn has_set_ifne(&self) -> bool {
        self.at_least(Some((8, 4)), None)
    }

    /// The version as `major.minor.patch`.
    pub fn version_string(&self) -> String {
        let (major, minor, patch) = self.version;
        format!("{major}.{minor}.{patch}")
    }

    /// The `INFO server` lines naming the server, each ending in CRLF.
    pub(crate) fn info_lines(&self) -> String {
        match self.product {
            Product::Redis => format!("redis_version:{}\r\n", self.version_string()),
            Product::Valkey => format!(
                "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:{}\r\n",
                self.version_string()
            ),
        }
    }

    /// `HELLO`'s `server` field.
    pub(crate) fn hello_server(&self) -> &'static str {
        match self.product {
            Product::Redis => "redis",
            Product::Valkey => "valkey",
        }
    }
}

impl Default for Identity {
    /// [`Identity::REDIS_7_2`].
    fn default() -> Identity {
        Identity::REDIS_7_2
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let product = match self.product {
            Product::Redis => "Redis",
            Product::Valkey => "Valkey",
        };
        write!(f, "{product} {}", self.version_string())?;
        if self.renamed {
            f.write_str(" (DELEX/DELIFEQ renamed away)")?;
        }
        if let Some(d) = self.defect {
            write!(f, " (defect: {d:?})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_have_the_commands_their_docs_name() {
        let has = |i: Identity| (i.has_delex(), i.has_delifeq(), i.has_set_ifeq());
        assert_eq!(has(Identity::REDIS_7_2), (false, false, false));
        assert_eq!(has(Identity::redis(8, 2, 3)), (false, false, false));
        assert_eq!(has(Identity::REDIS_8_4), (true, false, true));
        assert_eq!(has(Identity::redis(10, 0, 0)), (true, false, true));
        assert_eq!(has(Identity::valkey(8, 0, 2)), (false, false, false));
        assert_eq!(has(Identity::VALKEY_8_1), (false, false, true));
        assert_eq!(has(Identity::VALKEY_9_0), (false, true, true));
        assert_eq!(has(Identity::VALKEY_9_2), (true, true, true));
        assert_eq!(has(Identity::VALKEY_9_2.renamed()), (false, false, true));
        assert!(Identity::REDIS_8_4.has_set_ifne() && !Identity::VALKEY_9_2.has_set_ifne());
        assert_eq!(Identity::REDIS_8_4.to_string(), "Redis 8.4.0");
    }
}
