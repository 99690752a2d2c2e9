//! The shared session store conformance suite
//! (`covet_test::session_conformance`) against every store: one line each.

use std::sync::Arc;

#[allow(unused_imports)]
use covet::session::{MemoryStore, SessionStore};
#[allow(unused_imports)]
use covet_test::{Server, require};

covet_test::session_store_conformance!(memory, async {
    Some(Arc::new(MemoryStore::new()) as Arc<dyn SessionStore>)
});

covet_test::session_store_conformance!(cache_memory, async {
    let backend = covet::cache::MemoryBackend::new();
    Some(Arc::new(covet::session::CacheStore::new(backend)) as Arc<dyn SessionStore>)
});

#[cfg(feature = "redis")]
covet_test::session_store_conformance!(cache_redis, async {
    let url = require(Server::Redis)?;
    let backend = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting to Redis");
    let store = covet::session::CacheStore::builder(backend)
        .key_prefix(format!(
            "{}:",
            covet_test::unique_namespace("covet-session-cache-test")
        ))
        .build()
        .expect("a valid key prefix");
    Some(Arc::new(store) as Arc<dyn SessionStore>)
});

#[cfg(feature = "redis")]
covet_test::session_store_conformance!(redis_single, async {
    let url = require(Server::Redis)?;
    let store = covet::session::RedisStore::builder()
        .key_prefix(format!(
            "{}:",
            covet_test::unique_namespace("covet-session-test")
        ))
        .connect(&url)
        .await
        .expect("connecting to Redis");
    Some(Arc::new(store) as Arc<dyn SessionStore>)
});

#[cfg(feature = "redis")]
covet_test::session_store_conformance!(redis_cluster, async {
    let urls = covet_test::split_urls(&require(Server::RedisCluster)?);
    let store = covet::session::RedisStore::builder()
        .key_prefix(format!(
            "{}:",
            covet_test::unique_namespace("covet-session-test")
        ))
        .connect_cluster(&urls)
        .await
        .expect("connecting to the Redis Cluster");
    Some(Arc::new(store) as Arc<dyn SessionStore>)
});

#[cfg(feature = "redis")]
covet_test::session_store_conformance!(cache_tiered, async {
    let url = require(Server::Redis)?;
    let redis = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting to Redis");
    let tiered = covet::cache::Tiered::coherent(covet::cache::MemoryBackend::new(), redis)
        .await
        .expect("subscribing to invalidations");
    let store = covet::session::CacheStore::builder(tiered)
        .key_prefix(format!(
            "{}:",
            covet_test::unique_namespace("covet-session-tiered-test")
        ))
        .build()
        .expect("a valid key prefix");
    Some(Arc::new(store) as Arc<dyn SessionStore>)
});

#[cfg(feature = "redis")]
covet_test::session_store_conformance!(cache_redis_cluster, async {
    let urls = covet_test::split_urls(&require(Server::RedisCluster)?);
    let backend = covet::cache::RedisBackend::connect_cluster(&urls)
        .await
        .expect("connecting to the Redis Cluster");
    let store = covet::session::CacheStore::builder(backend)
        .key_prefix(format!(
            "{}:",
            covet_test::unique_namespace("covet-session-cache-test")
        ))
        .build()
        .expect("a valid key prefix");
    Some(Arc::new(store) as Arc<dyn SessionStore>)
});
