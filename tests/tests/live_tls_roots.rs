//! `rediss://` verified against the system's roots as OpenSSL-based tools find them: with
//! `SSL_CERT_FILE` naming the test CA, every adapter accepts the test server with no TLS
//! setting in code. Its own test binary, one test: the variable is process-wide.

use redlock_tests::conformance::{AsyncClient, BlockingClient};
use redlock_tests::transports::{ssl_cert_file, tls_system_roots};

#[test]
fn ssl_cert_file_is_honoured_on_every_adapter() {
    let file = ssl_cert_file();
    // Set before any TLS configuration is built in this process (this is its only test).
    std::env::set_var("SSL_CERT_FILE", &file);
    std::env::remove_var("SSL_CERT_DIR");
    tls_system_roots::<AsyncClient<redlock_tokio::Tokio>>();
    tls_system_roots::<AsyncClient<redlock_smol::Smol>>();
    tls_system_roots::<AsyncClient<redlock_async_std::AsyncStd>>();
    tls_system_roots::<BlockingClient>();
    let _ = std::fs::remove_file(file);
}
