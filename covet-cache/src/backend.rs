//! The bytes-level backend trait every store implements.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::key::escape_glob;

#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub mod memcached;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub(crate) mod remote;
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite"
    )))
)]
pub mod sql;
pub(crate) mod tagged;
#[cfg(feature = "memory")]
pub mod tiered;
pub(crate) mod traced;

/// A decoded value kept beside its bytes by an in-process tier, so a local
/// hit needs no decoding.
pub type Decoded = Arc<dyn Any + Send + Sync>;

/// Remaining lifetime of a key, from [`CacheBackend::ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key (or it expired).
    Missing,
    /// The key exists and does not expire.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// What a backend can do, from [`CacheBackend::capabilities`].
///
/// [`Cache`](crate::Cache) reads it once, when it is built, and refuses an
/// operation the backend cannot do with [`Error::Unsupported`](crate::Error::Unsupported)
/// (and a value over the limit with
/// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge)) before sending
/// anything. A backend outside this crate starts from the default and
/// changes what differs:
///
/// ```
/// use std::time::Duration;
/// use covet_cache::backend::Capabilities;
///
/// let mut caps = Capabilities::default();
/// caps.pattern_deletes = false;
/// caps.ttl_resolution = Duration::from_secs(1);
/// caps.max_value_len = Some(1 << 20);
/// assert!(caps.native_expiry);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`CacheBackend::delete_pattern`] works. Without it, keys cannot be
    /// enumerated (`clear` of a namespace still works).
    pub pattern_deletes: bool,
    /// [`CacheBackend::invalidate_tag_keys`] lists exactly the keys it
    /// deleted (a tier in front then drops just those).
    pub exact_tag_keys: bool,
    /// The counts returned by `delete_pattern`, `clear` and
    /// `invalidate_tag` are exact. Without it they are `0` when the backend
    /// cannot know (a namespace or tag dropped by moving a version).
    pub exact_counts: bool,
    /// The step of stored TTLs. [`CacheBackend::ttl`] never reports more than
    /// what is left (rounded down to this step), so a copy kept by a tier in
    /// front never outlives the original.
    pub ttl_resolution: Duration,
    /// Expired entries go away by themselves; without it, they are never
    /// returned but stay stored until [`CacheBackend::sweep`] runs.
    pub native_expiry: bool,
    /// Longest full key (namespace included) in bytes, if less than the
    /// longest key [`Cache`](crate::Cache) accepts.
    pub max_key_len: Option<usize>,
    /// Largest value in bytes (the encoded envelope).
    pub max_value_len: Option<usize>,
    /// Leases coordinate processes ([`CacheBackend::supports_leases`]).
    pub leases: bool,
}

impl Default for Capabilities {
    /// Everything, with millisecond TTLs and no size limits.
    fn default() -> Self {
        Capabilities {
            pattern_deletes: true,
            exact_tag_keys: false,
            exact_counts: true,
            ttl_resolution: Duration::from_millis(1),
            native_expiry: true,
            max_key_len: None,
            max_value_len: None,
            leases: false,
        }
    }
}

/// One value to store, with everything a backend may keep beside it.
#[derive(Clone)]
#[non_exhaustive]
pub struct Entry<'a> {
    /// The encoded value (an envelope, see [`Codec`](crate::Codec)).
    pub value: Bytes,
    /// The decoded value, for in-process tiers to keep.
    pub decoded: Option<Decoded>,
    /// Time to live; `None` means no expiry.
    pub ttl: Option<Duration>,
    /// Full (namespaced) tag names the key belongs to.
    pub tags: &'a [String],
}

impl<'a> Entry<'a> {
    /// An entry with bytes and a TTL only.
    pub fn new(value: Bytes, ttl: Option<Duration>) -> Entry<'a> {
        Entry {
            value,
            decoded: None,
            ttl,
            tags: &[],
        }
    }

    /// Adds the decoded value.
    #[must_use]
    pub fn decoded(mut self, decoded: Decoded) -> Self {
        self.decoded = Some(decoded);
        self
    }

    /// Adds tags.
    #[must_use]
    pub fn tags(mut self, tags: &'a [String]) -> Self {
        self.tags = tags;
        self
    }
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value_len", &self.value.len())
            .field("decoded", &self.decoded.is_some())
            .field("ttl", &self.ttl)
            .field("tags", &self.tags)
            .finish()
    }
}

/// An async, bytes-level cache store.
///
/// Keys arrive fully namespaced (`namespace:user-key`); values are opaque
/// bytes. The trait is object safe, so `Arc<dyn CacheBackend>` works, and a
/// tier of two backends is itself a backend. Most users never call it
/// directly: they hold a typed [`Cache`](crate::Cache).
///
/// Patterns use glob syntax: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`, and `\` to
/// escape (see [`Glob`](crate::Glob)).
///
/// ```
/// use covet_cache::{CacheBackend, MemoryBackend};
/// use std::sync::Arc;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let backend: Arc<dyn CacheBackend> = Arc::new(MemoryBackend::new());
/// backend.set("ns:a", "1".into(), None).await.unwrap();
/// assert_eq!(backend.incr("ns:a", 41, None).await.unwrap(), 42);
/// assert_eq!(backend.delete_pattern("ns:*").await.unwrap(), 1);
/// # });
/// ```
#[async_trait]
pub trait CacheBackend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors (`memory`, `redis`, ...).
    fn name(&self) -> &'static str;

    /// Reads one value.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Reads several values; the result has one slot per key, in order.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Writes one value; `ttl = None` means no expiry.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_entry(key, Entry::new(value, ttl)).await
    }

    /// Writes one value with its decoded form and tags.
    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()>;

    /// Writes several values with one TTL.
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
    }

    /// Deletes one key; `true` if it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes several keys; returns how many existed.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            n += u64::from(self.delete(key).await?);
        }
        Ok(n)
    }

    /// Deletes every key matching the glob `pattern`; returns how many.
    async fn delete_pattern(&self, pattern: &str) -> Result<u64>;

    /// How many live keys match `pattern` (a [`Glob`](crate::Glob)): a walk
    /// of the keys, O(keys) (memory: the map; Redis: `SCAN` on every
    /// primary; SQL: a range scan of the key index). The default is
    /// [`Error::Unsupported`](crate::Error::Unsupported) (Memcached cannot
    /// list its keys).
    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        let _ = pattern;
        Err(crate::Error::Unsupported {
            backend: self.name(),
            operation: "counting keys by pattern",
        })
    }

    /// Deletes every key that starts with `prefix` (a namespace's `ns:`).
    async fn clear(&self, prefix: &str) -> Result<u64> {
        self.delete_pattern(&format!("{}*", escape_glob(prefix)))
            .await
    }

    /// Whether the key holds a live value.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// The key's remaining lifetime.
    async fn ttl(&self, key: &str) -> Result<KeyTtl>;

    /// Adds `delta` to the decimal integer at `key` (missing counts as 0)
    /// and returns the new value. `ttl` applies only when the key is created.
    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64>;

    /// Deletes every key stored with the (namespaced) `tag`; returns how many.
    async fn invalidate_tag(&self, tag: &str) -> Result<u64>;

    /// Reads one value with its remaining lifetime, for tiers that copy it
    /// into a faster tier and must not keep the copy longer than the
    /// original. [`KeyTtl::Missing`] beside a value means it expired while
    /// being read. The default reads the value, then its TTL; remote backends
    /// should answer in one round trip.
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        let Some(value) = self.get(key).await? else {
            return Ok(None);
        };
        Ok(Some((value, self.ttl(key).await?)))
    }

    /// Like [`invalidate_tag`](Self::invalidate_tag), and also returns the
    /// keys it deleted when the backend can list them, so a tier in front of
    /// it (in this and other processes) drops exactly those keys. The
    /// default returns `None` for the list: a `Tiered`
    /// cache then drops the whole namespace of the tag from its fast tier.
    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        Ok((self.invalidate_tag(tag).await?, None))
    }

    /// Takes the lease on `key` for `token` if nobody holds it, for `ttl`:
    /// `Ok(true)` when `token` holds it now. The caller draws the token
    /// (see [`lease::Lease`](crate::lease::Lease), which also renews and
    /// releases it), so a request whose answer is lost can still be undone.
    /// [`Cache`](crate::Cache) asks only backends whose
    /// [`supports_leases`](Self::supports_leases) is `true`.
    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let _ = (key, token, ttl);
        Ok(false)
    }

    /// Takes a lease on `key` with a fresh random token: `Ok(Some(token))`
    /// when this caller holds it now, `Ok(None)` when someone else does.
    async fn lease_acquire(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        let token = crate::lease::new_token()?;
        Ok(self.lease_try(key, &token, ttl).await?.then_some(token))
    }

    /// Extends the lease on `key` to `ttl` from now, only if `token` still
    /// holds it; `true` if it did.
    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let _ = (key, token, ttl);
        Ok(false)
    }

    /// Releases a lease, only if `token` still holds it; `true` if it was
    /// released.
    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        let _ = (key, token);
        Ok(false)
    }

    /// Whether [`lease_acquire`](Self::lease_acquire) coordinates processes.
    fn supports_leases(&self) -> bool {
        false
    }

    /// What this backend can do. The default: everything but exact tag key
    /// lists, leases as [`supports_leases`](Self::supports_leases) says.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            leases: self.supports_leases(),
            ..Capabilities::default()
        }
    }

    /// Deletes expired entries a backend without native expiry keeps
    /// (see [`Capabilities::native_expiry`]); returns how many. Backends
    /// that expire entries themselves do nothing.
    async fn sweep(&self) -> Result<u64> {
        Ok(0)
    }

    /// The in-process tier of this backend, used by [`Cache`](crate::Cache)
    /// for allocation-free, decode-free hits.
    #[cfg(feature = "memory")]
    fn local(&self) -> Option<&memory::MemoryBackend> {
        None
    }

    /// Whether every operation is answered by [`local`](Self::local) alone.
    fn is_local_only(&self) -> bool {
        false
    }

    /// Entries dropped so far to respect capacity limits.
    fn evictions(&self) -> u64 {
        0
    }
}

#[async_trait]
impl<B: CacheBackend + ?Sized> CacheBackend for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).get(key).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        (**self).get_many(keys).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        (**self).set(key, value, ttl).await
    }
    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        (**self).set_entry(key, entry).await
    }
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        (**self).set_many(entries, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        (**self).delete_many(keys).await
    }
    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        (**self).delete_pattern(pattern).await
    }
    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        (**self).count_pattern(pattern).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64> {
        (**self).clear(prefix).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        (**self).exists(key).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        (**self).ttl(key).await
    }
    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        (**self).incr(key, delta, ttl).await
    }
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        (**self).invalidate_tag(tag).await
    }
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        (**self).get_with_ttl(key).await
    }
    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        (**self).invalidate_tag_keys(tag).await
    }
    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        (**self).lease_try(key, token, ttl).await
    }
    async fn lease_acquire(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        (**self).lease_acquire(key, ttl).await
    }
    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        (**self).lease_renew(key, token, ttl).await
    }
    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        (**self).lease_release(key, token).await
    }
    fn supports_leases(&self) -> bool {
        (**self).supports_leases()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn sweep(&self) -> Result<u64> {
        (**self).sweep().await
    }
    #[cfg(feature = "memory")]
    fn local(&self) -> Option<&memory::MemoryBackend> {
        (**self).local()
    }
    fn is_local_only(&self) -> bool {
        (**self).is_local_only()
    }
    fn evictions(&self) -> u64 {
        (**self).evictions()
    }
}
