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

/// The SQL backends share one table per database (namespaces keep the
/// cases apart); the sweeper is off so a case never races it.
#[cfg(any(feature = "sql-postgres", feature = "sql-mysql"))]
async fn sql(url: &str) -> Arc<dyn CacheBackend> {
    let backend = covet::cache::SqlBackend::builder()
        .table("covet_conformance_cache")
        .sweep_interval(None)
        .command_timeout(covet_test::SQL_TEST_TIMEOUT)
        .connect(url)
        .await
        .expect("connecting to the database");
    Arc::new(backend)
}

#[cfg(feature = "sql-postgres")]
covet_test::backend_conformance!(sql_postgres, async {
    Some(sql(&require(Server::Postgres)?).await)
});

#[cfg(feature = "sql-mysql")]
covet_test::backend_conformance!(sql_mysql, async {
    Some(sql(&require(Server::Mysql)?).await)
});

// SQLite needs no server: an in-memory database of its own per case
// (`tests/sql_backend.rs` runs a file with several connections).
#[cfg(feature = "sql-sqlite")]
covet_test::backend_conformance!(sql_sqlite, async {
    let backend = covet::cache::SqlBackend::builder()
        .sweep_interval(None)
        .command_timeout(covet_test::SQL_TEST_TIMEOUT)
        .connect("sqlite::memory:")
        .await
        .expect("opening SQLite");
    Some(Arc::new(backend) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "memcached")]
covet_test::backend_conformance!(memcached_single, async {
    let url = require(Server::Memcached)?;
    let backend = covet::cache::MemcachedBackend::connect(&url)
        .await
        .expect("connecting to memcached");
    Some(Arc::new(backend) as Arc<dyn CacheBackend>)
});

#[cfg(feature = "memcached")]
covet_test::backend_conformance!(memcached_pool_of_three, async {
    let urls = split_urls(&require(Server::MemcachedPool)?);
    let backend = covet::cache::MemcachedBackend::builder()
        .servers(urls)
        .connect()
        .await
        .expect("connecting to three memcached");
    Some(Arc::new(backend) as Arc<dyn CacheBackend>)
});
