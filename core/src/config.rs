//! What the engine is told at construction: the nodes and the tunables.

use crate::error::Error;
use crate::limits::MAX_DURATION;
use crate::resp::Protocol;
use crate::script::Scripts;
use std::fmt;
use std::time::Duration;

/// Tunables, named after node-redlock's options in Rust form. Start from [`Options::default`]
/// and change fields:
///
/// ```
/// use std::time::Duration;
/// let mut options = redlock_core::Options::default();
/// options.retry_count = Some(3);
/// options.retry_delay = Duration::from_millis(50);
/// options.key_prefix = "locks:".into();
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// Fraction of the ttl assumed lost to clock drift between client and nodes (default 0.01).
    /// The lock's validity is `ttl - elapsed - (ttl × drift_factor + 2 ms)`.
    pub drift_factor: f64,
    /// How many times a failed attempt is retried; `None` retries until the caller cancels
    /// (default `Some(10)`).
    pub retry_count: Option<u32>,
    /// Pause between attempts (default 200 ms).
    pub retry_delay: Duration,
    /// The pause varies by up to this much either way, so contenders spread apart (default 100 ms).
    pub retry_jitter: Duration,
    /// With automatic extension (`using`), how long before `valid_until` to extend (default 500 ms).
    /// The core does not use it; the adapters do.
    pub automatic_extension_threshold: Duration,
    /// How long one request may wait for its reply before the connection is considered broken
    /// (default 500 ms).
    pub node_timeout: Duration,
    /// Prepended to every resource name to form its Redis key (default empty: the key is the
    /// resource name, as other Redlock clients do).
    pub key_prefix: String,
    /// RESP version to speak (default RESP2).
    pub protocol: Protocol,
    /// The Lua scripts (default: the built-in ones).
    pub scripts: Scripts,
    /// Sent as `CLIENT SETNAME` (or `HELLO … SETNAME`) during the handshake when set.
    pub client_name: Option<String>,
    /// The largest reply, in bytes, a connection will buffer before cutting the node off
    /// (default 1 MiB).
    pub max_reply_bytes: usize,
    /// Hand out fencing tokens (default off). Acquire becomes two rounds: the nodes report their
    /// per-resource counters, the client writes `max(max + 1, floor)` back to a quorum while it
    /// still holds the keys (the floor is the wall clock given to
    /// [`Engine::acquire`](crate::Engine::acquire), in µs), and
    /// [`Lock::fencing_token`](crate::Lock::fencing_token) returns it. Tokens of successive
    /// holders of a resource strictly increase, even when a paused holder outlives its lease,
    /// and across nodes restarting empty while clients' wall clocks agree within
    /// `restart_grace`. Costs one more round trip per acquire and one never-expiring counter key per
    /// resource (`{R}:fence`, or `R:fence` when `R` already has a hash tag).
    pub fencing: bool,
    /// Restart-aware voting (default off). With `Some(grace)`, each connection reads
    /// `INFO server`; a node up for less than `grace`, or whose `run_id` changed since the last
    /// connection (it restarted, and may have lost its keys), does not vote until `grace` has
    /// passed. Set it to at least your longest ttl.
    pub restart_grace: Option<Duration>,
    /// Use the server's own commands where they stand in for a script on one key (default on):
    /// release by `DELEX key IFEQ token` (Redis 8.4, Valkey 9.2) or `DELIFEQ key token` (Valkey
    /// 9.0), extend by `SET key token IFEQ token PX ttl` (Redis 8.4, Valkey 8.1) when the new ttl
    /// is at least every ttl set on the key before. Each connection reads `INFO server` to learn
    /// the server and its version (an ACL user without `INFO` leaves it unknown: scripts then).
    /// So a one-resource lock works for an ACL user without `@scripting` on such a server. Off:
    /// only the scripts (and `SET NX` to acquire one key), and no `INFO` unless `restart_grace`.
    pub native_commands: bool,
    /// Wait for a release instead of only polling (default on). A release (the release script,
    /// or a native release followed by `PUBLISH`) announces itself on the key's channel
    /// ([`release_channel`](crate::release_channel)). An acquire refused once subscribes to
    /// its keys' channels on every node: on the lock connection itself over RESP3 (pushes share
    /// it), else on a second connection per node opened for the purpose
    /// ([`Event::Open`](crate::Event::Open)), shared by every waiter of this client; on an
    /// announcement, one waiting acquire of this client for that key tries again at once. The
    /// jittered retry stays the fallback (expiry, lost messages, peers that release without
    /// announcing). A node that refuses `SUBSCRIBE` (an ACL without the channel) is not asked
    /// again on that connection.
    pub wait_for_release: bool,
    /// Replica acknowledgement (default off). On: a node's grant (acquire, extend, fence
    /// write-back) counts only once `WAIT replicas timeout`, sent right after it on the same
    /// connection, says at least `replicas` replicas have the write; fewer is an error vote
    /// for that node. What Redisson calls syncing slaves, for primaries with replicas (a
    /// cluster's shards, or standalone primaries).
    ///
    /// It narrows the window in which a failover loses a lock key, it does not close it:
    /// replication stays asynchronous, a replica that acknowledged may still not be the one
    /// promoted, and a key written after the `WAIT` (an extension's new ttl is covered by its
    /// own `WAIT`) is again at risk until acknowledged. `timeout` must be shorter than
    /// `node_timeout` (the `WAIT` blocks the connection that long at most).
    pub replica_ack: Option<ReplicaAck>,
    /// How long, after a write, the client keeps polling for the replies before it waits to
    /// be woken (default 100 µs, about one and a half loopback round trips; zero turns it
    /// off). Must be shorter than `node_timeout`. The core does not use it: the adapter that
    /// waits for replies does, and its documentation says how (`redlock_async::DriverSpin`,
    /// `redlock_blocking`).
    ///
    /// Being woken by a reply costs tens of µs per round trip on an idle machine; polling
    /// trades CPU for them. On one node with one caller, `cargo xtask bench` measured about
    /// two thirds of the p50 latency for 1.1-1.8x the client CPU per operation. The default
    /// comes from a sweep there: 25 µs gained little, 50 to 200 µs about the same p50, and
    /// 50 µs fell back to waiting in one round of three. A spin shorter than the round trip to
    /// the nodes only costs CPU: over a network whose round trip is well above 100 µs, set it
    /// to zero, or to about the round trip if latency matters more than CPU.
    pub spin_before_park: Duration,
}

/// How many replicas must have a lock's writes before a node's grant counts, and how long to
/// wait for them (see [`Options::replica_ack`]).
///
/// ```
/// use redlock_core::{Options, ReplicaAck};
/// use std::time::Duration;
/// let mut options = Options::default();
/// options.replica_ack = Some(ReplicaAck { replicas: 1, timeout: Duration::from_millis(100) });
/// assert!(options.validate().is_ok());
/// // WAIT holds the connection up to its timeout: it must end before node_timeout does.
/// options.replica_ack = Some(ReplicaAck { replicas: 1, timeout: options.node_timeout });
/// assert!(options.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAck {
    /// At least this many replicas (1 or more).
    pub replicas: u32,
    /// Waited for at most this long (`WAIT`'s timeout; at least 1 ms, under `node_timeout`).
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            drift_factor: 0.01,
            retry_count: Some(10),
            retry_delay: Duration::from_millis(200),
            retry_jitter: Duration::from_millis(100),
            automatic_extension_threshold: Duration::from_millis(500),
            node_timeout: Duration::from_millis(500),
            key_prefix: String::new(),
            protocol: Protocol::Resp2,
            scripts: Scripts::default(),
            client_name: None,
            max_reply_bytes: 1 << 20,
            fencing: false,
            restart_grace: None,
            native_commands: true,
            wait_for_release: true,
            replica_ack: None,
            spin_before_park: Duration::from_micros(100),
        }
    }
}

impl Options {
    /// Checks the values make sense together; returns [`Error::InvalidOption`] naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |name: &'static str, reason: &str| {
            Err(Error::InvalidOption {
                name,
                reason: reason.to_string(),
            })
        };
        if !(0.0..1.0).contains(&self.drift_factor) {
            return bad("drift_factor", "must be at least 0 and below 1");
        }
        // Below a millisecond no reply from any network arrives in time: every request would
        // fail as a timeout, which looks like an outage rather than a typo.
        if self.node_timeout < Duration::from_millis(1) {
            return bad("node_timeout", "must be at least 1 ms");
        }
        // Durations are added to instants; past a year they are a mistake, and unbounded ones
        // would overflow `Instant` arithmetic.
        let durations = [
            ("node_timeout", Some(self.node_timeout)),
            ("retry_delay", Some(self.retry_delay)),
            ("retry_jitter", Some(self.retry_jitter)),
            (
                "automatic_extension_threshold",
                Some(self.automatic_extension_threshold),
            ),
            ("restart_grace", self.restart_grace),
        ];
        for (name, d) in durations {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return bad(name, "must be at most a year (redlock_core::MAX_DURATION)");
            }
        }
        if let Some(ack) = self.replica_ack {
            if ack.replicas == 0 {
                return bad("replica_ack", "replicas must be at least 1");
            }
            if ack.timeout < Duration::from_millis(1) || ack.timeout >= self.node_timeout {
                return bad(
                    "replica_ack",
                    "timeout must be at least 1 ms and shorter than node_timeout \
                     (WAIT holds the connection that long)",
                );
            }
        }
        // Spinning for a reply past the point where it counts as lost only burns CPU.
        if self.spin_before_park >= self.node_timeout {
            return bad("spin_before_park", "must be shorter than node_timeout");
        }
        if self.max_reply_bytes < 1024 {
            return bad("max_reply_bytes", "must be at least 1024");
        }
        // What `CLIENT SETNAME` accepts: printable ASCII without spaces.
        if self
            .client_name
            .as_deref()
            .is_some_and(|n| n.is_empty() || !n.bytes().all(|b| (b'!'..=b'~').contains(&b)))
        {
            return bad(
                "client_name",
                "must be non-empty printable ASCII without spaces (what CLIENT SETNAME accepts)",
            );
        }
        Ok(())
    }

    /// The safety margin subtracted from a lock's ttl: `ttl × drift_factor + 2 ms`.
    pub fn drift(&self, ttl: Duration) -> Duration {
        ttl.mul_f64(self.drift_factor) + Duration::from_millis(2)
    }
}

/// One Redis node: where it is and how to log in.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name (`AUTH user pass`); `None` with a password means the `default` user.
    pub username: Option<String>,
    /// Password, when the node requires one.
    pub password: Option<String>,
    /// Database number to `SELECT` (0, the default, sends nothing).
    pub db: u32,
    /// Whether the connection is to use TLS. The core does not care (it sees only bytes);
    /// adapters that cannot do TLS refuse such nodes.
    pub tls: bool,
    /// The RESP version to speak with this node; `None` for [`Options::protocol`].
    pub protocol: Option<Protocol>,
    /// This node is a whole Redis Cluster (or Valkey Cluster), reached first at `host:port`
    /// (the seed; an adapter may know more seeds): the engine reads its slot map there and
    /// sends each lock request to the primary of its keys' hash slot (one request per slot,
    /// the cluster granting only when every slot granted), following `MOVED` and `ASK`.
    /// A cluster has database 0 only.
    pub cluster: bool,
}

impl NodeConfig {
    /// A node at `host:port` with no credentials, database 0 and no TLS.
    pub fn new(host: impl Into<String>, port: u16) -> NodeConfig {
        NodeConfig {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: 0,
            tls: false,
            protocol: None,
            cluster: false,
        }
    }

    /// The node as a Redis Cluster with `host:port` as its seed (see [`NodeConfig::cluster`]).
    ///
    /// ```
    /// let node = redlock_core::NodeConfig::new("127.0.0.1", 7000).as_cluster();
    /// assert!(node.cluster);
    /// ```
    pub fn as_cluster(mut self) -> NodeConfig {
        self.cluster = true;
        self
    }

    /// The node with `password` for the ACL user `username` (`None`: the `default` user).
    ///
    /// ```
    /// let node = redlock_core::NodeConfig::new("127.0.0.1", 6379).with_auth(Some("app"), "s3cret");
    /// assert_eq!(node.username.as_deref(), Some("app"));
    /// assert!(!format!("{node:?}").contains("s3cret"));
    /// ```
    pub fn with_auth(mut self, username: Option<&str>, password: impl Into<String>) -> NodeConfig {
        self.username = username.map(str::to_string);
        self.password = Some(password.into());
        self
    }

    /// The node with database `db` selected on every connection.
    pub fn with_db(mut self, db: u32) -> NodeConfig {
        self.db = db;
        self
    }

    /// Checks what can be checked before connecting; returns [`Error::InvalidNode`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| {
            Err(Error::InvalidNode {
                node: self.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.host.is_empty() {
            return bad("the host is empty");
        }
        if self.port == 0 {
            return bad("port 0 cannot be connected to");
        }
        // `SELECT` takes a C int, and a server has at most `databases` (an int) of them.
        if self.db >= i32::MAX as u32 {
            return bad("no Redis server has that many databases");
        }
        if self.username.is_some() && self.password.is_none() {
            return bad("a user name needs a password (AUTH takes both)");
        }
        if self.cluster && self.db != 0 {
            return bad("a Redis Cluster has database 0 only");
        }
        Ok(())
    }
}

/// Shows `host:port`, the form error messages use.
impl fmt::Display for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Never prints the password.
impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("protocol", &self.protocol)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Everything the [`Engine`](crate::Engine) needs: the nodes, in order (a node's index is its
/// [`NodeId`](crate::NodeId)), and the options.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The independent Redis masters. Quorum is `nodes.len() / 2 + 1`.
    pub nodes: Vec<NodeConfig>,
    /// Tunables.
    pub options: Options,
}

impl Config {
    /// A configuration for `nodes` with `options`.
    pub fn new(nodes: Vec<NodeConfig>, options: Options) -> Config {
        Config { nodes, options }
    }

    /// How many nodes must agree: a strict majority, `N / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Checks the node list and options: at least one node, each valid
    /// ([`NodeConfig::validate`]), no node twice (it would count two votes), and
    /// [`Options::validate`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        for (i, node) in self.nodes.iter().enumerate() {
            node.validate()?;
            let same = |other: &NodeConfig| {
                other.host.eq_ignore_ascii_case(&node.host) && other.port == node.port
            };
            if self.nodes[..i].iter().any(same) {
                return Err(Error::DuplicateNode {
                    node: node.to_string(),
                });
            }
        }
        self.options.validate()
    }
}
