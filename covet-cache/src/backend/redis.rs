//! Redis and Redis Cluster backend.
//!
//! [`RedisBackend`] speaks to one Redis server through the `redis` crate's
//! multiplexed, self-reconnecting [`ConnectionManager`] (one connection
//! serves every task), or to a Redis Cluster through its async
//! [`ClusterConnection`]. Every operation has a timeout, and a circuit
//! breaker stops paying that timeout on every call while Redis is away.
//!
//! # Key layout
//!
//! Keys are stored as given (`namespace:user-key`, see
//! [`Cache`](crate::Cache)). A namespace holds no `:` and no glob
//! metacharacters, and [`Cache`](crate::Cache) escapes it in front of every
//! pattern, so neither a `:` nor a `*` in a user key can reach another
//! namespace. The backend's own bookkeeping lives under keys that start with
//! `:covet:` (which no namespaced key can start with, a namespace being
//! non-empty): the set of a tag at `:covet:tag:<namespace>:<tag>`, a lease
//! at `:covet:lease:<key>`. Pattern deletes and `clear` never touch them and
//! never count them.
//!
//! # Cluster
//!
//! Multi-key commands (`MGET`, `UNLINK`) are split by hash slot and their
//! answers put back in input order; `set_many` sends one pipeline per hash
//! slot, all at once; pattern deletes and `clear` run `SCAN` on every
//! primary. A tag's set lives in the slot of its own name and its members
//! stay wherever their keys hash: pinning a tag and its members to one slot
//! with a `{hash tag}` would pin each key to one of its tags and, in
//! practice, a whole namespace to one node. So `invalidate_tag` is atomic
//! on a single server (one Lua script) and, on a cluster, pops the set's
//! members in batches (`SPOP`, atomic per batch) and unlinks them slot by
//! slot; a member added concurrently is either popped by that invalidation
//! or left for the next one.
//!
//! # Tags
//!
//! Storing a value with tags adds its key to each tag's set and extends the
//! set's lifetime to at least the value's. A key later rewritten without the
//! tag stays in the set until the tag is next invalidated, which then also
//! deletes it: invalidation may drop more than strictly needed (never
//! less), which is safe for a cache.

mod breaker;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Script, Value};

use self::breaker::{Admit, Breaker, Permit};
use super::{CacheBackend, Entry, KeyTtl};
use crate::error::{Error, Result};
use crate::key::{Glob, escape_glob};

const NAME: &str = "redis";

/// Keys per `SCAN` page (the `COUNT` hint) and per `UNLINK` batch.
const SCAN_COUNT: usize = 500;

/// Prefix of every key the backend keeps for itself.
const RESERVED_PREFIX: &str = ":covet:";
const TAG_PREFIX: &str = ":covet:tag:";
const LEASE_PREFIX: &str = ":covet:lease:";

/// Longest TTL sent to Redis (about 35 000 years), so `now + ttl` never
/// overflows on the server.
const MAX_TTL_MS: u64 = 1 << 50;

/// Reconnection attempts the connection manager makes before it reports a
/// failure (the next command starts a new round).
const RECONNECT_RETRIES: usize = 2;

/// Default time allowed to establish a connection: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time allowed for one command, queueing and reconnecting included: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Default number of consecutive connection failures that open the circuit breaker.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// Default time the open circuit breaker fails calls before it lets a probe through: 1 s.
pub const DEFAULT_BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);

// Adds a member to a tag's set; the set lives at least as long as the member.
// KEYS[1] tag set, ARGV[1] member, ARGV[2] member TTL in ms or '' (no expiry).
static TAG_ADD: &str = r"
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('PERSIST', KEYS[1])
elseif fresh then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 and left < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return 1
";

// Deletes a tag's members and the set, atomically (single server only: the
// members are not declared in KEYS). Returns how many members existed and
// the members.
static INVALIDATE_TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #members, 500 do
  n = n + redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('UNLINK', KEYS[1])
return {n, members}
",
    )
});

// Compare-and-delete of a lease. KEYS[1] lease key, ARGV[1] owner's token.
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// The error kept as the source of calls refused by the open circuit breaker.
///
/// ```
/// # use covet_cache::CircuitOpen;
/// fn is_fast_failure(err: &covet_cache::Error) -> bool {
///     std::error::Error::source(err).is_some_and(|s| s.is::<CircuitOpen>())
/// }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "circuit breaker open after {threshold} consecutive connection failures; next attempt in {} ms",
    retry_in.as_millis()
)]
pub struct CircuitOpen {
    threshold: u32,
    retry_in: Duration,
}

impl CircuitOpen {
    /// How long until the breaker lets a probe through (zero while one is in flight).
    pub fn retry_in(&self) -> Duration {
        self.retry_in
    }
}

/// A handle on the backend's multiplexed connection (single server or
/// cluster), for other Redis-based components (such as a session store)
/// that should share its connection, timeouts and reconnection instead of
/// opening their own. It implements the `redis` crate's `ConnectionLike`;
/// the command timeout is the caller's to apply.
///
/// ```no_run
/// # async fn f() -> covet_cache::Result<()> {
/// use covet_cache::RedisBackend;
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379").await?;
/// let mut conn = backend.connection();
/// let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection(Conn);

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.0 {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_tuple("RedisConnection").field(&mode).finish()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// One connection, to a single server or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

struct Inner {
    conn: Conn,
    breaker: Breaker,
    command_timeout: Duration,
    /// The URL(s), passwords masked, for `Debug`.
    endpoint: String,
    /// The URL(s) as given.
    urls: Vec<String>,
}

/// The Redis / Redis Cluster backend (feature `redis`).
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
/// * Tags are Redis sets; leases (`SET NX PX` with a random token, released
///   by a compare-and-delete script) coordinate processes.
/// * Failures: every error is [`Error::Backend`] with `backend == "redis"`
///   and the `redis` crate's error (or the timeout) as its source. After
///   [`DEFAULT_BREAKER_THRESHOLD`] consecutive connection failures the
///   circuit breaker opens: calls fail at once (source [`CircuitOpen`])
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
        let mode = match self.inner.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisBackend")
            .field("mode", &mode)
            .field("endpoint", &self.inner.endpoint)
            .field("command_timeout", &self.inner.command_timeout)
            .field("breaker", &self.inner.breaker)
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
    lazy: bool,
}

impl Default for RedisBackendBuilder {
    fn default() -> Self {
        RedisBackendBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_cool_down: DEFAULT_BREAKER_COOL_DOWN,
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

    /// Connects to one server (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` with the `redis-tls` feature). Fails if the URL is
    /// invalid or, unless [`lazy`](Self::lazy), if the server cannot be
    /// reached within the connect timeout.
    pub async fn build(self, url: &str) -> Result<RedisBackend> {
        let endpoint = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| Error::backend(NAME, format!("invalid Redis URL {endpoint}"), e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(Duration::from_millis(250));
        if self.lazy {
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| Error::backend(NAME, format!("configuring {endpoint}"), e))?;
            return Ok(self.finish(Conn::Single(manager), endpoint, vec![url.to_owned()]));
        }
        let connecting = ConnectionManager::new_with_config(client, config);
        let manager = match tokio::time::timeout(self.connect_timeout * 2, connecting).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                return Err(Error::backend(NAME, format!("connecting to {endpoint}"), e));
            }
            Err(elapsed) => {
                return Err(Error::backend(
                    NAME,
                    format!("connecting to {endpoint} timed out"),
                    elapsed,
                ));
            }
        };
        Ok(self.finish(Conn::Single(manager), endpoint, vec![url.to_owned()]))
    }

    /// Connects to a Redis Cluster through some of its nodes (the others
    /// are discovered).
    pub async fn build_cluster<S: AsRef<str>>(self, urls: &[S]) -> Result<RedisBackend> {
        let endpoint = urls
            .iter()
            .map(|u| redact(u.as_ref()))
            .collect::<Vec<_>>()
            .join(",");
        if urls.is_empty() {
            return Err(Error::Backend {
                backend: NAME,
                message: "connect_cluster needs at least one node URL".into(),
                source: None,
            });
        }
        let client = ClusterClientBuilder::new(urls.iter().map(|u| u.as_ref()))
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.command_timeout)
            .retries(RECONNECT_RETRIES as u32)
            .min_retry_wait(25)
            .max_retry_wait(250)
            .build()
            .map_err(|e| Error::backend(NAME, format!("invalid cluster URLs {endpoint}"), e))?;
        let owned: Vec<String> = urls.iter().map(|u| u.as_ref().to_owned()).collect();
        if self.lazy {
            let config = ClusterConfig::new()
                .set_connection_timeout(self.connect_timeout)
                .set_response_timeout(self.command_timeout);
            let conn = client.get_pending_async_connection_with_config(config);
            return Ok(self.finish(Conn::Cluster(conn), endpoint, owned));
        }
        let conn =
            match tokio::time::timeout(self.connect_timeout * 2, client.get_async_connection())
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return Err(Error::backend(
                        NAME,
                        format!("connecting to cluster {endpoint}"),
                        e,
                    ));
                }
                Err(elapsed) => {
                    return Err(Error::backend(
                        NAME,
                        format!("connecting to cluster {endpoint} timed out"),
                        elapsed,
                    ));
                }
            };
        Ok(self.finish(Conn::Cluster(conn), endpoint, owned))
    }

    fn finish(self, conn: Conn, endpoint: String, urls: Vec<String>) -> RedisBackend {
        RedisBackend {
            inner: Arc::new(Inner {
                conn,
                breaker: Breaker::new(self.breaker_threshold, self.breaker_cool_down),
                command_timeout: self.command_timeout,
                endpoint,
                urls,
            }),
        }
    }
}

/// Masks the password of a URL for logs and errors.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A TTL in whole milliseconds, rounded up, at least 1.
fn ttl_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(MAX_TTL_MS).clamp(1, MAX_TTL_MS)
}

/// Errors that say the server was not reached (or did not answer), as
/// opposed to an answer that was an error.
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    redis::ServerErrorKind::ClusterDown
                        | redis::ServerErrorKind::MasterDown
                        | redis::ServerErrorKind::BusyLoading
                        | redis::ServerErrorKind::TryAgain
                )
        )
}

/// The `SCAN MATCH` pattern for a glob: its literal runs, escaped, with
/// every wildcard (`?`, classes, `*`) widened to `*`. Redis matches bytes
/// where [`Glob`] matches characters, so the server-side pattern only has
/// to select a superset; the exact filter runs on our side.
fn scan_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut star = false;
    let mut chars = pattern.chars();
    let push_star = |out: &mut String, star: &mut bool| {
        if !*star {
            out.push('*');
            *star = true;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => push_star(&mut out, &mut star),
            '[' => {
                // The first unescaped `]` closes a class (`Glob` rejects `[]`).
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        ']' => break,
                        _ => {}
                    }
                }
                push_star(&mut out, &mut star);
            }
            c => {
                let lit = if c == '\\' {
                    match chars.next() {
                        Some(e) => e,
                        None => break,
                    }
                } else {
                    c
                };
                if matches!(lit, '*' | '?' | '[' | ']' | '\\') {
                    out.push('\\');
                }
                out.push(lit);
                star = false;
            }
        }
    }
    out
}

/// A `PTTL` reply: -2 missing, -1 no expiry, else milliseconds left.
fn pttl(ms: i64) -> KeyTtl {
    match ms {
        -1 => KeyTtl::Persistent,
        ms if ms > 0 => KeyTtl::Expires(Duration::from_millis(ms.unsigned_abs())),
        _ => KeyTtl::Missing,
    }
}

fn tag_key(tag: &str) -> String {
    let mut k = String::with_capacity(TAG_PREFIX.len() + tag.len());
    k.push_str(TAG_PREFIX);
    k.push_str(tag);
    k
}

fn lease_key(key: &str) -> String {
    let mut k = String::with_capacity(LEASE_PREFIX.len() + key.len());
    k.push_str(LEASE_PREFIX);
    k.push_str(key);
    k
}

fn lease_token() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| Error::backend(NAME, "drawing a lease token from the OS", e))?;
    let mut token = String::with_capacity(32);
    for b in raw {
        token.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        token.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Ok(token)
}

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_ms(ttl));
    }
    cmd
}

fn tag_add_cmd(tag: &str, key: &str, ttl: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(TAG_ADD).arg(1).arg(tag_key(tag)).arg(key);
    match ttl {
        Some(ttl) => cmd.arg(ttl_ms(ttl)),
        None => cmd.arg(""),
    };
    cmd
}

fn unlink_cmd<K: AsRef<str>>(keys: &[K]) -> Cmd {
    let mut cmd = redis::cmd("UNLINK");
    for k in keys {
        cmd.arg(k.as_ref());
    }
    cmd
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
        matches!(self.inner.conn, Conn::Cluster(_))
    }

    /// The backend's connection, to share it (see [`RedisConnection`]).
    pub fn connection(&self) -> RedisConnection {
        RedisConnection(self.inner.conn.clone())
    }

    /// The command timeout this backend applies.
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// The URL this backend connected to (for a cluster, the node URLs it
    /// was given), credentials included: for opening further connections
    /// to the same Redis, such as a pub/sub subscription.
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    /// Whether the circuit breaker currently refuses calls (open, or
    /// half-open with a probe in flight).
    pub fn is_circuit_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// Runs one operation through the circuit breaker, under the command
    /// timeout. `f` builds the request on a connection handle; with
    /// `retry`, a request that met a dropped connection is sent once more
    /// (within the same deadline) on the reconnected handle: only for
    /// idempotent operations.
    async fn call<T, F, Fut>(&self, what: &'static str, retry: bool, mut f: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let inner = &*self.inner;
        let permit = match inner.breaker.admit(Instant::now()) {
            Admit::Call => Permit::new(&inner.breaker, false),
            Admit::Probe => Permit::new(&inner.breaker, true),
            Admit::Reject(retry_in) => {
                return Err(Error::backend(
                    NAME,
                    format!("{what} refused: Redis is unreachable"),
                    CircuitOpen {
                        threshold: inner.breaker.threshold(),
                        retry_in,
                    },
                ));
            }
        };
        let deadline = tokio::time::Instant::now() + inner.command_timeout;
        let mut outcome = tokio::time::timeout_at(deadline, f(inner.conn.clone())).await;
        if retry && matches!(&outcome, Ok(Err(e)) if is_connection_error(e)) {
            outcome = tokio::time::timeout_at(deadline, f(inner.conn.clone())).await;
        }
        match outcome {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    self.failed(permit, what, &e);
                } else {
                    permit.success();
                }
                Err(Error::backend(NAME, format!("{what} failed"), e))
            }
            Err(elapsed) => {
                let message = format!(
                    "{what} timed out after {} ms",
                    inner.command_timeout.as_millis()
                );
                self.failed(permit, what, &elapsed);
                Err(Error::backend(NAME, message, elapsed))
            }
        }
    }

    fn failed(&self, permit: Permit<'_>, what: &'static str, err: &dyn std::error::Error) {
        let probe = permit.is_probe();
        if permit.failure() {
            tracing::warn!(
                endpoint = %self.inner.endpoint,
                op = what,
                error = %err,
                "redis unreachable; circuit breaker open"
            );
        } else if probe {
            tracing::debug!(op = what, error = %err, "redis probe failed; circuit breaker stays open");
        }
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
        for chunk in keys.chunks(SCAN_COUNT) {
            let removed: u64 = self.query("UNLINK", true, &unlink_cmd(chunk)).await?;
            n += removed;
        }
        Ok(n)
    }

    /// The primaries of the cluster, as `(host, port)`.
    async fn primaries(&self) -> Result<Vec<(String, u16)>> {
        let reply: Value = self
            .call("CLUSTER PING", true, |c| async move {
                match c {
                    Conn::Cluster(mut c) => {
                        c.route_command(
                            redis::cmd("PING"),
                            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                        )
                        .await
                    }
                    Conn::Single(_) => Ok(Value::Nil),
                }
            })
            .await?;
        let Value::Map(nodes) = reply else {
            return Err(Error::Backend {
                backend: NAME,
                message: "the cluster did not list its primaries".into(),
                source: None,
            });
        };
        let mut out = Vec::with_capacity(nodes.len());
        for (addr, _) in nodes {
            let addr: String = redis::from_redis_value(addr)
                .map_err(|e| Error::backend(NAME, "reading a cluster node address", e))?;
            let parsed = addr.rsplit_once(':').and_then(|(host, port)| {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Some((host.to_owned(), port.parse::<u16>().ok()?))
            });
            match parsed {
                Some(hp) => out.push(hp),
                None => {
                    return Err(Error::Backend {
                        backend: NAME,
                        message: format!("unreadable cluster node address {addr:?}"),
                        source: None,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Walks every `SCAN` page of one server (`node`, or the single
    /// server), unlinking the keys that `keep` accepts; returns how many
    /// existed.
    async fn scan_unlink(
        &self,
        node: Option<&(String, u16)>,
        pattern: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<u64> {
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = match node {
                None => self.query("SCAN", true, &cmd).await?,
                Some((host, port)) => {
                    let cmd = &cmd;
                    self.call("SCAN", true, move |c| async move {
                        let Conn::Cluster(mut c) = c else {
                            return cmd.query_async(&mut { c }).await;
                        };
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        let reply = c.route_command(cmd.clone(), routing).await?;
                        Ok(redis::from_redis_value(reply)?)
                    })
                    .await?
                }
            };
            let batch: Vec<&str> = keys
                .iter()
                .filter_map(|k| std::str::from_utf8(k).ok())
                .filter(|k| !k.starts_with(RESERVED_PREFIX) && keep(k))
                .collect();
            removed += self.unlink(&batch).await?;
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// `scan_unlink` on the single server or on every primary of the cluster.
    async fn unlink_matching(
        &self,
        pattern: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<u64> {
        match &self.inner.conn {
            Conn::Single(_) => self.scan_unlink(None, pattern, keep).await,
            Conn::Cluster(_) => {
                let primaries = self.primaries().await?;
                let counts = try_join_all(
                    primaries
                        .iter()
                        .map(|node| self.scan_unlink(Some(node), pattern, keep)),
                )
                .await?;
                Ok(counts.into_iter().sum())
            }
        }
    }

    /// Tag sets of the keys under `prefix` (dropped by `clear`, not counted).
    async fn drop_tag_sets(&self, prefix: &str) -> Result<()> {
        let full = format!("{TAG_PREFIX}{prefix}");
        let pattern = format!("{}*", escape_glob(&full));
        let keep = |k: &str| k.starts_with(full.as_str());
        match &self.inner.conn {
            Conn::Single(_) => self.scan_tag_sets(None, &pattern, &keep).await,
            Conn::Cluster(_) => {
                let primaries = self.primaries().await?;
                try_join_all(
                    primaries
                        .iter()
                        .map(|node| self.scan_tag_sets(Some(node), &pattern, &keep)),
                )
                .await
                .map(drop)
            }
        }
    }

    async fn scan_tag_sets(
        &self,
        node: Option<&(String, u16)>,
        pattern: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<()> {
        // Same walk as `scan_unlink`, but over reserved keys.
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let cmd = &cmd;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .call("SCAN", true, move |c| async move {
                    match (c, node) {
                        (Conn::Cluster(mut c), Some((host, port))) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host: host.clone(),
                                    port: *port,
                                });
                            let reply = c.route_command(cmd.clone(), routing).await?;
                            Ok(redis::from_redis_value(reply)?)
                        }
                        (mut c, _) => cmd.query_async(&mut c).await,
                    }
                })
                .await?;
            let batch: Vec<&str> = keys
                .iter()
                .filter_map(|k| std::str::from_utf8(k).ok())
                .filter(|k| keep(k))
                .collect();
            self.unlink(&batch).await?;
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    async fn set_one(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        let Entry {
            value, ttl, tags, ..
        } = entry;
        if ttl == Some(Duration::ZERO) {
            return self.delete(key).await.map(drop);
        }
        let set = set_cmd(key, &value, ttl);
        if tags.is_empty() {
            return self.query::<()>("SET", true, &set).await;
        }
        match &self.inner.conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                pipe.add_command(set).ignore();
                for tag in tags {
                    pipe.add_command(tag_add_cmd(tag, key, ttl)).ignore();
                }
                self.query_pipe::<()>("SET with tags", true, &pipe).await
            }
            Conn::Cluster(_) => {
                // The value and each tag set may live on different nodes.
                let cmds: Vec<Cmd> = std::iter::once(set)
                    .chain(tags.iter().map(|tag| tag_add_cmd(tag, key, ttl)))
                    .collect();
                let cmds = &cmds;
                self.call("SET with tags", true, move |c| async move {
                    try_join_all(cmds.iter().map(|cmd| {
                        let mut c = c.clone();
                        async move { cmd.query_async::<()>(&mut c).await }
                    }))
                    .await
                    .map(drop)
                })
                .await
            }
        }
    }
}

#[async_trait]
impl CacheBackend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let v: Option<Vec<u8>> = self.query("GET", true, &cmd).await?;
        Ok(v.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
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
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
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
        match &self.inner.conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                for (key, value) in entries {
                    pipe.add_command(set_cmd(key, value, ttl)).ignore();
                }
                self.query_pipe::<()>("SET (pipelined)", true, &pipe).await
            }
            Conn::Cluster(_) => {
                // One pipeline per hash slot, all in flight at once.
                let mut by_slot: HashMap<Slot, Pipeline> = HashMap::new();
                for (key, value) in entries {
                    by_slot
                        .entry(Slot::for_key(key))
                        .or_insert_with(redis::pipe)
                        .add_command(set_cmd(key, value, ttl))
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
        self.unlink_matching(&server, &|k| glob.matches(k)).await
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        let pattern = format!("{}*", escape_glob(prefix));
        let n = self
            .unlink_matching(&pattern, &|k| k.starts_with(prefix))
            .await?;
        self.drop_tag_sets(prefix).await?;
        Ok(n)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(key);
        let n: u64 = self.query("EXISTS", true, &cmd).await?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let mut cmd = redis::cmd("PTTL");
        cmd.arg(key);
        let ms: i64 = self.query("PTTL", true, &cmd).await?;
        Ok(pttl(ms))
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
        Ok(value.map(|v| (Bytes::from(v), pttl(ms))))
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        self.invalidate_tag_keys(tag).await.map(|(n, _)| n)
    }

    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        let set = tag_key(tag);
        match &self.inner.conn {
            Conn::Single(_) => {
                let set = &set;
                let (n, members): (u64, Vec<String>) = self
                    .call("invalidate tag", true, move |mut c| async move {
                        INVALIDATE_TAG.key(set).invoke_async(&mut c).await
                    })
                    .await?;
                Ok((n, Some(members)))
            }
            Conn::Cluster(_) => {
                let mut removed = 0;
                let mut keys = Vec::new();
                loop {
                    let mut pop = redis::cmd("SPOP");
                    pop.arg(&set).arg(SCAN_COUNT);
                    // Not retried: a batch popped but not received would be lost.
                    let members: Vec<String> = self.query("SPOP", false, &pop).await?;
                    if members.is_empty() {
                        return Ok((removed, Some(keys)));
                    }
                    removed += self.unlink(&members).await?;
                    keys.extend(members);
                }
            }
        }
    }

    async fn lease_acquire(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        let token = lease_token()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(lease_key(key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl));
        // Not retried: a retry could find our own lease and report it as taken.
        let reply: Value = self.query("SET NX (lease)", false, &cmd).await?;
        Ok(match reply {
            Value::Nil => None,
            _ => Some(token),
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1001)), 2);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn scan_patterns_keep_literals_and_widen_wildcards() {
        assert_eq!(scan_pattern("ns:user:*"), "ns:user:*");
        assert_eq!(scan_pattern("ns:u?er:[0-9]*"), "ns:u*er:*");
        assert_eq!(scan_pattern("ns:a\\*b"), "ns:a\\*b");
        assert_eq!(scan_pattern("ns:[!\\]x]z"), "ns:*z");
        assert_eq!(scan_pattern("ns:[a-]z"), "ns:*z");
        assert_eq!(scan_pattern("a\\[b\\]\\\\"), "a\\[b\\]\\\\");
    }

    #[test]
    fn scan_patterns_select_a_superset() {
        let patterns = [
            "ns:*",
            "ns:user:?",
            "ns:[a-c]x",
            "ns:[!a]*",
            "ns:a\\*b",
            "ns:é?",
            "ns:[é-ü]",
            "ns:x[\\]]",
            "ns:*:*:end",
        ];
        let keys = [
            "ns:user:1",
            "ns:user:é",
            "ns:bx",
            "ns:zzz",
            "ns:a*b",
            "ns:éü",
            "ns:ö",
            "ns:x]",
            "ns:a:b:c:end",
            "other:user:1",
        ];
        for p in patterns {
            let exact = Glob::new(p).unwrap();
            let server = Glob::new(&scan_pattern(p)).unwrap();
            for k in keys {
                if exact.matches(k) {
                    assert!(server.matches(k), "{p} -> {} misses {k}", scan_pattern(p));
                }
            }
        }
    }

    #[test]
    fn lease_tokens_are_random_hex() {
        let a = lease_token().unwrap();
        let b = lease_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn reserved_keys_are_outside_every_namespace() {
        // A namespaced key is `ns:...` with a non-empty `ns` free of `:`.
        assert!(tag_key("ns:t").starts_with(':'));
        assert!(lease_key("ns:k").starts_with(':'));
        assert!(!Glob::new("ns:*").unwrap().matches(&tag_key("ns:t")));
    }
}
