//! What `#[cached]` fns report about themselves: the [`CacheStatus`] of a
//! call (from `<fn>_with_status`) and per-fn [`FnStats`] (from
//! `<fn>_stats()`, or [`fn_stats`] for every fn called so far).

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::stats::Counter;

/// How one call of a `#[cached]` fn was answered, from the generated
/// `<fn>_with_status` companion.
///
/// ```
/// use covet::cache::CacheStatus;
///
/// #[covet::cached(ttl = 60)]
/// async fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert_eq!(square_with_status(3).await, (9, CacheStatus::Miss));
/// assert_eq!(square_with_status(3).await, (9, CacheStatus::Hit));
/// assert_eq!(CacheStatus::Hit.as_str(), "HIT");
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// A fresh cached value.
    Hit,
    /// Nothing usable was cached: this call ran the body.
    Miss,
    /// A stale value was returned: within `stale_while_revalidate` (a
    /// refresh was started), or within `stale_if_error` after the body
    /// failed.
    Stale,
    /// An expired (or, with `refresh_ahead`, expiring) value was found and
    /// this call ran the body to replace it.
    Refreshed,
    /// Another caller's computation of the same key answered this call.
    Coalesced,
    /// The cache could not be used (a backend error, or arguments that do
    /// not encode into a key): the body ran without it.
    Bypassed,
}

impl CacheStatus {
    /// Upper-case name for `X-Cache`-style headers: `HIT`, `MISS`, `STALE`,
    /// `REFRESHED`, `COALESCED`, `BYPASS`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Refreshed => "REFRESHED",
            CacheStatus::Coalesced => "COALESCED",
            CacheStatus::Bypassed => "BYPASS",
        }
    }

    /// Whether the answer came from the cache (`Hit`, `Stale`, `Coalesced`).
    pub const fn from_cache(self) -> bool {
        matches!(
            self,
            CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Coalesced
        )
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time spent in the body of a `#[cached]` fn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyTime {
    /// Body runs (misses, refreshes, background refreshes).
    pub count: u64,
    /// Their total time.
    pub total: Duration,
    /// The longest one.
    pub max: Duration,
}

impl BodyTime {
    /// `total / count`, or zero.
    pub fn mean(&self) -> Duration {
        match u32::try_from(self.count) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.total / n,
            Err(_) => Duration::from_nanos(
                u64::try_from(self.total.as_nanos() / u128::from(self.count)).unwrap_or(u64::MAX),
            ),
        }
    }
}

/// Counters of one `#[cached]` fn, from `<fn>_stats()` or [`fn_stats`].
///
/// They count calls of this fn in this process, whatever cache it uses;
/// [`Cache::stats`](crate::Cache::stats) counts per cache.
///
/// ```
/// #[covet::cached(ttl = 60)]
/// async fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// double(1).await;
/// double(1).await;
/// let stats = double_stats();
/// assert_eq!((stats.hits, stats.misses, stats.body.count), (1, 1, 1));
/// assert!(stats.path.ends_with("::double"));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FnStats {
    /// The fn's path: `crate::module::fn`, or `crate::module::Type::method`.
    pub path: String,
    /// Calls answered with a fresh cached value.
    pub hits: u64,
    /// Calls that found nothing usable and ran the body.
    pub misses: u64,
    /// Calls answered with a stale value (stale-while-revalidate, or
    /// stale-if-error after a failed body).
    pub stale: u64,
    /// Body runs that replaced an expired or expiring value (in the
    /// background or in the call).
    pub refreshes: u64,
    /// Body runs that failed (`Err`, or `None` for an `Option` fn).
    pub errors: u64,
    /// Calls answered by another caller's computation of the same key.
    pub coalesced: u64,
    /// Calls that could not use the cache and ran the body without it.
    pub bypassed: u64,
    /// Time in the body.
    pub body: BodyTime,
}

impl FnStats {
    /// `hits / (hits + misses)` (stale and coalesced answers left out), or
    /// 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        crate::stats::hit_rate(self.hits, self.misses)
    }
}

/// Every `#[cached]` fn called so far in this process, with its counters,
/// in the order of their first calls: for a stats page or a metrics
/// exporter.
///
/// ```
/// #[covet::cached(ttl = 60)]
/// async fn triple(x: u64) -> u64 {
///     x * 3
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// triple(1).await;
/// let all: Vec<_> = covet::cache::fn_stats().collect();
/// assert!(all.iter().any(|s| s.path.ends_with("::triple") && s.misses == 1));
/// # });
/// ```
pub fn fn_stats() -> impl Iterator<Item = FnStats> {
    let sites: Vec<&'static FnSite> = REGISTRY.lock().clone();
    sites.into_iter().map(FnSite::snapshot)
}

static REGISTRY: Mutex<Vec<&'static FnSite>> = Mutex::new(Vec::new());

/// One `#[cached]` fn's counters: a `static` in the generated code. Not
/// public API.
#[doc(hidden)]
pub struct FnSite {
    /// `module_path!()::name`.
    path: &'static str,
    /// The full path, once known (methods add their `Self` type).
    full_path: OnceLock<String>,
    registered: AtomicBool,
    hits: Counter,
    misses: AtomicU64,
    stale: AtomicU64,
    refreshes: AtomicU64,
    errors: AtomicU64,
    coalesced: AtomicU64,
    bypassed: AtomicU64,
    body_count: AtomicU64,
    body_nanos: AtomicU64,
    body_max_nanos: AtomicU64,
}

impl fmt::Debug for FnSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSite").field("path", &self.path).finish()
    }
}

/// What a call came to, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Miss,
    Stale,
    Refresh,
    Error,
    Coalesced,
    Bypassed,
}

impl FnSite {
    /// A fn's site; `path` is `concat!(module_path!(), "::", name)`.
    pub const fn new(path: &'static str) -> FnSite {
        FnSite {
            path,
            full_path: OnceLock::new(),
            registered: AtomicBool::new(false),
            hits: Counter::new(),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            body_count: AtomicU64::new(0),
            body_nanos: AtomicU64::new(0),
            body_max_nanos: AtomicU64::new(0),
        }
    }

    /// Lists the fn in [`fn_stats`] on its first call. `owner` is the
    /// `Self` type of a method.
    #[inline]
    pub fn enter(&'static self, owner: Option<fn() -> &'static str>) {
        if !self.registered.load(Ordering::Relaxed) {
            self.register(owner);
        }
    }

    #[cold]
    fn register(&'static self, owner: Option<fn() -> &'static str>) {
        self.full_path.get_or_init(|| match owner {
            Some(owner) => {
                let name = self.path.rsplit("::").next().unwrap_or(self.path);
                format!("{}::{name}", owner())
            }
            None => self.path.to_owned(),
        });
        let mut registry = REGISTRY.lock();
        if !self.registered.swap(true, Ordering::Relaxed) {
            registry.push(self);
        }
    }

    /// A fresh cached value answered a call (which registers the fn).
    #[inline]
    pub fn hit(&'static self, owner: Option<fn() -> &'static str>) {
        self.enter(owner);
        self.hits.incr();
    }

    /// A hit counted by the runtime (the call registered already).
    pub(crate) fn hit_counted(&self) {
        self.hits.incr();
    }

    /// [`hit_counted`](Self::hit_counted) in this thread's counter cell.
    #[cfg(feature = "memory")]
    #[inline]
    pub(crate) fn hit_at(&self, cell: usize) {
        self.hits.incr_at(cell);
    }

    /// A call that could not use the cache (which registers the fn).
    pub fn bypassed(&'static self, owner: Option<fn() -> &'static str>) {
        self.enter(owner);
        self.count(Count::Bypassed);
    }

    pub(crate) fn count(&self, what: Count) {
        let cell = match what {
            Count::Miss => &self.misses,
            Count::Stale => &self.stale,
            Count::Refresh => &self.refreshes,
            Count::Error => &self.errors,
            Count::Coalesced => &self.coalesced,
            Count::Bypassed => &self.bypassed,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn body_ran(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.body_count.fetch_add(1, Ordering::Relaxed);
        self.body_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.body_max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> FnStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FnStats {
            path: self
                .full_path
                .get()
                .cloned()
                .unwrap_or_else(|| self.path.to_owned()),
            hits: self.hits.get(),
            misses: load(&self.misses),
            stale: load(&self.stale),
            refreshes: load(&self.refreshes),
            errors: load(&self.errors),
            coalesced: load(&self.coalesced),
            bypassed: load(&self.bypassed),
            body: BodyTime {
                count: load(&self.body_count),
                total: Duration::from_nanos(load(&self.body_nanos)),
                max: Duration::from_nanos(load(&self.body_max_nanos)),
            },
        }
    }
}

/// Runs an async body, timing it for the fn's counters (when there is a
/// fn).
pub(crate) async fn timed<F: std::future::Future>(
    site: Option<&'static FnSite>,
    body: F,
) -> F::Output {
    let Some(site) = site else {
        return body.await;
    };
    let start = std::time::Instant::now();
    let out = body.await;
    site.body_ran(start.elapsed());
    out
}

/// Runs a sync body, timing it for the fn's counters (when there is a fn).
pub(crate) fn timed_sync<R>(site: Option<&'static FnSite>, body: impl FnOnce() -> R) -> R {
    let Some(site) = site else { return body() };
    let start = std::time::Instant::now();
    let out = body();
    site.body_ran(start.elapsed());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_register_once_and_count() {
        static SITE: FnSite = FnSite::new("app::users::load");
        SITE.enter(None);
        SITE.enter(None);
        SITE.hit(None);
        SITE.count(Count::Miss);
        SITE.body_ran(Duration::from_millis(3));
        SITE.body_ran(Duration::from_millis(1));
        let listed: Vec<FnStats> = fn_stats()
            .filter(|s| s.path == "app::users::load")
            .collect();
        assert_eq!(listed.len(), 1);
        let s = &listed[0];
        assert_eq!((s.hits, s.misses), (1, 1));
        assert_eq!(s.body.count, 2);
        assert_eq!(s.body.total, Duration::from_millis(4));
        assert_eq!(s.body.max, Duration::from_millis(3));
        assert_eq!(s.body.mean(), Duration::from_millis(2));
        assert_eq!(s.hit_rate(), 0.5);
    }

    #[test]
    fn methods_are_listed_under_their_type() {
        static SITE: FnSite = FnSite::new("app::repo::find");
        SITE.enter(Some(|| "app::repo::Repo"));
        assert_eq!(SITE.snapshot().path, "app::repo::Repo::find");
    }

    #[test]
    fn statuses_have_header_names() {
        assert_eq!(CacheStatus::Bypassed.to_string(), "BYPASS");
        assert!(CacheStatus::Stale.from_cache());
        assert!(!CacheStatus::Refreshed.from_cache());
    }
}
