//! `Tiered` when Redis goes away: L1 hits continue, a lost subscription
//! flushes L1 and comes back by itself. Each test kills and restarts a
//! private `redis-server` on a free port.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use covet::cache::{
    Cache, CacheBackend, KeyTtl, MemoryBackend, RedisBackend, RedisCoherence, Tiered,
};
use covet_test::{RedisProcess, Server, require, unique_namespace};

/// Polls `check` for at most `limit`.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

fn private_redis() -> Option<RedisProcess> {
    // The harness's redis-server binary is what the machine's Redis runs.
    require(Server::Redis)?;
    Some(RedisProcess::start().expect("starting a private redis-server"))
}

fn coherence(url: &str) -> RedisCoherence {
    RedisCoherence::new(url)
        .unwrap()
        .timeout(Duration::from_millis(300))
        .ping_interval(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn cache_over(tiered: &Tiered<MemoryBackend, RedisBackend>, ns: &str) -> Cache {
    Cache::builder()
        .backend(tiered.clone())
        .namespace(ns)
        .build()
        .unwrap()
}

async fn assert_l1_hits_while_down(cache: &Cache) {
    for _ in 0..100 {
        let start = Instant::now();
        assert_eq!(
            cache.get::<String>("k").await.unwrap().as_deref(),
            Some("v")
        );
        assert!(
            start.elapsed() < Duration::from_millis(20),
            "an L1 hit waited"
        );
    }
    // a miss has to ask Redis: an error, quickly, never a panic
    let start = Instant::now();
    assert!(cache.get::<String>("missing").await.is_err());
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_continue_while_l2_is_down() {
    let Some(mut redis) = private_redis() else {
        return;
    };
    let l2 = RedisBackend::connect(&redis.url()).await.unwrap();
    let tiered = Tiered::builder(MemoryBackend::new(), l2)
        .without_coherence()
        .build()
        .unwrap();
    let cache = cache_over(&tiered, &unique_namespace("tiered-down")).await;
    cache.set("k", &"v".to_string(), None).await.unwrap();
    redis.kill();
    assert_l1_hits_while_down(&cache).await;
    assert!(cache.set("k", &"w".to_string(), None).await.is_err());
    assert_eq!(
        cache.get::<String>("k").await.ok().flatten(),
        None,
        "a failed write leaves no copy behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_continue_while_l2_is_down_with_coherence_on_another_redis() {
    let Some(mut redis) = private_redis() else {
        return;
    };
    let shared = require(Server::Redis).unwrap();
    let l2 = RedisBackend::connect(&redis.url()).await.unwrap();
    let tiered = Tiered::builder(MemoryBackend::new(), l2)
        .coherence(coherence(&shared).channel_prefix(format!(
            "covet:invalidate-test:{}:",
            unique_namespace("down2")
        )))
        .connect()
        .await
        .unwrap();
    let cache = cache_over(&tiered, &unique_namespace("tiered-down2")).await;
    cache.set("k", &"v".to_string(), None).await.unwrap();
    redis.kill();
    assert_l1_hits_while_down(&cache).await;
    assert!(tiered.coherence_stats().unwrap().subscribed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_l1_while_disconnected_serves_hits_through_an_outage() {
    let Some(mut redis) = private_redis() else {
        return;
    };
    let port = redis.port();
    let url = redis.url();
    let l2 = RedisBackend::connect(&url).await.unwrap();
    let tiered = Tiered::builder(MemoryBackend::new(), l2)
        .coherence(coherence(&url).keep_l1_while_disconnected(true))
        .connect()
        .await
        .unwrap();
    let cache = cache_over(&tiered, &unique_namespace("tiered-keep")).await;
    cache.set("k", &"v".to_string(), None).await.unwrap();
    redis.kill();
    assert!(
        within(Duration::from_secs(3), async || {
            tiered.coherence_stats().unwrap().losses == 1
        })
        .await,
        "the loss is detected"
    );
    assert_l1_hits_while_down(&cache).await;
    // back: L1 is flushed then (invalidations may have been missed)
    let _redis = RedisProcess::start_on(port).unwrap();
    assert!(
        within(Duration::from_secs(10), async || {
            tiered.coherence_stats().unwrap().subscriptions == 2
        })
        .await
    );
    assert!(
        !tiered
            .l1()
            .exists(&format!("{}:k", cache.namespace()))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_flushes_l1_and_comes_back() {
    let Some(mut redis) = private_redis() else {
        return;
    };
    let port = redis.port();
    let url = redis.url();
    let ns = unique_namespace("tiered-loss");
    let start = |url: String| async move {
        let l2 = RedisBackend::connect(&url).await.unwrap();
        Tiered::builder(MemoryBackend::new(), l2)
            .coherence(coherence(&url))
            .connect()
            .await
            .unwrap()
    };
    let (ta, tb) = (start(url.clone()).await, start(url.clone()).await);
    let (a, b) = (cache_over(&ta, &ns).await, cache_over(&tb, &ns).await);
    a.set("k", &"v1".to_string(), None).await.unwrap();
    assert!(
        within(Duration::from_secs(2), async || tb
            .coherence_stats()
            .unwrap()
            .received
            == 1)
        .await
    );
    assert_eq!(b.get::<String>("k").await.unwrap().as_deref(), Some("v1"));
    let key = format!("{ns}:k");
    assert!(tb.l1().exists(&key).await.unwrap());

    redis.kill();
    let detected = Instant::now();
    assert!(
        within(Duration::from_secs(3), async || {
            let (sa, sb) = (ta.coherence_stats().unwrap(), tb.coherence_stats().unwrap());
            sa.losses == 1 && sb.losses == 1 && !sa.subscribed && !sb.subscribed
        })
        .await,
        "the loss is detected"
    );
    eprintln!("loss detected after {:?}", detected.elapsed());
    assert!(!tb.l1().exists(&key).await.unwrap(), "L1 flushed on loss");
    assert!(!ta.l1().exists(&key).await.unwrap(), "L1 flushed on loss");
    assert!(
        b.get::<String>("k").await.is_err(),
        "no stale hit, no panic"
    );

    let _redis = RedisProcess::start_on(port).unwrap();
    let back = Instant::now();
    assert!(
        within(Duration::from_secs(10), async || {
            let (sa, sb) = (ta.coherence_stats().unwrap(), tb.coherence_stats().unwrap());
            sa.subscribed && sb.subscribed && sb.subscriptions == 2
        })
        .await,
        "resubscribed: {:?}",
        tb.coherence_stats()
    );
    eprintln!("resubscribed {:?} after the restart", back.elapsed());
    // the data path recovers too (the reconnecting backend, its breaker)
    assert!(
        within(Duration::from_secs(10), async || {
            a.set("k", &"v2".to_string(), None).await.is_ok()
        })
        .await
    );
    assert!(
        within(Duration::from_secs(2), async || {
            b.get::<String>("k").await.ok().flatten().as_deref() == Some("v2")
                && tb.l1().exists(&key).await.unwrap()
        })
        .await
    );
    // and coherence works again
    a.set("k", &"v3".to_string(), None).await.unwrap();
    assert!(
        within(Duration::from_secs(2), async || {
            b.get::<String>("k").await.ok().flatten().as_deref() == Some("v3")
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_channel_is_down_copies_live_at_most_disconnected_l1_ttl() {
    let Some(mut bus) = private_redis() else {
        return;
    };
    let shared = require(Server::Redis).unwrap();
    let ns = unique_namespace("tiered-partition");
    let bus_url = bus.url();
    let start = || async {
        let l2 = RedisBackend::connect(&shared).await.unwrap();
        Tiered::builder(MemoryBackend::new(), l2)
            .coherence(coherence(&bus_url))
            .disconnected_l1_ttl(Duration::from_millis(300))
            .connect()
            .await
            .unwrap()
    };
    let (ta, tb) = (start().await, start().await);
    let (a, b) = (cache_over(&ta, &ns).await, cache_over(&tb, &ns).await);
    // the channel goes away, L2 stays: a partition between the two
    bus.kill();
    assert!(
        within(Duration::from_secs(3), async || {
            !ta.coherence_stats().unwrap().subscribed && !tb.coherence_stats().unwrap().subscribed
        })
        .await
    );
    a.set("k", &"v1".to_string(), None).await.unwrap();
    assert_eq!(b.get::<String>("k").await.unwrap().as_deref(), Some("v1"));
    let KeyTtl::Expires(ttl) = tb.l1().ttl(&format!("{ns}:k")).await.unwrap() else {
        panic!("a short-lived copy");
    };
    assert!(ttl <= Duration::from_millis(300), "{ttl:?}");
    // A's write is not announced (publish fails and is counted) ...
    a.set("k", &"v2".to_string(), None).await.unwrap();
    assert!(ta.coherence_stats().unwrap().publish_errors >= 1);
    // ... yet B sees it once its short-lived copy expires
    assert!(
        within(Duration::from_millis(600), async || {
            b.get::<String>("k").await.unwrap().as_deref() == Some("v2")
        })
        .await
    );
    a.clear().await.unwrap();
}

#[test]
fn tiers_outliving_their_runtime_resubscribe_from_the_next_one() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let ns = unique_namespace("tiered-runtimes");
    let first = tokio::runtime::Runtime::new().unwrap();
    let (tiered, cache) = first.block_on(async {
        let l2 = RedisBackend::connect(&url).await.unwrap();
        let tiered = Tiered::builder(MemoryBackend::new(), l2)
            .coherence(coherence(&url))
            .connect()
            .await
            .unwrap();
        let cache = cache_over(&tiered, &ns).await;
        cache.set("k", &"v".to_string(), None).await.unwrap();
        (tiered, cache)
    });
    assert!(tiered.coherence_stats().unwrap().subscribed);
    // the subscriber task dies with its runtime
    drop(first);
    assert!(!tiered.coherence_stats().unwrap().subscribed);
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        // an operation that reaches the tiers (here: waiting for the
        // subscription) starts a new subscriber on this runtime
        assert!(tiered.wait_subscribed(Duration::from_secs(2)).await);
        assert_eq!(tiered.coherence_stats().unwrap().subscriptions, 2);
        cache.clear().await.unwrap();
    });
}
