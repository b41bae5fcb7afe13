//! What a connection sends before any lock request (credentials, protocol, database, client
//! name), and what `INFO server` tells back: the fields restart-aware voting reads, and which
//! server (Redis or Valkey, and its version) answers, hence which native commands it has.

use crate::config::{NodeConfig, Options};
use crate::resp::Protocol;
use bytes::Bytes;

/// The handshake commands for `node`, in the order they are sent.
pub(crate) fn commands(node: &NodeConfig, options: &Options) -> Vec<Vec<Bytes>> {
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let mut cmds = Vec::new();
    match node.protocol.unwrap_or(options.protocol) {
        Protocol::Resp3 => {
            let mut hello = vec![b("HELLO"), b("3")];
            if let Some(pass) = &node.password {
                hello.extend([
                    b("AUTH"),
                    b(node.username.as_deref().unwrap_or("default")),
                    b(pass),
                ]);
            }
            if let Some(name) = &options.client_name {
                hello.extend([b("SETNAME"), b(name)]);
            }
            cmds.push(hello);
        }
        Protocol::Resp2 => {
            if let Some(pass) = &node.password {
                let mut auth = vec![b("AUTH")];
                auth.extend(node.username.as_deref().map(b));
                auth.push(b(pass));
                cmds.push(auth);
            }
            if let Some(name) = &options.client_name {
                cmds.push(vec![b("CLIENT"), b("SETNAME"), b(name)]);
            }
        }
    }
    if node.db != 0 {
        cmds.push(vec![b("SELECT"), b(&node.db.to_string())]);
    }
    // No SCRIPT LOAD: a user whose ACL forbids scripting can still connect (and lock through
    // SET NX), and scripts reach the node's cache on first use (EVALSHA, then EVAL after NOSCRIPT).
    cmds
}

/// The `INFO server` fields restart-aware voting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerInfo {
    /// Random per server process: a new one means the node restarted.
    pub(crate) run_id: String,
    /// Seconds since the server process started.
    pub(crate) uptime_secs: u64,
}

impl ServerInfo {
    /// Reads `run_id` and `uptime_in_seconds` from an `INFO server` reply; `None` when either is
    /// missing or malformed.
    pub(crate) fn parse(text: &str) -> Option<ServerInfo> {
        Some(ServerInfo {
            run_id: field(text, "run_id").filter(|r| !r.is_empty())?.to_string(),
            uptime_secs: field(text, "uptime_in_seconds")?.parse().ok()?,
        })
    }
}

/// The value of `name` in an `INFO` reply's `name:value` lines.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Which product a server is, as its `INFO server` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Product {
    /// Redis (`redis_version`, no `server_name`).
    Redis,
    /// Valkey (`server_name:valkey`, `valkey_version`; its `redis_version` is a frozen 7.2.4).
    Valkey,
}

/// A server's product and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) product: Product,
    /// `major.minor.patch`.
    pub(crate) version: (u32, u32, u32),
}

impl Server {
    /// The product and version an `INFO server` reply names; `None` when it names none.
    pub(crate) fn parse(text: &str) -> Option<Server> {
        let (product, version) = match field(text, "server_name") {
            Some(name) if name.eq_ignore_ascii_case("valkey") => {
                (Product::Valkey, field(text, "valkey_version")?)
            }
            Some(_) => return None,
            None => (Product::Redis, field(text, "redis_version")?),
        };
        let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
        let mut next = || parts.next().flatten();
        let version = (next()?, next()?, next().unwrap_or(0));
        Some(Server { product, version })
    }

    /// The compare-and-delete and compare-and-set commands this server has.
    pub(crate) fn natives(self) -> Natives {
        let at_least = |major, minor| self.version >= (major, minor, 0);
        match self.product {
            Product::Redis => Natives {
                delex: at_least(8, 4),
                delifeq: false,
                set_ifeq: at_least(8, 4),
            },
            Product::Valkey => Natives {
                delex: at_least(9, 2),
                delifeq: at_least(9, 0),
                set_ifeq: at_least(8, 1),
            },
        }
    }
}

/// The native commands a node has that can stand in for a lock script on one key. All off for
/// a server that did not say what it is (or refused `INFO`): scripts then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Natives {
    /// `DELEX key IFEQ token` (Redis 8.4, Valkey 9.2).
    pub(crate) delex: bool,
    /// `DELIFEQ key token` (Valkey 9.0).
    pub(crate) delifeq: bool,
    /// `SET key token IFEQ token PX ttl` (Redis 8.4, Valkey 8.1).
    pub(crate) set_ifeq: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn natives(info: &str) -> Option<Natives> {
        Server::parse(info).map(Server::natives)
    }

    #[test]
    fn the_server_and_its_native_commands_come_from_info() {
        let redis = |v: &str| natives(&format!("# Server\r\nredis_version:{v}\r\nrun_id:x\r\n"));
        let valkey = |v: &str| {
            natives(&format!(
                "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:{v}\r\n"
            ))
        };
        assert_eq!(redis("7.0.15"), Some(Natives::default()));
        let all_but_delifeq = Natives {
            delex: true,
            delifeq: false,
            set_ifeq: true,
        };
        assert_eq!(redis("8.4.0"), Some(all_but_delifeq));
        assert_eq!(redis("10.0"), Some(all_but_delifeq));
        assert_eq!(redis("8.2.3"), Some(Natives::default()));
        assert_eq!(valkey("8.0.2"), Some(Natives::default()));
        let set_only = Natives {
            set_ifeq: true,
            ..Natives::default()
        };
        assert_eq!(valkey("8.1.1"), Some(set_only));
        assert_eq!(
            valkey("9.0.0"),
            Some(Natives {
                delifeq: true,
                ..set_only
            })
        );
        assert_eq!(
            valkey("9.2.0"),
            Some(Natives {
                delex: true,
                delifeq: true,
                set_ifeq: true
            })
        );
        // Valkey without its own version, an unknown product, no version: unknown.
        assert_eq!(
            natives("redis_version:7.2.4\r\nserver_name:valkey\r\n"),
            None
        );
        assert_eq!(
            natives("server_name:keydb\r\nredis_version:9.0.0\r\n"),
            None
        );
        assert_eq!(natives("run_id:abc\r\n"), None);
        assert_eq!(natives("redis_version:banana\r\n"), None);
    }

    #[test]
    fn info_needs_both_fields() {
        let info = ServerInfo::parse("# Server\r\nrun_id:abc\r\nuptime_in_seconds:12\r\n");
        assert_eq!(
            info,
            Some(ServerInfo {
                run_id: "abc".into(),
                uptime_secs: 12
            })
        );
        assert_eq!(ServerInfo::parse("run_id:abc\r\n"), None);
        assert_eq!(
            ServerInfo::parse("run_id:abc\r\nuptime_in_seconds:-1\r\n"),
            None
        );
        assert_eq!(
            ServerInfo::parse("run_id:\r\nuptime_in_seconds:1\r\n"),
            None
        );
    }
}
