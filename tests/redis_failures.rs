//! The Redis backend when Redis goes away: typed errors that keep their
//! source, per-command timeouts, a circuit breaker that fails fast and
//! closes by itself, and `#[cached]` that keeps answering (fail open).
//! Each test runs its own `redis-server` on a free loopback port, killed,
//! frozen or restarted on that same port.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use covet::cache::{Cache, CacheBackend, CircuitOpen, Error, RedisBackend};
use covet_test::{RedisProcess, Server};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const THRESHOLD: u32 = 3;
const COOL_DOWN: Duration = Duration::from_millis(400);

/// A private server, or `None` when redis-server is missing (a panic under CI).
fn private_redis() -> Option<RedisProcess> {
    // The same rule as for the shared server: never silently skipped in CI.
    covet_test::require(Server::Redis)?;
    Some(RedisProcess::start().expect("starting redis-server"))
}

async fn backend(url: &str) -> RedisBackend {
    RedisBackend::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .command_timeout(COMMAND_TIMEOUT)
        .circuit_breaker(THRESHOLD, COOL_DOWN)
        .build(url)
        .await
        .expect("connecting to the private redis")
}

fn assert_redis_error(err: &Error) {
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        std::error::Error::source(err).is_some(),
        "source kept: {err:?}"
    );
}

fn is_circuit_open(err: &Error) -> bool {
    std::error::Error::source(err).is_some_and(|s| s.is::<CircuitOpen>())
}

/// Polls until `f` succeeds (Redis is back and the breaker closed), at most `limit`.
async fn until_ok<F, Fut, T>(limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = covet::cache::Result<T>>,
{
    let start = Instant::now();
    loop {
        if f().await.is_ok() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "did not recover within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_on_the_same_port() {
    let Some(mut server) = private_redis() else {
        return;
    };
    let port = server.port();
    let redis = backend(&server.url()).await;
    redis.set("k", "v".into(), None).await.unwrap();
    assert_eq!(redis.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    server.kill();
    // every operation fails with a typed error, none panics
    let err = redis.get("k").await.unwrap_err();
    assert_redis_error(&err);
    assert_redis_error(&redis.set("k", "v".into(), None).await.unwrap_err());
    assert_redis_error(&redis.get_many(&["a", "b"]).await.unwrap_err());
    assert_redis_error(&redis.delete_pattern("k*").await.unwrap_err());
    assert_redis_error(&redis.incr("n", 1, None).await.unwrap_err());
    assert_redis_error(
        &redis
            .lease_acquire("k", Duration::from_secs(1))
            .await
            .unwrap_err(),
    );
    // by now the breaker is open: calls fail at once, without the network
    assert!(redis.is_circuit_open());
    for _ in 0..20 {
        let start = Instant::now();
        let err = redis.exists("k").await.unwrap_err();
        let took = start.elapsed();
        assert_redis_error(&err);
        assert!(is_circuit_open(&err), "{err:?}");
        assert!(took < Duration::from_millis(20), "{took:?}");
    }
    let shown = redis.get("k").await.unwrap_err().to_string();
    assert!(shown.contains("redis"), "{shown}");

    // Redis comes back on the same port: the backend recovers by itself
    let _server = RedisProcess::start_on(port).expect("restarting redis-server");
    let took = until_ok(Duration::from_secs(5), || redis.exists("k")).await;
    assert!(!redis.is_circuit_open());
    assert!(took < COOL_DOWN * 3, "recovered after {took:?}");
    redis.set("k", "again".into(), None).await.unwrap();
    assert_eq!(
        redis.get("k").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_costs_the_timeout_only_until_the_breaker_opens() {
    let Some(server) = private_redis() else {
        return;
    };
    let redis = backend(&server.url()).await;
    redis.set("k", "v".into(), None).await.unwrap();

    server.pause();
    // each call waits for the command timeout...
    for _ in 0..THRESHOLD {
        let start = Instant::now();
        let err = redis.get("k").await.unwrap_err();
        let took = start.elapsed();
        assert_redis_error(&err);
        assert!(
            err.to_string().contains("timed out"),
            "{err:?} after {took:?}"
        );
        assert!(
            took >= COMMAND_TIMEOUT - Duration::from_millis(20) && took < CONNECT_TIMEOUT,
            "{took:?}"
        );
    }
    // ...until the breaker opens; then calls return at once
    assert!(redis.is_circuit_open());
    let start = Instant::now();
    for _ in 0..100 {
        assert!(is_circuit_open(&redis.get("k").await.unwrap_err()));
    }
    assert!(
        start.elapsed() < CONNECT_TIMEOUT,
        "100 calls took {:?}",
        start.elapsed()
    );
    // after the cool-down, one probe goes out (and times out again)
    tokio::time::sleep(COOL_DOWN).await;
    let start = Instant::now();
    let err = redis.get("k").await.unwrap_err();
    assert!(
        !is_circuit_open(&err),
        "the probe reached the network: {err}"
    );
    assert!(start.elapsed() >= COMMAND_TIMEOUT - Duration::from_millis(20));
    assert!(redis.is_circuit_open());

    server.resume();
    until_ok(Duration::from_secs(5), || redis.get("k")).await;
    assert!(!redis.is_circuit_open());
    assert_eq!(redis.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_with_a_typed_error() {
    if covet_test::require(Server::Redis).is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{}", covet_test::free_port());
    let start = Instant::now();
    let err = RedisBackend::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build(&url)
        .await
        .unwrap_err();
    assert_redis_error(&err);
    assert!(
        start.elapsed() < CONNECT_TIMEOUT * 3,
        "{:?}",
        start.elapsed()
    );
    let err = RedisBackend::connect("not a url").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    let err = RedisBackend::connect_cluster::<&str>(&[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_backend_starts_while_redis_is_down() {
    if covet_test::require(Server::Redis).is_none() {
        return;
    }
    let port = covet_test::free_port();
    let redis = RedisBackend::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .command_timeout(COMMAND_TIMEOUT)
        .circuit_breaker(THRESHOLD, COOL_DOWN)
        .lazy(true)
        .build(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect("a lazy backend does not connect in build");
    let cache = Cache::builder()
        .backend(redis.clone())
        .namespace(covet_test::unique_namespace("lazy"))
        .build()
        .unwrap();
    assert_redis_error(&cache.set("k", &1u8, None).await.unwrap_err());
    assert_eq!(
        cache
            .get_or_insert_with("k", None, || async { 2u8 })
            .await
            .unwrap(),
        2,
        "fails open"
    );
    let _server = RedisProcess::start_on(port).expect("starting redis-server");
    until_ok(Duration::from_secs(5), || cache.set("k", &3u8, None)).await;
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(3));
}

/// A service whose method is cached in a Redis-backed cache.
struct Service {
    cache: Cache,
    runs: AtomicU32,
}

impl Service {
    #[covet::cached(cache = self.cache, key = "square:{n}", ttl = 60)]
    async fn square(&self, n: u64) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        n * n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_fn_runs_its_body_while_redis_is_down() {
    let Some(mut server) = private_redis() else {
        return;
    };
    let port = server.port();
    let redis = backend(&server.url()).await;
    let svc = Service {
        cache: Cache::builder()
            .backend(redis.clone())
            .namespace(covet_test::unique_namespace("failopen"))
            .build()
            .unwrap(),
        runs: AtomicU32::new(0),
    };
    assert_eq!(svc.square(7).await, 49);
    assert_eq!(svc.square(7).await, 49);
    assert_eq!(svc.runs.load(Ordering::SeqCst), 1, "second call was a hit");
    assert_eq!(svc.cache.stats().errors, 0);

    server.kill();
    let start = Instant::now();
    for _ in 0..10 {
        assert_eq!(svc.square(7).await, 49);
    }
    assert_eq!(
        svc.runs.load(Ordering::SeqCst),
        11,
        "the body ran each time"
    );
    assert!(
        start.elapsed() < CONNECT_TIMEOUT * 2,
        "{:?}",
        start.elapsed()
    );
    let s = svc.cache.stats();
    assert!(s.errors >= 10, "{s:?}");
    assert!(redis.is_circuit_open());
    // the typed API reports the failure
    let err = svc.cache.get::<u64>("square:7").await.unwrap_err();
    assert_redis_error(&err);

    let _server = RedisProcess::start_on(port).expect("restarting redis-server");
    until_ok(Duration::from_secs(5), || svc.cache.exists("x")).await;
    // back to caching: the restarted server is empty, so one more run, then hits
    let runs = svc.runs.load(Ordering::SeqCst);
    assert_eq!(svc.square(7).await, 49);
    assert_eq!(svc.square(7).await, 49);
    assert_eq!(svc.runs.load(Ordering::SeqCst), runs + 1);
}
