//! Metrics through the [`metrics`] facade (feature `metrics`): any
//! exporter installed as the global recorder receives them. The names and
//! labels are listed in `covet::metrics`.
//!
//! Hit and miss counts stay in covet's own per-thread cells on the hot
//! path (a hit pays nothing for metrics); [`publish`] copies them to the
//! recorder as absolute counter values. Backend call durations, HTTP cache
//! outcomes, circuit-breaker states and session events are reported as
//! they happen.

use std::collections::BTreeMap;
use std::sync::Weak;

use parking_lot::Mutex;

use crate::Stats;

/// A cache whose counters [`publish`] reports.
pub(crate) trait Source: Send + Sync {
    /// The `cache` label: the cache's namespace.
    fn label(&self) -> &str;
    fn stats(&self) -> Stats;
}

static CACHES: Mutex<Vec<Weak<dyn Source>>> = Mutex::new(Vec::new());

/// Records a cache built with the `metrics` feature on.
pub(crate) fn register(source: Weak<dyn Source>) {
    let mut caches = CACHES.lock();
    caches.retain(|c| c.strong_count() > 0);
    caches.push(source);
}

/// Copies the counters of every live `Cache` (summed per namespace) and of
/// every `#[cached]` fn called so far to the installed recorder:
/// `covet_cache_requests_total{cache, outcome}`,
/// `covet_cache_evictions_total{cache}`,
/// `covet_cache_fn_requests_total{fn, outcome}`. Call it before a scrape,
/// or every few seconds (`covet::metrics::spawn_publisher`).
///
/// ```
/// covet_cache::metrics::publish();
/// ```
pub fn publish() {
    let caches: Vec<_> = CACHES.lock().iter().filter_map(Weak::upgrade).collect();
    let mut by_label: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for cache in &caches {
        let s = cache.stats();
        let sum = by_label.entry(cache.label().to_owned()).or_default();
        for (slot, n) in sum
            .iter_mut()
            .zip([s.hits, s.misses, s.stale, s.errors, s.evictions])
        {
            *slot += n;
        }
    }
    for (label, [hits, misses, stale, errors, evictions]) in by_label {
        for (outcome, n) in [
            ("hit", hits),
            ("miss", misses),
            ("stale", stale),
            ("error", errors),
        ] {
            metrics::counter!(
                "covet_cache_requests_total",
                "cache" => label.clone(),
                "outcome" => outcome,
            )
            .absolute(n);
        }
        metrics::counter!("covet_cache_evictions_total", "cache" => label).absolute(evictions);
    }
    for f in crate::fn_stats() {
        for (outcome, n) in [
            ("hit", f.hits),
            ("miss", f.misses),
            ("stale", f.stale),
            ("error", f.errors),
            ("coalesced", f.coalesced),
            ("refresh", f.refreshes),
            ("bypass", f.bypassed),
        ] {
            metrics::counter!(
                "covet_cache_fn_requests_total",
                "fn" => f.path.clone(),
                "outcome" => outcome,
            )
            .absolute(n);
        }
    }
}
