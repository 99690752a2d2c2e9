//! Single-flight and lease faults of the miss path: a computation that asks
//! for its own key, failures that reach the waiters, an invalidation that
//! races a fill, a `Send` future for a non-`Send` error, and leases that
//! outlive a long computation or a cancelled acquire.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use covet::cache::{Cache, CacheBackend, ConfigError, MemoryBackend};
use tokio::time::timeout;

fn fresh(name: &str) -> Cache {
    Cache::builder()
        .namespace(covet_test::unique_namespace(name))
        .build()
        .unwrap()
}

// ---- re-entrance --------------------------------------------------------

static REENTRANT: LazyLock<Cache> = LazyLock::new(|| fresh("reentrant"));

/// Asks for its own key (the key names no argument) one level down.
#[covet::cached(key = "same", cache = REENTRANT)]
async fn countdown(depth: u32) -> u32 {
    if depth == 0 {
        7
    } else {
        Box::pin(countdown(depth - 1)).await + 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_asking_for_its_own_key_does_not_wait_on_itself() {
    let v = timeout(Duration::from_secs(5), countdown(3))
        .await
        .expect("the call waited on itself");
    assert_eq!(v, 10);
}

static SHARED_TEMPLATE: LazyLock<Cache> = LazyLock::new(|| fresh("template"));
static PROFILE_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "user:{id}", cache = SHARED_TEMPLATE)]
async fn user_page(id: u64) -> String {
    format!("page of {}", user_profile(id).await)
}

#[covet::cached(key = "user:{id}", cache = SHARED_TEMPLATE)]
async fn user_profile(id: u64) -> String {
    PROFILE_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("user {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fns_sharing_a_key_template_one_calling_the_other_return() {
    let page = timeout(Duration::from_secs(5), user_page(1))
        .await
        .expect("the outer fn waited on its own flight");
    assert_eq!(page, "page of user 1");
    assert_eq!(PROFILE_CALLS.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_insert_with_inside_its_own_init_computes_directly() {
    let cache = fresh("nested-init");
    let c2 = cache.clone();
    let v = timeout(
        Duration::from_secs(5),
        cache.get_or_insert_with("k", None, || async move {
            c2.get_or_insert_with("k", None, || async { 1u32 })
                .await
                .unwrap()
                + 1
        }),
    )
    .await
    .expect("hung")
    .unwrap();
    assert_eq!(v, 2);
}

// ---- failures reach the waiters -----------------------------------------

static FAILING: LazyLock<Cache> = LazyLock::new(|| fresh("failing"));
static FAILING_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "f:{n}", cache = FAILING)]
async fn fails_slowly(n: u64) -> Result<u64, String> {
    FAILING_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Err(format!("no {n}"))
}

/// 20 concurrent calls of a body that fails after 200 ms: one computation,
/// its error handed to the 19 others (it used to be 20 computations, one
/// after another: 4 s for the last caller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_callers_share_one_failure() {
    let first = tokio::spawn(fails_slowly(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rest: Vec<_> = (0..19).map(|_| tokio::spawn(fails_slowly(1))).collect();
    assert_eq!(first.await.unwrap(), Err("no 1".to_owned()));
    for t in rest {
        assert_eq!(t.await.unwrap(), Err("no 1".to_owned()));
    }
    assert_eq!(FAILING_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(FAILING.stats().coalesced, 19);
}

static OPAQUE: LazyLock<Cache> = LazyLock::new(|| fresh("opaque"));
static OPAQUE_RUNNING: AtomicU32 = AtomicU32::new(0);
static OPAQUE_MAX: AtomicU32 = AtomicU32::new(0);

/// Its error is not `Clone`: the waiters of a failed flight compute
/// themselves, all at once.
#[covet::cached(key = "o:{n}", cache = OPAQUE)]
async fn fails_opaquely(n: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let now = OPAQUE_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    OPAQUE_MAX.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    OPAQUE_RUNNING.fetch_sub(1, Ordering::SeqCst);
    Err(format!("no {n}").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_an_unshareable_failure_compute_side_by_side() {
    // `tokio::spawn` takes the future: it is `Send` although the error is not.
    let first = tokio::spawn(async { fails_opaquely(2).await.map_err(|e| e.to_string()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rest: Vec<_> = (0..9)
        .map(|_| tokio::spawn(async { fails_opaquely(2).await.map_err(|e| e.to_string()) }))
        .collect();
    assert_eq!(first.await.unwrap(), Err("no 2".to_owned()));
    for t in rest {
        assert_eq!(t.await.unwrap(), Err("no 2".to_owned()));
    }
    assert!(
        OPAQUE_MAX.load(Ordering::SeqCst) >= 2,
        "the waiters ran one at a time"
    );
}

static NONE: LazyLock<Cache> = LazyLock::new(|| fresh("none"));
static NONE_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "n:{n}", cache = NONE)]
async fn finds_nothing(n: u64) -> Option<u64> {
    NONE_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    (n == 0).then_some(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_none_is_handed_to_the_waiters() {
    let first = tokio::spawn(finds_nothing(3));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rest: Vec<_> = (0..9).map(|_| tokio::spawn(finds_nothing(3))).collect();
    assert_eq!(first.await.unwrap(), None);
    for t in rest {
        assert_eq!(t.await.unwrap(), None);
    }
    assert_eq!(NONE_CALLS.load(Ordering::SeqCst), 1);
}

// ---- invalidation racing a fill ------------------------------------------

static ROWS: LazyLock<Cache> = LazyLock::new(|| fresh("rows"));
static DB_ROW: AtomicU64 = AtomicU64::new(1);

/// Reads the "database", then takes its time.
#[covet::cached(key = "row:{id}", cache = ROWS)]
async fn row(id: u64) -> u64 {
    let v = DB_ROW.load(Ordering::SeqCst) * 100 + id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidate_during_a_slow_fill_wins() {
    let slow = tokio::spawn(row(1)); // reads version 1
    tokio::time::sleep(Duration::from_millis(100)).await;
    DB_ROW.store(2, Ordering::SeqCst);
    row_invalidate(1).await.unwrap(); // while the fill runs
    assert_eq!(
        slow.await.unwrap(),
        101,
        "the slow call returns what it read"
    );
    // ...but did not store it: the next call reads the new row.
    assert_eq!(row(1).await, 201);
    assert_eq!(row(1).await, 201);
    assert!(ROWS.stats().stale_fills >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_or_set_during_get_or_insert_with_wins() {
    let cache = fresh("set-race");
    let c2 = cache.clone();
    let slow = tokio::spawn(async move {
        c2.get_or_insert_with("k", None, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "old".to_owned()
        })
        .await
        .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cache.set("k", &"new".to_owned(), None).await.unwrap();
    assert_eq!(slow.await.unwrap(), "old");
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("new")
    );

    let c3 = cache.clone();
    cache.delete("k").await.unwrap();
    let slow = tokio::spawn(async move {
        c3.get_or_insert_with("k", None, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "stale".to_owned()
        })
        .await
        .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cache.delete("k").await.unwrap();
    slow.await.unwrap();
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
}

// ---- leases ------------------------------------------------------------

/// Two caches on one backend stand for two processes.
fn process(backend: &Arc<MemoryBackend>, ns: &str, ttl: Duration) -> Cache {
    Cache::builder()
        .shared_backend(backend.clone())
        .namespace(ns)
        .distributed_single_flight(true)
        .lease_ttl(ttl)
        .lease_wait(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_longer_than_its_lease_keeps_it() {
    let backend = Arc::new(MemoryBackend::new());
    let ns = covet_test::unique_namespace("long-lease");
    let ttl = Duration::from_millis(200);
    let a = process(&backend, &ns, ttl);
    let b = process(&backend, &ns, ttl);
    let computed = Arc::new(AtomicU32::new(0));
    let (c1, c2) = (computed.clone(), computed.clone());
    let slow = tokio::spawn(async move {
        a.get_or_insert_with("report", None, || async move {
            c1.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(ttl * 5).await; // five lease lifetimes
            1u32
        })
        .await
        .unwrap()
    });
    tokio::time::sleep(ttl * 2).await; // the lease would have expired
    let v = b
        .get_or_insert_with("report", None, || async move {
            c2.fetch_add(1, Ordering::SeqCst);
            2u32
        })
        .await
        .unwrap();
    assert_eq!(slow.await.unwrap(), 1);
    assert_eq!(v, 1, "the other process waited for the holder's value");
    assert_eq!(computed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lease_defaults_and_settings_are_consistent() {
    assert!(covet::cache::DEFAULT_LEASE_WAIT >= covet::cache::DEFAULT_LEASE_TTL);
    let err = Cache::builder()
        .lease_ttl(Duration::from_secs(30))
        .lease_wait(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::LeaseWaitTooShort { .. }),
        "{err}"
    );
    Cache::builder()
        .lease_ttl(Duration::from_secs(5))
        .lease_wait(Duration::from_secs(5))
        .build()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_acquire_leaves_no_orphan() {
    use covet::cache::lease::Lease;
    let backend: Arc<dyn CacheBackend> = Arc::new(MemoryBackend::new());
    // Cancelled right after it took the lease (the memory backend answers
    // at once, so dropping the returned lease is the same situation as a
    // caller going away between the request and the answer).
    let taken = Lease::try_acquire(&backend, "k", Duration::from_secs(60))
        .await
        .unwrap();
    drop(taken);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        Lease::try_acquire(&backend, "k", Duration::from_secs(60))
            .await
            .unwrap()
            .is_some(),
        "free well before its 60 s TTL"
    );
}
