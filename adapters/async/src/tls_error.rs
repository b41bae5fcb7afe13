//! Why a node's TLS settings cannot be used. Reported by `connect` before anything is sent.

use std::fmt;
use std::path::PathBuf;

/// A node's TLS settings that cannot be used. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The node asks for TLS (`rediss://`, `valkeys://` or [`Node::tls`](crate::Node::tls))
    /// and the crate was built without it.
    NotBuilt {
        /// The node, `host:port`.
        node: String,
    },
    /// There is no name to check the server's certificate against (a Unix socket): set
    /// [`Tls::server_name`](crate::Tls::server_name).
    NoServerName {
        /// The node.
        node: String,
    },
    /// A file named in the settings could not be read or holds nothing usable.
    File {
        /// What the file was to hold: `CA certificate`, `client certificate`, `client key`.
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No usable root certificate was found on the system.
    NoSystemRoots {
        /// What the search ran into.
        reason: String,
    },
    /// rustls refused the settings (for example a key that does not match the certificate).
    Refused {
        /// rustls's reason.
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NotBuilt { node } => write!(
                f,
                "node {node} asks for TLS, which is not built in: enable the `tls` feature of \
                 the redlock adapter crate (e.g. redlock-tokio = {{ version = \"…\", features = \
                 [\"tls\"] }})"
            ),
            TlsError::NoServerName { node } => write!(
                f,
                "node {node}: TLS needs a name to check the certificate against; set \
                 Tls::server_name"
            ),
            TlsError::File { what, path, reason } => {
                write!(f, "{what} file {}: {reason}", path.display())
            }
            TlsError::NoSystemRoots { reason } => write!(
                f,
                "no system root certificates found ({reason}); install ca-certificates, set \
                 SSL_CERT_FILE, or give a CA file (Tls::ca_file)"
            ),
            TlsError::Refused { reason } => write!(f, "TLS settings refused: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}
