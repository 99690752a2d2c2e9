//! [`SqlStore`]: sessions in a PostgreSQL, MySQL/MariaDB or SQLite table,
//! through sqlx.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::store::{Changes, Data, Record, SessionInfo, SessionStore, oldest_first, user_of};

/// The queries every database runs the same way, for one pool type;
/// `$begin` opens the transaction a save runs in.
macro_rules! queries {
    ($pool:ty, |$p:ident| $begin:expr) => {
        pub(super) async fn migrate(pool: &$pool, sql: &Statements) -> sqlx::Result<()> {
            for statement in &sql.migrate {
                sqlx::query(statement).execute(pool).await?;
            }
            // Columns and indexes added since the first version: an error
            // means they exist already.
            for statement in &sql.upgrade {
                if let Err(e) = sqlx::query(statement).execute(pool).await {
                    tracing::debug!(error = %e, "session table already up to date");
                }
            }
            Ok(())
        }

        /// `false` if the key is taken.
        pub(super) async fn insert(
            pool: &$pool,
            sql: &Statements,
            key: &str,
            data: &str,
            expires: i64,
            user: Option<&str>,
        ) -> sqlx::Result<bool> {
            let inserted = sqlx::query(&sql.insert)
                .bind(key)
                .bind(data)
                .bind(expires)
                .bind(user)
                .execute(pool)
                .await;
            match inserted {
                Ok(_) => Ok(true),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                Err(e) => Err(e),
            }
        }

        pub(super) async fn load(
            pool: &$pool,
            sql: &Statements,
            key: &str,
            now: i64,
        ) -> sqlx::Result<Option<(String, i64)>> {
            sqlx::query_as(&sql.load)
                .bind(key)
                .bind(now)
                .fetch_optional(pool)
                .await
        }

        /// Locks the live row, merges `changes` into it and writes it back;
        /// `false` if there is no live row.
        pub(super) async fn save(
            $p: &$pool,
            sql: &Statements,
            key: &str,
            now: i64,
            changes: &Changes,
            expires: i64,
        ) -> Result<bool, Failure> {
            let mut tx = $begin.await?;
            let row: Option<(String,)> = sqlx::query_as(&sql.lock)
                .bind(key)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((text,)) = row else {
                tx.rollback().await?;
                return Ok(false);
            };
            let (data, user) = merge(NAME, &text, changes)?;
            sqlx::query(&sql.update)
                .bind(data)
                .bind(expires)
                .bind(user)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        }

        pub(super) async fn touch(
            pool: &$pool,
            sql: &Statements,
            expires: i64,
            key: &str,
            now: i64,
        ) -> sqlx::Result<bool> {
            let done = sqlx::query(&sql.touch)
                .bind(expires)
                .bind(key)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(super) async fn delete(pool: &$pool, sql: &Statements, key: &str) -> sqlx::Result<()> {
            sqlx::query(&sql.delete).bind(key).execute(pool).await?;
            Ok(())
        }

        pub(super) async fn user_sessions(
            pool: &$pool,
            sql: &Statements,
            user: &str,
            now: i64,
        ) -> sqlx::Result<Vec<(String, String, i64)>> {
            sqlx::query_as(&sql.user_sessions)
                .bind(user)
                .bind(now)
                .fetch_all(pool)
                .await
        }

        pub(super) async fn delete_user(
            pool: &$pool,
            sql: &Statements,
            user: &str,
            now: i64,
        ) -> sqlx::Result<u64> {
            let done = sqlx::query(&sql.delete_user)
                .bind(user)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        pub(super) async fn count(pool: &$pool, sql: &Statements, now: i64) -> sqlx::Result<u64> {
            let (n,): (i64,) = sqlx::query_as(&sql.count).bind(now).fetch_one(pool).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        pub(super) async fn delete_expired(
            pool: &$pool,
            sql: &Statements,
            now: i64,
        ) -> sqlx::Result<u64> {
            let done = sqlx::query(&sql.delete_expired)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }
    };
}

mod builder;
mod cleanup;
#[cfg(feature = "sql-mysql")]
mod mysql;
#[cfg(feature = "sql-postgres")]
mod postgres;
#[cfg(feature = "sql-sqlite")]
mod sqlite;
mod statements;

pub use builder::SqlStoreBuilder;
#[cfg(test)]
use builder::check_table_name;
pub use cleanup::CleanupTask;
use statements::{Dialect, Statements};
#[cfg(test)]
use statements::{MAX_IDENTIFIER_LEN, index_name};

/// Default table of a [`SqlStore`].
pub const DEFAULT_TABLE_NAME: &str = "covet_sessions";
/// Default maximum number of connections of the pool that
/// [`SqlStoreBuilder::connect`] opens.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// Name of the store in errors when no database is chosen yet.
const NAME: &str = "sql";
/// Attempts to find an unused id in `create`.
const CREATE_ATTEMPTS: u32 = 8;
/// Attempts of one operation that hits a deadlock, a serialization failure
/// or a busy SQLite database.
const TRANSIENT_ATTEMPTS: u32 = 8;

/// The pool of the database in use.
#[derive(Clone)]
enum Backend {
    #[cfg(feature = "sql-postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sql-mysql")]
    Mysql(sqlx::MySqlPool),
    #[cfg(feature = "sql-sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Calls the function `$op` of the module of the store's database with its
/// pool first, then `$arg`s, and awaits it.
macro_rules! dispatch {
    ($backend:expr, $op:ident($($arg:expr),* $(,)?)) => {
        match $backend {
            #[cfg(feature = "sql-postgres")]
            Backend::Postgres(pool) => postgres::$op(pool, $($arg),*).await,
            #[cfg(feature = "sql-mysql")]
            Backend::Mysql(pool) => mysql::$op(pool, $($arg),*).await,
            #[cfg(feature = "sql-sqlite")]
            Backend::Sqlite(pool) => sqlite::$op(pool, $($arg),*).await,
        }
    };
}

impl Backend {
    /// The dialect of this database: the one place that tells them apart
    /// (besides the pool type the queries run on).
    fn dialect(&self) -> &'static Dialect {
        match self {
            #[cfg(feature = "sql-postgres")]
            Backend::Postgres(_) => &postgres::DIALECT,
            #[cfg(feature = "sql-mysql")]
            Backend::Mysql(_) => &mysql::DIALECT,
            #[cfg(feature = "sql-sqlite")]
            Backend::Sqlite(_) => &sqlite::DIALECT,
        }
    }

    fn name(&self) -> &'static str {
        self.dialect().name
    }

    /// Whether `e` is worth retrying the whole operation for: a deadlock, a
    /// serialization failure, a lock wait timeout or a busy database.
    fn is_transient(&self, e: &sqlx::Error) -> bool {
        (self.dialect().is_transient)(e)
    }

    fn statements(&self, table: &str) -> Statements {
        (self.dialect().statements)(table)
    }
}

/// Why one attempt of an operation failed.
enum Failure {
    /// The database failed; retried if transient.
    Db(sqlx::Error),
    /// Anything else (corrupt data, ...); never retried.
    Session(Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Session(e)
    }
}

struct Inner {
    backend: Backend,
    table: String,
    sql: Statements,
}

/// Sessions in one SQL table on PostgreSQL, MySQL/MariaDB or SQLite
/// (features `sql-postgres`, `sql-mysql`, `sql-sqlite`), through sqlx.
///
/// The table (default [`DEFAULT_TABLE_NAME`]) has one row per session:
///
/// | column | type | holds |
/// | --- | --- | --- |
/// | `storage_key` | 64 characters, primary key | [`SessionId::storage_key`], the SHA-256 of the id (never the id itself) |
/// | `data` | text | the session data as a JSON object |
/// | `expires_at` | 64-bit integer, indexed | the expiry, in milliseconds since the Unix epoch |
///
/// [`migrate`](SqlStore::migrate) creates the table and the index on
/// `expires_at` if they do not exist.
///
/// - `load`, `save` and `touch` treat a row past its expiry as absent; such
///   rows stay in the table until
///   [`delete_expired`](SessionStore::delete_expired) removes them (call it
///   periodically, or let [`spawn_cleanup`](SqlStore::spawn_cleanup) do it).
/// - `create` inserts a row under a fresh random id, drawing another one if
///   the key is taken, so it never overwrites a session.
/// - `save` runs in a transaction that locks the row (`SELECT ... FOR
///   UPDATE` on PostgreSQL and MySQL, `BEGIN IMMEDIATE` on SQLite), applies
///   the [`Changes`] to the stored data and writes it back, so two
///   concurrent saves of different keys both keep their change. Deadlocks,
///   serialization failures, lock wait timeouts and busy SQLite databases
///   are retried a few times with a short backoff.
///
/// Database errors are [`Error::Store`] named after the database
/// (`postgres`, `mysql`, `sqlite`) with sqlx's error as their source; a row
/// whose data is not a JSON object is an [`Error::Store`] too, with
/// serde_json's error as its source.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use covet_session::{SessionStore, SqlStore, store::{Changes, Data, Record}};
/// # #[cfg(feature = "sql-sqlite")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = SqlStore::connect("sqlite::memory:").await?;
/// store.migrate().await?;
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let id = store.create(&Record::new(Data::new(), expires)).await?;
/// let mut changes = Changes::new(expires);
/// changes.set.insert("user".into(), serde_json::json!(7));
/// assert_eq!(store.save(&id, &changes).await?, Some(id.clone()));
/// assert_eq!(store.load(&id).await?.unwrap().data["user"], 7);
/// # Ok::<(), covet_session::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &self.inner.backend.name())
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch, as the `BIGINT` column holds them.
fn to_ms(t: SystemTime) -> i64 {
    i64::try_from(crate::time::to_ms(t)).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

fn from_ms(ms: i64) -> SystemTime {
    crate::time::from_ms(u64::try_from(ms).unwrap_or(0))
}

fn encode(store: &'static str, data: &Data) -> Result<String> {
    serde_json::to_string(data).map_err(|e| Error::store(store, "encoding the session data", e))
}

/// A row's data; anything but a JSON object is a corrupt record.
fn decode(store: &'static str, text: &str) -> Result<Data> {
    serde_json::from_str(text).map_err(|e| Error::corrupt(store, e))
}

/// The stored data `text` with `changes` applied, encoded again, and the
/// user it now belongs to.
fn merge(store: &'static str, text: &str, changes: &Changes) -> Result<(String, Option<String>)> {
    let mut data = decode(store, text)?;
    changes.apply_to(&mut data);
    let user = user_of(&data).map(str::to_owned);
    Ok((encode(store, &data)?, user))
}

impl SqlStore {
    /// A store on a PostgreSQL pool, in the table [`DEFAULT_TABLE_NAME`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://app@127.0.0.1:5432/app").await?;
    /// let store = covet_session::SqlStore::postgres(pool);
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "sql-postgres")]
    pub fn postgres(pool: sqlx::PgPool) -> SqlStore {
        Self::with_default_table(Backend::Postgres(pool))
    }

    /// A store on a MySQL or MariaDB pool, in the table
    /// [`DEFAULT_TABLE_NAME`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::MySqlPool::connect("mysql://app@127.0.0.1:3306/app").await?;
    /// let store = covet_session::SqlStore::mysql(pool);
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "sql-mysql")]
    pub fn mysql(pool: sqlx::MySqlPool) -> SqlStore {
        Self::with_default_table(Backend::Mysql(pool))
    }

    /// A store on a SQLite pool, in the table [`DEFAULT_TABLE_NAME`].
    ///
    /// ```
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let store = covet_session::SqlStore::sqlite(pool);
    /// store.migrate().await?;
    /// assert_eq!(store.table_name(), covet_session::DEFAULT_TABLE_NAME);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "sql-sqlite")]
    pub fn sqlite(pool: sqlx::SqlitePool) -> SqlStore {
        Self::with_default_table(Backend::Sqlite(pool))
    }

    fn with_default_table(backend: Backend) -> SqlStore {
        let sql = backend.statements(DEFAULT_TABLE_NAME);
        SqlStore {
            inner: Arc::new(Inner {
                backend,
                table: DEFAULT_TABLE_NAME.to_owned(),
                sql,
            }),
        }
    }

    /// Opens a pool on `url` with the default settings; the scheme picks
    /// the database (see [`SqlStoreBuilder::connect`]).
    ///
    /// ```no_run
    /// # async fn f() -> covet_session::Result<()> {
    /// let store = covet_session::SqlStore::connect("mysql://app@127.0.0.1:3306/app").await?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<SqlStore> {
        Self::builder().connect(url).await
    }

    /// A builder for the table name and pool size.
    ///
    /// ```
    /// let builder = covet_session::SqlStore::builder().table_name("app_sessions");
    /// # let _ = builder;
    /// ```
    pub fn builder() -> SqlStoreBuilder {
        SqlStoreBuilder {
            table: DEFAULT_TABLE_NAME.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// The table holding the sessions.
    ///
    /// ```
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = covet_session::SqlStore::connect("sqlite::memory:").await?;
    /// assert_eq!(store.table_name(), "covet_sessions");
    /// # Ok::<(), covet_session::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn table_name(&self) -> &str {
        &self.inner.table
    }

    /// Creates the table and the index on its expiry column if they do not
    /// exist. Safe to call at every start.
    ///
    /// ```
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = covet_session::SqlStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// store.migrate().await?;
    /// # Ok::<(), covet_session::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn migrate(&self) -> Result<()> {
        let sql = &self.inner.sql;
        self.run("creating the session table", || async move {
            Ok(dispatch!(&self.inner.backend, migrate(sql))?)
        })
        .await
    }

    /// The live sessions of `user_id`: storage key, data, expiry.
    async fn user_rows(&self, user_id: &str) -> Result<Vec<(String, String, i64)>> {
        let sql = &self.inner.sql;
        self.run("listing a user's sessions", || async move {
            Ok(dispatch!(
                &self.inner.backend,
                user_sessions(sql, user_id, now_ms())
            )?)
        })
        .await
    }

    /// Runs `attempt` until it succeeds, fails for good, or has hit a
    /// transient database error [`TRANSIENT_ATTEMPTS`] times.
    async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let backend = &self.inner.backend;
        let mut backoff = Duration::from_millis(2);
        let mut tries = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(Failure::Session(e)) => return Err(e),
                Err(Failure::Db(e)) if tries < TRANSIENT_ATTEMPTS && backend.is_transient(&e) => {
                    tracing::debug!(error = %e, tries, "{what}: transient database error, retrying");
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    tries += 1;
                }
                Err(Failure::Db(e)) => {
                    return Err(Error::store(backend.name(), what.to_owned(), e));
                }
            }
        }
    }
}

/// `d` plus up to as much again, so retrying writers spread out.
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let max = u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1);
    d + Duration::from_micros(u64::from(nanos % max))
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn create(&self, record: &Record) -> Result<SessionId> {
        let name = self.inner.backend.name();
        let data = encode(name, &record.data)?;
        let expires = to_ms(record.expires_at);
        let user = user_of(&record.data);
        let sql = &self.inner.sql;
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate()?;
            let key = id.storage_key();
            let (key, data) = (key, data.as_str());
            let inserted = self
                .run("creating a session", || async move {
                    Ok(dispatch!(
                        &self.inner.backend,
                        insert(sql, key, data, expires, user)
                    )?)
                })
                .await?;
            if inserted {
                return Ok(id);
            }
        }
        Err(Error::store_msg(
            name,
            "found no unused session id to create a session",
        ))
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let key = id.storage_key();
        let sql = &self.inner.sql;
        let row = self
            .run("loading a session", || async move {
                Ok(dispatch!(&self.inner.backend, load(sql, key, now_ms()))?)
            })
            .await?;
        match row {
            None => Ok(None),
            Some((text, expires)) => {
                let data = decode(self.inner.backend.name(), &text)?;
                Ok(Some(Record::new(data, from_ms(expires))))
            }
        }
    }

    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let key = id.storage_key();
        let expires = to_ms(changes.expires_at);
        let sql = &self.inner.sql;
        let saved = self
            .run("saving a session", || async move {
                dispatch!(
                    &self.inner.backend,
                    save(sql, key, now_ms(), changes, expires)
                )
            })
            .await?;
        Ok(saved.then(|| id.clone()))
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let key = id.storage_key();
        let sql = &self.inner.sql;
        self.run("deleting a session", || async move {
            Ok(dispatch!(&self.inner.backend, delete(sql, key))?)
        })
        .await
    }

    /// Deletes every row past its expiry and returns how many it deleted.
    /// Live sessions: one `COUNT(*)` over the rows not past their expiry
    /// (the expiry is indexed).
    async fn count(&self) -> Result<u64> {
        let sql = &self.inner.sql;
        self.run("counting sessions", || async move {
            Ok(dispatch!(&self.inner.backend, count(sql, now_ms()))?)
        })
        .await
    }

    async fn delete_expired(&self) -> Result<u64> {
        let sql = &self.inner.sql;
        self.run("deleting expired sessions", || async move {
            Ok(dispatch!(
                &self.inner.backend,
                delete_expired(sql, now_ms())
            )?)
        })
        .await
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>> {
        let key = id.storage_key();
        let expires = to_ms(expires_at);
        let sql = &self.inner.sql;
        let touched = self
            .run("touching a session", || async move {
                Ok(dispatch!(
                    &self.inner.backend,
                    touch(sql, expires, key, now_ms())
                )?)
            })
            .await?;
        Ok(touched.then(|| id.clone()))
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>> {
        let rows = self.user_rows(user_id).await?;
        let name = self.inner.backend.name();
        let mut infos = Vec::with_capacity(rows.len());
        for (key, text, expires) in rows {
            match decode(name, &text) {
                Ok(data) => {
                    infos.push(SessionInfo::from_record(
                        &key,
                        &Record::new(data, from_ms(expires)),
                    ));
                }
                Err(e) => e.log("a user's session does not decode; left out"),
            }
        }
        Ok(oldest_first(infos))
    }

    async fn delete_other_user_sessions(&self, user_id: &str, keep: &SessionId) -> Result<u64> {
        let sql = &self.inner.sql;
        let rows = self.user_rows(user_id).await?;
        let mut n = 0;
        for (key, _, _) in rows {
            if key == keep.storage_key() {
                continue;
            }
            let key = key.as_str();
            self.run("deleting a user's session", || async move {
                Ok(dispatch!(&self.inner.backend, delete(sql, key))?)
            })
            .await?;
            n += 1;
        }
        crate::security::revoked(user_id, n);
        Ok(n)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        let sql = &self.inner.sql;
        let n = self
            .run("deleting a user's sessions", || async move {
                Ok(dispatch!(
                    &self.inner.backend,
                    delete_user(sql, user_id, now_ms())
                )?)
            })
            .await?;
        crate::security::revoked(user_id, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["s", "_", "covet_sessions", "Sessions2", &"a".repeat(63)] {
            assert!(check_table_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "1sessions",
            "sessions;",
            "ses sions",
            "\"sessions\"",
            "`sessions`",
            "public.sessions",
            "sessions--",
            "séssions",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(check_table_name(bad), Err(Error::InvalidTableName(ref n)) if n == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn index_names_fit_and_differ() {
        assert_eq!(
            index_name("covet_sessions"),
            "covet_sessions_expires_at_idx"
        );
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        assert!(index_name(&long_a).len() <= MAX_IDENTIFIER_LEN);
        assert_ne!(index_name(&long_a), index_name(&long_b));
        assert_ne!(index_name(&long_a), long_a);
        assert!(check_table_name(&index_name(&long_a)).is_ok());
    }

    #[test]
    fn times_round_trip_in_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(to_ms(t), 1_700_000_000_123);
        assert_eq!(from_ms(to_ms(t)), t);
        assert_eq!(to_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_ms(-5), UNIX_EPOCH);
    }

    #[test]
    fn merge_applies_changes_and_rejects_corrupt_data() {
        let mut changes = Changes::new(SystemTime::now());
        changes.set.insert("b".into(), serde_json::json!(2));
        changes.removed.insert("a".into());
        let (merged, user) = merge("sqlite", r#"{"a":1,"c":3}"#, &changes).unwrap();
        assert_eq!(user, None);
        let data: Data = serde_json::from_str(&merged).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data["b"], 2);
        assert_eq!(data["c"], 3);
        for corrupt in ["{not json", "[1,2]", "42", ""] {
            let err = merge("sqlite", corrupt, &changes).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::CorruptRecord {
                        store: "sqlite",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(std::error::Error::source(&err).is_some());
        }
    }

    #[test]
    fn builder_defaults() {
        let b = SqlStore::builder();
        assert_eq!(b.table, DEFAULT_TABLE_NAME);
        assert_eq!(b.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(b.max_connections(0).max_connections, 1);
    }

    #[tokio::test]
    async fn unknown_schemes_and_bad_tables_are_errors() {
        let err = SqlStore::connect("oracle://scott:tiger@db/x")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Store { .. }), "{text}");
        let chain = format!("{err:?}");
        assert!(!chain.contains("tiger"), "{chain}");
        let err = SqlStore::builder()
            .table_name("x; DROP TABLE y")
            .connect("sqlite::memory:")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidTableName(_)));
    }
}
