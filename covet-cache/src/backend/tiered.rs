//! Two tiers as one backend: a fast in-process tier (L1, normally a
//! [`MemoryBackend`]) in front of a shared one (L2, normally Redis), kept
//! coherent across processes with Redis pub/sub (feature `redis`).
//!
//! ```
//! use covet_cache::{Cache, MemoryBackend, Tiered};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let shared = MemoryBackend::new(); // stands in for Redis here
//! let cache = Cache::builder()
//!     .backend(Tiered::new(MemoryBackend::builder().max_capacity_bytes(32 << 20).build(), shared))
//!     .namespace("myapp")
//!     .build()
//!     .unwrap();
//! cache.set("user:1", &"Alice".to_string(), None).await.unwrap();
//! // served by L1, without decoding and without asking L2
//! assert_eq!(cache.get::<String>("user:1").await.unwrap().as_deref(), Some("Alice"));
//! # });
//! ```
//!
//! # Consistency
//!
//! Within one process, a write or delete is visible as soon as the call
//! returns: it goes to L2 first, then to L1.
//!
//! With coherence (`RedisCoherence`, feature `redis`; on by default when L2
//! is a `RedisBackend`), every write, delete, pattern delete, tag
//! invalidation, `incr` and clear is published on the channel
//! `covet:invalidate:<namespace>` after L2 has applied it and before the
//! call returns. Every process holds one pattern subscription,
//! `covet:invalidate:*` (so it never misses the first message of a
//! namespace it starts using), ignores its own messages (each carries the
//! random id of the publishing `Tiered`) and drops the matching L1 entries.
//! The bounds, from the usual case to the worst one:
//!
//! * **Normal operation**: another process may serve its old L1 copy for
//!   the pub/sub delivery delay after the writer's call returned: often
//!   none at all, since Redis sends the message to subscribers in the same
//!   event-loop pass as its answer to the `PUBLISH`; typically well under
//!   1 ms on one host (plus a network hop across hosts), more when the
//!   receiving process is starved of CPU. `BENCHMARKS.md` ("Tiered") has
//!   measured figures.
//! * **Subscription lost** (Redis restarted, connection closed, or a `PING`
//!   unanswered for `RedisCoherence::ping_interval`): L1 is flushed as soon
//!   as the loss is detected (at once when the connection closes, within
//!   two ping intervals, 2 s by default, when it silently hangs), and the
//!   subscription is re-established with backoff. While it is down (and
//!   before it is first established), new L1 copies live at most
//!   [`disconnected_l1_ttl`](TieredBuilder::disconnected_l1_ttl) (1 s by
//!   default), and L1 is flushed again when the subscription is back.
//! * **A message that never left the writer** (its `PUBLISH` failed while
//!   its L2 write succeeded; logged and counted in
//!   [`CoherenceStats::publish_errors`]): other processes keep their copy
//!   for at most [`l1_max_ttl`](TieredBuilder::l1_max_ttl), 60 s by
//!   default. This is the hard bound.
//!
//! An L1 copy never outlives the L2 entry it was copied from: its TTL is
//! the remaining L2 TTL (read in the same round trip as the value, minus
//! the time the read took and 1 ms for clock rounding), capped at
//! `l1_max_ttl`. A value written through the tiers gets its TTL minus the
//! time the L2 write took, minus 1 ms.
//!
//! A read that races with an invalidation never leaves a stale copy behind:
//! every copy written to L1 is checked against a per-key invalidation
//! counter afterwards and removed again if an invalidation arrived
//! meanwhile (the read still returns the value it got).
//!
//! Tags: when L2 lists the keys a tag invalidation deleted (as
//! `RedisBackend` does, see [`CacheBackend::invalidate_tag_keys`]), every L1
//! drops exactly those keys; otherwise every L1 drops the tag's whole
//! namespace, since a copy read from L2 does not know its tags.
//!
//! When Redis itself goes down, the subscription goes with it and L1 is
//! flushed: reads are then misses that fail (and `#[cached]` runs the
//! function). To keep serving L1 hits through a Redis outage, at the price
//! of the `l1_max_ttl` bound for writes made meanwhile by processes that
//! still reach Redis, use `RedisCoherence::keep_l1_while_disconnected`. An
//! L1 hit never touches L2 either way.
//!
//! The subscriber runs on the tokio runtime that first used the tiers. If
//! that runtime shuts down while the tiers live on, they count as
//! disconnected until the next operation that reaches them (any write or L1
//! miss) starts a new subscriber on the current runtime.
//!
//! Without coherence (no Redis, or `TieredBuilder::without_coherence`),
//! another process's writes reach this process's L1 only when the copy
//! expires: `l1_max_ttl` is then the staleness bound.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::memory::MemoryBackend;
use super::{CacheBackend, Capabilities, Entry, KeyTtl};
use crate::error::{ConfigError, Result};
use crate::key::Glob;

mod coherence;
mod front;
#[cfg(feature = "redis")]
mod redis;

pub use self::coherence::Coherence;
use self::coherence::{Channel, Receiver};
pub use self::front::CoherenceStats;
pub(crate) use self::front::Invalidate;
use self::front::{Front, Link, LinkState};
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_CHANNEL_PREFIX, RedisCoherence};

/// How much sooner than its original an L1 copy expires: it absorbs the
/// millisecond resolution of remote clocks (a Redis `PTTL` is rounded) and
/// the time L1 takes to insert the copy.
const COPY_MARGIN: Duration = Duration::from_millis(1);

/// Longest life of an L1 copy when the builder sets none: 60 s.
pub const DEFAULT_L1_MAX_TTL: Duration = Duration::from_secs(60);

/// Longest life of an L1 copy made while the coherence subscription is down,
/// when the builder sets none: 1 s.
pub const DEFAULT_DISCONNECTED_L1_TTL: Duration = Duration::from_secs(1);

/// A cache of two tiers that is itself a [`CacheBackend`]: reads try L1,
/// then L2 (and copy the value into L1 for as long as L2 keeps it, at most
/// [`l1_max_ttl`](TieredBuilder::l1_max_ttl)); writes, deletes, pattern
/// deletes, tag invalidations and clears go to L2, then L1; `incr` goes to
/// L2 and drops the L1 copy; leases are L2's.
///
/// L1 is normally a [`MemoryBackend`]: [`Cache`](crate::Cache) then serves
/// L1 hits straight from it, without decoding, exactly as with a plain
/// memory cache, and an L1 hit never touches L2 (so hits continue while L2
/// is down). Values written through a `Cache` keep their decoded form in L1
/// only.
///
/// Several processes stay coherent through Redis pub/sub; the module
/// documentation states the [consistency bounds](self#consistency).
///
/// Cloning is cheap and shares everything; the coherence task stops when
/// the last clone is dropped.
///
/// ```
/// use covet_cache::{CacheBackend, MemoryBackend, Tiered};
/// use std::time::Duration;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tiered = Tiered::builder(MemoryBackend::new(), MemoryBackend::new())
///     .l1_max_ttl(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// tiered.l2().set("ns:k", "v".into(), None).await.unwrap(); // written elsewhere
/// assert_eq!(tiered.get("ns:k").await.unwrap().as_deref(), Some(&b"v"[..])); // copied into L1
/// assert!(tiered.l1().exists("ns:k").await.unwrap());
/// # });
/// ```
pub struct Tiered<L1, L2> {
    inner: Arc<Inner<L1, L2>>,
}

struct Inner<L1, L2> {
    front: Arc<Front<L1>>,
    /// The same front, for the coherence subscriber.
    receiver: Arc<dyn Receiver>,
    l2: L2,
    channel: Option<Box<dyn Channel>>,
}

impl<L1, L2> Clone for Tiered<L1, L2> {
    fn clone(&self) -> Self {
        Tiered {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L1: fmt::Debug, L2: fmt::Debug> fmt::Debug for Tiered<L1, L2> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let front = &self.inner.front;
        let mut d = f.debug_struct("Tiered");
        d.field("l1", &front.l1)
            .field("l2", &self.inner.l2)
            .field("l1_max_ttl", &front.l1_max_ttl)
            .field("coherence", &self.inner.channel)
            .field("link", &front.link.state())
            .finish()
    }
}

/// Builder for [`Tiered`], from [`Tiered::builder`].
#[must_use]
pub struct TieredBuilder<L1, L2> {
    l1: L1,
    l2: L2,
    l1_max_ttl: Duration,
    disconnected_l1_ttl: Duration,
    coherence: CoherenceChoice,
}

#[derive(Debug)]
enum CoherenceChoice {
    /// The channel L2 offers, if any (a `RedisBackend` does).
    Auto,
    Off,
    On(Box<dyn Channel>),
}

impl<L1: fmt::Debug, L2: fmt::Debug> fmt::Debug for TieredBuilder<L1, L2> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TieredBuilder");
        d.field("l1", &self.l1)
            .field("l2", &self.l2)
            .field("l1_max_ttl", &self.l1_max_ttl)
            .field("disconnected_l1_ttl", &self.disconnected_l1_ttl)
            .field("coherence", &self.coherence)
            .finish()
    }
}

impl<L1: CacheBackend, L2: CacheBackend> TieredBuilder<L1, L2> {
    /// Upper bound of an L1 copy's life (default 60 s), whatever L2's TTL.
    /// It bounds how long another process's write can stay invisible here
    /// when an invalidation message is lost, or when there is no coherence
    /// at all. `Duration::MAX` removes the bound.
    pub fn l1_max_ttl(mut self, ttl: Duration) -> Self {
        self.l1_max_ttl = ttl;
        self
    }

    /// Upper bound of the life of L1 copies made while the coherence
    /// subscription is down or not yet established (default 1 s). Zero
    /// keeps no copies then. Has no effect without coherence.
    pub fn disconnected_l1_ttl(mut self, ttl: Duration) -> Self {
        self.disconnected_l1_ttl = ttl;
        self
    }

    /// Keeps the tiers coherent across processes with `coherence`, such
    /// as a `RedisCoherence` (feature `redis`) on any Redis, normally the
    /// one L2 lives on.
    pub fn coherence(mut self, coherence: impl Into<Coherence>) -> Self {
        self.coherence = CoherenceChoice::On(coherence.into().channel);
        self
    }

    /// No cross-process coherence, even when L2 offers it (a
    /// `RedisBackend` does): use it when only one process uses L2, or when
    /// `l1_max_ttl` is an acceptable staleness.
    pub fn without_coherence(mut self) -> Self {
        self.coherence = CoherenceChoice::Off;
        self
    }

    /// Checks the configuration and builds the tiers. With coherence, the
    /// subscriber task starts now when called inside a tokio runtime,
    /// otherwise at the first operation; until it is subscribed, L1 copies
    /// live at most `disconnected_l1_ttl`. Use
    /// [`connect`](Self::connect) to wait for the subscription.
    pub fn build(self) -> Result<Tiered<L1, L2>, ConfigError> {
        if self.l1_max_ttl.is_zero() {
            return Err(ConfigError::ZeroDuration("l1_max_ttl"));
        }
        Ok(self.assemble())
    }

    /// Builds the tiers and waits until the coherence subscription is
    /// established (without coherence, returns at once). Fails with
    /// [`Error::Backend`](crate::Error::Backend) when the coherence channel
    /// cannot be reached within its timeout (`RedisCoherence::timeout`).
    pub async fn connect(self) -> crate::Result<Tiered<L1, L2>> {
        let tiered = self
            .build()
            .map_err(|e| crate::Error::backend("tiered", "invalid tiered configuration", e))?;
        tiered.wait_connected().await?;
        Ok(tiered)
    }

    fn assemble(self) -> Tiered<L1, L2> {
        let channel = match self.coherence {
            CoherenceChoice::On(c) => Some(c),
            CoherenceChoice::Off => None,
            CoherenceChoice::Auto => coherence::auto(&self.l2),
        };
        let link = Link::new(channel.is_some(), self.disconnected_l1_ttl);
        let front = Arc::new(Front::new(self.l1, self.l1_max_ttl, link));
        let tiered = Tiered {
            inner: Arc::new(Inner {
                receiver: Arc::clone(&front) as Arc<dyn Receiver>,
                front,
                l2: self.l2,
                channel,
            }),
        };
        tiered.start_coherence();
        tiered
    }
}

impl<L1: CacheBackend, L2: CacheBackend> Tiered<L1, L2> {
    /// L1 in front of L2, with the defaults: `l1_max_ttl` 60 s and, with
    /// the `redis` feature, coherence across processes when L2 is a
    /// `RedisBackend` (or an `Arc` of one), through pub/sub on the Redis it
    /// is connected to (`RedisCoherence::from_backend`).
    ///
    /// The subscriber starts at once inside a tokio runtime (otherwise at
    /// the first operation) and does not make `new` wait: until it is
    /// subscribed, L1 copies live at most
    /// [`disconnected_l1_ttl`](TieredBuilder::disconnected_l1_ttl) (1 s).
    /// `Tiered::coherent` waits for the subscription;
    /// `TieredBuilder::without_coherence` turns it off.
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use covet_cache::{Cache, MemoryBackend, RedisBackend, Tiered};
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// let cache = Cache::builder()
    ///     .backend(Tiered::new(MemoryBackend::builder().max_capacity_bytes(32 << 20).build(), redis))
    ///     .namespace("myapp")
    ///     .build()?;
    /// # let _ = cache; Ok(()) }
    /// ```
    pub fn new(l1: L1, l2: L2) -> Tiered<L1, L2> {
        Tiered::builder(l1, l2).assemble()
    }

    /// Starts a builder.
    pub fn builder(l1: L1, l2: L2) -> TieredBuilder<L1, L2> {
        TieredBuilder {
            l1,
            l2,
            l1_max_ttl: DEFAULT_L1_MAX_TTL,
            disconnected_l1_ttl: DEFAULT_DISCONNECTED_L1_TTL,
            coherence: CoherenceChoice::Auto,
        }
    }

    /// The fast tier.
    pub fn l1(&self) -> &L1 {
        &self.inner.front.l1
    }

    /// The shared tier.
    pub fn l2(&self) -> &L2 {
        &self.inner.l2
    }

    /// The longest life of an L1 copy.
    pub fn l1_max_ttl(&self) -> Duration {
        self.inner.front.l1_max_ttl
    }

    /// Counters and state of cross-process coherence; `None` without it.
    ///
    /// ```
    /// use covet_cache::{MemoryBackend, Tiered};
    /// let t = Tiered::new(MemoryBackend::new(), MemoryBackend::new());
    /// assert!(t.coherence_stats().is_none());
    /// ```
    pub fn coherence_stats(&self) -> Option<CoherenceStats> {
        let link = &self.inner.front.link;
        (link.state() != LinkState::Off).then(|| link.stats())
    }

    /// Waits until the coherence subscription is established, at most
    /// `timeout`; `true` if it is (or if there is no coherence).
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        self.start_coherence();
        let link = &self.inner.front.link;
        // (a year stands for "forever" without overflowing the clock)
        let deadline =
            tokio::time::Instant::now() + timeout.min(Duration::from_secs(365 * 24 * 3600));
        loop {
            let changed = link.changed.notified();
            if link.state() != LinkState::Down {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return link.state() != LinkState::Down;
            }
        }
    }

    async fn wait_connected(&self) -> crate::Result<()> {
        let Some(channel) = &self.inner.channel else {
            return Ok(());
        };
        if self.wait_subscribed(channel.timeout()).await {
            return Ok(());
        }
        Err(crate::Error::Backend {
            backend: "tiered",
            message: format!(
                "could not subscribe to the coherence channel on {} within {:?}",
                channel.describe(),
                channel.timeout()
            ),
            source: channel.last_error(),
        })
    }

    #[inline]
    fn start_coherence(&self) {
        if let Some(channel) = &self.inner.channel {
            channel.ensure_started(&self.inner.receiver);
        }
    }

    /// Publishes an invalidation to the other processes (after L2 applied it).
    async fn publish<'a>(&self, op: impl FnOnce() -> Invalidate<'a>) {
        if let Some(channel) = &self.inner.channel {
            channel.publish(&self.inner.front.link, &op()).await;
        }
    }

    /// Publishes the invalidation of an L2 operation that returned
    /// `result`: after a success, and after a failure that may still have
    /// applied it (counted in
    /// [`CoherenceStats::published_after_errors`]).
    async fn publish_after<'a, T>(&self, result: &Result<T>, op: impl FnOnce() -> Invalidate<'a>) {
        match result {
            Ok(_) => self.publish(op).await,
            Err(err) if err.may_have_applied() => {
                if self.inner.front.link.state() != LinkState::Off {
                    self.inner
                        .front
                        .link
                        .stats
                        .after_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.publish(op).await;
            }
            Err(_) => {}
        }
    }

    /// Reads L2 and copies the value into L1.
    async fn read_through(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        self.start_coherence();
        let front = &self.inner.front;
        let epoch = front.epochs.of(key);
        let started = Instant::now();
        let Some((value, ttl)) = self.inner.l2.get_with_ttl(key).await? else {
            return Ok(None);
        };
        // The TTL was read somewhere within the round trip: subtracting the
        // whole round trip keeps the copy from outliving the original.
        let remaining = match ttl {
            KeyTtl::Missing => None,
            KeyTtl::Persistent => Some(None),
            KeyTtl::Expires(d) => Some(Some(d.saturating_sub(started.elapsed() + COPY_MARGIN))),
        };
        if let Some(remaining) = remaining {
            front
                .copy_in(key, value.clone(), None, remaining, &[], epoch)
                .await;
        }
        Ok(Some((value, ttl)))
    }

    #[inline]
    async fn l1_get(&self, key: &str) -> Option<Bytes> {
        let l1 = &self.inner.front.l1;
        if let Some(memory) = l1.local() {
            // No boxed future of the trait method: a plain moka lookup.
            return memory.get_entry(key).await.map(|e| e.bytes.clone());
        }
        match l1.get(key).await {
            Ok(v) => v,
            Err(err) => {
                tracing::debug!(key = %crate::backend::traced::key_hash(key), error = %err, "L1 read failed; reading L2");
                None
            }
        }
    }
}

#[async_trait]
impl<L1: CacheBackend, L2: CacheBackend> CacheBackend for Tiered<L1, L2> {
    fn name(&self) -> &'static str {
        "tiered"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        if let Some(v) = self.l1_get(key).await {
            return Ok(Some(v));
        }
        Ok(self.read_through(key).await?.map(|(v, _)| v))
    }

    /// The lifetime is L2's, so this always asks L2 (and refreshes the L1
    /// copy).
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        self.read_through(key).await
    }

    /// L1 answers what it holds; the rest comes from L2 in one call (and is
    /// not copied into L1, since L2 gives no TTLs for a batch).
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let v = self.l1_get(key).await;
            if v.is_none() {
                missing.push(i);
            }
            out.push(v);
        }
        if missing.is_empty() {
            return Ok(out);
        }
        self.start_coherence();
        let miss_keys: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let values = self.inner.l2.get_many(&miss_keys).await?;
        for (i, v) in missing.into_iter().zip(values) {
            out[i] = v;
        }
        Ok(out)
    }

    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        self.start_coherence();
        let front = &self.inner.front;
        let Entry {
            value,
            decoded,
            ttl,
            tags,
        } = entry;
        let epoch = front.epochs.of(key);
        let started = Instant::now();
        let l2_entry = Entry::new(value.clone(), ttl).tags(tags);
        if let Err(err) = self.inner.l2.set_entry(key, l2_entry).await {
            front.drop_keys(&[key]).await;
            let err = Err(err);
            self.publish_after(&err, || Invalidate::Keys(vec![Cow::Borrowed(key)]))
                .await;
            return err;
        }
        let expected = front.epochs.bump_key(key);
        let ttl = ttl.map(|t| t.saturating_sub(started.elapsed() + COPY_MARGIN));
        if expected == epoch.wrapping_add(1) {
            front
                .copy_in(key, value, decoded, ttl, tags, expected)
                .await;
        } else {
            // Another write or invalidation of this key raced with ours: the
            // next read asks L2.
            front.delete_l1(key).await;
        }
        self.publish(|| Invalidate::Keys(vec![Cow::Borrowed(key)]))
            .await;
        Ok(())
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.start_coherence();
        let front = &self.inner.front;
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        let epochs: Vec<u64> = keys.iter().map(|k| front.epochs.of(k)).collect();
        let started = Instant::now();
        if let Err(err) = self.inner.l2.set_many(entries, ttl).await {
            front.drop_keys(&keys).await;
            let err = Err(err);
            self.publish_after(&err, || {
                Invalidate::Keys(keys.iter().map(|k| Cow::Borrowed(*k)).collect())
            })
            .await;
            return err;
        }
        let ttl = ttl.map(|t| t.saturating_sub(started.elapsed() + COPY_MARGIN));
        for ((key, value), epoch) in entries.iter().zip(epochs) {
            let expected = front.epochs.bump_key(key);
            if expected == epoch.wrapping_add(1) {
                front
                    .copy_in(key, value.clone(), None, ttl, &[], expected)
                    .await;
            } else {
                front.delete_l1(key).await;
            }
        }
        self.publish(|| Invalidate::Keys(keys.iter().map(|k| Cow::Borrowed(*k)).collect()))
            .await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.start_coherence();
        let result = self.inner.l2.delete(key).await;
        self.inner.front.drop_keys(&[key]).await;
        self.publish_after(&result, || Invalidate::Keys(vec![Cow::Borrowed(key)]))
            .await;
        result
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.start_coherence();
        let result = self.inner.l2.delete_many(keys).await;
        self.inner.front.drop_keys(keys).await;
        self.publish_after(&result, || {
            Invalidate::Keys(keys.iter().map(|k| Cow::Borrowed(*k)).collect())
        })
        .await;
        result
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        Glob::new(pattern)?;
        self.start_coherence();
        let result = self.inner.l2.delete_pattern(pattern).await;
        let op = Invalidate::Pattern(Cow::Borrowed(pattern));
        self.inner.front.apply(&op).await;
        self.publish_after(&result, || op).await;
        result
    }

    /// The count of the shared tier (L2).
    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        self.inner.l2.count_pattern(pattern).await
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        self.start_coherence();
        let result = self.inner.l2.clear(prefix).await;
        let op = Invalidate::Prefix(Cow::Borrowed(prefix));
        self.inner.front.apply(&op).await;
        self.publish_after(&result, || op).await;
        result
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        if matches!(self.inner.front.l1.exists(key).await, Ok(true)) {
            return Ok(true);
        }
        self.start_coherence();
        self.inner.l2.exists(key).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.inner.l2.ttl(key).await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.start_coherence();
        let result = self.inner.l2.incr(key, delta, ttl).await;
        self.inner.front.drop_keys(&[key]).await;
        self.publish_after(&result, || Invalidate::Keys(vec![Cow::Borrowed(key)]))
            .await;
        result
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        Ok(self.invalidate_tag_keys(tag).await?.0)
    }

    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        self.start_coherence();
        let result = self.inner.l2.invalidate_tag_keys(tag).await;
        let keys = match &result {
            Ok((_, Some(keys))) => Some(keys.iter().map(|k| Cow::Borrowed(k.as_str())).collect()),
            // L2 could not list them, or failed: assume any key may be gone.
            _ => None,
        };
        let op = Invalidate::Tag {
            tag: Cow::Borrowed(tag),
            keys,
        };
        self.inner.front.apply(&op).await;
        self.publish_after(&result, || op).await;
        result
    }

    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.inner.l2.lease_try(key, token, ttl).await
    }

    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.inner.l2.lease_renew(key, token, ttl).await
    }

    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        self.inner.l2.lease_release(key, token).await
    }

    fn supports_leases(&self) -> bool {
        self.inner.l2.supports_leases()
    }

    fn capabilities(&self) -> Capabilities {
        // L2 holds the truth (leases included); L1 copies follow it.
        self.inner.l2.capabilities()
    }

    async fn sweep(&self) -> Result<u64> {
        self.inner.l2.sweep().await
    }

    fn local(&self) -> Option<&MemoryBackend> {
        self.inner.front.l1.local()
    }

    fn is_local_only(&self) -> bool {
        false
    }

    fn evictions(&self) -> u64 {
        self.inner.front.l1.evictions() + self.inner.l2.evictions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cache;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    fn pair() -> (Tiered<MemoryBackend, MemoryBackend>, MemoryBackend) {
        let l2 = MemoryBackend::new();
        (Tiered::new(MemoryBackend::new(), l2.clone()), l2)
    }

    #[tokio::test]
    async fn reads_fill_l1_with_the_remaining_l2_ttl() {
        let (t, l2) = pair();
        l2.set("ns:a", "1".into(), Some(Duration::from_millis(400)))
            .await
            .unwrap();
        l2.set("ns:p", "2".into(), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(t.get("ns:a").await.unwrap().as_deref(), Some(&b"1"[..]));
        let KeyTtl::Expires(l1) = t.l1().ttl("ns:a").await.unwrap() else {
            panic!("L1 copy expected");
        };
        assert!(l1 <= Duration::from_millis(300), "{l1:?}");
        // persistent in L2: capped at l1_max_ttl
        assert_eq!(t.get("ns:p").await.unwrap().as_deref(), Some(&b"2"[..]));
        let KeyTtl::Expires(l1) = t.l1().ttl("ns:p").await.unwrap() else {
            panic!("L1 copy expected");
        };
        assert!(l1 <= DEFAULT_L1_MAX_TTL && l1 > Duration::from_secs(50));
        // the L1 copy is gone when L2's expires
        tokio::time::sleep(Duration::from_millis(320)).await;
        assert!(!t.l1().exists("ns:a").await.unwrap());
        assert_eq!(t.get("ns:a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn l1_max_ttl_caps_copies_and_zero_is_refused() {
        let t = Tiered::builder(MemoryBackend::new(), MemoryBackend::new())
            .l1_max_ttl(Duration::from_millis(50))
            .build()
            .unwrap();
        t.set("ns:k", "v".into(), Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(t.l1().exists("ns:k").await.unwrap());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!t.l1().exists("ns:k").await.unwrap());
        assert!(t.l2().exists("ns:k").await.unwrap());
        assert!(matches!(
            Tiered::builder(MemoryBackend::new(), MemoryBackend::new())
                .l1_max_ttl(Duration::ZERO)
                .build(),
            Err(ConfigError::ZeroDuration("l1_max_ttl"))
        ));
        let unbounded = Tiered::builder(MemoryBackend::new(), MemoryBackend::new())
            .l1_max_ttl(Duration::MAX)
            .build()
            .unwrap();
        unbounded.set("ns:k", "v".into(), None).await.unwrap();
        assert_eq!(
            unbounded.l1().ttl("ns:k").await.unwrap(),
            KeyTtl::Persistent
        );
    }

    #[tokio::test]
    async fn writes_and_deletes_reach_both_tiers() {
        let (t, l2) = pair();
        t.set("ns:a", "1".into(), None).await.unwrap();
        assert!(t.l1().exists("ns:a").await.unwrap());
        assert!(l2.exists("ns:a").await.unwrap());
        t.set_many(&[("ns:b", "2".into()), ("ns:c", "3".into())], None)
            .await
            .unwrap();
        assert!(t.l1().exists("ns:c").await.unwrap() && l2.exists("ns:c").await.unwrap());
        assert!(t.delete("ns:a").await.unwrap());
        assert!(!t.l1().exists("ns:a").await.unwrap() && !l2.exists("ns:a").await.unwrap());
        assert_eq!(t.delete_many(&["ns:b", "ns:x"]).await.unwrap(), 1);
        assert!(!t.l1().exists("ns:b").await.unwrap());
        t.set("ns:user:1", "u".into(), None).await.unwrap();
        t.set("other:user:1", "u".into(), None).await.unwrap();
        assert_eq!(t.delete_pattern("ns:user:*").await.unwrap(), 1);
        assert!(!t.l1().exists("ns:user:1").await.unwrap());
        assert!(t.l1().exists("other:user:1").await.unwrap());
        assert!(t.delete_pattern("ns:[").await.is_err());
        assert_eq!(t.clear("ns:").await.unwrap(), 1);
        assert!(!t.l1().exists("ns:c").await.unwrap() && !l2.exists("ns:c").await.unwrap());
        assert!(t.l1().exists("other:user:1").await.unwrap());
    }

    #[tokio::test]
    async fn incr_goes_to_l2_and_drops_the_copy() {
        let (t, l2) = pair();
        t.set("ns:n", "5".into(), None).await.unwrap();
        assert_eq!(t.incr("ns:n", 2, None).await.unwrap(), 7);
        assert!(!t.l1().exists("ns:n").await.unwrap());
        assert_eq!(l2.get("ns:n").await.unwrap().as_deref(), Some(&b"7"[..]));
        assert_eq!(t.get("ns:n").await.unwrap().as_deref(), Some(&b"7"[..]));
    }

    #[tokio::test]
    async fn tags_drop_l2_members_and_the_namespace_copies() {
        let (t, l2) = pair();
        let tags = vec!["ns:t".to_string()];
        t.set_entry("ns:1", Entry::new("a".into(), None).tags(&tags))
            .await
            .unwrap();
        t.set("ns:2", "b".into(), None).await.unwrap();
        t.set("other:1", "c".into(), None).await.unwrap();
        assert_eq!(t.invalidate_tag("ns:t").await.unwrap(), 1);
        assert!(!l2.exists("ns:1").await.unwrap());
        assert!(l2.exists("ns:2").await.unwrap());
        // L2 cannot list its members: L1 drops the namespace, L2 keeps the rest
        assert!(!t.l1().exists("ns:2").await.unwrap());
        assert!(t.l1().exists("other:1").await.unwrap());
        assert_eq!(t.get("ns:2").await.unwrap().as_deref(), Some(&b"b"[..]));
    }

    /// An L2 that lists the keys a tag invalidation deleted.
    #[derive(Debug, Clone, Default)]
    struct Listing(
        MemoryBackend,
        Arc<parking_lot::Mutex<Vec<(String, String)>>>,
    );

    #[async_trait]
    impl CacheBackend for Listing {
        fn name(&self) -> &'static str {
            "listing"
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            self.0.get(key).await
        }
        async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
            {
                let mut members = self.1.lock();
                for tag in entry.tags {
                    members.push((tag.clone(), key.to_owned()));
                }
            }
            self.0.set_entry(key, entry).await
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.0.delete(key).await
        }
        async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
            self.0.delete_pattern(pattern).await
        }
        async fn exists(&self, key: &str) -> Result<bool> {
            self.0.exists(key).await
        }
        async fn ttl(&self, key: &str) -> Result<KeyTtl> {
            self.0.ttl(key).await
        }
        async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
            self.0.incr(key, delta, ttl).await
        }
        async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
            Ok(self.invalidate_tag_keys(tag).await?.0)
        }
        async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
            let keys: Vec<String> = self
                .1
                .lock()
                .iter()
                .filter(|(t, _)| t == tag)
                .map(|(_, k)| k.clone())
                .collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            Ok((self.0.delete_many(&refs).await?, Some(keys)))
        }
    }

    #[tokio::test]
    async fn listed_tag_members_are_dropped_exactly() {
        let l2 = Listing::default();
        let t = Tiered::new(MemoryBackend::new(), l2.clone());
        let tags = vec!["ns:t".to_string()];
        t.set_entry("ns:1", Entry::new("a".into(), None).tags(&tags))
            .await
            .unwrap();
        t.set("ns:2", "b".into(), None).await.unwrap();
        // a copy read from L2 carries no tags in L1, yet is dropped
        t.l1().delete("ns:1").await.unwrap();
        assert!(t.get("ns:1").await.unwrap().is_some());
        assert_eq!(t.invalidate_tag("ns:t").await.unwrap(), 1);
        assert!(!t.l1().exists("ns:1").await.unwrap());
        assert!(t.l1().exists("ns:2").await.unwrap(), "not a member");
    }

    #[tokio::test]
    async fn cache_hits_come_from_l1_decoded() {
        let (t, _l2) = pair();
        let cache = Cache::builder()
            .backend(t.clone())
            .namespace("app")
            .build()
            .unwrap();
        assert!(cache.backend().local().is_some());
        assert!(!cache.backend().is_local_only());
        cache.set("k", &vec![1u8, 2], None).await.unwrap();
        assert_eq!(cache.get::<Vec<u8>>("k").await.unwrap(), Some(vec![1, 2]));
        let computed = cache
            .get_or_insert_with("c", None, || async { 7u32 })
            .await
            .unwrap();
        assert_eq!(computed, 7);
        let entry = t.l1().get_entry("app:c").await.unwrap();
        assert!(entry.decoded.get().is_some(), "decoded value kept in L1");
        assert_eq!(cache.stats().hits, 1);
    }

    /// An L2 that fails every call once `down` is set, and counts reads.
    #[derive(Debug, Clone, Default)]
    struct Flaky(MemoryBackend, Arc<AtomicBool>, Arc<AtomicU64>);

    impl Flaky {
        fn check(&self) -> Result<()> {
            if self.1.load(Ordering::SeqCst) {
                return Err(crate::Error::Backend {
                    backend: "flaky",
                    message: "down".into(),
                    source: None,
                });
            }
            Ok(())
        }
    }

    #[async_trait]
    impl CacheBackend for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            self.2.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            self.0.get(key).await
        }
        async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
            self.check()?;
            self.0.set_entry(key, entry).await
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.check()?;
            self.0.delete(key).await
        }
        async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
            self.check()?;
            self.0.delete_pattern(pattern).await
        }
        async fn exists(&self, key: &str) -> Result<bool> {
            self.check()?;
            self.0.exists(key).await
        }
        async fn ttl(&self, key: &str) -> Result<KeyTtl> {
            self.check()?;
            self.0.ttl(key).await
        }
        async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
            self.check()?;
            self.0.incr(key, delta, ttl).await
        }
        async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
            self.check()?;
            self.0.invalidate_tag(tag).await
        }
    }

    #[tokio::test]
    async fn l1_hits_need_no_l2_and_failed_writes_drop_the_copy() {
        let l2 = Flaky::default();
        let t = Tiered::new(MemoryBackend::new(), l2.clone());
        let cache = Cache::builder().backend(t.clone()).build().unwrap();
        cache.set("a", &1u32, None).await.unwrap();
        cache.set("b", &2u32, None).await.unwrap();
        l2.1.store(true, Ordering::SeqCst);
        let reads = l2.2.load(Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(1));
            assert!(t.get("covet:a").await.unwrap().is_some());
        }
        assert_eq!(l2.2.load(Ordering::SeqCst), reads, "L1 hits never read L2");
        assert!(cache.get::<u32>("missing").await.is_err());
        // a failed write or delete leaves no copy that L2 may not hold
        assert!(cache.set("a", &3u32, None).await.is_err());
        assert!(!t.l1().exists("covet:a").await.unwrap());
        assert!(cache.delete("b").await.is_err());
        assert!(!t.l1().exists("covet:b").await.unwrap());
        l2.1.store(false, Ordering::SeqCst);
        assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(1));
    }

    /// An L2 whose reads can be held back, to interleave a write.
    #[derive(Debug, Clone, Default)]
    struct Gated(MemoryBackend, Arc<tokio::sync::Mutex<()>>);

    #[async_trait]
    impl CacheBackend for Gated {
        fn name(&self) -> &'static str {
            "gated"
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            let v = self.0.get(key).await;
            let _gate = self.1.lock().await;
            v
        }
        async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
            self.0.set_entry(key, entry).await
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.0.delete(key).await
        }
        async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
            self.0.delete_pattern(pattern).await
        }
        async fn exists(&self, key: &str) -> Result<bool> {
            self.0.exists(key).await
        }
        async fn ttl(&self, key: &str) -> Result<KeyTtl> {
            self.0.ttl(key).await
        }
        async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
            self.0.incr(key, delta, ttl).await
        }
        async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
            self.0.invalidate_tag(tag).await
        }
    }

    #[tokio::test]
    async fn a_read_racing_with_a_write_leaves_no_stale_copy() {
        let l2 = Gated::default();
        let t = Tiered::new(MemoryBackend::new(), l2.clone());
        l2.0.set("ns:k", "old".into(), None).await.unwrap();
        let gate = l2.1.clone().lock_owned().await;
        let reader = {
            let t = t.clone();
            tokio::spawn(async move { t.get("ns:k").await.unwrap() })
        };
        // the reader has read "old" from L2 and waits at the gate
        tokio::time::sleep(Duration::from_millis(20)).await;
        t.set("ns:k", "new".into(), None).await.unwrap();
        drop(gate);
        assert_eq!(reader.await.unwrap().as_deref(), Some(&b"old"[..]));
        // the late copy of "old" was not kept over "new"
        match t.l1().get("ns:k").await.unwrap() {
            None => {}
            Some(v) => assert_eq!(&v[..], b"new"),
        }
        assert_eq!(t.get("ns:k").await.unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn invalidations_apply_to_l1() {
        let (t, _) = pair();
        let front = &t.inner.front;
        for k in ["a:1", "a:2", "a:x:1", "b:1"] {
            t.set(k, "v".into(), None).await.unwrap();
        }
        front.apply(&Invalidate::Keys(vec!["a:1".into()])).await;
        assert!(!t.l1().exists("a:1").await.unwrap());
        front.apply(&Invalidate::Pattern("a:x:*".into())).await;
        assert!(!t.l1().exists("a:x:1").await.unwrap());
        front.apply(&Invalidate::Prefix("a:".into())).await;
        assert!(!t.l1().exists("a:2").await.unwrap());
        assert!(t.l1().exists("b:1").await.unwrap());
        front
            .apply(&Invalidate::Tag {
                tag: "b:t".into(),
                keys: None,
            })
            .await;
        assert!(!t.l1().exists("b:1").await.unwrap());
        assert_eq!(Invalidate::Keys(vec!["ns:k".into()]).namespace(), "ns");
        assert_eq!(Invalidate::Pattern("*".into()).namespace(), "");
    }
}
