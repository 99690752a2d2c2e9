//! PostgreSQL, MySQL/MariaDB and SQLite backend, through sqlx.
//!
//! [`SqlBackend`] keeps values in one table (default `covet_cache`) and
//! tags and leases in two more (`<table>_tags`, `<table>_leases`), created
//! by [`migrate`](SqlBackend::migrate) (run by `connect` unless disabled).
//! SQLite is the embedded, persistent choice: a file next to the
//! application, no server to run (`sqlite://cache.db`).
//!
//! ```no_run
//! # #[cfg(feature = "sql-sqlite")]
//! # async fn demo() -> Result<(), covet_cache::Error> {
//! use covet_cache::Cache;
//! use covet_cache::backend::sql::SqlBackend;
//!
//! let backend = SqlBackend::connect("sqlite://covet-cache.db").await?;
//! let cache = Cache::builder().backend(backend).namespace("app").build()?;
//! cache.set("greeting", &"hello", None).await?;
//! # Ok(()) }
//! ```
//!
//! # Guarantees and limits
//!
//! * **Keys** are compared byte for byte: the table's key column is binary,
//!   so no collation folds case or trailing spaces (`ns:A` and `ns:a` are two
//!   keys on MySQL too). Keys longer than 190 bytes are stored under their
//!   first 190 bytes and a SHA-256 of the whole key; the full key is kept
//!   beside it and checked on every read.
//! * **Values** up to [`max_value_size`](SqlBackendBuilder::max_value_size)
//!   (default [`DEFAULT_MAX_VALUE_SIZE`]); a larger one is
//!   [`Error::ValueTooLarge`] and nothing is stored. MySQL's
//!   `max_allowed_packet` must be larger than the limit.
//! * **Expiry** is checked on every read against the database's clock, so
//!   an expired row is never returned, whatever the application servers'
//!   clocks say; TTLs have millisecond resolution. Expired rows are deleted
//!   by a sweeper task every
//!   [`sweep_interval`](SqlBackendBuilder::sweep_interval) (default
//!   [`DEFAULT_SWEEP_INTERVAL`]), or by calling
//!   [`sweep`](crate::CacheBackend::sweep) (for example from a cron job
//!   with the sweeper off).
//! * **Tags** are rows written in the same transaction as the value, so
//!   [`invalidate_tag`](crate::CacheBackend::invalidate_tag) deletes exactly
//!   the live values stored with the tag, and lists them.
//! * **Patterns**: the glob's literal prefix becomes a range on the key
//!   index; the keys in that range are then matched exactly against the
//!   whole glob. A pattern that starts with a wildcard reads the table.
//! * **Counters** are read, checked and written in a transaction: signed
//!   64-bit, an overflow is [`Error::NotAnInteger`] and changes nothing
//!   (SQLite would otherwise turn it into a float).
//! * **Leases** are rows of a third table (`<table>_leases`) with a token,
//!   taken only when absent or expired, renewed and released only by their
//!   token (never advisory locks, which break with pooled connections).
//! * Every operation runs within the
//!   [`command_timeout`](SqlBackendBuilder::command_timeout) behind the
//!   shared circuit breaker, as on Redis; `#[cached]` fails open.

mod pool;
mod statements;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use self::pool::SqlPool;
use self::pool::{Begin, on_pool};
use self::statements::{KEY_ID_PREFIX, SWEEP_BATCH, Statements, valid_table};
use crate::backend::remote::{Backoff, Health, Link, Remote, redact};
use crate::backend::{CacheBackend, Capabilities, Entry, KeyTtl};
use crate::error::{ConfigError, Error, Result};
use crate::key::Glob;

/// Default table name.
pub const DEFAULT_TABLE: &str = "covet_cache";
/// Default bound of every operation.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default period of the sweeper that deletes expired rows.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(300);
/// Default largest value (4 MiB).
pub const DEFAULT_MAX_VALUE_SIZE: usize = 4 << 20;
/// Default size of the pool `connect` opens.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);
/// Keys per statement in batches.
const BATCH: usize = 500;
/// Rows read per page of a pattern delete.
const PAGE: usize = 1000;

/// A cache backend on a PostgreSQL, MySQL/MariaDB or SQLite table.
///
/// Cloning is cheap (one shared pool). See the [module docs](self) for
/// what it guarantees.
#[derive(Clone)]
pub struct SqlBackend {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    link: PoolLink,
    sql: Statements,
    remote: Remote,
    table: String,
    max_value: usize,
    sweeper: parking_lot::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.sweeper.get_mut().take() {
            task.abort();
        }
    }
}

impl fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("database", &self.inner.name)
            .field("table", &self.inner.table)
            .field("remote", &self.inner.remote)
            .finish()
    }
}

/// Builds a [`SqlBackend`]: [`SqlBackend::builder`], setters, then
/// [`connect`](Self::connect) or [`from_pool`](Self::from_pool).
///
/// ```no_run
/// # #[cfg(feature = "sql-postgres")]
/// # async fn demo() -> Result<(), covet_cache::Error> {
/// use std::time::Duration;
/// use covet_cache::backend::sql::SqlBackend;
///
/// let backend = SqlBackend::builder()
///     .table("page_cache")
///     .sweep_interval(Some(Duration::from_secs(60)))
///     .connect("postgres://app@127.0.0.1/app")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SqlBackendBuilder {
    table: String,
    migrate: bool,
    sweep_interval: Option<Duration>,
    command_timeout: Duration,
    max_value: usize,
    max_connections: u32,
}

impl Default for SqlBackendBuilder {
    fn default() -> Self {
        SqlBackendBuilder {
            table: DEFAULT_TABLE.to_owned(),
            migrate: true,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_value: DEFAULT_MAX_VALUE_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl SqlBackendBuilder {
    /// The values table (default [`DEFAULT_TABLE`]); tags go to
    /// `<table>_tags`. ASCII letters, digits and `_`, not starting with a
    /// digit, at most 48 bytes: anything else is
    /// [`ConfigError::InvalidTable`].
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether `connect`/`from_pool` create the tables (default `true`).
    /// Off, run [`SqlBackend::migrate`] at deploy time.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// How often a background task deletes expired rows (default
    /// [`DEFAULT_SWEEP_INTERVAL`]); `None` runs no task
    /// ([`CacheBackend::sweep`] still does it once).
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval.filter(|d| !d.is_zero());
        self
    }

    /// Bound of every operation, transactions included (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]; zero is raised to 1 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Largest value accepted, in bytes (default [`DEFAULT_MAX_VALUE_SIZE`]).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value = bytes;
        self
    }

    /// Connections of the pool `connect` opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`]; an in-memory SQLite database uses one).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Opens a pool for `url` and builds the backend: `postgres://...`,
    /// `mysql://...` (or `mariadb://...`), `sqlite://file.db`,
    /// `sqlite::memory:`. The database's feature must be on.
    pub async fn connect(self, url: &str) -> Result<SqlBackend> {
        self.check()?;
        let endpoint = redact(url);
        let pool = pool::SqlPool::connect(url, self.max_connections, self.command_timeout)
            .await
            .map_err(|e| match e {
                pool::Open::Scheme => Error::Config(ConfigError::InvalidUrl {
                    url: endpoint.clone(),
                    reason: "not a postgres://, mysql://, mariadb:// or sqlite: URL of an enabled feature",
                }),
                pool::Open::Sqlx(e) => Error::backend("sql", format!("connecting to {endpoint}"), e),
            })?;
        self.finish(pool, endpoint).await
    }

    /// Builds the backend on an application's pool.
    pub async fn from_pool(self, pool: impl Into<SqlPool>) -> Result<SqlBackend> {
        self.check()?;
        let pool = pool.into();
        let endpoint = format!("{} pool", pool.kind().name());
        self.finish(pool, endpoint).await
    }

    fn check(&self) -> Result<()> {
        if valid_table(&self.table) {
            Ok(())
        } else {
            Err(Error::Config(ConfigError::InvalidTable {
                table: self.table.chars().take(64).collect(),
            }))
        }
    }

    async fn finish(self, pool: SqlPool, endpoint: String) -> Result<SqlBackend> {
        let kind = pool.kind();
        let backend = SqlBackend {
            inner: Arc::new(Inner {
                name: kind.name(),
                sql: Statements::new(kind, &self.table),
                link: PoolLink {
                    pool,
                    health: Health::default(),
                },
                remote: Remote::new(
                    kind.name(),
                    endpoint,
                    self.command_timeout,
                    BREAKER_THRESHOLD,
                    BREAKER_COOL_DOWN,
                ),
                table: self.table,
                max_value: self.max_value,
                sweeper: parking_lot::Mutex::new(None),
            }),
        };
        if self.migrate {
            backend.migrate().await?;
        }
        if let Some(every) = self.sweep_interval {
            let task = tokio::spawn(sweeper(Arc::downgrade(&backend.inner), every));
            *backend.inner.sweeper.lock() = Some(task.abort_handle());
        }
        Ok(backend)
    }
}

/// Deletes expired rows every `every` while the backend lives.
async fn sweeper(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let backend = SqlBackend { inner };
        match backend.sweep().await {
            Ok(n) => tracing::debug!(
                database = backend.inner.name,
                rows = n,
                "swept expired cache rows"
            ),
            Err(e) => {
                tracing::warn!(database = backend.inner.name, error = %e, "sweeping expired cache rows failed")
            }
        }
    }
}

/// The pool as [`Remote::call`] sees it: sqlx replaces broken connections
/// itself, so there is nothing to renew.
struct PoolLink {
    pool: SqlPool,
    health: Health,
}

impl Link for PoolLink {
    type Conn = SqlPool;
    type Error = sqlx::Error;

    fn current(&self) -> (SqlPool, u64) {
        (self.pool.clone(), self.health.epoch())
    }

    fn is_connection_error(err: &sqlx::Error) -> bool {
        matches!(
            err,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_)
        )
    }

    fn is_timeout(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::PoolTimedOut)
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn renew(&self, epoch: u64) {
        self.health.claim_renewal(epoch);
    }
}

/// The primary key of `key`: its bytes, or for long keys the first
/// [`KEY_ID_PREFIX`] bytes and the SHA-256 of the whole key.
fn key_id(key: &str) -> Vec<u8> {
    let bytes = key.as_bytes();
    if bytes.len() <= KEY_ID_PREFIX {
        return bytes.to_vec();
    }
    let mut id = Vec::with_capacity(KEY_ID_PREFIX + 32);
    id.extend_from_slice(&bytes[..KEY_ID_PREFIX]);
    id.extend_from_slice(&Sha256::digest(bytes));
    id
}

/// The `key_id` range holding every key that starts with `prefix`:
/// `[low, high)`, `high = None` for no upper bound.
fn id_range(prefix: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let low = prefix.as_bytes()[..prefix.len().min(KEY_ID_PREFIX)].to_vec();
    let mut high = low.clone();
    while let Some(last) = high.pop() {
        if last < u8::MAX {
            high.push(last + 1);
            return (low, Some(high));
        }
    }
    (low, None)
}

/// A TTL as milliseconds to add to the database's clock; `None` never expires.
fn ttl_ms(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|d| {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
        if ms == 0 && !d.is_zero() {
            1
        } else {
            ms.min(i64::MAX / 4)
        }
    })
}

fn remaining(ms: Option<i64>) -> KeyTtl {
    match ms {
        None => KeyTtl::Persistent,
        Some(ms) if ms > 0 => KeyTtl::Expires(Duration::from_millis(ms.unsigned_abs())),
        Some(_) => KeyTtl::Missing,
    }
}

/// Whether a backend error is a deadlock or serialization race lost (see
/// [`is_transient`]): the statement can simply run again.
fn lost_a_race(err: &Error) -> bool {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<sqlx::Error>())
        .is_some_and(is_transient)
}

fn is_transient(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    let code = db.code();
    let code = code.as_deref().unwrap_or_default();
    // PostgreSQL: serialization failure, deadlock. MySQL: deadlock, lock
    // wait timeout (as SQLSTATE 40001 and HY000). SQLite: busy, locked.
    matches!(
        code,
        "40001" | "40P01" | "1213" | "1205" | "5" | "6" | "517" | "262"
    ) || db.message().contains("Deadlock")
        || db.message().contains("database is locked")
}

/// What a counter update found.
enum Counted {
    Value(i64),
    NotAnInteger,
}

impl SqlBackend {
    /// Connects with the defaults (see [`SqlBackendBuilder::connect`]) and
    /// creates the tables if they are missing.
    pub async fn connect(url: &str) -> Result<SqlBackend> {
        SqlBackend::builder().connect(url).await
    }

    /// Builds the backend with the defaults on an application's pool.
    pub async fn from_pool(pool: impl Into<SqlPool>) -> Result<SqlBackend> {
        SqlBackend::builder().from_pool(pool).await
    }

    /// A builder with the defaults.
    pub fn builder() -> SqlBackendBuilder {
        SqlBackendBuilder::default()
    }

    /// The values table.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Whether the circuit breaker is open: the database failed
    /// repeatedly and calls fail at once until a probe succeeds.
    pub fn is_circuit_open(&self) -> bool {
        self.inner.remote.is_open()
    }

    /// The pool (to share it, or to drop the tables in tests).
    pub fn pool(&self) -> &SqlPool {
        &self.inner.link.pool
    }

    /// Creates the values and tags tables and their indexes if they are
    /// missing. Idempotent; safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<()> {
        let sql = &self.inner.sql;
        let mut attempt = 0;
        loop {
            let done: std::result::Result<(), sqlx::Error> = async {
                for statement in &sql.migrate {
                    on_pool!(&self.inner.link.pool, p => sqlx::query(statement).execute(p).await.map(drop)?);
                }
                Ok(())
            }
            .await;
            match done {
                Ok(()) => return Ok(()),
                // Two processes creating the same table at once: PostgreSQL
                // reports a duplicate type; the second run finds it.
                Err(sqlx::Error::Database(e))
                    if attempt < 3
                        && (e.is_unique_violation() || e.code().as_deref() == Some("42P07")) =>
                {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::backend(
                        self.inner.name,
                        format!("creating table {}", self.inner.table),
                        e,
                    ));
                }
            }
        }
    }

    /// Runs `f` on the pool. With `retry` (an idempotent statement), a lost
    /// connection is retried once and a lost deadlock or serialization race
    /// again with [`Backoff`], within the command timeout.
    async fn call<T, F, Fut>(&self, what: &'static str, retry: bool, mut f: F) -> Result<T>
    where
        F: FnMut(SqlPool) -> Fut,
        Fut: Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        if !retry {
            return self
                .inner
                .remote
                .call(&self.inner.link, what, false, f)
                .await;
        }
        let mut backoff = Backoff::new(self.inner.remote.timeout());
        loop {
            match self
                .inner
                .remote
                .call(&self.inner.link, what, true, &mut f)
                .await
            {
                Err(e) if lost_a_race(&e) && backoff.wait().await => {}
                outcome => return outcome,
            }
        }
    }

    /// Runs a transaction (or statements that are safe to run again),
    /// again while it loses deadlocks or serialization races (with
    /// [`Backoff`], within the command timeout). A lost connection is not
    /// retried: a transaction may have committed.
    async fn transaction<T, F, Fut>(&self, what: &'static str, mut f: F) -> Result<T>
    where
        F: FnMut(SqlPool) -> Fut,
        Fut: Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        let mut backoff = Backoff::new(self.inner.remote.timeout());
        loop {
            match self.call(what, false, &mut f).await {
                Err(e) if lost_a_race(&e) && backoff.wait().await => {}
                outcome => return outcome,
            }
        }
    }

    fn check_value(&self, key: &str, value: &[u8]) -> Result<()> {
        Error::check_value_size(key, value.len(), Some(self.inner.max_value))
    }

    /// Runs `prefix` + the placeholders of a chunk of `ids` + `)` for each
    /// chunk; how many rows it deleted.
    async fn delete_in(&self, prefix: &str, ids: &[Vec<u8>]) -> Result<u64> {
        let kind = self.inner.sql.kind;
        let mut n = 0;
        for chunk in ids.chunks(BATCH) {
            let statement = format!("{prefix}{})", kind.params(1, chunk.len()));
            n += self
                .call("DELETE (batch)", true, |pool| {
                    let statement = &statement;
                    async move {
                        on_pool!(&pool, p => {
                            let mut q = sqlx::query(statement);
                            for id in chunk {
                                q = q.bind(id.as_slice());
                            }
                            Ok(q.execute(p).await?.rows_affected())
                        })
                    }
                })
                .await?;
        }
        Ok(n)
    }

    /// Deletes the rows whose `key_id` is in `ids`; how many there were.
    async fn delete_ids(&self, ids: &[Vec<u8>]) -> Result<u64> {
        self.delete_in(&self.inner.sql.delete_ids, ids).await
    }

    /// The live keys in `[low, high)` that match `glob`, with their ids.
    async fn matching(&self, glob: &Glob) -> Result<Vec<Vec<u8>>> {
        let sql = &self.inner.sql;
        let (mut low, high) = id_range(glob.literal_prefix());
        let mut found = Vec::new();
        loop {
            let rows: Vec<(Vec<u8>, Vec<u8>)> = self
                .call("SELECT (pattern)", true, |pool| {
                    let (low, high) = (&low, &high);
                    async move {
                        on_pool!(&pool, p => match high {
                            Some(high) => sqlx::query_as(&sql.scan_range).bind(low.as_slice()).bind(high.as_slice()).fetch_all(p).await,
                            None => sqlx::query_as(&sql.scan_from).bind(low.as_slice()).fetch_all(p).await,
                        })
                    }
                })
                .await?;
            let full = rows.len() >= PAGE;
            if let Some((last, _)) = rows.last() {
                // The next page starts just after the last id.
                low = last.clone();
                low.push(0);
            }
            for (id, key) in rows {
                if std::str::from_utf8(&key).is_ok_and(|k| glob.matches(k)) {
                    found.push(id);
                }
            }
            if !full {
                return Ok(found);
            }
        }
    }

    async fn invalidate(&self, tag: &str) -> Result<Vec<String>> {
        let sql = &self.inner.sql;
        let tag_id = key_id(tag);
        self.transaction("invalidate tag", |pool| {
            let tag_id = &tag_id;
            async move {
                on_pool!(&pool, p => {
                    let mut tx = p.begin_write().await?;
                    let keys: Vec<(Vec<u8>,)> = sqlx::query_as(&sql.tag_keys).bind(tag_id.as_slice()).fetch_all(&mut *tx).await?;
                    sqlx::query(&sql.tag_delete_values).bind(tag_id.as_slice()).execute(&mut *tx).await?;
                    sqlx::query(&sql.tag_delete_rows).bind(tag_id.as_slice()).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(keys.into_iter().map(|(k,)| String::from_utf8_lossy(&k).into_owned()).collect())
                })
            }
        })
        .await
    }
}

#[async_trait]
impl CacheBackend for SqlBackend {
    fn name(&self) -> &'static str {
        self.inner.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            exact_tag_keys: true,
            ttl_resolution: Duration::from_millis(1),
            native_expiry: false,
            max_value_len: Some(self.inner.max_value),
            leases: true,
            ..Capabilities::default()
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .call("SELECT", true, |pool| {
                let id = &id;
                async move { on_pool!(&pool, p => sqlx::query_as(&sql.get).bind(id.as_slice()).fetch_optional(p).await) }
            })
            .await?;
        Ok(row
            .filter(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| Bytes::from(v)))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let sql = &self.inner.sql;
        let mut out = vec![None; keys.len()];
        let ids: Vec<Vec<u8>> = keys.iter().map(|k| key_id(k)).collect();
        for (chunk_no, chunk) in ids.chunks(BATCH).enumerate() {
            let statement = format!("{}{})", sql.get_many, sql.kind.params(1, chunk.len()));
            let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = self
                .call("SELECT (batch)", true, |pool| {
                    let statement = &statement;
                    async move {
                        on_pool!(&pool, p => {
                            let mut q = sqlx::query_as(statement);
                            for id in chunk {
                                q = q.bind(id.as_slice());
                            }
                            q.fetch_all(p).await
                        })
                    }
                })
                .await?;
            let found: std::collections::HashMap<Vec<u8>, (Vec<u8>, Vec<u8>)> =
                rows.into_iter().map(|(id, k, v)| (id, (k, v))).collect();
            let base = chunk_no * BATCH;
            for (i, id) in chunk.iter().enumerate() {
                if let Some((k, v)) = found.get(id)
                    && k.as_slice() == keys[base + i].as_bytes()
                {
                    out[base + i] = Some(Bytes::from(v.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        self.check_value(key, &entry.value)?;
        if entry.ttl == Some(Duration::ZERO) {
            return self.delete(key).await.map(drop);
        }
        let sql = &self.inner.sql;
        let id = key_id(key);
        let ttl = ttl_ms(entry.ttl);
        let value = &entry.value;
        if entry.tags.is_empty() {
            return self
                .call("INSERT", true, |pool| {
                    let id = &id;
                    async move {
                        on_pool!(&pool, p => sqlx::query(&sql.upsert)
                            .bind(id.as_slice()).bind(key.as_bytes()).bind(value.as_ref()).bind(ttl)
                            .execute(p).await.map(drop))
                    }
                })
                .await;
        }
        let tag_ids: Vec<Vec<u8>> = entry.tags.iter().map(|t| key_id(t)).collect();
        self.transaction("INSERT (tagged)", |pool| {
            let (id, tag_ids) = (&id, &tag_ids);
            async move {
                on_pool!(&pool, p => {
                    let mut tx = p.begin_write().await?;
                    sqlx::query(&sql.upsert)
                        .bind(id.as_slice()).bind(key.as_bytes()).bind(value.as_ref()).bind(ttl)
                        .execute(&mut *tx).await?;
                    for tag in tag_ids {
                        sqlx::query(&sql.tag_add).bind(tag.as_slice()).bind(id.as_slice()).execute(&mut *tx).await?;
                    }
                    tx.commit().await
                })
            }
        })
        .await
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.check_value(key, value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        if ttl == Some(Duration::ZERO) {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
            return self.delete_many(&keys).await.map(drop);
        }
        let sql = &self.inner.sql;
        let ttl = ttl_ms(ttl);
        let ids: Vec<Vec<u8>> = entries.iter().map(|(k, _)| key_id(k)).collect();
        self.transaction("INSERT (batch)", |pool| {
            let ids = &ids;
            async move {
                on_pool!(&pool, p => {
                    let mut tx = p.begin_write().await?;
                    for ((key, value), id) in entries.iter().zip(ids) {
                        sqlx::query(&sql.upsert)
                            .bind(id.as_slice()).bind(key.as_bytes()).bind(value.as_ref()).bind(ttl)
                            .execute(&mut *tx).await?;
                    }
                    tx.commit().await
                })
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let n = self
            .call("DELETE", true, |pool| {
                let id = &id;
                async move {
                    on_pool!(&pool, p => Ok(sqlx::query(&sql.delete).bind(id.as_slice()).execute(p).await?.rows_affected()))
                }
            })
            .await?;
        Ok(n > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let ids: Vec<Vec<u8>> = keys.iter().map(|k| key_id(k)).collect();
        self.delete_in(&self.inner.sql.delete_many, &ids).await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(pattern)?;
        let ids = self.matching(&glob).await?;
        self.delete_ids(&ids).await
    }

    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(pattern)?;
        Ok(self.matching(&glob).await?.len() as u64)
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        if prefix.len() > KEY_ID_PREFIX || prefix.is_empty() {
            let glob = Glob::new(&format!("{}*", crate::key::escape_glob(prefix)))?;
            let ids = self.matching(&glob).await?;
            return self.delete_ids(&ids).await;
        }
        let sql = &self.inner.sql;
        let (low, high) = id_range(prefix);
        let high = high.unwrap_or_else(|| vec![u8::MAX; KEY_ID_PREFIX + 33]);
        // Run again when a statement loses a deadlock against concurrent
        // writes (InnoDB's gap locks): the live rows deleted by an earlier
        // attempt still count.
        let deleted = std::sync::atomic::AtomicU64::new(0);
        self.transaction("DELETE (clear)", |pool| {
            let (low, high, deleted) = (&low, &high, &deleted);
            async move {
                on_pool!(&pool, p => {
                    let live = sqlx::query(&sql.clear_live).bind(low.as_slice()).bind(high.as_slice()).execute(p).await?.rows_affected();
                    deleted.fetch_add(live, std::sync::atomic::Ordering::Relaxed);
                    sqlx::query(&sql.clear_all).bind(low.as_slice()).bind(high.as_slice()).execute(p).await?;
                    sqlx::query(&sql.clear_tags).bind(low.as_slice()).bind(high.as_slice()).execute(p).await?;
                    Ok(())
                })
            }
        })
        .await?;
        Ok(deleted.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.ttl(key).await? != KeyTtl::Missing)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let row: Option<(Vec<u8>, Option<i64>)> = self
            .call("SELECT (ttl)", true, |pool| {
                let id = &id;
                async move { on_pool!(&pool, p => sqlx::query_as(&sql.ttl).bind(id.as_slice()).fetch_optional(p).await) }
            })
            .await?;
        Ok(match row {
            Some((k, ms)) if k == key.as_bytes() => remaining(ms),
            _ => KeyTtl::Missing,
        })
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let row: Option<(Vec<u8>, Vec<u8>, Option<i64>)> = self
            .call("SELECT (value, ttl)", true, |pool| {
                let id = &id;
                async move { on_pool!(&pool, p => sqlx::query_as(&sql.get_ttl).bind(id.as_slice()).fetch_optional(p).await) }
            })
            .await?;
        Ok(match row {
            Some((k, v, ms)) if k == key.as_bytes() => Some((Bytes::from(v), remaining(ms))),
            _ => None,
        })
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let ttl = match ttl {
            Some(d) if d.is_zero() => None,
            other => ttl_ms(other),
        };
        let counted = self
            .transaction("INCR", |pool| {
                let id = &id;
                async move {
                    on_pool!(&pool, p => {
                        let mut tx = p.begin_write().await?;
                        let mut row: Option<(Vec<u8>, Option<i64>, i64)> =
                            sqlx::query_as(&sql.lock).bind(id.as_slice()).fetch_optional(&mut *tx).await?;
                        if row.is_none() {
                            let created = sqlx::query(&sql.insert_absent)
                                .bind(id.as_slice()).bind(key.as_bytes()).bind(delta.to_string().into_bytes()).bind(ttl)
                                .execute(&mut *tx).await?.rows_affected();
                            if created > 0 {
                                tx.commit().await?;
                                return Ok(Counted::Value(delta));
                            }
                            row = sqlx::query_as(&sql.lock).bind(id.as_slice()).fetch_optional(&mut *tx).await?;
                        }
                        let Some((value, expires, now)) = row else {
                            return Err(sqlx::Error::RowNotFound);
                        };
                        if expires.is_some_and(|e| e <= now) {
                            sqlx::query(&sql.restart)
                                .bind(delta.to_string().into_bytes()).bind(key.as_bytes()).bind(ttl).bind(id.as_slice())
                                .execute(&mut *tx).await?;
                            tx.commit().await?;
                            return Ok(Counted::Value(delta));
                        }
                        let current = std::str::from_utf8(&value).ok().and_then(|s| s.parse::<i64>().ok());
                        let Some(next) = current.and_then(|c| c.checked_add(delta)) else {
                            tx.rollback().await?;
                            return Ok(Counted::NotAnInteger);
                        };
                        sqlx::query(&sql.set_value)
                            .bind(next.to_string().into_bytes()).bind(id.as_slice())
                            .execute(&mut *tx).await?;
                        tx.commit().await?;
                        Ok(Counted::Value(next))
                    })
                }
            })
            .await?;
        match counted {
            Counted::Value(v) => Ok(v),
            Counted::NotAnInteger => Err(Error::NotAnInteger {
                key: key.to_owned(),
            }),
        }
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        Ok(self.invalidate(tag).await?.len() as u64)
    }

    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        let keys = self.invalidate(tag).await?;
        Ok((keys.len() as u64, Some(keys)))
    }

    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let ttl = ttl_ms(Some(ttl.max(Duration::from_millis(1))));
        let holder: Option<(Vec<u8>,)> = self
            .call("lease", true, |pool| {
                let id = &id;
                async move {
                    on_pool!(&pool, p => {
                        sqlx::query(&sql.lease_take)
                            .bind(id.as_slice()).bind(token.as_bytes()).bind(ttl)
                            .execute(p).await?;
                        sqlx::query_as(&sql.lease_holder).bind(id.as_slice()).fetch_optional(p).await
                    })
                }
            })
            .await?;
        Ok(holder.is_some_and(|(v,)| v == token.as_bytes()))
    }

    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let ttl = ttl_ms(Some(ttl.max(Duration::from_millis(1))));
        let n = self
            .call("lease renew", true, |pool| {
                let id = &id;
                async move {
                    on_pool!(&pool, p => Ok(sqlx::query(&sql.lease_renew)
                        .bind(ttl).bind(id.as_slice()).bind(token.as_bytes())
                        .execute(p).await?.rows_affected()))
                }
            })
            .await?;
        Ok(n > 0)
    }

    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        let sql = &self.inner.sql;
        let id = key_id(key);
        let n = self
            .call("lease release", true, |pool| {
                let id = &id;
                async move {
                    on_pool!(&pool, p => Ok(sqlx::query(&sql.lease_release)
                        .bind(id.as_slice()).bind(token.as_bytes())
                        .execute(p).await?.rows_affected()))
                }
            })
            .await?;
        Ok(n > 0)
    }

    fn supports_leases(&self) -> bool {
        true
    }

    async fn sweep(&self) -> Result<u64> {
        let sql = &self.inner.sql;
        let pool = &self.inner.link.pool;
        let mut total = 0;
        let swept: std::result::Result<(), sqlx::Error> = async {
            loop {
                let n = on_pool!(pool, p => sqlx::query(&sql.sweep).execute(p).await?.rows_affected());
                total += n;
                if n < SWEEP_BATCH as u64 {
                    break;
                }
            }
            total += on_pool!(pool, p => sqlx::query(&sql.sweep_leases).execute(p).await?.rows_affected());
            on_pool!(pool, p => sqlx::query(&sql.sweep_tags).execute(p).await.map(drop)?);
            Ok(())
        }
        .await;
        swept.map_err(|e| Error::backend(self.inner.name, "sweeping expired rows", e))?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_keep_their_prefix_and_a_hash() {
        assert_eq!(key_id("ns:a"), b"ns:a");
        let long = format!("ns:{}", "x".repeat(300));
        let id = key_id(&long);
        assert_eq!(id.len(), KEY_ID_PREFIX + 32);
        assert_eq!(&id[..KEY_ID_PREFIX], &long.as_bytes()[..KEY_ID_PREFIX]);
        let other = format!("ns:{}y", "x".repeat(299));
        assert_ne!(key_id(&other), id);
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(id_range("ns:"), (b"ns:".to_vec(), Some(b"ns;".to_vec())));
        assert_eq!(id_range(""), (Vec::new(), None));
        let (low, high) = id_range("a\u{7f}");
        assert_eq!(
            (low.as_slice(), high.as_deref()),
            (&b"a\x7f"[..], Some(&b"a\x80"[..]))
        );
        let long = "k".repeat(400);
        let (low, high) = id_range(&long);
        assert_eq!(low.len(), KEY_ID_PREFIX);
        assert!(high.is_some_and(|h| h.len() == KEY_ID_PREFIX));
    }

    #[test]
    fn ttls_round_up_to_a_millisecond() {
        assert_eq!(ttl_ms(None), None);
        assert_eq!(ttl_ms(Some(Duration::from_micros(10))), Some(1));
        assert_eq!(ttl_ms(Some(Duration::from_millis(1500))), Some(1500));
        assert_eq!(ttl_ms(Some(Duration::MAX)), Some(i64::MAX / 4));
        assert_eq!(remaining(Some(0)), KeyTtl::Missing);
        assert_eq!(remaining(None), KeyTtl::Persistent);
    }
}
