//! Where the lock lives: the `--nodes`, `--key-prefix`, password and TLS flags `run` and
//! `status` share.

use clap::Args;
use redlock_cli::secret::with_password;
use redlock_tokio::{Node, Tls};
use std::path::PathBuf;

/// The environment variable a password may come from (never a flag: a command line is visible
/// to every user of the machine).
pub const ENV_PASSWORD: &str = "REDLOCK_PASSWORD";

/// Node flags shared by `run` and `status`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Redis nodes (independent masters), comma-separated URLs
    /// `redis://[user:pass@]host[:port][/db]`; a Redis Cluster as one node is
    /// `redis+cluster://[user:pass@]host:port,host:port…` (its seeds). The value is never shown
    /// in help or messages.
    #[arg(
        long,
        env = "REDLOCK_NODES",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    nodes: Vec<String>,
    /// Read the password for nodes whose URL has none from FILE (its first line). Or set
    /// REDLOCK_PASSWORD.
    #[arg(long, env = "REDLOCK_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Prepended to the resource name to form the Redis key.
    #[arg(
        long,
        env = "REDLOCK_KEY_PREFIX",
        default_value = "",
        value_name = "PREFIX"
    )]
    pub key_prefix: String,
    /// For `rediss://` nodes: trust only the CA certificate(s) in this PEM file instead of the
    /// system's roots (which honour SSL_CERT_FILE).
    #[arg(long, env = "REDLOCK_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// For `rediss://` nodes that require client certificates: this certificate chain (PEM),
    /// with --tls-key.
    #[arg(
        long,
        env = "REDLOCK_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "REDLOCK_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

impl NodeArgs {
    /// The node URLs, trimmed, empty entries dropped, with the password from `--password-file`
    /// or `REDLOCK_PASSWORD` put into those that have none. An error names the file, not its
    /// content.
    pub fn urls(&self) -> Result<Vec<String>, String> {
        let password = match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read --password-file {}: {e}", path.display()))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            None => std::env::var(ENV_PASSWORD).ok(),
        }
        .filter(|p| !p.is_empty());
        // The list is split at commas, which also separate a cluster URL's seeds: a piece
        // without a scheme after a `…+cluster://` URL is one more of its seeds.
        let mut joined: Vec<String> = Vec::new();
        for piece in self
            .nodes
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
        {
            match joined.last_mut() {
                Some(last) if !piece.contains("://") && is_cluster_url(last) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => joined.push(piece.to_string()),
            }
        }
        Ok(joined
            .iter()
            .map(|u| match &password {
                Some(p) => with_password(u, p),
                None => u.to_string(),
            })
            .collect())
    }

    /// The nodes parsed, in order, with `--tls-ca` / `--tls-cert` / `--tls-key` applied to the
    /// TLS ones; an error (credentials never shown) for a bad URL, or TLS flags when no node
    /// uses TLS (they would be silently ignored).
    pub fn nodes(&self) -> Result<Vec<Node>, String> {
        let urls = self.urls()?;
        if urls.is_empty() {
            return Err("no Redis nodes configured".into());
        }
        let mut nodes = urls
            .iter()
            .map(|u| Node::from_url(u).map_err(|e| e.to_string()))
            .collect::<Result<Vec<Node>, String>>()?;
        let flags = self.tls_ca.is_some() || self.tls_cert.is_some();
        if flags && nodes.iter().all(|n| n.tls.is_none()) {
            return Err(
                "--tls-ca, --tls-cert and --tls-key apply to rediss:// nodes, and no node is \
                 one"
                .into(),
            );
        }
        for node in &mut nodes {
            if let Some(tls) = node.tls.take() {
                node.tls = Some(self.apply_tls(tls));
            }
        }
        Ok(nodes)
    }

    /// `tls` with the TLS flags applied.
    fn apply_tls(&self, mut tls: Tls) -> Tls {
        if let Some(ca) = &self.tls_ca {
            tls = tls.ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.client_auth(cert, key);
        }
        tls
    }
}

/// Whether `url`'s scheme names a cluster (`redis+cluster://`, `rediss+cluster://`, …).
fn is_cluster_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.to_ascii_lowercase().ends_with("+cluster"))
}
