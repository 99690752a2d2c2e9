//! The typed [`Cache`] facade.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

#[cfg(feature = "memory")]
use crate::backend::memory::MemoryBackend;
use crate::backend::{CacheBackend, Capabilities, Decoded, Entry, KeyTtl};
use crate::codec::{Codec, Stamp, fingerprint};
use crate::epochs::Epochs;
use crate::error::{CodecError, ConfigError, Error, Result};
use crate::flight::Flights;
use crate::key::{Glob, KeyBuf, escape_glob, validate_key};
use crate::memo::FnSite;
use crate::stats::{Stats, StatsInner};

mod fill;

use self::fill::Outcome;
pub use self::fill::{ErrShare, ErrToo, Found, NoneToo, OkPart, Shape, SomePart, Whole};
pub(crate) use self::fill::{Plan, Prior, fn_tag, jittered};

/// What a value must be to live in a [`Cache`]: serializable, cloneable
/// (a hit hands out a clone of the stored value) and shareable across threads.
/// Implemented for every type that qualifies.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a covet cache",
    label = "this value type is not cacheable",
    note = "cached values must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`; derive `Clone`, `serde::Serialize` and `serde::Deserialize`"
)]
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// Namespace used when the builder sets none.
pub const DEFAULT_NAMESPACE: &str = "covet";

/// The typed cache users hold: a backend plus a namespace, a default TTL, a
/// codec, statistics and single-flight. Cloning is cheap (one `Arc`).
///
/// Every key is stored as `namespace:key`, so caches with different
/// namespaces share a backend without seeing each other's entries;
/// [`clear`](Cache::clear) and [`delete_pattern`](Cache::delete_pattern) stay
/// inside the namespace.
///
/// ```
/// use covet_cache::{Cache, MemoryBackend};
/// use std::time::Duration;
///
/// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct User { name: String }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = Cache::builder()
///     .backend(MemoryBackend::builder().max_capacity_bytes(64 << 20).build())
///     .namespace("myapp")
///     .default_ttl(Duration::from_secs(300))
///     .build()
///     .unwrap();
/// cache.set("user:1", &User { name: "Alice".into() }, None).await.unwrap();
/// let u: Option<User> = cache.get("user:1").await.unwrap();
/// assert_eq!(u.unwrap().name, "Alice");
/// let n = cache.get_or_insert_with("answer", None, || async { 42u32 }).await.unwrap();
/// assert_eq!(n, 42);
/// assert_eq!(cache.delete_pattern("user:*").await.unwrap(), 1);
/// println!("{:?}", cache.stats());
/// # });
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn CacheBackend>,
    #[cfg(feature = "memory")]
    local: Option<MemoryBackend>,
    local_only: bool,
    namespace: String,
    prefix: String,
    default_ttl: Option<Duration>,
    codec: Codec,
    schema_version: u32,
    stats: StatsInner,
    flights: Flights<Outcome>,
    epochs: Epochs,
    lease: LeaseConfig,
    /// The backend's capabilities, read once.
    caps: Capabilities,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend)
            .field("namespace", &self.inner.namespace)
            .field("default_ttl", &self.inner.default_ttl)
            .field("codec", &self.inner.codec)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Builder for [`Cache`], from [`Cache::builder`].
#[must_use]
pub struct CacheBuilder {
    backend: Option<Arc<dyn CacheBackend>>,
    namespace: String,
    default_ttl: Option<Duration>,
    codec: Codec,
    schema_version: u32,
    lease: LeaseConfig,
}

/// Default lifetime of a cross-process lease whose holder stopped renewing
/// it (crashed, hung): 10 s. A live holder renews it every third of that.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Default time a process waits for another process's computation before
/// computing itself: 30 s, three lease lifetimes, so a holder that died is
/// replaced (its lease expires) while the others still wait.
pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(30);

/// Cross-process single-flight settings.
#[derive(Debug, Clone, Copy)]
struct LeaseConfig {
    always: bool,
    ttl: Duration,
    wait: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            always: false,
            ttl: DEFAULT_LEASE_TTL,
            wait: DEFAULT_LEASE_WAIT,
        }
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("backend", &self.backend)
            .field("namespace", &self.namespace)
            .field("default_ttl", &self.default_ttl)
            .field("codec", &self.codec)
            .field("schema_version", &self.schema_version)
            .field("lease", &self.lease)
            .finish()
    }
}

impl CacheBuilder {
    /// The backend (default: a 64 MiB [`MemoryBackend`]).
    pub fn backend(mut self, backend: impl CacheBackend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// A backend already shared behind an `Arc`.
    pub fn shared_backend(mut self, backend: Arc<dyn CacheBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Prefix of every key (default `covet`): 1 to 64 characters, no `:`,
    /// whitespace, control characters or glob metacharacters, and not
    /// starting with `__covet` (reserved: sessions live under
    /// `__covet_session:`, so no cache operation ever reaches them).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// TTL of values stored with `ttl = None` (default: no expiry; entries
    /// then live until evicted or deleted).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Serialization format of new values (default postcard).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Mixed into every value's schema fingerprint: bump it when a cached
    /// type's serialized form changes, and old entries become misses.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Cross-process single-flight for every computed value
    /// (`get_or_insert_with`, and `#[cached]` without `lock`): concurrent
    /// misses of one key in several processes compute once, through a
    /// lease in the shared backend ([`lease::Lease`](crate::lease::Lease):
    /// a random token set if absent, renewed while the computation runs,
    /// released after it). The others poll for the value for at most
    /// [`lease_wait`](Self::lease_wait), then compute themselves. Without a backend that supports leases
    /// (see [`CacheBackend::supports_leases`]) this changes nothing.
    /// `#[cached(lock)]` asks for it per function.
    pub fn distributed_single_flight(mut self, enabled: bool) -> Self {
        self.lease.always = enabled;
        self
    }

    /// How long a lease lives if its holder stops renewing it (crashed,
    /// hung) without releasing it (default [`DEFAULT_LEASE_TTL`], 10 s). A
    /// holder renews its lease every third of this while it computes, so a
    /// computation may take longer than the lease lifetime.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease.ttl = ttl;
        self
    }

    /// How long a process waits for another process's computation before
    /// computing itself (default [`DEFAULT_LEASE_WAIT`], 30 s). It may not
    /// be shorter than [`lease_ttl`](Self::lease_ttl) (`build` says so):
    /// when a holder dies, its lease must expire while the others still
    /// wait, so that one of them takes over and the rest keep waiting.
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease.wait = wait;
        self
    }

    /// Checks the configuration and builds the cache.
    pub fn build(self) -> Result<Cache, ConfigError> {
        let ns = &self.namespace;
        let ns_ok = !ns.is_empty()
            && ns.chars().count() <= 64
            && !ns.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || matches!(c, ':' | '*' | '?' | '[' | ']' | '\\')
            });
        if !ns_ok {
            return Err(ConfigError::InvalidNamespace(self.namespace));
        }
        if ns.starts_with("__covet") {
            return Err(ConfigError::ReservedNamespace(self.namespace));
        }
        if self.default_ttl == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration("default_ttl"));
        }
        if self.lease.ttl.is_zero() {
            return Err(ConfigError::ZeroDuration("lease_ttl"));
        }
        if self.lease.wait < self.lease.ttl {
            return Err(ConfigError::LeaseWaitTooShort {
                wait: self.lease.wait,
                ttl: self.lease.ttl,
            });
        }
        #[cfg(feature = "memory")]
        let backend = self
            .backend
            .unwrap_or_else(|| Arc::new(MemoryBackend::new()));
        #[cfg(not(feature = "memory"))]
        let backend = self.backend.ok_or(ConfigError::MissingBackend)?;
        let backend: Arc<dyn CacheBackend> = Arc::new(crate::backend::traced::Traced::new(
            backend,
            &self.namespace,
        ));
        #[cfg(feature = "memory")]
        let local = backend.local().cloned();
        let local_only = backend.is_local_only();
        let prefix = format!("{}:", self.namespace);
        let caps = backend.capabilities();
        let cache = Cache {
            inner: Arc::new(Inner {
                backend,
                #[cfg(feature = "memory")]
                local,
                local_only,
                namespace: self.namespace,
                prefix,
                default_ttl: self.default_ttl,
                codec: self.codec,
                schema_version: self.schema_version,
                stats: StatsInner::default(),
                flights: Flights::default(),
                epochs: Epochs::default(),
                lease: self.lease,
                caps,
            }),
        };
        #[cfg(feature = "metrics")]
        {
            let weak: std::sync::Weak<dyn crate::metrics::Source> =
                Arc::downgrade(&cache.inner) as _;
            crate::metrics::register(weak);
        }
        Ok(cache)
    }
}

#[cfg(feature = "metrics")]
impl crate::metrics::Source for Inner {
    fn label(&self) -> &str {
        &self.namespace
    }

    fn stats(&self) -> Stats {
        self.stats.snapshot(self.backend.evictions())
    }
}

fn full_key(cache: &Cache, key: &str) -> Result<KeyBuf> {
    validate_key(key)?;
    Ok(KeyBuf::from_parts(&cache.inner.prefix, key))
}

impl Cache {
    /// Starts a builder.
    pub fn builder() -> CacheBuilder {
        CacheBuilder {
            backend: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            default_ttl: None,
            codec: Codec::default(),
            schema_version: 0,
            lease: LeaseConfig::default(),
        }
    }

    /// An in-memory cache (64 MiB, namespace `covet`, no default expiry).
    #[cfg(feature = "memory")]
    pub fn memory() -> Cache {
        Cache::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The key prefix, `namespace:`.
    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The TTL applied when none is given.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// The codec new values are written with.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn CacheBackend> {
        &self.inner.backend
    }

    /// The live counters.
    #[cfg(feature = "http")]
    pub(crate) fn stats_inner(&self) -> &crate::stats::StatsInner {
        &self.inner.stats
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot(self.inner.backend.evictions())
    }

    /// Reads a value. Absent, expired, undecodable values and values stored
    /// for another type are `Ok(None)` (the last two counted in
    /// [`Stats::decode_errors`]); a backend failure is an error.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>> {
        let key = full_key(self, key)?;
        self.lookup(&key).await
    }

    /// Reads several values at once (one round trip on remote backends).
    pub async fn get_many<T: CacheValue>(&self, keys: &[&str]) -> Result<Vec<Option<T>>> {
        let full = keys
            .iter()
            .map(|k| full_key(self, k))
            .collect::<Result<Vec<_>>>()?;
        if self.inner.local_only {
            let mut out = Vec::with_capacity(full.len());
            for k in &full {
                out.push(self.lookup(k).await?);
            }
            return Ok(out);
        }
        let strs: Vec<&str> = full.iter().map(KeyBuf::as_str).collect();
        let raw = self.inner.backend.get_many(&strs).await.inspect_err(|_| {
            self.inner.stats.errors.incr();
        })?;
        Ok(full
            .iter()
            .zip(raw)
            .map(|(k, bytes)| self.decode_counted(k, bytes.as_deref()))
            .collect())
    }

    /// Stores a value; `ttl = None` applies the default TTL, a zero TTL
    /// deletes the key.
    pub async fn set<T: Serialize + 'static>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let key = full_key(self, key)?;
        self.inner.epochs.bump_key(key.as_str());
        self.store(&key, value, None, ttl, &[]).await
    }

    /// Stores a value and attaches it to `tags`, for
    /// [`invalidate_tag`](Cache::invalidate_tag).
    pub async fn set_tagged<T: Serialize + 'static>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<()> {
        let key = full_key(self, key)?;
        let tags = tags
            .iter()
            .map(|t| validate_key(t).map(|()| (*t).to_owned()))
            .collect::<Result<Vec<_>>>()?;
        self.inner.epochs.bump_key(key.as_str());
        self.store(&key, value, None, ttl, &tags).await
    }

    /// Stores several values with one TTL (one round trip on remote backends).
    pub async fn set_many<T: Serialize + 'static>(
        &self,
        entries: &[(&str, T)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let ttl = ttl.or(self.inner.default_ttl);
        let mut encoded: Vec<(KeyBuf, Bytes)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = full_key(self, k)?;
            let bytes = self.encode(&key, v)?;
            self.check_size(&key, &bytes)?;
            encoded.push((key, bytes));
        }
        for (key, _) in &encoded {
            self.inner.epochs.bump_key(key.as_str());
        }
        if ttl == Some(Duration::ZERO) {
            let keys: Vec<&str> = encoded.iter().map(|(k, _)| k.as_str()).collect();
            self.counted(self.inner.backend.delete_many(&keys).await)?;
            return Ok(());
        }
        let pairs: Vec<(&str, Bytes)> = encoded
            .iter()
            .map(|(k, b)| (k.as_str(), b.clone()))
            .collect();
        self.counted(self.inner.backend.set_many(&pairs, ttl).await)?;
        for _ in 0..pairs.len() {
            self.inner.stats.sets.incr();
        }
        Ok(())
    }

    /// Deletes a key; `true` if it held a value.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let key = full_key(self, key)?;
        self.inner.epochs.bump_key(key.as_str());
        self.counted(self.inner.backend.delete(key.as_str()).await)
    }

    /// Deletes every key of this namespace matching the glob `pattern`
    /// (`*`, `?`, `[abc]`, `[a-z]`, `[!a]`, `\` escapes); returns how many.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        Glob::new(pattern)?;
        if !self.inner.caps.pattern_deletes {
            return Err(Error::Unsupported {
                backend: self.inner.backend.name(),
                operation: "delete_pattern (its keys cannot be enumerated; use tags or clear())",
            });
        }
        let full = format!("{}{}", escape_glob(&self.inner.prefix), pattern);
        self.inner.epochs.bump_all();
        self.counted(self.inner.backend.delete_pattern(&full).await)
    }

    /// Deletes every key of this namespace, and nothing else.
    pub async fn clear(&self) -> Result<u64> {
        self.inner.epochs.bump_all();
        self.counted(self.inner.backend.clear(&self.inner.prefix).await)
    }

    /// Whether the key holds a live value.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let key = full_key(self, key)?;
        self.counted(self.inner.backend.exists(key.as_str()).await)
    }

    /// The key's remaining lifetime.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let key = full_key(self, key)?;
        self.counted(self.inner.backend.ttl(key.as_str()).await)
    }

    /// Atomically adds `delta` to the counter at `key` (created at 0 with
    /// `ttl`, or the default TTL) and returns the new value. Counters are
    /// stored as decimal text, not in the value envelope: read them with
    /// `incr(key, 0, None)`.
    pub async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let full = full_key(self, key)?;
        let ttl = ttl.or(self.inner.default_ttl);
        self.inner.epochs.bump_key(full.as_str());
        self.counted(self.inner.backend.incr(full.as_str(), delta, ttl).await)
            .map_err(|e| match e {
                Error::NotAnInteger { .. } => Error::NotAnInteger {
                    key: key.to_owned(),
                },
                other => other,
            })
    }

    /// Deletes every key stored with `tag` in this namespace; returns how many.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        validate_key(tag)?;
        let full = format!("{}{}", self.inner.prefix, tag);
        self.inner.epochs.bump_all();
        self.counted(self.inner.backend.invalidate_tag(&full).await)
    }

    /// Returns the cached value, or runs `init`, stores its result and
    /// returns it. Concurrent callers missing the same key run `init` once:
    /// the others wait for its value. If that computation is cancelled or
    /// panics, a waiting caller takes over, so nobody waits forever. An
    /// `init` that asks for its own key computes it directly instead of
    /// waiting for itself, and a value whose key was invalidated (deleted,
    /// set, cleared...) while `init` ran is returned but not stored.
    /// A backend failure is counted and logged, and `init` runs (fail open);
    /// the only error is an invalid key.
    pub async fn get_or_insert_with<T, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        init: F,
    ) -> Result<T>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let key = full_key(self, key)?;
        if let Some(v) = self.lookup_fail_open(&key).await {
            return Ok(v);
        }
        Ok(self
            .fill(key, Plan::simple(ttl), Prior::Absent, init, Whole)
            .await
            .0)
    }

    /// Like [`get_or_insert_with`](Cache::get_or_insert_with) for a fallible
    /// `init`: only `Ok` values are stored. When the computation fails, the
    /// callers that were waiting for it run their own `init` at once, side
    /// by side (never one after another), each getting its own result.
    pub async fn try_get_or_insert_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        init: F,
    ) -> std::result::Result<T, E>
    where
        T: CacheValue,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let key = full_key(self, key)?;
        if let Some(v) = self.lookup_fail_open(&key).await {
            return Ok(v);
        }
        self.fill(key, Plan::simple(ttl), Prior::Absent, init, OkPart(None))
            .await
            .0
    }

    // ---- internals shared with `__private` ----

    fn counted<R>(&self, r: Result<R>) -> Result<R> {
        if r.is_err() {
            self.inner.stats.errors.incr();
        }
        r
    }

    fn encode<T: Serialize + 'static>(&self, key: &KeyBuf, value: &T) -> Result<Bytes> {
        self.encode_stamped(key, value, None)
    }

    fn encode_stamped<T: Serialize + 'static>(
        &self,
        key: &KeyBuf,
        value: &T,
        stamp: Option<Stamp>,
    ) -> Result<Bytes> {
        self.inner
            .codec
            .encode_stamped(value, self.fingerprint::<T>(), stamp)
            .map_err(|source| {
                self.inner.stats.errors.incr();
                Error::Encode {
                    key: key.user_key().to_owned(),
                    source,
                }
            })
    }

    fn fingerprint<T: 'static>(&self) -> u64 {
        fingerprint::<T>(self.inner.schema_version)
    }

    /// Decodes, counting the hit or the miss. A stamped value past its
    /// freshness is a miss.
    fn decode_counted<T: CacheValue>(&self, key: &KeyBuf, bytes: Option<&[u8]>) -> Option<T> {
        let stats = &self.inner.stats;
        let Some(bytes) = bytes.filter(|b| !Stamp::expired(b)) else {
            stats.misses.incr();
            return None;
        };
        match Codec::decode::<T>(bytes, self.fingerprint::<T>()) {
            Ok(v) => {
                stats.hits.incr();
                Some(v)
            }
            Err(err) => {
                self.decode_failed(key, &err);
                stats.misses.incr();
                None
            }
        }
    }

    /// Counts and logs a value that does not decode (the caller counts the miss).
    fn decode_failed(&self, key: &KeyBuf, err: &CodecError) {
        self.inner.stats.decode_errors.incr();
        match err {
            CodecError::SchemaMismatch => {
                tracing::debug!(key = %crate::backend::traced::key_hash(&key), "cached value was written for another type; treated as a miss")
            }
            err => {
                tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "cached value does not decode; treated as a miss")
            }
        }
    }

    /// The value of a local (memory) entry: its decoded form when it holds
    /// one of type `T`, else decoded from its bytes (and kept, so that the
    /// next hit does not decode). Counts a decode error, not the miss.
    #[cfg(feature = "memory")]
    #[inline]
    fn local_value<T: CacheValue>(
        &self,
        key: &KeyBuf,
        entry: &crate::backend::memory::MemEntry,
    ) -> Option<T> {
        if let Some(v) = entry.decoded.get().and_then(|d| d.downcast_ref::<T>()) {
            return Some(v.clone());
        }
        match Codec::decode::<T>(&entry.bytes, self.fingerprint::<T>()) {
            Ok(v) => {
                let _ = entry.decoded.set(Arc::new(v.clone()));
                Some(v)
            }
            Err(err) => {
                self.decode_failed(key, &err);
                None
            }
        }
    }

    /// The lookup every plain read goes through: a fresh value is a hit;
    /// an absent, undecodable or stale one a miss. Local hits take the
    /// first branch: one moka lookup by `&str`, a type check and a clone.
    #[inline]
    pub(crate) async fn lookup<T: CacheValue>(&self, key: &KeyBuf) -> Result<Option<T>> {
        self.lookup_for(key, None).await
    }

    /// [`lookup`](Self::lookup) that also counts a hit for a `#[cached]`
    /// fn: on a local hit, both counters take one thread-local lookup.
    #[inline]
    pub(crate) async fn lookup_for<T: CacheValue>(
        &self,
        key: &KeyBuf,
        site: Option<&'static FnSite>,
    ) -> Result<Option<T>> {
        let inner = &*self.inner;
        #[cfg(feature = "memory")]
        if let Some(local) = &inner.local {
            if let Some(entry) = local.get_entry(key.as_str()).await {
                // The hit of an unstamped value already decoded: no clock,
                // no decoding.
                if entry.fresh_until == u64::MAX
                    && let Some(v) = entry.decoded.get().and_then(|d| d.downcast_ref::<T>())
                {
                    let cell = crate::stats::cell();
                    inner.stats.hits.incr_at(cell);
                    if let Some(site) = site {
                        site.hit_at(cell);
                    }
                    return Ok(Some(v.clone()));
                }
                let value = self.local_lookup(key, &entry);
                if let (Some(site), Some(_)) = (site, &value) {
                    site.hit_counted();
                }
                return Ok(value);
            }
            if inner.local_only {
                inner.stats.misses.incr();
                return Ok(None);
            }
        }
        match inner.backend.get(key.as_str()).await {
            Ok(bytes) => {
                let value = self.decode_counted(key, bytes.as_deref());
                if let (Some(site), Some(_)) = (site, &value) {
                    site.hit_counted();
                }
                Ok(value)
            }
            Err(err) => {
                inner.stats.errors.incr();
                inner.stats.misses.incr();
                Err(err)
            }
        }
    }

    /// The rest of a local lookup: a stamped value past its freshness is a
    /// miss; a value not decoded yet is decoded (and kept).
    #[cfg(feature = "memory")]
    fn local_lookup<T: CacheValue>(
        &self,
        key: &KeyBuf,
        entry: &crate::backend::memory::MemEntry,
    ) -> Option<T> {
        let value =
            if entry.fresh_until != u64::MAX && crate::time::now_epoch_ms() >= entry.fresh_until {
                None
            } else {
                self.local_value::<T>(key, entry)
            };
        match &value {
            Some(_) => self.inner.stats.hits.incr(),
            None => self.inner.stats.misses.incr(),
        }
        value
    }

    /// Reads and decodes a value with its stamp, counting decode and
    /// backend errors but neither hits nor misses.
    async fn read_stamped<T: CacheValue>(
        &self,
        key: &KeyBuf,
    ) -> Result<Option<(T, Option<Stamp>)>> {
        let inner = &*self.inner;
        #[cfg(feature = "memory")]
        if let Some(local) = &inner.local {
            if let Some(entry) = local.get_entry(key.as_str()).await {
                return Ok(self
                    .local_value::<T>(key, &entry)
                    .map(|v| (v, Stamp::of(&entry.bytes))));
            }
            if inner.local_only {
                return Ok(None);
            }
        }
        match inner.backend.get(key.as_str()).await {
            Ok(Some(bytes)) => Ok(match Codec::decode::<T>(&bytes, self.fingerprint::<T>()) {
                Ok(v) => Some((v, Stamp::of(&bytes))),
                Err(err) => {
                    self.decode_failed(key, &err);
                    None
                }
            }),
            Ok(None) => Ok(None),
            Err(err) => {
                inner.stats.errors.incr();
                Err(err)
            }
        }
    }

    /// A lookup that keeps stale values and says how fresh they are.
    pub(crate) async fn lookup_stamped<T: CacheValue>(
        &self,
        key: &KeyBuf,
        ahead: Duration,
    ) -> Found<T> {
        let stats = &self.inner.stats;
        let found = match self.read_stamped::<T>(key).await {
            Ok(Some((v, stamp))) => Found::classify(v, stamp, ahead),
            Ok(None) => Found::Absent,
            Err(err) => {
                stats.misses.incr();
                tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "cache read failed; computing the value");
                return Found::Down;
            }
        };
        match found {
            Found::Fresh(_) | Found::Ahead(_) => stats.hits.incr(),
            _ => stats.misses.incr(),
        }
        found
    }

    pub(crate) async fn lookup_fail_open<T: CacheValue>(&self, key: &KeyBuf) -> Option<T> {
        match self.lookup(key).await {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "cache read failed; computing the value");
                None
            }
        }
    }

    /// Refuses a value larger than the backend holds, before sending it.
    fn check_size(&self, key: &KeyBuf, bytes: &Bytes) -> Result<()> {
        Error::check_value_size(key.user_key(), bytes.len(), self.inner.caps.max_value_len)
    }

    pub(crate) async fn store<T: Serialize + 'static>(
        &self,
        key: &KeyBuf,
        value: &T,
        decoded: Option<Decoded>,
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<()> {
        self.store_stamped(key, value, decoded, ttl, None, tags)
            .await
    }

    /// [`store`](Self::store), with a freshness stamp in the envelope.
    pub(crate) async fn store_stamped<T: Serialize + 'static>(
        &self,
        key: &KeyBuf,
        value: &T,
        decoded: Option<Decoded>,
        ttl: Option<Duration>,
        stamp: Option<Stamp>,
        tags: &[String],
    ) -> Result<()> {
        let ttl = ttl.or(self.inner.default_ttl);
        if ttl == Some(Duration::ZERO) {
            return self
                .counted(self.inner.backend.delete(key.as_str()).await)
                .map(drop);
        }
        let bytes = self.encode_stamped(key, value, stamp)?;
        self.check_size(key, &bytes)?;
        let full_tags: Vec<String>;
        let tags: &[String] = if tags.is_empty() {
            &[]
        } else {
            full_tags = tags
                .iter()
                .map(|t| format!("{}{}", self.inner.prefix, t))
                .collect();
            &full_tags
        };
        let mut entry = Entry::new(bytes, ttl).tags(tags);
        entry.decoded = decoded;
        self.counted(self.inner.backend.set_entry(key.as_str(), entry).await)?;
        self.inner.stats.sets.incr();
        Ok(())
    }

    /// Stores the cacheable part of a freshly computed result; failures are
    /// counted and logged, never returned.
    pub(crate) async fn store_computed<T: CacheValue>(
        &self,
        key: &KeyBuf,
        value: &T,
        ttl: Option<Duration>,
        stamp: Option<Stamp>,
        tags: &[String],
    ) -> Option<Decoded> {
        let decoded: Decoded = Arc::new(value.clone());
        if let Err(err) = key.validate() {
            self.inner.stats.errors.incr();
            tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "key cannot be cached; value not stored");
            return Some(decoded);
        }
        if let Err(err) = self
            .store_stamped(key, value, Some(decoded.clone()), ttl, stamp, tags)
            .await
        {
            tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "cache write failed; value not stored");
        }
        Some(decoded)
    }

    /// Deletes a full key (for `<fn>_invalidate`), counting it as an
    /// invalidation for computations in progress.
    pub(crate) async fn invalidate_key(&self, key: &KeyBuf) -> Result<bool> {
        self.inner.epochs.bump_key(key.as_str());
        self.counted(self.inner.backend.delete(key.as_str()).await)
    }

    #[cfg(test)]
    pub(crate) fn flights_in_progress(&self) -> usize {
        self.inner.flights.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flights_are_removed_after_success_failure_and_cancellation() {
        let cache = Cache::memory();
        let ok = cache
            .get_or_insert_with("a", None, || async { 1u8 })
            .await
            .unwrap();
        assert_eq!(ok, 1);
        let err: std::result::Result<u8, Error> = cache
            .try_get_or_insert_with("b", None, || async {
                Err(Error::NotAnInteger { key: "b".into() })
            })
            .await;
        assert!(err.is_err());
        let c2 = cache.clone();
        let cancelled = tokio::spawn(async move {
            c2.get_or_insert_with("c", None, || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                1u8
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cache.flights_in_progress(), 1);
        cancelled.abort();
        let _ = cancelled.await;
        assert_eq!(cache.flights_in_progress(), 0);
    }

    #[tokio::test]
    async fn local_hit_keeps_decoded_value_and_skips_decoding() {
        let cache = Cache::memory();
        cache.set("k", &vec![1u32, 2, 3], None).await.unwrap();
        let local = cache.backend().local().unwrap().clone();
        let entry = local.get_entry("covet:k").await.unwrap();
        assert!(entry.decoded.get().is_none(), "set keeps bytes only");
        assert_eq!(
            cache.get::<Vec<u32>>("k").await.unwrap(),
            Some(vec![1, 2, 3])
        );
        assert!(
            entry.decoded.get().is_some(),
            "the first read keeps the decoded value"
        );
        // garble nothing: a second read is served from the decoded copy
        assert_eq!(
            cache.get::<Vec<u32>>("k").await.unwrap(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(cache.stats().decode_errors, 0);
    }

    #[tokio::test]
    async fn computed_values_are_stored_decoded() {
        let cache = Cache::memory();
        let calls = AtomicU32::new(0);
        let v = cache
            .get_or_insert_with("x", None, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                String::from("v")
            })
            .await
            .unwrap();
        assert_eq!(v, "v");
        let local = cache.backend().local().unwrap().clone();
        let entry = local.get_entry("covet:x").await.unwrap();
        assert!(entry.decoded.get().is_some());
        assert_eq!(cache.stats().sets, 1);
    }
}
