//! The companions beside every `#[cached]` fn: `<fn>_with_status`,
//! `<fn>_stats`, `<fn>_clear`, the `fn_stats()` list, and
//! `companions = false`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use covet::cache::{Cache, CacheStatus};
use serde::{Serialize, Serializer};

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("status"))
        .build()
        .expect("cache")
});

static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(cache = CACHE, key = "slow:{n}", ttl = 60)]
async fn slow(n: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    n
}

/// An argument that cannot be encoded into the default key.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not encodable"))
    }
}

#[covet::cached(cache = CACHE, ttl = 60)]
async fn takes_unencodable(_arg: Unencodable) -> u64 {
    7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_counters_of_one_fn() {
    assert_eq!(slow_with_status(1).await, (1, CacheStatus::Miss));
    assert_eq!(slow_with_status(1).await, (1, CacheStatus::Hit));
    assert_eq!(slow(1).await, 1);
    // Concurrent misses: one computes, the others are answered by it.
    let calls: Vec<_> = (0..10).map(|_| tokio::spawn(slow_with_status(2))).collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.expect("task").1);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == CacheStatus::Coalesced)
            .count(),
        9
    );
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 2);

    let stats = slow_stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.coalesced),
        (2, 2, 9),
        "{stats:?}"
    );
    assert_eq!(
        (stats.stale, stats.refreshes, stats.errors, stats.bypassed),
        (0, 0, 0, 0)
    );
    assert_eq!(stats.body.count, 2);
    assert!(stats.body.max >= Duration::from_millis(50), "{stats:?}");
    assert!(stats.body.total >= stats.body.max);
    assert!(
        stats.path.ends_with("cached_status::slow"),
        "{}",
        stats.path
    );
    assert_eq!(stats.hit_rate(), 0.5);
    assert_eq!(CacheStatus::Coalesced.as_str(), "COALESCED");
}

#[tokio::test]
async fn a_key_that_cannot_be_built_bypasses_the_cache() {
    assert_eq!(
        takes_unencodable_with_status(Unencodable).await,
        (7, CacheStatus::Bypassed)
    );
    assert_eq!(takes_unencodable(Unencodable).await, 7);
    assert_eq!(takes_unencodable_stats().bypassed, 2);
}

struct Repo {
    cache: Cache,
    runs: AtomicU32,
}

impl Repo {
    #[covet::cached(cache = self.cache, ttl = 60)]
    async fn find(&self, id: u64) -> Option<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Some(format!("item {id}"))
    }

    #[covet::cached(cache = self.cache, key = "label:{id}", ttl = 60)]
    async fn label(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("label {id}")
    }
}

fn repo(cache: Cache) -> Repo {
    Repo {
        cache,
        runs: AtomicU32::new(0),
    }
}

/// `<fn>_clear` drops this fn's entries and nothing else.
async fn clear_drops_one_fn(repo: &Repo, what: &str) {
    for id in 0..3 {
        repo.find(id).await;
        repo.label(id).await;
    }
    assert_eq!(repo.runs.load(Ordering::SeqCst), 6, "{what}");
    let removed = repo.find_clear().await.expect("clear");
    assert!(
        removed == 3 || removed == 0,
        "{what}: {removed} (0 where the backend cannot count)"
    );
    assert_eq!(
        repo.find_with_status(1).await.1,
        CacheStatus::Miss,
        "{what}"
    );
    assert_eq!(
        repo.label_with_status(1).await.1,
        CacheStatus::Hit,
        "{what}"
    );
    repo.label_clear().await.expect("clear");
    assert_eq!(
        repo.label_with_status(2).await.1,
        CacheStatus::Miss,
        "{what}"
    );
    assert_eq!(
        repo.find_with_status(2).await.1,
        CacheStatus::Miss,
        "{what}"
    );
    assert_eq!(repo.find_with_status(2).await.1, CacheStatus::Hit, "{what}");
}

#[tokio::test]
async fn clear_on_memory() {
    let cache = Cache::builder()
        .namespace(covet_test::unique_namespace("clear-mem"))
        .build()
        .expect("cache");
    clear_drops_one_fn(&repo(cache), "memory").await;
}

#[tokio::test]
async fn clear_on_redis() {
    let Some(url) = covet_test::require(covet_test::Server::Redis) else {
        return;
    };
    let cache = Cache::builder()
        .backend(
            covet::cache::RedisBackend::connect(&url)
                .await
                .expect("redis"),
        )
        .namespace(covet_test::unique_namespace("clear-redis"))
        .build()
        .expect("cache");
    clear_drops_one_fn(&repo(cache.clone()), "redis").await;
    cache.clear().await.expect("clear");
}

// Memcached cannot delete by pattern: entries carry the fn's tag instead.
#[tokio::test]
async fn clear_on_memcached() {
    let Some(url) = covet_test::require(covet_test::Server::Memcached) else {
        return;
    };
    let backend = covet::cache::MemcachedBackend::connect(&url)
        .await
        .expect("memcached");
    let cache = Cache::builder()
        .backend(backend)
        .namespace(covet_test::unique_namespace("clear-mc"))
        .build()
        .expect("cache");
    clear_drops_one_fn(&repo(cache.clone()), "memcached").await;
    cache.clear().await.expect("clear");
}

#[tokio::test]
async fn fn_stats_lists_every_called_fn_with_its_path() {
    let repo = repo(Cache::memory());
    repo.find(1).await;
    repo.find(1).await;
    let listed: Vec<_> = covet::cache::fn_stats()
        .filter(|s| s.path.ends_with("Repo::find"))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].path.starts_with("cached_status::"),
        "{}",
        listed[0].path
    );
    assert!(listed[0].hits >= 1);
    // A fn never called is not listed.
    assert!(!covet::cache::fn_stats().any(|s| s.path.ends_with("never_called")));
}

#[covet::cached(cache = CACHE, ttl = 60)]
async fn never_called(n: u64) -> u64 {
    n
}

// An existing fn owns the name `user_key`: `companions = false` keeps
// `#[cached]` from generating its own.
fn user_key(id: u64) -> String {
    format!("users/{id}")
}

#[covet::cached(cache = CACHE, key = "user:{id}", ttl = 60, companions = false)]
async fn user(id: u64, runs: Arc<AtomicU32>) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    user_key(id)
}

#[tokio::test]
async fn companions_false_leaves_names_to_the_app() {
    let runs = Arc::new(AtomicU32::new(0));
    assert_eq!(user(1, runs.clone()).await, "users/1");
    assert_eq!(user(1, runs.clone()).await, "users/1");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let _ = never_called_stats();
}
