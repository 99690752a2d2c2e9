//! Invalidation counters, so a write computed from data read earlier can
//! tell whether an invalidation of its key happened meanwhile.
//!
//! One counter for everything and one per key shard: a reader notes
//! [`of`](Epochs::of) before it starts, and keeps (stores, copies) its
//! result only if the value did not move. Keys share shards, so an
//! invalidation of one key may make a write of another key in the same
//! shard step back too: a missed store, never a stale one.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 64;

pub(crate) struct Epochs {
    all: AtomicU64,
    shards: [AtomicU64; SHARDS],
    hasher: foldhash::fast::FixedState,
}

impl Default for Epochs {
    fn default() -> Self {
        Epochs {
            all: AtomicU64::new(0),
            shards: std::array::from_fn(|_| AtomicU64::new(0)),
            hasher: foldhash::fast::FixedState::with_seed(0x636f_7665_7465_706f),
        }
    }
}

impl std::fmt::Debug for Epochs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epochs")
            .field("all", &self.all.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Epochs {
    fn shard(&self, key: &str) -> &AtomicU64 {
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        &self.shards[i]
    }

    /// The current value for `key`.
    pub(crate) fn of(&self, key: &str) -> u64 {
        let shard = self.shard(key).load(Ordering::SeqCst);
        shard.wrapping_add(self.all.load(Ordering::SeqCst))
    }

    /// Counts an invalidation of `key`; returns the new value of
    /// [`of`](Self::of).
    pub(crate) fn bump_key(&self, key: &str) -> u64 {
        let shard = self.shard(key).fetch_add(1, Ordering::SeqCst) + 1;
        shard.wrapping_add(self.all.load(Ordering::SeqCst))
    }

    /// Counts an invalidation of every key.
    pub(crate) fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_move_the_value() {
        let e = Epochs::default();
        let a = e.of("a");
        assert_eq!(e.bump_key("a"), a + 1);
        assert_eq!(e.of("a"), a + 1);
        let b = e.of("b");
        e.bump_all();
        assert_eq!(e.of("b"), b + 1);
        assert_eq!(e.of("a"), a + 2);
    }
}
