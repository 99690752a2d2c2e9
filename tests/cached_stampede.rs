//! Single-flight: concurrent misses of one key run the body once; a failed,
//! cancelled or panicking first caller never leaves the others waiting.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::Cache;
use tokio::sync::Notify;
use tokio::time::timeout;

fn fresh_cache(name: &str) -> Cache {
    Cache::builder()
        .namespace(covet_test::unique_namespace(name))
        .build()
        .unwrap()
}

static STAMPEDE: LazyLock<Cache> = LazyLock::new(|| fresh_cache("stampede"));
static STAMPEDE_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "slow:{n}", cache = STAMPEDE)]
async fn slow(n: u64) -> u64 {
    STAMPEDE_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    n + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_calls_run_the_body_once() {
    let tasks: Vec<_> = (0..100).map(|_| tokio::spawn(slow(41))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 42);
    }
    assert_eq!(STAMPEDE_CALLS.load(Ordering::SeqCst), 1);
    let s = STAMPEDE.stats();
    assert_eq!(s.sets, 1);
    assert_eq!(s.misses, 100);
    assert_eq!(s.coalesced, 99, "{s:?}");
    assert_eq!(slow(41).await, 42);
    assert_eq!(STAMPEDE.stats().hits, 1);
}

static CANCEL: LazyLock<Cache> = LazyLock::new(|| fresh_cache("cancel"));
static CANCEL_CALLS: AtomicU32 = AtomicU32::new(0);
static ENTERED: Notify = Notify::const_new();

#[covet::cached(key = "c:{n}", cache = CANCEL)]
async fn cancellable(n: u64) -> u64 {
    CANCEL_CALLS.fetch_add(1, Ordering::SeqCst);
    ENTERED.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    n * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_first_caller_hands_over_to_a_waiter() {
    let first = tokio::spawn(cancellable(5));
    ENTERED.notified().await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(cancellable(5))).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for w in waiters {
        let v = timeout(Duration::from_secs(5), w)
            .await
            .expect("a waiter hung after the first caller was cancelled")
            .unwrap();
        assert_eq!(v, 10);
    }
    assert_eq!(
        CANCEL_CALLS.load(Ordering::SeqCst),
        2,
        "one waiter took over, once"
    );
}

static FAIL: LazyLock<Cache> = LazyLock::new(|| fresh_cache("fail"));
static FAIL_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "f:{n}", cache = FAIL)]
async fn always_fails(n: u64) -> Result<u64, String> {
    FAIL_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Err(format!("no {n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_body_hands_its_error_to_every_waiter() {
    let tasks: Vec<_> = (0..10).map(|_| tokio::spawn(always_fails(3))).collect();
    for t in tasks {
        let r = timeout(Duration::from_secs(5), t)
            .await
            .expect("hung")
            .unwrap();
        assert_eq!(r, Err("no 3".to_owned()));
    }
    // the error is `Clone`: the waiters get the leader's, nobody recomputes
    assert_eq!(FAIL_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(FAIL.stats().sets, 0);
}

static PANIC: LazyLock<Cache> = LazyLock::new(|| fresh_cache("panic"));
static PANIC_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "p:{n}", cache = PANIC)]
async fn panics_first(n: u64) -> u64 {
    let call = PANIC_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(call > 0, "first call panics");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_first_caller_does_not_strand_waiters() {
    let first = tokio::spawn(panics_first(8));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiters: Vec<_> = (0..5).map(|_| tokio::spawn(panics_first(8))).collect();
    assert!(first.await.unwrap_err().is_panic());
    for w in waiters {
        assert_eq!(
            timeout(Duration::from_secs(5), w)
                .await
                .expect("hung")
                .unwrap(),
            8
        );
    }
    assert_eq!(PANIC_CALLS.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_get_or_insert_with_coalesces() {
    let cache = fresh_cache("typed");
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("k", None, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        "v".to_owned()
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let r: Result<u32, covet::cache::Error> = cache
        .try_get_or_insert_with("bad\nkey", None, || async { Ok(1) })
        .await;
    assert!(matches!(r, Err(covet::cache::Error::InvalidKey { .. })));
}
