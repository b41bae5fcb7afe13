//! A node as the adapters see it: where it is (TCP or a Unix socket), how to authenticate, and
//! how to secure the connection. The core's `NodeConfig` holds what the engine needs (the
//! handshake); this holds what the transport needs besides.

use crate::node_url::{parse_node, UrlError};
use redlock_core::{NodeConfig, Protocol};
use std::fmt;
use std::path::PathBuf;

/// The port a node's address is shown with when it has none (a Unix socket). The core's
/// `NodeConfig` always carries a port; this one is never connected to.
const UNIX_PLACEHOLDER_PORT: u16 = 6379;

/// Where a node listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A host name or IP address and a TCP port.
    Tcp {
        /// Host name or IP address (an IPv6 address without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix domain socket (`redis-server --unixsocket PATH`).
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
}

/// `host:port` (`[v6]:port`), or `unix:PATH`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix { path } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How to secure a node's connection with TLS (rustls; needs the `tls` cargo feature of the
/// adapter crate to connect).
///
/// The default checks the server's certificate against the system's root certificates (the
/// file named by `SSL_CERT_FILE` or the directory named by `SSL_CERT_DIR` when set, as
/// OpenSSL-based tools do) and the host name it was connected by (sent as SNI).
///
/// ```
/// use redlock_async::Tls;
/// let tls = Tls::default()
///     .ca_file("/etc/redis/ca.crt")
///     .client_auth("/etc/redis/client.crt", "/etc/redis/client.key");
/// assert!(!tls.danger_accept_invalid_certs);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Tls {
    /// Trust only the CA certificate(s) in this PEM file instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) and its private key (PEM), for servers that require
    /// client certificates (`tls-auth-clients yes`).
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// The name to check the certificate against and send as SNI, instead of the host connected
    /// to (needed for a Unix socket or a custom connector whose address is not a host name).
    pub server_name: Option<String>,
    /// Accepts any certificate: **no protection against an active attacker**. For test setups
    /// with throw-away certificates only (redis-rs spells it `#insecure` in the URL; so does
    /// this crate).
    pub danger_accept_invalid_certs: bool,
}

impl Tls {
    /// Trusts only the CA certificate(s) in the PEM file at `path`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Tls {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents the certificate chain in `cert` with the private key in `key` (both PEM).
    pub fn client_auth(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Tls {
        self.client_auth = Some((cert.into(), key.into()));
        self
    }

    /// Checks the certificate against `name` (and sends it as SNI) instead of the host.
    pub fn server_name(mut self, name: impl Into<String>) -> Tls {
        self.server_name = Some(name.into());
        self
    }

    /// Accepts any server certificate. Test setups only: an attacker on the path can read and
    /// change every request.
    pub fn danger_accept_invalid_certs(mut self) -> Tls {
        self.danger_accept_invalid_certs = true;
        self
    }
}

/// One Redis node: its address, credentials, database, protocol and TLS settings.
///
/// Built from a URL ([`Node::from_url`], or `str::parse`) or field by field; a password from a
/// secret store needs no percent-encoding here. Neither `Debug` nor `Display` shows the
/// password.
///
/// ```
/// use redlock_async::{Node, Tls};
/// let node = Node::tcp("redis-1.internal", 6380)
///     .with_auth(Some("locker"), "p@ss/w?rd#")
///     .with_db(2)
///     .with_tls(Tls::default());
/// assert_eq!(node.to_string(), "redis-1.internal:6380");
/// assert!(!format!("{node:?}").contains("p@ss"));
/// let unix: Node = "redis+unix:///run/redis.sock?db=1".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/run/redis.sock");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Node {
    /// Where it listens.
    pub address: Address,
    /// ACL user name; `None` with a password means the `default` user.
    pub username: Option<String>,
    /// Password, when the node requires one.
    pub password: Option<String>,
    /// Database number to `SELECT` (0 sends nothing).
    pub db: u32,
    /// The RESP version for this node; `None` for the client's `Options::protocol`.
    pub protocol: Option<Protocol>,
    /// TLS settings; `None` for a plaintext connection.
    pub tls: Option<Tls>,
    /// This node is a whole Redis Cluster (or Valkey Cluster), first reached at `address` (a
    /// seed): the client reads the slot map there and opens a connection to each shard
    /// primary, with this node's credentials and TLS settings. It counts as one Redlock node.
    pub cluster: bool,
    /// More seeds of the cluster, tried in turn after `address` when a seed cannot be reached.
    pub seeds: Vec<Address>,
}

impl Node {
    /// A node at `host:port` over plain TCP, no credentials, database 0.
    pub fn tcp(host: impl Into<String>, port: u16) -> Node {
        Node::at(Address::Tcp {
            host: host.into(),
            port,
        })
    }

    /// A node on the Unix socket at `path`, no credentials, database 0.
    pub fn unix(path: impl Into<PathBuf>) -> Node {
        Node::at(Address::Unix { path: path.into() })
    }

    fn at(address: Address) -> Node {
        Node {
            address,
            username: None,
            password: None,
            db: 0,
            protocol: None,
            tls: None,
            cluster: false,
            seeds: Vec::new(),
        }
    }

    /// A Redis Cluster (or Valkey Cluster) as one Redlock node, reached through the seeds
    /// `host:port` (at least one; the others are tried in turn when one cannot be reached).
    /// The client reads the slot map from a seed and sends each lock request to the primary
    /// of its keys' hash slot. Also `redis+cluster://host:port,host:port` as a URL.
    ///
    /// ```
    /// use redlock_async::Node;
    /// let node = Node::cluster([("10.0.0.1", 7000), ("10.0.0.2", 7000)]).unwrap();
    /// assert!(node.cluster);
    /// assert_eq!(node.to_string(), "10.0.0.1:7000");
    /// assert_eq!(node.seeds.len(), 1);
    /// assert!(Node::cluster(Vec::<(&str, u16)>::new()).is_none());
    /// ```
    pub fn cluster<H: Into<String>>(seeds: impl IntoIterator<Item = (H, u16)>) -> Option<Node> {
        let mut seeds = seeds.into_iter().map(|(host, port)| Address::Tcp {
            host: host.into(),
            port,
        });
        let mut node = Node::at(seeds.next()?);
        node.cluster = true;
        node.seeds = seeds.collect();
        Some(node)
    }

    /// Parses a node URL (see [`parse_node_url`](crate::parse_node_url) for the forms).
    pub fn from_url(url: &str) -> Result<Node, UrlError> {
        parse_node(url)
    }

    /// The node with `password` for the ACL user `username` (`None`: the `default` user).
    pub fn with_auth(mut self, username: Option<&str>, password: impl Into<String>) -> Node {
        self.username = username.map(str::to_string);
        self.password = Some(password.into());
        self
    }

    /// The node with database `db` selected on every connection.
    pub fn with_db(mut self, db: u32) -> Node {
        self.db = db;
        self
    }

    /// The node spoken to in `protocol` whatever the client's options say.
    pub fn with_protocol(mut self, protocol: Protocol) -> Node {
        self.protocol = Some(protocol);
        self
    }

    /// The node reached over TLS with `tls`.
    pub fn with_tls(mut self, tls: Tls) -> Node {
        self.tls = Some(tls);
        self
    }

    /// The engine's view of the node. A Unix socket's path stands in the host (so messages
    /// name it) with a placeholder port.
    pub(crate) fn to_config(&self) -> NodeConfig {
        let mut config = match &self.address {
            Address::Tcp { host, port } => NodeConfig::new(host.clone(), *port),
            Address::Unix { path } => {
                NodeConfig::new(path.display().to_string(), UNIX_PLACEHOLDER_PORT)
            }
        };
        config.username = self.username.clone();
        config.password = self.password.clone();
        config.db = self.db;
        config.tls = self.tls.is_some();
        config.protocol = self.protocol;
        config.cluster = self.cluster;
        config
    }
}

impl std::str::FromStr for Node {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Node, UrlError> {
        parse_node(url)
    }
}

/// The address alone: never the credentials.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.address.fmt(f)
    }
}

/// Never prints the password.
impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("cluster", &self.cluster)
            .field("seeds", &self.seeds)
            .finish()
    }
}
