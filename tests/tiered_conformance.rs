//! The shared conformance suite (`covet_test::conformance`) against
//! `Tiered`: over memory, over Redis and a Redis Cluster with coherence
//! on, and over the SQL backends.

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

// Over the SQL backends there is no channel: every process's L1 copy
// lives at most `l1_max_ttl` (the documented bound), and this process's
// own writes drop its copies at once.
#[cfg(feature = "sql-postgres")]
covet_test::backend_conformance!(tiered_sql_postgres, async {
    let url = require(Server::Postgres)?;
    let sql = covet::cache::SqlBackend::builder()
        .table("covet_conformance_tiered")
        .sweep_interval(None)
        .command_timeout(covet_test::SQL_TEST_TIMEOUT)
        .connect(&url)
        .await
        .expect("connecting to PostgreSQL");
    Some(Arc::new(Tiered::new(MemoryBackend::new(), sql)) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "sql-mysql")]
covet_test::backend_conformance!(tiered_sql_mysql, async {
    let url = require(Server::Mysql)?;
    let sql = covet::cache::SqlBackend::builder()
        .table("covet_conformance_tiered")
        .sweep_interval(None)
        .command_timeout(covet_test::SQL_TEST_TIMEOUT)
        .connect(&url)
        .await
        .expect("connecting to MariaDB");
    Some(Arc::new(Tiered::new(MemoryBackend::new(), sql)) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "sql-sqlite")]
covet_test::backend_conformance!(tiered_sql_sqlite, async {
    let sql = covet::cache::SqlBackend::builder()
        .sweep_interval(None)
        .command_timeout(covet_test::SQL_TEST_TIMEOUT)
        .connect("sqlite::memory:")
        .await
        .expect("opening SQLite");
    Some(Arc::new(Tiered::new(MemoryBackend::new(), sql)) as Arc<dyn CacheBackend>)
});

// Over Memcached there is no channel either: `l1_max_ttl` bounds every
// process's L1 copies.
#[cfg(feature = "memcached")]
covet_test::backend_conformance!(tiered_memcached, async {
    let url = require(Server::Memcached)?;
    let memcached = covet::cache::MemcachedBackend::connect(&url)
        .await
        .expect("connecting to memcached");
    Some(Arc::new(Tiered::new(MemoryBackend::new(), memcached)) as Arc<dyn CacheBackend>)
});
