//! [`RedisStore`]: sessions in Redis or a Redis Cluster, one hash per
//! session.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use covet_cache::{RedisBackend, RedisConnection};
use redis::{Cmd, Pipeline, RedisWrite, Script, ToRedisArgs, ToSingleRedisArg};

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::store::{
    Changes, Data, Record, SESSION_KEY_ROOT, SessionInfo, SessionStore, oldest_first, user_key,
    user_of, user_written,
};
use crate::time::{from_ms, to_ms};

const NAME: &str = "redis";

/// Default key prefix of a [`RedisStore`], after the reserved root
/// `__covet_session:` that every session key starts with.
pub const DEFAULT_KEY_PREFIX: &str = "";
/// Default timeout of one Redis command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default timeout of connecting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The reserved hash field holding the expiry (milliseconds since the Unix
/// epoch). Session keys may not start with `__covet`, so it never collides
/// with a session key; it also keeps an empty session an existing hash.
/// Only the scripts write it (create, and saves that move the expiry or
/// clear the session, after checking the session exists), so a hash
/// without it is what a quick save of a session deleted meanwhile left
/// behind, and never loads.
const EXPIRES_FIELD: &str = "__covet_expires_at";
/// A save that moves the expiry or clears the session: the existence
/// check and the writes in one step, so a session deleted meanwhile is
/// never re-created. KEYS[1] the session; ARGV[1] expiry ms; ARGV[2] `1`
/// to clear first; ARGV[3] how many removed keys follow; then the removed
/// keys; then field, value pairs.
static SAVE_CHECKED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
local n = tonumber(ARGV[3])
for i = 4, 3 + n do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('HSET', KEYS[1], '__covet_expires_at', ARGV[1])
for i = 4 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
",
    )
});

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
    /// For `count` (a `SCAN` on every primary).
    backend: RedisBackend,
    conn: RedisConnection,
    prefix: String,
    /// The reserved root and the prefix: the start of every key.
    root: String,
    command_timeout: Duration,
    cluster: bool,
}

/// Sessions in Redis or a Redis Cluster (feature `redis`).
///
/// Each session is one Redis hash at `__covet_session:<prefix><storage
/// key>` (the SHA-256 of the id, never the id itself), one field per
/// session key holding the value as a JSON string, plus a reserved field
/// `__covet_expires_at` with the expiry in milliseconds since the Unix
/// epoch. Every session key starts with the reserved root
/// `__covet_session:`, which no cache namespace may use, so no cache's
/// `clear()`, pattern delete or tag invalidation on the same server ever
/// touches a session. The hash carries a Redis expiry (`PEXPIREAT`), so
/// Redis reclaims expired sessions itself and
/// [`delete_expired`](SessionStore::delete_expired) does nothing and
/// returns 0.
///
/// `create` is a Lua script; a save applies only what changed (`HDEL`
/// removed keys, `HSET` set keys) and never re-creates a session that
/// expired or was deleted meanwhile: see [`save`](SessionStore::save) for
/// how, in one round trip. Two concurrent requests
/// that change different keys both keep their change; two that change the
/// same key: the last write wins. As every session is a single Redis key,
/// the store works on a Redis Cluster without hash tags.
///
/// The sessions of a user (`Session::login`) are also listed in a set at
/// `__covet_session:<prefix>user:<SHA-256 of the user id>`, which expires
/// with the last of them, for
/// [`list_user_sessions`](SessionStore::list_user_sessions) and
/// [`delete_user_sessions`](SessionStore::delete_user_sessions).
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
                backend: backend.clone(),
                conn: backend.connection(),
                root: format!("{SESSION_KEY_ROOT}{}", self.prefix),
                prefix: self.prefix,
                command_timeout: backend.command_timeout(),
                cluster: backend.is_cluster(),
            }),
        }
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    to_ms(t).max(1)
}

fn encode(key: &str, v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|source| encode_error(key, source))
}

fn encode_error(key: &str, source: serde_json::Error) -> Error {
    Error::Encode {
        key: key.to_owned(),
        source,
    }
}

/// A Redis key of the store, written straight into a command's buffer (no
/// `String` in between): the root (the reserved root and the prefix), then
/// a name (a storage key or a user index).
#[derive(Clone, Copy)]
struct Key<'a> {
    root: &'a str,
    name: &'a str,
}

impl Key<'_> {
    fn len(self) -> usize {
        self.root.len() + self.name.len()
    }
}

impl ToRedisArgs for Key<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut arg = out.writer_for_next_arg();
        // Writing into a command's buffer cannot fail.
        let _ = arg.write_all(self.root.as_bytes());
        let _ = arg.write_all(self.name.as_bytes());
    }
}

impl ToSingleRedisArg for Key<'_> {}

/// A command `name key`, with room for `more` arguments of `bytes` bytes
/// in all, so that building it allocates once per buffer.
fn command(name: &str, key: Key<'_>, more: usize, bytes: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(2 + more, name.len() + key.len() + bytes);
    cmd.arg(name).arg(key);
    cmd
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

    /// The Redis key of session `id`: the reserved root, the prefix and
    /// the id's storage key.
    pub fn redis_key(&self, id: &SessionId) -> String {
        self.key(id.storage_key())
    }

    /// The Redis key of `name` (a storage key or a user index) under the
    /// reserved root and the prefix.
    fn key(&self, name: &str) -> String {
        let mut key = String::with_capacity(self.inner.root.len() + name.len());
        key.push_str(&self.inner.root);
        key.push_str(name);
        key
    }

    /// [`key`](Self::key) as a command argument.
    fn at<'a>(&'a self, name: &'a str) -> Key<'a> {
        Key {
            root: &self.inner.root,
            name,
        }
    }

    /// The Redis key of the set listing the sessions of `user_id`.
    fn user_index(&self, user_id: &str) -> String {
        self.key(&user_key(user_id))
    }

    /// Removes `members` (storage keys) from the user index `index`.
    async fn unindex(&self, index: &str, members: &[String], what: &str) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        self.run(what, |mut c| async move {
            redis::cmd("SREM")
                .arg(index)
                .arg(members)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Adds the session at `storage_key` to its user's set, which lives as
    /// long as the longest of its sessions.
    async fn index_user(&self, user_id: &str, storage_key: &str, expires: u64) -> Result<()> {
        let index = self.user_index(user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(&index).arg(storage_key).ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&index)
            .arg(expires)
            .arg("NX")
            .ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&index)
            .arg(expires)
            .arg("GT")
            .ignore();
        self.run("indexing a session by user", |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Reads one session hash; `None` if absent, expired, or a leftover of
    /// a save that found its session gone.
    async fn load_key(&self, key: Key<'_>) -> Result<Option<Record>> {
        let hgetall = command("HGETALL", key, 0, 0);
        // Pairs, not a map: the fields go straight into the session data.
        let fields: Vec<(String, String)> = self
            .run("loading a session", |mut c| async move {
                hgetall.query_async(&mut c).await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut expires = None;
        let mut data = Data::with_capacity(fields.len());
        for (k, v) in fields {
            if k == EXPIRES_FIELD {
                expires = Some(v);
                continue;
            }
            let value = serde_json::from_str(&v).map_err(|e| Error::corrupt(NAME, e))?;
            data.insert(k, value);
        }
        let Some(expires) = expires else {
            // Only a quick save of a session deleted meanwhile leaves a hash
            // without it: no session.
            return Ok(None);
        };
        let Ok(ms) = expires.parse::<u64>() else {
            return Err(Error::corrupt(
                NAME,
                "a stored session has an invalid expiry field",
            ));
        };
        let expires_at = from_ms(ms);
        if expires_at <= SystemTime::now() {
            return Ok(None);
        }
        Ok(Some(Record::new(data, expires_at)))
    }

    /// The live sessions of `user_id`, by Redis key; drops stale members.
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<(String, Record)>> {
        let index = self.user_index(user_id);
        let members: Vec<String> = self
            .run("listing a user's sessions", |mut c| {
                let index = index.clone();
                async move { redis::cmd("SMEMBERS").arg(index).query_async(&mut c).await }
            })
            .await?;
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for storage_key in members {
            match self.load_key(self.at(&storage_key)).await {
                Ok(Some(r)) if user_of(&r.data) == Some(user_id) => live.push((storage_key, r)),
                Ok(_) | Err(Error::CorruptRecord { .. }) => stale.push(storage_key),
                Err(e) => return Err(e),
            }
        }
        self.unindex(&index, &stale, "pruning a user's sessions")
            .await?;
        Ok(live)
    }

    /// Runs `f` on a connection within the command timeout.
    async fn unlink(&self, key: Key<'_>, what: &str) -> Result<()> {
        let unlink = command("UNLINK", key, 0, 0);
        self.run(what, |mut c| async move {
            unlink.query_async::<()>(&mut c).await
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
            let key = self.at(id.storage_key());
            let created: i64 = self
                .run("creating a session", |mut c| {
                    let mut inv = CREATE.key(key);
                    inv.arg(expires).arg(&fields);
                    async move { inv.invoke_async(&mut c).await }
                })
                .await?;
            if created == 1 {
                if let Some(user) = user_of(&record.data) {
                    self.index_user(user, id.storage_key(), expires).await?;
                }
                return Ok(id);
            }
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.load_key(self.at(id.storage_key())).await
    }

    /// A save that moves the expiry ([`Changes::extend`]) or clears the
    /// session is one script: it checks that the session exists, then
    /// applies the changes and the expiry, so a session deleted meanwhile is
    /// never re-created. Any other save (the common one: a change before
    /// the renewal interval is up) is one pipeline of cheap commands without
    /// a transaction: `HDEL` of removed keys, `HSET` of set keys, and
    /// `PEXPIREAT ... NX`, which gives an expiry only to a hash that has
    /// none (every live session has one), that is one the `HSET` just
    /// created because the session was deleted meanwhile: its answer is the
    /// existence check (`EXISTS` when nothing is set). Such a hash lacks the
    /// expiry field, so it never loads; it is removed at once and expires
    /// anyway.
    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let key = self.at(id.storage_key());
        let expires = epoch_ms(changes.expires_at);
        let checked = changes.cleared || changes.extend;
        let existed = if checked {
            let mut args: Vec<String> =
                Vec::with_capacity(3 + changes.removed.len() + changes.set.len() * 2);
            args.push(expires.to_string());
            args.push(if changes.cleared { "1" } else { "0" }.to_owned());
            args.push(changes.removed.len().to_string());
            args.extend(changes.removed.iter().cloned());
            for (k, v) in &changes.set {
                args.push(k.clone());
                args.push(encode(k, v)?);
            }
            let done: i64 = self
                .run("saving a session", |mut c| {
                    let mut inv = SAVE_CHECKED.key(key);
                    inv.arg(&args);
                    async move { inv.invoke_async(&mut c).await }
                })
                .await?;
            done == 1
        } else {
            // Each command is sized up front and every reply is an integer
            // (no ignored ones to filter): a save allocates little, which
            // matters as much as CPU where the connection's task and the
            // request run on different threads.
            let mut pipe = Pipeline::with_capacity(3);
            let writes = !changes.set.is_empty();
            if !writes {
                pipe.add_command(command("EXISTS", key, 0, 0));
            }
            if !changes.removed.is_empty() {
                let bytes = changes.removed.iter().map(String::len).sum();
                let mut hdel = command("HDEL", key, changes.removed.len(), bytes);
                for k in &changes.removed {
                    hdel.arg(k);
                }
                pipe.add_command(hdel);
            }
            if writes {
                let bytes = changes.set.keys().map(|k| k.len() + 16).sum();
                let mut hset = command("HSET", key, changes.set.len() * 2, bytes);
                for (k, v) in &changes.set {
                    hset.arg(k);
                    // The value's JSON goes straight into the command.
                    serde_json::to_writer(hset.writer_for_next_arg(), v)
                        .map_err(|e| encode_error(k, e))?;
                }
                pipe.add_command(hset);
                // Every live session has an expiry: `NX` sets one (and
                // answers 1) only on a hash the `HSET` just created.
                let mut pexpireat = command("PEXPIREAT", key, 2, 24);
                pexpireat.arg(expires).arg("NX");
                pipe.add_command(pexpireat);
            }
            let replies: Vec<i64> = self
                .run("saving a session", |mut c| async move {
                    pipe.query_async(&mut c).await
                })
                .await?;
            // The existence check answers last.
            let Some(&answer) = replies.last() else {
                return Err(Error::store(
                    NAME,
                    "saving a session",
                    "Redis sent no reply to the existence check",
                ));
            };
            if writes { answer == 0 } else { answer == 1 }
        };
        if existed {
            if let Some(user) = user_written(changes) {
                self.index_user(user, id.storage_key(), expires).await?;
            }
            return Ok(Some(id.clone()));
        }
        if !checked
            && let Err(e) = self
                .unlink(key, "removing the hash a save of a missing session left")
                .await
        {
            // It never loads (no expiry field) and expires by itself.
            e.log("removing a leftover session hash failed");
        }
        Ok(None)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.unlink(self.at(id.storage_key()), "deleting a session")
            .await
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

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>> {
        let infos = self
            .user_sessions(user_id)
            .await?
            .iter()
            .map(|(storage_key, r)| SessionInfo::from_record(storage_key, r))
            .collect();
        Ok(oldest_first(infos))
    }

    /// Live sessions: a `SCAN` of every primary's keyspace for this
    /// store's prefix (O(keys in the database), in pages, never blocking
    /// the server; a few ms per 100 000 keys on loopback). The per-user
    /// index sets are not counted. Sessions that expire while the walk
    /// runs may or may not be counted.
    async fn count(&self) -> Result<u64> {
        let root = self.key("");
        // The per-user index sets have a `:` after the prefix; ids do not.
        let keep = |k: &str| !k[root.len()..].contains(':');
        self.inner
            .backend
            .count_prefixed(&root, &keep)
            .await
            .map_err(|e| Error::store(NAME, "counting sessions".to_owned(), e))
    }

    async fn delete_other_user_sessions(&self, user_id: &str, keep: &SessionId) -> Result<u64> {
        let index = self.user_index(user_id);
        let others: Vec<String> = self
            .user_sessions(user_id)
            .await?
            .into_iter()
            .map(|(storage_key, _)| storage_key)
            .filter(|k| k != keep.storage_key())
            .collect();
        for storage_key in &others {
            self.unlink(self.at(storage_key), "deleting a user's session")
                .await?;
        }
        self.unindex(&index, &others, "updating a user's session list")
            .await?;
        crate::security::revoked(user_id, others.len() as u64);
        Ok(others.len() as u64)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        let sessions = self.user_sessions(user_id).await?;
        for (storage_key, _) in &sessions {
            self.unlink(self.at(storage_key), "deleting a user's session")
                .await?;
        }
        let index = user_key(user_id);
        self.unlink(self.at(&index), "deleting a user's session list")
            .await?;
        crate::security::revoked(user_id, sessions.len() as u64);
        Ok(sessions.len() as u64)
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
