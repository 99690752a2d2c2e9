//! Bounds on what one layer stores ([`HttpCacheLayer::max_entries`],
//! [`HttpCacheLayer::max_bytes`]): the keys this layer wrote, least
//! recently used first, with their estimated sizes. Going over a bound
//! deletes the least recently used keys from the cache; other users of the
//! same [`Cache`](crate::Cache) are never counted nor evicted.
//!
//! [`HttpCacheLayer::max_entries`]: super::HttpCacheLayer::max_entries
//! [`HttpCacheLayer::max_bytes`]: super::HttpCacheLayer::max_bytes

use hashlink::LinkedHashMap;
use parking_lot::Mutex;

use crate::key::Glob;

/// What one tracked key costs beyond its text and value: the bookkeeping
/// of the map and of a backend entry, roughly.
const ENTRY_OVERHEAD: u64 = 64;

#[derive(Debug)]
pub(crate) struct Bounds {
    max_entries: usize,
    max_bytes: u64,
    tracked: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// Key -> estimated bytes, least recently used first.
    order: LinkedHashMap<String, u64>,
    bytes: u64,
}

impl Tracked {
    fn remove(&mut self, key: &str) {
        if let Some(size) = self.order.remove(key) {
            self.bytes -= size;
        }
    }
}

impl Bounds {
    /// Bounds when either limit is set.
    pub(crate) fn new(max_entries: Option<usize>, max_bytes: Option<u64>) -> Option<Bounds> {
        if max_entries.is_none() && max_bytes.is_none() {
            return None;
        }
        Some(Bounds {
            max_entries: max_entries.unwrap_or(usize::MAX).max(1),
            max_bytes: max_bytes.unwrap_or(u64::MAX),
            tracked: Mutex::new(Tracked::default()),
        })
    }

    /// The estimated size of an entry: its key, its value and a fixed
    /// overhead.
    pub(crate) fn cost(key: &str, value_bytes: usize) -> u64 {
        (key.len() + value_bytes) as u64 + ENTRY_OVERHEAD
    }

    /// Whether an entry of `cost` bytes can be stored at all.
    pub(crate) fn fits(&self, cost: u64) -> bool {
        cost <= self.max_bytes
    }

    /// Records that `key` now holds `cost` bytes, as the most recently
    /// used, and returns the least recently used keys to delete to stay
    /// within the bounds (never `key` itself).
    pub(crate) fn admit(&self, key: &str, cost: u64) -> Vec<String> {
        let mut t = self.tracked.lock();
        t.remove(key);
        t.order.insert(key.to_owned(), cost);
        t.bytes += cost;
        let mut evicted = Vec::new();
        while t.order.len() > self.max_entries || t.bytes > self.max_bytes {
            let Some((oldest, size)) = t.order.pop_front() else {
                break;
            };
            if oldest == key {
                // Only `key` is left and it alone is over: keep it (the
                // caller checked `fits`).
                t.order.insert(oldest, size);
                break;
            }
            t.bytes -= size;
            evicted.push(oldest);
        }
        evicted
    }

    /// Marks `key` as just used.
    pub(crate) fn touch(&self, key: &str) {
        self.tracked.lock().order.to_back(key);
    }

    /// Stops tracking `key` (it was deleted).
    pub(crate) fn forget(&self, key: &str) {
        self.tracked.lock().remove(key);
    }

    /// Stops tracking every key `pattern` matches.
    pub(crate) fn forget_matching(&self, pattern: &Glob) {
        let mut t = self.tracked.lock();
        let gone: Vec<String> = t
            .order
            .keys()
            .filter(|k| pattern.matches(k))
            .cloned()
            .collect();
        for k in gone {
            t.remove(&k);
        }
    }

    /// How many keys and estimated bytes are tracked.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, u64) {
        let t = self.tracked.lock();
        (t.order.len(), t.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_keys_go_first() {
        let b = Bounds::new(Some(2), None).unwrap();
        assert!(b.admit("a", 10).is_empty());
        assert!(b.admit("b", 10).is_empty());
        b.touch("a");
        assert_eq!(b.admit("c", 10), vec!["b".to_owned()]);
        assert_eq!(b.usage(), (2, 20));
        // Writing a tracked key again replaces its size.
        assert!(b.admit("a", 30).is_empty());
        assert_eq!(b.usage(), (2, 40));
    }

    #[test]
    fn bytes_bound_and_forgetting() {
        let b = Bounds::new(None, Some(100)).unwrap();
        assert!(b.fits(100));
        assert!(!b.fits(101));
        assert!(b.admit("a", 40).is_empty());
        assert!(b.admit("b", 40).is_empty());
        assert_eq!(b.admit("c", 40), vec!["a".to_owned()]);
        b.forget("b");
        assert_eq!(b.usage(), (1, 40));
        b.admit("http:x 1", 10);
        b.admit("http:x 2", 10);
        b.forget_matching(&Glob::new("http:x *").unwrap());
        assert_eq!(b.usage(), (1, 40));
        assert!(Bounds::new(None, None).is_none());
    }
}
