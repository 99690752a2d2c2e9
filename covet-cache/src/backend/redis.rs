//! Redis and Redis Cluster backend.
//!
//! [`RedisBackend`] speaks to one Redis server through the `redis` crate's
//! multiplexed, self-reconnecting [`ConnectionManager`](redis::aio::ConnectionManager) (one connection
//! serves every task), or to a Redis Cluster through its async
//! [`ClusterConnection`](redis::cluster_async::ClusterConnection). Every operation has a timeout, and a circuit
//! breaker stops paying that timeout on every call while Redis is away.
//!
//! # Guarantees and limits
//!
//! * Shared by every process that connects; values up to 512 MiB (a Redis
//!   string); TTLs with millisecond resolution (`SET ... PX`), enforced by
//!   Redis; patterns (`SCAN` + `UNLINK`, not atomic across pages), tags
//!   (below), leases, exact counts.
//! * Every operation completes or fails within the command timeout (default
//!   [`DEFAULT_COMMAND_TIMEOUT`]); a connection that stops answering is
//!   replaced; the circuit breaker fails calls at once while Redis is away
//!   (`#[cached]` then runs its body).
//! * Under `maxmemory` with an eviction policy Redis may drop anything,
//!   bookkeeping included: what that can cost is described under Tags.
//!
//! # Key layout
//!
//! Keys are stored as given (`namespace:user-key`, see
//! [`Cache`](crate::Cache)). A namespace holds no `:` and no glob
//! metacharacters, and [`Cache`](crate::Cache) escapes it in front of every
//! pattern, so neither a `:` nor a `*` in a user key can reach another
//! namespace. The backend's own bookkeeping lives under keys that start with
//! `:covet:` (which no namespaced key can start with, a namespace being
//! non-empty): the member set of a tag at `:covet:tag:{=<namespace>:<tag>}`,
//! its version at `:covet:tagv:{=<namespace>:<tag>}` (the braces keep both
//! in one hash slot on a cluster), a lease at `:covet:lease:<key>`. Pattern
//! deletes and `clear` never touch them and never count them (`clear` drops
//! the tag sets and versions of its namespace).
//!
//! # Cluster
//!
//! Multi-key commands (`MGET`, `UNLINK`) are split by hash slot and their
//! answers put back in input order; `set_many` sends one pipeline per hash
//! slot, all at once; pattern deletes and `clear` run `SCAN` on every
//! primary. A tag's set and version live in the slot of the tag's name and
//! its members stay wherever their keys hash: pinning a tag and its members
//! to one slot would pin each key to one of its tags and, in practice, a
//! whole namespace to one node.
//!
//! # Tags
//!
//! Invalidating a tag never leaves a value stored with it readable, even
//! when Redis lost the tag's member list. Each tag has a version (a random
//! number). Storing a value with tags first adds the key to each tag's set
//! and reads the tag's version (creating it if there is none; the set and
//! the version live at least as long as the value), then stores the value
//! with those versions in front of it. Invalidating a tag deletes its
//! version, then the members its set lists and the set, so nothing of the
//! tag stays on the server (a tag per user or per entity leaves no key
//! behind); the next value stored with the tag gets a fresh version.
//! Reading a value stored with tags compares its versions with the current
//! ones (one more round trip, for tagged values only) and answers a miss
//! on any difference, or when a version is gone. So:
//!
//! * a tag set evicted under `maxmemory` (`allkeys-*` policies): its members
//!   are not deleted by the next invalidation, but they are never served
//!   again (they expire, or are overwritten, or evicted in turn);
//! * a tag version evicted or expired: every value stored with it reads as
//!   a miss (more than needed, never less);
//! * a failure half-way through an invalidation on a cluster (a batch of
//!   members popped but not deleted): those values are no longer served;
//! * a key later rewritten without the tag stays in the set until the tag
//!   is next invalidated, which then also deletes it (more, never less).
//!
//! `exists` and `ttl` answer for a tagged value as a read would. An untagged
//! value that happens to start with the wrapper's first byte (`0xC7`) is
//! stored wrapped with no tags, so raw bytes always read back unchanged.
//! On a single server `invalidate_tag` is one Lua script (atomic); on a
//! cluster it pops the set's members in batches (`SPOP`) and unlinks them
//! slot by slot.

mod commands;
mod connection;
mod scan;
mod scripts;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::try_join_all;
use redis::cluster_routing::Slot;
use redis::{Cmd, Pipeline, RedisResult, Value};

use self::commands::{
    BATCH, TAG_PREFIX, TAG_VERSION_PREFIX, lease_key, pttl, set_cmd, tag_key, tag_prepare_cmd,
    tag_version_key, ttl_ms, unlink_cmd,
};
use self::connection::{Conn, Connection, Settings};
pub use self::connection::{DEFAULT_TCP_KEEPALIVE, RedisConnection};
use self::scan::{Space, scan_pattern};
use self::scripts::{INVALIDATE_TAG, RELEASE_LEASE, RENEW_LEASE, TRY_LEASE};
use super::remote::{Remote, redact};
use super::tagged::{self, MAGIC, Stored};
use super::{CacheBackend, Capabilities, Entry, KeyTtl};
use crate::error::{Error, Result};
use crate::key::{Glob, escape_glob};

const NAME: &str = "redis";

/// Default time allowed to establish a connection: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time allowed for one command, queueing and reconnecting included: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Default number of consecutive connection failures that open the circuit breaker.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// Default time the open circuit breaker fails calls before it lets a probe through: 1 s.
pub const DEFAULT_BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);

struct Inner {
    link: Arc<Connection>,
    remote: Remote,
}

///
/// Cheap to clone: clones share one multiplexed connection (or one cluster
/// connection), its automatic reconnection and its circuit breaker.
///
/// * Values are stored with `SET ... PX` (TTLs in milliseconds, rounded up);
///   `get_many` is one `MGET` and `set_many` one pipeline: one round trip
///   each on a single server.
/// * `delete_pattern` and `clear` walk every `SCAN` page (`COUNT 500`) and
///   `UNLINK` what matches, batch by batch; never `KEYS`, never `FLUSHDB`.
///   Patterns are checked on our side with [`Glob`] as well,
///   so they mean exactly what they mean for [`MemoryBackend`](crate::MemoryBackend),
///   multi-byte characters included.
/// * `incr` is atomic (`SET key 0 NX PX ttl` + `INCRBY` in one `MULTI`): the
///   TTL applies only when the counter is created.
/// * Tags are Redis sets; leases (a caller's random token, taken, renewed
///   and released by compare-and-set scripts) coordinate processes.
/// * Failures: every error is [`Error::Backend`] with `backend == "redis"`
///   and the `redis` crate's error (or the timeout) as its source. After
///   [`DEFAULT_BREAKER_THRESHOLD`] consecutive connection failures the
///   circuit breaker opens: calls fail at once (source [`CircuitOpen`](crate::CircuitOpen))
///   for a cool-down, then one probe goes through, and the breaker closes
///   by itself when Redis answers.
///
/// Needs a Tokio runtime with timers enabled (the default of `#[tokio::main]`).
/// `rediss://` URLs need the `redis-tls` feature. See the
/// [module docs](self) for the key layout and how a cluster is handled.
///
/// ```no_run
/// use covet_cache::{Cache, RedisBackend};
/// use std::time::Duration;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisBackend::builder()
///     .command_timeout(Duration::from_millis(200))
///     .circuit_breaker(5, Duration::from_secs(2))
///     .build("redis://127.0.0.1:6379")
///     .await?;
/// let cache = Cache::builder().backend(redis).namespace("myapp").build()?;
/// cache.set("user:1", &"Alice".to_string(), Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get::<String>("user:1").await?.as_deref(), Some("Alice"));
///
/// let cluster = RedisBackend::connect_cluster(&[
///     "redis://127.0.0.1:7000",
///     "redis://127.0.0.1:7001",
///     "redis://127.0.0.1:7002",
/// ])
/// .await?;
/// # let _ = cluster;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.inner.link.is_cluster() {
            "cluster"
        } else {
            "single"
        };
        f.debug_struct("RedisBackend")
            .field("mode", &mode)
            .field("endpoint", &self.inner.link.endpoint())
            .field("remote", &self.inner.remote)
            .finish()
    }
}

/// Builder for [`RedisBackend`], from [`RedisBackend::builder`].
///
/// ```no_run
/// use covet_cache::RedisBackend;
/// use std::time::Duration;
/// # async fn run() -> covet_cache::Result<()> {
/// let redis = RedisBackend::builder()
///     .connect_timeout(Duration::from_millis(500))
///     .command_timeout(Duration::from_millis(100))
///     .circuit_breaker(3, Duration::from_secs(5))
///     .build("redis://127.0.0.1:6379")
///     .await?;
/// # let _ = redis;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisBackendBuilder {
    connect_timeout: Duration,
    command_timeout: Duration,
    breaker_threshold: u32,
    breaker_cool_down: Duration,
    keepalive: Duration,
    lazy: bool,
}

impl Default for RedisBackendBuilder {
    fn default() -> Self {
        RedisBackendBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_cool_down: DEFAULT_BREAKER_COOL_DOWN,
            keepalive: DEFAULT_TCP_KEEPALIVE,
            lazy: false,
        }
    }
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

impl RedisBackendBuilder {
    /// Time allowed to establish a connection (default 1 s; zero is raised to 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = at_least_1ms(timeout);
        self
    }

    /// Time allowed for one operation, waiting for a reconnection included
    /// (default 500 ms; zero is raised to 1 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = at_least_1ms(timeout);
        self
    }

    /// Opens the circuit breaker after `threshold` consecutive connection
    /// failures (timeouts, refused or dropped connections; not server error
    /// replies) and fails calls at once for `cool_down` before letting one
    /// probe through. Defaults: 5 failures, 1 s. A `threshold` of 0 turns
    /// the breaker off.
    pub fn circuit_breaker(mut self, threshold: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = threshold;
        self.breaker_cool_down = cool_down;
        self
    }

    /// With `true`, `build` and `build_cluster` return without waiting for
    /// a first connection (default `false`): an application starts while
    /// Redis is down, its operations fail (fast, once the breaker is open)
    /// until Redis can be reached, then work without a restart.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Idle time before TCP keepalive probes start on a connection
    /// (default [`DEFAULT_TCP_KEEPALIVE`], 10 s; then 3 probes 5 s apart).
    /// On Linux `TCP_USER_TIMEOUT` is set to the same total, so the kernel
    /// also drops a connection whose writes go unacknowledged that long.
    /// Zero is raised to 1 s.
    pub fn tcp_keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = idle.max(Duration::from_secs(1));
        self
    }

    fn settings(&self) -> Settings {
        Settings {
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            keepalive: self.keepalive,
            lazy: self.lazy,
        }
    }

    /// Connects to one server (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` with the `redis-tls` feature). Fails if the URL is
    /// invalid or, unless [`lazy`](Self::lazy), if the server cannot be
    /// reached within the connect timeout.
    pub async fn build(self, url: &str) -> Result<RedisBackend> {
        let endpoint = redact(url);
        let link = Connection::single(url, endpoint, &self.settings()).await?;
        Ok(self.finish(link))
    }

    /// Connects to a Redis Cluster through some of its nodes (the others
    /// are discovered).
    pub async fn build_cluster<S: AsRef<str>>(self, urls: &[S]) -> Result<RedisBackend> {
        let endpoint = urls
            .iter()
            .map(|u| redact(u.as_ref()))
            .collect::<Vec<_>>()
            .join(",");
        let owned: Vec<String> = urls.iter().map(|u| u.as_ref().to_owned()).collect();
        let link = Connection::cluster(owned, endpoint, &self.settings()).await?;
        Ok(self.finish(link))
    }

    fn finish(self, link: Connection) -> RedisBackend {
        let remote = Remote::new(
            NAME,
            link.endpoint().to_owned(),
            self.command_timeout,
            self.breaker_threshold,
            self.breaker_cool_down,
        );
        RedisBackend {
            inner: Arc::new(Inner {
                link: Arc::new(link),
                remote,
            }),
        }
    }
}

impl RedisBackend {
    /// Connects to one server with the default settings (see
    /// [`RedisBackendBuilder::build`]).
    ///
    /// ```no_run
    /// # async fn run() -> covet_cache::Result<()> {
    /// let redis = covet_cache::RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// # let _ = redis;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<RedisBackend> {
        RedisBackend::builder().build(url).await
    }

    /// Connects to a Redis Cluster with the default settings (see
    /// [`RedisBackendBuilder::build_cluster`]).
    ///
    /// ```no_run
    /// # async fn run() -> covet_cache::Result<()> {
    /// let cluster = covet_cache::RedisBackend::connect_cluster(&[
    ///     "redis://127.0.0.1:7000",
    ///     "redis://127.0.0.1:7001",
    /// ])
    /// .await?;
    /// # let _ = cluster;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster<S: AsRef<str>>(urls: &[S]) -> Result<RedisBackend> {
        RedisBackend::builder().build_cluster(urls).await
    }

    /// Starts a builder.
    pub fn builder() -> RedisBackendBuilder {
        RedisBackendBuilder::default()
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.link.is_cluster()
    }

    /// The backend's connection, to share it (see [`RedisConnection`]).
    pub fn connection(&self) -> RedisConnection {
        RedisConnection(Arc::clone(&self.inner.link))
    }

    /// The command timeout this backend applies.
    pub fn command_timeout(&self) -> Duration {
        self.inner.remote.timeout()
    }

    /// The URL this backend connected to (for a cluster, the node URLs it
    /// was given), credentials included: for the coherence subscription.
    pub(crate) fn urls(&self) -> &[String] {
        self.inner.link.urls()
    }

    /// Whether the circuit breaker currently refuses calls (open, or
    /// half-open with a probe in flight).
    pub fn is_circuit_open(&self) -> bool {
        self.inner.remote.is_open()
    }

    /// How many times the connection was replaced because it stopped
    /// answering (repeated timeouts, or the circuit breaker tripped).
    ///
    /// ```no_run
    /// # async fn run() -> covet_cache::Result<()> {
    /// let redis = covet_cache::RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(redis.reconnections(), 0);
    /// # Ok(()) }
    /// ```
    pub fn reconnections(&self) -> u64 {
        self.inner.link.renewals()
    }

    /// Runs one request through the circuit breaker, under the command
    /// timeout (see [`Remote::call`]).
    async fn call<T, F, Fut>(&self, what: &'static str, retry: bool, f: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.inner
            .remote
            .call(&*self.inner.link, what, retry, f)
            .await
    }

    /// One command, its reply converted to `T`.
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        retry: bool,
        cmd: &Cmd,
    ) -> Result<T> {
        self.call(what, retry, move |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    /// One pipeline (a single round trip; on a cluster all its keys must
    /// share one slot).
    async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        retry: bool,
        pipe: &Pipeline,
    ) -> Result<T> {
        self.call(what, retry, move |mut c| async move {
            pipe.query_async::<T>(&mut c).await
        })
        .await
    }

    async fn unlink<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        for chunk in keys.chunks(BATCH) {
            let removed: u64 = self.query("UNLINK", true, &unlink_cmd(chunk)).await?;
            n += removed;
        }
        Ok(n)
    }

    async fn set_one(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        let Entry {
            value, ttl, tags, ..
        } = entry;
        if ttl == Some(Duration::ZERO) {
            return Box::pin(self.delete(key)).await.map(drop);
        }
        if tags.is_empty() {
            let set = set_cmd(key, &tagged::plain(value), ttl);
            return self.query::<()>("SET", true, &set).await;
        }
        // The rare paths are boxed: their state would otherwise double the
        // size of every write's future (and of its allocation).
        Box::pin(self.set_with_tags(key, value, ttl, tags)).await
    }

    async fn set_with_tags(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<()> {
        // First the tags (their sets list the key, their versions go into
        // the value), then the value: a key is never stored without being
        // reachable from each of its tags.
        let fresh = tagged::new_version()?;
        let versions = self.prepare_tags(key, tags, ttl, fresh).await?;
        let pairs: Vec<(&str, u64)> = tags
            .iter()
            .map(String::as_str)
            .zip(versions.iter().copied())
            .collect();
        let wrapped = tagged::wrap(&pairs, &value).ok_or_else(|| Error::Backend {
            backend: NAME,
            message: format!("{} tags on one value (at most 255)", tags.len()),
            source: None,
        })?;
        self.query::<()>("SET (tagged)", true, &set_cmd(key, &wrapped, ttl))
            .await
    }

    /// Adds `key` to the set of each tag and reads (or creates) each tag's
    /// version: one round trip on a single server, one per tag at once on a
    /// cluster.
    async fn prepare_tags(
        &self,
        key: &str,
        tags: &[String],
        ttl: Option<Duration>,
        fresh: u64,
    ) -> Result<Vec<u64>> {
        let cmds: Vec<Cmd> = tags
            .iter()
            .map(|tag| tag_prepare_cmd(tag, key, ttl, fresh))
            .collect();
        let replies: Vec<String> = if self.inner.link.is_cluster() {
            let cmds = &cmds;
            self.call("tag versions", true, move |c| async move {
                try_join_all(cmds.iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<String>(&mut c).await }
                }))
                .await
            })
            .await?
        } else {
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd);
            }
            self.query_pipe("tag versions", true, &pipe).await?
        };
        replies
            .iter()
            .map(|v| {
                v.parse::<u64>().map_err(|_| Error::Backend {
                    backend: NAME,
                    message: format!("unreadable tag version {v:?}"),
                    source: None,
                })
            })
            .collect()
    }

    /// The current version of each tag (`None`: it has none).
    async fn tag_versions<S: AsRef<str>>(&self, tags: &[S]) -> Result<Vec<Option<u64>>> {
        let mut cmd = redis::cmd("MGET");
        for tag in tags {
            cmd.arg(tag_version_key(tag.as_ref()));
        }
        let current: Vec<Option<String>> = self.query("MGET (tag versions)", true, &cmd).await?;
        Ok(current
            .into_iter()
            .map(|v| v.and_then(|v| v.parse().ok()))
            .collect())
    }

    /// The value of stored bytes: as is, or, for a value stored with tags,
    /// only if none of them was invalidated since (one more round trip).
    #[inline]
    async fn checked(&self, bytes: Vec<u8>) -> Result<Option<Bytes>> {
        if bytes.first() != Some(&MAGIC) {
            return Ok(Some(Bytes::from(bytes)));
        }
        Ok(self.checked_many(vec![Some(bytes)]).await?.pop().flatten())
    }

    /// [`checked`](Self::checked) for a batch: one `MGET` of the versions
    /// of every tag involved.
    async fn checked_many(&self, values: Vec<Option<Vec<u8>>>) -> Result<Vec<Option<Bytes>>> {
        let parsed: Vec<Option<Stored>> = values
            .into_iter()
            .map(|v| v.and_then(|b| tagged::parse(Bytes::from(b))))
            .collect();
        let mut names: Vec<String> = parsed
            .iter()
            .flatten()
            .filter_map(|s| match s {
                Stored::Tagged { tags, .. } => Some(tags.iter().map(|(t, _)| t.clone())),
                Stored::Plain(_) => None,
            })
            .flatten()
            .collect();
        names.sort_unstable();
        names.dedup();
        let current: HashMap<String, u64> = if names.is_empty() {
            HashMap::new()
        } else {
            let versions = self.tag_versions(&names).await?;
            names
                .into_iter()
                .zip(versions)
                .filter_map(|(n, v)| Some((n, v?)))
                .collect()
        };
        Ok(parsed
            .into_iter()
            .map(|s| match s? {
                Stored::Plain(v) => Some(v),
                Stored::Tagged { tags, value } => tags
                    .iter()
                    .all(|(t, v)| current.get(t.as_str()) == Some(v))
                    .then_some(value),
            })
            .collect())
    }

    /// For `exists` and `ttl`: whether an existing key whose value starts
    /// with `first` holds a live value.
    async fn live(&self, key: &str, first: &[u8]) -> Result<bool> {
        if first.first() != Some(&MAGIC) {
            return Ok(true);
        }
        Ok(self.get(key).await?.is_some())
    }
}

#[async_trait]
impl CacheBackend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut cmd = Cmd::with_capacity(2, 3 + key.len());
        cmd.arg("GET").arg(key);
        match self.query::<Option<Vec<u8>>>("GET", true, &cmd).await? {
            Some(bytes) if bytes.first() != Some(&MAGIC) => Ok(Some(Bytes::from(bytes))),
            // Boxed: a tagged value is rare, and its check's state would
            // double the size of every read's future.
            Some(bytes) => Box::pin(self.checked(bytes)).await,
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = Cmd::with_capacity(
            1 + keys.len(),
            4 + keys.iter().map(|k| k.len()).sum::<usize>(),
        );
        cmd.arg("MGET");
        for k in keys {
            cmd.arg(*k);
        }
        // On a cluster the client splits MGET by slot and restores the order.
        let values: Vec<Option<Vec<u8>>> = self.query("MGET", true, &cmd).await?;
        if values.len() != keys.len() {
            return Err(Error::Backend {
                backend: NAME,
                message: format!(
                    "MGET of {} keys answered {} values",
                    keys.len(),
                    values.len()
                ),
                source: None,
            });
        }
        if !values.iter().flatten().any(|v| v.first() == Some(&MAGIC)) {
            return Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect());
        }
        Box::pin(self.checked_many(values)).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_one(key, Entry::new(value, ttl)).await
    }

    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        self.set_one(key, entry).await
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if ttl == Some(Duration::ZERO) {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
            return self.delete_many(&keys).await.map(drop);
        }
        match self.inner.link.is_cluster() {
            false => {
                let mut pipe = redis::pipe();
                for (key, value) in entries {
                    pipe.add_command(set_cmd(key, &tagged::plain(value.clone()), ttl))
                        .ignore();
                }
                self.query_pipe::<()>("SET (pipelined)", true, &pipe).await
            }
            true => {
                // One pipeline per hash slot, all in flight at once.
                let mut by_slot: HashMap<Slot, Pipeline> = HashMap::new();
                for (key, value) in entries {
                    by_slot
                        .entry(Slot::for_key(key))
                        .or_insert_with(redis::pipe)
                        .add_command(set_cmd(key, &tagged::plain(value.clone()), ttl))
                        .ignore();
                }
                let pipes: Vec<Pipeline> = by_slot.into_values().collect();
                let pipes = &pipes;
                self.call("SET (pipelined)", true, move |c| async move {
                    try_join_all(pipes.iter().map(|pipe| {
                        let mut c = c.clone();
                        async move { pipe.query_async::<()>(&mut c).await }
                    }))
                    .await
                    .map(drop)
                })
                .await
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let n: u64 = self.query("UNLINK", true, &unlink_cmd(&[key])).await?;
        Ok(n > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.unlink(keys).await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(pattern)?;
        let server = scan_pattern(pattern);
        self.unlink_matching(Space::User, &server, &|k| glob.matches(k))
            .await
    }

    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(pattern)?;
        let server = scan_pattern(pattern);
        self.walk_matching(Space::User, &server, &|k| glob.matches(k), false)
            .await
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        let pattern = format!("{}*", escape_glob(prefix));
        let n = self
            .unlink_matching(Space::User, &pattern, &|k| k.starts_with(prefix))
            .await?;
        // The tag sets and versions of the keys under `prefix` go too (not
        // counted).
        for reserved in [TAG_PREFIX, TAG_VERSION_PREFIX] {
            let tags = format!("{reserved}{prefix}");
            let pattern = format!("{}*", escape_glob(&tags));
            self.unlink_matching(Space::Reserved, &pattern, &|k| k.starts_with(tags.as_str()))
                .await?;
        }
        Ok(n)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(key)
            .cmd("GETRANGE")
            .arg(key)
            .arg(0)
            .arg(0);
        let (n, first): (u64, Vec<u8>) = self.query_pipe("EXISTS", true, &pipe).await?;
        Ok(n > 0 && self.live(key, &first).await?)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let mut pipe = redis::pipe();
        pipe.cmd("PTTL")
            .arg(key)
            .cmd("GETRANGE")
            .arg(key)
            .arg(0)
            .arg(0);
        let (ms, first): (i64, Vec<u8>) = self.query_pipe("PTTL", true, &pipe).await?;
        match pttl(ms) {
            KeyTtl::Missing => Ok(KeyTtl::Missing),
            ttl if self.live(key, &first).await? => Ok(ttl),
            _ => Ok(KeyTtl::Missing),
        }
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let mut pipe = redis::pipe();
        if let Some(ttl) = ttl {
            // Created with the TTL only if absent; atomic with the increment.
            pipe.atomic()
                .cmd("SET")
                .arg(key)
                .arg(0)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms(ttl))
                .ignore();
        }
        pipe.cmd("INCRBY").arg(key).arg(delta);
        pipe.ignore_errors();
        // Not retried: an increment that reached the server must not run twice.
        let mut replies: Vec<Value> = self.query_pipe("INCRBY", false, &pipe).await?;
        match replies.pop() {
            Some(Value::Int(n)) => Ok(n),
            Some(Value::ServerError(_)) => Err(Error::NotAnInteger {
                key: key.to_owned(),
            }),
            other => Err(Error::Backend {
                backend: NAME,
                message: format!("INCRBY answered {other:?}"),
                source: None,
            }),
        }
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (value, ms): (Option<Vec<u8>>, i64) =
            self.query_pipe("GET + PTTL", true, &pipe).await?;
        let Some(bytes) = value else {
            return Ok(None);
        };
        Ok(Box::pin(self.checked(bytes)).await?.map(|v| (v, pttl(ms))))
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        self.invalidate_tag_keys(tag).await.map(|(n, _)| n)
    }

    /// The version is deleted first (every value stored with the tag stops
    /// being served, listed in the set or not; the next value stored with
    /// the tag gets a fresh one), then the listed members and the set: no
    /// key of the tag outlives it. The keys are `None` (not known) when the
    /// set was gone while the tag had a version: evicted, so a tier in
    /// front drops the namespace.
    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        let set = tag_key(tag);
        if !self.inner.link.is_cluster() {
            let (set, version) = (&set, &tag_version_key(tag));
            let (n, members, complete): (u64, Vec<String>, u8) = self
                .call("invalidate tag", true, move |mut c| async move {
                    INVALIDATE_TAG
                        .key(set)
                        .key(version)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            return Ok((n, (complete == 1).then_some(members)));
        }
        // Cluster: the set and the version share a slot; the members are
        // anywhere. The version goes first, so a member left behind by a
        // failure below is never served again.
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&set);
        let listed: u64 = self.query("EXISTS (tag set)", true, &exists).await?;
        let mut drop_version = redis::cmd("DEL");
        drop_version.arg(tag_version_key(tag));
        let versioned: u64 = self.query("DEL (tag version)", true, &drop_version).await?;
        let complete = listed > 0 || versioned == 0;
        let mut removed = 0;
        let mut keys = Vec::new();
        loop {
            let mut pop = redis::cmd("SPOP");
            pop.arg(&set).arg(BATCH);
            // Not retried: a batch popped but not received is not deleted,
            // but its values are no longer served (the version moved).
            let members: Vec<String> = self.query("SPOP", false, &pop).await?;
            if members.is_empty() {
                return Ok((removed, complete.then_some(keys)));
            }
            removed += self.unlink(&members).await?;
            keys.extend(members);
        }
    }

    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let lease = lease_key(key);
        let (lease, ttl) = (&lease, ttl_ms(ttl));
        // Retried: the script is idempotent for one token.
        let n: i64 = self
            .call("take lease", true, move |mut c| async move {
                TRY_LEASE
                    .key(lease)
                    .arg(token)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }

    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let lease = lease_key(key);
        let (lease, ttl) = (&lease, ttl_ms(ttl));
        let n: i64 = self
            .call("renew lease", true, move |mut c| async move {
                RENEW_LEASE
                    .key(lease)
                    .arg(token)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }

    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        let lease = lease_key(key);
        let lease = &lease;
        let n: i64 = self
            .call("release lease", true, move |mut c| async move {
                RELEASE_LEASE
                    .key(lease)
                    .arg(token)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }

    fn supports_leases(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            leases: true,
            // A string value holds at most 512 MiB.
            max_value_len: Some(512 << 20),
            ..Capabilities::default()
        }
    }
}
