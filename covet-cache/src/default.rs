//! The process-wide default cache used by `#[cached]` without `cache = ...`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::Cache;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static CURRENT: RwLock<Option<&'static Cache>> = RwLock::new(None);

thread_local! {
    // (generation, cache) last seen by this thread: the hot path reads one
    // shared atomic and this cell, and never touches a reference count.
    static SEEN: Cell<Option<(u64, &'static Cache)>> = const { Cell::new(None) };
}

/// Makes `cache` the process-wide default, used by `#[cached]` functions
/// that name no `cache = ...`.
///
/// Call it once at start-up, before the first cached call. Each call keeps
/// the handle it replaces alive for the rest of the process (so calls in
/// flight finish against the cache they started with); the replaced cache's
/// entries stay where they are.
///
/// ```
/// use covet_cache::{Cache, default_cache, set_default};
/// let cache = Cache::builder().namespace("myapp").build().unwrap();
/// set_default(cache.clone());
/// assert_eq!(default_cache().namespace(), "myapp");
/// ```
pub fn set_default(cache: Cache) {
    let leaked: &'static Cache = Box::leak(Box::new(cache));
    let mut current = CURRENT.write();
    *current = Some(leaked);
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// The process-wide default cache: the one given to [`set_default`], or an
/// in-memory cache ([`Cache::memory`]) created on first use.
///
/// ```
/// let a = covet_cache::default_cache();
/// let b = covet_cache::default_cache();
/// assert!(std::ptr::eq(a, b));
/// ```
#[inline]
pub fn default_cache() -> &'static Cache {
    let generation = GENERATION.load(Ordering::Acquire);
    if let Some((seen, cache)) = SEEN.with(Cell::get)
        && seen == generation
    {
        return cache;
    }
    refresh(generation)
}

#[cold]
fn refresh(generation: u64) -> &'static Cache {
    let current = *CURRENT.read();
    let cache = match current {
        Some(c) => c,
        None => {
            let mut w = CURRENT.write();
            match *w {
                Some(c) => c,
                None => {
                    let c: &'static Cache = Box::leak(Box::new(fallback()));
                    *w = Some(c);
                    c
                }
            }
        }
    };
    SEEN.with(|s| s.set(Some((generation, cache))));
    cache
}

#[cfg(feature = "memory")]
fn fallback() -> Cache {
    Cache::memory()
}

#[cfg(not(feature = "memory"))]
fn fallback() -> Cache {
    panic!("no default cache: call covet::cache::set_default(...) or enable the `memory` feature")
}
