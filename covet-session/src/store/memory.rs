//! [`MemoryStore`]: sessions in process memory, on moka.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use parking_lot::Mutex;

use crate::error::Result;
use crate::id::SessionId;
use crate::store::{Changes, Record, SessionInfo, SessionStore, oldest_first, user_of};
use crate::time::to_ms as epoch_ms;

/// Default bound on the number of sessions a [`MemoryStore`] holds.
pub const DEFAULT_MAX_SESSIONS: u64 = 100_000;

/// The map's hasher: keys are already uniform SHA-256 hex, so a fast one.
type Hasher = foldhash::fast::RandomState;

/// What one session weighs beyond its data: the slot, the key, the map.
const SLOT_OVERHEAD: usize = 256;

/// Sessions in process memory, on a bounded moka cache.
///
/// Each session expires at its own `expires_at`, after which it is never
/// returned and its memory is reclaimed (moka's per-entry expiry, a short
/// slack after the session's own). The store is bounded by a number of
/// sessions, or by bytes with
/// [`max_capacity_bytes`](MemoryStoreBuilder::max_capacity_bytes) (each
/// session weighs its data's JSON size plus a fixed overhead); past the
/// bound moka evicts the least useful sessions, which is counted
/// ([`evictions`](MemoryStore::evictions)) and logged. A save changes the
/// stored session in place under a per-session lock, so concurrent
/// requests that change different keys both keep their change. Sessions do
/// not survive a restart and are not shared between processes.
///
/// ```
/// use covet_session::MemoryStore;
/// let store = MemoryStore::builder().max_sessions(10_000).build();
/// let by_bytes = MemoryStore::builder().max_capacity_bytes(64 << 20).build();
/// # let _ = (store, by_bytes);
/// let _default = MemoryStore::new();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Arc<Slot>, Hasher>,
    /// Tells this store's slots apart from another's in a `SessionId`'s
    /// memo.
    uid: u64,
    evictions: Arc<AtomicU64>,
    /// Bounded by bytes: saves weigh sessions again as they grow.
    weighs: bool,
}

/// One session. moka keeps the slot until `scheduled_ms`, a little after
/// the session's expiry, so that most saves (which move the expiry a
/// little) change the slot in place without rescheduling it in moka.
struct Slot {
    state: Mutex<SlotState>,
    /// moka dropped it (expired or evicted): a memo of it is stale.
    gone: std::sync::atomic::AtomicBool,
    scheduled_ms: AtomicU64,
    /// What moka weighed this slot at (bytes).
    weighed: AtomicUsize,
}

struct SlotState {
    record: Record,
    /// Set by `delete`: a slot that is still reachable (a save raced with
    /// the delete) is never returned.
    deleted: bool,
}

/// How far past a session's expiry moka keeps its slot: a save reschedules
/// the slot in moka at most once per this period.
const SLACK_MS: u64 = 60_000;

impl Slot {
    fn new(record: Record) -> Arc<Slot> {
        let scheduled = epoch_ms(record.expires_at).saturating_add(SLACK_MS);
        let weight = weight_of(&record);
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                record,
                deleted: false,
            }),
            gone: std::sync::atomic::AtomicBool::new(false),
            scheduled_ms: AtomicU64::new(scheduled),
            weighed: AtomicUsize::new(weight),
        })
    }
}

/// A session's weight in bytes: its data as JSON plus the slot overhead.
fn weight_of(record: &Record) -> usize {
    let mut n = SLOT_OVERHEAD;
    for (k, v) in &record.data {
        n += k.len() + 4 + crate::session::json_len(v);
    }
    n
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
    max_bytes: Option<u64>,
}

impl MemoryStoreBuilder {
    /// At most `n` sessions (default [`DEFAULT_MAX_SESSIONS`]).
    pub fn max_sessions(mut self, n: u64) -> Self {
        self.max_sessions = n;
        self
    }

    /// At most about `bytes` of session data in memory (each session's
    /// data as JSON, plus 256 bytes for its slot). With
    /// [`max_sessions`](Self::max_sessions) too, both bounds hold.
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let evictions = Arc::new(AtomicU64::new(0));
        let counter = evictions.clone();
        let listener = move |_key: Arc<String>, slot: Arc<Slot>, cause: RemovalCause| {
            if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                slot.gone.store(true, Ordering::Release);
            }
            if cause == RemovalCause::Size {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(
                        target: "covet::session",
                        evicted = n,
                        "the memory session store is full: sessions evicted (users logged out)"
                    );
                }
            }
        };
        let builder = Cache::builder()
            .expire_after(UntilScheduled)
            .eviction_listener(listener);
        let cache = match self.max_bytes {
            None => builder
                .max_capacity(self.max_sessions)
                .build_with_hasher(Hasher::default()),
            Some(bytes) => {
                // Each session weighs at least bytes / max_sessions, so the
                // count bound holds too.
                let floor = bytes / self.max_sessions.max(1);
                builder
                    .max_capacity(bytes)
                    .weigher(move |_k: &String, slot: &Arc<Slot>| {
                        let w = slot.weighed.load(Ordering::Relaxed) as u64;
                        u32::try_from(w.max(floor)).unwrap_or(u32::MAX)
                    })
                    .build_with_hasher(Hasher::default())
            }
        };
        static STORES: AtomicU64 = AtomicU64::new(0);
        MemoryStore {
            cache,
            uid: STORES.fetch_add(1, Ordering::Relaxed),
            evictions,
            weighs: self.max_bytes.is_some(),
        }
    }
}

struct UntilScheduled;

fn remaining(slot: &Slot) -> Option<Duration> {
    let now = epoch_ms(SystemTime::now());
    Some(Duration::from_millis(
        slot.scheduled_ms
            .load(Ordering::Acquire)
            .saturating_sub(now),
    ))
}

impl Expiry<String, Arc<Slot>> for UntilScheduled {
    fn expire_after_create(&self, _: &String, v: &Arc<Slot>, _: Instant) -> Option<Duration> {
        remaining(v)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Slot>,
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
            max_bytes: None,
        }
    }

    /// The slot of `id`: the one this request's load remembered, or a
    /// lookup.
    fn slot(&self, id: &SessionId) -> Option<Arc<Slot>> {
        let remembered = id
            .memo(self.uid)
            .and_then(|m| Arc::clone(m).downcast::<Slot>().ok())
            .filter(|s| !s.gone.load(Ordering::Acquire));
        match remembered {
            Some(slot) => Some(slot),
            None => self.cache.get(id.storage_key()),
        }
    }

    /// How many live sessions were evicted to respect the bound.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Every live session of `user_id`, with its storage key.
    fn user_slots(&self, user_id: &str) -> Vec<(Arc<String>, Arc<Slot>)> {
        self.cache
            .iter()
            .filter(|(_, slot)| {
                let st = slot.state.lock();
                !st.deleted && live(&st.record) && user_of(&st.record.data) == Some(user_id)
            })
            .collect()
    }

    /// Changes one live session in place; `false` if there is none.
    fn update(&self, id: &SessionId, f: impl FnOnce(&mut Record)) -> bool {
        let key = id.storage_key();
        let Some(slot) = self.slot(id) else {
            return false;
        };
        let reschedule = {
            let mut st = slot.state.lock();
            if st.deleted || !live(&st.record) {
                return false;
            }
            f(&mut st.record);
            let mut reinsert = false;
            let wanted = epoch_ms(st.record.expires_at);
            if wanted > slot.scheduled_ms.load(Ordering::Acquire) {
                slot.scheduled_ms
                    .store(wanted.saturating_add(SLACK_MS), Ordering::Release);
                reinsert = true;
            }
            // A session that grew a quarter past its weight is weighed again.
            if self.weighs {
                let weighed = slot.weighed.load(Ordering::Relaxed);
                let weight = weight_of(&st.record);
                if weight > weighed + weighed / 4 {
                    slot.weighed.store(weight, Ordering::Relaxed);
                    reinsert = true;
                }
            }
            reinsert
        };
        if reschedule {
            // moka reads the new schedule through `expire_after_update`.
            self.cache.insert(key.to_owned(), slot);
        }
        true
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &Record) -> Result<SessionId> {
        loop {
            let id = SessionId::generate()?;
            let entry = self
                .cache
                .entry(id.storage_key().to_owned())
                .or_insert_with(|| Slot::new(record.clone()));
            if entry.is_fresh() {
                return Ok(id);
            }
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let Some(slot) = self.cache.get(id.storage_key()) else {
            return Ok(None);
        };
        let record = {
            let st = slot.state.lock();
            (!st.deleted && live(&st.record)).then(|| st.record.clone())
        };
        if record.is_some() {
            id.set_memo(self.uid, slot);
        }
        Ok(record)
    }

    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let saved = self.update(id, |r| {
            changes.apply_to(&mut r.data);
            r.expires_at = changes.expires_at;
        });
        Ok(saved.then(|| id.clone()))
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        if let Some(slot) = self.cache.remove(id.storage_key()) {
            slot.state.lock().deleted = true;
        }
        Ok(())
    }

    /// Live sessions (a walk over the store: expired and deleted ones
    /// that moka has not reclaimed yet are not counted).
    async fn count(&self) -> Result<u64> {
        let live_now = self
            .cache
            .iter()
            .filter(|(_, slot)| {
                let st = slot.state.lock();
                !st.deleted && live(&st.record)
            })
            .count();
        Ok(live_now as u64)
    }

    async fn delete_expired(&self) -> Result<u64> {
        // moka reclaims expired sessions itself, on its timer wheel's
        // schedule; this sweep frees them now and counts them.
        let expired: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(_, slot)| {
                let st = slot.state.lock();
                st.deleted || !live(&st.record)
            })
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in expired {
            if self.cache.remove(k.as_str()).is_some() {
                n += 1;
            }
        }
        self.cache.run_pending_tasks();
        Ok(n)
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>> {
        let touched = self.update(id, |r| r.expires_at = expires_at);
        Ok(touched.then(|| id.clone()))
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>> {
        let infos = self
            .user_slots(user_id)
            .into_iter()
            .map(|(key, slot)| SessionInfo::from_record(&key, &slot.state.lock().record))
            .collect();
        Ok(oldest_first(infos))
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        self.delete_user_slots(user_id, None)
    }

    async fn delete_other_user_sessions(&self, user_id: &str, keep: &SessionId) -> Result<u64> {
        self.delete_user_slots(user_id, Some(keep))
    }
}

impl MemoryStore {
    /// Deletes the sessions of `user_id`, but `keep`.
    fn delete_user_slots(&self, user_id: &str, keep: Option<&SessionId>) -> Result<u64> {
        let mut n = 0;
        for (key, slot) in self.user_slots(user_id) {
            if keep.is_some_and(|k| k.storage_key() == key.as_str()) {
                continue;
            }
            slot.state.lock().deleted = true;
            self.cache.remove(key.as_str());
            n += 1;
        }
        crate::security::revoked(user_id, n);
        Ok(n)
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
        store.cache.run_pending_tasks();
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
        assert!(!store.cache.contains_key(id.storage_key()));
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
        assert!(store.cache.contains_key(keep.storage_key()));
        assert!(!store.cache.contains_key(keep.expose()));
    }

    #[tokio::test]
    async fn touched_sessions_outlive_their_first_expiry() {
        let store = MemoryStore::new();
        let id = store
            .create(&record(SystemTime::now() + Duration::from_millis(300)))
            .await
            .unwrap();
        let later = SystemTime::now() + Duration::from_secs(120);
        assert!(store.touch(&id, later).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = store.load(&id).await.unwrap().expect("still live");
        assert_eq!(r.expires_at, later);
        // The slot was rescheduled past the new expiry.
        let slot = store.cache.get(id.storage_key()).unwrap();
        assert!(slot.scheduled_ms.load(Ordering::Acquire) > epoch_ms(later));
    }

    #[tokio::test]
    async fn the_byte_bound_holds_and_evictions_are_counted() {
        let store = MemoryStore::builder().max_capacity_bytes(64 * 1024).build();
        let far = SystemTime::now() + Duration::from_secs(60);
        let mut big = crate::store::Data::new();
        big.insert("blob".into(), serde_json::json!("x".repeat(4000)));
        for _ in 0..100 {
            store.create(&Record::new(big.clone(), far)).await.unwrap();
        }
        store.cache.run_pending_tasks();
        assert!(
            store.cache.weighted_size() <= 64 * 1024,
            "{}",
            store.cache.weighted_size()
        );
        assert!(store.evictions() >= 80, "{}", store.evictions());
    }

    #[tokio::test]
    async fn a_deleted_slot_is_never_used_again() {
        let store = MemoryStore::new();
        let id = store
            .create(&record(SystemTime::now() + Duration::from_secs(60)))
            .await
            .unwrap();
        let slot = store.cache.get(id.storage_key()).unwrap();
        store.delete(&id).await.unwrap();
        // A save that raced with the delete puts the slot back: still gone.
        store.cache.insert(id.storage_key().to_owned(), slot);
        assert_eq!(store.load(&id).await.unwrap(), None);
        let changes = Changes::new(SystemTime::now() + Duration::from_secs(60));
        assert_eq!(store.save(&id, &changes).await.unwrap(), None);
    }
}
