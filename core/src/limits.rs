//! The bounds the engine enforces on what callers hand it.

use std::time::Duration;

/// The longest ttl, timeout, delay or grace the engine accepts: 365 days. Longer ones are
/// refused (as [`Error::TtlTooLong`](crate::Error::TtlTooLong) or
/// [`Error::InvalidOption`](crate::Error::InvalidOption)) rather than risk overflowing `Instant`
/// arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The fewest random bytes a lock token may be made from.
pub const MIN_TOKEN_BYTES: usize = 16;
