//! A throw-away self-signed certificate for the matrix's TLS case, made with the `openssl`
//! command. The clients connect with `rediss://…#insecure` (no certificate check): the case
//! measures what TLS costs on the wire, not certificate handling.

use redlock_harness::ServerTls;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The certificate and key files, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct SelfSigned {
    dir: PathBuf,
}

impl SelfSigned {
    /// Makes a P-256 certificate for `localhost` / `127.0.0.1`, valid for a day; the error
    /// names what failed (e.g. `openssl` missing).
    pub fn generate() -> Result<SelfSigned, String> {
        let dir = std::env::temp_dir().join(format!(
            "redlock-bench-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        let certs = SelfSigned { dir };
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost", "-addext"])
            .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
            .arg("-keyout")
            .arg(certs.key())
            .arg("-out")
            .arg(certs.cert())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(certs)
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// What a node's TLS port serves: this certificate, no client certificate asked for.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls {
            cert: self.cert(),
            key: self.key(),
            ca: self.cert(),
            require_client_cert: false,
        }
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
