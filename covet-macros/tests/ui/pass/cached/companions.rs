#![deny(warnings)]
// The companions, and `companions = false` when their names are taken.
use covet::cache::{CacheStatus, FnStats};

fn user_key(id: u64) -> String {
    format!("u{id}")
}

#[covet::cached(ttl = 60, companions = false)]
async fn user(id: u64) -> u64 {
    id
}

#[covet::cached(ttl = 60, key = "sq:{x}")]
async fn square(x: u64) -> u64 {
    x * x
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(user(1).await, 1);
    assert_eq!(user_key(1), "u1");
    assert_eq!(square_with_status(3).await, (9, CacheStatus::Miss));
    let stats: FnStats = square_stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(square_clear().await.unwrap(), 1);
    assert_eq!(square_key(3), "sq:3");
}
