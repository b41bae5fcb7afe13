//! Passwords kept out of sight: node URLs printed with the password masked, and the password
//! from `--password-file` or `REDLOCK_PASSWORD` put into URLs that have none.

/// `url` with the password (and a user name's password-only form) replaced by `***`:
/// `redis://app:secret@host:6379` → `redis://app:***@host:6379`. A URL without credentials comes
/// back unchanged.
///
/// ```
/// use redlock_cli::secret::mask_url;
/// assert_eq!(mask_url("redis://app:s3cret@h:1/2"), "redis://app:***@h:1/2");
/// assert_eq!(mask_url("redis://:s3cret@h"), "redis://:***@h");
/// assert_eq!(mask_url("redis://h:1"), "redis://h:1");
/// assert_eq!(mask_url("garbage:pw@h"), "***@h");
/// ```
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    // The authority ends at the first '/', '?' or '#'; credentials end at its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    if scheme.is_empty() {
        return format!("***{}", &rest[at..]);
    }
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        // `redis://name@host`: a user name alone is not secret.
        None => userinfo.to_string(),
    };
    format!("{scheme}{masked}{}", &rest[at..])
}

/// `url` with `password` as its password, unless the URL has one of its own (then unchanged).
/// A user name in the URL is kept: `redis://app@h` → `redis://app:PASSWORD@h`. The password is
/// percent-encoded.
///
/// ```
/// use redlock_cli::secret::with_password;
/// assert_eq!(with_password("redis://h:1", "p/w"), "redis://:p%2Fw@h:1");
/// assert_eq!(with_password("redis://app@h", "pw"), "redis://app:pw@h");
/// assert_eq!(with_password("redis://app:mine@h", "pw"), "redis://app:mine@h");
/// ```
pub fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let encoded = percent_encode(password);
    match rest[..end].rfind('@') {
        Some(at) if rest[..at].contains(':') => url.to_string(),
        Some(at) => format!("{scheme}://{}:{encoded}{}", &rest[..at], &rest[at..]),
        None => format!("{scheme}://:{encoded}@{rest}"),
    }
}

/// Every byte but RFC 3986's unreserved ones as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_form() {
        for (url, want) in [
            ("redis://u:p@h:1", "redis://u:***@h:1"),
            ("rediss://:p@[::1]:6379/0", "rediss://:***@[::1]:6379/0"),
            ("redis://u:p%40x@h", "redis://u:***@h"),
            (
                "redis://u:p@h/2?protocol=resp3",
                "redis://u:***@h/2?protocol=resp3",
            ),
            ("redis://h/x@y", "redis://h/x@y"),
            ("redis://user@h", "redis://user@h"),
        ] {
            assert_eq!(mask_url(url), want, "{url}");
        }
    }

    #[test]
    fn injected_passwords_round_trip_through_the_url_parser() {
        let pw = "p@ss/w:rd?#% é";
        let url = with_password("redis://127.0.0.1:7001/3", pw);
        let node = redlock_tokio::parse_node_url(&url).expect("parses");
        assert_eq!(node.password.as_deref(), Some(pw));
        assert_eq!((node.port, node.db), (7001, 3));
        assert!(!mask_url(&url).contains("ss"), "{}", mask_url(&url));
        let url = with_password("redis://app@h", pw);
        let node = redlock_tokio::parse_node_url(&url).expect("parses");
        assert_eq!(node.username.as_deref(), Some("app"));
        assert_eq!(node.password.as_deref(), Some(pw));
    }
}
