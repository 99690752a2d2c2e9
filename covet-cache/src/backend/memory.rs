//! In-process backend on moka's `future::Cache`.
//!
//! # Guarantees and limits
//!
//! * One process: nothing is shared with other processes and everything is
//!   gone on restart. Put it in front of a shared backend with
//!   [`Tiered`](crate::Tiered) to get both.
//! * Bounded by bytes ([`MemoryBackendBuilder::max_capacity_bytes`], default
//!   [`DEFAULT_MAX_CAPACITY_BYTES`]): keys, values and a fixed overhead per
//!   entry are weighed; past the bound moka evicts (TinyLFU admission, LRU
//!   eviction), counted by [`evictions`](crate::CacheBackend::evictions).
//!   No per-value limit beyond that bound.
//! * TTLs per entry with millisecond resolution, on moka's `Expiry`; an
//!   expired entry is never returned.
//! * Patterns, exact tag lists and leases (which coordinate the tasks of
//!   this process) are supported; counts are exact. A hit through
//!   [`Cache`](crate::Cache) returns the decoded value kept beside the bytes
//!   (no decoding).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use parking_lot::Mutex;

use super::{CacheBackend, Decoded, Entry, KeyTtl};
use crate::error::{Error, Result};
use crate::key::Glob;

/// Capacity used when the builder sets none: 64 MiB.
pub const DEFAULT_MAX_CAPACITY_BYTES: u64 = 64 << 20;

// Bookkeeping bytes charged to every entry on top of its key and value
// (the moka node, the `Arc<MemEntry>`, the key's `Arc<str>` header).
const ENTRY_OVERHEAD: u64 = 160;

type Hasher = foldhash::fast::RandomState;
type Moka = moka::future::Cache<Arc<str>, Arc<MemEntry>, Hasher>;
type TagMap = HashMap<Arc<str>, HashMap<Arc<str>, u64, Hasher>, Hasher>;

static NEXT_ENTRY_ID: AtomicU64 = AtomicU64::new(1);

/// One stored value: the bytes, the decoded value once someone needed it,
/// the expiry and the tags.
pub(crate) struct MemEntry {
    id: u64,
    pub(crate) bytes: Bytes,
    pub(crate) decoded: OnceLock<Decoded>,
    /// When a stamped value stops being fresh (epoch milliseconds), read
    /// from its envelope once; `u64::MAX` for unstamped values.
    pub(crate) fresh_until: u64,
    expires_at: Option<Instant>,
    tags: Box<[Arc<str>]>,
    weight: u32,
}

impl MemEntry {
    fn new(
        bytes: Bytes,
        decoded: Option<Decoded>,
        ttl: Option<Duration>,
        tags: Box<[Arc<str>]>,
        key_len: usize,
        floor: u64,
    ) -> MemEntry {
        let cell = OnceLock::new();
        let decoded_weight = if let Some(d) = decoded {
            let _ = cell.set(d);
            // The decoded copy's heap size is unknown; its encoded size is a
            // fair estimate of it.
            bytes.len() as u64
        } else {
            0
        };
        let raw = key_len as u64 + bytes.len() as u64 + decoded_weight + ENTRY_OVERHEAD;
        MemEntry {
            id: NEXT_ENTRY_ID.fetch_add(1, Ordering::Relaxed),
            fresh_until: crate::codec::Stamp::of(&bytes).map_or(u64::MAX, |s| s.fresh_until),
            bytes,
            decoded: cell,
            expires_at: ttl.and_then(|t| Instant::now().checked_add(t)),
            tags,
            weight: raw.max(floor).min(u64::from(u32::MAX)) as u32,
        }
    }

    fn remaining(&self) -> KeyTtl {
        match self.expires_at {
            None => KeyTtl::Persistent,
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(d) if !d.is_zero() => KeyTtl::Expires(d),
                _ => KeyTtl::Missing,
            },
        }
    }

    fn is_live(&self) -> bool {
        !matches!(self.remaining(), KeyTtl::Missing)
    }
}

struct PerEntryExpiry;

impl Expiry<Arc<str>, Arc<MemEntry>> for PerEntryExpiry {
    // Counted from the entry's own `expires_at`, so moka's expiry and
    // `ttl()` agree even when moka inserts the entry a little later.
    fn expire_after_create(
        &self,
        _: &Arc<str>,
        value: &Arc<MemEntry>,
        now: Instant,
    ) -> Option<Duration> {
        value.expires_at.map(|at| at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        value: &Arc<MemEntry>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        value.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

#[derive(Default)]
struct Shared {
    // tag -> (key -> id of the entry that carried the tag)
    tags: Mutex<TagMap>,
    evictions: AtomicU64,
    // key -> (token, expiry) of the leases held on this backend
    leases: Mutex<HashMap<String, (Box<str>, Instant), Hasher>>,
}

impl Shared {
    fn forget(&self, key: &Arc<str>, entry: &MemEntry) {
        if entry.tags.is_empty() {
            return;
        }
        let mut tags = self.tags.lock();
        for tag in entry.tags.iter() {
            if let Some(members) = tags.get_mut(tag) {
                if members.get(key) == Some(&entry.id) {
                    members.remove(key);
                }
                if members.is_empty() {
                    tags.remove(tag);
                }
            }
        }
    }
}

/// The in-memory backend: moka's concurrent `future::Cache` with a TTL per
/// entry and a capacity counted in bytes.
///
/// Capacity: each entry weighs its key plus its encoded value plus a fixed
/// overhead (and its encoded size again when the decoded value is kept).
/// With [`max_entries`](MemoryBackendBuilder::max_entries) as well, every
/// entry weighs at least `max_capacity_bytes / max_entries`, so both limits
/// hold. Eviction is moka's TinyLFU: frequently used entries survive.
///
/// The backend keeps the decoded value beside the bytes, so a hit through
/// [`Cache`](crate::Cache) neither decodes nor allocates a key.
///
/// ```
/// use covet_cache::{Cache, MemoryBackend};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = Cache::builder()
///     .backend(MemoryBackend::builder().max_capacity_bytes(8 << 20).build())
///     .namespace("docs")
///     .build()
///     .unwrap();
/// cache.set("k", &"v".to_string(), None).await.unwrap();
/// assert_eq!(cache.get::<String>("k").await.unwrap().as_deref(), Some("v"));
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    cache: Moka,
    shared: Arc<Shared>,
    weight_floor: u64,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("entries", &self.cache.entry_count())
            .field("weighted_size", &self.cache.weighted_size())
            .field("max_capacity", &self.cache.policy().max_capacity())
            .finish()
    }
}

/// Builder for [`MemoryBackend`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MemoryBackendBuilder {
    max_bytes: Option<u64>,
    max_entries: Option<u64>,
}

impl MemoryBackendBuilder {
    /// Upper bound of the weighed size of all entries, in bytes (default 64 MiB).
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Upper bound of the number of entries (optional).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = Some(entries);
        self
    }

    /// Builds the backend. A zero limit is raised to 1.
    pub fn build(self) -> MemoryBackend {
        let shared = Arc::new(Shared::default());
        let listener_shared = shared.clone();
        let (capacity, floor) = match (self.max_bytes, self.max_entries) {
            (Some(b), Some(e)) => (b.max(1), b.max(1) / e.max(1)),
            (Some(b), None) => (b.max(1), 0),
            (None, Some(e)) => (e.max(1), u64::MAX),
            (None, None) => (DEFAULT_MAX_CAPACITY_BYTES, 0),
        };
        // Counting by entries only: every entry weighs exactly 1.
        let by_entries = floor == u64::MAX;
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .weigher(move |_: &Arc<str>, v: &Arc<MemEntry>| if by_entries { 1 } else { v.weight })
            .expire_after(PerEntryExpiry)
            .eviction_listener(move |key: Arc<Arc<str>>, value: Arc<MemEntry>, cause| {
                if cause == RemovalCause::Size {
                    listener_shared.evictions.fetch_add(1, Ordering::Relaxed);
                }
                listener_shared.forget(&key, &value);
            })
            .build_with_hasher(Hasher::default());
        MemoryBackend {
            cache,
            shared,
            weight_floor: if by_entries { 0 } else { floor },
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

/// When a lease taken at `now` for `ttl` ends (a day at most past the clock's range).
fn lease_until(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(86_400))
}

impl MemoryBackend {
    /// The token holding the lease on `key` (tests).
    #[cfg(test)]
    pub(crate) fn lease_token(&self, key: &str) -> Option<String> {
        self.shared
            .leases
            .lock()
            .get(key)
            .map(|(t, _)| t.to_string())
    }

    /// A backend bounded at 64 MiB.
    pub fn new() -> MemoryBackend {
        MemoryBackend::builder().build()
    }

    /// Starts a builder.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    /// Number of live entries (approximate until pending maintenance ran).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Total weight of the entries, in bytes (approximate until pending maintenance ran).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Runs moka's pending maintenance (evictions, expirations) now.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    #[inline]
    pub(crate) async fn get_entry(&self, key: &str) -> Option<Arc<MemEntry>> {
        self.cache.get(key).await
    }

    fn make_entry(&self, key: &str, entry: Entry<'_>) -> Arc<MemEntry> {
        let tags: Box<[Arc<str>]> = entry.tags.iter().map(|t| Arc::from(t.as_str())).collect();
        Arc::new(MemEntry::new(
            entry.value,
            entry.decoded,
            entry.ttl,
            tags,
            key.len(),
            self.weight_floor,
        ))
    }

    async fn remove_matching(&self, pred: impl Fn(&str) -> bool) -> u64 {
        let keys: Vec<Arc<str>> = self
            .cache
            .iter()
            .filter(|(k, v)| pred(k) && v.is_live())
            .map(|(k, _)| Arc::clone(&*k))
            .collect();
        let mut n = 0;
        for key in keys {
            if self.cache.remove(&key).await.is_some_and(|e| e.is_live()) {
                n += 1;
            }
        }
        n
    }
}

#[async_trait]
impl CacheBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.cache.get(key).await.map(|e| e.bytes.clone()))
    }

    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        let key: Arc<str> = Arc::from(key);
        let value = self.make_entry(&key, entry);
        if !value.tags.is_empty() {
            let mut tags = self.shared.tags.lock();
            for tag in value.tags.iter() {
                tags.entry(tag.clone())
                    .or_default()
                    .insert(key.clone(), value.id);
            }
        }
        self.cache.insert(key, value).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.cache.remove(key).await.is_some_and(|e| e.is_live()))
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(pattern)?;
        Ok(self.remove_matching(|k| glob.matches(k)).await)
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        Ok(self.remove_matching(|k| k.starts_with(prefix)).await)
    }

    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(pattern)?;
        let n = self
            .cache
            .iter()
            .filter(|(k, v)| v.is_live() && glob.matches(k))
            .count();
        Ok(n as u64)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.cache.get(key).await.is_some_and(|e| e.is_live()))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        Ok(match self.cache.get(key).await {
            Some(e) => e.remaining(),
            None => KeyTtl::Missing,
        })
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let mut outcome: Result<i64> = Err(Error::NotAnInteger {
            key: key.to_owned(),
        });
        let floor = self.weight_floor;
        let key_len = key.len();
        self.cache
            .entry(Arc::from(key))
            .and_compute_with(|current| {
                let (base, keep_ttl) = match &current {
                    Some(e) if e.value().is_live() => {
                        let parsed = std::str::from_utf8(&e.value().bytes)
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok());
                        let remaining = match e.value().remaining() {
                            KeyTtl::Expires(d) => Some(d),
                            _ => None,
                        };
                        (parsed, remaining)
                    }
                    _ => (Some(0), ttl),
                };
                let op = match base.and_then(|b| b.checked_add(delta)) {
                    Some(n) => {
                        outcome = Ok(n);
                        let bytes = Bytes::from(n.to_string());
                        Op::Put(Arc::new(MemEntry::new(
                            bytes,
                            None,
                            keep_ttl,
                            Box::new([]),
                            key_len,
                            floor,
                        )))
                    }
                    None => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        outcome
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let members = self.shared.tags.lock().remove(tag);
        let mut n = 0;
        for (key, id) in members.into_iter().flatten() {
            let removed = self
                .cache
                .entry(key)
                .and_compute_with(|current| {
                    std::future::ready(match current {
                        Some(e) if e.value().id == id => Op::Remove,
                        _ => Op::Nop,
                    })
                })
                .await;
            if let moka::ops::compute::CompResult::Removed(e) = removed {
                n += u64::from(e.value().is_live());
            }
        }
        Ok(n)
    }

    /// Leases here coordinate every [`Cache`](crate::Cache) sharing this
    /// backend in one process.
    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut leases = self.shared.leases.lock();
        leases.retain(|_, (_, until)| *until > now);
        if leases.contains_key(key) {
            return Ok(false);
        }
        leases.insert(key.to_owned(), (token.into(), lease_until(now, ttl)));
        Ok(true)
    }

    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut leases = self.shared.leases.lock();
        match leases.get_mut(key) {
            Some((held, until)) if &**held == token && *until > now => {
                *until = lease_until(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        let now = Instant::now();
        let mut leases = self.shared.leases.lock();
        match leases.get(key) {
            Some((held, until)) if &**held == token => {
                let live = *until > now;
                leases.remove(key);
                Ok(live)
            }
            _ => Ok(false),
        }
    }

    fn supports_leases(&self) -> bool {
        true
    }

    fn local(&self) -> Option<&MemoryBackend> {
        Some(self)
    }

    fn is_local_only(&self) -> bool {
        true
    }

    fn evictions(&self) -> u64 {
        self.shared.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn per_entry_ttl() {
        rt().block_on(async {
            let m = MemoryBackend::new();
            m.set("a", "1".into(), Some(Duration::from_millis(60)))
                .await
                .unwrap();
            m.set("b", "2".into(), None).await.unwrap();
            assert!(matches!(m.ttl("a").await.unwrap(), KeyTtl::Expires(_)));
            assert_eq!(m.ttl("b").await.unwrap(), KeyTtl::Persistent);
            tokio::time::sleep(Duration::from_millis(120)).await;
            assert_eq!(m.get("a").await.unwrap(), None);
            assert_eq!(m.ttl("a").await.unwrap(), KeyTtl::Missing);
            assert_eq!(m.get("b").await.unwrap().as_deref(), Some(&b"2"[..]));
        });
    }

    #[test]
    fn incr_is_atomic_and_keeps_ttl() {
        rt().block_on(async {
            let m = MemoryBackend::new();
            assert_eq!(
                m.incr("c", 5, Some(Duration::from_secs(60))).await.unwrap(),
                5
            );
            assert_eq!(m.incr("c", -2, None).await.unwrap(), 3);
            assert!(matches!(m.ttl("c").await.unwrap(), KeyTtl::Expires(_)));
            m.set("s", "abc".into(), None).await.unwrap();
            assert!(matches!(
                m.incr("s", 1, None).await,
                Err(Error::NotAnInteger { .. })
            ));
            m.set("max", i64::MAX.to_string().into(), None)
                .await
                .unwrap();
            assert!(m.incr("max", 1, None).await.is_err());
            assert_eq!(
                m.get("max").await.unwrap().as_deref(),
                Some(i64::MAX.to_string().as_bytes())
            );
        });
    }

    #[test]
    fn concurrent_incr() {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let m = MemoryBackend::new();
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let m = m.clone();
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            m.incr("n", 1, None).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(m.incr("n", 0, None).await.unwrap(), 1000);
        });
    }

    #[test]
    fn patterns_and_clear() {
        rt().block_on(async {
            let m = MemoryBackend::new();
            for k in ["a:user:1", "a:user:2", "a:team:1", "b:user:1"] {
                m.set(k, "x".into(), None).await.unwrap();
            }
            assert_eq!(m.delete_pattern("a:user:*").await.unwrap(), 2);
            assert!(m.exists("a:team:1").await.unwrap());
            assert_eq!(m.clear("a:").await.unwrap(), 1);
            assert!(m.exists("b:user:1").await.unwrap());
            assert!(m.delete_pattern("a:[").await.is_err());
        });
    }

    #[test]
    fn tags_follow_the_current_entry() {
        rt().block_on(async {
            let m = MemoryBackend::new();
            let t = vec!["ns:t".to_string()];
            m.set_entry("ns:1", Entry::new("a".into(), None).tags(&t))
                .await
                .unwrap();
            m.set_entry("ns:2", Entry::new("b".into(), None).tags(&t))
                .await
                .unwrap();
            // rewritten without the tag: no longer a member
            m.set("ns:2", "c".into(), None).await.unwrap();
            m.run_pending_tasks().await;
            assert_eq!(m.invalidate_tag("ns:t").await.unwrap(), 1);
            assert!(!m.exists("ns:1").await.unwrap());
            assert!(m.exists("ns:2").await.unwrap());
            assert_eq!(m.invalidate_tag("ns:t").await.unwrap(), 0);
        });
    }

    #[test]
    fn leases_are_exclusive_owned_and_expire() {
        rt().block_on(async {
            let m = MemoryBackend::new();
            let t = m
                .lease_acquire("k", Duration::from_secs(5))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                m.lease_acquire("k", Duration::from_secs(5)).await.unwrap(),
                None
            );
            assert!(!m.lease_release("k", "forged").await.unwrap());
            assert!(m.lease_release("k", &t).await.unwrap());
            assert!(!m.lease_release("k", &t).await.unwrap(), "released once");
            let short = m
                .lease_acquire("s", Duration::from_millis(30))
                .await
                .unwrap();
            assert!(short.is_some());
            tokio::time::sleep(Duration::from_millis(60)).await;
            assert!(
                m.lease_acquire("s", Duration::from_secs(1))
                    .await
                    .unwrap()
                    .is_some(),
                "expired"
            );
        });
    }

    #[test]
    fn bounded_by_bytes_and_entries() {
        rt().block_on(async {
            let m = MemoryBackend::builder()
                .max_capacity_bytes(64 * 1024)
                .build();
            for i in 0..1000 {
                m.set(&format!("k{i}"), Bytes::from(vec![0u8; 1024]), None)
                    .await
                    .unwrap();
            }
            m.run_pending_tasks().await;
            assert!(m.weighted_size() <= 64 * 1024, "{}", m.weighted_size());
            assert!(m.evictions() > 0);

            let m = MemoryBackend::builder()
                .max_capacity_bytes(1 << 30)
                .max_entries(10)
                .build();
            for i in 0..100 {
                m.set(&format!("k{i}"), "v".into(), None).await.unwrap();
            }
            m.run_pending_tasks().await;
            assert!(m.entry_count() <= 10, "{}", m.entry_count());

            let m = MemoryBackend::builder().max_entries(5).build();
            for i in 0..50 {
                m.set(&format!("k{i}"), Bytes::from(vec![0u8; 4096]), None)
                    .await
                    .unwrap();
            }
            m.run_pending_tasks().await;
            assert!(m.entry_count() <= 5);
        });
    }
}
