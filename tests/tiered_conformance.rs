//! The shared conformance suite (`covet_test::conformance`) against
//! `Tiered`: over memory, and over Redis and a Redis Cluster with
//! coherence on.

use std::sync::Arc;

#[allow(unused_imports)]
use covet::cache::{CacheBackend, MemoryBackend, Tiered};
#[allow(unused_imports)]
use covet_test::{Server, require, split_urls};

covet_test::backend_conformance!(tiered_memory, async {
    Some(Arc::new(Tiered::new(MemoryBackend::new(), MemoryBackend::new())) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "redis")]
covet_test::backend_conformance!(tiered_redis, async {
    let url = require(Server::Redis)?;
    let redis = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting to Redis");
    let tiered = Tiered::coherent(MemoryBackend::new(), redis)
        .await
        .expect("subscribing");
    Some(Arc::new(tiered) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "redis")]
covet_test::backend_conformance!(tiered_redis_cluster, async {
    let urls = split_urls(&require(Server::RedisCluster)?);
    let redis = covet::cache::RedisBackend::connect_cluster(&urls)
        .await
        .expect("connecting to the Redis Cluster");
    // classic pub/sub spans the cluster: any node carries the channel
    let tiered = Tiered::coherent(MemoryBackend::new(), redis)
        .await
        .expect("subscribing");
    Some(Arc::new(tiered) as Arc<dyn CacheBackend>)
});
