//! Capacity: the memory backend stays within its byte and entry bounds and
//! counts evictions.

use std::sync::LazyLock;

use covet::cache::{Cache, MemoryBackend};

static SMALL: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .backend(
            MemoryBackend::builder()
                .max_capacity_bytes(256 * 1024)
                .build(),
        )
        .namespace(covet_test::unique_namespace("evict"))
        .build()
        .unwrap()
});

#[covet::cached(key = "blob:{n}", cache = SMALL)]
async fn blob(n: u32) -> Vec<u8> {
    vec![(n % 251) as u8; 4096]
}

#[tokio::test]
async fn bounded_by_bytes_with_evictions_counted() {
    for n in 0..1000 {
        assert_eq!(blob(n).await.len(), 4096);
    }
    let backend = SMALL.backend().local().expect("memory backend").clone();
    backend.run_pending_tasks().await;
    assert!(
        backend.weighted_size() <= 256 * 1024,
        "{}",
        backend.weighted_size()
    );
    let stats = SMALL.stats();
    assert!(stats.evictions > 500, "{stats:?}");
    assert_eq!(stats.sets, 1000);
    // whatever survived still decodes to the right value
    for n in 990..1000 {
        assert_eq!(blob(n).await, vec![(n % 251) as u8; 4096]);
    }
}

#[tokio::test]
async fn bounded_by_entries() {
    let cache = Cache::builder()
        .backend(MemoryBackend::builder().max_entries(50).build())
        .namespace(covet_test::unique_namespace("entries"))
        .build()
        .unwrap();
    for i in 0..500u32 {
        cache.set(&format!("k{i}"), &i, None).await.unwrap();
    }
    let backend = cache.backend().local().unwrap().clone();
    backend.run_pending_tasks().await;
    assert!(backend.entry_count() <= 50, "{}", backend.entry_count());
    assert!(cache.stats().evictions >= 450);
}
