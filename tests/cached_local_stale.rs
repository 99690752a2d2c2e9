//! A local memo around a miss: stale-while-revalidate, stale-if-error and
//! refresh-ahead, on async and sync fns.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use covet::cache::CacheStatus;

/// Polls `done` until it holds, for at most five seconds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

static PRICE_RUNS: AtomicU32 = AtomicU32::new(0);
static PRICE_GATE: AtomicBool = AtomicBool::new(false);

/// Each run answers its own generation; refreshes wait for the gate.
#[covet::cached(local, ttl = "100ms", stale_while_revalidate = "1m")]
async fn price(item: u32) -> u32 {
    let run = PRICE_RUNS.fetch_add(1, Ordering::SeqCst);
    if run > 0 {
        eventually("the gate opens", || PRICE_GATE.load(Ordering::SeqCst)).await;
    }
    item * 1000 + run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stale_answers_at_once_and_one_background_refresh_runs() {
    assert_eq!(price_with_status(1).await, (1000, CacheStatus::Miss));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // 50 callers of the stale entry: all answered with it, one refresh.
    let calls: Vec<_> = (0..50)
        .map(|_| tokio::spawn(price_with_status(1)))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), (1000, CacheStatus::Stale));
    }
    PRICE_GATE.store(true, Ordering::SeqCst);
    eventually("the refresh stored its value", || {
        __covet_price_memo().get(&(1,)) == Some(1001)
    })
    .await;
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 2, "one refresh");
    assert_eq!(price_with_status(1).await, (1001, CacheStatus::Hit));
    let stats = price_stats();
    assert_eq!(stats.stale, 50);
    assert_eq!(stats.refreshes, 1);
    assert_eq!(__covet_price_memo().stats().stale, 50);
}

/// Holds a refresh until the test opens it (at most five seconds).
struct Gate(AtomicBool);

impl Gate {
    const fn new() -> Gate {
        Gate(AtomicBool::new(false))
    }

    fn wait(&self) {
        let start = Instant::now();
        while !self.0.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Blocks until `runs` reaches `n` (at most five seconds).
fn wait_for(runs: &AtomicU32, n: u32) {
    let start = Instant::now();
    while runs.load(Ordering::SeqCst) < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "run {n} never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

static RATE_RUNS: AtomicU32 = AtomicU32::new(0);
static RATE_GATE: Gate = Gate::new();

/// A sync fn: the caller that finds the entry stale refreshes it in its
/// call; the others answer with the stale value at once.
#[covet::cached(ttl = "100ms", stale_while_revalidate = "1m")]
fn rate(currency: String) -> u32 {
    let run = RATE_RUNS.fetch_add(1, Ordering::SeqCst);
    if run > 0 {
        RATE_GATE.wait();
    }
    currency.len() as u32 * 100 + run
}

#[test]
fn a_sync_refresh_runs_in_the_call_that_finds_the_entry_stale() {
    assert_eq!(rate_with_status("EUR".into()), (300, CacheStatus::Miss));
    std::thread::sleep(Duration::from_millis(150));
    let refresher = std::thread::spawn(|| rate_with_status("EUR".into()));
    wait_for(&RATE_RUNS, 2);
    // The refresh is held: this answer does not wait for it.
    assert_eq!(rate_with_status("EUR".into()), (300, CacheStatus::Stale));
    assert!(!refresher.is_finished());
    RATE_GATE.open();
    assert_eq!(refresher.join().unwrap(), (301, CacheStatus::Refreshed));
    assert_eq!(rate_with_status("EUR".into()), (301, CacheStatus::Hit));
    assert_eq!(RATE_RUNS.load(Ordering::SeqCst), 2);
}

static FEED_DOWN: AtomicBool = AtomicBool::new(false);
static FEED_RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(local, ttl = "100ms", stale_if_error = "1m")]
async fn feed(name: String) -> Result<String, String> {
    let run = FEED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    if FEED_DOWN.load(Ordering::SeqCst) {
        Err(format!("{name} is down"))
    } else {
        Ok(format!("{name} #{run}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_expiry_answers_with_the_old_value() {
    assert_eq!(
        feed_with_status("news".into()).await,
        (Ok("news #0".into()), CacheStatus::Miss)
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    FEED_DOWN.store(true, Ordering::SeqCst);
    // 20 callers of the expired entry: one computation, which fails; all
    // are answered with the old value.
    let calls: Vec<_> = (0..20)
        .map(|_| tokio::spawn(feed_with_status("news".into())))
        .collect();
    for call in calls {
        assert_eq!(
            call.await.unwrap(),
            (Ok("news #0".into()), CacheStatus::Stale)
        );
    }
    assert_eq!(
        FEED_RUNS.load(Ordering::SeqCst),
        2,
        "one computation for 20 callers"
    );
    // The next call tries again; once the source is back, the new value.
    FEED_DOWN.store(false, Ordering::SeqCst);
    assert_eq!(
        feed_with_status("news".into()).await,
        (Ok("news #2".into()), CacheStatus::Refreshed)
    );
    assert_eq!(
        feed_with_status("news".into()).await,
        (Ok("news #2".into()), CacheStatus::Hit)
    );
    // Without an entry to fall back on, a failure is the answer.
    FEED_DOWN.store(true, Ordering::SeqCst);
    assert_eq!(
        feed_with_status("sport".into()).await.0,
        Err("sport is down".into())
    );
    let stats = feed_stats();
    assert_eq!(stats.stale, 20);
    assert!(stats.errors >= 2, "{stats:?}");
}

static TOKEN_RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(local, ttl = "2s", refresh_ahead = "1900ms")]
async fn token(scope: u8) -> u32 {
    TOKEN_RUNS.fetch_add(1, Ordering::SeqCst) + u32::from(scope)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_its_end_the_first_call_refreshes_in_the_background() {
    assert_eq!(token_with_status(0).await, (0, CacheStatus::Miss));
    assert_eq!(token_with_status(0).await, (0, CacheStatus::Hit));
    assert_eq!(TOKEN_RUNS.load(Ordering::SeqCst), 1, "not near its end yet");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(token_with_status(0).await, (0, CacheStatus::Hit));
    eventually("the refresh ahead stored its value", || {
        __covet_token_memo().get(&(0,)) == Some(1)
    })
    .await;
    assert_eq!(TOKEN_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(token_with_status(0).await, (1, CacheStatus::Hit));
}

static REPORT_RUNS: AtomicU32 = AtomicU32::new(0);
static REPORT_GATE: Gate = Gate::new();

#[covet::cached(ttl = "50ms", stale_while_revalidate = "1m")]
fn report(id: u32) -> u32 {
    let run = REPORT_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 1 {
        REPORT_GATE.wait();
    }
    id + run
}

#[test]
fn an_invalidation_during_a_refresh_keeps_its_value_out() {
    assert_eq!(report(10), 10);
    std::thread::sleep(Duration::from_millis(100));
    let refresher = std::thread::spawn(|| report_with_status(10));
    wait_for(&REPORT_RUNS, 2);
    // `false`: what it removed was not fresh.
    assert!(!report_invalidate(10).unwrap());
    REPORT_GATE.open();
    // The refresh started before the invalidation: returned, not stored.
    assert_eq!(refresher.join().unwrap(), (11, CacheStatus::Refreshed));
    assert_eq!(report_with_status(10), (12, CacheStatus::Miss));
    assert_eq!(__covet_report_memo().stats().stale_fills, 1);
}

/// A method: its refresh cannot move to another task and runs in the call.
struct Catalog {
    base: u32,
}

static CATALOG_RUNS: AtomicU32 = AtomicU32::new(0);

impl Catalog {
    #[covet::cached(
        local,
        key = "catalog:{id}",
        ttl = "50ms",
        stale_while_revalidate = "1m"
    )]
    async fn item(&self, id: u32) -> u32 {
        self.base + id + CATALOG_RUNS.fetch_add(1, Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_method_refreshes_in_the_call() {
    let catalog = Catalog { base: 100 };
    assert_eq!(catalog.item_with_status(1).await, (101, CacheStatus::Miss));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        catalog.item_with_status(1).await,
        (102, CacheStatus::Refreshed)
    );
    assert_eq!(catalog.item_with_status(1).await, (102, CacheStatus::Hit));
}
