//! What a client does before it has sockets: parse the URLs, prepare each node's transport,
//! seed and build the engine.

use crate::connector::{self, Dial};
use crate::error::Error;
use crate::node::Node;
use crate::node_url::{parse_node, UrlError};
use crate::overlap::leaves_a_core;
use redlock_core::{Config, Engine, Options};
use std::time::{Duration, Instant};

/// `urls` parsed into nodes; [`Error::InvalidUrl`] names the first that cannot be.
pub(crate) fn parse_urls<I, S>(urls: I) -> Result<Vec<Node>, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let nodes = urls
        .into_iter()
        .map(|url| parse_node(url.as_ref()))
        .collect::<Result<Vec<_>, UrlError>>()?;
    Ok(nodes)
}

/// What the driver is started with, besides the engine.
pub(crate) struct Setup {
    /// The engine's view of each node (for log lines).
    pub(crate) configs: Vec<redlock_core::NodeConfig>,
    /// How to open each node's connection.
    pub(crate) dials: Vec<Dial>,
    /// How long a first connection attempt may take (`max(node_timeout, 1 s)`).
    pub(crate) connect_timeout: Duration,
    /// Whether the local servers leave the client a core ([`spare_core`]).
    pub(crate) spare_core: bool,
}

/// A new engine for `nodes` and how to reach each.
///
/// Returns [`Error::Tls`] for TLS settings that cannot be used (or TLS not built in),
/// [`Error::Config`] for no nodes, a node listed twice or an option out of range.
pub(crate) fn new_engine(nodes: &[Node], options: &Options) -> Result<(Engine, Setup), Error> {
    let configs: Vec<_> = nodes.iter().map(Node::to_config).collect();
    let config = Config::new(configs.clone(), options.clone());
    // Configuration first: a duplicate node is the clearer message than its CA file.
    config.validate()?;
    let dials = connector::prepare(nodes)?;
    let engine = Engine::new(config, Instant::now(), seed())?;
    let setup = Setup {
        configs,
        spare_core: spare_core(&dials),
        dials,
        connect_timeout: options.node_timeout.max(Duration::from_secs(1)),
    };
    Ok((engine, setup))
}

/// Whether the server processes the nodes in `dials` run on this machine (nodes on loopback
/// or a Unix socket; a cluster node counts its primaries) leave the client one of the
/// machine's cores: where the client may spend CPU to save latency.
pub(crate) fn spare_core(dials: &[Dial]) -> bool {
    let local = dials.iter().map(Dial::servers_on_this_machine).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    leaves_a_core(local, cores)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Tls;
    use crate::tls_error::TlsError;

    #[test]
    fn tls_settings_are_checked_at_connect() {
        let nodes = parse_urls(["rediss://127.0.0.1:1"]).unwrap();
        let built_in = cfg!(feature = "tls");
        match new_engine(&nodes, &Options::default()) {
            // Built in: the system roots are found, or their absence is named.
            Ok(_) | Err(Error::Tls(TlsError::NoSystemRoots { .. })) => assert!(built_in),
            Err(e) => {
                assert!(!built_in, "{e}");
                assert!(matches!(e, Error::Tls(TlsError::NotBuilt { .. })), "{e}");
                assert!(e.to_string().contains("`tls` feature"), "{e}");
            }
        }
        let node =
            Node::tcp("127.0.0.1", 1).with_tls(Tls::default().ca_file("/nonexistent/ca.pem"));
        let err = new_engine(&[node], &Options::default())
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Tls(_)), "{err}");
        if built_in {
            assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        }
    }

    #[test]
    fn a_spare_core_is_one_the_local_servers_leave() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dials = |urls: Vec<String>| connector::prepare(&parse_urls(urls).unwrap()).unwrap();
        // Nodes elsewhere take none of this machine's cores.
        assert!(spare_core(&dials(
            vec!["redis://redis.example:6379".into()]
        )));
        // As many loopback servers as cores take them all.
        let local: Vec<String> = (0..cores)
            .map(|i| format!("redis://127.0.0.1:{}", 7001 + i))
            .collect();
        assert!(!spare_core(&dials(local)));
        // One fewer leaves one.
        let fewer: Vec<String> = (1..cores)
            .map(|i| format!("redis://127.0.0.1:{}", 7001 + i))
            .collect();
        assert!(spare_core(&dials(fewer)));
    }
}
