#![deny(warnings)]
// A `&self` method without `cache` or `key`: the default cache, and a key
// naming the fn and the `Self` type.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

struct Counter;
struct Other;

impl Counter {
    #[covet::cached(ttl = "10m")]
    pub async fn double(&self, x: u64) -> u64 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        x * 2
    }
}

impl Other {
    #[covet::cached]
    pub async fn double(&self, x: u64) -> u64 {
        x * 3
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let counter = Counter;
    assert_eq!(counter.double(4).await, 8);
    assert_eq!(Counter.double(4).await, 8);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(Other.double(4).await, 12);
    let key = counter.double_key(4);
    assert!(
        key.contains("::double@") && key.ends_with("::Counter:04"),
        "{key}"
    );
    assert_ne!(key, Other.double_key(4));
    assert_eq!(counter.double_refresh(4).await, 8);
    assert!(counter.double_invalidate(4).await.unwrap());
}
