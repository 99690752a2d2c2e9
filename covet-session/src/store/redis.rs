//! [`RedisStore`]: sessions in Redis or a Redis Cluster, one hash per
//! session.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covet_cache::{RedisBackend, RedisConnection};
use redis::Script;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::store::{Changes, Data, Record, SessionStore};

const NAME: &str = "redis";

/// Default key prefix of a [`RedisStore`].
pub const DEFAULT_KEY_PREFIX: &str = "covet:session:";
/// Default timeout of one Redis command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default timeout of connecting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The reserved hash field holding the expiry (milliseconds since the Unix
/// epoch). Session keys may not start with `__covet`, so it never collides
/// with a session key; it also keeps an empty session an existing hash.
const EXPIRES_FIELD: &str = "__covet_expires_at";

/// KEYS[1] the session; ARGV[1] expiry ms; ARGV[2..] field, value pairs.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], '__covet_expires_at', ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
",
    )
});

struct Inner {
    conn: RedisConnection,
    prefix: String,
    command_timeout: Duration,
    cluster: bool,
}

/// Sessions in Redis or a Redis Cluster (feature `redis`).
///
/// Each session is one Redis hash at `<prefix><storage key>` (the SHA-256
/// of the id, never the id itself), one field per session key holding the
/// value as a JSON string, plus a reserved field `__covet_expires_at` with
/// the expiry in milliseconds since the Unix epoch. The hash carries a Redis
/// expiry (`PEXPIREAT`), so Redis reclaims expired sessions itself and
/// [`delete_expired`](SessionStore::delete_expired) does nothing and
/// returns 0.
///
/// `create`, `save` and `touch` are Lua scripts on that one key, hence
/// atomic: a save applies only what changed (`HDEL` removed keys, `DEL` when
/// cleared, `HSET` set keys, then the new expiry) and does nothing if the
/// session has expired or was deleted meanwhile, so two concurrent requests
/// that change different keys both keep their change. As every session is a
/// single Redis key, the store works on a Redis Cluster without hash tags.
///
/// Every command has a timeout; errors are [`Error::Store`] with the `redis`
/// crate's error (or the elapsed timeout) as their source.
///
/// ```no_run
/// use std::time::Duration;
/// use covet_session::RedisStore;
/// # async fn f() -> covet_session::Result<()> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let custom = RedisStore::builder()
///     .key_prefix("myapp:session:")
///     .command_timeout(Duration::from_millis(500))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// let cluster = RedisStore::connect_cluster(&[
///     "redis://127.0.0.1:7000",
///     "redis://127.0.0.1:7001",
/// ])
/// .await?;
/// # let _ = (store, custom, cluster);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("cluster", &self.inner.cluster)
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`RedisStore`].
///
/// ```no_run
/// use std::time::Duration;
/// use covet_session::RedisStore;
/// # async fn f() -> covet_session::Result<()> {
/// let store = RedisStore::builder()
///     .key_prefix("shop:sess:")
///     .connect_timeout(Duration::from_secs(1))
///     .command_timeout(Duration::from_millis(200))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

impl RedisStoreBuilder {
    /// The prefix of every session's Redis key (default
    /// [`DEFAULT_KEY_PREFIX`]).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = at_least_1ms(timeout);
        self
    }

    /// How long one command may take (default [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = at_least_1ms(timeout);
        self
    }

    /// Connects to one server (`redis://[user:password@]host:port[/db]`).
    /// The connection is a covet cache [`RedisBackend`]'s: multiplexed,
    /// reconnecting by itself, with the same connect and response timeouts.
    pub async fn connect(self, url: &str) -> Result<RedisStore> {
        let backend = self
            .backend_builder()
            .build(url)
            .await
            // The source names the endpoint, password masked.
            .map_err(|e| Error::store(NAME, "connecting to Redis".to_owned(), e))?;
        Ok(self.finish(&backend))
    }

    /// Connects to a Redis Cluster through some of its nodes (the others
    /// are discovered).
    pub async fn connect_cluster<S: AsRef<str>>(self, urls: &[S]) -> Result<RedisStore> {
        let backend = self
            .backend_builder()
            .build_cluster(urls)
            .await
            // The source names the endpoints, passwords masked.
            .map_err(|e| Error::store(NAME, "connecting to the Redis Cluster".to_owned(), e))?;
        Ok(self.finish(&backend))
    }

    /// Uses the connection of an existing [`RedisBackend`] (sessions and
    /// cache then share one multiplexed connection, and the backend's
    /// command timeout applies).
    pub fn from_backend(self, backend: &RedisBackend) -> RedisStore {
        self.finish(backend)
    }

    fn backend_builder(&self) -> covet_cache::RedisBackendBuilder {
        RedisBackend::builder()
            .connect_timeout(self.connect_timeout)
            .command_timeout(self.command_timeout)
            // Session stores report every failure to the layer (a 500);
            // failing fast is the cache's policy, not theirs.
            .circuit_breaker(0, Duration::from_secs(1))
    }

    fn finish(self, backend: &RedisBackend) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                conn: backend.connection(),
                prefix: self.prefix,
                command_timeout: backend.command_timeout(),
                cluster: backend.is_cluster(),
            }),
        }
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .max(1)
}

fn encode(key: &str, v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|source| Error::Encode {
        key: key.to_owned(),
        source,
    })
}

impl RedisStore {
    /// Connects to one server with the default settings.
    pub async fn connect(url: &str) -> Result<RedisStore> {
        Self::builder().connect(url).await
    }

    /// Connects to a Redis Cluster with the default settings.
    pub async fn connect_cluster<S: AsRef<str>>(urls: &[S]) -> Result<RedisStore> {
        Self::builder().connect_cluster(urls).await
    }

    /// A builder for the key prefix and timeouts.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder {
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Whether this store is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// The Redis key of session `id`: the prefix and the id's storage key.
    pub fn redis_key(&self, id: &SessionId) -> String {
        format!("{}{}", self.inner.prefix, id.storage_key())
    }

    /// Runs `f` on a connection within the command timeout.
    async fn unlink(&self, key: &str, what: &str) -> Result<()> {
        self.run(what, |mut c| async move {
            redis::cmd("UNLINK")
                .arg(key)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn run<T, F>(&self, what: &str, f: impl FnOnce(RedisConnection) -> F) -> Result<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        // The connection enforces the command timeout itself (its response
        // timeout), so a dead server surfaces here as an error.
        f(self.inner.conn.clone())
            .await
            .map_err(|e| Error::store(NAME, what.to_owned(), e))
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &Record) -> Result<SessionId> {
        let expires = epoch_ms(record.expires_at);
        let mut fields = Vec::with_capacity(record.data.len() * 2);
        for (k, v) in &record.data {
            fields.push(k.clone());
            fields.push(encode(k, v)?);
        }
        loop {
            let id = SessionId::generate()?;
            let key = self.redis_key(&id);
            let created: i64 = self
                .run("creating a session", |mut c| {
                    let mut inv = CREATE.key(&key);
                    inv.arg(expires).arg(&fields);
                    async move { inv.invoke_async(&mut c).await }
                })
                .await?;
            if created == 1 {
                return Ok(id);
            }
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let key = self.redis_key(id);
        // Pairs, not a map: the fields go straight into the session data.
        let fields: Vec<(String, String)> = self
            .run("loading a session", |mut c| async move {
                redis::cmd("HGETALL").arg(&key).query_async(&mut c).await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut expires_ms = None;
        let mut data = Data::with_capacity(fields.len());
        for (k, v) in fields {
            if k == EXPIRES_FIELD {
                expires_ms = v.parse::<u64>().ok();
                continue;
            }
            let value = serde_json::from_str(&v).map_err(|source| Error::Decode {
                key: k.clone(),
                source,
            })?;
            data.insert(k, value);
        }
        let Some(ms) = expires_ms else {
            return Err(Error::store_msg(
                NAME,
                "a stored session has no valid expiry field",
            ));
        };
        let expires_at = UNIX_EPOCH + Duration::from_millis(ms);
        if expires_at <= SystemTime::now() {
            return Ok(None);
        }
        Ok(Some(Record::new(data, expires_at)))
    }

    /// One `MULTI`/`EXEC` transaction: `PEXPIREAT` (which also says
    /// whether the session exists), then the changes (`DEL` when cleared,
    /// `HDEL` of removed keys, `HSET` of set keys and the expiry field), all
    /// applied atomically. If the
    /// session did not exist the transaction created a stray hash, which is
    /// removed at once, and the save reports `None`. (A transaction costs
    /// the server a fraction of a Lua script.)
    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let key = self.redis_key(id);
        let expires = epoch_ms(changes.expires_at);
        let mut pipe = redis::pipe();
        // PEXPIREAT answers 0 for a missing key: the existence check.
        pipe.atomic().cmd("PEXPIREAT").arg(&key).arg(expires);
        if changes.cleared {
            pipe.cmd("DEL").arg(&key).ignore();
        }
        if !changes.removed.is_empty() {
            pipe.cmd("HDEL")
                .arg(&key)
                .arg(changes.removed.iter().collect::<Vec<_>>())
                .ignore();
        }
        let hset = pipe.cmd("HSET").arg(&key).arg(EXPIRES_FIELD).arg(expires);
        for (k, v) in &changes.set {
            hset.arg(k).arg(encode(k, v)?);
        }
        hset.ignore();
        if changes.cleared {
            // DEL dropped the expiry with the old hash.
            pipe.cmd("PEXPIREAT").arg(&key).arg(expires).ignore();
        }
        let (existed,): (i64,) = self
            .run("saving a session", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        if existed == 1 {
            return Ok(Some(id.clone()));
        }
        self.unlink(
            &key,
            "removing the hash a save of a missing session created",
        )
        .await?;
        Ok(None)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.unlink(&self.redis_key(id), "deleting a session").await
    }

    /// Redis expires session hashes itself (each has a `PEXPIREAT`), so
    /// there is nothing to sweep: always `Ok(0)`.
    async fn delete_expired(&self) -> Result<u64> {
        Ok(0)
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>> {
        // Only the expiry field and the key's expiry move.
        self.save(id, &Changes::new(expires_at)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_defaults() {
        let b = RedisStore::builder();
        assert_eq!(b.prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(b.command_timeout, DEFAULT_COMMAND_TIMEOUT);
        let b = b.command_timeout(Duration::ZERO);
        assert_eq!(b.command_timeout, Duration::from_millis(1));
    }

    #[tokio::test]
    async fn connection_errors_never_show_the_password() {
        let err = RedisStore::builder()
            .connect_timeout(Duration::from_millis(200))
            .connect("redis://user:hunter2@127.0.0.1:1/0")
            .await
            .unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(" / {s}"));
            source = s.source();
        }
        assert!(!chain.contains("hunter2"), "{chain}");
        assert!(chain.contains("127.0.0.1:1"), "{chain}");
    }
}
