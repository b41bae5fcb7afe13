//! TLS with rustls (the `ring` provider: it builds with a C compiler alone), over any
//! [`Connection`]. rustls is itself sans-IO, so one stream type serves every runtime and every
//! custom connector: its `read_tls` / `write_tls` are fed through the inner connection's
//! `poll_read` / `poll_write`, a `Pending` standing in as `WouldBlock`.
//!
//! The handshake runs inside the connect future (the connect timeout covers it, and a refused
//! certificate is a failed connection whose error names the reason); the driver only ever sees
//! an established session.

use crate::node::{Address, Node, Tls};
use crate::runtime::{BoxFuture, Connection};
use crate::tls_error::TlsError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Client configurations already built, one per distinct [`Tls`] settings: reading the system's
/// roots once per client rather than once per node.
#[derive(Default)]
pub(crate) struct Cache(Vec<(Tls, Arc<ClientConfig>)>);

/// A node's TLS, ready to wrap a stream.
#[derive(Clone)]
pub(crate) struct Secure {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// Whether the settings named the server (then every connection checks that name).
    named: bool,
}

/// Reads the files `tls` names and builds the client configuration for `node`.
pub(crate) fn prepare(node: &Node, tls: &Tls, cache: &mut Cache) -> Result<Secure, TlsError> {
    let name = match (&tls.server_name, &node.address) {
        (Some(name), _) => name.clone(),
        (None, Address::Tcp { host, .. }) => host.clone(),
        (None, _) => {
            return Err(TlsError::NoServerName {
                node: node.to_string(),
            })
        }
    };
    let name = ServerName::try_from(name.clone()).map_err(|e| TlsError::Refused {
        reason: format!("{name:?} is not a valid server name: {e}"),
    })?;
    let config = match cache.0.iter().find(|(t, _)| t == tls) {
        Some((_, config)) => config.clone(),
        None => {
            let config = Arc::new(client_config(tls)?);
            cache.0.push((tls.clone(), config.clone()));
            config
        }
    };
    Ok(Secure {
        config,
        name,
        named: tls.server_name.is_some(),
    })
}

impl Secure {
    /// The same settings for a connection to `host` (another server of the node's cluster):
    /// its certificate is checked against `host`, unless the settings name the server. A host
    /// that is no valid server name keeps the node's name (the handshake then fails on the
    /// certificate, saying so).
    pub(crate) fn for_host(&self, host: &str) -> Secure {
        let name = match ServerName::try_from(host.to_string()) {
            Ok(name) if !self.named => name,
            _ => self.name.clone(),
        };
        Secure {
            name,
            ..self.clone()
        }
    }

    /// A connect future that opens `plain` and then completes the TLS handshake over it.
    pub(crate) fn wrap(
        &self,
        plain: BoxFuture<io::Result<Box<dyn Connection>>>,
    ) -> BoxFuture<io::Result<Box<dyn Connection>>> {
        let (config, name) = (self.config.clone(), self.name.clone());
        Box::pin(async move {
            let io = plain.await?;
            let session = ClientConnection::new(config, name)
                .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
            let mut stream = TlsStream { io, session };
            std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
            Ok(Box::new(stream) as Box<dyn Connection>)
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls`.
fn client_config(tls: &Tls) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let refused = |e: rustls::Error| TlsError::Refused {
        reason: e.to_string(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(refused)?;
    let builder = if tls.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(tls)?)
    };
    match &tls.client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_certs("client certificate", cert)?;
            let key_pem = read_file("client key", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
                what: "client key",
                path: key.clone(),
                reason: format!("no PEM private key in it ({e})"),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(refused)
        }
    }
}

/// The CA file's certificates, or the system's roots (honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`).
fn roots(tls: &Tls) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &tls.ca_file {
        for cert in read_certs("CA certificate", path)? {
            store.add(cert).map_err(|e| TlsError::File {
                what: "CA certificate",
                path: path.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        return Ok(store);
    }
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let reason = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "the system's certificate store is empty".to_string(),
        };
        return Err(TlsError::NoSystemRoots { reason });
    }
    Ok(store)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every PEM certificate in the file at `path`; at least one.
fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let bad = |reason: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("unreadable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".to_string()));
    }
    Ok(certs)
}

/// The verifier behind [`Tls::danger_accept_invalid_certs`]: any certificate, any name. The
/// handshake's signatures are still checked (they prove the peer holds the key it presents,
/// which costs nothing and catches a broken server).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS session over an inner connection.
struct TlsStream {
    io: Box<dyn Connection>,
    session: ClientConnection,
}

/// The inner connection as `std::io`, for rustls: `Pending` becomes `WouldBlock` (the
/// connection has registered the waker by then).
struct SyncIo<'a, 'b> {
    io: &'a mut dyn Connection,
    cx: &'a mut Context<'b>,
}

impl Read for SyncIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.io.poll_read(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for SyncIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.io.poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `Ok` into `Ready`, `WouldBlock` into `Pending`.
fn poll_io<T>(result: io::Result<T>) -> Poll<io::Result<T>> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl TlsStream {
    /// Sends what the session has queued (records, alerts) until done or the socket is full.
    /// `Ready(Ok)` once nothing is queued.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.session.wants_write() {
            let mut io = SyncIo {
                io: &mut *self.io,
                cx,
            };
            match poll_io(self.session.write_tls(&mut io)) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads ciphertext and processes it. `Ready(Ok(0))` when the peer closed the socket.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut *self.io,
            cx,
        };
        let n = match poll_io(self.session.read_tls(&mut io)) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if let Err(e) = self.session.process_new_packets() {
            // Tell the server why (rustls queued an alert), then fail with the reason.
            let _ = self.poll_flush(cx);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS: {e}"),
            )));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The server waits for what we have not sent yet.
                Poll::Pending => return Poll::Pending,
            }
            if !self.session.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS: the server closed the connection during the handshake \
                         (does it require a client certificate, or speak TLS at all?)",
                    )))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Connection for TlsStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            // Records still queued (the tail of a write the socket did not take, a key update)
            // go out whenever the driver reads, which it does every pass.
            if let Poll::Ready(Err(e)) = self.poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
            match self.session.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: for lock traffic, a close like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Take new bytes only once the old ones are out, so the session's buffer stays small.
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let n = self.session.writer().write(buf)?;
        // Accepted either way; what the socket does not take now goes on the next read or write.
        if let Poll::Ready(Err(e)) = self.poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }
}
