//! A cluster's redirect replies: `-MOVED slot host:port` (the slot lives elsewhere now: update
//! the slot map) and `-ASK slot host:port` (the slot is being migrated: send this one request
//! there, after `ASKING`).

use crate::endpoint::Endpoint;
use crate::slot::SLOTS;

/// Which redirect a node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// `MOVED`: the slot is served by another node from now on.
    Moved,
    /// `ASK`: for this request only, ask the other node (sending `ASKING` first); the slot map
    /// stays as it is.
    Ask,
}

/// A redirect reply, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `MOVED` or `ASK`.
    pub kind: RedirectKind,
    /// The hash slot the request's keys are in (`0..16384`).
    pub slot: u16,
    /// Where to send it.
    pub endpoint: Endpoint,
}

impl Redirect {
    /// Reads an error reply's text (as [`Reply::Error`](crate::resp::Reply::Error) carries it,
    /// without the `-`) as a redirect: `MOVED 3999 127.0.0.1:6381` or `ASK 3999 …`. The port is
    /// after the last `:`, so an IPv6 host needs no brackets (`MOVED 1 ::1:7000`; brackets are
    /// accepted too). An empty host (`MOVED 3999 :6381`, a node that does not know its own
    /// address) means the host of the node that answered, `asked_host`. `None` for any other
    /// text, a slot past 16383, a port of 0 or out of range, or an unknown endpoint (`?`).
    ///
    /// ```
    /// use redlock_core::{Redirect, RedirectKind};
    /// let r = Redirect::parse("MOVED 3999 :6381", "10.0.0.5").unwrap();
    /// assert_eq!((r.kind, r.slot), (RedirectKind::Moved, 3999));
    /// assert_eq!(r.endpoint.to_string(), "10.0.0.5:6381");
    /// assert!(Redirect::parse("ERR unknown command", "10.0.0.5").is_none());
    /// ```
    pub fn parse(error_text: &str, asked_host: &str) -> Option<Redirect> {
        let mut words = error_text.split(' ');
        let kind = match words.next()? {
            "MOVED" => RedirectKind::Moved,
            "ASK" => RedirectKind::Ask,
            _ => return None,
        };
        let slot = digits(words.next()?).filter(|s| *s < u32::from(SLOTS))?;
        let (host, port) = words.next()?.rsplit_once(':')?;
        if words.next().is_some() {
            return None;
        }
        let port = digits(port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner,
            None => host,
        };
        let host = match host {
            "" => asked_host,
            "?" => return None,
            h => h,
        };
        Some(Redirect {
            kind,
            slot: u16::try_from(slot).ok()?,
            endpoint: Endpoint::new(host, port),
        })
    }
}

/// `text` as an unsigned decimal of at most 5 digits (slots and ports), else `None`.
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn parse(text: &str) -> Option<(RedirectKind, u16, String)> {
        Redirect::parse(text, "10.0.0.9").map(|r| (r.kind, r.slot, r.endpoint.to_string()))
    }

    #[test]
    fn moved_and_ask() {
        use RedirectKind::{Ask, Moved};
        assert_eq!(
            parse("MOVED 3999 127.0.0.1:6381"),
            Some((Moved, 3999, "127.0.0.1:6381".into()))
        );
        assert_eq!(
            parse("ASK 3999 127.0.0.1:6381"),
            Some((Ask, 3999, "127.0.0.1:6381".into()))
        );
        assert_eq!(
            parse("MOVED 1 ::1:7000"),
            Some((Moved, 1, "[::1]:7000".into()))
        );
        assert_eq!(
            parse("MOVED 1 [::1]:7000"),
            Some((Moved, 1, "[::1]:7000".into()))
        );
        assert_eq!(
            parse("MOVED 16383 redis-2.example:6379"),
            Some((Moved, 16383, "redis-2.example:6379".into()))
        );
        assert_eq!(
            parse("MOVED 3999 :6381"),
            Some((Moved, 3999, "10.0.0.9:6381".into())),
            "empty host: the node asked"
        );
        assert_eq!(parse("ASK 0 :1"), Some((Ask, 0, "10.0.0.9:1".into())));
    }

    #[test]
    fn not_redirects() {
        for text in [
            "",
            "MOVED",
            "MOVED 3999",
            "MOVED 3999 127.0.0.1",
            "MOVED 16384 127.0.0.1:6381",
            "MOVED 99999 127.0.0.1:6381",
            "MOVED -1 127.0.0.1:6381",
            "MOVED +1 127.0.0.1:6381",
            "MOVED 1 127.0.0.1:0",
            "MOVED 1 127.0.0.1:65536",
            "MOVED 1 127.0.0.1:",
            "MOVED 1 127.0.0.1:x",
            "MOVED 1 ?:6381",
            "MOVED 1 127.0.0.1:6381 extra",
            "MOVED  1 127.0.0.1:6381",
            "moved 1 127.0.0.1:6381",
            "ERR wrong number of arguments",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "ASKING 1 127.0.0.1:6381",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn never_panics() {
        const PIECES: &[&str] = &[
            "MOVED", "ASK", " ", ":", "[", "]", "1", "16383", "16384", "::1", "é", "", "?", "0",
        ];
        let mut rng = Rng::new(3);
        for _ in 0..50_000 {
            let n = rng.below_inclusive(7);
            let text: String = (0..n)
                .map(|_| PIECES[rng.below_inclusive(PIECES.len() as u64 - 1) as usize])
                .collect();
            if let Some(r) = Redirect::parse(&text, "h") {
                assert!(r.slot < SLOTS && r.endpoint.port() != 0, "{text:?}");
            }
        }
    }
}
