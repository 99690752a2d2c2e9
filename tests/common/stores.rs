//! Every session store, set up for a test: each in its own key prefix,
//! table or temporary directory, against this machine's servers (found
//! through `COVET_*_URL`). A store that needs a server that is absent is
//! `None` (a panic under `CI=true`, through `require`).

use std::sync::Arc;

use covet::session::{CookieStore, MemoryStore, SessionStore, store::cookie::Key};
#[allow(unused_imports)]
use covet_test::{Server, require, session_conformance::WithCleanup, unique_namespace};

pub(crate) type Store = Arc<dyn SessionStore>;

pub(crate) async fn memory() -> Option<Store> {
    Some(Arc::new(MemoryStore::new()))
}

pub(crate) async fn cookie_encrypted() -> Option<Store> {
    Some(Arc::new(CookieStore::new(Key::generate())))
}

pub(crate) async fn cookie_signed() -> Option<Store> {
    let store = CookieStore::builder(Key::generate())
        .signed()
        .build()
        .expect("a valid cookie name");
    Some(Arc::new(store))
}

pub(crate) async fn cache_memory() -> Option<Store> {
    let backend = covet::cache::MemoryBackend::new();
    Some(Arc::new(covet::session::CacheStore::new(backend)))
}

#[cfg(feature = "redis")]
fn cache_store<B: covet::cache::CacheBackend>(backend: B) -> Store {
    let store = covet::session::CacheStore::builder(backend)
        .key_prefix(format!("{}:", unique_namespace("covet-session-cache-test")))
        .build()
        .expect("a valid key prefix");
    Arc::new(store)
}

#[cfg(feature = "redis")]
pub(crate) async fn cache_redis() -> Option<Store> {
    let url = require(Server::Redis)?;
    let backend = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting to Redis");
    Some(cache_store(backend))
}

#[cfg(feature = "redis")]
pub(crate) async fn cache_redis_cluster() -> Option<Store> {
    let urls = covet_test::split_urls(&require(Server::RedisCluster)?);
    let backend = covet::cache::RedisBackend::connect_cluster(&urls)
        .await
        .expect("connecting to the Redis Cluster");
    Some(cache_store(backend))
}

#[cfg(feature = "redis")]
pub(crate) async fn cache_tiered() -> Option<Store> {
    let url = require(Server::Redis)?;
    let redis = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting to Redis");
    let tiered = covet::cache::Tiered::coherent(covet::cache::MemoryBackend::new(), redis)
        .await
        .expect("subscribing to invalidations");
    Some(cache_store(tiered))
}

#[cfg(feature = "redis")]
fn redis_prefix() -> String {
    format!("{}:", unique_namespace("covet-session-test"))
}

#[cfg(feature = "redis")]
pub(crate) async fn redis_single() -> Option<Store> {
    let url = require(Server::Redis)?;
    let store = covet::session::RedisStore::builder()
        .key_prefix(redis_prefix())
        .connect(&url)
        .await
        .expect("connecting to Redis");
    Some(Arc::new(store))
}

#[cfg(feature = "redis")]
pub(crate) async fn redis_cluster() -> Option<Store> {
    let urls = covet_test::split_urls(&require(Server::RedisCluster)?);
    let store = covet::session::RedisStore::builder()
        .key_prefix(redis_prefix())
        .connect_cluster(&urls)
        .await
        .expect("connecting to the Redis Cluster");
    Some(Arc::new(store))
}

/// A table of its own for each SQL store under test.
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
fn sql_table() -> String {
    unique_namespace("covet_session_test").replace('-', "_")
}

/// A store on its own new table of the server at `url`, dropped with the
/// store.
#[cfg(any(feature = "sql-postgres", feature = "sql-mysql"))]
async fn sql_server_store(url: String) -> Store {
    let table = sql_table();
    let store = covet::session::SqlStore::builder()
        .table_name(table.clone())
        .connect(&url)
        .await
        .expect("connecting to the database");
    store.migrate().await.expect("creating the session table");
    Arc::new(WithCleanup::new(store, move || drop_table(url, table)))
}

/// Drops `table` on a thread of its own (this runs in `Drop`, inside the
/// test's runtime, where blocking on a future is not allowed).
#[cfg(any(feature = "sql-postgres", feature = "sql-mysql"))]
fn drop_table(url: String, table: String) {
    let joined = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            use sqlx::Connection as _;
            let sql = format!("DROP TABLE IF EXISTS {table}");
            if url.starts_with("postgres") {
                #[cfg(feature = "sql-postgres")]
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&sql).execute(&mut c).await;
                }
            } else {
                #[cfg(feature = "sql-mysql")]
                if let Ok(mut c) = sqlx::MySqlConnection::connect(&url).await {
                    let _ = sqlx::query(&sql).execute(&mut c).await;
                }
            }
        });
    })
    .join();
    if joined.is_err() {
        eprintln!("dropping a test table failed");
    }
}

#[cfg(feature = "sql-postgres")]
pub(crate) async fn sql_postgres() -> Option<Store> {
    Some(sql_server_store(require(Server::Postgres)?).await)
}

#[cfg(feature = "sql-mysql")]
pub(crate) async fn sql_mysql() -> Option<Store> {
    Some(sql_server_store(require(Server::Mysql)?).await)
}

#[cfg(feature = "sql-sqlite")]
pub(crate) async fn sql_sqlite() -> Option<Store> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = covet::session::SqlStore::builder()
        .table_name(sql_table())
        .connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("sessions.db").display()
        ))
        .await
        .expect("opening SQLite");
    store.migrate().await.expect("creating the session table");
    Some(Arc::new(WithCleanup::new(store, move || drop(dir))))
}
