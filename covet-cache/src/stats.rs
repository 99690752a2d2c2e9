//! Cache statistics.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Cells owned by one thread each: the first `OWNED` threads that count
/// get one to themselves and add to it without a locked instruction.
const OWNED: usize = 8;
/// Cells shared by every later thread, added to atomically.
const SHARED: usize = 8;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's cell: `0..OWNED` owned, `OWNED..` shared.
    static CELL: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline(always)]
pub(crate) fn cell() -> usize {
    CELL.with(|c| {
        let v = c.get();
        if v != usize::MAX {
            return v;
        }
        // Thread numbers are never reused, so an owned cell has one writer
        // for the life of the process.
        let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        let v = if n < OWNED { n } else { OWNED + n % SHARED };
        c.set(v);
        v
    })
}

/// A counter spread over cache lines so that threads counting hits at the
/// same time do not contend on one line. The first threads to count own a
/// cell each and add to it with a plain load and store (one writer, so no
/// update is lost); later threads share the other cells atomically.
pub(crate) struct Counter {
    cells: [CachePadded<AtomicU64>; OWNED + SHARED],
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

impl Counter {
    /// A counter at zero, usable in a `static`.
    pub(crate) const fn new() -> Counter {
        Counter {
            cells: [const { CachePadded::new(AtomicU64::new(0)) }; OWNED + SHARED],
        }
    }

    #[inline]
    pub(crate) fn incr(&self) {
        self.incr_at(cell());
    }

    /// Adds one in this thread's cell `i` (from [`cell`]), for callers
    /// that count in several counters at once.
    #[inline]
    pub(crate) fn incr_at(&self, i: usize) {
        let cell = &self.cells[i];
        if i < OWNED {
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        } else {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |sum, c| sum.wrapping_add(c.load(Ordering::Relaxed)))
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
    pub(crate) stale: Counter,
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
    /// Answers with a value past its freshness (`#[cached]` with
    /// `stale_while_revalidate` or `stale_if_error`).
    pub stale: u64,
}

/// `hits / (hits + misses)`, or 0 when there were no lookups.
pub(crate) fn hit_rate(hits: u64, misses: u64) -> f64 {
    let total = hits.saturating_add(misses);
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        hit_rate(self.hits, self.misses)
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
            stale: self.stale.get(),
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

    #[test]
    fn no_count_is_lost_past_the_owned_cells() {
        // More threads than owned cells, all counting at once: the later
        // ones share cells and must not lose updates.
        let c = std::sync::Arc::new(Counter::default());
        let start = std::sync::Arc::new(std::sync::Barrier::new(3 * OWNED));
        let hs: Vec<_> = (0..3 * OWNED)
            .map(|_| {
                let (c, start) = (c.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..20_000).for_each(|_| c.incr());
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(c.get(), 3 * OWNED as u64 * 20_000);
    }
}
