//! Node URLs, read the way redis-rs reads them, into a [`Node`] (and the core's [`NodeConfig`]).
//!
//! - `redis://[[user]:password@]host[:port][/db][?protocol=resp2|resp3]`, also `rediss://` (TLS)
//!   and the `valkey://` / `valkeys://` spellings. The port defaults to 6379. `rediss://…#insecure`
//!   turns certificate checks off (test setups only).
//! - `redis+unix:///path/to/sock[?db=N][&user=U][&pass=P][&protocol=resp3]`, also `unix://`: a
//!   Unix socket; credentials and database in the query, as redis-rs reads them.
//! - `redis+cluster://[[user]:password@]host[:port][,host[:port]…][?protocol=…]`, also
//!   `rediss+cluster://` (TLS) and `valkey+cluster://` / `valkeys+cluster://`: a whole Redis
//!   Cluster as one node, reached through the seeds listed (tried in turn); database 0 only.
//!
//! User and password are percent-decoded strictly (`%` must start two hex digits); a `/`, `?`,
//! `#` or `@` inside them must be percent-encoded. In a query a `+` is a space (form encoding, as
//! in redis-rs): write a literal `+` as `%2B`. `redis://name@host` names a *user* (as in
//! redis-rs), which without a password is refused rather than sent as one. Unknown query
//! parameters are refused by name. No error message ever shows the credentials.

use crate::node::{Node, Tls};
use redlock_core::{NodeConfig, Protocol};
use std::fmt;
use std::path::PathBuf;

/// A node URL that cannot be used. Its `Display` names the URL without its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    url: String,
    reason: String,
}

impl UrlError {
    fn new(url: &str, reason: impl Into<String>) -> UrlError {
        UrlError {
            url: redact(url),
            reason: reason.into(),
        }
    }

    /// The URL as given, with any user name and password replaced by `<credentials>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid node URL {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for UrlError {}

/// Parses one node URL into the core's [`NodeConfig`] (see [`Node::from_url`] for the richer
/// form the clients use: it keeps the Unix socket path and the TLS settings).
///
/// ```
/// use redlock_async::parse_node_url;
/// let node = parse_node_url("redis://app:s%2Fcret@127.0.0.1:7001/2?protocol=resp3").unwrap();
/// assert_eq!((node.host.as_str(), node.port, node.db), ("127.0.0.1", 7001, 2));
/// assert_eq!(node.username.as_deref(), Some("app"));
/// assert_eq!(node.password.as_deref(), Some("s/cret"));
/// assert_eq!(node.protocol, Some(redlock_async::Protocol::Resp3));
/// let err = parse_node_url("redis://:pa/ss@127.0.0.1").unwrap_err();
/// assert!(!err.to_string().contains("pa/ss"));
/// ```
pub fn parse_node_url(raw: &str) -> Result<NodeConfig, UrlError> {
    parse_node(raw).map(|node| node.to_config())
}

/// Parses one node URL into a [`Node`].
pub(crate) fn parse_node(raw: &str) -> Result<Node, UrlError> {
    let bad = |reason: &str| UrlError::new(raw, reason);
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
        bad("expected redis://host[:port] (or rediss://, valkey://, valkeys://, redis+unix:///path)")
    })?;
    let tls =
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "valkey" => false,
            "rediss" | "valkeys" => true,
            "redis+unix" | "unix" | "valkey+unix" => return parse_unix(raw, rest),
            "redis+cluster" | "valkey+cluster" => return parse_cluster(raw, "redis", rest),
            "rediss+cluster" | "valkeys+cluster" => return parse_cluster(raw, "rediss", rest),
            _ => return Err(bad(
                "the scheme must be redis://, rediss://, valkey://, valkeys://, redis+unix://, \
                 unix:// or redis+cluster://",
            )),
        };
    // A raw `/`, `?` or `#` in a password ends the authority early; the URL would then mean
    // another host (or fail on a "port"). Say what to do instead.
    if let Some(at) = rest.rfind('@') {
        if rest[..at].contains(['/', '?', '#']) {
            return Err(bad(
                "a '/', '?' or '#' in the user name or password must be percent-encoded \
                 (%2F, %3F, %23)",
            ));
        }
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => addr.to_string(),
        Some(host) => host.to_string(),
        None => return Err(bad("missing host")),
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = match url.port() {
        Some(0) => return Err(bad("port 0 cannot be connected to")),
        Some(p) => p,
        None => 6379,
    };
    let db = match url.path().trim_start_matches('/') {
        "" => 0,
        p => p
            .parse::<u32>()
            .map_err(|_| bad("the path must be a database number, as in redis://host/2"))?,
    };
    let insecure = match url.fragment() {
        None => false,
        Some("insecure") if tls => true,
        Some("insecure") => {
            return Err(bad(
                "#insecure turns off certificate checks, which only a rediss:// URL has",
            ))
        }
        Some(_) => {
            return Err(bad(
                "a URL fragment ('#…') means nothing here but #insecure",
            ))
        }
    };
    let mut protocol = None;
    for (name, value) in query_pairs(url.query().unwrap_or(""), &bad)? {
        match name.as_str() {
            "protocol" => protocol = Some(parse_protocol(&value, &bad)?),
            "db" => {
                return Err(bad(
                    "the database goes in the path (redis://host/2), not in ?db=",
                ))
            }
            other => return Err(bad(&format!("unknown query parameter {other:?}"))),
        }
    }
    let username = decode(url.username(), false)
        .ok_or_else(|| bad("bad percent-encoding in the user name"))?;
    let password = url
        .password()
        .map(|p| decode(p, false).ok_or_else(|| bad("bad percent-encoding in the password")))
        .transpose()?;
    let mut node = Node::tcp(host, port);
    (node.username, node.password) = credentials(Some(username), password, &bad)?;
    node.db = db;
    node.protocol = protocol;
    if tls {
        node.tls = Some(Tls {
            danger_accept_invalid_certs: insecure,
            ..Tls::default()
        });
    }
    Ok(node)
}

/// `redis+cluster://[creds@]host[:port],host[:port]…[?query][#insecure]` (`rest` is what follows
/// `://`): the first seed with everything else is read as the `base://` URL it would be alone
/// (same credentials, protocol and TLS rules), the other seeds as bare `host[:port]`s.
fn parse_cluster(raw: &str, base: &str, rest: &str) -> Result<Node, UrlError> {
    let bad = |reason: &str| UrlError::new(raw, reason);
    let start = rest.rfind('@').map_or(0, |at| at + 1);
    let end = rest[start..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| start + i);
    let hosts: Vec<&str> = rest[start..end].split(',').collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(bad("expected seeds as host[:port],host[:port]…"));
    }
    let first = format!("{base}://{}{}{}", &rest[..start], hosts[0], &rest[end..]);
    let mut node = parse_node(&first).map_err(|e| bad(e.reason()))?;
    if node.db != 0 {
        return Err(bad("a Redis Cluster has database 0 only"));
    }
    node.cluster = true;
    for host in &hosts[1..] {
        let seed = parse_node(&format!("redis://{host}")).map_err(|e| bad(e.reason()))?;
        node.seeds.push(seed.address);
    }
    Ok(node)
}

/// `redis+unix:///path?db=N&user=U&pass=P&protocol=resp3` (`rest` is what follows `://`).
fn parse_unix(raw: &str, rest: &str) -> Result<Node, UrlError> {
    let bad = |reason: &str| UrlError::new(raw, reason);
    let (before_query, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    if before_query.contains('#') || query.contains('#') {
        return Err(bad(
            "a URL fragment ('#…') means nothing in a Unix socket URL",
        ));
    }
    // The authority is empty (`unix:///path`) or `localhost` (`unix://localhost/path`).
    let path = match before_query.find('/') {
        Some(0) => before_query,
        Some(i) if before_query[..i].eq_ignore_ascii_case("localhost") => &before_query[i..],
        Some(i) if before_query[..i].contains('@') => {
            return Err(bad(
                "a Unix socket URL takes its credentials in the query: \
                 redis+unix:///path?user=USER&pass=PASSWORD",
            ))
        }
        _ => {
            return Err(bad(
                "expected an absolute socket path, as in redis+unix:///run/redis.sock",
            ))
        }
    };
    let path = decode(path, false).ok_or_else(|| bad("bad percent-encoding in the path"))?;
    if path.len() <= 1 {
        return Err(bad("missing socket path"));
    }
    let (mut db, mut user, mut pass, mut protocol) = (0, None, None, None);
    for (name, value) in query_pairs(query, &bad)? {
        match name.as_str() {
            "db" => {
                db = value
                    .parse::<u32>()
                    .map_err(|_| bad("db must be a database number"))?
            }
            "user" => user = Some(value),
            "pass" => pass = Some(value),
            "protocol" => protocol = Some(parse_protocol(&value, &bad)?),
            other => return Err(bad(&format!("unknown query parameter {other:?}"))),
        }
    }
    let mut node = Node::unix(PathBuf::from(path));
    (node.username, node.password) = credentials(user, pass, &bad)?;
    node.db = db;
    node.protocol = protocol;
    Ok(node)
}

type Credentials = (Option<String>, Option<String>);

/// The user and password to authenticate with, as redis-rs reads them: a user alone is refused.
fn credentials(
    username: Option<String>,
    password: Option<String>,
    bad: &dyn Fn(&str) -> UrlError,
) -> Result<Credentials, UrlError> {
    let username = username.filter(|u| !u.is_empty());
    match (username, password) {
        (None, p) => Ok((None, p)),
        (Some(_), None) => Err(bad(
            "the URL names a user but no password; for a password alone write \
             redis://:PASSWORD@host (or ?pass=PASSWORD for a Unix socket)",
        )),
        (Some(u), Some(p)) => Ok((Some(u), Some(p))),
    }
}

fn parse_protocol(value: &str, bad: &dyn Fn(&str) -> UrlError) -> Result<Protocol, UrlError> {
    match value {
        "resp2" | "2" => Ok(Protocol::Resp2),
        "resp3" | "3" => Ok(Protocol::Resp3),
        _ => Err(bad("protocol must be resp2 or resp3")),
    }
}

/// The query's `name=value` pairs, decoded strictly (`+` is a space). A parameter given twice
/// is refused: which one would count is a guess.
fn query_pairs(
    query: &str,
    bad: &dyn Fn(&str) -> UrlError,
) -> Result<Vec<(String, String)>, UrlError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, true).ok_or_else(|| bad("bad percent-encoding in the query"))?;
        let value = decode(value, true).ok_or_else(|| bad("bad percent-encoding in the query"))?;
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(bad(&format!("query parameter {name:?} is given twice")));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Strict percent-decoding: every `%` starts two hex digits, and the result is UTF-8. With
/// `plus_is_space` (a query), `+` decodes to a space.
fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if plus_is_space && b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with its credentials replaced, for error messages: the user information before
/// the last `@` (a raw `/`, `?` or `#` in a password is inside it), and every query value but
/// `db` and `protocol` (a Unix socket URL's `pass=`, or a mistyped name).
fn redact(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return if url.contains('@') {
            "<not a URL, hidden: it may hold credentials>".to_string()
        } else {
            url.to_string()
        };
    };
    let (scheme, rest) = (&url[..s], &url[s + 3..]);
    if scheme.to_ascii_lowercase().ends_with("unix") {
        // Credentials are never before the path here; anything there is hidden whole.
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let authority = if authority.is_empty() || authority.eq_ignore_ascii_case("localhost") {
            authority
        } else {
            "<credentials>"
        };
        return format!("{scheme}://{authority}{}", redact_query(path));
    }
    match rest.rfind('@') {
        // A `=` before the `@`: a query value may hold it, so nothing after it is safe to show.
        Some(at) if rest[..at].contains('=') => format!("{scheme}://<credentials>"),
        Some(at) => format!("{scheme}://<credentials>@{}", redact_query(&rest[at + 1..])),
        None => format!("{scheme}://{}", redact_query(rest)),
    }
}

/// `text` with the value of every query parameter but `db` and `protocol` hidden.
fn redact_query(text: &str) -> String {
    let Some((before, query)) = text.split_once('?') else {
        return text.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name @ ("db" | "protocol"), value)) => format!("{name}={value}"),
            Some((name, _)) => format!("{name}=<redacted>"),
            None => pair.to_string(),
        })
        .collect();
    format!("{before}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Address;

    #[test]
    fn forms_and_defaults() {
        let n = parse_node_url("redis://localhost").unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.db, n.tls, n.protocol),
            ("localhost", 6379, 0, false, None)
        );
        let n = parse_node_url("rediss://:pw@[::1]:7000/3").unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.db, n.tls),
            ("::1", 7000, 3, true)
        );
        assert_eq!(n.password.as_deref(), Some("pw"));
        assert_eq!(n.username, None);
        assert_eq!(n.to_string(), "[::1]:7000");
        assert!(parse_node_url("valkey://h").is_ok_and(|n| !n.tls));
        assert!(parse_node_url("valkeys://h").is_ok_and(|n| n.tls));
    }

    #[test]
    fn the_query_is_not_part_of_the_host() {
        let n = parse_node_url("redis://h?protocol=resp3").unwrap();
        assert_eq!((n.host.as_str(), n.protocol), ("h", Some(Protocol::Resp3)));
        let e = parse_node_url("redis://h?protocl=resp3").unwrap_err();
        assert!(e.reason().contains("protocl"), "{e}");
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert!(parse_node_url("redis://:%+1@h").is_err());
        assert!(parse_node_url("redis://:%zz@h").is_err());
        assert!(parse_node_url("redis://:%4@h").is_err());
        let n = parse_node_url("redis://:a%2Fb%40c@h").unwrap();
        assert_eq!(n.password.as_deref(), Some("a/b@c"));
    }

    #[test]
    fn a_raw_slash_in_a_password_says_to_encode_it() {
        let e = parse_node_url("redis://:pa/ss@h:1").unwrap_err();
        assert!(e.reason().contains("%2F"), "{e}");
        assert!(!e.to_string().contains("pa/ss"), "{e}");
    }

    #[test]
    fn a_lone_name_is_a_user_as_in_redis_rs_and_needs_a_password() {
        let e = parse_node_url("redis://secret@h").unwrap_err();
        assert!(e.reason().contains("names a user"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn bad_urls_are_refused_without_showing_credentials() {
        for bad in [
            "redis://",
            "redis://h:0",
            "redis://h:x",
            "redis://h/x",
            "http://h",
            "h:6379",
            "redis://h#frag",
            "redis://h?protocol=resp4",
        ] {
            assert!(parse_node_url(bad).is_err(), "{bad}");
        }
        let e = parse_node_url("redis://u:secret@h:x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        let n = parse_node_url("redis://u:secret@h").unwrap();
        assert!(!format!("{n:?}").contains("secret"));
        let n = parse_node("redis://u:secret@h").unwrap();
        assert!(!format!("{n:?} {n}").contains("secret"));
    }

    #[test]
    fn cluster_urls_list_seeds() {
        let n = parse_node(
            "redis+cluster://app:pw@127.0.0.1:7000,127.0.0.1:7001,[::1]:7002?protocol=resp3",
        )
        .unwrap();
        assert!(n.cluster);
        assert_eq!(n.to_string(), "127.0.0.1:7000");
        assert_eq!(
            n.seeds,
            [
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 7001
                },
                Address::Tcp {
                    host: "::1".into(),
                    port: 7002
                },
            ]
        );
        assert_eq!(
            (n.username.as_deref(), n.password.as_deref()),
            (Some("app"), Some("pw"))
        );
        assert_eq!(n.protocol, Some(Protocol::Resp3));
        assert!(n.to_config().cluster);
        let tls = parse_node("rediss+cluster://h1,h2:7001#insecure").unwrap();
        assert!(tls
            .tls
            .as_ref()
            .is_some_and(|t| t.danger_accept_invalid_certs));
        assert_eq!(tls.to_string(), "h1:6379");
        assert!(parse_node("valkey+cluster://h1").unwrap().cluster);
        for (url, why) in [
            ("redis+cluster://h1,,h2", "host[:port],host[:port]"),
            ("redis+cluster://h1/2", "database 0 only"),
            ("redis+cluster://h1,h2:0", "port 0"),
        ] {
            let e = parse_node(url).unwrap_err();
            assert!(e.to_string().contains(why), "{url}: {e}");
        }
        let e = parse_node("redis+cluster://:s3cret@h1,h2:x").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn unix_socket_forms_as_in_redis_rs() {
        use crate::node::Address;
        use std::path::Path;
        for url in [
            "redis+unix:///run/redis.sock?db=3&user=app&pass=a%2Bb+c&protocol=resp3",
            "unix:///run/redis.sock?db=3&user=app&pass=a%2Bb+c&protocol=resp3",
            "unix://localhost/run/redis.sock?db=3&user=app&pass=a%2Bb+c&protocol=3",
        ] {
            let n = parse_node(url).unwrap();
            assert_eq!(
                n.address,
                Address::Unix {
                    path: Path::new("/run/redis.sock").into()
                },
                "{url}"
            );
            assert_eq!(n.db, 3);
            assert_eq!(n.username.as_deref(), Some("app"));
            assert_eq!(
                n.password.as_deref(),
                Some("a+b c"),
                "`+` is a space in a query"
            );
            assert_eq!(n.protocol, Some(Protocol::Resp3));
            assert!(n.tls.is_none());
            assert_eq!(n.to_string(), "unix:/run/redis.sock");
        }
        let n = parse_node("redis+unix:///tmp/my%20redis.sock").unwrap();
        assert_eq!(n.to_string(), "unix:/tmp/my redis.sock");
        assert_eq!((n.db, n.password), (0, None));
        // The core's view names the path.
        assert_eq!(
            parse_node_url("unix:///tmp/r.sock").unwrap().host,
            "/tmp/r.sock"
        );
    }

    #[test]
    fn bad_unix_urls_are_refused_by_name() {
        let e = parse_node("unix:///s?pasword=x").unwrap_err();
        assert!(e.reason().contains("\"pasword\""), "{e}");
        assert!(!e.to_string().contains("=x"), "{e}");
        let e = parse_node("unix:///s?user=app").unwrap_err();
        assert!(e.reason().contains("names a user"), "{e}");
        let e = parse_node("redis+unix://:secret@/s").unwrap_err();
        assert!(e.reason().contains("?user="), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        for bad in [
            "unix://",
            "unix:///",
            "unix://host/s",
            "unix://relative",
            "unix:///s?db=x",
            "unix:///s?db=1&db=2",
            "unix:///s#frag",
            "unix:///s?pass=%zz",
        ] {
            assert!(parse_node(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_schemes_and_insecure() {
        let n = parse_node("rediss://h:6380").unwrap();
        assert!(n
            .tls
            .as_ref()
            .is_some_and(|t| !t.danger_accept_invalid_certs));
        let n = parse_node("valkeys://:pw@h/#insecure").unwrap();
        assert!(n
            .tls
            .as_ref()
            .is_some_and(|t| t.danger_accept_invalid_certs));
        assert_eq!(n.password.as_deref(), Some("pw"));
        let e = parse_node("redis://h/#insecure").unwrap_err();
        assert!(e.reason().contains("rediss://"), "{e}");
        assert!(parse_node("redis://h").is_ok_and(|n| n.tls.is_none()));
    }

    #[test]
    fn query_parameters_are_strict() {
        let e = parse_node("redis://h?db=2").unwrap_err();
        assert!(e.reason().contains("path"), "{e}");
        let e = parse_node("redis://h?protocol=resp3&protocol=resp2").unwrap_err();
        assert!(e.reason().contains("twice"), "{e}");
        assert!(parse_node("redis://h?protocol=%zz").is_err());
        let e = parse_node("redis://h?password=hunter2").unwrap_err();
        assert!(e.reason().contains("\"password\""), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn redaction_hides_every_credential_form() {
        for (url, secret) in [
            ("redis://u:hunter2@h:x", "hunter2"),
            ("redis://:hun/ter2@h", "hun/ter2"),
            ("redis://:hun?ter2@h?x", "ter2"),
            ("redis://h?pass=hun@ter2", "ter2"),
            ("unix:///s?pass=hunter2&x=1", "hunter2"),
            ("unix:///s?pass=hun@ter2&bogus", "ter2"),
            ("unix://:hun?ter2@/s", "ter2"),
            ("u:hunter2@h", "hunter2"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
            if let Err(e) = parse_node(url) {
                assert!(!e.to_string().contains(secret), "{url}: {e}");
                assert!(!format!("{e:?}").contains(secret), "{url}: {e:?}");
            }
        }
        assert_eq!(
            redact("unix:///s?db=2&pass=x"),
            "unix:///s?db=2&pass=<redacted>"
        );
    }
}
