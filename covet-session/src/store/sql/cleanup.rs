//! [`SqlStore::spawn_cleanup`] and its [`CleanupTask`].

use std::time::Duration;

use super::SqlStore;
use crate::store::SessionStore;

impl SqlStore {
    /// Spawns a Tokio task that calls
    /// [`delete_expired`](SessionStore::delete_expired) every `period` (at
    /// least 1ms), the first time at once. Failures are logged as `tracing`
    /// error events and the task goes on. The task stops when the returned
    /// [`CleanupTask`] is dropped.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime, as [`tokio::spawn`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = covet_session::SqlStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// let cleanup = store.spawn_cleanup(Duration::from_secs(300));
    /// // ... serve requests ...
    /// drop(cleanup); // stops the task
    /// # Ok::<(), covet_session::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn spawn_cleanup(&self, period: Duration) -> CleanupTask {
        let store = self.clone();
        let period = period.max(Duration::from_millis(1));
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match store.delete_expired().await {
                    Ok(removed) => tracing::debug!(
                        table = %store.inner.table,
                        removed,
                        "deleted expired sessions"
                    ),
                    Err(e) => e.log("deleting expired sessions failed"),
                }
            }
        });
        CleanupTask { handle }
    }
}

/// The handle of the task that [`SqlStore::spawn_cleanup`] starts: dropping
/// it aborts the task.
///
/// ```
/// use std::time::Duration;
/// # #[cfg(feature = "sql-sqlite")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = covet_session::SqlStore::connect("sqlite::memory:").await?;
/// store.migrate().await?;
/// let cleanup = store.spawn_cleanup(Duration::from_secs(60));
/// assert!(!cleanup.is_finished());
/// # Ok::<(), covet_session::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "the cleanup task stops when its handle is dropped"]
pub struct CleanupTask {
    handle: tokio::task::JoinHandle<()>,
}

impl CleanupTask {
    /// Whether the task has stopped (it only stops when aborted or if the
    /// runtime shuts down).
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = covet_session::SqlStore::connect("sqlite::memory:").await?;
    /// let cleanup = store.spawn_cleanup(Duration::from_secs(60));
    /// assert!(!cleanup.is_finished());
    /// # Ok::<(), covet_session::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl Drop for CleanupTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
