//! Cache statistics.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

const STRIPES: usize = 8;

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline(always)]
fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(v);
        v
    })
}

/// A counter spread over cache lines so that threads counting hits at the
/// same time do not contend on one line.
#[derive(Default)]
pub(crate) struct Counter {
    cells: [CachePadded<AtomicU64>; STRIPES],
}

impl Counter {
    /// A counter at zero, usable in a `static`.
    pub(crate) const fn new() -> Counter {
        Counter {
            cells: [const { CachePadded::new(AtomicU64::new(0)) }; STRIPES],
        }
    }

    #[inline]
    pub(crate) fn incr(&self) {
        self.cells[stripe()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) sets: Counter,
    pub(crate) errors: Counter,
    pub(crate) decode_errors: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) stale_fills: Counter,
    pub(crate) http_hits: Counter,
    pub(crate) http_misses: Counter,
}

/// A snapshot of a [`Cache`](crate::Cache)'s counters, from
/// [`Cache::stats`](crate::Cache::stats).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = covet_cache::Cache::memory();
/// cache.set("a", &1u32, None).await.unwrap();
/// let _: Option<u32> = cache.get("a").await.unwrap();
/// let _: Option<u32> = cache.get("b").await.unwrap();
/// let s = cache.stats();
/// assert_eq!((s.hits, s.misses, s.sets), (1, 1, 1));
/// assert_eq!(s.hit_rate(), 0.5);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing usable (absent, expired, undecodable, or a backend error).
    pub misses: u64,
    /// Values written.
    pub sets: u64,
    /// Entries the backend dropped to stay within its capacity.
    pub evictions: u64,
    /// Backend or encoding errors (the operation failed open or returned the error).
    pub errors: u64,
    /// Stored values that did not decode or were written for another type (each also a miss).
    pub decode_errors: u64,
    /// Concurrent misses that waited for another caller's computation instead of computing.
    pub coalesced: u64,
    /// Computed values not stored (or whose store was undone) because
    /// their key was invalidated while they were computed.
    pub stale_fills: u64,
    /// HTTP requests answered from a stored response by an `HttpCacheLayer`
    /// (feature `http`), including 304s and stale responses served.
    pub http_hits: u64,
    /// HTTP requests an `HttpCacheLayer` sent to the origin (feature `http`).
    pub http_misses: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

impl StatsInner {
    pub(crate) fn snapshot(&self, evictions: u64) -> Stats {
        Stats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            sets: self.sets.get(),
            evictions,
            errors: self.errors.get(),
            decode_errors: self.decode_errors.get(),
            coalesced: self.coalesced.get(),
            stale_fills: self.stale_fills.get(),
            http_hits: self.http_hits.get(),
            http_misses: self.http_misses.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_sums_across_threads() {
        let c = std::sync::Arc::new(Counter::default());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.incr()))
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(c.get(), 4000);
    }
}
