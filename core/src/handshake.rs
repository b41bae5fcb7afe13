//! What a connection sends before any lock request (credentials, protocol, database, client
//! name), and the `INFO server` fields restart-aware voting reads back.

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
    pub(crate) fn parse(text: &[u8]) -> Option<ServerInfo> {
        let text = String::from_utf8_lossy(text);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        Some(ServerInfo {
            run_id: field("run_id").filter(|r| !r.is_empty())?.to_string(),
            uptime_secs: field("uptime_in_seconds")?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_needs_both_fields() {
        let info = ServerInfo::parse(b"# Server\r\nrun_id:abc\r\nuptime_in_seconds:12\r\n");
        assert_eq!(
            info,
            Some(ServerInfo {
                run_id: "abc".into(),
                uptime_secs: 12
            })
        );
        assert_eq!(ServerInfo::parse(b"run_id:abc\r\n"), None);
        assert_eq!(
            ServerInfo::parse(b"run_id:abc\r\nuptime_in_seconds:-1\r\n"),
            None
        );
        assert_eq!(
            ServerInfo::parse(b"run_id:\r\nuptime_in_seconds:1\r\n"),
            None
        );
    }
}
