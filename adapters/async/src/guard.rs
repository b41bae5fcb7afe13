//! `Guard`: a held lock that releases itself when dropped.

use crate::client::Redlock;
use crate::error::Error;
use crate::runtime::Runtime;
use redlock_core::{Lock, Released};
use std::time::Duration;

/// A held lock that is released when the guard is dropped, like a `MutexGuard`.
///
/// Made by [`Redlock::guard`] from a lock [`Redlock::acquire`] returned. It derefs to the
/// [`Lock`].
///
/// **What `Drop` does:** it hands a release of the lock to the client's driver task and returns
/// at once, without waiting for any node; the driver sends the delete to every connected node
/// (a node not connected then gets none). **What it does not guarantee:** that the release
/// succeeds or when it arrives. A node may be down, slow or partitioned, and the client may be
/// dropped before the driver has written the request; the key then stays on that node until
/// its ttl runs out, and others cannot take the lock until a quorum is free again. Nothing
/// reports such a failure. When the outcome matters, call [`Guard::release`], which waits for
/// it and returns it. A guard does not extend the lock: past
/// [`valid_until`](Lock::valid_until) it protects nothing (use [`Redlock::hold`] for a lock
/// kept alive).
#[must_use = "dropping a guard releases the lock at once"]
pub struct Guard<R: Runtime> {
    client: Redlock<R>,
    /// `None` once released or given up by `into_lock`.
    lock: Option<Lock>,
}

impl<R: Runtime> std::fmt::Debug for Guard<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("lock", &self.lock).finish()
    }
}

impl<R: Runtime> Redlock<R> {
    /// Wraps `lock` in a [`Guard`] that releases it when dropped.
    pub fn guard(&self, lock: Lock) -> Guard<R> {
        Guard {
            client: self.clone(),
            lock: Some(lock),
        }
    }
}

impl<R: Runtime> Guard<R> {
    /// The lock, as last extended.
    pub fn lock(&self) -> &Lock {
        self.lock.as_ref().expect("a live guard holds its lock")
    }

    /// Extends the lock to `ttl` from now (see [`Redlock::extend`]); on success the guard holds
    /// the extended lock.
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), Error> {
        let extended = self.client.extend(self.lock(), ttl).await?;
        self.lock = Some(extended);
        Ok(())
    }

    /// Releases the lock now and waits for the outcome (see [`Redlock::release`]). If this
    /// future is dropped before it resolves, the release still goes out.
    pub async fn release(mut self) -> Result<Released, Error> {
        let lock = self.lock.take().expect("a live guard holds its lock");
        let client = self.client.clone();
        // Past this point a dropped future must still release: a second guard covers it.
        let fallback = client.guard(lock.clone());
        let result = client.release(&lock).await;
        let _ = fallback.into_lock();
        result
    }

    /// Gives the lock back without releasing it: the caller takes over.
    pub fn into_lock(mut self) -> Lock {
        self.lock.take().expect("a live guard holds its lock")
    }
}

impl<R: Runtime> std::ops::Deref for Guard<R> {
    type Target = Lock;

    fn deref(&self) -> &Lock {
        self.lock()
    }
}

impl<R: Runtime> Drop for Guard<R> {
    /// Hands the release to the driver and returns at once (see the type's documentation).
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.client.release_detached(&lock);
        }
    }
}
