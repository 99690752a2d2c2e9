//! The pool of one of the three databases, and the code every database
//! runs the same way (expanded once per database by [`on_pool!`]).

use std::fmt;

/// An application's sqlx pool, for [`SqlBackendBuilder::from_pool`](super::SqlBackendBuilder::from_pool).
///
/// Built with `From` from the pool of any database whose feature is on:
///
/// ```no_run
/// # #[cfg(feature = "sql-sqlite")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use covet_cache::backend::sql::{SqlBackend, SqlPool};
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let backend = SqlBackend::from_pool(SqlPool::from(pool)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum SqlPool {
    /// PostgreSQL.
    #[cfg(feature = "sql-postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sql-postgres")))]
    Postgres(sqlx::PgPool),
    /// MySQL or MariaDB.
    #[cfg(feature = "sql-mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sql-mysql")))]
    Mysql(sqlx::MySqlPool),
    /// SQLite.
    #[cfg(feature = "sql-sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sql-sqlite")))]
    Sqlite(sqlx::SqlitePool),
}

impl fmt::Debug for SqlPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SqlPool").field(&self.kind().name()).finish()
    }
}

#[cfg(feature = "sql-postgres")]
impl From<sqlx::PgPool> for SqlPool {
    fn from(pool: sqlx::PgPool) -> Self {
        SqlPool::Postgres(pool)
    }
}

#[cfg(feature = "sql-mysql")]
impl From<sqlx::MySqlPool> for SqlPool {
    fn from(pool: sqlx::MySqlPool) -> Self {
        SqlPool::Mysql(pool)
    }
}

#[cfg(feature = "sql-sqlite")]
impl From<sqlx::SqlitePool> for SqlPool {
    fn from(pool: sqlx::SqlitePool) -> Self {
        SqlPool::Sqlite(pool)
    }
}

impl SqlPool {
    pub(super) fn kind(&self) -> super::statements::Kind {
        use super::statements::Kind;
        match self {
            #[cfg(feature = "sql-postgres")]
            SqlPool::Postgres(_) => Kind::Postgres,
            #[cfg(feature = "sql-mysql")]
            SqlPool::Mysql(_) => Kind::Mysql,
            #[cfg(feature = "sql-sqlite")]
            SqlPool::Sqlite(_) => Kind::Sqlite,
        }
    }

    /// Opens a pool for `url` (`postgres://`, `mysql://`/`mariadb://`,
    /// `sqlite:`), with at most `max` connections.
    pub(super) async fn connect(
        url: &str,
        max: u32,
        acquire: std::time::Duration,
    ) -> Result<SqlPool, Open> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            #[cfg(feature = "sql-postgres")]
            "postgres" | "postgresql" => Ok(SqlPool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire)
                    .connect(url)
                    .await?,
            )),
            #[cfg(feature = "sql-mysql")]
            "mysql" | "mariadb" => {
                let url = url
                    .strip_prefix("mariadb")
                    .map_or_else(|| url.to_owned(), |rest| format!("mysql{rest}"));
                Ok(SqlPool::Mysql(
                    sqlx::mysql::MySqlPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .connect(&url)
                        .await?,
                ))
            }
            #[cfg(feature = "sql-sqlite")]
            "sqlite" => {
                use std::str::FromStr;
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(std::time::Duration::from_secs(5));
                // An in-memory database lives in one connection.
                let max = if url.contains(":memory:") || url.contains("mode=memory") {
                    1
                } else {
                    max
                };
                Ok(SqlPool::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        // A pool of one in-memory connection must never close it.
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .connect_with(options)
                        .await?,
                ))
            }
            _ => Err(Open::Scheme),
        }
    }
}

/// Why a pool could not be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum Open {
    #[error("unsupported URL scheme (enabled: {})", enabled_schemes())]
    Scheme,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

fn enabled_schemes() -> String {
    let mut out = Vec::new();
    if cfg!(feature = "sql-postgres") {
        out.push("postgres://");
    }
    if cfg!(feature = "sql-mysql") {
        out.push("mysql://, mariadb://");
    }
    if cfg!(feature = "sql-sqlite") {
        out.push("sqlite:");
    }
    out.join(", ")
}

/// Runs `$body` with `$p` bound to the concrete pool, once per database.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "sql-postgres")]
            $crate::backend::sql::SqlPool::Postgres($p) => $body,
            #[cfg(feature = "sql-mysql")]
            $crate::backend::sql::SqlPool::Mysql($p) => $body,
            #[cfg(feature = "sql-sqlite")]
            $crate::backend::sql::SqlPool::Sqlite($p) => $body,
        }
    };
}
pub(super) use on_pool;

/// Opens the transaction a read-modify-write runs in: SQLite takes the
/// write lock at once (`BEGIN IMMEDIATE`), so two of them never deadlock on
/// the upgrade.
pub(super) trait Begin {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Db>>> + Send;
}

#[cfg(feature = "sql-postgres")]
impl Begin for sqlx::PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Db>>> + Send {
        self.begin()
    }
}

#[cfg(feature = "sql-mysql")]
impl Begin for sqlx::MySqlPool {
    type Db = sqlx::MySql;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Db>>> + Send {
        self.begin()
    }
}

#[cfg(feature = "sql-sqlite")]
impl Begin for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Db>>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}
