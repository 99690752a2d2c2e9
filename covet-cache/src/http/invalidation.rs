//! Invalidations win over stores that started before them.
//!
//! A response read from the origin before a `DELETE` (or
//! [`HttpCache::invalidate`](super::HttpCache::invalidate)) of its URI, and
//! stored after it, would bring back what the invalidation removed. Each
//! request notes the invalidation sequence number when it starts; before
//! and after writing, a store checks whether an invalidation recorded
//! since then covers its key, and if so drops (or deletes) what it wrote.
//! Invalidations are recorded before their deletes, so every interleaving
//! ends without the old content.
//!
//! The log is per process and keeps the recent invalidations only; a store
//! older than what the log still holds is dropped, to be safe. Processes
//! sharing a Redis cache see each other's deletes but not this log: the
//! race between processes stays as narrow as the write itself.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::key::Glob;

/// How many invalidations are remembered.
const CAPACITY: usize = 4096;

/// What an invalidation covered: full backend keys (namespace included).
enum Target {
    Key(String),
    Pattern(Glob),
    Everything,
}

impl Target {
    fn covers(&self, key: &str) -> bool {
        match self {
            Target::Key(k) => k == key,
            Target::Pattern(g) => g.matches(key),
            Target::Everything => true,
        }
    }
}

struct Log {
    entries: VecDeque<(u64, Target)>,
    /// Entries up to this sequence number were forgotten.
    forgotten: u64,
}

static SEQ: AtomicU64 = AtomicU64::new(0);
static LOG: LazyLock<Mutex<Log>> = LazyLock::new(|| {
    Mutex::new(Log {
        entries: VecDeque::new(),
        forgotten: 0,
    })
});

/// The current sequence number: what a request notes when it starts.
pub(crate) fn mark() -> u64 {
    SEQ.load(Ordering::Acquire)
}

fn record(target: Target) {
    let mut log = LOG.lock();
    let seq = SEQ.fetch_add(1, Ordering::AcqRel) + 1;
    log.entries.push_back((seq, target));
    while log.entries.len() > CAPACITY {
        if let Some((s, _)) = log.entries.pop_front() {
            log.forgotten = s;
        }
    }
}

/// Records an invalidation of one full key.
pub(crate) fn record_key(full_key: String) {
    record(Target::Key(full_key));
}

/// Records an invalidation of every full key `pattern` matches.
pub(crate) fn record_pattern(pattern: &str) {
    match Glob::new(pattern) {
        Ok(g) => record(Target::Pattern(g)),
        // Patterns are built from escaped keys, but an unreadable one must
        // still invalidate: it covers everything.
        Err(_) => record(Target::Everything),
    }
}

/// Whether an invalidation recorded after `since` covers `full_key`.
pub(crate) fn invalidated_since(since: u64, full_key: &str) -> bool {
    if SEQ.load(Ordering::Acquire) == since {
        return false;
    }
    let log = LOG.lock();
    if log.forgotten > since {
        return true;
    }
    log.entries
        .iter()
        .rev()
        .take_while(|(seq, _)| *seq > since)
        .any(|(_, t)| t.covers(full_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_invalidations_cover_earlier_starts() {
        let before = mark();
        record_key("ns:http:http://a.test/x".into());
        let between = mark();
        record_pattern("ns:http:*://*/p\\?q");
        assert!(invalidated_since(before, "ns:http:http://a.test/x"));
        assert!(!invalidated_since(between, "ns:http:http://a.test/x"));
        assert!(invalidated_since(between, "ns:http:https://b.test/p?q"));
        assert!(!invalidated_since(before, "ns:http:http://a.test/y"));
        assert!(!invalidated_since(mark(), "ns:http:http://a.test/x"));
    }
}
