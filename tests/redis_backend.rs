//! What the Redis backend sends and where its keys land: `get_many` is one
//! `MGET`, `set_many` one pipeline, keys are stored as `namespace:key`, and
//! on a cluster the keys spread over every master while pattern deletes
//! still find them all.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::time::Duration;

use covet::cache::{Cache, CacheBackend, RedisBackend};
use covet_test::{RedisProcess, Server, require, split_urls, unique_namespace};
use redis::aio::MultiplexedConnection;

async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `calls` per command from `INFO commandstats`.
async fn command_calls(conn: &mut MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, cmd: &str) -> u64 {
    after.get(cmd).copied().unwrap_or(0) - before.get(cmd).copied().unwrap_or(0)
}

/// Keys of this server whose name starts with `prefix` (test-only SCAN).
async fn keys_with_prefix(conn: &mut MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        out.extend(keys);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_of_100_keys_is_one_mget() {
    // A private server, so that no other test's commands are counted.
    if require(Server::Redis).is_none() {
        return;
    }
    let server = RedisProcess::start().unwrap();
    let redis = RedisBackend::connect(&server.url()).await.unwrap();
    let mut stats = raw(&server.url()).await;
    let cache = Cache::builder()
        .backend(redis.clone())
        .namespace(unique_namespace("mget"))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();

    let before = command_calls(&mut stats).await;
    cache
        .set_many(&entries, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got: Vec<Option<u32>> = cache.get_many(&refs).await.unwrap();
    let after = command_calls(&mut stats).await;

    assert_eq!(got, (0..100).map(Some).collect::<Vec<_>>());
    assert_eq!(delta(&before, &after, "mget"), 1, "{after:?}");
    assert_eq!(delta(&before, &after, "get"), 0);
    assert_eq!(delta(&before, &after, "set"), 100);
    assert_eq!(
        delta(&before, &after, "multi"),
        0,
        "set_many is a plain pipeline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_stored_under_their_namespace() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let redis = RedisBackend::connect(&url).await.unwrap();
    let mut conn = raw(&url).await;
    let ns = unique_namespace("layout");
    let cache = Cache::builder()
        .backend(redis.clone())
        .namespace(ns.clone())
        .build()
        .unwrap();
    cache
        .set_tagged("user:*:1", &5u8, Some(Duration::from_secs(30)), &["users"])
        .await
        .unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{ns}:user:*:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        stored.is_some(),
        "the key is `namespace:user-key`, unescaped"
    );
    for reserved in [
        format!(":covet:tag:{{={ns}:users}}"),
        format!(":covet:tagv:{{={ns}:users}}"),
    ] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&reserved)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            pttl > 25_000 && pttl <= 30_000,
            "{reserved} lives as long as its member: {pttl}"
        );
    }
    let token = redis
        .lease_acquire(&format!("{ns}:job"), Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let held: Option<String> = redis::cmd("GET")
        .arg(format!(":covet:lease:{ns}:job"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held.as_deref(), Some(token.as_str()));
    assert!(
        redis
            .lease_release(&format!("{ns}:job"), &token)
            .await
            .unwrap()
    );
    // clear drops the namespace's tag sets too, but counts only values
    assert_eq!(cache.clear().await.unwrap(), 1);
    let tag_set: u64 = redis::cmd("EXISTS")
        .arg(format!(":covet:tag:{ns}:users"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(tag_set, 0);
    let shown = format!("{redis:?}");
    assert!(
        shown.contains("RedisBackend") && shown.contains("single"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_keys_over_every_master() {
    let Some(urls) = require(Server::RedisCluster) else {
        return;
    };
    let urls = split_urls(&urls);
    let redis = RedisBackend::connect_cluster(&urls).await.unwrap();
    assert!(redis.is_cluster());
    let ns = unique_namespace("spread");
    let cache = Cache::builder()
        .backend(redis.clone())
        .namespace(ns.clone())
        .build()
        .unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    cache.set_many(&entries, None).await.unwrap();

    // every master holds some of them (3 masters, 300 keys)
    let mut total = 0;
    for url in &urls {
        let mut node = raw(url).await;
        let here = keys_with_prefix(&mut node, &format!("{ns}:")).await.len();
        assert!(here > 30, "{url} holds {here} of 300 keys");
        total += here;
    }
    assert_eq!(total, 300);

    // batch reads across slots come back in input order
    let refs: Vec<&str> = keys.iter().rev().map(String::as_str).collect();
    let got: Vec<Option<u32>> = cache.get_many(&refs).await.unwrap();
    assert_eq!(got, (0..300).rev().map(Some).collect::<Vec<_>>());

    // pattern deletes visit every master
    assert_eq!(cache.delete_pattern("k1*").await.unwrap(), 111); // 1, 10-19, 100-199
    assert_eq!(cache.clear().await.unwrap(), 189);
    for url in &urls {
        let mut node = raw(url).await;
        assert!(
            keys_with_prefix(&mut node, &format!("{ns}:"))
                .await
                .is_empty()
        );
    }

    // tags whose members live on different masters
    for k in &keys[..50] {
        cache.set_tagged(k, &1u8, None, &["t"]).await.unwrap();
    }
    assert_eq!(cache.invalidate_tag("t").await.unwrap(), 50);
    assert_eq!(cache.clear().await.unwrap(), 0);
    let shown = format!("{redis:?}");
    assert!(shown.contains("cluster"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_cluster_backend_connects_on_first_use() {
    let Some(urls) = require(Server::RedisCluster) else {
        return;
    };
    let redis = RedisBackend::builder()
        .lazy(true)
        .build_cluster(&split_urls(&urls))
        .await
        .unwrap();
    let key = format!("{}:k", unique_namespace("lazy"));
    redis.set(&key, "v".into(), None).await.unwrap();
    assert_eq!(redis.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(redis.delete(&key).await.unwrap());
    assert!(redis.is_cluster());
}
