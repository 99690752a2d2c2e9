//! `lock`: concurrent misses of one key in several caches (standing in for
//! processes) that share a backend compute once, through a lease.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::{Cache, CacheBackend, MemoryBackend};

static SHARED: LazyLock<Arc<MemoryBackend>> = LazyLock::new(|| Arc::new(MemoryBackend::new()));
static NS: LazyLock<String> = LazyLock::new(|| covet_test::unique_namespace("lock"));

fn process_cache() -> Cache {
    Cache::builder()
        .shared_backend(SHARED.clone())
        .namespace(NS.as_str())
        .build()
        .unwrap()
}

// Two caches with their own single-flight maps, like two processes.
static A: LazyLock<Cache> = LazyLock::new(process_cache);
static B: LazyLock<Cache> = LazyLock::new(process_cache);
static RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "report:{n}", cache = A, lock)]
async fn report_a(n: u32) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("report {n}")
}

#[covet::cached(key = "report:{n}", cache = B, lock)]
async fn report_b(n: u32) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("report {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_compute_once() {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        tasks.push(tokio::spawn(report_a(1)));
        tasks.push(tokio::spawn(report_b(1)));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "report 1");
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(A.stats().coalesced + B.stats().coalesced, 39);
    // the lease was released: nothing left behind
    assert!(
        SHARED
            .lease_acquire(&format!("{}:report:1", NS.as_str()), Duration::from_secs(1))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_is_bounded_when_the_lease_holder_is_stuck() {
    let backend = Arc::new(MemoryBackend::new());
    let ns = covet_test::unique_namespace("stuck");
    let cache = Cache::builder()
        .shared_backend(backend.clone())
        .namespace(ns.clone())
        .distributed_single_flight(true)
        .lease_ttl(Duration::from_millis(100))
        .lease_wait(Duration::from_millis(150))
        .build()
        .unwrap();
    // another "process" holds the lease and never stores anything
    let held = backend
        .lease_acquire(&format!("{ns}:k"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(held.is_some());
    let started = std::time::Instant::now();
    let v = cache
        .get_or_insert_with("k", None, || async { 7u8 })
        .await
        .unwrap();
    assert_eq!(v, 7);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_lease_holder_releases_its_lease() {
    let backend = Arc::new(MemoryBackend::new());
    let ns = covet_test::unique_namespace("cancel-lease");
    let cache = Cache::builder()
        .shared_backend(backend.clone())
        .namespace(ns.clone())
        .distributed_single_flight(true)
        .build()
        .unwrap();
    let c = cache.clone();
    let task = tokio::spawn(async move {
        c.get_or_insert_with("k", None, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            1u8
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let key = format!("{ns}:k");
    assert_eq!(
        backend
            .lease_acquire(&key, Duration::from_secs(1))
            .await
            .unwrap(),
        None,
        "held"
    );
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        backend
            .lease_acquire(&key, Duration::from_secs(1))
            .await
            .unwrap()
            .is_some(),
        "released on drop"
    );
}

// The same over Redis: two caches, each with its own Redis connection and
// its own single-flight map, like two processes.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_leases_make_two_caches_compute_once() {
    let Some(url) = covet_test::require(covet_test::Server::Redis) else {
        return;
    };
    let ns = covet_test::unique_namespace("redis-lock");
    let mut caches = Vec::new();
    for _ in 0..2 {
        let backend = covet::cache::RedisBackend::connect(&url).await.unwrap();
        caches.push(
            Cache::builder()
                .backend(backend)
                .namespace(ns.clone())
                .distributed_single_flight(true)
                .build()
                .unwrap(),
        );
    }
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let cache = caches[i % 2].clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("total", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    4242u64
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 4242);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // released: a new lease can be taken at once
    let probe = covet::cache::RedisBackend::connect(&url).await.unwrap();
    let key = format!("{ns}:total");
    let token = probe
        .lease_acquire(&key, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free");
    assert!(probe.lease_release(&key, &token).await.unwrap());
    caches[0].clear().await.unwrap();
}
