//! Builder methods on [`Options`], the way Rust users expect to set them:
//! `Options::default().retry_count(3).key_prefix("locks:")`.
//!
//! `Options` belongs to `redlock-core`; this trait adds the methods from outside. Bring it into
//! scope with `use redlock_tokio::OptionsExt as _;` (or the adapter you use).

use redlock_core::{Options, Protocol, Scripts};
use std::time::Duration;

/// Chainable setters for [`Options`]; each returns the options with one field changed. The
/// values are checked by `connect` (`Options::validate`), not here.
///
/// ```
/// use redlock_async::{Options, OptionsExt as _};
/// use std::time::Duration;
/// let options = Options::default()
///     .retry_count(3)
///     .retry_delay(Duration::from_millis(50))
///     .key_prefix("locks:")
///     .fencing(true)
///     .spin_before_park(Duration::ZERO); // never spin: least CPU, a little more latency
/// assert_eq!(options.retry_count, Some(3));
/// assert_eq!(options.key_prefix, "locks:");
/// ```
pub trait OptionsExt: Sized {
    /// Fraction of the ttl assumed lost to clock drift (default 0.01).
    fn drift_factor(self, factor: f64) -> Self;
    /// How many times a failed attempt is retried (default 10).
    fn retry_count(self, count: u32) -> Self;
    /// Retries a failed attempt until the caller gives up (drops the future).
    fn retry_forever(self) -> Self;
    /// Pause between attempts (default 200 ms).
    fn retry_delay(self, delay: Duration) -> Self;
    /// How much the pause varies either way (default 100 ms).
    fn retry_jitter(self, jitter: Duration) -> Self;
    /// With automatic extension, how long before the end of validity to extend (default 500 ms).
    fn automatic_extension_threshold(self, threshold: Duration) -> Self;
    /// How long one request may wait for its reply (default 500 ms).
    fn node_timeout(self, timeout: Duration) -> Self;
    /// Prepended to every resource name to form its key (default empty).
    fn key_prefix(self, prefix: impl Into<String>) -> Self;
    /// The RESP version to speak (default RESP2).
    fn protocol(self, protocol: Protocol) -> Self;
    /// The Lua scripts (default: the built-in ones).
    fn scripts(self, scripts: Scripts) -> Self;
    /// Sent as `CLIENT SETNAME` during the handshake.
    fn client_name(self, name: impl Into<String>) -> Self;
    /// The largest reply a connection buffers before cutting the node off (default 1 MiB).
    fn max_reply_bytes(self, bytes: usize) -> Self;
    /// Hand out fencing tokens (default off).
    fn fencing(self, on: bool) -> Self;
    /// Restart-aware voting with this grace (default off); at least your longest ttl.
    fn restart_grace(self, grace: Duration) -> Self;
    /// Wait for announced releases on RESP3 connections, the retry delay as the fallback
    /// (default on; see `Options::wait_for_release`).
    fn wait_for_release(self, on: bool) -> Self;
    /// How long after a write the client spins for the replies before parking its thread
    /// (default 100 µs; zero: never; its cost: `Options::spin_before_park`). On the async
    /// adapters the driver spins by yielding to its runtime and polling its sockets again, so
    /// other tasks still run; when it does depends on the runtime
    /// ([`DriverSpin`](crate::DriverSpin)). The blocking adapter's calling thread spins on its
    /// result instead, only while it is the client's only caller waiting.
    fn spin_before_park(self, spin: Duration) -> Self;
}

impl OptionsExt for Options {
    fn drift_factor(mut self, factor: f64) -> Self {
        self.drift_factor = factor;
        self
    }
    fn retry_count(mut self, count: u32) -> Self {
        self.retry_count = Some(count);
        self
    }
    fn retry_forever(mut self) -> Self {
        self.retry_count = None;
        self
    }
    fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }
    fn retry_jitter(mut self, jitter: Duration) -> Self {
        self.retry_jitter = jitter;
        self
    }
    fn automatic_extension_threshold(mut self, threshold: Duration) -> Self {
        self.automatic_extension_threshold = threshold;
        self
    }
    fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }
    fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
    fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
    fn scripts(mut self, scripts: Scripts) -> Self {
        self.scripts = scripts;
        self
    }
    fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }
    fn max_reply_bytes(mut self, bytes: usize) -> Self {
        self.max_reply_bytes = bytes;
        self
    }
    fn fencing(mut self, on: bool) -> Self {
        self.fencing = on;
        self
    }
    fn wait_for_release(mut self, on: bool) -> Self {
        self.wait_for_release = on;
        self
    }
    fn restart_grace(mut self, grace: Duration) -> Self {
        self.restart_grace = Some(grace);
        self
    }
    fn spin_before_park(mut self, spin: Duration) -> Self {
        self.spin_before_park = spin;
        self
    }
}
