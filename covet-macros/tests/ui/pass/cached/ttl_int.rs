#![deny(warnings)]
// `ttl = <seconds>`.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[covet::cached(ttl = 300)]
async fn double(x: u32) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(double(21).await, 42);
    assert_eq!(double(21).await, 42);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(double(1).await, 2);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
}
