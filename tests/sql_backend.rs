//! `SqlBackend` beyond the shared conformance suite: a SQLite file with
//! several connections, migrations, table names, the database's clock,
//! the sweeper, sharing an application's pool, and `#[cached]` on top.

#![cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]

use std::sync::Arc;
use std::time::Duration;

use covet::cache::{Cache, CacheBackend, ConfigError, Error, SqlBackend};
#[allow(unused_imports)]
use covet_test::{Server, require, unique_namespace};

#[cfg(feature = "sql-sqlite")]
fn sqlite_file(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("cache.db").display())
}

#[cfg(feature = "sql-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_survives_a_restart_and_serves_many_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_file(&dir);
    {
        let backend = SqlBackend::builder()
            .max_connections(4)
            .command_timeout(covet_test::SQL_TEST_TIMEOUT)
            .connect(&url)
            .await
            .expect("open");
        let cache = Cache::builder()
            .backend(backend.clone())
            .namespace("app")
            .build()
            .expect("cache");
        cache
            .set("kept", &"across restarts".to_owned(), None)
            .await
            .expect("set");
        // writers on several connections at once: no "database is locked"
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache.set(&format!("k{i}"), &i, None).await.expect("set");
                    cache.incr("hits", 1, None).await.expect("incr")
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(cache.incr("hits", 0, None).await.expect("incr"), 40);
    }
    let backend = SqlBackend::connect(&url).await.expect("reopen");
    let cache = Cache::builder()
        .backend(backend)
        .namespace("app")
        .build()
        .expect("cache");
    assert_eq!(
        cache.get::<String>("kept").await.expect("get").as_deref(),
        Some("across restarts")
    );
    assert_eq!(cache.get::<i32>("k39").await.expect("get"), Some(39));
}

#[cfg(feature = "sql-sqlite")]
#[tokio::test]
async fn table_names_are_validated_and_migrate_is_idempotent() {
    for bad in [
        "",
        "1x",
        "a-b",
        "a b",
        "x; DROP TABLE y",
        "t\"",
        &"x".repeat(49),
    ] {
        let err = SqlBackend::builder()
            .table(bad)
            .connect("sqlite::memory:")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Config(ConfigError::InvalidTable { .. })),
            "{bad:?}: {err}"
        );
    }
    let err = SqlBackend::connect("oracle://x").await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::InvalidUrl { .. })),
        "{err}"
    );
    let backend = SqlBackend::builder()
        .table("custom_1")
        .connect("sqlite::memory:")
        .await
        .expect("open");
    backend.migrate().await.expect("again");
    backend.migrate().await.expect("and again");
    assert_eq!(backend.table(), "custom_1");
    backend.set("k", "v".into(), None).await.expect("set");
    assert_eq!(
        backend.get("k").await.expect("get").as_deref(),
        Some(&b"v"[..])
    );
}

#[cfg(feature = "sql-sqlite")]
#[tokio::test]
async fn without_migrate_nothing_is_created_until_asked() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("pool");
    let backend = SqlBackend::builder()
        .migrate(false)
        .from_pool(pool.clone())
        .await
        .expect("backend");
    assert!(backend.get("k").await.is_err(), "no table yet");
    backend.migrate().await.expect("migrate");
    backend.set("k", "v".into(), None).await.expect("set");
    // the application's pool sees the same table
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM covet_cache")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

/// Every database: expiry is judged by the database's clock (a row that
/// expired by it is never returned), and `sweep` deletes expired rows,
/// leases and orphaned tag rows.
async fn clock_and_sweep(backend: SqlBackend, raw_expire: impl AsyncFnOnce(&str)) {
    let ns = format!("{}:", unique_namespace("clock"));
    let k = format!("{ns}k");
    backend
        .set(&k, "v".into(), Some(Duration::from_secs(3600)))
        .await
        .expect("set");
    assert!(backend.exists(&k).await.expect("exists"));
    // Move the row's expiry one second into the database's past.
    raw_expire(&k).await;
    assert_eq!(backend.get(&k).await.expect("get"), None);
    assert_eq!(
        backend.get_many(&[k.as_str()]).await.expect("get_many"),
        vec![None]
    );
    assert!(!backend.exists(&k).await.expect("exists"));
    assert!(
        !backend.delete(&k).await.expect("delete"),
        "an expired row is not a live one"
    );
    // An expired counter starts again.
    assert_eq!(backend.incr(&k, 5, None).await.expect("incr"), 5);
    backend.delete(&k).await.expect("delete");

    let short = format!("{ns}short");
    backend
        .set(&short, "v".into(), Some(Duration::from_millis(50)))
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(backend.sweep().await.expect("sweep") >= 1);
    assert_eq!(backend.get(&short).await.expect("get"), None);
}

#[cfg(feature = "sql-sqlite")]
#[tokio::test]
async fn sqlite_reads_by_the_database_clock_and_sweeps() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("pool");
    let backend = SqlBackend::builder()
        .sweep_interval(None)
        .from_pool(pool.clone())
        .await
        .expect("backend");
    clock_and_sweep(backend, async |k: &str| {
        sqlx::query("UPDATE covet_cache SET expires_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - 1000 WHERE cache_key = ?")
            .bind(k.as_bytes())
            .execute(&pool)
            .await
            .expect("update");
    })
    .await;
}

/// A server database: a table of its own, its expiry moved by raw SQL,
/// dropped at the end.
#[cfg(any(feature = "sql-postgres", feature = "sql-mysql"))]
async fn server_clock_and_sweep<DB>(pool: sqlx::Pool<DB>, past: &str, placeholder: &str)
where
    DB: sqlx::Database,
    sqlx::Pool<DB>: Into<covet::cache::SqlPool>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let table = format!("clock_{}_{}", std::process::id(), placeholder.len());
    let backend = SqlBackend::builder()
        .table(&table)
        .sweep_interval(None)
        .from_pool(pool.clone())
        .await
        .expect("backend");
    let statement =
        format!("UPDATE {table} SET expires_at = {past} - 1000 WHERE cache_key = {placeholder}");
    clock_and_sweep(backend, async |k: &str| {
        sqlx::query(&statement)
            .bind(k.as_bytes())
            .execute(&pool)
            .await
            .expect("update");
    })
    .await;
    for t in [
        format!("{table}_tags"),
        format!("{table}_leases"),
        table.clone(),
    ] {
        sqlx::query(&format!("DROP TABLE {t}"))
            .execute(&pool)
            .await
            .expect("drop");
    }
}

#[cfg(feature = "sql-postgres")]
#[tokio::test]
async fn postgres_reads_by_the_database_clock_and_sweeps() {
    let Some(url) = require(Server::Postgres) else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    server_clock_and_sweep(
        pool,
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        "$1",
    )
    .await;
}

#[cfg(feature = "sql-mysql")]
#[tokio::test]
async fn mysql_reads_by_the_database_clock_and_sweeps() {
    let Some(url) = require(Server::Mysql) else {
        return;
    };
    let pool = sqlx::MySqlPool::connect(&url).await.expect("pool");
    server_clock_and_sweep(pool, "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)", "?").await;
}

/// MySQL's default collations fold case and ignore trailing spaces; the
/// binary key column does neither.
#[cfg(feature = "sql-mysql")]
#[tokio::test]
async fn mysql_keys_compare_byte_for_byte() {
    let Some(url) = require(Server::Mysql) else {
        return;
    };
    let backend = SqlBackend::builder()
        .table("covet_conformance_cache")
        .sweep_interval(None)
        .connect(&url)
        .await
        .expect("connect");
    let ns = format!("{}:", unique_namespace("bytes"));
    for (i, k) in ["A", "a", "a ", "ä", "a\u{300}"].iter().enumerate() {
        backend
            .set(&format!("{ns}{k}"), i.to_string().into(), None)
            .await
            .expect("set");
    }
    for (i, k) in ["A", "a", "a ", "ä", "a\u{300}"].iter().enumerate() {
        assert_eq!(
            backend
                .get(&format!("{ns}{k}"))
                .await
                .expect("get")
                .as_deref(),
            Some(i.to_string().as_bytes()),
            "{k:?}"
        );
    }
    assert_eq!(
        backend
            .delete_pattern(&format!("{ns}a"))
            .await
            .expect("pattern"),
        1
    );
    assert_eq!(backend.clear(&ns).await.expect("clear"), 4);
}

/// Clearing namespaces while other namespaces are written, on one InnoDB
/// table: the range `DELETE`s of `clear` take gap locks and can lose a
/// deadlock against concurrent upserts (MariaDB error 1213). A lost
/// deadlock is run again, never an error, and every count adds up.
#[cfg(feature = "sql-mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clears_and_writes_racing_on_mysql_never_fail() {
    let Some(url) = require(Server::Mysql) else {
        return;
    };
    let table = unique_namespace("race").replace('-', "_");
    let backend = SqlBackend::builder()
        .table(table.as_str())
        .sweep_interval(None)
        .max_connections(16)
        .command_timeout(covet_test::SQL_TEST_TIMEOUT)
        .connect(&url)
        .await
        .expect("connect");
    let mut tasks = Vec::new();
    // Writers into two shared namespaces, and clears of both, at once.
    for t in 0..6 {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..150 {
                let ns = if (t + round) % 2 == 0 { "a:" } else { "b:" };
                backend
                    .set(&format!("{ns}{t}-{}", round % 16), "v".into(), None)
                    .await
                    .expect("set");
            }
        }));
    }
    for ns in ["a:", "b:"] {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..60 {
                backend.clear(ns).await.expect("clear");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    // Every count adds up once the writers are done.
    for k in 0..8 {
        backend
            .set(&format!("a:last{k}"), "v".into(), None)
            .await
            .expect("set");
    }
    assert!(backend.clear("a:").await.expect("clear") >= 8);
    assert_eq!(backend.clear("a:").await.expect("clear"), 0);
    let pool = sqlx::MySqlPool::connect(&url).await.expect("raw pool");
    for t in [
        table.clone(),
        format!("{table}_tags"),
        format!("{table}_leases"),
    ] {
        sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
            .execute(&pool)
            .await
            .expect("drop");
    }
}

/// `#[cached]` on a SQL backend: one computation, then hits; invalidation.
#[cfg(feature = "sql-sqlite")]
#[tokio::test]
async fn cached_functions_run_on_sqlite() {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    static CACHE: LazyLock<tokio::sync::OnceCell<Cache>> =
        LazyLock::new(tokio::sync::OnceCell::new);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let cache = CACHE
        .get_or_init(|| async {
            let backend = SqlBackend::connect("sqlite::memory:").await.expect("open");
            Cache::builder()
                .backend(backend)
                .namespace("fns")
                .build()
                .expect("cache")
        })
        .await
        .clone();

    #[covet::cached(cache = cache, key = "square:{n}", ttl = 60)]
    async fn square(cache: &Cache, n: u64) -> u64 {
        let _ = cache;
        RUNS.fetch_add(1, Ordering::SeqCst);
        n * n
    }

    assert_eq!(square(&cache, 7).await, 49);
    assert_eq!(square(&cache, 7).await, 49);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert!(square_invalidate(&cache, 7).await.expect("invalidate"));
    assert_eq!(square(&cache, 7).await, 49);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    let _: Arc<dyn CacheBackend> = Arc::new(
        SqlBackend::connect("sqlite::memory:")
            .await
            .expect("object safe"),
    );
}
