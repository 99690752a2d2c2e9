//! A typed in-process memo: values of any `Clone + Send + Sync + 'static`
//! type (no serde bound), keyed by any `Hash + Eq` key, with a per-entry
//! TTL checked on read, a bound on the number of entries, and single-flight
//! on a miss for sync and async callers.
//!
//! The store is [`quick_cache`]'s sharded concurrent cache (S3-FIFO
//! eviction): a hit is a shard read lock, a hash lookup and a clone, with no
//! key rendered and nothing decoded. Concurrent misses of one key wait on
//! quick_cache's placeholder for that key only; a computation that panics
//! or is cancelled drops its placeholder and one waiter computes instead. A
//! computation that asks for its own key (directly, or through another memo
//! call with the same key) computes directly instead of waiting for itself.
//! An [`invalidate`](LocalMemo::invalidate) or [`clear`](LocalMemo::clear)
//! while a value is computed removes the placeholder: the computed value is
//! returned but not stored.
//!
//! Around a miss, as on the shared path: a memo built with
//! [`stale_while_revalidate`](LocalMemoBuilder::stale_while_revalidate),
//! [`stale_if_error`](LocalMemoBuilder::stale_if_error) or
//! [`refresh_ahead`](LocalMemoBuilder::refresh_ahead) keeps entries past
//! their TTL for those windows, and `#[cached(local)]` serves them stale
//! while one refresh per key runs, or when the computation that replaces
//! them fails.
//!
//! Bounded by a count of entries ([`max_entries`](LocalMemoBuilder::max_entries),
//! the default) or by their size in bytes
//! ([`max_bytes`](LocalMemoBuilder::max_bytes), for keys and values that
//! implement [`GetSize`](get_size2::GetSize), or
//! [`max_bytes_with`](LocalMemoBuilder::max_bytes_with) and a weigher of your
//! own). An entry is weighed once, when it is stored.
//!
//! ```
//! use std::time::Duration;
//! use covet_cache::LocalMemo;
//!
//! let memo: LocalMemo<u64, String> = LocalMemo::builder()
//!     .max_entries(1_000)
//!     .ttl(Duration::from_secs(60))
//!     .build();
//! assert_eq!(memo.get_or_insert_with_sync(7, || "seven".to_owned()), "seven");
//! assert_eq!(memo.get(&7).as_deref(), Some("seven"));
//! assert!(memo.invalidate(&7));
//! assert_eq!(memo.get(&7), None);
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

pub use quick_cache::Equivalent;
use quick_cache::sync::{Cache as Store, GuardResult};
use quick_cache::{DefaultHashBuilder, Weighter};

use crate::cache::{Shape, Whole};
use crate::memo::{CacheStatus, Count, FnSite, timed, timed_sync};
use crate::stats::Counter;

mod stale;

pub use self::stale::{LaunchLocal, Looked};
use self::stale::{State, Windows};

/// Entries held when the builder sets no bound.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
struct Slot<V> {
    value: V,
    /// Read from the coarse monotonic clock (a few ms of resolution, a few
    /// ns to read: the full-resolution clock would be a third of a hit).
    expires_at: Option<coarsetime::Instant>,
    /// The entry's weight against the bound, computed once when stored.
    weight: u64,
}

/// Reads the weight a [`Slot`] was given when stored.
struct SlotWeight;

impl Clone for SlotWeight {
    fn clone(&self) -> Self {
        SlotWeight
    }
}

impl<K, V> Weighter<K, Slot<V>> for SlotWeight {
    #[inline]
    fn weight(&self, _key: &K, slot: &Slot<V>) -> u64 {
        slot.weight
    }
}

/// Counts the entries the store evicts to stay within its bound (and the
/// ones too heavy to admit).
#[derive(Clone, Default)]
struct CountEvictions(Arc<std::sync::atomic::AtomicU64>);

impl<K, V> quick_cache::Lifecycle<K, Slot<V>> for CountEvictions {
    type RequestState = ();

    #[inline]
    fn begin_request(&self) {}

    #[inline]
    fn on_evict(&self, _state: &mut (), _key: K, _slot: Slot<V>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How much an entry counts against the bound.
type Weigh<K, V> = fn(&K, &V) -> usize;

impl<V> Slot<V> {
    #[inline]
    fn fresh(&self) -> bool {
        self.expires_at
            .is_none_or(|at| coarsetime::Instant::now() < at)
    }
}

/// A typed in-process memo (see the [module docs](self)).
pub struct LocalMemo<K, V> {
    store: Store<K, Slot<V>, SlotWeight, DefaultHashBuilder, CountEvictions>,
    evictions: CountEvictions,
    ttl: Option<Duration>,
    /// A value's own TTL (`None` from it: `ttl`).
    value_ttl: Option<fn(&V) -> Option<Duration>>,
    /// TTLs are cut by up to this many thousandths, at random.
    jitter: u16,
    /// `None`: every entry weighs 1 (a bound in entries).
    weigh: Option<Weigh<K, V>>,
    /// Whether entries can expire (a TTL, or a value's own).
    expires: bool,
    /// Serving around a miss: stale-while-revalidate, stale-if-error,
    /// refresh-ahead.
    windows: Windows,
    /// Keys being refreshed (by hash): one refresh per key.
    refreshing: parking_lot::Mutex<std::collections::HashSet<u64, foldhash::fast::FixedState>>,
    /// Moves on every invalidation: a refresh that started before one does
    /// not store what it computed.
    epoch: std::sync::atomic::AtomicU64,
    stale: Counter,
    refreshes: Counter,
    sets: Counter,
    stale_fills: Counter,
    hits: Counter,
    misses: Counter,
    coalesced: Counter,
    /// Distinguishes memos in the re-entrance records.
    id: usize,
}

impl<K, V> std::fmt::Debug for LocalMemo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMemo")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`LocalMemo`].
#[must_use]
pub struct LocalMemoBuilder<K, V> {
    max_entries: usize,
    /// A bound in bytes, and how entries are weighed.
    max_bytes: Option<(u64, Weigh<K, V>)>,
    ttl: Option<Duration>,
    value_ttl: Option<fn(&V) -> Option<Duration>>,
    jitter: u16,
    windows: Windows,
}

impl<K, V> std::fmt::Debug for LocalMemoBuilder<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMemoBuilder")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes.map(|(bytes, _)| bytes))
            .field("ttl", &self.ttl)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

/// Counters of a [`LocalMemo`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalStats {
    /// Lookups answered with a fresh value.
    pub hits: u64,
    /// Lookups that found nothing fresh.
    pub misses: u64,
    /// Misses answered by another caller's computation.
    pub coalesced: u64,
    /// Answers with a value past its freshness (stale-while-revalidate,
    /// stale-if-error).
    pub stale: u64,
    /// Refreshes of an entry that was stale or near its end.
    pub refreshes: u64,
    /// Values stored.
    pub sets: u64,
    /// Entries dropped to stay within the bound (count or bytes), and
    /// values too heavy to be admitted.
    pub evictions: u64,
    /// Computed values not stored (or whose store was undone) because
    /// their key was invalidated while they were computed.
    pub stale_fills: u64,
    /// Entries held now (expired ones included until they are read or
    /// evicted).
    pub entries: u64,
}

impl<K: Eq + Hash, V: Clone> LocalMemoBuilder<K, V> {
    /// At most this many entries (approximately: the store evicts by
    /// S3-FIFO per shard). Default [`DEFAULT_MAX_ENTRIES`]. Replaces a
    /// [`max_bytes`](Self::max_bytes) bound.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self.max_bytes = None;
        self
    }

    /// At most about this many bytes of keys and values, weighed by
    /// [`GetSize::get_size`](get_size2::GetSize::get_size) (the inline size
    /// plus what the key and the value own on the heap; an `Arc`'s contents
    /// count in full). Replaces the [`max_entries`](Self::max_entries)
    /// bound. The bytes are split among the store's shards, and an entry
    /// that weighs more than one shard holds is returned but not stored.
    ///
    /// ```
    /// use covet_cache::LocalMemo;
    ///
    /// let memo: LocalMemo<u32, String> = LocalMemo::builder().max_bytes(1 << 20).build();
    /// memo.insert(1, "x".repeat(1_000));
    /// assert!(memo.get(&1).is_some());
    /// ```
    pub fn max_bytes(self, max_bytes: u64) -> Self
    where
        K: get_size2::GetSize,
        V: get_size2::GetSize,
    {
        self.max_bytes_with(max_bytes, |k, v| k.get_size().saturating_add(v.get_size()))
    }

    /// At most about this many bytes, each entry weighing what `weigh`
    /// says (for types without [`GetSize`](get_size2::GetSize): a
    /// `Regex`, an `Arc` of a client). Called once per stored entry.
    ///
    /// ```
    /// use covet_cache::LocalMemo;
    ///
    /// let memo: LocalMemo<u32, Vec<u8>> = LocalMemo::builder()
    ///     .max_bytes_with(1 << 20, |_, v: &Vec<u8>| 4 + v.len())
    ///     .build();
    /// memo.insert(1, vec![0; 100]);
    /// assert_eq!(memo.get(&1).map(|v| v.len()), Some(100));
    /// ```
    pub fn max_bytes_with(mut self, max_bytes: u64, weigh: fn(&K, &V) -> usize) -> Self {
        self.max_bytes = Some((max_bytes.max(1), weigh));
        self
    }

    /// Time to live of every entry; none by default.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// A value's own time to live: `None` from `ttl_of` keeps the memo's
    /// [`ttl`](Self::ttl).
    ///
    /// ```
    /// use std::time::Duration;
    /// use covet_cache::LocalMemo;
    ///
    /// let memo: LocalMemo<u32, Option<String>> = LocalMemo::builder()
    ///     .ttl(Duration::from_secs(600))
    ///     .value_ttl(|v: &Option<String>| v.is_none().then_some(Duration::ZERO))
    ///     .build();
    /// memo.insert(1, None);
    /// assert_eq!(memo.get(&1), None);
    /// ```
    pub fn value_ttl(mut self, ttl_of: fn(&V) -> Option<Duration>) -> Self {
        self.value_ttl = Some(ttl_of);
        self
    }

    /// Cuts each entry's TTL by a random share of at most `permille`
    /// thousandths (below 1000), so that entries stored together expire
    /// apart.
    pub fn jitter(mut self, permille: u16) -> Self {
        self.jitter = permille.min(999);
        self
    }

    /// After an entry's TTL, answer with it for this long while one
    /// refresh runs (see [`LocalMemo::lookup`]).
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.windows.swr = Some(coarsetime::Duration::from(window));
        self
    }

    /// After an entry's TTL, answer with it for this long when the
    /// computation that replaces it fails.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.windows.sie = Some(coarsetime::Duration::from(window));
        self
    }

    /// In the last `window` of an entry's TTL, the first lookup refreshes
    /// it.
    pub fn refresh_ahead(mut self, window: Duration) -> Self {
        self.windows.ahead = Some(coarsetime::Duration::from(window));
        self
    }

    /// The memo.
    pub fn build(self) -> LocalMemo<K, V> {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let evictions = CountEvictions::default();
        let store = |items: usize, weight: u64| {
            Store::with(
                items,
                weight,
                SlotWeight,
                DefaultHashBuilder::default(),
                evictions.clone(),
            )
        };
        let (store, weigh) = match self.max_bytes {
            None => (store(self.max_entries, self.max_entries as u64), None),
            Some((bytes, weigh)) => {
                // A guess of the entry count, for the store's sizing only.
                let items = usize::try_from(bytes / 256)
                    .unwrap_or(usize::MAX)
                    .clamp(16, 1 << 20);
                (store(items, bytes), Some(weigh))
            }
        };
        LocalMemo {
            store,
            ttl: self.ttl,
            expires: self.ttl.is_some() || self.value_ttl.is_some(),
            value_ttl: self.value_ttl,
            jitter: self.jitter,
            weigh,
            windows: self.windows,
            refreshing: parking_lot::Mutex::default(),
            epoch: std::sync::atomic::AtomicU64::new(0),
            stale: Counter::new(),
            refreshes: Counter::new(),
            sets: Counter::new(),
            stale_fills: Counter::new(),
            evictions,
            hits: Counter::new(),
            misses: Counter::new(),
            coalesced: Counter::new(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Keys being computed by the current thread (sync) or task (async), to
/// catch a computation that asks for its own key.
type Loading = Vec<(usize, u64)>;

thread_local! {
    /// A multiset: how many computations of each mark this thread runs (a
    /// set lookup, not a scan, so deep nesting such as a memoized `fib`
    /// stays cheap).
    static LOADING_SYNC: RefCell<std::collections::HashMap<(usize, u64), u32, foldhash::fast::FixedState>> =
        RefCell::new(std::collections::HashMap::default());
}

tokio::task_local! {
    static LOADING_ASYNC: Arc<Loading>;
}

/// This thread's record of a key being computed, removed when the
/// computation ends, panicking included.
struct SyncMark((usize, u64));

impl SyncMark {
    fn new(mark: (usize, u64)) -> SyncMark {
        LOADING_SYNC.with(|l| *l.borrow_mut().entry(mark).or_insert(0) += 1);
        SyncMark(mark)
    }

    /// Whether this thread is computing `mark` already.
    fn held(mark: (usize, u64)) -> bool {
        LOADING_SYNC.with(|l| l.borrow().contains_key(&mark))
    }
}

impl Drop for SyncMark {
    fn drop(&mut self) {
        LOADING_SYNC.with(|l| {
            let mut l = l.borrow_mut();
            if let std::collections::hash_map::Entry::Occupied(mut e) = l.entry(self.0) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        });
    }
}

impl<K, V> LocalMemo<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// A builder with the defaults (10 000 entries, no TTL).
    pub fn builder() -> LocalMemoBuilder<K, V> {
        LocalMemoBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: None,
            ttl: None,
            value_ttl: None,
            jitter: 0,
            windows: Windows::default(),
        }
    }

    /// A fresh value, counting the hit or the miss. The key can be any
    /// form [`Equivalent`] to `K` (a `&str` for a `String` key), so a
    /// lookup need not build an owned key.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        match self.store.get(key) {
            Some(slot) if slot.fresh() => {
                self.hits.incr();
                Some(slot.value)
            }
            _ => {
                self.misses.incr();
                None
            }
        }
    }

    /// Stores `value` for the memo's TTL.
    pub fn insert(&self, key: K, value: V) {
        let slot = self.slot(&key, value);
        self.store.insert(key, slot);
        self.sets.incr();
    }

    /// Removes the entry of `key` (and keeps a computation of it in
    /// progress from storing its value); `true` if there was a fresh one.
    pub fn invalidate(&self, key: &K) -> bool {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.remove(key).is_some_and(|(_, slot)| slot.fresh())
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.clear();
    }

    /// The counters now.
    pub fn stats(&self) -> LocalStats {
        LocalStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            coalesced: self.coalesced.get(),
            stale: self.stale.get(),
            refreshes: self.refreshes.get(),
            sets: self.sets.get(),
            evictions: self.evictions.0.load(std::sync::atomic::Ordering::Relaxed),
            stale_fills: self.stale_fills.get(),
            entries: self.store.len() as u64,
        }
    }

    fn slot(&self, key: &K, value: V) -> Slot<V> {
        let ttl = match self.value_ttl {
            Some(ttl_of) => ttl_of(&value).or(self.ttl),
            None => self.ttl,
        };
        let expires_at = ttl.map(|ttl| {
            let ttl = crate::cache::jittered(ttl, self.jitter);
            coarsetime::Instant::now() + coarsetime::Duration::from(ttl)
        });
        // Zero is "never evicted" to the store: everything weighs at least 1.
        let weight = self
            .weigh
            .map_or(1, |weigh| (weigh(key, &value) as u64).max(1));
        Slot {
            value,
            expires_at,
            weight,
        }
    }

    fn mark(&self, key: &K) -> (usize, u64) {
        (self.id, foldhash::fast::FixedState::default().hash_one(key))
    }

    /// Drops an expired entry so that the next lookup computes (nothing
    /// to do, and no write lock taken, without a TTL).
    fn evict_expired(&self, key: &K) {
        if self.expires {
            self.store.remove_if(key, |slot| !slot.fresh());
        }
    }

    /// The value of `key`, computed by `init` on a miss. Concurrent callers
    /// of a missing key block until the first one has computed it (other
    /// keys are not blocked); if it panics, one of them computes instead.
    pub fn get_or_insert_with_sync<F: FnOnce() -> V>(&self, key: K, init: F) -> V {
        if let Some(v) = self.get(&key) {
            return v;
        }
        self.fill_sync(key, init)
    }

    /// The miss path of [`get_or_insert_with_sync`](Self::get_or_insert_with_sync)
    /// (after a [`get`](Self::get) that found nothing).
    pub fn fill_sync<F: FnOnce() -> V>(&self, key: K, init: F) -> V {
        self.fill_shaped_sync(key, None, init, Whole).0
    }

    /// The value of `key`, computed by `init` on a miss; concurrent misses
    /// of one key compute once. A cancelled or panicking computation lets
    /// one waiter compute instead.
    pub async fn get_or_insert_with<F, Fut>(&self, key: K, init: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        if let Some(v) = self.get(&key) {
            return v;
        }
        self.fill(key, init).await
    }

    /// The miss path of [`get_or_insert_with`](Self::get_or_insert_with).
    pub async fn fill<F, Fut>(&self, key: K, init: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.fill_shaped(key, None, init, Whole).await.0
    }
}

/// The miss paths: a [`Shape`] says what of a result is stored; with a
/// site (`#[cached(local)]`), the fn's counters and body time are kept.
impl<K, V> LocalMemo<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// Sync miss path: single-flight, only the cacheable part stored.
    #[doc(hidden)]
    pub fn fill_shaped_sync<R, S, F>(
        &self,
        key: K,
        site: Option<&'static FnSite>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        S: Shape<V, R>,
        F: FnOnce() -> R,
    {
        self.fill_from_sync(key, site, None, init, shape)
    }

    /// The sync miss path, with the expired entry a failure falls back on
    /// (`stale_if_error`).
    fn fill_from_sync<R, S, F>(
        &self,
        key: K,
        site: Option<&'static FnSite>,
        fallback: Option<Slot<V>>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        S: Shape<V, R>,
        F: FnOnce() -> R,
    {
        let mark = self.mark(&key);
        // Without the key's placeholder (a computation asking for its own
        // key, a waiter whose leader failed), the value is computed and not
        // stored.
        let fallback = if SyncMark::held(mark) {
            fallback
        } else {
            self.evict_expired(&key);
            match self.store.get_value_or_guard(&key, None) {
                GuardResult::Guard(guard) => {
                    let _mark = SyncMark::new(mark);
                    let r = timed_sync(site, init);
                    return self.computed(&key, site, r, Some(guard), fallback, shape);
                }
                GuardResult::Value(slot) => {
                    match self.answer_settled(site, slot, fallback, shape) {
                        Ok(answer) => return answer,
                        Err(fallback) => fallback,
                    }
                }
                GuardResult::Timeout => fallback,
            }
        };
        let r = timed_sync(site, init);
        self.computed(&key, site, r, None::<NoGuard>, fallback, shape)
    }

    /// Async miss path: single-flight, only the cacheable part stored.
    #[doc(hidden)]
    pub async fn fill_shaped<R, S, F, Fut>(
        &self,
        key: K,
        site: Option<&'static FnSite>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        S: Shape<V, R>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        self.fill_from(key, site, None, init, shape).await
    }

    /// The async miss path, with the expired entry a failure falls back on.
    async fn fill_from<R, S, F, Fut>(
        &self,
        key: K,
        site: Option<&'static FnSite>,
        fallback: Option<Slot<V>>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        S: Shape<V, R>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let mark = self.mark(&key);
        let outer: Loading = LOADING_ASYNC.try_with(|l| l.to_vec()).unwrap_or_default();
        // As in the sync path: without the placeholder, computed, not stored.
        let fallback = if outer.contains(&mark) {
            fallback
        } else {
            self.evict_expired(&key);
            match self.store.get_value_or_guard_async(&key).await {
                Err(guard) => {
                    let mut inner = outer;
                    inner.push(mark);
                    let r = LOADING_ASYNC
                        .scope(Arc::new(inner), timed(site, init()))
                        .await;
                    return self.computed(&key, site, r, Some(guard), fallback, shape);
                }
                Ok(slot) => match self.answer_settled(site, slot, fallback, shape) {
                    Ok(answer) => return answer,
                    Err(fallback) => fallback,
                },
            }
        };
        let r = timed(site, init()).await;
        self.computed(&key, site, r, None::<NoGuard>, fallback, shape)
    }

    /// A waiter found a value where it waited: a fresh one answers; an
    /// expired one that a failed computation put back answers within its
    /// stale-if-error window. `Err`: this caller computes (with its
    /// fallback).
    fn answer_settled<R, S: Shape<V, R>>(
        &self,
        site: Option<&'static FnSite>,
        slot: Slot<V>,
        fallback: Option<Slot<V>>,
        shape: S,
    ) -> Result<(R, CacheStatus), Option<Slot<V>>> {
        if slot.fresh() {
            return Ok(self.coalesced(site, slot, shape));
        }
        if self.state(&slot, coarsetime::Instant::now()) == State::Expired {
            self.stale.incr();
            count(site, Count::Stale);
            return Ok((shape.wrap(slot.value), CacheStatus::Stale));
        }
        Err(fallback)
    }

    /// `<fn>_refresh` of a local fn: computes and stores, no lookup.
    #[doc(hidden)]
    pub fn store_shaped<R, S: Shape<V, R>>(
        &self,
        key: K,
        site: &'static FnSite,
        r: R,
        shape: S,
    ) -> R {
        site.count(Count::Refresh);
        match shape.split(r) {
            Ok(value) => {
                if shape.positive(&value).is_none() {
                    site.count(Count::Error);
                }
                let slot = self.slot(&key, value.clone());
                self.store.insert(key, slot);
                self.sets.incr();
                shape.wrap(value)
            }
            Err(failure) => {
                site.count(Count::Error);
                failure
            }
        }
    }

    /// Another caller's computation answered.
    fn coalesced<R, S: Shape<V, R>>(
        &self,
        site: Option<&'static FnSite>,
        slot: Slot<V>,
        shape: S,
    ) -> (R, CacheStatus) {
        self.coalesced.incr();
        count(site, Count::Coalesced);
        (shape.wrap(slot.value), CacheStatus::Coalesced)
    }

    /// Stores the cacheable part of a computed result through `guard` (or
    /// not at all without one). A failure answers with `fallback` when
    /// there is one (put back through the guard, so that the waiters
    /// answer with it too); otherwise it drops the guard, and one waiter
    /// computes next.
    fn computed<R, S: Shape<V, R>, G: Placeholder<V>>(
        &self,
        key: &K,
        site: Option<&'static FnSite>,
        r: R,
        guard: Option<G>,
        fallback: Option<Slot<V>>,
        shape: S,
    ) -> (R, CacheStatus) {
        let (status, counted) = if fallback.is_some() {
            (CacheStatus::Refreshed, Count::Refresh)
        } else {
            (CacheStatus::Miss, Count::Miss)
        };
        let value = match shape.split(r) {
            Ok(value) => value,
            Err(failure) => {
                count(site, Count::Error);
                if let Some(stale) = fallback {
                    return self.fell_back(site, guard, stale, shape);
                }
                count(site, counted);
                drop(guard);
                return (failure, status);
            }
        };
        if shape.positive(&value).is_none() {
            // A failure that negative caching would store: a value to fall
            // back on wins over it.
            count(site, Count::Error);
            if let Some(stale) = fallback {
                return self.fell_back(site, guard, stale, shape);
            }
        }
        count(site, counted);
        if let Some(guard) = guard {
            if guard.fill(self.slot(key, value.clone())) {
                self.sets.incr();
            } else {
                // Invalidated meanwhile: returned, not stored.
                self.stale_fills.incr();
            }
        }
        (shape.wrap(value), status)
    }

    /// A failed computation answers with the expired value, and puts it
    /// back through the guard for the callers waiting on it.
    fn fell_back<R, S: Shape<V, R>, G: Placeholder<V>>(
        &self,
        site: Option<&'static FnSite>,
        guard: Option<G>,
        stale: Slot<V>,
        shape: S,
    ) -> (R, CacheStatus) {
        if let Some(guard) = guard {
            let _ = guard.fill(stale.clone());
        }
        self.stale.incr();
        count(site, Count::Stale);
        (shape.wrap(stale.value), CacheStatus::Stale)
    }

    /// Entries held now.
    #[doc(hidden)]
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no entry is held.
    #[doc(hidden)]
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

/// The arguments of a memoized fn, borrowed: a lookup key
/// [`Equivalent`] to the tuple of owned arguments, with the same hash, so a
/// hit clones no argument. Not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct ArgsRef<T>(pub T);

impl<T: Hash> Hash for ArgsRef<T> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // A tuple hashes its fields in order, and `&A` hashes as `A`: the
        // same as the owned tuple.
        self.0.hash(state);
    }
}

macro_rules! args_ref {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Eq),+> Equivalent<($($t,)+)> for ArgsRef<($(&$t,)+)> {
            #[inline]
            fn equivalent(&self, key: &($($t,)+)) -> bool {
                $(*self.0.$i == key.$i)&&+
            }
        }
    };
}

args_ref!(A 0);
args_ref!(A 0, B 1);
args_ref!(A 0, B 1, C 2);
args_ref!(A 0, B 1, C 2, D 3);
args_ref!(A 0, B 1, C 2, D 3, E 4);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
args_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// Counts for the fn at `site`, if any.
fn count(site: Option<&'static FnSite>, what: Count) {
    if let Some(site) = site {
        site.count(what);
    }
}

/// quick_cache's placeholder guard, whatever its type parameters.
trait Placeholder<V> {
    /// Whether the slot was stored (`false`: invalidated meanwhile).
    fn fill(self, slot: Slot<V>) -> bool;
}

/// No placeholder: a computation that stores nothing.
struct NoGuard;

impl<V> Placeholder<V> for NoGuard {
    fn fill(self, _slot: Slot<V>) -> bool {
        false
    }
}

impl<K, V, We, B, L> Placeholder<V>
    for quick_cache::sync::PlaceholderGuard<'_, K, Slot<V>, We, B, L>
where
    K: Eq + Hash,
    V: Clone,
    We: quick_cache::Weighter<K, Slot<V>> + Clone,
    B: BuildHasher + Clone,
    L: quick_cache::Lifecycle<K, Slot<V>> + Clone,
{
    fn fill(self, slot: Slot<V>) -> bool {
        self.insert(slot).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn borrowed_arguments_find_the_owned_key() {
        let memo: LocalMemo<(String, u8, Vec<u32>), u32> = LocalMemo::builder().build();
        memo.insert(("alice".to_owned(), 7, vec![1, 2]), 1);
        let (name, n, list) = ("alice".to_owned(), 7u8, vec![1u32, 2]);
        assert_eq!(memo.get(&ArgsRef((&name, &n, &list))), Some(1));
        let other = vec![1u32, 3];
        assert_eq!(memo.get(&ArgsRef((&name, &n, &other))), None);
        let memo: LocalMemo<(u64,), u32> = LocalMemo::builder().build();
        for i in 0..1_000u64 {
            memo.insert((i,), 2);
        }
        assert!((0..1_000u64).all(|i| memo.get(&ArgsRef((&i,))) == Some(2)));
    }

    #[test]
    fn a_value_ttl_without_a_memo_ttl_expires_and_refills() {
        let memo: LocalMemo<u32, u64> = LocalMemo::builder()
            .value_ttl(|v: &u64| Some(Duration::from_millis(*v)))
            .build();
        let runs = AtomicU32::new(0);
        let compute = || {
            runs.fetch_add(1, Ordering::SeqCst);
            30
        };
        assert_eq!(memo.get_or_insert_with_sync(1, compute), 30);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(memo.get(&1), None, "expired by its own TTL");
        assert_eq!(memo.get_or_insert_with_sync(1, compute), 30);
        assert_eq!(memo.get(&1), Some(30), "stored again");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_byte_bound_weighs_each_entry_once() {
        let memo: LocalMemo<u32, String> = LocalMemo::builder().max_bytes(16 * 1024).build();
        for i in 0..1_000 {
            memo.insert(i, "x".repeat(512));
        }
        // Each entry weighs its inline size plus 512 heap bytes.
        let held = memo.len();
        assert!(
            (4..=32).contains(&held),
            "{held} entries of ~560 bytes in 16 KiB"
        );
        let weight: u64 = memo.store.weight();
        assert!(weight <= 16 * 1024, "{weight}");
    }

    #[test]
    fn entries_expire_and_are_bounded() {
        let memo: LocalMemo<u32, u32> = LocalMemo::builder()
            .ttl(Duration::from_millis(50))
            .max_entries(100)
            .build();
        memo.insert(1, 10);
        assert_eq!(memo.get(&1), Some(10));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(memo.get(&1), None);
        for i in 0..10_000 {
            memo.insert(i, i);
        }
        let stats = memo.stats();
        assert!(stats.entries <= 200, "{stats:?}");
        assert_eq!(stats.sets, 10_001);
        assert!(
            stats.evictions >= 9_700 && stats.entries + stats.evictions <= 10_001,
            "every entry dropped for the bound is counted: {stats:?}"
        );
    }

    #[test]
    fn concurrent_sync_misses_compute_once_and_a_panic_releases_the_waiters() {
        let memo: Arc<LocalMemo<u32, u32>> = Arc::new(LocalMemo::builder().build());
        let runs = Arc::new(AtomicU32::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (memo, runs, barrier) = (memo.clone(), runs.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    memo.get_or_insert_with_sync(1, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        7
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // The first computation panics: a waiter computes instead.
        let first = {
            let memo = memo.clone();
            std::thread::spawn(move || {
                memo.get_or_insert_with_sync(2, || {
                    std::thread::sleep(Duration::from_millis(50));
                    panic!("body failed")
                })
            })
        };
        std::thread::sleep(Duration::from_millis(10));
        let second = memo.get_or_insert_with_sync(2, || 9);
        assert!(first.join().is_err());
        assert_eq!(second, 9);
    }

    #[test]
    fn a_sync_computation_asking_for_its_own_key_does_not_wait_for_itself() {
        let memo: Arc<LocalMemo<u32, u32>> = Arc::new(LocalMemo::builder().build());
        let inner = memo.clone();
        let v = memo.get_or_insert_with_sync(3, move || inner.get_or_insert_with_sync(3, || 4) + 1);
        assert_eq!(v, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_misses_compute_once_and_reentrance_is_direct() {
        let memo: Arc<LocalMemo<String, u64>> = Arc::new(LocalMemo::builder().build());
        let runs = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (memo, runs) = (memo.clone(), runs.clone());
                tokio::spawn(async move {
                    memo.get_or_insert_with("k".to_owned(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        42
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let stats = memo.stats();
        assert_eq!(stats.misses + stats.hits, 100, "{stats:?}");

        let inner = memo.clone();
        let v = tokio::time::timeout(
            Duration::from_secs(5),
            memo.get_or_insert_with("r".to_owned(), || async move {
                inner
                    .get_or_insert_with("r".to_owned(), || async { 1 })
                    .await
                    + 1
            }),
        )
        .await
        .expect("re-entrance does not hang");
        assert_eq!(v, 2);
    }

    #[test]
    fn an_invalidation_during_a_computation_wins() {
        let memo: Arc<LocalMemo<u32, u32>> = Arc::new(LocalMemo::builder().build());
        let inner = memo.clone();
        let v = memo.get_or_insert_with_sync(5, move || {
            inner.invalidate(&5);
            1
        });
        assert_eq!(v, 1);
        assert_eq!(
            memo.get(&5),
            None,
            "the computed value was read before the invalidation"
        );
        assert_eq!(memo.stats().stale_fills, 1);
        assert_eq!(memo.stats().sets, 0);
    }
}
