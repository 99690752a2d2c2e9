//! `stale_while_revalidate`, `stale_if_error` and `refresh_ahead`: real TTLs,
//! real concurrency, on memory and on Redis (where the stale window must
//! survive in the stored entry, read by another process).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use covet::cache::{Cache, CacheStatus};

/// What a test body does: counts its runs, returns `value`, fails on demand.
#[derive(Debug, Default)]
struct Ctl {
    runs: AtomicU32,
    value: AtomicU64,
    fail: AtomicBool,
    delay_ms: AtomicU64,
}

impl Ctl {
    fn new(value: u64, delay_ms: u64) -> Arc<Ctl> {
        let ctl = Ctl::default();
        ctl.value.store(value, Ordering::SeqCst);
        ctl.delay_ms.store(delay_ms, Ordering::SeqCst);
        Arc::new(ctl)
    }

    async fn run(&self) -> Result<u64, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.fail.load(Ordering::SeqCst) {
            Err("origin down".to_owned())
        } else {
            Ok(self.value.load(Ordering::SeqCst))
        }
    }

    fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }

    fn set(&self, value: u64) {
        self.value.store(value, Ordering::SeqCst);
    }
}

// Owned arguments: refreshes run on a spawned task.
#[covet::cached(
    cache = cache,
    key = "swr:{n}",
    ttl = "300ms",
    stale_while_revalidate = "10s"
)]
async fn swr(cache: &'static Cache, ctl: Arc<Ctl>, n: u64) -> Result<u64, String> {
    let _ = (cache, n);
    ctl.run().await
}

#[covet::cached(cache = cache, key = "sie:{n}", ttl = "300ms", stale_if_error = "1500ms")]
async fn sie(cache: &'static Cache, ctl: Arc<Ctl>, n: u64) -> Result<u64, String> {
    let _ = (cache, n);
    ctl.run().await
}

#[covet::cached(cache = cache, key = "sie-opt:{n}", ttl = "300ms", stale_if_error = "10s")]
async fn sie_option(cache: &'static Cache, ctl: Arc<Ctl>, n: u64) -> Option<u64> {
    let _ = (cache, n);
    ctl.run().await.ok()
}

#[covet::cached(cache = cache, key = "ahead:{n}", ttl = "1500ms", refresh_ahead = "1s")]
async fn ahead(cache: &'static Cache, ctl: Arc<Ctl>, n: u64) -> Result<u64, String> {
    let _ = (cache, n);
    ctl.run().await
}

// Borrowed arguments: the caller that wins the key refreshes in its call.
#[covet::cached(
    cache = cache,
    key = "swr-ref:{n}",
    ttl = "300ms",
    stale_while_revalidate = "10s"
)]
async fn swr_ref(cache: &Cache, ctl: &Ctl, n: u64) -> Result<u64, String> {
    let _ = (cache, n);
    ctl.run().await
}

// `lock`: one refresh per key across processes.
#[covet::cached(
    cache = cache,
    key = "swr-lock:{n}",
    ttl = "300ms",
    stale_while_revalidate = "10s",
    lock
)]
async fn swr_lock(cache: &'static Cache, ctl: Arc<Ctl>, n: u64) -> Result<u64, String> {
    let _ = (cache, n);
    ctl.run().await
}

// Its body asks for its own key, through a fn sharing its key template.
#[covet::cached(
    cache = cache,
    key = "loop:{n}",
    ttl = "300ms",
    stale_while_revalidate = "10s"
)]
async fn looped(cache: &'static Cache, runs: Arc<AtomicU32>, n: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    looped_inner(cache, runs, n).await + 1
}

#[covet::cached(cache = cache, key = "loop:{n}", ttl = "300ms")]
async fn looped_inner(cache: &'static Cache, runs: Arc<AtomicU32>, n: u64) -> u64 {
    let _ = (cache, n);
    runs.fetch_add(1, Ordering::SeqCst);
    1
}

/// The caches each test runs on: memory, and Redis (in its own namespace).
async fn caches(test: &str) -> Vec<(&'static str, &'static Cache)> {
    let memory = Cache::builder()
        .namespace(covet_test::unique_namespace(test))
        .build()
        .expect("memory cache");
    let mut out = vec![("memory", &*Box::leak(Box::new(memory)))];
    if let Some(cache) = redis_cache(&covet_test::unique_namespace(test)).await {
        out.push(("redis", cache));
    }
    out
}

/// A cache over its own Redis connection: another process, as far as
/// single-flight goes.
async fn redis_cache(namespace: &str) -> Option<&'static Cache> {
    let url = covet_test::require(covet_test::Server::Redis)?;
    let backend = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("redis");
    let cache = Cache::builder()
        .backend(backend)
        .namespace(namespace)
        .build()
        .expect("redis cache");
    Some(Box::leak(Box::new(cache)))
}

/// Polls `check` every 10 ms until it holds, for at most 5 s.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    for (name, cache) in caches("swr").await {
        let ctl = Ctl::new(1, 200);
        let (v, status) = swr_with_status(cache, ctl.clone(), 7).await;
        assert_eq!((v, status), (Ok(1), CacheStatus::Miss), "{name}");
        tokio::time::sleep(Duration::from_millis(400)).await;

        // Expired, within the window: 20 concurrent callers all get the old
        // value without waiting for the 200 ms body; one refresh runs.
        ctl.set(2);
        let started = Instant::now();
        let calls: Vec<_> = (0..20)
            .map(|_| tokio::spawn(swr_with_status(cache, ctl.clone(), 7)))
            .collect();
        for call in calls {
            let (v, status) = call.await.expect("task");
            assert_eq!((v, status), (Ok(1), CacheStatus::Stale), "{name}");
        }
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "{name}: stale answers waited for the body ({:?})",
            started.elapsed()
        );
        wait_for("the background refresh", || ctl.runs() == 2).await;
        let fresh = async {
            loop {
                let (v, status) = swr_with_status(cache, ctl.clone(), 7).await;
                if status == CacheStatus::Hit {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let v = tokio::time::timeout(Duration::from_secs(5), fresh)
            .await
            .expect("refreshed value stored");
        assert_eq!(v, Ok(2), "{name}");
        assert_eq!(ctl.runs(), 2, "{name}: one refresh for 20 stale callers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stale_window_is_stored_with_the_redis_entry() {
    let ns = covet_test::unique_namespace("swr-stored");
    let Some(writer) = redis_cache(&ns).await else {
        return;
    };
    let ctl = Ctl::new(5, 0);
    assert_eq!(swr(writer, ctl.clone(), 1).await, Ok(5));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Another process, which never wrote the entry, serves it stale.
    let reader = redis_cache(&ns).await.expect("redis");
    ctl.set(6);
    let (v, status) = swr_with_status(reader, ctl.clone(), 1).await;
    assert_eq!((v, status), (Ok(5), CacheStatus::Stale));
    assert_eq!(
        reader.stats().stale,
        1,
        "counted by the cache that answered"
    );
    wait_for("the refresh", || ctl.runs() == 2).await;
    reader.clear().await.expect("clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_the_old_value_only_within_its_window() {
    for (name, cache) in caches("sie").await {
        let ctl = Ctl::new(1, 0);
        assert_eq!(sie(cache, ctl.clone(), 3).await, Ok(1), "{name}");
        tokio::time::sleep(Duration::from_millis(400)).await;

        // Expired: the body runs; it fails, so the stale value is the answer.
        ctl.fail.store(true, Ordering::SeqCst);
        let (v, status) = sie_with_status(cache, ctl.clone(), 3).await;
        assert_eq!((v, status), (Ok(1), CacheStatus::Stale), "{name}");
        assert_eq!(ctl.runs(), 2, "{name}");

        // It succeeds: the new value replaces the old one.
        ctl.fail.store(false, Ordering::SeqCst);
        ctl.set(2);
        let (v, status) = sie_with_status(cache, ctl.clone(), 3).await;
        assert_eq!((v, status), (Ok(2), CacheStatus::Refreshed), "{name}");
        assert_eq!(
            sie_with_status(cache, ctl.clone(), 3).await.1,
            CacheStatus::Hit
        );

        // Past the window, the error is the answer.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        ctl.fail.store(true, Ordering::SeqCst);
        let (v, status) = sie_with_status(cache, ctl.clone(), 3).await;
        assert_eq!(
            (v, status),
            (Err("origin down".to_owned()), CacheStatus::Miss),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_treats_none_as_a_failure() {
    for (name, cache) in caches("sie-none").await {
        let ctl = Ctl::new(4, 0);
        assert_eq!(sie_option(cache, ctl.clone(), 1).await, Some(4));
        tokio::time::sleep(Duration::from_millis(400)).await;
        ctl.fail.store(true, Ordering::SeqCst);
        let (v, status) = sie_option_with_status(cache, ctl.clone(), 1).await;
        assert_eq!((v, status), (Some(4), CacheStatus::Stale), "{name}");
        let stats = sie_option_stats();
        assert!(stats.errors >= 1 && stats.stale >= 1, "{name}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_keeps_a_hot_key_from_expiring() {
    for (name, cache) in caches("ahead").await {
        let ctl = Ctl::new(1, 100);
        assert_eq!(
            ahead_with_status(cache, ctl.clone(), 9).await.1,
            CacheStatus::Miss
        );
        // Within the last second of its 1.5 s life: a hit that starts one
        // background refresh.
        tokio::time::sleep(Duration::from_millis(700)).await;
        ctl.set(2);
        let started = Instant::now();
        for _ in 0..10 {
            let (v, status) = ahead_with_status(cache, ctl.clone(), 9).await;
            assert_eq!((v, status), (Ok(1), CacheStatus::Hit), "{name}");
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{name}: a hit waited"
        );
        wait_for("the refresh ahead", || ctl.runs() == 2).await;
        // Past the original expiry: the refreshed entry answers, no miss.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (v, status) = ahead_with_status(cache, ctl.clone(), 9).await;
        assert_eq!(v, Ok(2), "{name}");
        assert_ne!(status, CacheStatus::Miss, "{name}");
        assert!(ahead_stats().refreshes >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borrowed_arguments_refresh_in_one_call_while_the_others_get_stale() {
    for (name, cache) in caches("swr-ref").await {
        let ctl = Ctl::new(1, 0);
        assert_eq!(swr_ref(cache, &ctl, 2).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(400)).await;
        ctl.set(2);
        ctl.delay_ms.store(200, Ordering::SeqCst);
        let calls: Vec<_> = (0..10)
            .map(|_| swr_ref_with_status(cache, &ctl, 2))
            .collect();
        let results = futures_util::future::join_all(calls).await;
        let refreshed: Vec<_> = results
            .iter()
            .filter(|(_, s)| *s == CacheStatus::Refreshed)
            .collect();
        let stale = results
            .iter()
            .filter(|(v, s)| *s == CacheStatus::Stale && *v == Ok(1))
            .count();
        assert_eq!(refreshed.len(), 1, "{name}: {results:?}");
        assert_eq!(refreshed[0].0, Ok(2), "{name}");
        assert_eq!(stale, 9, "{name}: {results:?}");
        assert_eq!(ctl.runs(), 2, "{name}");
        assert_eq!(
            swr_ref_with_status(cache, &ctl, 2).await,
            (Ok(2), CacheStatus::Hit)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_one_process_refreshes() {
    let ns = covet_test::unique_namespace("swr-lock");
    let Some(a) = redis_cache(&ns).await else {
        return;
    };
    let b = redis_cache(&ns).await.expect("redis");
    let ctl = Ctl::new(1, 300);
    assert_eq!(swr_lock(a, ctl.clone(), 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    ctl.set(2);
    // Two processes see the stale entry at the same time; the lease lets
    // one of them refresh.
    let (ra, rb) = tokio::join!(
        swr_lock_with_status(a, ctl.clone(), 1),
        swr_lock_with_status(b, ctl.clone(), 1)
    );
    assert_eq!(ra, (Ok(1), CacheStatus::Stale));
    assert_eq!(rb, (Ok(1), CacheStatus::Stale));
    wait_for("the refresh", || ctl.runs() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ctl.runs(), 2, "one refresh across both processes");
    let fresh = async {
        loop {
            if let (Ok(2), CacheStatus::Hit) = swr_lock_with_status(b, ctl.clone(), 1).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fresh)
        .await
        .expect("the refreshed value reaches the other process");
    a.clear().await.expect("clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_entrant_body_never_hangs_in_a_refresh() {
    for (name, cache) in caches("loop").await {
        let runs = Arc::new(AtomicU32::new(0));
        let first = tokio::time::timeout(Duration::from_secs(5), looped(cache, runs.clone(), 1))
            .await
            .expect("the first call finished");
        assert_eq!(first, 2, "{name}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = runs.load(Ordering::SeqCst);
        // Stale: the background refresh asks for its own key.
        let (v, status) = looped_with_status(cache, runs.clone(), 1).await;
        assert_eq!((v, status), (2, CacheStatus::Stale), "{name}");
        wait_for("the re-entrant refresh", || {
            runs.load(Ordering::SeqCst) >= before + 2
        })
        .await;
    }
}
