//! Coherence of `Tiered<MemoryBackend, RedisBackend>` across processes,
//! against the real Redis: two `Cache`s, each with its own L1 and its own
//! Redis connections, in one namespace, stand in for two processes.
//!
//! Each test publishes on a channel prefix of its own, so the counters it
//! reads are not disturbed by the other tests running at the same time.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use covet::cache::{
    Cache, CacheBackend, KeyTtl, MemoryBackend, RedisBackend, RedisCoherence, Tiered,
};
use covet_test::{Server, require, unique_namespace};

type Tier = Tiered<MemoryBackend, RedisBackend>;

const MS: Duration = Duration::from_millis(1);

/// One "process": its own L1, its own Redis connections.
struct Process {
    cache: Cache,
    tiered: Tier,
}

impl Process {
    async fn start(url: &str, namespace: &str) -> Process {
        let redis = RedisBackend::connect(url)
            .await
            .expect("connecting to Redis");
        let coherence = RedisCoherence::new(url)
            .unwrap()
            .channel_prefix(format!("covet:invalidate-test:{namespace}:"));
        let tiered = Tiered::builder(MemoryBackend::new(), redis)
            .coherence(coherence)
            .connect()
            .await
            .expect("subscribing");
        let cache = Cache::builder()
            .backend(tiered.clone())
            .namespace(namespace)
            .build()
            .unwrap();
        Process { cache, tiered }
    }

    /// Whether this process holds an L1 copy of the user key.
    async fn in_l1(&self, key: &str) -> bool {
        let full = format!("{}:{key}", self.cache.namespace());
        self.tiered.l1().exists(&full).await.unwrap()
    }

    /// Waits until this process has received `n` invalidations: a read
    /// racing with the invalidation of the same key keeps no L1 copy, so
    /// tests that check copies let the messages arrive first.
    async fn received(&self, n: u64) {
        within_2s(async || self.tiered.coherence_stats().unwrap().received >= n)
            .await
            .expect("invalidations arrive");
    }

    async fn get(&self, key: &str) -> Option<String> {
        self.cache.get::<String>(key).await.unwrap()
    }
}

async fn two_processes(test: &str) -> Option<(Process, Process)> {
    let url = require(Server::Redis)?;
    let ns = unique_namespace(test);
    let a = Process::start(&url, &ns).await;
    let b = Process::start(&url, &ns).await;
    Some((a, b))
}

/// Polls `check` for at most 2 s; how long it took until it held.
async fn within_2s(mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_one_process_replaces_the_other_processes_copy() {
    let Some((a, b)) = two_processes("tiered-write").await else {
        return;
    };
    a.cache.set("k", &"v1".to_string(), None).await.unwrap();
    b.received(1).await;
    assert_eq!(b.get("k").await.as_deref(), Some("v1"));
    assert!(b.in_l1("k").await, "B read through into its L1");
    a.cache.set("k", &"v2".to_string(), None).await.unwrap();
    let took = within_2s(async || b.get("k").await.as_deref() == Some("v2"))
        .await
        .expect("B sees A's write");
    eprintln!("write seen by the other process after {took:?}");
    // and the other way round, through get_or_insert_with's store
    b.cache.delete("k").await.unwrap();
    let v = b
        .cache
        .get_or_insert_with("k", None, || async { "v3".to_string() })
        .await
        .unwrap();
    assert_eq!(v, "v3");
    within_2s(async || a.get("k").await.as_deref() == Some("v3"))
        .await
        .expect("A sees B's write");
    // each receives the other's two messages, never its own
    let stats = || {
        (
            a.tiered.coherence_stats().unwrap(),
            b.tiered.coherence_stats().unwrap(),
        )
    };
    within_2s(async || {
        let (sa, sb) = stats();
        (sa.received, sb.received) == (2, 2)
    })
    .await
    .unwrap_or_else(|| panic!("{:?}", stats()));
    let (sa, sb) = stats();
    assert!(sa.subscribed && sb.subscribed);
    assert_eq!((sa.published, sb.published), (2, 2), "{sa:?} {sb:?}");
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reach_the_other_process() {
    let Some((a, b)) = two_processes("tiered-delete").await else {
        return;
    };
    a.cache.set("k", &"v".to_string(), None).await.unwrap();
    a.cache
        .set_many(&[("m1", "1".to_string()), ("m2", "2".to_string())], None)
        .await
        .unwrap();
    b.received(2).await;
    for k in ["k", "m1", "m2"] {
        assert!(b.get(k).await.is_some());
        assert!(b.in_l1(k).await);
    }
    assert!(a.cache.delete("k").await.unwrap());
    within_2s(async || !b.in_l1("k").await)
        .await
        .expect("B drops its copy");
    assert_eq!(b.get("k").await, None);
    // a counter written by A
    let counter = b.cache.incr("n", 1, None).await.unwrap();
    assert_eq!(a.cache.incr("n", 1, None).await.unwrap(), counter + 1);
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_deletes_reach_the_other_process() {
    let Some((a, b)) = two_processes("tiered-pattern").await else {
        return;
    };
    for k in ["user:1", "user:2", "team:1"] {
        a.cache.set(k, &k.to_string(), None).await.unwrap();
    }
    b.received(3).await;
    for k in ["user:1", "user:2", "team:1"] {
        assert!(b.get(k).await.is_some());
        assert!(b.in_l1(k).await);
    }
    assert_eq!(a.cache.delete_pattern("user:*").await.unwrap(), 2);
    within_2s(async || !b.in_l1("user:1").await && !b.in_l1("user:2").await)
        .await
        .expect("B drops the matching copies");
    assert!(b.in_l1("team:1").await, "a copy that does not match stays");
    assert_eq!(b.get("user:1").await, None);
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_invalidations_reach_the_other_process() {
    let Some((a, b)) = two_processes("tiered-tag").await else {
        return;
    };
    a.cache
        .set_tagged("p:1", &"one".to_string(), None, &["team:7"])
        .await
        .unwrap();
    a.cache
        .set_tagged("p:2", &"two".to_string(), None, &["team:7"])
        .await
        .unwrap();
    a.cache.set("other", &"x".to_string(), None).await.unwrap();
    b.received(3).await;
    // B's copies came from Redis: B's L1 does not know their tags
    assert_eq!(b.get("p:1").await.as_deref(), Some("one"));
    assert_eq!(b.get("p:2").await.as_deref(), Some("two"));
    assert_eq!(b.get("other").await.as_deref(), Some("x"));
    assert_eq!(a.cache.invalidate_tag("team:7").await.unwrap(), 2);
    within_2s(async || !b.in_l1("p:1").await && !b.in_l1("p:2").await)
        .await
        .expect("B drops the tagged copies");
    assert_eq!(b.get("p:1").await, None);
    // RedisBackend lists the keys it deleted, so the message names them and
    // the untagged copy stays in both L1s
    assert!(b.in_l1("other").await && a.in_l1("other").await);
    assert_eq!(b.get("other").await.as_deref(), Some("x"));
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_reaches_the_other_process_and_only_its_namespace() {
    let Some((a, b)) = two_processes("tiered-clear").await else {
        return;
    };
    let url = require(Server::Redis).unwrap();
    let other_ns = unique_namespace("tiered-clear-other");
    // a second namespace on B's tiers
    let b_other = Cache::builder()
        .backend(b.tiered.clone())
        .namespace(&other_ns)
        .build()
        .unwrap();
    for k in ["x", "y"] {
        a.cache.set(k, &k.to_string(), None).await.unwrap();
    }
    b.received(2).await;
    for k in ["x", "y"] {
        assert!(b.get(k).await.is_some());
        assert!(b.in_l1(k).await);
    }
    b_other.set("z", &"z".to_string(), None).await.unwrap();
    assert_eq!(a.cache.clear().await.unwrap(), 2);
    within_2s(async || !b.in_l1("x").await && !b.in_l1("y").await)
        .await
        .expect("B drops the namespace");
    assert!(
        b.tiered
            .l1()
            .exists(&format!("{other_ns}:z"))
            .await
            .unwrap(),
        "another namespace is untouched"
    );
    b_other.clear().await.unwrap();
    drop(url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_copies_never_outlive_the_l2_entry() {
    let Some((a, b)) = two_processes("tiered-ttl").await else {
        return;
    };
    let ns = a.cache.namespace().to_owned();
    let key = format!("{ns}:k");
    a.cache
        .set("k", &"v".to_string(), Some(Duration::from_millis(900)))
        .await
        .unwrap();
    b.received(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.get("k").await.is_some());
    assert!(b.in_l1("k").await);
    // L2 first, then L1: the copy's remaining life must not be longer.
    // Redis's PTTL is whole milliseconds below the real remaining life (a
    // key expires once Redis's millisecond clock is past its deadline), so
    // the copy may read up to 1 ms above it.
    let l2 = b.tiered.l2().ttl(&key).await.unwrap();
    let l1 = b.tiered.l1().ttl(&key).await.unwrap();
    let (KeyTtl::Expires(l2), KeyTtl::Expires(l1)) = (l2, l1) else {
        panic!("both tiers hold the key: {l2:?} {l1:?}");
    };
    assert!(l1 <= l2 + MS, "L1 {l1:?} > L2 {l2:?}");
    assert!(l2 <= Duration::from_millis(600), "{l2:?}");
    // the writer's own copy too
    let l2 = a.tiered.l2().ttl(&key).await.unwrap();
    let l1 = a.tiered.l1().ttl(&key).await.unwrap();
    let (KeyTtl::Expires(l2), KeyTtl::Expires(l1)) = (l2, l1) else {
        panic!("both tiers hold the key: {l2:?} {l1:?}");
    };
    assert!(l1 <= l2 + MS, "L1 {l1:?} > L2 {l2:?}");
    // when L2 lets go, no L1 still holds it
    let gone = within_2s(async || b.tiered.l2().get(&key).await.unwrap().is_none())
        .await
        .expect("L2 expires");
    let (la, lb) = (
        a.tiered.l1().ttl(&key).await.unwrap(),
        b.tiered.l1().ttl(&key).await.unwrap(),
    );
    assert!(
        !b.in_l1("k").await && !a.in_l1("k").await,
        "after {gone:?}: A {la:?} B {lb:?}"
    );
    assert_eq!(b.get("k").await, None);

    // a persistent L2 entry: the copy lives at most l1_max_ttl
    a.cache.set("p", &"v".to_string(), None).await.unwrap();
    b.received(2).await;
    assert!(b.get("p").await.is_some());
    let KeyTtl::Expires(l1) = b.tiered.l1().ttl(&format!("{ns}:p")).await.unwrap() else {
        panic!("a copy with an expiry");
    };
    assert!(l1 <= b.tiered.l1_max_ttl());
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_are_served_without_redis_round_trips() {
    let Some((a, b)) = two_processes("tiered-hits").await else {
        return;
    };
    a.cache.set("k", &"v".to_string(), None).await.unwrap();
    b.received(1).await;
    assert!(b.get("k").await.is_some());
    let before = b.cache.stats();
    let start = Instant::now();
    for _ in 0..10_000 {
        assert!(b.get("k").await.is_some());
    }
    let per_hit = start.elapsed() / 10_000;
    let after = b.cache.stats();
    assert_eq!(after.hits - before.hits, 10_000);
    // a Redis round trip costs tens of microseconds at least
    assert!(per_hit < Duration::from_micros(20), "{per_hit:?} per hit");
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_new_over_a_redis_backend_is_coherent() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let ns = unique_namespace("tiered-new");
    // the simplest form: no coherence configured, L2 a RedisBackend
    let start = async || {
        let redis = RedisBackend::connect(&url).await.unwrap();
        let tiered = Tiered::new(MemoryBackend::new(), redis);
        assert!(tiered.coherence_stats().is_some());
        assert!(tiered.wait_subscribed(Duration::from_secs(2)).await);
        let cache = Cache::builder()
            .backend(tiered.clone())
            .namespace(&ns)
            .build()
            .unwrap();
        Process { cache, tiered }
    };
    let (a, b) = (start().await, start().await);
    a.cache.set("k", &"v1".to_string(), None).await.unwrap();
    within_2s(async || b.get("k").await.as_deref() == Some("v1") && b.in_l1("k").await)
        .await
        .expect("B copies A's value");
    a.cache.set("k", &"v2".to_string(), None).await.unwrap();
    within_2s(async || b.get("k").await.as_deref() == Some("v2"))
        .await
        .expect("B sees A's write");
    // Tiered::coherent waits for the subscription; an Arc'd backend works too
    let redis = RedisBackend::connect(&url).await.unwrap();
    let t = Tiered::coherent(MemoryBackend::new(), redis.clone())
        .await
        .unwrap();
    assert!(t.coherence_stats().unwrap().subscribed);
    let t = Tiered::new(MemoryBackend::new(), std::sync::Arc::new(redis.clone()));
    assert!(t.coherence_stats().is_some());
    let t = Tiered::builder(MemoryBackend::new(), redis)
        .without_coherence()
        .build()
        .unwrap();
    assert!(t.coherence_stats().is_none());
    // any backend with an explicit channel
    let t = Tiered::builder(MemoryBackend::new(), MemoryBackend::new())
        .coherence(RedisCoherence::new(&url).unwrap())
        .connect()
        .await
        .unwrap();
    assert!(t.coherence_stats().unwrap().subscribed);
    // an unreachable channel is an error, not a hang
    let err = Tiered::builder(MemoryBackend::new(), MemoryBackend::new())
        .coherence(
            RedisCoherence::new(&format!("redis://127.0.0.1:{}", covet_test::free_port()))
                .unwrap()
                .timeout(Duration::from_millis(300)),
        )
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, covet::cache::Error::Backend { .. }), "{err}");
    a.cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coherence_over_a_redis_cluster_through_different_nodes() {
    let Some(list) = require(Server::RedisCluster) else {
        return;
    };
    let urls = covet_test::split_urls(&list);
    let ns = unique_namespace("tiered-cluster");
    let prefix = format!("covet:invalidate-test:{ns}:");
    // A publishes and listens through the first node, B through the last:
    // classic pub/sub is forwarded across the cluster.
    let start = |node: String| {
        let (urls, ns, prefix) = (urls.clone(), ns.clone(), prefix.clone());
        async move {
            let redis = RedisBackend::connect_cluster(&urls).await.unwrap();
            let tiered = Tiered::builder(MemoryBackend::new(), redis)
                .coherence(RedisCoherence::new(&node).unwrap().channel_prefix(prefix))
                .connect()
                .await
                .unwrap();
            let cache = Cache::builder()
                .backend(tiered.clone())
                .namespace(&ns)
                .build()
                .unwrap();
            Process { cache, tiered }
        }
    };
    let a = start(urls[0].clone()).await;
    let b = start(urls[urls.len() - 1].clone()).await;
    for i in 0..20 {
        a.cache
            .set(&format!("k{i}"), &"v1".to_string(), None)
            .await
            .unwrap();
    }
    b.received(20).await;
    for i in 0..20 {
        assert_eq!(b.get(&format!("k{i}")).await.as_deref(), Some("v1"));
    }
    for i in 0..20 {
        a.cache
            .set(&format!("k{i}"), &"v2".to_string(), None)
            .await
            .unwrap();
    }
    within_2s(async || {
        let mut all = true;
        for i in 0..20 {
            all &= b.get(&format!("k{i}")).await.as_deref() == Some("v2");
        }
        all
    })
    .await
    .expect("B sees every write");
    assert_eq!(a.cache.clear().await.unwrap(), 20);
    within_2s(async || b.get("k0").await.is_none())
        .await
        .expect("B sees the clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_stops_with_the_last_handle() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let ns = unique_namespace("tiered-drop");
    let prefix = format!("covet:invalidate-test:{ns}:");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // PUBLISH answers how many subscribers got the message
    let mut listeners = async || -> i64 {
        redis::cmd("PUBLISH")
            .arg(format!("{prefix}{ns}"))
            .arg("not a covet message")
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let redis_backend = RedisBackend::connect(&url).await.unwrap();
    let tiered = Tiered::builder(MemoryBackend::new(), redis_backend)
        .coherence(RedisCoherence::new(&url).unwrap().channel_prefix(&prefix))
        .connect()
        .await
        .unwrap();
    let cache = Cache::builder()
        .backend(tiered.clone())
        .namespace(&ns)
        .build()
        .unwrap();
    // an unreadable message on the namespace's channel drops the namespace
    // from L1 (another covet version may have written it)
    cache.set("k", &"v".to_string(), None).await.unwrap();
    let full = format!("{ns}:k");
    assert!(tiered.l1().exists(&full).await.unwrap());
    assert_eq!(listeners().await, 1);
    within_2s(async || !tiered.l1().exists(&full).await.unwrap())
        .await
        .expect("the namespace is dropped");
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
    let clone = tiered.clone();
    drop(tiered);
    drop(cache);
    assert_eq!(listeners().await, 1, "a clone still holds it");
    drop(clone);
    let mut stopped = false;
    for _ in 0..200 {
        if listeners().await == 0 {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped, "the subscription is closed with the last handle");
    let redis_backend = RedisBackend::connect(&url).await.unwrap();
    redis_backend.clear(&format!("{ns}:")).await.unwrap();
}
