#![deny(warnings)]
// `ttl = "1h30m"`, `ttl = "200ms"`.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static LONG: AtomicUsize = AtomicUsize::new(0);
static SHORT: AtomicUsize = AtomicUsize::new(0);

#[covet::cached(ttl = "1h30m")]
async fn long_lived(x: u32) -> u32 {
    LONG.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[covet::cached(ttl = "200ms")]
async fn short_lived(x: u32) -> u32 {
    SHORT.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(long_lived(1).await, 2);
    assert_eq!(long_lived(1).await, 2);
    assert_eq!(LONG.load(Ordering::SeqCst), 1);

    assert_eq!(short_lived(1).await, 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(short_lived(1).await, 2);
    assert_eq!(SHORT.load(Ordering::SeqCst), 2);
}
