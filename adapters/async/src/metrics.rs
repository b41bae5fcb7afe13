//! Metrics: what the client records through the [`metrics`](https://docs.rs/metrics/0.24)
//! facade when the `metrics` feature is on (`redlock-async/metrics`, forwarded as `metrics` by
//! `redlock-tokio`, `redlock-smol`, `redlock-async-std` and `redlock-blocking`).
//!
//! Install any recorder of the `metrics` 0.24 ecosystem (a Prometheus exporter, a StatsD
//! one, …) before connecting; nothing is recorded while none is installed. Each connect
//! describes the metrics below (unit and help text) to the recorder then installed. Without the
//! feature nothing is recorded and the `metrics` crate is not linked; the names stay here, for
//! dashboards and tests.
//!
//! | name | type | unit | labels | counts or measures |
//! | --- | --- | --- | --- | --- |
//! | [`redlock_acquire_seconds`](ACQUIRE_SECONDS) | histogram | seconds | `outcome` | each acquire, from the call to its result |
//! | [`redlock_acquire_contended_wait_seconds`](CONTENDED_WAIT_SECONDS) | histogram | seconds | | acquires that got the lock after more than one attempt, from the call to the lock |
//! | [`redlock_acquisitions_total`](ACQUISITIONS_TOTAL) | counter | | | acquires that returned a lock |
//! | [`redlock_acquire_refusals_total`](REFUSALS_TOTAL) | counter | | | acquires that ended [`Error::Locked`](crate::Error::Locked): another holder kept the resource through every attempt |
//! | [`redlock_acquire_timeouts_total`](TIMEOUTS_TOTAL) | counter | | | acquires that ran out of their [`AcquireOptions`](crate::AcquireOptions) bound ([`Error::TimedOut`](crate::Error::TimedOut)) |
//! | [`redlock_releases_total`](RELEASES_TOTAL) | counter | | `outcome` | releases: awaited ones by their result, and those handed to the driver by a dropped guard or hold |
//! | [`redlock_extensions_total`](EXTENSIONS_TOTAL) | counter | | `outcome` | extends, the keep-alive's included |
//! | [`redlock_leases_lost_total`](LEASES_LOST_TOTAL) | counter | | `reason` | leases the keep-alive marked lost |
//! | [`redlock_node_errors_total`](NODE_ERRORS_TOTAL) | counter | | `node`, `kind` | each failure of a node's connection |
//!
//! Label values:
//!
//! - `outcome` of an acquire: `acquired`, `locked`, `unreachable`, `timed_out`, `expired`
//!   (granted too late to leave any validity), `other` (refused before sending: bad arguments).
//! - `outcome` of an extension: `extended`, `not_held`, `expired`, `unreachable`, `other`.
//! - `outcome` of a release: `released` (its result was awaited and came back; see
//!   [`Released::confirmed`](crate::Released) for how many nodes deleted), `unreachable`,
//!   `other`, `detached` (handed to the driver by a dropped guard, hold or `using`; its result is
//!   not known).
//! - `reason` a lease was lost: `refused` (the nodes refused the extension: the keys expired or
//!   are someone else's), `unreachable` (too few nodes answered and no retry could start inside
//!   validity), `expired` (validity ran out before an extension succeeded), `cap` (a
//!   [`HoldLimits`](crate::HoldLimits) cap was reached), `other` (an extension refused before
//!   sending, e.g. a ttl out of range).
//! - `node`: the node's address as errors print it (`127.0.0.1:7001`, `[::1]:7001`).
//! - `kind` of a node error: `connect_failed` (a connection attempt failed: refused, no route,
//!   TLS handshake, …), `connect_timeout`, `disconnected` (the node closed the connection or a
//!   read failed), `write_failed`; and the reasons the engine drops a connection to open it
//!   again: `reply_timeout` (no reply within `node_timeout`), `bad_reply` (bytes that are not
//!   RESP, a reply too large, or of the wrong type), `handshake_refused` (`AUTH`, `HELLO`,
//!   `SELECT` or `CLIENT SETNAME` refused), `reconnect` (any other reason).
//!
//! An operation whose future is dropped before it completes records nothing. A lease is counted
//! lost when its keep-alive marks it so; one released or dropped first (its own clock already
//! said lost at [`Lease::lost_at`](crate::Lease::lost_at)) is not counted. Durations are
//! measured on the caller's clock, from the call to the moment the caller takes the result.

/// Histogram, seconds: each acquire, from the call to its result. Label `outcome`.
pub const ACQUIRE_SECONDS: &str = "redlock_acquire_seconds";
/// Histogram, seconds: acquires that got the lock after more than one attempt (they waited for
/// another holder or for nodes), from the call to the lock.
pub const CONTENDED_WAIT_SECONDS: &str = "redlock_acquire_contended_wait_seconds";
/// Counter: acquires that returned a lock.
pub const ACQUISITIONS_TOTAL: &str = "redlock_acquisitions_total";
/// Counter: acquires that ended `Locked` (another holder kept the resource).
pub const REFUSALS_TOTAL: &str = "redlock_acquire_refusals_total";
/// Counter: acquires that ran out of their `AcquireOptions` bound (`TimedOut`).
pub const TIMEOUTS_TOTAL: &str = "redlock_acquire_timeouts_total";
/// Counter: releases. Label `outcome`.
pub const RELEASES_TOTAL: &str = "redlock_releases_total";
/// Counter: extensions. Label `outcome`.
pub const EXTENSIONS_TOTAL: &str = "redlock_extensions_total";
/// Counter: leases marked lost by the keep-alive. Label `reason`.
pub const LEASES_LOST_TOTAL: &str = "redlock_leases_lost_total";
/// Counter: failures of a node's connection. Labels `node`, `kind`.
pub const NODE_ERRORS_TOTAL: &str = "redlock_node_errors_total";

#[cfg(feature = "metrics")]
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use redlock_core::ConnError;
use std::time::Duration;

/// Gives the installed recorder each metric's unit and help text.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        describe_histogram!(
            ACQUIRE_SECONDS,
            Unit::Seconds,
            "Acquires, from the call to the result, by outcome."
        );
        describe_histogram!(
            CONTENDED_WAIT_SECONDS,
            Unit::Seconds,
            "Acquires that got the lock after more than one attempt, from the call to the lock."
        );
        describe_counter!(ACQUISITIONS_TOTAL, "Acquires that returned a lock.");
        describe_counter!(
            REFUSALS_TOTAL,
            "Acquires that ended Locked: another holder kept the resource."
        );
        describe_counter!(TIMEOUTS_TOTAL, "Acquires that ran out of their time bound.");
        describe_counter!(RELEASES_TOTAL, "Releases, by outcome.");
        describe_counter!(EXTENSIONS_TOTAL, "Extensions, by outcome.");
        describe_counter!(
            LEASES_LOST_TOTAL,
            "Leases the keep-alive marked lost, by reason."
        );
        describe_counter!(
            NODE_ERRORS_TOTAL,
            "Failures of a node's connection, by node and kind."
        );
    }
}

/// An operation of `kind` (`acquire`, `extend`, `release`, as its span names it) ended with
/// `outcome` (`ok` or [`Error::kind`](crate::Error::kind)) after `attempts` attempts and
/// `elapsed` since the call.
#[inline]
pub(crate) fn op_finished(kind: &str, outcome: &'static str, attempts: u32, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    match kind {
        "acquire" => {
            let label = match outcome {
                "ok" => "acquired",
                known @ ("locked" | "unreachable" | "timed_out" | "expired") => known,
                _ => "other",
            };
            histogram!(ACQUIRE_SECONDS, "outcome" => label).record(elapsed.as_secs_f64());
            match label {
                "acquired" => {
                    counter!(ACQUISITIONS_TOTAL).increment(1);
                    if attempts > 1 {
                        histogram!(CONTENDED_WAIT_SECONDS).record(elapsed.as_secs_f64());
                    }
                }
                "locked" => counter!(REFUSALS_TOTAL).increment(1),
                "timed_out" => counter!(TIMEOUTS_TOTAL).increment(1),
                _ => {}
            }
        }
        "extend" => {
            let label = match outcome {
                "ok" => "extended",
                known @ ("not_held" | "expired" | "unreachable") => known,
                _ => "other",
            };
            counter!(EXTENSIONS_TOTAL, "outcome" => label).increment(1);
        }
        "release" => {
            let label = match outcome {
                "ok" => "released",
                "unreachable" => "unreachable",
                _ => "other",
            };
            counter!(RELEASES_TOTAL, "outcome" => label).increment(1);
        }
        _ => {}
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (kind, outcome, attempts, elapsed);
}

/// A release was handed to the driver with nobody waiting for its result.
#[inline]
pub(crate) fn release_detached() {
    #[cfg(feature = "metrics")]
    counter!(RELEASES_TOTAL, "outcome" => "detached").increment(1);
}

/// The keep-alive marked a lease lost for `reason` (`refused`, `unreachable`, `expired`, `cap`).
#[inline]
pub(crate) fn lease_lost(reason: &'static str) {
    #[cfg(feature = "metrics")]
    counter!(LEASES_LOST_TOTAL, "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// The keep-alive marked a lease lost because its extension failed with `error` (`refused`,
/// `unreachable`, `expired`, or `other` for an extension refused before sending).
#[inline]
pub(crate) fn extension_lost(error: &crate::Error) {
    let reason = match error {
        crate::Error::NotHeld { .. } | crate::Error::Locked { .. } => "refused",
        crate::Error::Expired { .. } => "expired",
        crate::Error::Unreachable { .. } => "unreachable",
        _ => "other",
    };
    lease_lost(reason);
}

/// The connection named `node` (a node's address as errors print it; a link of the node's
/// own beyond its lock connection: a cluster shard's address, or the address followed by
/// ` (subscriber)`) failed this way (`connect_failed`, `connect_timeout`, `disconnected`,
/// `write_failed`).
#[inline]
pub(crate) fn node_error(node: &str, kind: &'static str) {
    #[cfg(feature = "metrics")]
    counter!(NODE_ERRORS_TOTAL, "node" => node.to_string(), "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (node, kind);
}

/// The engine asked to reopen `node`'s connection for `reason`.
#[inline]
pub(crate) fn node_reconnect(node: &str, reason: &ConnError) {
    let kind = match reason {
        ConnError::Timeout(_) => "reply_timeout",
        ConnError::Stream(_) | ConnError::UnexpectedReply(_) => "bad_reply",
        ConnError::Handshake(_) => "handshake_refused",
        _ => "reconnect",
    };
    node_error(node, kind);
}
