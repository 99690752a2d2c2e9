//! Memcached backend: one server or several, through the meta protocol.
//!
//! ```no_run
//! # async fn demo() -> Result<(), covet_cache::Error> {
//! use covet_cache::{Cache, MemcachedBackend};
//!
//! let one = MemcachedBackend::connect("memcache://127.0.0.1:11211").await?;
//! let several = MemcachedBackend::builder()
//!     .servers(["memcache://10.0.0.1:11211", "memcache://10.0.0.2:11211"])
//!     .connect()
//!     .await?;
//! let cache = Cache::builder().backend(several).namespace("app").build()?;
//! # Ok(()) }
//! ```
//!
//! # Guarantees and limits
//!
//! * **Servers**: each key lives on one server, chosen by rendezvous
//!   hashing (adding a server moves about 1/n of the keys). Each server has
//!   its own connection pool, command timeout and circuit breaker: a dead
//!   server makes its share of keys fail (misses for `#[cached]`, `None`
//!   slots in `get_many`), never the whole cache.
//! * **Keys** of any bytes and length: keys travel base64-encoded (no
//!   command injection through a key); a key longer than memcached's 250
//!   bytes is stored under its first 150 bytes and a SHA-256 of the whole
//!   key. Keys cannot be listed, so
//!   [`delete_pattern`](crate::CacheBackend::delete_pattern) is
//!   [`Error::Unsupported`].
//! * **Values** up to the server's item size (`-I`, read at connect, minus
//!   1 KiB for the key and covet's header); a larger one is
//!   [`Error::ValueTooLarge`] and nothing is stored. (With a
//!   [`max_value_size`](MemcachedBackendBuilder::max_value_size) above the
//!   server's item size, the server refuses the write with the same error,
//!   and memcached itself drops the value the key held.)
//! * **TTLs** have one-second resolution: rounded up on write, down on read
//!   (a copy in a `Tiered` L1 never outlives the original). TTLs over 30
//!   days are sent as absolute times, as memcached requires.
//! * **`clear()` of a namespace** moves the namespace's generation (a
//!   random number that each server keeps under a key of its own, beside
//!   the values that record it); every value records the generation it was
//!   written in and a read of an older one is a miss, in the same round
//!   trip. A write is one round trip too once this process has seen the
//!   generation on the key's server: one pipeline reads the current
//!   generation and writes the value recording the one seen, and the write
//!   is redone if another process moved it in between. Memcached frees the old values by LRU. `clear` cannot count them
//!   (it returns 0), and it works on namespace prefixes (`ns:`). A server
//!   that cannot be reached makes `clear` fail (the others are cleared):
//!   if it comes back with its data, its old values are served again.
//! * **Tags** work the same way, with a version per tag (on every server)
//!   recorded in each value: an invalidation holds for every value stored
//!   with the tag even when memcached evicted something (an evicted version
//!   or generation turns its values into misses, never the other way
//!   round). No member lists: `invalidate_tag` returns 0 and lists no keys.
//!   Reading a tagged value takes a second round trip to its server.
//! * **Counters** are signed 64-bit decimal text, updated with CAS loops
//!   (memcached's own `incr` is unsigned); an overflow is
//!   [`Error::NotAnInteger`]. A counter keeps its TTL to the second.
//! * **Leases** (`#[cached(lock)]`) are `add`ed items with a random token,
//!   renewed and released only by that token (compare-and-swap).

mod protocol;
mod ring;
mod server;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::join_all;
use sha2::{Digest, Sha256};

use self::protocol::{MAX_KEY_TOKEN, McError, Mode, Reply, Request, token_len};
use self::server::{Server, Settings};
use crate::backend::remote::{Backoff, redact};
use crate::backend::tagged::{self, Stored};
use crate::backend::{CacheBackend, Capabilities, Entry, KeyTtl};
use crate::error::{ConfigError, Error, Result};

/// Default connections per server.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default bound of every request (a pipeline counts as one).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Item size assumed when the server does not say (memcached's default).
const DEFAULT_ITEM_SIZE: usize = 1 << 20;
/// Room kept in an item for the key and covet's header.
const ITEM_OVERHEAD: usize = 1024;
const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);
/// memcached reads an expiry over 30 days as a Unix time.
const RELATIVE_TTL_MAX: u64 = 30 * 24 * 3600;

/// Name of the namespace generation among a value's recorded versions.
const NAMESPACE: &str = "";

/// Key spaces: what a stored item is.
#[derive(Debug, Clone, Copy)]
enum Space {
    Value = b'v' as isize,
    Generation = b'g' as isize,
    Tag = b't' as isize,
    Lease = b'l' as isize,
}

/// The memcached key of `key` in `space`: the space's byte and the key, or
/// for long keys its first bytes and a SHA-256 of the whole key.
fn item_key(space: Space, key: &str) -> Bytes {
    let raw = key.as_bytes();
    // one byte of space, and a base64 token of at most 250 bytes
    let fits = token_len(1 + raw.len()) <= MAX_KEY_TOKEN;
    let mut out = BytesMut::with_capacity(if fits { 1 + raw.len() } else { 183 });
    out.put_u8(space as u8);
    if fits {
        out.put_slice(raw);
    } else {
        out.put_slice(&raw[..150]);
        out.put_slice(&Sha256::digest(raw));
    }
    out.freeze()
}

/// The namespace of a key: what comes before its first `:`.
fn namespace_of(key: &str) -> Option<&str> {
    key.split_once(':')
        .map(|(ns, _)| ns)
        .filter(|ns| !ns.is_empty())
}

/// memcached's exptime for a TTL: whole seconds rounded up, absolute past
/// 30 days; 0 never expires.
fn exptime(ttl: Option<Duration>) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let secs = secs.max(1);
    let value = if secs > RELATIVE_TTL_MAX {
        crate::time::now_epoch_ms() / 1000 + secs
    } else {
        secs
    };
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// What is left of an item's TTL, rounded down: memcached's clock ticks
/// once a second, so `t` seconds reported means between `t - 1` and `t`.
fn remaining(ttl: Option<u32>) -> KeyTtl {
    match ttl {
        None => KeyTtl::Persistent,
        Some(0) => KeyTtl::Missing,
        Some(1) => KeyTtl::Expires(Duration::from_millis(1)),
        Some(t) => KeyTtl::Expires(Duration::from_secs(u64::from(t) - 1)),
    }
}

fn version_bytes(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

fn parse_version(reply: Option<&Reply>) -> Option<u64> {
    match reply {
        Some(Reply::Value { value, .. }) => {
            Some(u64::from_be_bytes(value.as_ref().try_into().ok()?))
        }
        _ => None,
    }
}

/// A cache backend on one or several memcached servers.
///
/// Cloning is cheap. See the [module docs](self) for what it guarantees.
#[derive(Clone)]
pub struct MemcachedBackend {
    inner: Arc<Inner>,
}

struct Inner {
    servers: Vec<Server>,
    /// The hashes of the servers' addresses, for [`ring::pick`].
    seeds: Vec<u64>,
    max_value: usize,
    /// Per server (same index as `servers`), the generation last seen per
    /// namespace: a write sends it with the value and reads the current
    /// one in the same pipeline.
    seen: Vec<parking_lot::Mutex<HashMap<String, u64>>>,
}

/// Generations remembered at most (a namespace is a handful of bytes).
const SEEN_MAX: usize = 10_000;

impl fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field("servers", &self.inner.servers)
            .field("max_value", &self.inner.max_value)
            .finish()
    }
}

/// Builds a [`MemcachedBackend`]: [`MemcachedBackend::builder`], setters,
/// then [`connect`](Self::connect).
#[derive(Debug, Clone)]
#[must_use]
pub struct MemcachedBackendBuilder {
    servers: Vec<String>,
    pool_size: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    breaker: (u32, Duration),
    max_value: Option<usize>,
    lazy: bool,
}

impl Default for MemcachedBackendBuilder {
    fn default() -> Self {
        MemcachedBackendBuilder {
            servers: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            breaker: (BREAKER_THRESHOLD, BREAKER_COOL_DOWN),
            max_value: None,
            lazy: false,
        }
    }
}

impl MemcachedBackendBuilder {
    /// The servers: `memcache://host:port` (or `host:port`), each once.
    pub fn servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Connections per server (default [`DEFAULT_POOL_SIZE`]).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Time allowed to open a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Bound of every request, a pipelined batch included (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Per server: failures in a row that open its breaker, and how long it
    /// stays open before a probe (default 5 and 1 s; 0 disables it).
    pub fn circuit_breaker(mut self, threshold: u32, cool_down: Duration) -> Self {
        self.breaker = (threshold, cool_down);
        self
    }

    /// Largest value accepted, in bytes (default: the server's item size
    /// minus 1 KiB). Larger than what the server holds, the server refuses
    /// it and the write is [`Error::ValueTooLarge`] all the same.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value = Some(bytes);
        self
    }

    /// Do not check the servers at `connect` (default `false`: every
    /// server must accept a connection).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Checks the servers and builds the backend.
    pub async fn connect(self) -> Result<MemcachedBackend> {
        if self.servers.is_empty() {
            return Err(Error::Config(ConfigError::InvalidUrl {
                url: String::new(),
                reason: "no memcached server given",
            }));
        }
        let mut addrs = Vec::with_capacity(self.servers.len());
        for url in &self.servers {
            let addr = parse_addr(url)?;
            if addrs.contains(&addr) {
                return Err(Error::Config(ConfigError::InvalidUrl {
                    url: redact(url),
                    reason: "the same server is listed twice",
                }));
            }
            addrs.push(addr);
        }
        let mut settings = Settings {
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            breaker_threshold: self.breaker.0,
            breaker_cool_down: self.breaker.1,
            read_limit: DEFAULT_ITEM_SIZE,
        };
        let mut item_size = None;
        if !self.lazy {
            for addr in &addrs {
                let size = server::item_size_max(addr, self.connect_timeout)
                    .await
                    .map_err(|e| Error::backend("memcached", format!("connecting to {addr}"), e))?;
                item_size = Some(item_size.map_or(size, |s: usize| s.min(size)));
            }
        }
        let item_size = item_size.unwrap_or(DEFAULT_ITEM_SIZE);
        settings.read_limit = item_size.max(self.max_value.unwrap_or(0)) + ITEM_OVERHEAD;
        let servers: Vec<Server> = addrs
            .iter()
            .map(|a| Server::new(a.clone(), &settings))
            .collect();
        Ok(MemcachedBackend {
            inner: Arc::new(Inner {
                seeds: addrs.iter().map(|a| ring::hash(a.as_bytes())).collect(),
                servers,
                max_value: self
                    .max_value
                    .unwrap_or(item_size.saturating_sub(ITEM_OVERHEAD)),
                seen: addrs
                    .iter()
                    .map(|_| parking_lot::Mutex::new(HashMap::new()))
                    .collect(),
            }),
        })
    }
}

/// `host:port` of `memcache://host:port`, `memcached://host:port` or
/// `host:port` (port 11211 when missing).
fn parse_addr(url: &str) -> Result<String> {
    let invalid = |reason| {
        Error::Config(ConfigError::InvalidUrl {
            url: redact(url),
            reason,
        })
    };
    let rest = match url.split_once("://") {
        Some(("memcache" | "memcached" | "tcp", rest)) => rest,
        Some(_) => return Err(invalid("use memcache://host:port")),
        None => url,
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '@', '?', ' ']) {
        return Err(invalid("use memcache://host:port"));
    }
    let has_port = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(':') && !port.contains(']') => {
            port.parse::<u16>()
                .map_err(|_| invalid("the port is not a number"))?;
            true
        }
        _ => false,
    };
    Ok(if has_port {
        host.to_owned()
    } else {
        format!("{host}:11211")
    })
}

/// The replies of a batch sent to several servers, in request order; the
/// requests of a server that failed have no reply.
struct Batch {
    replies: Vec<Option<Reply>>,
    error: Option<Error>,
}

impl Batch {
    /// Every reply, or the first error.
    fn all(self) -> Result<Vec<Reply>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self
                .replies
                .into_iter()
                .map(|r| r.unwrap_or(Reply::Missing))
                .collect()),
        }
    }
}

/// What a read found once versions are checked.
enum Checked {
    /// A live value with the versions it records still current.
    Live(Bytes, Option<u32>),
    /// Nothing, or a value of an older generation or tag version.
    Gone,
}

impl MemcachedBackend {
    /// Connects to one server (`memcache://host:port`) with the defaults.
    pub async fn connect(url: &str) -> Result<MemcachedBackend> {
        MemcachedBackend::builder().servers([url]).connect().await
    }

    /// A builder with the defaults and no server yet.
    pub fn builder() -> MemcachedBackendBuilder {
        MemcachedBackendBuilder::default()
    }

    /// The servers, as `host:port`.
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.iter().map(|s| s.addr.clone()).collect()
    }

    /// The bound of every request (a pipelined batch counts as one).
    pub fn command_timeout(&self) -> Duration {
        self.inner
            .servers
            .first()
            .map_or(DEFAULT_COMMAND_TIMEOUT, Server::timeout)
    }

    /// Whether the breaker of the server at `host:port` is open.
    pub fn is_circuit_open(&self, addr: &str) -> bool {
        self.inner
            .servers
            .iter()
            .any(|s| s.addr == addr && s.is_open())
    }

    fn server_of(&self, item: &[u8]) -> usize {
        ring::pick(&self.inner.seeds, item)
    }

    /// Sends each request to its item's server, one pipeline per server,
    /// all servers at once.
    async fn batch(&self, what: &'static str, requests: Vec<Request>) -> Batch {
        let n = requests.len();
        let servers = self.inner.servers.len();
        let mut per: Vec<(Vec<usize>, Vec<Request>)> = vec![(Vec::new(), Vec::new()); servers];
        for (i, request) in requests.into_iter().enumerate() {
            let key = match &request {
                Request::Get { key } | Request::Set { key, .. } | Request::Delete { key, .. } => {
                    key
                }
            };
            let s = self.server_of(key);
            per[s].0.push(i);
            per[s].1.push(request);
        }
        let calls = per
            .iter()
            .enumerate()
            .filter(|(_, (idx, _))| !idx.is_empty())
            .map(|(s, (idx, reqs))| async move {
                (idx, self.inner.servers[s].pipeline(what, reqs).await)
            });
        let mut replies = vec![None; n];
        let mut error = None;
        for (idx, outcome) in join_all(calls).await {
            match outcome {
                Ok(rs) => {
                    for (i, r) in idx.iter().zip(rs) {
                        replies[*i] = Some(r);
                    }
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        Batch { replies, error }
    }

    async fn one(&self, what: &'static str, request: Request) -> Result<Reply> {
        let mut replies = self.batch(what, vec![request]).await.all()?;
        Ok(replies.pop().unwrap_or(Reply::Missing))
    }

    /// The current versions of `names` (`(space, name)`) kept on
    /// `server`, creating those that are missing when `create`. Every
    /// server keeps its own copy of a generation or tag version, beside
    /// the values that record it: a dead server costs only its own keys.
    async fn versions(
        &self,
        index: usize,
        names: &[(Space, &str)],
        create: bool,
    ) -> Result<Vec<Option<u64>>> {
        let out = self.fetch_versions(index, names, create).await?;
        for ((space, name), v) in names.iter().zip(&out) {
            if let (Space::Generation, Some(v)) = (space, v) {
                self.remember(index, name, *v);
            }
        }
        Ok(out)
    }

    async fn fetch_versions(
        &self,
        server: usize,
        names: &[(Space, &str)],
        create: bool,
    ) -> Result<Vec<Option<u64>>> {
        let server = &self.inner.servers[server];
        let mut out = vec![None; names.len()];
        for _ in 0..3 {
            let missing: Vec<usize> = (0..names.len()).filter(|i| out[*i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let gets: Vec<Request> = missing
                .iter()
                .map(|i| Request::Get {
                    key: item_key(names[*i].0, names[*i].1),
                })
                .collect();
            let found = server.pipeline("get versions", &gets).await?;
            let mut adds = Vec::new();
            let mut added = Vec::new();
            for (j, i) in missing.iter().enumerate() {
                match parse_version(found.get(j)) {
                    Some(v) => out[*i] = Some(v),
                    None if create => {
                        let v = tagged::new_version()?;
                        adds.push(Request::Set {
                            key: item_key(names[*i].0, names[*i].1),
                            value: version_bytes(v),
                            ttl: 0,
                            mode: Mode::Add,
                            cas: None,
                        });
                        added.push((*i, v));
                    }
                    None => {}
                }
            }
            if adds.is_empty() {
                break;
            }
            let stored = server.pipeline("add versions", &adds).await?;
            for ((i, v), reply) in added.into_iter().zip(stored) {
                // NotStored: someone else added one first; read it next round.
                if reply == Reply::Done {
                    out[i] = Some(v);
                }
            }
        }
        Ok(out)
    }

    /// Bytes to store for `key`: the value with the versions of its
    /// namespace and tags.
    async fn wrap(&self, key: &str, value: &[u8], tags: &[String]) -> Result<Bytes> {
        let mut names: Vec<(Space, &str)> = Vec::with_capacity(tags.len() + 1);
        let ns = namespace_of(key);
        if let Some(ns) = ns {
            names.push((Space::Generation, ns));
        }
        for tag in tags {
            if !names
                .iter()
                .any(|(s, n)| matches!(s, Space::Tag) && *n == tag.as_str())
            {
                names.push((Space::Tag, tag));
            }
        }
        if names.is_empty() {
            return Ok(tagged::plain(Bytes::copy_from_slice(value)));
        }
        let server = self.server_of(&item_key(Space::Value, key));
        let versions = self.versions(server, &names, true).await?;
        let mut pairs = Vec::with_capacity(names.len());
        for ((space, name), v) in names.iter().zip(versions) {
            let v = v.ok_or_else(|| Error::Backend {
                backend: "memcached",
                message: format!("could not create the version of {name:?}"),
                source: None,
            })?;
            pairs.push((
                if matches!(space, Space::Generation) {
                    NAMESPACE
                } else {
                    *name
                },
                v,
            ));
        }
        tagged::wrap(&pairs, value).ok_or_else(|| Error::Backend {
            backend: "memcached",
            message: format!("{} tags on one value (at most 254)", tags.len()),
            source: None,
        })
    }

    /// Remembers the generation of `ns` on `server` (reads see it on every
    /// call: only a change takes an allocation).
    fn remember(&self, server: usize, ns: &str, generation: u64) {
        let mut seen = self.inner.seen[server].lock();
        match seen.get_mut(ns) {
            Some(known) => *known = generation,
            None => {
                if seen.len() >= SEEN_MAX {
                    seen.clear();
                }
                seen.insert(ns.to_owned(), generation);
            }
        }
    }

    /// An untagged write in one round trip when this process has seen the
    /// namespace's generation on the key's server: the pipeline reads the
    /// current generation, then stores the value recording the one seen.
    /// The server runs them in order, so if the generation read is the one
    /// recorded, the value was written in it (a `clear` after the read
    /// makes it a miss, as it should). `Ok(false)`: nothing known, or the
    /// generation moved; the caller writes again with the current one.
    async fn set_with_seen(&self, key: &str, ns: &str, entry: &Entry<'_>) -> Result<bool> {
        let item = item_key(Space::Value, key);
        let server = self.server_of(&item);
        let Some(seen) = self.inner.seen[server].lock().get(ns).copied() else {
            return Ok(false);
        };
        let Some(wrapped) = tagged::wrap(&[(NAMESPACE, seen)], &entry.value) else {
            return Ok(false);
        };
        let requests = [
            Request::Get {
                key: item_key(Space::Generation, ns),
            },
            Request::Set {
                key: item,
                value: wrapped,
                ttl: exptime(entry.ttl),
                mode: Mode::Set,
                cas: None,
            },
        ];
        let replies = self.inner.servers[server]
            .pipeline("set", &requests)
            .await?;
        match parse_version(replies.first()) {
            Some(current) if current == seen => {
                let reply = replies.get(1).unwrap_or(&Reply::Missing);
                stored(reply, key, entry.value.len(), self.inner.max_value)?;
                Ok(true)
            }
            Some(current) => {
                self.remember(server, ns, current);
                Ok(false)
            }
            None => {
                self.inner.seen[server].lock().remove(ns);
                Ok(false)
            }
        }
    }

    fn check_size(&self, key: &str, value: &[u8]) -> Result<()> {
        Error::check_value_size(key, value.len(), Some(self.inner.max_value))
    }

    /// Reads `keys` and checks the versions their values record: one
    /// pipeline per server (values and the generations kept beside them),
    /// and a second one for servers holding tagged values.
    async fn read(&self, keys: &[&str]) -> Result<Vec<Checked>> {
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); self.inner.servers.len()];
        for (i, k) in keys.iter().enumerate() {
            per[self.server_of(&item_key(Space::Value, k))].push(i);
        }
        let calls = per
            .iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(s, idx)| async move {
                let mine: Vec<&str> = idx.iter().map(|i| keys[*i]).collect();
                (idx, self.read_on(s, &mine).await)
            });
        let mut out: Vec<Option<Checked>> = (0..keys.len()).map(|_| None).collect();
        let mut error = None;
        for (idx, outcome) in join_all(calls).await {
            match outcome {
                Ok(checked) => {
                    for (i, c) in idx.iter().zip(checked) {
                        out[*i] = Some(c);
                    }
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error
            && (keys.len() == 1 || out.iter().all(Option::is_none))
        {
            return Err(e);
        }
        // The keys of a server that failed are misses.
        Ok(out
            .into_iter()
            .map(|c| c.unwrap_or(Checked::Gone))
            .collect())
    }

    /// [`read`](Self::read) of keys that all live on `server`.
    async fn read_on(&self, server: usize, keys: &[&str]) -> Result<Vec<Checked>> {
        let mut requests: Vec<Request> = keys
            .iter()
            .map(|k| Request::Get {
                key: item_key(Space::Value, k),
            })
            .collect();
        let mut spaces: Vec<&str> = Vec::new();
        for k in keys {
            if let Some(ns) = namespace_of(k)
                && !spaces.contains(&ns)
            {
                spaces.push(ns);
                requests.push(Request::Get {
                    key: item_key(Space::Generation, ns),
                });
            }
        }
        let replies = self.inner.servers[server]
            .pipeline("get", &requests)
            .await?;
        let generations: Vec<Option<u64>> = (0..spaces.len())
            .map(|j| parse_version(replies.get(keys.len() + j)))
            .collect();
        for (ns, g) in spaces.iter().zip(&generations) {
            if let Some(g) = g {
                self.remember(server, ns, *g);
            }
        }
        let generation = |ns: Option<&str>| -> Option<Option<u64>> {
            let ns = ns?;
            Some(generations[spaces.iter().position(|s| *s == ns)?])
        };
        let mut out = Vec::with_capacity(keys.len());
        let mut pending: Vec<(usize, Vec<(String, u64)>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(Reply::Value { value, ttl, .. }) = replies.get(i) else {
                out.push(Checked::Gone);
                continue;
            };
            let current = generation(namespace_of(key));
            match tagged::parse(value.clone()) {
                Some(Stored::Plain(v)) if current.is_none() => out.push(Checked::Live(v, *ttl)),
                Some(Stored::Tagged { tags, value }) => {
                    let mut rest = Vec::new();
                    let mut recorded = None;
                    for (name, v) in tags {
                        if name == NAMESPACE {
                            recorded = Some(v);
                        } else {
                            rest.push((name, v));
                        }
                    }
                    // A value of a namespaced key records the generation it
                    // was written in; it must still be the current one.
                    let ok = match current {
                        None => recorded.is_none(),
                        Some(now) => now.is_some() && recorded == now,
                    };
                    if ok && !rest.is_empty() {
                        pending.push((i, rest));
                    }
                    out.push(if ok {
                        Checked::Live(value, *ttl)
                    } else {
                        Checked::Gone
                    });
                }
                _ => out.push(Checked::Gone),
            }
        }
        if !pending.is_empty() {
            let mut names: Vec<&str> = Vec::new();
            for (_, tags) in &pending {
                for (name, _) in tags {
                    if !names.contains(&name.as_str()) {
                        names.push(name);
                    }
                }
            }
            let spaced: Vec<(Space, &str)> = names.iter().map(|n| (Space::Tag, *n)).collect();
            let current = self.versions(server, &spaced, false).await?;
            for (i, tags) in &pending {
                let fresh = tags.iter().all(|(name, v)| {
                    names
                        .iter()
                        .position(|n| n == name)
                        .and_then(|p| current[p])
                        == Some(*v)
                });
                if !fresh {
                    out[*i] = Checked::Gone;
                }
            }
        }
        Ok(out)
    }

    async fn read_one(&self, key: &str) -> Result<Checked> {
        let mut checked = self.read(&[key]).await?;
        Ok(checked.pop().unwrap_or(Checked::Gone))
    }

    /// Moves the version kept under `name` in `space`, on every server.
    /// A server that cannot be reached keeps its old version: the call
    /// fails (after the others were moved), and values on that server may
    /// be served again if it comes back with its data.
    async fn bump(&self, space: Space, name: &str) -> Result<()> {
        let v = tagged::new_version()?;
        let request = [Request::Set {
            key: item_key(space, name),
            value: version_bytes(v),
            ttl: 0,
            mode: Mode::Set,
            cas: None,
        }];
        let calls = self
            .inner
            .servers
            .iter()
            .map(|s| s.pipeline("set version", &request));
        for (index, outcome) in join_all(calls).await.into_iter().enumerate() {
            match outcome?.first() {
                Some(Reply::Done) => {
                    if matches!(space, Space::Generation) {
                        self.remember(index, name, v);
                    }
                }
                other => {
                    return Err(Error::Backend {
                        backend: "memcached",
                        message: format!("version not stored: {other:?}"),
                        source: None,
                    });
                }
            }
        }
        Ok(())
    }

    fn unsupported(operation: &'static str) -> Error {
        Error::Unsupported {
            backend: "memcached",
            operation,
        }
    }
}

fn stored(reply: &Reply, key: &str, size: usize, limit: usize) -> Result<()> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(Error::Backend {
            backend: "memcached",
            message: format!("`{key}` ({size} bytes, limit {limit}) not stored: {other:?}"),
            source: None,
        }),
    }
}

/// Maps a server's refusal of a too large item to [`Error::ValueTooLarge`].
fn too_large(err: Error, key: &str, size: usize, limit: usize) -> Error {
    let big = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<McError>())
        .is_some_and(McError::is_too_large);
    if big {
        Error::ValueTooLarge {
            key: key.chars().take(64).collect(),
            size,
            limit,
        }
    } else {
        err
    }
}

#[async_trait]
impl CacheBackend for MemcachedBackend {
    fn name(&self) -> &'static str {
        "memcached"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            pattern_deletes: false,
            exact_tag_keys: false,
            exact_counts: false,
            ttl_resolution: Duration::from_secs(1),
            native_expiry: true,
            max_key_len: None,
            max_value_len: Some(self.inner.max_value),
            leases: true,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(match self.read_one(key).await? {
            Checked::Live(v, _) => Some(v),
            Checked::Gone => None,
        })
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .read(keys)
            .await?
            .into_iter()
            .map(|c| match c {
                Checked::Live(v, _) => Some(v),
                Checked::Gone => None,
            })
            .collect())
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        Ok(match self.read_one(key).await? {
            Checked::Live(v, ttl) => Some((v, remaining(ttl))),
            Checked::Gone => None,
        })
    }

    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        self.check_size(key, &entry.value)?;
        if entry.ttl == Some(Duration::ZERO) {
            return self.delete(key).await.map(drop);
        }
        let size = entry.value.len();
        let limit = self.inner.max_value;
        if entry.tags.is_empty()
            && let Some(ns) = namespace_of(key)
            && self
                .set_with_seen(key, ns, &entry)
                .await
                .map_err(|e| too_large(e, key, size, limit))?
        {
            return Ok(());
        }
        let wrapped = self.wrap(key, &entry.value, entry.tags).await?;
        let request = Request::Set {
            key: item_key(Space::Value, key),
            value: wrapped,
            ttl: exptime(entry.ttl),
            mode: Mode::Set,
            cas: None,
        };
        let reply = self
            .one("set", request)
            .await
            .map_err(|e| too_large(e, key, size, limit))?;
        stored(&reply, key, size, limit)
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.check_size(key, value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        if ttl == Some(Duration::ZERO) {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
            return self.delete_many(&keys).await.map(drop);
        }
        let servers = self.inner.servers.len();
        let mut spaces: Vec<Vec<(Space, &str)>> = vec![Vec::new(); servers];
        for (key, _) in entries {
            let s = self.server_of(&item_key(Space::Value, key));
            if let Some(ns) = namespace_of(key)
                && !spaces[s].iter().any(|(_, n)| *n == ns)
            {
                spaces[s].push((Space::Generation, ns));
            }
        }
        let lookups = spaces.iter().enumerate().map(|(s, names)| async move {
            if names.is_empty() {
                Ok(Vec::new())
            } else {
                self.versions(s, names, true).await
            }
        });
        let generations: Vec<Vec<Option<u64>>> =
            join_all(lookups).await.into_iter().collect::<Result<_>>()?;
        let mut requests = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let item = item_key(Space::Value, key);
            let s = self.server_of(&item);
            let wrapped = match namespace_of(key) {
                Some(ns) => {
                    let at = spaces[s]
                        .iter()
                        .position(|(_, n)| *n == ns)
                        .unwrap_or_default();
                    let g = generations[s].get(at).copied().flatten().ok_or_else(|| {
                        Error::Backend {
                            backend: "memcached",
                            message: format!("could not create the generation of {ns:?}"),
                            source: None,
                        }
                    })?;
                    tagged::wrap(&[(NAMESPACE, g)], value).unwrap_or_default()
                }
                None => tagged::plain(value.clone()),
            };
            requests.push(Request::Set {
                key: item,
                value: wrapped,
                ttl: exptime(ttl),
                mode: Mode::Set,
                cas: None,
            });
        }
        let limit = self.inner.max_value;
        let replies = self
            .batch("set (batch)", requests)
            .await
            .all()
            .map_err(|e| too_large(e, entries[0].0, entries[0].1.len(), limit))?;
        for ((key, value), reply) in entries.iter().zip(&replies) {
            stored(reply, key, value.len(), limit)?;
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let request = Request::Delete {
            key: item_key(Space::Value, key),
            cas: None,
        };
        Ok(self.one("delete", request).await? == Reply::Done)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let requests = keys
            .iter()
            .map(|k| Request::Delete {
                key: item_key(Space::Value, k),
                cas: None,
            })
            .collect();
        let replies = self.batch("delete (batch)", requests).await.all()?;
        Ok(replies.iter().filter(|r| **r == Reply::Done).count() as u64)
    }

    async fn delete_pattern(&self, _pattern: &str) -> Result<u64> {
        Err(Self::unsupported(
            "delete_pattern (memcached cannot list its keys)",
        ))
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        match prefix.strip_suffix(':') {
            Some(ns) if !ns.is_empty() && !ns.contains(':') => {
                self.bump(Space::Generation, ns).await?;
                Ok(0)
            }
            _ => Err(Self::unsupported(
                "clear of a prefix other than a namespace (`ns:`)",
            )),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(matches!(self.read_one(key).await?, Checked::Live(..)))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        Ok(match self.read_one(key).await? {
            Checked::Live(_, ttl) => remaining(ttl),
            Checked::Gone => KeyTtl::Missing,
        })
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let item = item_key(Space::Value, key);
        let ns = namespace_of(key);
        let generation = match ns {
            Some(ns) => {
                self.versions(self.server_of(&item), &[(Space::Generation, ns)], true)
                    .await?[0]
            }
            None => None,
        };
        let encode = |n: i64| -> Bytes {
            let text = n.to_string();
            match generation {
                Some(g) => tagged::wrap(&[(NAMESPACE, g)], text.as_bytes()).unwrap_or_default(),
                None => tagged::plain(Bytes::from(text)),
            }
        };
        let creation = if ttl == Some(Duration::ZERO) {
            None
        } else {
            ttl
        };
        // Contenders spread out between attempts; the loop ends when one
        // wins or the command timeout has passed.
        let mut backoff = Backoff::new(self.command_timeout());
        loop {
            let found = self
                .one("incr (get)", Request::Get { key: item.clone() })
                .await?;
            let (next, cas, keep) = match found {
                Reply::Value {
                    value,
                    ttl: left,
                    cas,
                } => {
                    let current = match tagged::parse(value) {
                        Some(Stored::Plain(v)) if generation.is_none() => Some(v),
                        Some(Stored::Tagged { tags, value })
                            if tags == [(NAMESPACE.to_owned(), generation.unwrap_or_default())]
                                && generation.is_some() =>
                        {
                            Some(value)
                        }
                        _ => None,
                    };
                    match current {
                        // a live counter: add, keep its TTL
                        Some(v) => {
                            let n = std::str::from_utf8(&v)
                                .ok()
                                .and_then(|s| s.parse::<i64>().ok());
                            let Some(next) = n.and_then(|n| n.checked_add(delta)) else {
                                return Err(Error::NotAnInteger {
                                    key: key.to_owned(),
                                });
                            };
                            (next, Some(cas), left.unwrap_or(0))
                        }
                        // a value of an older generation: start again
                        None => (delta, Some(cas), exptime(creation)),
                    }
                }
                _ => (delta, None, exptime(creation)),
            };
            let request = Request::Set {
                key: item.clone(),
                value: encode(next),
                ttl: keep,
                mode: if cas.is_some() { Mode::Set } else { Mode::Add },
                cas,
            };
            if self.one("incr (set)", request).await? == Reply::Done {
                return Ok(next);
            }
            // someone else changed or created it: read again
            if !backoff.wait().await {
                return Err(Error::Backend {
                    backend: "memcached",
                    message: format!(
                        "incr of `{key}` lost every compare-and-swap race for {} ms",
                        self.command_timeout().as_millis()
                    ),
                    source: None,
                });
            }
        }
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        self.bump(Space::Tag, tag).await?;
        Ok(0)
    }

    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let request = Request::Set {
            key: item_key(Space::Lease, key),
            value: Bytes::copy_from_slice(token.as_bytes()),
            ttl: exptime(Some(ttl)),
            mode: Mode::Add,
            cas: None,
        };
        Ok(self.one("lease", request).await? == Reply::Done)
    }

    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let item = item_key(Space::Lease, key);
        let Reply::Value { value, cas, .. } = self
            .one("lease renew (get)", Request::Get { key: item.clone() })
            .await?
        else {
            return Ok(false);
        };
        if value != token.as_bytes() {
            return Ok(false);
        }
        let request = Request::Set {
            key: item,
            value,
            ttl: exptime(Some(ttl)),
            mode: Mode::Set,
            cas: Some(cas),
        };
        Ok(self.one("lease renew", request).await? == Reply::Done)
    }

    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        let item = item_key(Space::Lease, key);
        let Reply::Value { value, cas, .. } = self
            .one("lease release (get)", Request::Get { key: item.clone() })
            .await?
        else {
            return Ok(false);
        };
        if value != token.as_bytes() {
            return Ok(false);
        }
        let request = Request::Delete {
            key: item,
            cas: Some(cas),
        };
        Ok(self.one("lease release", request).await? == Reply::Done)
    }

    fn supports_leases(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_fit_memcached_whatever_the_key() {
        let short = item_key(Space::Value, "ns:a b\r\n");
        assert_eq!(&short[..], b"vns:a b\r\n");
        let long = "k".repeat(4000);
        let item = item_key(Space::Value, &long);
        assert_eq!(item.len(), 183);
        assert!(token_len(item.len()) <= MAX_KEY_TOKEN);
        assert_ne!(item_key(Space::Value, &format!("{long}x")), item);
        assert_ne!(
            item_key(Space::Lease, "ns:a"),
            item_key(Space::Value, "ns:a")
        );
        let edge = "e".repeat(185);
        assert_eq!(item_key(Space::Value, &edge).len(), 186);
        assert_eq!(item_key(Space::Value, &format!("{edge}e")).len(), 183);
    }

    #[test]
    fn ttls_round_up_on_write_and_down_on_read() {
        assert_eq!(exptime(None), 0);
        assert_eq!(exptime(Some(Duration::from_millis(1))), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500))), 2);
        assert_eq!(exptime(Some(Duration::from_secs(60))), 60);
        let far = exptime(Some(Duration::from_secs(RELATIVE_TTL_MAX + 1)));
        assert!(
            u64::from(far) > crate::time::now_epoch_ms() / 1000,
            "absolute"
        );
        assert_eq!(remaining(None), KeyTtl::Persistent);
        assert_eq!(remaining(Some(10)), KeyTtl::Expires(Duration::from_secs(9)));
        assert_eq!(remaining(Some(0)), KeyTtl::Missing);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("memcache://127.0.0.1:11311").unwrap(),
            "127.0.0.1:11311"
        );
        assert_eq!(parse_addr("127.0.0.1").unwrap(), "127.0.0.1:11211");
        assert_eq!(parse_addr("memcached://host/").unwrap(), "host:11211");
        for bad in [
            "redis://x:1",
            "memcache://",
            "memcache://h:port",
            "memcache://u:p@h:1",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn namespaces() {
        assert_eq!(namespace_of("app:user:1"), Some("app"));
        assert_eq!(namespace_of("plain"), None);
        assert_eq!(namespace_of(":x"), None);
    }
}
