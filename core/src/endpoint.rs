//! Where a cluster node listens: a host and a port, as `CLUSTER SLOTS` and redirects name it.
#![cfg_attr(not(test), allow(dead_code))] // wired into the engine by the cluster routing change

use std::fmt;
use std::sync::Arc;

/// A host and port a cluster names for one of its nodes. The host is kept as the cluster wrote
/// it (an IP address or a hostname, IPv6 without brackets); cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    host: Arc<str>,
    port: u16,
}

impl Endpoint {
    /// The endpoint `host:port`. `host` is an IP address or hostname; an IPv6 address is given
    /// without brackets (`::1`), as Redis writes it in replies.
    pub fn new(host: impl Into<Arc<str>>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// The host, as given (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `host:port`, with an IPv6 host in brackets (`[::1]:7000`) so the port stays readable.
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
    fn display() {
        assert_eq!(
            Endpoint::new("127.0.0.1", 7000).to_string(),
            "127.0.0.1:7000"
        );
        assert_eq!(Endpoint::new("::1", 7000).to_string(), "[::1]:7000");
        assert_eq!(
            Endpoint::new("redis-0.example", 6379).to_string(),
            "redis-0.example:6379"
        );
    }

    #[test]
    fn accessors_and_equality() {
        let e = Endpoint::new(String::from("10.0.0.1"), 6380);
        assert_eq!((e.host(), e.port()), ("10.0.0.1", 6380));
        assert_eq!(e.clone(), Endpoint::new("10.0.0.1", 6380));
        assert_ne!(e, Endpoint::new("10.0.0.1", 6381));
    }
}
