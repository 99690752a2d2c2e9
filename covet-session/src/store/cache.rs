//! [`CacheStore`]: sessions on any covet cache backend ([`MemoryBackend`],
//! `Tiered`, `RedisBackend`, ...).
//!
//! [`MemoryBackend`]: covet_cache::MemoryBackend

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use covet_cache::CacheBackend;
use covet_cache::lease::Lease;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::store::{
    Changes, Data, Record, SESSION_KEY_ROOT, SessionInfo, SessionStore, oldest_first, user_key,
    user_of,
};
use crate::time::{from_ms, to_ms};

/// Default key prefix of a [`CacheStore`], after the reserved root
/// `__covet_session:` that every session key starts with.
pub const DEFAULT_CACHE_KEY_PREFIX: &str = "";

const STORE: &str = "cache";
/// How long a lease on a session record lives if its holder dies (a live
/// holder renews it every third of that).
const LEASE_TTL: Duration = Duration::from_secs(1);
/// How long to wait for a lease before giving up: longer than its
/// lifetime, so a dead holder's lease expires while we wait.
const LEASE_WAIT: Duration = Duration::from_secs(3);
/// Attempts to find an unused id in `create`.
const CREATE_ATTEMPTS: u32 = 8;
/// In-process lock stripes, for backends without leases.
const STRIPES: usize = 64;

/// Sessions on any [`CacheBackend`]: one JSON record (the whole data map and
/// the expiry) per session, at `__covet_session:<prefix><storage key>`, with
/// the backend TTL set to the remaining lifetime. The reserved root keeps
/// sessions out of reach of every cache's `clear()`, pattern delete and tag
/// invalidation on the same backend.
///
/// - `create` draws a 256-bit random id and, under a lease on the record
///   key, checks that no record exists there before writing it (`get` then
///   `set`), so two creates never claim one id.
/// - `save`, `touch` and `delete` run under a lease on the record key
///   ([`covet_cache::lease::Lease`]: waited for up to 3 s, then
///   [`Error::Store`]; renewed while held, released afterwards): two concurrent saves of
///   different keys both keep their change, and a delete never lands inside
///   a save (which would bring the session back). The read of a
///   read-modify-write asks the authoritative tier (`get_with_ttl`: L2 of a
///   `Tiered` backend), never a local copy another process may have made
///   stale. Backends without leases ([`CacheBackend::supports_leases`] is
///   `false`) are locked in process instead, which only coordinates this
///   process.
/// - The sessions of a user are listed in a record at
///   `__covet_session:<prefix>user:<SHA-256 of the user id>`.
/// - `delete_expired` returns 0: the backend expires entries itself.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use covet_cache::MemoryBackend;
/// use covet_session::{CacheStore, SessionStore, store::{Changes, Data, Record}};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = CacheStore::builder(MemoryBackend::new())
///     .key_prefix("app:session:")
///     .build()
///     .unwrap();
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let id = store.create(&Record::new(Data::new(), expires)).await.unwrap();
/// let mut changes = Changes::new(expires);
/// changes.set.insert("user".into(), serde_json::json!(7));
/// assert!(store.save(&id, &changes).await.unwrap().is_some());
/// assert_eq!(store.load(&id).await.unwrap().unwrap().data["user"], 7);
/// # });
/// ```
pub struct CacheStore<B: CacheBackend> {
    backend: Arc<B>,
    /// The same backend, for leases.
    shared: Arc<dyn CacheBackend>,
    prefix: String,
    stripes: Arc<[tokio::sync::Mutex<()>]>,
}

impl<B: CacheBackend> fmt::Debug for CacheStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheStore")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<B: CacheBackend> Clone for CacheStore<B> {
    fn clone(&self) -> Self {
        CacheStore {
            backend: Arc::clone(&self.backend),
            shared: Arc::clone(&self.shared),
            prefix: self.prefix.clone(),
            stripes: Arc::clone(&self.stripes),
        }
    }
}

/// Builder of a [`CacheStore`].
#[derive(Debug)]
#[must_use]
pub struct CacheStoreBuilder<B: CacheBackend> {
    backend: B,
    prefix: String,
}

impl<B: CacheBackend> CacheStoreBuilder<B> {
    /// Prefix of every record key (default [`DEFAULT_CACHE_KEY_PREFIX`]); it
    /// must not hold control characters.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Builds the store; fails if the prefix holds control characters.
    pub fn build(self) -> Result<CacheStore<B>> {
        if self.prefix.chars().any(char::is_control) {
            return Err(Error::store_msg(
                STORE,
                "the key prefix must not hold control characters",
            ));
        }
        let backend = Arc::new(self.backend);
        Ok(CacheStore {
            shared: Arc::clone(&backend) as Arc<dyn CacheBackend>,
            backend,
            prefix: self.prefix,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }
}

/// The stored form of a session.
#[derive(Serialize, Deserialize)]
struct Stored {
    data: Data,
    /// Expiry in milliseconds since the Unix epoch.
    expires_at_ms: u64,
}

/// Remaining lifetime, or `None` if already expired.
fn remaining(t: SystemTime) -> Option<Duration> {
    t.duration_since(SystemTime::now())
        .ok()
        .filter(|d| !d.is_zero())
}

fn backend_err(what: &str) -> impl FnOnce(covet_cache::Error) -> Error + '_ {
    move |e| Error::store(STORE, what.to_owned(), e)
}

/// A held lock on one record: a backend lease or an in-process stripe.
enum Guard<'a> {
    Lease(Lease),
    Local(#[allow(dead_code)] tokio::sync::MutexGuard<'a, ()>),
}

impl<B: CacheBackend> CacheStore<B> {
    /// A store on `backend` with the default prefix.
    pub fn new(backend: B) -> Self {
        Self::builder(backend)
            .build()
            .expect("the default prefix is a valid key prefix")
    }

    /// A builder to set the key prefix.
    pub fn builder(backend: B) -> CacheStoreBuilder<B> {
        CacheStoreBuilder {
            backend,
            prefix: DEFAULT_CACHE_KEY_PREFIX.to_owned(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn key(&self, id: &SessionId) -> String {
        self.key_of(id.storage_key())
    }

    fn key_of(&self, storage_key: &str) -> String {
        format!("{SESSION_KEY_ROOT}{}{storage_key}", self.prefix)
    }

    /// Runs `f` under the lock of `key`, releasing it whatever happens.
    async fn locked<T, F>(&self, key: &str, f: impl FnOnce() -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let mut guard = self.lock(key).await?;
        let result = match &mut guard {
            Guard::Lease(lease) => lease.run(f()).await,
            Guard::Local(_) => f().await,
        };
        let released = self.unlock(guard).await;
        let value = result?;
        released?;
        Ok(value)
    }

    /// Adds or drops `storage_key` in the list of `user_id`'s sessions.
    async fn index_user(&self, user_id: &str, storage_key: &str, add: bool) -> Result<()> {
        let key = self.key_of(&user_key(user_id));
        self.locked(&key, || async {
            let mut keys: Vec<String> = match self
                .backend
                .get_with_ttl(&key)
                .await
                .map_err(backend_err("reading a user's sessions"))?
            {
                Some((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_default(),
                None => Vec::new(),
            };
            keys.retain(|k| k != storage_key);
            if add {
                keys.push(storage_key.to_owned());
            }
            if keys.is_empty() {
                self.backend
                    .delete(&key)
                    .await
                    .map_err(backend_err("dropping a user's session list"))?;
                return Ok(());
            }
            let bytes = serde_json::to_vec(&keys)
                .map_err(|e| Error::store(STORE, "encoding a user's sessions", e))?;
            // As long as the longest session can live.
            let ttl = crate::config::MAX_TIMEOUT;
            self.backend
                .set(&key, bytes.into(), Some(ttl))
                .await
                .map_err(backend_err("writing a user's sessions"))
        })
        .await
    }

    /// The live sessions of `user_id`, by storage key.
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<(String, Record)>> {
        let key = self.key_of(&user_key(user_id));
        let keys: Vec<String> = match self
            .backend
            .get_with_ttl(&key)
            .await
            .map_err(backend_err("reading a user's sessions"))?
        {
            Some((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut live = Vec::new();
        for storage_key in keys {
            match self.read(&self.key_of(&storage_key), true).await {
                Ok(Some(s)) if user_of(&s.data) == Some(user_id) => {
                    let record = Record::new(s.data, from_ms(s.expires_at_ms));
                    live.push((storage_key, record));
                }
                Ok(_) | Err(Error::CorruptRecord { .. }) => {
                    self.index_user(user_id, &storage_key, false).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(live)
    }

    async fn lock(&self, key: &str) -> Result<Guard<'_>> {
        if !self.backend.supports_leases() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            #[allow(clippy::cast_possible_truncation)]
            let i = (h.finish() as usize) % self.stripes.len();
            return Ok(Guard::Local(self.stripes[i].lock().await));
        }
        match Lease::acquire(&self.shared, key, LEASE_TTL, LEASE_WAIT)
            .await
            .map_err(backend_err("taking the session lease"))?
        {
            Some(lease) => Ok(Guard::Lease(lease)),
            None => Err(Error::store_msg(
                STORE,
                "timed out waiting for the lease on a session record",
            )),
        }
    }

    async fn unlock(&self, guard: Guard<'_>) -> Result<()> {
        if let Guard::Lease(lease) = guard {
            lease
                .release()
                .await
                .map_err(backend_err("releasing the session lease"))?;
        }
        Ok(())
    }

    /// Reads one record; `authoritative` asks the tier that holds the
    /// truth (L2 of a `Tiered` backend) rather than a local copy.
    async fn read(&self, key: &str, authoritative: bool) -> Result<Option<Stored>> {
        let bytes = if authoritative {
            self.backend
                .get_with_ttl(key)
                .await
                .map(|v| v.map(|(b, _)| b))
        } else {
            self.backend.get(key).await
        };
        let Some(bytes) = bytes.map_err(backend_err("loading a session"))? else {
            return Ok(None);
        };
        let stored: Stored =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(STORE, e))?;
        if stored.expires_at_ms <= to_ms(SystemTime::now()) {
            return Ok(None);
        }
        Ok(Some(stored))
    }

    /// Writes `data` expiring at `expires_at`; deletes the record if that
    /// is already past.
    async fn write(&self, key: &str, data: &Data, expires_at: SystemTime) -> Result<()> {
        let Some(ttl) = remaining(expires_at) else {
            self.backend
                .delete(key)
                .await
                .map_err(backend_err("deleting an expired session"))?;
            return Ok(());
        };
        #[derive(Serialize)]
        struct StoredRef<'a> {
            data: &'a Data,
            expires_at_ms: u64,
        }
        let bytes = serde_json::to_vec(&StoredRef {
            data,
            expires_at_ms: to_ms(expires_at),
        })
        .map_err(|e| Error::store(STORE, "encoding a session record", e))?;
        self.backend
            .set(key, bytes.into(), Some(ttl))
            .await
            .map_err(backend_err("storing a session"))
    }

    /// Read-modify-write of one live record under its lock; `false` if
    /// there is none.
    async fn update(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
        f: impl FnOnce(&mut Data) + Send,
    ) -> Result<bool> {
        let key = self.key(id);
        self.locked(&key, || async {
            let Some(mut stored) = self.read(&key, true).await? else {
                return Ok(false);
            };
            f(&mut stored.data);
            self.write(&key, &stored.data, expires_at).await?;
            Ok(true)
        })
        .await
    }
}

#[async_trait::async_trait]
impl<B: CacheBackend> SessionStore for CacheStore<B> {
    async fn create(&self, record: &Record) -> Result<SessionId> {
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate()?;
            let key = self.key(&id);
            let fresh = self
                .locked(&key, || async {
                    // 256 random bits: a collision is practically impossible,
                    // so checking for a live record under the lease is enough.
                    if self.read(&key, true).await?.is_some() {
                        return Ok(false);
                    }
                    self.write(&key, &record.data, record.expires_at).await?;
                    Ok(true)
                })
                .await?;
            if fresh {
                if let Some(user) = user_of(&record.data) {
                    self.index_user(user, id.storage_key(), true).await?;
                }
                return Ok(id);
            }
        }
        Err(Error::store_msg(
            STORE,
            "could not find an unused session id",
        ))
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        Ok(self
            .read(&self.key(id), false)
            .await?
            .map(|s| Record::new(s.data, from_ms(s.expires_at_ms))))
    }

    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let saved = self
            .update(id, changes.expires_at, |data| changes.apply_to(data))
            .await?;
        if saved && let Some(user) = crate::store::user_written(changes) {
            self.index_user(user, id.storage_key(), true).await?;
        }
        Ok(saved.then(|| id.clone()))
    }

    /// Under the record's lease, so a delete never lands inside a save.
    async fn delete(&self, id: &SessionId) -> Result<()> {
        let key = self.key(id);
        self.locked(&key, || async {
            self.backend
                .delete(&key)
                .await
                .map_err(backend_err("deleting a session"))?;
            Ok(())
        })
        .await
    }

    /// Always 0: the backend expires records through their TTL.
    async fn delete_expired(&self) -> Result<u64> {
        Ok(0)
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>> {
        let touched = self.update(id, expires_at, |_| {}).await?;
        Ok(touched.then(|| id.clone()))
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>> {
        let infos = self
            .user_sessions(user_id)
            .await?
            .iter()
            .map(|(storage_key, r)| SessionInfo::from_record(storage_key, r))
            .collect();
        Ok(oldest_first(infos))
    }

    /// Live sessions, where the backend can count keys by pattern
    /// (memory, Redis, SQL, `Tiered` over them: a walk of the keys, see
    /// `CacheBackend::count_pattern`); [`Error::Unsupported`] on Memcached.
    /// Keys with a `:` after the prefix (the per-user indexes) are not
    /// sessions.
    async fn count(&self) -> Result<u64> {
        let root =
            covet_cache::__private::glob_escape(&format!("{SESSION_KEY_ROOT}{}", self.prefix));
        let count = |pattern: String| async move {
            self.backend
                .count_pattern(&pattern)
                .await
                .map_err(|e| match e {
                    covet_cache::Error::Unsupported { .. } => Error::Unsupported {
                        store: STORE,
                        operation: "counting sessions",
                    },
                    e => Error::store(STORE, "counting sessions".to_owned(), e),
                })
        };
        let all = count(format!("{root}*")).await?;
        let indexes = count(format!("{root}*:*")).await?;
        Ok(all.saturating_sub(indexes))
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        self.delete_user_entries(user_id, None).await
    }

    async fn delete_other_user_sessions(&self, user_id: &str, keep: &SessionId) -> Result<u64> {
        self.delete_user_entries(user_id, Some(keep)).await
    }
}

impl<B: CacheBackend> CacheStore<B> {
    /// Deletes the sessions of `user_id`, but `keep`.
    async fn delete_user_entries(&self, user_id: &str, keep: Option<&SessionId>) -> Result<u64> {
        let sessions: Vec<(String, Record)> = self
            .user_sessions(user_id)
            .await?
            .into_iter()
            .filter(|(storage_key, _)| keep.is_none_or(|k| k.storage_key() != storage_key))
            .collect();
        for (storage_key, _) in &sessions {
            let key = self.key_of(storage_key);
            self.locked(&key, || async {
                self.backend
                    .delete(&key)
                    .await
                    .map_err(backend_err("deleting a user's session"))?;
                Ok(())
            })
            .await?;
            self.index_user(user_id, storage_key, false).await?;
        }
        crate::security::revoked(user_id, sessions.len() as u64);
        Ok(sessions.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use covet_cache::{Entry, KeyTtl, MemoryBackend};
    use std::error::Error as _;

    fn in_secs(s: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(s)
    }

    #[test]
    fn control_characters_in_the_prefix_are_refused() {
        let err = CacheStore::builder(MemoryBackend::new())
            .key_prefix("bad\nprefix:")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Store { .. }));
    }

    /// A backend that fails every call, or (`fail = false`) wraps a
    /// `MemoryBackend` without leases.
    #[derive(Debug)]
    struct Plain {
        inner: MemoryBackend,
        fail: bool,
    }

    fn boom() -> covet_cache::Error {
        covet_cache::Error::Backend {
            backend: "plain",
            message: "down".into(),
            source: Some(std::io::Error::other("connection refused").into()),
        }
    }

    #[async_trait::async_trait]
    impl CacheBackend for Plain {
        fn name(&self) -> &'static str {
            "plain"
        }
        async fn get(&self, key: &str) -> covet_cache::Result<Option<bytes::Bytes>> {
            if self.fail {
                return Err(boom());
            }
            self.inner.get(key).await
        }
        async fn set_entry(&self, key: &str, entry: Entry<'_>) -> covet_cache::Result<()> {
            self.inner.set_entry(key, entry).await
        }
        async fn delete(&self, key: &str) -> covet_cache::Result<bool> {
            self.inner.delete(key).await
        }
        async fn delete_pattern(&self, pattern: &str) -> covet_cache::Result<u64> {
            self.inner.delete_pattern(pattern).await
        }
        async fn exists(&self, key: &str) -> covet_cache::Result<bool> {
            self.inner.exists(key).await
        }
        async fn ttl(&self, key: &str) -> covet_cache::Result<KeyTtl> {
            self.inner.ttl(key).await
        }
        async fn incr(
            &self,
            key: &str,
            delta: i64,
            ttl: Option<Duration>,
        ) -> covet_cache::Result<i64> {
            self.inner.incr(key, delta, ttl).await
        }
        async fn invalidate_tag(&self, tag: &str) -> covet_cache::Result<u64> {
            self.inner.invalidate_tag(tag).await
        }
    }

    #[tokio::test]
    async fn backend_errors_keep_their_source() {
        let store = CacheStore::new(Plain {
            inner: MemoryBackend::new(),
            fail: true,
        });
        let err = store
            .load(&SessionId::generate().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Store { store: "cache", .. }));
        assert!(err.source().unwrap().to_string().contains("down"));
    }

    #[tokio::test]
    async fn backends_without_leases_merge_concurrent_saves_in_process() {
        let store = Arc::new(CacheStore::new(Plain {
            inner: MemoryBackend::new(),
            fail: false,
        }));
        let id = store
            .create(&Record::new(Data::new(), in_secs(60)))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (store, id) = (Arc::clone(&store), id.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Changes::new(in_secs(60));
                c.set.insert(format!("k{i}"), serde_json::json!(i));
                assert!(store.save(&id, &c).await.unwrap().is_some());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.load(&id).await.unwrap().unwrap().data.len(), 20);
        assert_eq!(store.delete_expired().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn records_are_json_under_the_prefix_with_a_ttl() {
        let backend = Arc::new(MemoryBackend::new());
        let store = CacheStore::new(Arc::clone(&backend));
        let id = store
            .create(&Record::new(Data::new(), in_secs(60)))
            .await
            .unwrap();
        let key = format!(
            "{SESSION_KEY_ROOT}{DEFAULT_CACHE_KEY_PREFIX}{}",
            id.storage_key()
        );
        let raw: Vec<u8> = backend.get(&key).await.unwrap().unwrap().to_vec();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert!(v["data"].is_object());
        assert!(matches!(
            backend.ttl(&key).await.unwrap(),
            KeyTtl::Expires(d) if d <= Duration::from_secs(60)
        ));
        assert!(
            !raw.windows(id.expose().len())
                .any(|w| w == id.expose().as_bytes())
        );
    }
}
