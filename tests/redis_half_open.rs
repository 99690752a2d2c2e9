//! A Redis host that vanishes without a RST: a loopback proxy stops
//! forwarding and closes nothing, so the kernel keeps every socket open and
//! requests go unanswered. The cache (and a session store on its
//! connection) must fail within the command timeout, replace the dead
//! connection, and recover within seconds once traffic flows again, also
//! when the address now leads to a different Redis. Every remote operation
//! completes within its documented bound, including the `PUBLISH` of a
//! coherent write. Each test runs its own `redis-server`(s).
#![cfg(feature = "redis")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use covet::cache::{Cache, CacheBackend, MemoryBackend, RedisBackend, RedisCoherence, Tiered};
use covet_test::proxy::BlackHoleProxy;
use covet_test::{RedisProcess, Server};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// Slack for scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);

fn private_redis() -> Option<RedisProcess> {
    covet_test::require(Server::Redis)?;
    Some(RedisProcess::start().expect("starting redis-server"))
}

fn addr(p: &RedisProcess) -> SocketAddr {
    ([127, 0, 0, 1], p.port()).into()
}

async fn backend(url: &str) -> RedisBackend {
    RedisBackend::builder()
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(COMMAND_TIMEOUT)
        .circuit_breaker(3, Duration::from_millis(300))
        .build(url)
        .await
        .expect("connecting through the proxy")
}

/// Polls `f` until it is `true`, at most `limit`; how long it took.
async fn within<F, Fut>(limit: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_fails_in_time_and_is_replaced() {
    let Some(first) = private_redis() else { return };
    let proxy = BlackHoleProxy::start(addr(&first)).await;
    let redis = backend(&format!("redis://{}", proxy.addr())).await;
    redis.set("k", "one".into(), None).await.unwrap();
    assert_eq!(redis.reconnections(), 0);

    proxy.black_hole();
    for _ in 0..8 {
        let started = Instant::now();
        let err = redis.get("k").await.expect_err("nothing answers");
        assert!(
            started.elapsed() < COMMAND_TIMEOUT + SLACK,
            "failed after {:?}: {err}",
            started.elapsed()
        );
    }
    assert!(
        redis.reconnections() >= 1,
        "the dead connection was replaced"
    );

    // Traffic flows again: the old flow stays dead (as after a NAT reset),
    // a new connection works.
    proxy.forward_to(addr(&first));
    let took = within(Duration::from_secs(5), || async {
        matches!(redis.get("k").await, Ok(Some(v)) if v == "one")
    })
    .await;
    assert!(took.is_some(), "recovered within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reaches_the_redis_the_address_now_leads_to() {
    let Some(first) = private_redis() else { return };
    let second = RedisProcess::start().expect("a second redis-server");
    let direct = RedisBackend::connect(&second.url()).await.unwrap();
    direct.set("where", "second".into(), None).await.unwrap();

    let proxy = BlackHoleProxy::start(addr(&first)).await;
    let redis = backend(&format!("redis://{}", proxy.addr())).await;
    redis.set("where", "first".into(), None).await.unwrap();

    proxy.black_hole();
    assert!(redis.get("where").await.is_err());
    proxy.forward_to(addr(&second));
    let took = within(Duration::from_secs(5), || async {
        matches!(redis.get("where").await, Ok(Some(v)) if v == "second")
    })
    .await;
    assert!(took.is_some(), "reads reach the second redis within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_store_on_the_backend_connection_recovers_too() {
    use covet::session::store::Record;
    use covet::session::{RedisStore, SessionStore};

    let Some(first) = private_redis() else { return };
    let proxy = BlackHoleProxy::start(addr(&first)).await;
    let redis = backend(&format!("redis://{}", proxy.addr())).await;
    let store = RedisStore::builder()
        .key_prefix("half-open:")
        .from_backend(&redis);
    let record = Record::new(
        Default::default(),
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    let id = store.create(&record).await.unwrap();

    proxy.black_hole();
    for _ in 0..4 {
        let started = Instant::now();
        assert!(store.load(&id).await.is_err());
        assert!(started.elapsed() < COMMAND_TIMEOUT + SLACK);
    }
    proxy.forward_to(addr(&first));
    let took = within(Duration::from_secs(5), || async {
        matches!(store.load(&id).await, Ok(Some(_)))
    })
    .await;
    assert!(took.is_some(), "sessions load again within 5 s");
}

/// Every operation of the typed cache fails within the command timeout (or
/// at once, while the breaker is open) when nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_completes_within_its_bound() {
    let Some(first) = private_redis() else { return };
    let proxy = BlackHoleProxy::start(addr(&first)).await;
    let redis = RedisBackend::builder()
        .command_timeout(COMMAND_TIMEOUT)
        .circuit_breaker(0, Duration::ZERO) // every call pays the timeout
        .build(&format!("redis://{}", proxy.addr()))
        .await
        .unwrap();
    let cache = Cache::builder()
        .backend(redis.clone())
        .namespace("bounds")
        .build()
        .unwrap();
    proxy.black_hole();
    let bound = COMMAND_TIMEOUT + SLACK;
    macro_rules! bounded {
        ($what:literal, $op:expr) => {{
            let started = Instant::now();
            let outcome = $op.await;
            assert!(outcome.is_err(), "{} answered without a server", $what);
            assert!(
                started.elapsed() < bound,
                "{} took {:?}",
                $what,
                started.elapsed()
            );
        }};
    }
    bounded!("get", cache.get::<String>("k"));
    bounded!("set", cache.set("k", &1u32, None));
    bounded!("set with tags", cache.set_tagged("k", &1u32, None, &["t"]));
    bounded!("get_many", cache.get_many::<u32>(&["a", "b"]));
    bounded!("delete", cache.delete("k"));
    bounded!("delete_pattern", cache.delete_pattern("k*"));
    bounded!("clear", cache.clear());
    bounded!("incr", cache.incr("n", 1, None));
    bounded!("invalidate_tag", cache.invalidate_tag("t"));
    bounded!("exists", cache.exists("k"));
    bounded!(
        "lease",
        redis.lease_acquire("bounds:k", Duration::from_secs(1))
    );
}

/// A coherent write through a black-holed Redis: the L2 write fails within
/// the command timeout, and the `PUBLISH` that follows (the write may have
/// been applied) within the coherence timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coherent_write_and_its_publish_complete_within_their_bounds() {
    let Some(first) = private_redis() else { return };
    let proxy = BlackHoleProxy::start(addr(&first)).await;
    let url = format!("redis://{}", proxy.addr());
    let redis = backend(&url).await;
    let coherence_timeout = Duration::from_millis(300);
    let tiered = Tiered::builder(MemoryBackend::new(), redis)
        .coherence(
            RedisCoherence::new(&url)
                .unwrap()
                .timeout(coherence_timeout),
        )
        .connect()
        .await
        .unwrap();
    tiered.set("bounds:k", "v".into(), None).await.unwrap();
    proxy.black_hole();
    for _ in 0..4 {
        let started = Instant::now();
        assert!(tiered.set("bounds:k", "w".into(), None).await.is_err());
        let took = started.elapsed();
        assert!(
            took < COMMAND_TIMEOUT + coherence_timeout + SLACK,
            "a coherent write took {took:?}"
        );
    }
    let stats = tiered.coherence_stats().unwrap();
    assert!(stats.publish_errors >= 1, "{stats:?}");
}

/// A write that timed out after Redis applied it: the writer's `Tiered`
/// publishes its invalidation all the same, so another process does not
/// keep serving its old L1 copy for `l1_max_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_timed_out_but_applied_is_published() {
    let Some(redis) = private_redis() else { return };
    let proxy = BlackHoleProxy::start(addr(&redis)).await;
    let writer = Tiered::builder(
        MemoryBackend::new(),
        backend(&format!("redis://{}", proxy.addr())).await,
    )
    .coherence(RedisCoherence::new(&redis.url()).unwrap())
    .connect()
    .await
    .unwrap();
    let reader = Tiered::builder(
        MemoryBackend::new(),
        RedisBackend::connect(&redis.url()).await.unwrap(),
    )
    .coherence(RedisCoherence::new(&redis.url()).unwrap())
    .connect()
    .await
    .unwrap();

    writer.set("ns:k", "one".into(), None).await.unwrap();
    // The reader holds an L1 copy (once the writer's own invalidation,
    // which may arrive after the first read, went by).
    let copied = within(Duration::from_secs(2), || async {
        assert_eq!(reader.get("ns:k").await.unwrap().unwrap(), "one");
        matches!(reader.l1().get("ns:k").await, Ok(Some(v)) if v == "one")
    })
    .await;
    assert!(copied.is_some());

    // Requests reach Redis, replies never come back.
    proxy.drop_replies(addr(&redis));
    let err = writer
        .set("ns:k", "two".into(), None)
        .await
        .expect_err("the reply was lost");
    assert!(err.may_have_applied(), "{err}");
    let direct = RedisBackend::connect(&redis.url()).await.unwrap();
    assert_eq!(direct.get("ns:k").await.unwrap().unwrap(), "two");

    let seen = within(Duration::from_secs(2), || async {
        matches!(reader.get("ns:k").await, Ok(Some(v)) if v == "two")
    })
    .await;
    assert!(seen.is_some(), "the reader dropped its stale copy");
    let stats = writer.coherence_stats().unwrap();
    assert_eq!(stats.published_after_errors, 1, "{stats:?}");
    assert_eq!(stats.publish_errors, 0, "{stats:?}");
}

/// A lease request that Redis applied but whose answer was lost (timed out)
/// or whose caller went away: the lease is released in the background, not
/// left for its whole TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_answer_was_lost_is_released() {
    use covet::cache::lease::Lease;
    use std::sync::Arc;

    let Some(redis) = private_redis() else { return };
    let proxy = BlackHoleProxy::start(addr(&redis)).await;
    let through: Arc<dyn CacheBackend> =
        Arc::new(backend(&format!("redis://{}", proxy.addr())).await);
    let direct: Arc<dyn CacheBackend> =
        Arc::new(RedisBackend::connect(&redis.url()).await.unwrap());
    let ttl = Duration::from_secs(60);

    proxy.drop_replies(addr(&redis));
    // timed out after Redis took it
    let err = Lease::try_acquire(&through, "ns:job", ttl)
        .await
        .expect_err("the answer was lost");
    assert!(err.may_have_applied(), "{err}");
    let freed = within(Duration::from_secs(3), || async {
        matches!(
            Lease::try_acquire(&direct, "ns:job", ttl).await,
            Ok(Some(_))
        )
    })
    .await;
    assert!(
        freed.is_some(),
        "the lease was released, not orphaned for 60 s"
    );

    // cancelled while waiting for the answer
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        Lease::try_acquire(&through, "ns:other", ttl),
    )
    .await;
    assert!(cancelled.is_err(), "still waiting when cancelled");
    let freed = within(Duration::from_secs(3), || async {
        matches!(
            Lease::try_acquire(&direct, "ns:other", ttl).await,
            Ok(Some(_))
        )
    })
    .await;
    assert!(freed.is_some(), "a cancelled acquire leaves no orphan");
}
