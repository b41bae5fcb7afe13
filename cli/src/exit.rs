//! The exit statuses of `redlock`, chosen (like `timeout(1)`'s) to stay out of the way of the
//! command's own statuses.
//!
//! `redlock run` exits with the command's status when the command ran to the end with the lock
//! held (`128 + N` when it was killed by signal `N`, as shells report it). Otherwise:
//!
//! | status | meaning |
//! | --- | --- |
//! | [`CONFLICT`] (120) | could not acquire: another holder kept the lock for all of `--wait` (or at once with `--no-wait`); like `flock -E` |
//! | [`LOST`] (121) | the lock was lost while the command ran; the command got SIGTERM (then SIGKILL after `--kill-after`) |
//! | [`UNREACHABLE`] (122) | could not acquire: too few nodes answered to form a quorum |
//! | [`FAILURE`] (125) | `redlock` itself failed: bad arguments, bad node URL, or a failed check (`demo`, `bench`) |
//! | [`CANNOT_EXECUTE`] (126) | the command was found but could not be started |
//! | [`NOT_FOUND`] (127) | the command was not found |
//!
//! `--conflict-exit-code` and `--lost-exit-code` replace the first two.

/// Could not acquire: the lock stayed held by someone else.
pub const CONFLICT: u8 = 120;
/// The lock was lost while the command ran (the command was terminated).
pub const LOST: u8 = 121;
/// Could not acquire: a quorum of nodes could not be reached.
pub const UNREACHABLE: u8 = 122;
/// `redlock` itself failed (usage, configuration, or a failed self-check).
pub const FAILURE: u8 = 125;
/// The command exists but could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;
