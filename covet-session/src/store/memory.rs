//! [`MemoryStore`]: sessions in process memory, on moka.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use crate::error::Result;
use crate::id::SessionId;
use crate::store::{Changes, Record, SessionStore};

/// Default bound on the number of sessions a [`MemoryStore`] holds.
pub const DEFAULT_MAX_SESSIONS: u64 = 100_000;

/// Sessions in process memory, on a bounded moka cache.
///
/// Each session expires at its own `expires_at` (a moka [`Expiry`]), after
/// which it is never returned and its memory is reclaimed. When the bound is
/// reached, moka evicts the least useful sessions. Saves merge changed keys
/// atomically per session, so concurrent requests that change different keys
/// both keep their change. Sessions do not survive a restart and are not
/// shared between processes.
///
/// ```
/// use covet_session::MemoryStore;
/// let store = MemoryStore::builder().max_sessions(10_000).build();
/// # let _ = store;
/// let _default = MemoryStore::new();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Arc<Record>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.cache.entry_count())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Builder of a [`MemoryStore`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryStoreBuilder {
    max_sessions: u64,
}

impl MemoryStoreBuilder {
    /// At most `n` sessions (default [`DEFAULT_MAX_SESSIONS`]).
    pub fn max_sessions(mut self, n: u64) -> Self {
        self.max_sessions = n;
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        MemoryStore {
            cache: Cache::builder()
                .max_capacity(self.max_sessions)
                .expire_after(UntilExpiry)
                .build(),
        }
    }
}

struct UntilExpiry;

fn remaining(r: &Record) -> Option<Duration> {
    Some(
        r.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Expiry<String, Arc<Record>> for UntilExpiry {
    fn expire_after_create(&self, _: &String, v: &Arc<Record>, _: Instant) -> Option<Duration> {
        remaining(v)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Record>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        remaining(v)
    }
}

fn live(r: &Record) -> bool {
    r.expires_at > SystemTime::now()
}

impl MemoryStore {
    /// A store bounded at [`DEFAULT_MAX_SESSIONS`] sessions.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to set the bound.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }

    /// Read-modify-write of one live session; `false` if there is none.
    async fn update(&self, id: &SessionId, f: impl FnOnce(&mut Record) + Send) -> bool {
        let result = self
            .cache
            .entry(id.storage_key())
            .and_compute_with(|cur| {
                let op = match cur {
                    Some(e) if live(e.value()) => {
                        let mut r = Record::clone(e.value());
                        f(&mut r);
                        Op::Put(Arc::new(r))
                    }
                    Some(_) => Op::Remove,
                    None => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        matches!(result, CompResult::ReplacedWith(_))
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &Record) -> Result<SessionId> {
        loop {
            let id = SessionId::generate()?;
            let entry = self
                .cache
                .entry(id.storage_key())
                .or_insert_with(std::future::ready(Arc::new(record.clone())))
                .await;
            if entry.is_fresh() {
                return Ok(id);
            }
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        Ok(self
            .cache
            .get(&id.storage_key())
            .await
            .filter(|r| live(r))
            .map(|r| Record::clone(&r)))
    }

    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let saved = self
            .update(id, |r| {
                changes.apply_to(&mut r.data);
                r.expires_at = changes.expires_at;
            })
            .await;
        Ok(saved.then(|| id.clone()))
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.cache.invalidate(&id.storage_key()).await;
        Ok(())
    }

    async fn delete_expired(&self) -> Result<u64> {
        // moka reclaims expired sessions itself, on its timer wheel's
        // schedule; this sweep frees them now and counts them.
        let expired: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(_, r)| !live(r))
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in expired {
            if self.cache.remove(k.as_str()).await.is_some() {
                n += 1;
            }
        }
        self.cache.run_pending_tasks().await;
        Ok(n)
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>> {
        let touched = self.update(id, |r| r.expires_at = expires_at).await;
        Ok(touched.then(|| id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at: SystemTime) -> Record {
        let mut data = crate::store::Data::new();
        data.insert("k".into(), serde_json::json!("v"));
        Record::new(data, expires_at)
    }

    #[tokio::test]
    async fn the_bound_holds() {
        let store = MemoryStore::builder().max_sessions(10).build();
        let far = SystemTime::now() + Duration::from_secs(60);
        for _ in 0..100 {
            store.create(&record(far)).await.unwrap();
        }
        store.cache.run_pending_tasks().await;
        assert!(
            store.cache.entry_count() <= 10,
            "{}",
            store.cache.entry_count()
        );
    }

    #[tokio::test]
    async fn expired_sessions_are_reclaimed() {
        let store = MemoryStore::new();
        let soon = SystemTime::now() + Duration::from_millis(200);
        let id = store.create(&record(soon)).await.unwrap();
        let keep = store
            .create(&record(SystemTime::now() + Duration::from_secs(60)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.load(&id).await.unwrap(), None);
        assert!(store.delete_expired().await.unwrap() <= 1);
        assert!(!store.cache.contains_key(&id.storage_key()));
        // moka's timer wheel frees the entry within a tick (about a second).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.cache.entry_count() != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "expired session never reclaimed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.delete_expired().await.unwrap();
        }
        assert!(store.load(&keep).await.unwrap().is_some());
        // The map holds the hash of the id, never the id.
        assert!(store.cache.contains_key(&keep.storage_key()));
        assert!(!store.cache.contains_key(keep.expose()));
    }
}
