//! A backend that fails never changes a cached fn's result: the body runs,
//! the error is counted. The typed API returns the error.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::backend::{Entry, KeyTtl};
use covet::cache::{Cache, CacheBackend, Error, Result};

/// A backend whose every operation fails, like a remote store that went away.
#[derive(Debug)]
struct Unreachable;

fn down() -> Error {
    Error::backend(
        "unreachable",
        "connection refused",
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    )
}

#[async_trait::async_trait]
impl CacheBackend for Unreachable {
    fn name(&self) -> &'static str {
        "unreachable"
    }
    async fn get(&self, _: &str) -> Result<Option<bytes::Bytes>> {
        Err(down())
    }
    async fn set_entry(&self, _: &str, _: Entry<'_>) -> Result<()> {
        Err(down())
    }
    async fn delete(&self, _: &str) -> Result<bool> {
        Err(down())
    }
    async fn delete_pattern(&self, _: &str) -> Result<u64> {
        Err(down())
    }
    async fn exists(&self, _: &str) -> Result<bool> {
        Err(down())
    }
    async fn ttl(&self, _: &str) -> Result<KeyTtl> {
        Err(down())
    }
    async fn incr(&self, _: &str, _: i64, _: Option<Duration>) -> Result<i64> {
        Err(down())
    }
    async fn invalidate_tag(&self, _: &str) -> Result<u64> {
        Err(down())
    }
}

// Used by `cached_fn_fails_open` only: its stats are asserted exactly.
static CACHE: LazyLock<Cache> = LazyLock::new(unreachable_cache);

fn unreachable_cache() -> Cache {
    Cache::builder()
        .backend(Unreachable)
        .namespace(covet_test::unique_namespace("down"))
        .build()
        .unwrap()
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "v:{n}", cache = CACHE)]
async fn compute(n: u32) -> Result<u32, String> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(n + 1)
}

#[tokio::test]
async fn cached_fn_fails_open() {
    assert_eq!(compute(1).await, Ok(2));
    assert_eq!(compute(1).await, Ok(2));
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        2,
        "no cache, so the body runs each time"
    );
    let s = CACHE.stats();
    // per call: the failed read and the failed write
    assert_eq!(s.errors, 4, "{s:?}");
    assert_eq!(s.hits, 0);
    assert_eq!(s.sets, 0);
    assert!(compute_invalidate(1).await.is_err());
    assert_eq!(compute_refresh(1).await, Ok(2));
}

#[tokio::test]
async fn typed_api_reports_the_backend_error_with_its_source() {
    let cache = unreachable_cache();
    let err = cache.get::<u32>("k").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Backend {
            backend: "unreachable",
            ..
        }
    ));
    let source = std::error::Error::source(&err).expect("source kept");
    assert!(source.to_string().contains("refused"), "{source}");
    assert!(cache.set("k", &1u32, None).await.is_err());
    // get_or_insert_with fails open
    assert_eq!(
        cache
            .get_or_insert_with("k", None, || async { 5u32 })
            .await
            .unwrap(),
        5
    );
}
