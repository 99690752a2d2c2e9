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

/// Bounded by bytes: 64 KiB of 1 KiB strings.
#[covet::cached(local, max_bytes = "64 KiB")]
fn kilobyte(n: u64) -> String {
    format!("{n:>1024}")
}

#[test]
fn a_byte_bound_holds_about_that_many_bytes() {
    for n in 0..1_000 {
        assert_eq!(kilobyte(n).len(), 1024);
    }
    let memo = __covet_kilobyte_memo();
    let held = memo.stats().entries;
    // About 60 entries of 1 KiB and a few bytes of key; the store's
    // bound is split among its shards, so fewer may be held.
    assert!(
        (8..=70).contains(&held),
        "{held} entries of 1 KiB in 64 KiB"
    );
    // What is held is still answered; what was dropped is counted.
    assert_eq!(kilobyte(999).len(), 1024);
    let stats = memo.stats();
    assert!(stats.evictions >= 900, "{stats:?}");
}

/// Not `GetSize`: weighed by a fn of ours.
struct Blob(Vec<u8>);

impl Clone for Blob {
    fn clone(&self) -> Self {
        Blob(self.0.clone())
    }
}

fn blob_weight(blob: &Blob) -> usize {
    blob.0.len()
}

static BLOBS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(local, max_bytes = 8 * 1024, weigher = blob_weight)]
async fn blob(size: usize) -> Blob {
    BLOBS.fetch_add(1, Ordering::SeqCst);
    Blob(vec![7; size])
}

#[tokio::test]
async fn a_weigher_weighs_values_without_get_size() {
    assert_eq!(blob(100).await.0.len(), 100);
    assert_eq!(blob(100).await.0.len(), 100);
    assert_eq!(BLOBS.load(Ordering::SeqCst), 1, "a 100-byte value is held");
    // Heavier than the whole bound: returned, never held.
    assert_eq!(blob(64 * 1024).await.0.len(), 64 * 1024);
    assert_eq!(blob(64 * 1024).await.0.len(), 64 * 1024);
    assert_eq!(BLOBS.load(Ordering::SeqCst), 3);
}

static TOKENS: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Debug, PartialEq)]
struct Token {
    value: String,
    expires_in: Duration,
}

fn token_ttl(token: &Token) -> Option<Duration> {
    Some(token.expires_in)
}

/// Each token lives as long as it says; failures for 100 ms.
#[covet::cached(local, ttl = 60, value_ttl = token_ttl, cache_err = "100ms")]
fn token(scope: String) -> Result<Token, String> {
    TOKENS.fetch_add(1, Ordering::SeqCst);
    match scope.as_str() {
        "short" => Ok(Token {
            value: "s".into(),
            expires_in: Duration::from_millis(100),
        }),
        "long" => Ok(Token {
            value: "l".into(),
            expires_in: Duration::from_secs(60),
        }),
        _ => Err(format!("no scope {scope}")),
    }
}

#[test]
fn value_ttl_and_the_failure_ttl_apply_per_entry() {
    for scope in ["short", "long", "bad"] {
        let first = token(scope.into());
        assert_eq!(token(scope.into()), first, "{scope} is held");
    }
    assert_eq!(TOKENS.load(Ordering::SeqCst), 3);
    std::thread::sleep(Duration::from_millis(250));
    assert!(token("long".into()).is_ok());
    assert_eq!(
        TOKENS.load(Ordering::SeqCst),
        3,
        "the long token is still fresh"
    );
    assert!(token("short".into()).is_ok());
    assert!(token("bad".into()).is_err());
    assert_eq!(
        TOKENS.load(Ordering::SeqCst),
        5,
        "the short token and the error lived 100 ms, not the fn's minute"
    );
}

static NONES: AtomicU32 = AtomicU32::new(0);

/// `None` for 100 ms, `Some` for the fn's TTL, TTLs cut by up to 20 %.
#[covet::cached(local, ttl = 60, cache_none = "100ms", jitter = "20%")]
async fn lookup_user(id: u32) -> Option<String> {
    NONES.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

#[tokio::test]
async fn cache_none_has_its_own_ttl_on_a_local_memo() {
    assert_eq!(lookup_user(1).await, None);
    assert_eq!(lookup_user(1).await, None);
    assert_eq!(lookup_user(2).await.as_deref(), Some("user 2"));
    assert_eq!(NONES.load(Ordering::SeqCst), 2, "None is held too");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(lookup_user(2).await.as_deref(), Some("user 2"));
    assert_eq!(
        NONES.load(Ordering::SeqCst),
        2,
        "Some lives for the fn's TTL"
    );
    assert_eq!(lookup_user(1).await, None);
    assert_eq!(NONES.load(Ordering::SeqCst), 3, "None expired after 100 ms");
}
