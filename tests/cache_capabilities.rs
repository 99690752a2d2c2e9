//! `Cache` reads a backend's capabilities and refuses what it cannot do
//! before sending anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use covet::cache::{Cache, CacheBackend, Capabilities, Entry, Error, KeyTtl, MemoryBackend};

/// A memory backend that says it cannot enumerate keys and holds values
/// of at most 100 bytes, and counts the calls that reach it.
#[derive(Debug, Default)]
struct Limited {
    inner: MemoryBackend,
    writes: AtomicU32,
    patterns: AtomicU32,
}

#[async_trait]
impl CacheBackend for Limited {
    fn name(&self) -> &'static str {
        "limited"
    }
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.pattern_deletes = false;
        caps.max_value_len = Some(100);
        caps.ttl_resolution = Duration::from_secs(1);
        caps
    }
    async fn get(&self, key: &str) -> covet::cache::Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> covet::cache::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.set_entry(key, entry).await
    }
    async fn delete(&self, key: &str) -> covet::cache::Result<bool> {
        self.inner.delete(key).await
    }
    async fn delete_pattern(&self, pattern: &str) -> covet::cache::Result<u64> {
        self.patterns.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_pattern(pattern).await
    }
    async fn exists(&self, key: &str) -> covet::cache::Result<bool> {
        self.inner.exists(key).await
    }
    async fn ttl(&self, key: &str) -> covet::cache::Result<KeyTtl> {
        self.inner.ttl(key).await
    }
    async fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> covet::cache::Result<i64> {
        self.inner.incr(key, delta, ttl).await
    }
    async fn invalidate_tag(&self, tag: &str) -> covet::cache::Result<u64> {
        self.inner.invalidate_tag(tag).await
    }
}

#[tokio::test]
async fn unsupported_operations_and_oversize_values_are_refused_early() {
    let backend = Arc::new(Limited::default());
    let cache = Cache::builder()
        .shared_backend(backend.clone())
        .namespace("caps")
        .build()
        .expect("cache");
    let err = cache.delete_pattern("user:*").await.unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { backend: "limited", operation } if operation.starts_with("delete_pattern")),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not support delete_pattern"),
        "{err}"
    );
    assert_eq!(backend.patterns.load(Ordering::SeqCst), 0, "nothing sent");

    cache
        .set("small", &"x".to_owned(), None)
        .await
        .expect("fits");
    let err = cache.set("big", &"x".repeat(200), None).await.unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { limit: 100, .. }),
        "{err}"
    );
    let err = cache
        .set_many(&[("a", "y".repeat(200))], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    assert_eq!(
        backend.writes.load(Ordering::SeqCst),
        1,
        "only the small value was sent"
    );
    assert_eq!(cache.get::<String>("big").await.expect("get"), None);
    // clear() works without enumerating keys
    cache.clear().await.expect("clear");
}

#[tokio::test]
async fn the_defaults_and_the_built_in_backends() {
    let caps = Capabilities::default();
    assert!(caps.pattern_deletes && caps.native_expiry && caps.exact_counts);
    assert_eq!(caps.max_value_len, None);
    let memory = MemoryBackend::new().capabilities();
    assert!(
        memory.leases,
        "memory leases coordinate tasks of one process"
    );
}
