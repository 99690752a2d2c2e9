//! `cache_none` and `cache_err`: failures cached too, with `ttl` or their
//! own shorter TTL; on memory and on Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::{Cache, CacheStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum DbError {
    NotFound(u64),
}

#[covet::cached(cache = cache, key = "user:{id}", ttl = 60, cache_none)]
async fn find_user(cache: &'static Cache, runs: Arc<AtomicU32>, id: u64) -> Option<String> {
    let _ = cache;
    runs.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

#[covet::cached(cache = cache, key = "short:{id}", ttl = 60, cache_none = "300ms")]
async fn find_short(cache: &'static Cache, runs: Arc<AtomicU32>, id: u64) -> Option<String> {
    let _ = cache;
    runs.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

#[covet::cached(cache = cache, key = "load:{id}", ttl = 60, cache_err = "300ms")]
async fn load(cache: &'static Cache, runs: Arc<AtomicU32>, id: u64) -> Result<u64, DbError> {
    let _ = cache;
    runs.fetch_add(1, Ordering::SeqCst);
    if id.is_multiple_of(2) {
        Ok(id * 10)
    } else {
        Err(DbError::NotFound(id))
    }
}

#[covet::cached(cache = cache, key = "load-all:{id}", ttl = 60, cache_err)]
async fn load_all(cache: &'static Cache, runs: Arc<AtomicU32>, id: u64) -> Result<u64, DbError> {
    let _ = cache;
    runs.fetch_add(1, Ordering::SeqCst);
    if id.is_multiple_of(2) {
        Ok(id * 10)
    } else {
        Err(DbError::NotFound(id))
    }
}

// A stale `Ok` wins over a fresh `Err` that `cache_err` would store.
#[covet::cached(
    cache = cache,
    key = "both:{id}",
    ttl = "300ms",
    cache_err = "10s",
    stale_if_error = "10s"
)]
async fn both(cache: &'static Cache, fail: Arc<AtomicU32>, id: u64) -> Result<u64, DbError> {
    let _ = cache;
    if fail.load(Ordering::SeqCst) == 1 {
        Err(DbError::NotFound(id))
    } else {
        Ok(id)
    }
}

async fn caches(test: &str) -> Vec<(&'static str, &'static Cache)> {
    let memory = Cache::builder()
        .namespace(covet_test::unique_namespace(test))
        .build()
        .expect("memory cache");
    let mut out = vec![("memory", &*Box::leak(Box::new(memory)))];
    if let Some(url) = covet_test::require(covet_test::Server::Redis) {
        let backend = covet::cache::RedisBackend::connect(&url)
            .await
            .expect("redis");
        let cache = Cache::builder()
            .backend(backend)
            .namespace(covet_test::unique_namespace(test))
            .build()
            .expect("redis cache");
        out.push(("redis", &*Box::leak(Box::new(cache))));
    }
    out
}

fn count(runs: &AtomicU32) -> u32 {
    runs.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_none_stores_none_for_the_ttl() {
    for (name, cache) in caches("none").await {
        let runs = Arc::new(AtomicU32::new(0));
        assert_eq!(find_user(cache, runs.clone(), 1).await, None);
        let (v, status) = find_user_with_status(cache, runs.clone(), 1).await;
        assert_eq!((v, status), (None, CacheStatus::Hit), "{name}");
        assert_eq!(
            count(&runs),
            1,
            "{name}: a missing id hit the database twice"
        );
        assert_eq!(
            find_user(cache, runs.clone(), 2).await.as_deref(),
            Some("user 2")
        );
        assert_eq!(
            find_user(cache, runs.clone(), 2).await.as_deref(),
            Some("user 2")
        );
        assert_eq!(count(&runs), 2, "{name}");
        // A cached `None` goes away like any entry.
        assert!(
            find_user_invalidate(cache, runs.clone(), 1)
                .await
                .expect("invalidate")
        );
        assert_eq!(find_user(cache, runs.clone(), 1).await, None);
        assert_eq!(count(&runs), 3, "{name}");
        assert!(
            find_user_stats().errors >= 2,
            "a cached None counts as a failure"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_none_with_its_own_ttl_expires_first() {
    for (name, cache) in caches("none-ttl").await {
        let runs = Arc::new(AtomicU32::new(0));
        assert_eq!(find_short(cache, runs.clone(), 1).await, None);
        assert_eq!(
            find_short(cache, runs.clone(), 2).await.as_deref(),
            Some("user 2")
        );
        assert_eq!(find_short(cache, runs.clone(), 1).await, None);
        assert_eq!(count(&runs), 2, "{name}");
        let None = cache
            .ttl(&find_short_key(cache, runs.clone(), 1))
            .await
            .ok()
            .and_then(|t| match t {
                covet::cache::KeyTtl::Expires(d) if d <= Duration::from_millis(300) => None,
                other => Some(other),
            })
        else {
            panic!("{name}: None is stored for 300 ms");
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(find_short(cache, runs.clone(), 1).await, None);
        assert_eq!(
            find_short(cache, runs.clone(), 2).await.as_deref(),
            Some("user 2")
        );
        assert_eq!(count(&runs), 3, "{name}: None expired, Some did not");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_err_stores_errors_with_their_ttl() {
    for (name, cache) in caches("err").await {
        let runs = Arc::new(AtomicU32::new(0));
        assert_eq!(
            load(cache, runs.clone(), 1).await,
            Err(DbError::NotFound(1))
        );
        let (v, status) = load_with_status(cache, runs.clone(), 1).await;
        assert_eq!(
            (v, status),
            (Err(DbError::NotFound(1)), CacheStatus::Hit),
            "{name}"
        );
        assert_eq!(load(cache, runs.clone(), 2).await, Ok(20));
        assert_eq!(count(&runs), 2, "{name}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            load(cache, runs.clone(), 1).await,
            Err(DbError::NotFound(1))
        );
        assert_eq!(load(cache, runs.clone(), 2).await, Ok(20));
        assert_eq!(
            count(&runs),
            3,
            "{name}: the error expired, the value did not"
        );

        // The flag alone: errors live for `ttl`.
        let runs = Arc::new(AtomicU32::new(0));
        assert!(load_all(cache, runs.clone(), 3).await.is_err());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(load_all(cache, runs.clone(), 3).await.is_err());
        assert_eq!(count(&runs), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_value_wins_over_an_error_to_cache() {
    for (name, cache) in caches("both").await {
        let fail = Arc::new(AtomicU32::new(0));
        assert_eq!(both(cache, fail.clone(), 5).await, Ok(5));
        tokio::time::sleep(Duration::from_millis(400)).await;
        fail.store(1, Ordering::SeqCst);
        let (v, status) = both_with_status(cache, fail.clone(), 5).await;
        assert_eq!((v, status), (Ok(5), CacheStatus::Stale), "{name}");
        // The error was not stored over the stale value.
        let (v, status) = both_with_status(cache, fail.clone(), 5).await;
        assert_eq!((v, status), (Ok(5), CacheStatus::Stale), "{name}");
        // Without a stale value, the error is cached.
        assert_eq!(
            both(cache, fail.clone(), 6).await,
            Err(DbError::NotFound(6))
        );
        fail.store(0, Ordering::SeqCst);
        let (v, status) = both_with_status(cache, fail.clone(), 6).await;
        assert_eq!(
            (v, status),
            (Err(DbError::NotFound(6)), CacheStatus::Hit),
            "{name}"
        );
    }
}
