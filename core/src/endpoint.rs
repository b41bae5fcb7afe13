//! A server's address as a cluster names it: a host (name or IP) and a port.

use std::fmt;
use std::sync::Arc;

/// Where a server listens, as `CLUSTER SLOTS` and `MOVED` / `ASK` redirects name it. The engine
/// hands one out with [`Event::Open`](crate::Event::Open) when it needs a connection to a server
/// that is not in the configuration (a cluster's shard primary).
///
/// ```
/// let shard = redlock_core::Endpoint::new("::1", 7002);
/// assert_eq!((shard.host(), shard.port()), ("::1", 7002));
/// assert_eq!(shard.to_string(), "[::1]:7002");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    host: Arc<str>,
    port: u16,
}

impl Endpoint {
    /// The server at `host` (a name or an IP address, IPv6 without brackets) and `port`.
    pub fn new(host: impl Into<Arc<str>>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// The host: a name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `host:port`, with an IPv6 host in brackets: `[::1]:7000`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_ipv6_in_brackets() {
        assert_eq!(
            Endpoint::new("127.0.0.1", 7000).to_string(),
            "127.0.0.1:7000"
        );
        assert_eq!(Endpoint::new("::1", 7000).to_string(), "[::1]:7000");
        assert_eq!(Endpoint::new("redis-0.local", 6379).host(), "redis-0.local");
    }
}
