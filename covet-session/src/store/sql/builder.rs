//! [`SqlStoreBuilder`]: the table name, the pool, the database by URL.

use std::sync::Arc;

use super::statements::MAX_IDENTIFIER_LEN;
use super::{Backend, Inner, NAME, SqlStore};
use crate::error::{Error, Result};

/// Builder of a [`SqlStore`]: the table name, and the pool size when the
/// store opens its own pool.
///
/// ```no_run
/// use covet_session::SqlStore;
/// # async fn f() -> covet_session::Result<()> {
/// let store = SqlStore::builder()
///     .table_name("shop_sessions")
///     .max_connections(20)
///     .connect("postgres://app@127.0.0.1:5432/shop")
///     .await?;
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SqlStoreBuilder {
    pub(super) table: String,
    pub(super) max_connections: u32,
}

impl SqlStoreBuilder {
    /// The table holding the sessions (default [`DEFAULT_TABLE_NAME`](super::DEFAULT_TABLE_NAME)): 1
    /// to 63 ASCII letters, digits or `_`, not starting with a digit.
    /// Anything else makes the constructors fail with
    /// [`Error::InvalidTableName`].
    ///
    /// ```
    /// use covet_session::{Error, SqlStore};
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let err = SqlStore::builder()
    ///     .table_name("sessions; DROP TABLE users")
    ///     .connect("sqlite::memory:")
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::InvalidTableName(_)));
    /// # });
    /// ```
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The maximum number of connections of the pool that
    /// [`connect`](SqlStoreBuilder::connect) opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`](super::DEFAULT_MAX_CONNECTIONS), at least 1). An in-memory SQLite
    /// database always gets a single connection, kept open.
    ///
    /// ```
    /// let builder = covet_session::SqlStore::builder().max_connections(4);
    /// # let _ = builder;
    /// ```
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// A store on a PostgreSQL pool.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://app@127.0.0.1:5432/app").await?;
    /// let store = covet_session::SqlStore::builder()
    ///     .table_name("app_sessions")
    ///     .postgres(pool)?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "sql-postgres")]
    pub fn postgres(self, pool: sqlx::PgPool) -> Result<SqlStore> {
        self.finish(Backend::Postgres(pool))
    }

    /// A store on a MySQL or MariaDB pool.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::MySqlPool::connect("mysql://app@127.0.0.1:3306/app").await?;
    /// let store = covet_session::SqlStore::builder()
    ///     .table_name("app_sessions")
    ///     .mysql(pool)?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "sql-mysql")]
    pub fn mysql(self, pool: sqlx::MySqlPool) -> Result<SqlStore> {
        self.finish(Backend::Mysql(pool))
    }

    /// A store on a SQLite pool.
    ///
    /// ```
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let store = covet_session::SqlStore::builder()
    ///     .table_name("app_sessions")
    ///     .sqlite(pool)?;
    /// store.migrate().await?;
    /// assert_eq!(store.table_name(), "app_sessions");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "sql-sqlite")]
    pub fn sqlite(self, pool: sqlx::SqlitePool) -> Result<SqlStore> {
        self.finish(Backend::Sqlite(pool))
    }

    /// Opens a pool on `url` and builds the store on it. The scheme picks
    /// the database: `postgres://` or `postgresql://` (feature
    /// `sql-postgres`), `mysql://` or `mariadb://` (feature `sql-mysql`),
    /// `sqlite:` (feature `sql-sqlite`; `sqlite::memory:` for an in-memory
    /// database, `sqlite://path?mode=rwc` to create the file if missing).
    /// Any other scheme, or one whose feature is off, is an
    /// [`Error::Store`]. The table is not created: call
    /// [`SqlStore::migrate`].
    ///
    /// ```
    /// # #[cfg(feature = "sql-sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = covet_session::SqlStore::builder()
    ///     .table_name("sessions")
    ///     .connect("sqlite::memory:")
    ///     .await?;
    /// store.migrate().await?;
    /// # Ok::<(), covet_session::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(self, url: &str) -> Result<SqlStore> {
        check_table_name(&self.table)?;
        // Only the scheme is ever shown: the rest may hold a password.
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let backend = match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => self.connect_postgres(url).await?,
            "mysql" | "mariadb" => self.connect_mysql(url).await?,
            "sqlite" => self.connect_sqlite(url).await?,
            _ => {
                return Err(Error::store_msg(
                    NAME,
                    format!("unsupported database URL scheme `{scheme}`"),
                ));
            }
        };
        self.finish(backend)
    }

    #[cfg(feature = "sql-postgres")]
    async fn connect_postgres(&self, url: &str) -> Result<Backend> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .connect(url)
            .await
            .map(Backend::Postgres)
            .map_err(|e| Error::store(super::postgres::NAME, "connecting to PostgreSQL", e))
    }

    #[cfg(not(feature = "sql-postgres"))]
    async fn connect_postgres(&self, _url: &str) -> Result<Backend> {
        Err(feature_off("sql-postgres"))
    }

    #[cfg(feature = "sql-mysql")]
    async fn connect_mysql(&self, url: &str) -> Result<Backend> {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(self.max_connections)
            .connect(url)
            .await
            .map(Backend::Mysql)
            .map_err(|e| Error::store(super::mysql::NAME, "connecting to MySQL", e))
    }

    #[cfg(not(feature = "sql-mysql"))]
    async fn connect_mysql(&self, _url: &str) -> Result<Backend> {
        Err(feature_off("sql-mysql"))
    }

    #[cfg(feature = "sql-sqlite")]
    async fn connect_sqlite(&self, url: &str) -> Result<Backend> {
        use std::str::FromStr as _;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::store(super::sqlite::NAME, "parsing the SQLite URL", e))?;
        let mut pool = sqlx::sqlite::SqlitePoolOptions::new();
        if url.contains(":memory:") || url.contains("mode=memory") {
            // An in-memory database lives as long as a connection to it:
            // one connection, never closed for idleness or age.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            pool = pool.max_connections(self.max_connections);
        }
        pool.connect_with(options)
            .await
            .map(Backend::Sqlite)
            .map_err(|e| Error::store(super::sqlite::NAME, "opening the SQLite database", e))
    }

    #[cfg(not(feature = "sql-sqlite"))]
    async fn connect_sqlite(&self, _url: &str) -> Result<Backend> {
        Err(feature_off("sql-sqlite"))
    }

    fn finish(self, backend: Backend) -> Result<SqlStore> {
        check_table_name(&self.table)?;
        let sql = backend.statements(&self.table);
        Ok(SqlStore {
            inner: Arc::new(Inner {
                backend,
                table: self.table,
                sql,
            }),
        })
    }
}

#[cfg(not(all(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
)))]
fn feature_off(feature: &str) -> Error {
    Error::store_msg(
        NAME,
        format!("this database needs the `{feature}` feature of covet-session"),
    )
}

/// Whether `table` is 1 to 63 ASCII letters, digits or `_`, not starting
/// with a digit: a name that needs no escaping in any of the dialects.
pub(super) fn check_table_name(table: &str) -> Result<()> {
    let bytes = table.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_IDENTIFIER_LEN
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidTableName(table.to_owned()))
    }
}
