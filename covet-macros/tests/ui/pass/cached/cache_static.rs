#![deny(warnings)]
// `cache = CACHE` with a `static LazyLock<Cache>`.
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use covet::cache::Cache;

static CALLS: AtomicUsize = AtomicUsize::new(0);
static CACHE: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder().namespace("squares").build().unwrap());

#[covet::cached(cache = CACHE, key = "sq:{x}")]
async fn square(x: u64) -> u64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(square(3).await, 9);
    assert_eq!(square(3).await, 9);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(CACHE.get::<u64>("sq:3").await.unwrap(), Some(9));
    // Not in the default cache.
    let default = covet::cache::default_cache();
    assert_eq!(default.get::<u64>("sq:3").await.unwrap(), None);
    assert!(square_invalidate(3).await.unwrap());
    assert_eq!(CACHE.get::<u64>("sq:3").await.unwrap(), None);
}
