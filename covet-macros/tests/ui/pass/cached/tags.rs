#![deny(warnings)]
// `tags = [...]`: templates rendered on the miss path, usable with
// `Cache::invalidate_tag`.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

struct Team {
    id: u32,
}

#[covet::cached(key = "member:{user_id}", tags = ["user:{user_id}", "team:{team.id}", "members"])]
async fn member(user_id: u64, team: &Team) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{user_id}@{}", team.id)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = covet::cache::default_cache();
    let team = Team { id: 3 };
    assert_eq!(member(1, &team).await, "1@3");
    assert_eq!(member(2, &team).await, "2@3");
    assert_eq!(member(1, &team).await, "1@3");
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);

    assert_eq!(cache.invalidate_tag("user:1").await.unwrap(), 1);
    assert_eq!(member(1, &team).await, "1@3");
    assert_eq!(member(2, &team).await, "2@3");
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);

    assert_eq!(cache.invalidate_tag("team:3").await.unwrap(), 2);
    assert_eq!(member(2, &team).await, "2@3");
    assert_eq!(CALLS.load(Ordering::SeqCst), 4);
}
