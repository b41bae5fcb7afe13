//! What a client does before it has sockets: parse the URLs, seed and build the engine, and
//! draw lock tokens.

use crate::error::Error;
use crate::node_url::{parse_node_url, UrlError};
use redlock_core::{Config, Engine, NodeConfig, Options, Token};
use std::time::{Duration, Instant};

/// A new engine for `urls`, the node list it was built from, and how long a first connection
/// attempt may take (`max(node_timeout, 1 s)`).
///
/// Returns [`Error::InvalidUrl`] for an unparsable URL or a `rediss://` one (no adapter here
/// has TLS built in), [`Error::Config`] for no nodes, a node listed twice or an option out of
/// range.
pub(crate) fn new_engine<I, S>(
    urls: I,
    options: &Options,
) -> Result<(Engine, Vec<NodeConfig>, Duration), Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let nodes = urls
        .into_iter()
        .map(|url| {
            let url = url.as_ref();
            let node = parse_node_url(url)?;
            if node.tls {
                return Err(UrlError::refused(
                    url,
                    "TLS is not built into this adapter; use redis://",
                ));
            }
            Ok(node)
        })
        .collect::<Result<Vec<_>, UrlError>>()?;
    let config = Config::new(nodes, options.clone());
    let seed = seed();
    let nodes = config.nodes.clone();
    let engine = Engine::new(config, Instant::now(), seed)?;
    Ok((
        engine,
        nodes,
        options.node_timeout.max(Duration::from_secs(1)),
    ))
}

/// A lock token from 20 bytes of the OS CSPRNG: unguessable and unique across every client.
///
/// # Panics
///
/// When the OS entropy source fails: a weaker fallback could give two holders one token.
pub(crate) fn fresh_token() -> Token {
    let mut random = [0u8; 20];
    getrandom::fill(&mut random).expect("the OS random number generator failed");
    Token::from_random(&random).expect("20 bytes is long enough")
}

/// A seed for jitter (retry spacing, reconnect backoff) from the OS random number generator.
///
/// # Panics
///
/// When the OS entropy source fails.
pub(crate) fn seed() -> u64 {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("the OS random number generator failed");
    u64::from_le_bytes(seed)
}
