//! `#[cached(local)]` and `#[cached]` on sync fns: a typed memo per fn in
//! this process, with no serde bound.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use covet::cache::CacheStatus;

static FIB_RUNS: AtomicU32 = AtomicU32::new(0);

/// A sync fn: memoized in process, implicitly `local`.
#[covet::cached]
fn fib(n: u64) -> u64 {
    FIB_RUNS.fetch_add(1, Ordering::SeqCst);
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

/// Not serializable: only `local` can hold it.
#[derive(Debug)]
struct Client {
    name: String,
    calls: Mutex<u32>,
}

static CLIENTS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(local, ttl = "200ms")]
async fn client(name: String) -> Arc<Client> {
    CLIENTS.fetch_add(1, Ordering::SeqCst);
    Arc::new(Client {
        name,
        calls: Mutex::new(0),
    })
}

static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(local, max_entries = 1000)]
async fn slow(n: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    n * 2
}

static SYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "square:{n}")]
fn slow_square(n: u64) -> u64 {
    SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    n * n
}

#[covet::cached(max_entries = 10)]
fn bounded(n: u64) -> u64 {
    n
}

static PANICS: AtomicU32 = AtomicU32::new(0);

#[covet::cached]
fn may_panic(n: u64) -> u64 {
    if PANICS.fetch_add(1, Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(50));
        panic!("the first computation fails");
    }
    n
}

static PARSES: AtomicU32 = AtomicU32::new(0);

#[covet::cached(ttl = "100ms")]
fn parse(text: String) -> Result<u64, String> {
    PARSES.fetch_add(1, Ordering::SeqCst);
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn a_sync_fib_is_memoized() {
    assert_eq!(fib(50), 12_586_269_025);
    assert_eq!(FIB_RUNS.load(Ordering::SeqCst), 51, "each n computed once");
    assert_eq!(fib_with_status(50), (12_586_269_025, CacheStatus::Hit));
    let stats = fib_stats();
    assert_eq!(stats.misses, 51);
    assert!(stats.hits >= 49, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_without_serde_expire_with_their_ttl() {
    let a = client("db".into()).await;
    let b = client("db".into()).await;
    assert!(Arc::ptr_eq(&a, &b), "the same client is handed out");
    *a.calls.lock().unwrap() += 1;
    assert_eq!(a.name, "db");
    assert_eq!(CLIENTS.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = client("db".into()).await;
    assert!(!Arc::ptr_eq(&a, &c), "expired: a new client");
    assert_eq!(CLIENTS.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_async_callers_compute_once() {
    let calls: Vec<_> = (0..100)
        .map(|_| tokio::spawn(slow_with_status(7)))
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        let (v, status) = call.await.expect("task");
        assert_eq!(v, 14);
        statuses.push(status);
    }
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(
        statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
        1
    );
    assert!(slow_invalidate(7).await.expect("invalidate"));
    assert!(!slow_invalidate(7).await.expect("invalidate"));
    assert_eq!(slow_refresh(7).await, 14);
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(slow_with_status(7).await.1, CacheStatus::Hit);
    assert_eq!(slow_clear().await.expect("clear"), 1);
    assert_eq!(slow_with_status(7).await.1, CacheStatus::Miss);
}

#[test]
fn sync_callers_of_one_key_compute_once() {
    let threads: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(|| slow_square(9)))
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 81);
    }
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(slow_square_key(9), "square:9");
    assert!(slow_square_invalidate(9).expect("invalidate"));
    assert_eq!(slow_square_clear().expect("clear"), 0);
}

#[test]
fn the_memo_is_bounded() {
    for n in 0..10_000 {
        assert_eq!(bounded(n), n);
    }
    let held = bounded_clear().expect("clear");
    assert!(held <= 40, "at most about 10 entries: {held}");
}

#[test]
fn a_panicking_body_releases_the_waiters() {
    let first = std::thread::spawn(|| may_panic(1));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(may_panic(1), 1, "a waiter computes instead");
    assert!(first.join().is_err());
}

#[test]
fn results_store_only_ok() {
    assert_eq!(parse("12".into()), Ok(12));
    assert_eq!(parse("12".into()), Ok(12));
    assert!(parse("x".into()).is_err());
    assert!(parse("x".into()).is_err());
    assert_eq!(PARSES.load(Ordering::SeqCst), 3);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(parse("12".into()), Ok(12));
    assert_eq!(PARSES.load(Ordering::SeqCst), 4, "expired");
}
