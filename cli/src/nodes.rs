//! Where the lock lives: the `--nodes`, `--key-prefix` and password flags `run` and `status`
//! share.

use clap::Args;
use redlock_cli::secret::with_password;
use redlock_core::NodeConfig;
use std::path::PathBuf;

/// The environment variable a password may come from (never a flag: a command line is visible
/// to every user of the machine).
pub const ENV_PASSWORD: &str = "REDLOCK_PASSWORD";

/// Node flags shared by `run` and `status`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Redis nodes (independent masters), comma-separated URLs
    /// `redis://[user:pass@]host[:port][/db]`. The value is never shown in help or messages.
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
        Ok(self
            .nodes
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(|u| match &password {
                Some(p) => with_password(u, p),
                None => u.to_string(),
            })
            .collect())
    }

    /// The nodes parsed, in order; an error (credentials never shown) for a bad URL.
    pub fn configs(&self) -> Result<Vec<NodeConfig>, String> {
        let urls = self.urls()?;
        if urls.is_empty() {
            return Err("no Redis nodes configured".into());
        }
        urls.iter()
            .map(|u| redlock_tokio::parse_node_url(u).map_err(|e| e.to_string()))
            .collect()
    }
}
