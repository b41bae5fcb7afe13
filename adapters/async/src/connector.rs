//! How a connection to a node is opened: by the runtime (TCP, or a Unix socket) or by a
//! [`Connector`] of the user's own, then wrapped in TLS when the node asks for it.

use crate::node::{Address, Node};
use crate::runtime::{BoxFuture, Connection, Runtime};
use crate::tls::{self, Secure};
use crate::tls_error::TlsError;
use redlock_core::Endpoint;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Opens the byte streams the client talks to its nodes over, instead of the runtime's TCP or
/// Unix socket: a stream through a proxy or an SSH tunnel, an in-memory pipe, a socket that is
/// already authenticated, an address found by your own service discovery.
///
/// Return the plain stream: when the node asks for TLS the client runs the TLS handshake over
/// it; the Redis handshake (AUTH, SELECT, HELLO) follows as for any connection. The client
/// calls `connect` again, with backoff, whenever a connection fails.
///
/// A closure `Fn(&Address) -> BoxFuture<io::Result<Box<dyn Connection>>>` is a connector; the
/// adapter crates have a `Stream` wrapper that makes their runtime's streams a [`Connection`].
pub trait Connector: Send + Sync + 'static {
    /// Opens a stream to the node at `address`.
    fn connect(&self, address: &Address) -> BoxFuture<io::Result<Box<dyn Connection>>>;
}

impl<F> Connector for F
where
    F: Fn(&Address) -> BoxFuture<io::Result<Box<dyn Connection>>> + Send + Sync + 'static,
{
    fn connect(&self, address: &Address) -> BoxFuture<io::Result<Box<dyn Connection>>> {
        self(address)
    }
}

impl Connection for Box<dyn Connection> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        (**self).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        (**self).poll_write(cx, buf)
    }
}

/// Everything needed to open one node's connection, prepared once at `connect`: its address
/// (for a cluster, each seed in turn) and TLS.
#[derive(Clone)]
pub(crate) struct Dial {
    /// The addresses tried in turn, one per attempt: one, or a cluster's seeds.
    targets: Vec<(Address, Option<Secure>)>,
    /// The next one to try.
    next: usize,
    /// A cluster's seeds: many servers behind one node.
    cluster: bool,
}

/// How many server processes a local cluster node is taken to run: its primaries, three at
/// least (what Redis's own tooling creates).
const CLUSTER_PRIMARIES: usize = 3;

/// One [`Dial`] per node; fails when a node's TLS settings cannot be used.
pub(crate) fn prepare(nodes: &[Node]) -> Result<Vec<Dial>, TlsError> {
    let mut cache = tls::Cache::default();
    nodes
        .iter()
        .map(|node| {
            let secure = match &node.tls {
                None => None,
                Some(settings) => Some(tls::prepare(node, settings, &mut cache)?),
            };
            let seeds = node.seeds.iter().map(|address| {
                let secure = match (&secure, address) {
                    (Some(s), Address::Tcp { host, .. }) => Some(s.for_host(host)),
                    (s, _) => s.clone(),
                };
                (address.clone(), secure)
            });
            let targets = std::iter::once((node.address.clone(), secure.clone()))
                .chain(seeds)
                .collect();
            Ok(Dial {
                targets,
                next: 0,
                cluster: node.cluster,
            })
        })
        .collect()
}

impl Dial {
    /// This node's dial to another server of the same deployment (a cluster's shard primary):
    /// same TLS settings, with the certificate checked against `to`'s host unless the node
    /// names its server explicitly.
    pub(crate) fn to(&self, to: &Endpoint) -> Dial {
        let secure = self.targets[0].1.as_ref().map(|s| s.for_host(to.host()));
        let address = Address::Tcp {
            host: to.host().to_string(),
            port: to.port(),
        };
        Dial {
            targets: vec![(address, secure)],
            next: 0,
            cluster: false,
        }
    }

    /// Whether every address it tries is on this machine (loopback, `localhost`, a Unix socket):
    /// such a server shares this machine's cores with the client.
    pub(crate) fn on_this_machine(&self) -> bool {
        self.targets.iter().all(|(address, _)| match address {
            Address::Unix { .. } => true,
            Address::Tcp { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
    }

    /// How many server processes share this machine's cores with the client through this
    /// dial: none for a remote server, one for a local one, and for a local cluster its
    /// primaries (the client sees one node).
    pub(crate) fn servers_on_this_machine(&self) -> usize {
        match (self.on_this_machine(), self.cluster) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => CLUSTER_PRIMARIES,
        }
    }

    /// A future that opens the connection: `connector`'s, or else the runtime's; then TLS. Each
    /// call tries the next of a cluster's seeds.
    pub(crate) fn open<R: Runtime>(
        &mut self,
        rt: &R,
        connector: Option<&Arc<dyn Connector>>,
    ) -> BoxFuture<io::Result<Box<dyn Connection>>> {
        let (address, secure) = &self.targets[self.next % self.targets.len()];
        self.next = self.next.wrapping_add(1);
        let plain = match (connector, address) {
            (Some(connector), address) => connector.connect(address),
            (None, Address::Tcp { host, port }) => boxed(rt.connect(host.clone(), *port)),
            (None, Address::Unix { path }) => boxed(rt.connect_unix(path.clone())),
        };
        match secure {
            None => plain,
            Some(secure) => secure.wrap(plain),
        }
    }
}

fn boxed<C: Connection>(
    fut: BoxFuture<io::Result<C>>,
) -> BoxFuture<io::Result<Box<dyn Connection>>> {
    Box::pin(async move { fut.await.map(|c| Box::new(c) as Box<dyn Connection>) })
}

/// Opens one connection to `node` the way the client does (the runtime's TCP or Unix socket,
/// then the TLS handshake when the node asks for it), without the Redis handshake.
///
/// For a [`Connector`] that wraps the default one (to count or log connections), or to check a
/// node's TLS settings: a refused certificate fails here with rustls's reason (for example
/// `invalid peer certificate: UnknownIssuer`). Settings that cannot be used (an unreadable CA
/// file, TLS not built in) fail with [`io::ErrorKind::InvalidInput`].
pub async fn open_connection<R: Runtime>(rt: &R, node: &Node) -> io::Result<Box<dyn Connection>> {
    let mut dial = prepare(std::slice::from_ref(node))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        .pop()
        .ok_or_else(|| io::Error::other("no connection prepared"))?;
    dial.open(rt, None).await
}

#[cfg(test)]
mod tests {
    use super::prepare;
    use crate::node::Node;

    #[test]
    fn loopback_and_unix_sockets_are_on_this_machine() {
        let nodes = [
            Node::tcp("127.0.0.1", 6379),
            Node::tcp("::1", 6379),
            Node::tcp("LocalHost", 6379),
            Node::unix("/tmp/redis.sock"),
            Node::tcp("10.0.0.7", 6379),
            Node::tcp("redis.example.com", 6379),
            Node::cluster([("127.0.0.1", 7000), ("127.0.0.2", 7001)]).expect("seeds"),
            Node::cluster([("127.0.0.1", 7000), ("10.0.0.8", 7001)]).expect("seeds"),
        ];
        let local: Vec<bool> = prepare(&nodes)
            .expect("no TLS to prepare")
            .iter()
            .map(|d| d.on_this_machine())
            .collect();
        assert_eq!(
            local,
            [true, true, true, true, false, false, true, false],
            "a cluster is local only when every seed is"
        );
        let servers: Vec<usize> = prepare(&nodes)
            .expect("no TLS to prepare")
            .iter()
            .map(|d| d.servers_on_this_machine())
            .collect();
        assert_eq!(
            servers,
            [1, 1, 1, 1, 0, 0, 3, 0],
            "a local cluster counts its primaries"
        );
    }
}
