//! The shared conformance suite (`covet_test::conformance`) against every
//! backend: one line each.

use std::sync::Arc;

#[allow(unused_imports)]
use covet::cache::{CacheBackend, MemoryBackend};
#[allow(unused_imports)]
use covet_test::{Server, require, split_urls};

covet_test::backend_conformance!(memory, async {
    Some(Arc::new(MemoryBackend::new()) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "redis")]
covet_test::backend_conformance!(redis_single, async {
    let url = require(Server::Redis)?;
    let backend = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting to Redis");
    Some(Arc::new(backend) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "redis")]
covet_test::backend_conformance!(redis_cluster, async {
    let urls = split_urls(&require(Server::RedisCluster)?);
    let backend = covet::cache::RedisBackend::connect_cluster(&urls)
        .await
        .expect("connecting to the Redis Cluster");
    Some(Arc::new(backend) as Arc<dyn CacheBackend>)
});
