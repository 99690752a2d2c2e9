//! Tag invalidation deletes (or stops serving) every value stored with the
//! tag, also when Redis lost the tag's member list: evicted under
//! `maxmemory`, or gone for any other reason. Single server and cluster.
#![cfg(feature = "redis")]

use std::time::Duration;

use covet::cache::{Cache, CacheBackend, RedisBackend};
use covet_test::{RedisProcess, Server, require, split_urls, unique_namespace};

fn cache(backend: &RedisBackend, ns: &str) -> Cache {
    Cache::builder()
        .backend(backend.clone())
        .namespace(ns)
        .build()
        .unwrap()
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The backend on the shared server and a raw connection beside it, or
/// `None` (outside CI) when the server is missing.
async fn on_server() -> Option<(RedisBackend, redis::aio::MultiplexedConnection)> {
    let url = require(Server::Redis)?;
    let backend = RedisBackend::connect(&url).await.unwrap();
    Some((backend, raw(&url).await))
}

/// The same on the Redis Cluster.
async fn on_cluster() -> Option<(RedisBackend, redis::cluster_async::ClusterConnection)> {
    let urls = split_urls(&require(Server::RedisCluster)?);
    let backend = RedisBackend::connect_cluster(&urls).await.unwrap();
    let conn = redis::cluster::ClusterClient::new(urls)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    Some((backend, conn))
}

/// Stores `n` values tagged `tag` (and every other one also `other`);
/// their keys.
async fn tagged(cache: &Cache, tag: &str, other: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = format!("{tag}:{i}");
        let tags: &[&str] = if i % 2 == 0 { &[tag, other] } else { &[tag] };
        cache
            .set_tagged(&key, &vec![i as u8; 64], None, tags)
            .await
            .unwrap();
        keys.push(key);
    }
    keys
}

async fn readable(cache: &Cache, keys: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for k in keys {
        if cache.get::<Vec<u8>>(k).await.unwrap().is_some() {
            out.push(k.clone());
        }
    }
    out
}

/// The tag's member set disappears (as an eviction would make it): the
/// next invalidation cannot list the members, and none of them is served.
async fn lost_set_case(backend: RedisBackend, conn: &mut impl redis::aio::ConnectionLike) {
    let ns = unique_namespace("lost-set");
    let cache = cache(&backend, &ns);
    let keys = tagged(&cache, "t", "u", 20).await;
    assert_eq!(readable(&cache, &keys).await.len(), 20);
    let removed: u64 = redis::cmd("UNLINK")
        .arg(format!(":covet:tag:{{={ns}:t}}"))
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the tag set was where the docs say");
    cache.invalidate_tag("t").await.unwrap();
    assert_eq!(
        readable(&cache, &keys).await,
        Vec::<String>::new(),
        "values of an invalidated tag are never served"
    );
    assert!(!cache.exists("t:1").await.unwrap());
    assert_eq!(
        cache.ttl("t:1").await.unwrap(),
        covet::cache::KeyTtl::Missing
    );
    // and the tiers below agree: the raw backend read is a miss too
    assert!(backend.get(&format!("{ns}:t:3")).await.unwrap().is_none());
    // writing again works as usual
    cache
        .set_tagged("t:1", &vec![9u8], None, &["t"])
        .await
        .unwrap();
    assert_eq!(cache.get::<Vec<u8>>("t:1").await.unwrap(), Some(vec![9]));
    // the namespace, its tag sets and versions included, off the shared server
    cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tag_set_still_invalidates_every_member() {
    if let Some((backend, mut conn)) = on_server().await {
        lost_set_case(backend, &mut conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tag_set_still_invalidates_every_member_on_a_cluster() {
    if let Some((backend, mut conn)) = on_cluster().await {
        lost_set_case(backend, &mut conn).await;
    }
}

/// How many of `keys` exist on the server (one hash slot, on a cluster).
async fn existing(conn: &mut impl redis::aio::ConnectionLike, keys: &[String]) -> u64 {
    redis::cmd("EXISTS")
        .arg(keys)
        .query_async(conn)
        .await
        .unwrap()
}

/// Invalidating a tag leaves none of its keys on the server: its version
/// and its set go with its members, values without an expiry included, so
/// a tag per user or per entity costs nothing once invalidated. A value
/// stored with the tag afterwards gets a fresh version and is served; the
/// next invalidation removes it and the bookkeeping again.
async fn invalidation_leaves_nothing_case(
    backend: RedisBackend,
    conn: &mut impl redis::aio::ConnectionLike,
) {
    let ns = unique_namespace("tag-gone");
    let cache = cache(&backend, &ns);
    let keys = tagged(&cache, "t", "u", 6).await;
    let bookkeeping = vec![
        format!(":covet:tag:{{={ns}:t}}"),
        format!(":covet:tagv:{{={ns}:t}}"),
    ];
    assert_eq!(existing(conn, &bookkeeping).await, 2, "where the docs say");
    assert_eq!(cache.invalidate_tag("t").await.unwrap(), 6);
    assert_eq!(readable(&cache, &keys).await, Vec::<String>::new());
    assert_eq!(
        existing(conn, &bookkeeping).await,
        0,
        "the tag left keys behind"
    );
    cache
        .set_tagged("again", &vec![1u8], None, &["t"])
        .await
        .unwrap();
    assert_eq!(cache.get::<Vec<u8>>("again").await.unwrap(), Some(vec![1]));
    assert_eq!(cache.invalidate_tag("t").await.unwrap(), 1);
    assert_eq!(cache.get::<Vec<u8>>("again").await.unwrap(), None);
    assert_eq!(existing(conn, &bookkeeping).await, 0);
    cache.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_tag_leaves_no_keys() {
    if let Some((backend, mut conn)) = on_server().await {
        invalidation_leaves_nothing_case(backend, &mut conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_tag_leaves_no_keys_on_a_cluster() {
    if let Some((backend, mut conn)) = on_cluster().await {
        invalidation_leaves_nothing_case(backend, &mut conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tag_version_makes_its_values_misses() {
    let Some((backend, mut conn)) = on_server().await else {
        return;
    };
    let ns = unique_namespace("lost-version");
    let cache = cache(&backend, &ns);
    let keys = tagged(&cache, "t", "u", 10).await;
    let _: u64 = redis::cmd("UNLINK")
        .arg(format!(":covet:tagv:{{={ns}:u}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // every other key carried `u`: those are misses, the rest are served
    let left = readable(&cache, &keys).await;
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.iter().all(|k| k.ends_with(['1', '3', '5', '7', '9'])));
    // get_many agrees with get
    let all: Vec<&str> = keys.iter().map(String::as_str).collect();
    let many = cache.get_many::<Vec<u8>>(&all).await.unwrap();
    assert_eq!(many.iter().filter(|v| v.is_some()).count(), 5);
    cache.clear().await.unwrap();
}

/// `maxmemory` with `allkeys-lru` on a private server: fill memory until
/// Redis evicts the tag's set while some of its members survive, then
/// invalidate: none of the survivors is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_under_maxmemory_never_resurrects_invalidated_values() {
    if require(Server::Redis).is_none() {
        return;
    }
    let server = RedisProcess::start_with(
        covet_test::free_port(),
        &["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"],
    )
    .expect("a redis-server with maxmemory");
    let backend = RedisBackend::connect(&server.url()).await.unwrap();
    let mut conn = raw(&server.url()).await;
    let mut exercised = 0;
    for round in 0..8 {
        let ns = format!("evict{round}");
        let cache = cache(&backend, &ns);
        let keys = tagged(&cache, "t", "u", 300).await;
        let set = format!(":covet:tag:{{={ns}:t}}");
        // Filler until the tag set is evicted.
        let filler = vec![7u8; 1024];
        let mut written = 0;
        let mut set_gone = false;
        loop {
            let present: u64 = redis::cmd("EXISTS")
                .arg(&set)
                .query_async(&mut conn)
                .await
                .unwrap();
            if present == 0 {
                set_gone = true;
                break;
            }
            if written > 20_000 {
                break;
            }
            for _ in 0..200 {
                backend
                    .set(
                        &format!("fill:{round}:{written}"),
                        filler.clone().into(),
                        None,
                    )
                    .await
                    .unwrap();
                written += 1;
            }
        }
        let mut survivors = 0;
        for k in &keys {
            let exists: u64 = redis::cmd("EXISTS")
                .arg(format!("{ns}:{k}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            survivors += exists;
        }
        cache.invalidate_tag("t").await.unwrap();
        assert_eq!(
            readable(&cache, &keys).await,
            Vec::<String>::new(),
            "round {round}: {survivors} members outlived their evicted set"
        );
        if set_gone && survivors > 0 {
            exercised += 1;
        }
        let _ = backend.clear(&format!("fill:{round}")).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(info.contains("evicted_keys:"), "{info}");
    assert!(
        exercised > 0,
        "no round evicted a tag set while members survived"
    );
}
