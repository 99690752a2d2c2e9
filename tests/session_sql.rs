//! `SqlStore` beyond the conformance suite, on each database: expiry
//! sweeps, the cleanup task, table names, corrupt rows, concurrent saves
//! and what the table holds.
//!
//! Every test works in a table of its own and drops it at the end.

#![cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use covet::session::store::{Changes, Data, Record};
use covet::session::{Error, SessionStore, SqlStore};
#[allow(unused_imports)]
use covet_test::{Server, require};
use serde_json::json;

/// The databases under test.
#[derive(Debug, Clone, Copy)]
enum Db {
    #[cfg(feature = "sql-postgres")]
    Postgres,
    #[cfg(feature = "sql-mysql")]
    Mysql,
    #[cfg(feature = "sql-sqlite")]
    Sqlite,
}

/// A direct connection to the test table, to check and corrupt rows.
enum Raw {
    #[cfg(feature = "sql-postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sql-mysql")]
    Mysql(sqlx::MySqlPool),
    #[cfg(feature = "sql-sqlite")]
    Sqlite {
        pool: sqlx::SqlitePool,
        /// Holds the database file; removed on drop.
        _dir: tempfile::TempDir,
    },
}

/// A store on a fresh table, and raw access to that table.
struct Fixture {
    store: SqlStore,
    raw: Raw,
    table: String,
}

fn table_name() -> String {
    covet_test::unique_namespace("covet_sql_test").replace('-', "_")
}

fn in_secs(s: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(s)
}

fn ago(s: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(s)
}

fn data(pairs: &[(&str, serde_json::Value)]) -> Data {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The store on a new, migrated table, or `None` if the server is missing.
async fn fixture(db: Db) -> Option<Fixture> {
    let table = table_name();
    let builder = SqlStore::builder().table_name(&table);
    let (store, raw) = match db {
        #[cfg(feature = "sql-postgres")]
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&require(Server::Postgres)?)
                .await
                .expect("connecting to PostgreSQL");
            let store = builder.postgres(pool.clone()).expect("a valid table name");
            (store, Raw::Postgres(pool))
        }
        #[cfg(feature = "sql-mysql")]
        Db::Mysql => {
            let pool = sqlx::MySqlPool::connect(&require(Server::Mysql)?)
                .await
                .expect("connecting to MySQL");
            let store = builder.mysql(pool.clone()).expect("a valid table name");
            (store, Raw::Mysql(pool))
        }
        #[cfg(feature = "sql-sqlite")]
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("sessions.db"))
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options)
                .await
                .expect("opening SQLite");
            let store = builder.sqlite(pool.clone()).expect("a valid table name");
            (store, Raw::Sqlite { pool, _dir: dir })
        }
    };
    store.migrate().await.expect("creating the session table");
    store.migrate().await.expect("migrating twice");
    assert_eq!(store.table_name(), table);
    Some(Fixture { store, raw, table })
}

impl Fixture {
    fn quoted(&self) -> String {
        match self.raw {
            #[cfg(feature = "sql-mysql")]
            Raw::Mysql(_) => format!("`{}`", self.table),
            #[allow(unreachable_patterns)]
            _ => format!("\"{}\"", self.table),
        }
    }

    /// Runs `sql` on the raw connection.
    async fn execute(&self, sql: &str) {
        match &self.raw {
            #[cfg(feature = "sql-postgres")]
            Raw::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await.expect(sql);
            }
            #[cfg(feature = "sql-mysql")]
            Raw::Mysql(pool) => {
                sqlx::query(sql).execute(pool).await.expect(sql);
            }
            #[cfg(feature = "sql-sqlite")]
            Raw::Sqlite { pool, .. } => {
                sqlx::query(sql).execute(pool).await.expect(sql);
            }
        }
    }

    /// Every row: storage key, data, expiry.
    async fn rows(&self) -> Vec<(String, String, i64)> {
        let sql = format!(
            "SELECT storage_key, data, expires_at FROM {}",
            self.quoted()
        );
        match &self.raw {
            #[cfg(feature = "sql-postgres")]
            Raw::Postgres(pool) => sqlx::query_as(&sql).fetch_all(pool).await.expect(&sql),
            #[cfg(feature = "sql-mysql")]
            Raw::Mysql(pool) => sqlx::query_as(&sql).fetch_all(pool).await.expect(&sql),
            #[cfg(feature = "sql-sqlite")]
            Raw::Sqlite { pool, .. } => sqlx::query_as(&sql).fetch_all(pool).await.expect(&sql),
        }
    }

    /// Drops the test table.
    async fn finish(self) {
        self.execute(&format!("DROP TABLE IF EXISTS {}", self.quoted()))
            .await;
    }
}

/// One test per case and database, each on its own table.
macro_rules! per_database {
    ($($case:ident),* $(,)?) => {
        per_database!(@db "sql-postgres", postgres, Postgres; $($case),*);
        per_database!(@db "sql-mysql", mysql, Mysql; $($case),*);
        per_database!(@db "sql-sqlite", sqlite, Sqlite; $($case),*);
    };
    (@db $feature:literal, $module:ident, $db:ident; $($case:ident),*) => {
        #[cfg(feature = $feature)]
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(f) = super::fixture(super::Db::$db).await {
                        super::$case(&f).await;
                        f.finish().await;
                    }
                }
            )*
        }
    };
}

per_database!(
    delete_expired_counts_and_removes_only_expired_rows,
    cleanup_task_removes_expired_rows,
    corrupt_data_is_a_typed_corrupt_record_error,
    twenty_concurrent_saves_all_persist,
    rows_hold_the_storage_key_and_json,
    expired_rows_are_absent_until_swept,
);

async fn delete_expired_counts_and_removes_only_expired_rows(f: &Fixture) {
    let s = &f.store;
    assert_eq!(s.delete_expired().await.unwrap(), 0, "empty table");
    let mut expired = Vec::new();
    for i in 0..3 {
        let id = s
            .create(&Record::new(data(&[("n", json!(i))]), ago(5)))
            .await
            .unwrap();
        expired.push(id);
    }
    let live_a = s
        .create(&Record::new(data(&[("a", json!(1))]), in_secs(60)))
        .await
        .unwrap();
    let live_b = s
        .create(&Record::new(Data::new(), in_secs(60)))
        .await
        .unwrap();
    assert_eq!(f.rows().await.len(), 5);

    assert_eq!(s.delete_expired().await.unwrap(), 3);
    let left: Vec<String> = f.rows().await.into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&live_a.storage_key().to_owned()));
    assert!(left.contains(&live_b.storage_key().to_owned()));
    for id in &expired {
        assert!(!left.contains(&id.storage_key().to_owned()));
    }
    assert_eq!(s.load(&live_a).await.unwrap().unwrap().data["a"], 1);
    assert_eq!(
        s.delete_expired().await.unwrap(),
        0,
        "nothing left to sweep"
    );
}

async fn cleanup_task_removes_expired_rows(f: &Fixture) {
    let s = &f.store;
    for _ in 0..2 {
        s.create(&Record::new(Data::new(), ago(1))).await.unwrap();
    }
    let live = s
        .create(&Record::new(Data::new(), in_secs(60)))
        .await
        .unwrap();
    let soon = s
        .create(&Record::new(
            Data::new(),
            SystemTime::now() + Duration::from_millis(300),
        ))
        .await
        .unwrap();
    let task = s.spawn_cleanup(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = f.rows().await.into_iter().map(|(k, _, _)| k).collect();
        if keys == [live.storage_key()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cleanup task left {} rows",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!task.is_finished());
    drop(task);
    assert!(s.load(&soon).await.unwrap().is_none());

    // Once the handle is dropped, expired rows stay until the next sweep.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.create(&Record::new(Data::new(), ago(1))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.rows().await.len(), 2, "the task is stopped");
}

async fn corrupt_data_is_a_typed_corrupt_record_error(f: &Fixture) {
    let s = &f.store;
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), in_secs(60)))
        .await
        .unwrap();
    for corrupt in ["{not json", "[1, 2, 3]"] {
        f.execute(&format!(
            "UPDATE {} SET data = '{corrupt}' WHERE storage_key = '{}'",
            f.quoted(),
            id.storage_key()
        ))
        .await;
        let err = s.load(&id).await.unwrap_err();
        assert!(matches!(err, Error::CorruptRecord { .. }), "{err}");
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<serde_json::Error>(), "{source}");

        let mut changes = Changes::new(in_secs(60));
        changes.set.insert("b".into(), json!(2));
        let err = s.save(&id, &changes).await.unwrap_err();
        assert!(matches!(err, Error::CorruptRecord { .. }), "{err}");
        // The failed save wrote nothing.
        let rows = f.rows().await;
        assert_eq!(rows[0].1, corrupt);
    }
    // The expiry still moves, and the row can be deleted.
    assert_eq!(s.touch(&id, in_secs(90)).await.unwrap(), Some(id.clone()));
    s.delete(&id).await.unwrap();
    assert!(f.rows().await.is_empty());
}

async fn twenty_concurrent_saves_all_persist(f: &Fixture) {
    let s: Arc<dyn SessionStore> = Arc::new(f.store.clone());
    let id = s
        .create(&Record::new(data(&[("base", json!(0))]), in_secs(60)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (s, id) = (s.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut changes = Changes::new(in_secs(120));
            changes.set.insert(format!("k{i}"), json!(i));
            s.save(&id, &changes).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Some(id.clone()));
    }
    let r = s.load(&id).await.unwrap().unwrap();
    assert_eq!(r.data.len(), 21, "{:?}", r.data.keys());
    for i in 0..20 {
        assert_eq!(r.data[&format!("k{i}")], json!(i));
    }
    assert!(r.expires_at > in_secs(100));
}

async fn rows_hold_the_storage_key_and_json(f: &Fixture) {
    let s = &f.store;
    let expires = in_secs(60);
    let id = s
        .create(&Record::new(
            data(&[("name", json!("zoë ✓")), ("n", json!(1.5))]),
            expires,
        ))
        .await
        .unwrap();
    let rows = f.rows().await;
    assert_eq!(rows.len(), 1);
    let (key, text, expires_at) = &rows[0];
    assert_eq!(key, &id.storage_key());
    assert_eq!(key.len(), 64);
    assert!(!text.contains(id.expose()) && key != id.expose());
    let stored: Data = serde_json::from_str(text).unwrap();
    assert_eq!(stored["name"], "zoë ✓");
    let ms = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert_eq!(*expires_at, i64::try_from(ms).unwrap());
    let loaded = s.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data["name"], "zoë ✓");
    assert_eq!(
        loaded
            .expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        ms
    );
}

async fn expired_rows_are_absent_until_swept(f: &Fixture) {
    let s = &f.store;
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), ago(1)))
        .await
        .unwrap();
    assert!(s.load(&id).await.unwrap().is_none());
    let mut changes = Changes::new(in_secs(60));
    changes.set.insert("b".into(), json!(2));
    assert!(s.save(&id, &changes).await.unwrap().is_none());
    assert!(s.touch(&id, in_secs(60)).await.unwrap().is_none());
    // The row is still there, unchanged, until a sweep.
    let rows = f.rows().await;
    assert_eq!(rows.len(), 1);
    let stored: Data = serde_json::from_str(&rows[0].1).unwrap();
    assert_eq!(stored, data(&[("a", json!(1))]));
    assert_eq!(s.delete_expired().await.unwrap(), 1);
    assert!(f.rows().await.is_empty());
}

fn assert_invalid(built: covet::session::Result<SqlStore>, name: &str) {
    let err = built.expect_err("an invalid table name is refused");
    assert!(
        matches!(err, Error::InvalidTableName(ref n) if n == name),
        "{err}"
    );
}

/// Table names that are not plain identifiers never reach SQL.
#[tokio::test]
async fn invalid_table_names_are_rejected() {
    let bad = [
        "",
        "9lives",
        "sessions; DROP TABLE users",
        "sessions\"",
        "sess`ions",
        "a.b",
        "sessions --",
        "tablé",
    ];
    let too_long = "t".repeat(64);
    let names = bad.iter().copied().chain([too_long.as_str()]);
    for name in names {
        #[cfg(feature = "sql-postgres")]
        {
            let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
            assert_invalid(SqlStore::builder().table_name(name).postgres(pool), name);
        }
        #[cfg(feature = "sql-mysql")]
        {
            let pool = sqlx::MySqlPool::connect_lazy("mysql://nobody@127.0.0.1:1/none").unwrap();
            assert_invalid(SqlStore::builder().table_name(name).mysql(pool), name);
        }
        #[cfg(feature = "sql-sqlite")]
        {
            let pool = sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap();
            assert_invalid(SqlStore::builder().table_name(name).sqlite(pool), name);
        }
        // Checked before connecting: no server is needed to be told.
        let err = SqlStore::builder()
            .table_name(name)
            .connect("postgres://nobody@127.0.0.1:1/none")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidTableName(_)), "{err}");
    }
    #[cfg(feature = "sql-sqlite")]
    {
        let store = SqlStore::builder()
            .table_name("t".repeat(63))
            .connect("sqlite::memory:")
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let id = store
            .create(&Record::new(Data::new(), in_secs(60)))
            .await
            .unwrap();
        assert!(store.load(&id).await.unwrap().is_some());
    }
}

/// A database URL with an unknown scheme is an error that does not show
/// the URL.
#[tokio::test]
async fn unknown_url_schemes_are_errors() {
    let err = SqlStore::connect("mssql://sa:hunter2@127.0.0.1/db")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

/// A save that finds the SQLite database locked by another writer retries,
/// and gives up with a store error if the lock outlasts the retries.
#[cfg(feature = "sql-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sqlite_database_is_retried() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // No busy timeout: a locked database fails at once, so only the
    // store's retries can wait for it.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("sessions.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::ZERO);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let store = SqlStore::builder()
        .table_name(table_name())
        .sqlite(pool.clone())
        .unwrap();
    store.migrate().await.unwrap();
    let id = store
        .create(&Record::new(Data::new(), in_secs(60)))
        .await
        .unwrap();
    let mut changes = Changes::new(in_secs(60));
    changes.set.insert("k".into(), json!(1));

    let blocker = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let save = tokio::spawn({
        let (store, id, changes) = (store.clone(), id.clone(), changes.clone());
        async move { store.save(&id, &changes).await }
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    blocker.rollback().await.unwrap();
    assert_eq!(save.await.unwrap().unwrap(), Some(id.clone()));
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["k"], 1);

    let blocker = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let err = store.save(&id, &changes).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Store {
                store: "sqlite",
                ..
            }
        ),
        "{err}"
    );
    blocker.rollback().await.unwrap();
}
