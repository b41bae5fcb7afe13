//! Node URLs, read the way redis-rs reads them, into the core's [`NodeConfig`].
//!
//! `redis://[[user]:password@]host[:port][/db][?protocol=resp2|resp3]`, also `rediss://` (TLS)
//! and the `valkey://` / `valkeys://` spellings. The port defaults to 6379. User and password are
//! percent-decoded strictly (`%` must start two hex digits); a `/`, `?`, `#` or `@` inside them
//! must be percent-encoded. `redis://name@host` names a *user* (as in redis-rs), which without a
//! password is refused rather than sent as one. No error message ever shows the credentials.

use redlock_core::{NodeConfig, Protocol};
use std::fmt;

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

    /// `url` cannot be used, for `reason` (an adapter refusing what it does not support).
    pub(crate) fn refused(url: &str, reason: &str) -> UrlError {
        UrlError::new(url, reason)
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

/// Parses one node URL.
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
    let bad = |reason: &str| UrlError::new(raw, reason);
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| bad("expected redis://host[:port] (or rediss://, valkey://, valkeys://)"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "valkey" => false,
        "rediss" | "valkeys" => true,
        _ => {
            return Err(bad(
                "the scheme must be redis://, rediss://, valkey:// or valkeys://",
            ))
        }
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
    if url.fragment().is_some() {
        return Err(bad("a URL fragment ('#…') means nothing here"));
    }
    let mut protocol = None;
    for (name, value) in url.query_pairs() {
        match &*name {
            "protocol" if protocol.is_some() => return Err(bad("protocol is given twice")),
            "protocol" => {
                protocol = Some(match &*value {
                    "resp2" | "2" => Protocol::Resp2,
                    "resp3" | "3" => Protocol::Resp3,
                    _ => return Err(bad("protocol must be resp2 or resp3")),
                })
            }
            other => return Err(bad(&format!("unknown query parameter {other:?}"))),
        }
    }
    let username =
        decode(url.username()).ok_or_else(|| bad("bad percent-encoding in the user name"))?;
    let password = url
        .password()
        .map(|p| decode(p).ok_or_else(|| bad("bad percent-encoding in the password")))
        .transpose()?;
    let (username, password) = match (username.is_empty(), password) {
        (true, None) => (None, None),
        // `redis://:pass@host`: a password for the default user.
        (true, Some(p)) => (None, Some(p)),
        (false, None) => {
            return Err(bad(
                "the URL names a user but no password; for a password alone write \
                 redis://:PASSWORD@host",
            ))
        }
        (false, Some(p)) => (Some(username), Some(p)),
    };
    let mut node = NodeConfig::new(host, port);
    node.username = username;
    node.password = password;
    node.db = db;
    node.tls = tls;
    node.protocol = protocol;
    Ok(node)
}

/// Strict percent-decoding: every `%` starts two hex digits, and the result is UTF-8.
fn decode(s: &str) -> Option<String> {
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
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with its credentials replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}://<credentials>@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
