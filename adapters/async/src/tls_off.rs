//! TLS when the `tls` feature is off: every node that asks for it is refused at `connect` with
//! an error naming the feature.

use crate::node::{Node, Tls};
use crate::runtime::{BoxFuture, Connection};
use crate::tls_error::TlsError;
use std::io;

/// Settings made ready once per client. None can exist without the feature.
#[derive(Default)]
pub(crate) struct Cache {}

/// A node's TLS, ready to wrap a stream. Cannot exist without the feature.
#[derive(Clone)]
pub(crate) enum Secure {}

/// Refuses: TLS is not built in.
pub(crate) fn prepare(node: &Node, _tls: &Tls, _cache: &mut Cache) -> Result<Secure, TlsError> {
    Err(TlsError::NotBuilt {
        node: node.to_string(),
    })
}

impl Secure {
    pub(crate) fn for_host(&self, _host: &str) -> Secure {
        match *self {}
    }

    pub(crate) fn wrap(
        &self,
        _plain: BoxFuture<io::Result<Box<dyn Connection>>>,
    ) -> BoxFuture<io::Result<Box<dyn Connection>>> {
        match *self {}
    }
}
