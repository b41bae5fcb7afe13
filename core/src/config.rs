//! What the engine is told at construction: the nodes and the tunables.

use crate::error::Error;
use crate::resp::Protocol;
use crate::script::Scripts;
use std::fmt;
use std::time::Duration;

/// The longest ttl, timeout, delay or grace the engine accepts: 365 days. Longer ones are
/// refused (as [`Error::TtlTooLong`] or [`Error::InvalidOption`]) rather than risk overflowing
/// `Instant` arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

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
    /// per-resource counters, the client writes `max + 1` back to a quorum while it still holds
    /// the keys, and [`Lock::fencing_token`](crate::Lock::fencing_token) returns it. Tokens of
    /// successive holders of a resource strictly increase, even when a paused holder outlives
    /// its lease. Costs one more round trip per acquire and one never-expiring counter key per
    /// resource (`{R}:fence`, or `R:fence` when `R` already has a hash tag).
    pub fencing: bool,
    /// Restart-aware voting (default off). With `Some(grace)`, each connection reads
    /// `INFO server`; a node up for less than `grace`, or whose `run_id` changed since the last
    /// connection (it restarted, and may have lost its keys), does not vote until `grace` has
    /// passed. Set it to at least your longest ttl.
    pub restart_grace: Option<Duration>,
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
        if self.node_timeout.is_zero() {
            return bad("node_timeout", "must be greater than zero");
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
        if self.max_reply_bytes < 1024 {
            return bad("max_reply_bytes", "must be at least 1024");
        }
        if self
            .client_name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.contains([' ', '\n']))
        {
            return bad(
                "client_name",
                "must be non-empty and contain no spaces or newlines",
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
    /// Whether the URL asked for TLS (`rediss://`). The core does not care; adapters that cannot
    /// do TLS refuse such nodes.
    pub tls: bool,
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
        }
    }

    /// Parses `redis://[[user]:pass@]host[:port][/db]` (or `rediss://` for TLS). The port
    /// defaults to 6379; user and password are percent-decoded.
    ///
    /// ```
    /// let n = redlock_core::NodeConfig::from_url("redis://app:s%3Acret@10.0.0.7:7001/2").unwrap();
    /// assert_eq!((n.host.as_str(), n.port, n.db), ("10.0.0.7", 7001, 2));
    /// assert_eq!(n.username.as_deref(), Some("app"));
    /// assert_eq!(n.password.as_deref(), Some("s:cret"));
    /// assert!(redlock_core::NodeConfig::from_url("http://x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<NodeConfig, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: redact(url),
            reason: reason.to_string(),
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("redis://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("rediss://") {
            (true, r)
        } else {
            return Err(bad("must start with redis:// or rediss://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| bad("unclosed '[' in IPv6 host"))?;
            let port = v6[end + 1..].strip_prefix(':');
            (&v6[..end], port)
        } else {
            match hostport.rfind(':') {
                Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            None => 6379,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        };
        let db = match path.trim_end_matches('/') {
            "" => 0,
            p => p
                .parse::<u32>()
                .map_err(|_| bad("database must be a number"))?,
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                let u = percent_decode(u).ok_or_else(|| bad("bad percent-encoding in user"))?;
                let p = p
                    .map(|p| {
                        percent_decode(p).ok_or_else(|| bad("bad percent-encoding in password"))
                    })
                    .transpose()?;
                match (u.is_empty(), p) {
                    // `redis://:pass@host` is the classic password-only form.
                    (true, p) => (None, p),
                    // `redis://pass@host` (no colon): treat the lone part as a password, as
                    // redis-cli and most clients do.
                    (false, None) => (None, Some(u)),
                    (false, Some(p)) => (Some(u), Some(p)),
                }
            }
        };
        Ok(NodeConfig {
            host: host.to_string(),
            port,
            username,
            password,
            db,
            tls,
        })
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
            .finish()
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}://<credentials>@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_string(),
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

    /// Parses each URL with [`NodeConfig::from_url`].
    ///
    /// ```
    /// let c = redlock_core::Config::from_urls(
    ///     ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"],
    ///     redlock_core::Options::default(),
    /// ).unwrap();
    /// assert_eq!(c.quorum(), 2);
    /// ```
    pub fn from_urls<I, S>(urls: I, options: Options) -> Result<Config, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = urls
            .into_iter()
            .map(|u| NodeConfig::from_url(u.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config { nodes, options })
    }

    /// How many nodes must agree: a strict majority, `N / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Checks the node list and options; see [`Options::validate`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        self.options.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let n = NodeConfig::from_url("redis://localhost").unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.db, n.tls),
            ("localhost", 6379, 0, false)
        );
        let n = NodeConfig::from_url("rediss://:pw@[::1]:7000/3").unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.db, n.tls),
            ("::1", 7000, 3, true)
        );
        assert_eq!(n.password.as_deref(), Some("pw"));
        assert_eq!(n.username, None);
        assert_eq!(n.to_string(), "[::1]:7000");
        for bad in [
            "redis://",
            "redis://h:0",
            "redis://h:x",
            "redis://h/x",
            "redis://:%zz@h",
        ] {
            assert!(NodeConfig::from_url(bad).is_err(), "{bad}");
        }
        let e = NodeConfig::from_url("redis://u:secret@h:x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(
            !format!("{:?}", NodeConfig::from_url("redis://u:secret@h").unwrap())
                .contains("secret")
        );
    }
}
