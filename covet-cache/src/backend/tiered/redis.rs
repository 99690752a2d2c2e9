//! Cross-process coherence of [`Tiered`](super::Tiered) over Redis pub/sub.
//!
//! Every tiered cache with coherence holds two Redis connections of its
//! own: a multiplexed one that `PUBLISH`es its invalidations, and a pub/sub
//! one, owned by a subscriber task, that `PSUBSCRIBE`s to
//! `<channel_prefix>*` and applies what other processes publish.
//!
//! One pattern subscription covers every namespace: a process never misses
//! the first invalidation of a namespace it starts using, at the price of
//! receiving (and ignoring cheaply) those of namespaces it does not hold.
//!
//! # Wire format
//!
//! Channel `covet:invalidate:<namespace>` (the namespace is the text before
//! the first `:` of the key, pattern, prefix or tag). The payload is
//! postcard: a version byte (`1`), the 128-bit origin id of the publishing
//! `Tiered` (a process ignores its own messages) and the invalidation:
//! keys, a glob pattern, a prefix, or a tag with the keys L2 deleted for it
//! when L2 could list them. A payload that does not decode drops the
//! channel's namespace from L1.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Tiered;
use super::coherence::{Channel, Coherence, Receiver};
use super::front::{Invalidate, Link, LinkState};
use crate::backend::CacheBackend;
use crate::backend::redis::RedisBackend;
use crate::backend::remote::redact;
use crate::error::{BoxError, Error, Result};
use crate::key::escape_glob;

/// Default channel prefix; channels are `covet:invalidate:<namespace>`.
pub const DEFAULT_CHANNEL_PREFIX: &str = "covet:invalidate:";

const WIRE_VERSION: u8 = 1;

/// Upper bound of every duration setting, so no deadline overflows.
const HOUR: Duration = Duration::from_secs(3600);

type SharedError = Arc<dyn StdError + Send + Sync>;

/// Where and how a [`Tiered`](super::Tiered) cache publishes and receives
/// invalidations: a Redis server (normally the one L2 lives on; any node
/// of a Redis Cluster works, since classic pub/sub spans the cluster).
///
/// ```no_run
/// use covet_cache::{Cache, MemoryBackend, RedisCoherence, Tiered};
/// # async fn demo(l2: impl covet_cache::CacheBackend) -> Result<(), Box<dyn std::error::Error>> {
/// let tiered = Tiered::builder(MemoryBackend::new(), l2)
///     .coherence(RedisCoherence::new("redis://127.0.0.1:6379")?)
///     .connect() // waits until subscribed
///     .await?;
/// let cache = Cache::builder().backend(tiered).namespace("myapp").build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisCoherence {
    clients: Vec<redis::Client>,
    urls: Vec<String>,
    channel_prefix: String,
    ping_interval: Duration,
    timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    keep_l1_while_disconnected: bool,
}

impl fmt::Debug for RedisCoherence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCoherence")
            .field("urls", &self.urls)
            .field("channel_prefix", &self.channel_prefix)
            .field("ping_interval", &self.ping_interval)
            .field("timeout", &self.timeout)
            .field("backoff", &(self.backoff_min, self.backoff_max))
            .field(
                "keep_l1_while_disconnected",
                &self.keep_l1_while_disconnected,
            )
            .finish()
    }
}

impl RedisCoherence {
    /// Coherence through the Redis at `url` (`redis://`, `rediss://` with
    /// the `redis-tls` feature, `unix://`). Nothing connects yet.
    ///
    /// ```
    /// use covet_cache::RedisCoherence;
    /// let c = RedisCoherence::new("redis://127.0.0.1:6379").unwrap();
    /// assert_eq!(c.channel("myapp"), "covet:invalidate:myapp");
    /// assert!(RedisCoherence::new("nonsense").is_err());
    /// ```
    pub fn new(url: &str) -> Result<RedisCoherence> {
        RedisCoherence::with_urls([url])
    }

    /// Coherence through the Redis (or the Redis Cluster nodes) `backend`
    /// is connected to.
    ///
    /// ```no_run
    /// use covet_cache::{MemoryBackend, RedisBackend, RedisCoherence, Tiered};
    /// # async fn run() -> covet_cache::Result<()> {
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// let tiered = Tiered::builder(MemoryBackend::new(), redis.clone())
    ///     .coherence(RedisCoherence::from_backend(&redis)?.channel_prefix("myapp:invalidate:"))
    ///     .connect()
    ///     .await?;
    /// # let _ = tiered; Ok(()) }
    /// ```
    pub fn from_backend(backend: &RedisBackend) -> Result<RedisCoherence> {
        RedisCoherence::with_urls(backend.urls())
    }

    /// Coherence through the first of `urls` that answers; after a loss the
    /// next one is tried (for the nodes of a Redis Cluster, or a primary
    /// and its replicas).
    pub fn with_urls<I, S>(urls: I) -> Result<RedisCoherence>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut clients = Vec::new();
        let mut shown = Vec::new();
        for url in urls {
            let url = url.as_ref();
            let client = redis::Client::open(url).map_err(|e| {
                Error::backend(
                    "redis",
                    format!("invalid Redis URL {:?} for coherence", redact(url)),
                    e,
                )
            })?;
            clients.push(client);
            shown.push(redact(url));
        }
        if clients.is_empty() {
            return Err(Error::Backend {
                backend: "redis",
                message: "no Redis URL given for coherence".into(),
                source: None,
            });
        }
        Ok(RedisCoherence {
            clients,
            urls: shown,
            channel_prefix: DEFAULT_CHANNEL_PREFIX.to_owned(),
            ping_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            keep_l1_while_disconnected: false,
        })
    }

    /// Prefix of the channels (default `covet:invalidate:`): applications
    /// that share a Redis but not their data may use their own.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.channel_prefix = prefix.into();
        self
    }

    /// How often the subscription is checked with a `PING` (default 1 s;
    /// from 10 ms to 1 hour). A subscription whose `PING` is not answered within one
    /// interval counts as lost, so a silently dead connection is detected
    /// within two intervals.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.clamp(Duration::from_millis(10), HOUR);
        self
    }

    /// Limit of connecting, subscribing and publishing (default 2 s; from
    /// 1 ms to 1 hour). A publish (connecting and its one retry included)
    /// completes or fails within it, so a coherent write returns within
    /// the L2 backend's command timeout plus this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), HOUR);
        self
    }

    /// Delay between attempts to re-subscribe: from `min`, doubling up to
    /// `max`, with jitter (default 50 ms to 2 s; both from 1 ms to 1 hour).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.clamp(Duration::from_millis(1), HOUR);
        self.backoff_max = max.clamp(self.backoff_min, HOUR);
        self
    }

    /// Keep L1 when the subscription is lost, and flush it only when the
    /// subscription is back (default `false`: flush at once). L1 hits then
    /// continue through a Redis outage, but invalidations published during
    /// the outage by processes that can still reach Redis are missed until
    /// the subscription is back: staleness is bounded by `l1_max_ttl`
    /// instead of by the loss detection.
    pub fn keep_l1_while_disconnected(mut self, keep: bool) -> Self {
        self.keep_l1_while_disconnected = keep;
        self
    }

    /// The channel invalidations of `namespace` are published on.
    pub fn channel(&self, namespace: &str) -> String {
        format!("{}{namespace}", self.channel_prefix)
    }
}

/// Coherence for an L2 given to `Tiered::new` without a choice: a
/// `RedisBackend` (or an `Arc` of one) brings its own server.
pub(super) fn auto(l2: &dyn Any) -> Option<RedisCoherence> {
    let redis = l2
        .downcast_ref::<RedisBackend>()
        .or_else(|| l2.downcast_ref::<Arc<RedisBackend>>().map(|r| &**r))?;
    match RedisCoherence::from_backend(redis) {
        Ok(c) => Some(c),
        Err(err) => {
            tracing::warn!(error = %err, "no coherence for this RedisBackend");
            None
        }
    }
}

impl From<RedisCoherence> for Coherence {
    fn from(config: RedisCoherence) -> Coherence {
        Coherence {
            channel: Box::new(Bus::new(config)),
        }
    }
}

impl<L1: CacheBackend> Tiered<L1, RedisBackend> {
    /// L1 in front of Redis, coherent across processes through pub/sub on
    /// the same Redis (or Redis Cluster); waits until subscribed, and fails
    /// if that Redis cannot be reached within the coherence timeout (2 s).
    /// [`Tiered::new`] gives the same without waiting.
    ///
    /// ```no_run
    /// use covet_cache::{Cache, MemoryBackend, RedisBackend, Tiered};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// let tiered = Tiered::coherent(MemoryBackend::new(), redis).await?;
    /// let cache = Cache::builder().backend(tiered).namespace("myapp").build()?;
    /// # let _ = cache; Ok(()) }
    /// ```
    pub async fn coherent(l1: L1, l2: RedisBackend) -> Result<Self> {
        let coherence = RedisCoherence::from_backend(&l2)?;
        Tiered::builder(l1, l2).coherence(coherence).connect().await
    }
}

// ---- the running side -------------------------------------------------------

/// One tiered cache's coherence: the publisher connection and the handle
/// of its subscriber task (which stops when this is dropped).
pub(super) struct Bus {
    config: Arc<RedisCoherence>,
    origin: u128,
    publisher: tokio::sync::Mutex<Publisher>,
    // Whether a subscriber task runs (it clears this when it ends, for
    // example with the runtime it ran on, so the next operation starts one).
    started: Arc<AtomicBool>,
    last_error: Arc<parking_lot::Mutex<Option<SharedError>>>,
    // Dropping it tells the subscriber task to stop.
    shutdown: watch::Sender<()>,
}

#[derive(Default)]
struct Publisher {
    conn: Option<MultiplexedConnection>,
    retry_at: Option<Instant>,
    next_url: usize,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("config", &self.config)
            .field("origin", &format_args!("{:032x}", self.origin))
            .field("started", &self.started.load(Ordering::Relaxed))
            .finish()
    }
}

impl Bus {
    pub(super) fn new(config: RedisCoherence) -> Bus {
        Bus {
            config: Arc::new(config),
            origin: random_origin(),
            publisher: tokio::sync::Mutex::new(Publisher::default()),
            started: Arc::default(),
            last_error: Arc::default(),
            shutdown: watch::Sender::new(()),
        }
    }
}

#[async_trait::async_trait]
impl Channel for Bus {
    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn describe(&self) -> String {
        self.config.urls.join(", ")
    }

    fn last_error(&self) -> Option<BoxError> {
        self.last_error
            .lock()
            .clone()
            .map(|e| Box::new(e) as BoxError)
    }

    /// Spawns the subscriber task on the current tokio runtime unless one
    /// runs.
    fn ensure_started(&self, front: &Arc<dyn Receiver>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running {
            started: Arc::clone(&self.started),
            front: Arc::clone(front),
        };
        runtime.spawn(subscriber(
            Arc::clone(&self.config),
            self.origin,
            Arc::clone(front),
            self.shutdown.subscribe(),
            Arc::clone(&self.last_error),
            running,
        ));
    }

    /// Publishes `op`. A failure is logged and counted, not returned: the
    /// write it follows did happen, and other processes' copies still
    /// expire within `l1_max_ttl`.
    async fn publish(&self, link: &Link, op: &Invalidate<'_>) {
        let message = Outgoing {
            version: WIRE_VERSION,
            origin: self.origin,
            op,
        };
        let payload = match postcard::to_allocvec(&message) {
            Ok(p) => p,
            Err(err) => {
                link.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %err, "could not encode an invalidation");
                return;
            }
        };
        let channel = self.config.channel(op.namespace());
        // One bound for the whole publish: waiting for the publisher lock,
        // connecting, and the `PUBLISH` itself with its one retry.
        let outcome =
            tokio::time::timeout(self.config.timeout, self.send(&channel, &payload)).await;
        let error = match outcome {
            Ok(Ok(())) => {
                link.stats.published.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Err(error)) => error,
            Err(_) => {
                // The connection may be dead without a RST: the next
                // publish opens a new one (unless another is being opened).
                if let Ok(mut p) = self.publisher.try_lock() {
                    p.conn = None;
                }
                format!("no answer within {:?}", self.config.timeout)
            }
        };
        link.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            channel,
            error,
            "could not publish an invalidation; other processes keep their L1 copies for at most l1_max_ttl"
        );
    }
}

impl Bus {
    /// Sends one message, on a fresh connection once more if the first
    /// attempt broke.
    async fn send(&self, channel: &str, payload: &[u8]) -> std::result::Result<(), String> {
        let mut last_error: Option<String> = None;
        for _ in 0..2 {
            let Some(mut conn) = self.connection().await else {
                break;
            };
            let sent = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(err) => last_error = Some(err.to_string()),
            }
            self.publisher.lock().await.conn = None;
        }
        Err(last_error.unwrap_or_else(|| "not connected".to_owned()))
    }

    /// The publisher connection, connecting when there is none (at most
    /// once per 250 ms while Redis does not answer).
    async fn connection(&self) -> Option<MultiplexedConnection> {
        let mut p = self.publisher.lock().await;
        if let Some(conn) = &p.conn {
            return Some(conn.clone());
        }
        if p.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout));
        let n = self.config.clients.len();
        for i in 0..n {
            let idx = (p.next_url + i) % n;
            let attempt = tokio::time::timeout(
                self.config.timeout,
                self.config.clients[idx].get_multiplexed_async_connection_with_config(&config),
            )
            .await;
            match attempt {
                Ok(Ok(conn)) => {
                    p.conn = Some(conn.clone());
                    p.next_url = idx;
                    p.retry_at = None;
                    return Some(conn);
                }
                Ok(Err(err)) => {
                    tracing::debug!(url = %self.config.urls[idx], error = %err, "coherence publisher cannot connect")
                }
                Err(_) => {
                    tracing::debug!(url = %self.config.urls[idx], "coherence publisher connect timed out")
                }
            }
        }
        p.retry_at = Some(Instant::now() + Duration::from_millis(250));
        None
    }
}

#[derive(Serialize)]
struct Outgoing<'a, 'b> {
    version: u8,
    origin: u128,
    op: &'a Invalidate<'b>,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    version: u8,
    origin: u128,
    op: Invalidate<'a>,
}

fn decode(payload: &[u8]) -> Option<Incoming<'_>> {
    if payload.first() != Some(&WIRE_VERSION) {
        return None;
    }
    postcard::from_bytes::<Incoming<'_>>(payload)
        .ok()
        .filter(|m| m.version == WIRE_VERSION)
}

fn random_origin() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        std::process::id().hash(&mut h);
        std::time::SystemTime::now().hash(&mut h);
        COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
        h.finish()
    };
    (u128::from(half()) << 64) | u128::from(half())
}

enum End {
    Shutdown,
    Lost(String),
}

/// Held by the subscriber task. When the task ends, for whatever reason
/// (its tiers were dropped, or the runtime it ran on shut down), the link
/// counts as down, so L1 copies live at most `disconnected_l1_ttl`, and the
/// next operation that reaches the tiers starts a new task (whose first
/// subscription flushes L1).
struct Running {
    started: Arc<AtomicBool>,
    front: Arc<dyn Receiver>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.front.invalidate_reads();
        self.front.link().set_state(LinkState::Down);
        self.started.store(false, Ordering::Release);
    }
}

/// The subscriber task: subscribe, apply messages until the subscription
/// is lost, flush L1, back off, subscribe again; until shutdown.
async fn subscriber(
    config: Arc<RedisCoherence>,
    origin: u128,
    front: Arc<dyn Receiver>,
    mut shutdown: watch::Receiver<()>,
    last_error: Arc<parking_lot::Mutex<Option<SharedError>>>,
    _running: Running,
) {
    let link = front.link();
    let pattern = format!("{}*", escape_glob(&config.channel_prefix));
    let mut failures: u32 = 0;
    let mut url = 0usize;
    loop {
        let idx = url % config.clients.len();
        let attempt = tokio::select! {
            _ = shutdown.changed() => return,
            r = subscribe(&config.clients[idx], &pattern, config.timeout) => r,
        };
        match attempt {
            Ok((sink, stream)) => {
                failures = 0;
                *last_error.lock() = None;
                // Whatever was published while this process was not
                // subscribed is lost: start again from an empty L1.
                front.flush().await;
                link.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
                link.set_state(LinkState::Up);
                tracing::debug!(url = %config.urls[idx], pattern, "coherence subscribed");
                let end = serve(&config, origin, &*front, sink, stream, &mut shutdown).await;
                link.set_state(LinkState::Down);
                let End::Lost(why) = end else {
                    return;
                };
                if config.keep_l1_while_disconnected {
                    tracing::warn!(url = %config.urls[idx], reason = why, "coherence subscription lost; L1 kept until it is back");
                } else {
                    front.flush().await;
                    tracing::warn!(url = %config.urls[idx], reason = why, "coherence subscription lost; L1 flushed");
                }
                // counted once handled, so whoever sees the count sees L1 flushed
                link.stats.losses.fetch_add(1, Ordering::Relaxed);
                url += 1;
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(url = %config.urls[idx], error = %err, "cannot subscribe to the coherence channel; retrying");
                } else {
                    tracing::debug!(url = %config.urls[idx], error = %err, "cannot subscribe to the coherence channel");
                }
                *last_error.lock() = Some(err);
                url += 1;
            }
        }
        let delay = backoff(&config, failures, origin);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    pattern: &str,
    limit: Duration,
) -> std::result::Result<(PubSubSink, PubSubStream), SharedError> {
    let connect = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.psubscribe(pattern).await?;
        Ok::<_, redis::RedisError>((sink, stream))
    };
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(err)) => Err(Arc::new(err)),
        Err(_) => Err(Arc::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {limit:?}"),
        ))),
    }
}

async fn serve(
    config: &RedisCoherence,
    origin: u128,
    front: &dyn Receiver,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    shutdown: &mut watch::Receiver<()>,
) -> End {
    let every = config.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return End::Shutdown,
            msg = stream.next() => match msg {
                Some(msg) => receive(config, origin, front, &msg).await,
                None => return End::Lost("connection closed".into()),
            },
            _ = ping.tick() => {
                match tokio::time::timeout(every, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return End::Lost(err.to_string()),
                    Err(_) => return End::Lost(format!("PING unanswered for {every:?}")),
                }
            }
        }
    }
}

async fn receive(config: &RedisCoherence, origin: u128, front: &dyn Receiver, msg: &redis::Msg) {
    match decode(msg.get_payload_bytes()) {
        Some(m) if m.origin == origin => {}
        Some(m) => {
            front.apply(&m.op).await;
            front.link().stats.received.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            let channel = msg.get_channel_name();
            let namespace = channel
                .strip_prefix(config.channel_prefix.as_str())
                .unwrap_or("");
            tracing::warn!(
                channel,
                "unreadable invalidation (another covet version?); dropping its namespace from L1"
            );
            if namespace.is_empty() {
                front.flush().await;
            } else {
                front
                    .apply(&Invalidate::Prefix(format!("{namespace}:").into()))
                    .await;
            }
        }
    }
}

/// `min * 2^(failures - 1)`, at most `max`, times a random factor in [0.5, 1].
fn backoff(config: &RedisCoherence, failures: u32, origin: u128) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = config
        .backoff_min
        .saturating_mul(1 << exp)
        .min(config.backoff_max);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (origin, failures, std::time::SystemTime::now()).hash(&mut h);
    let jitter = 0.5 + (h.finish() % 1000) as f64 / 2000.0;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let op = Invalidate::Tag {
            tag: Cow::Borrowed("ns:t"),
            keys: Some(vec!["ns:a".into(), "ns:b".into()]),
        };
        let bytes = postcard::to_allocvec(&Outgoing {
            version: WIRE_VERSION,
            origin: 7,
            op: &op,
        })
        .unwrap();
        let m = decode(&bytes).unwrap();
        assert_eq!(m.origin, 7);
        assert!(
            matches!(m.op, Invalidate::Tag { ref tag, keys: Some(ref k) } if tag == "ns:t" && k.len() == 2)
        );
        assert!(decode(b"").is_none());
        assert!(decode(b"\x02abc").is_none());
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn configuration() {
        let c = RedisCoherence::with_urls(["redis://u:secret@127.0.0.1:1", "redis://127.0.0.1:2"])
            .unwrap()
            .channel_prefix("app:inv:")
            .ping_interval(Duration::ZERO)
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(5))
            .timeout(Duration::MAX);
        assert_eq!(c.channel("ns"), "app:inv:ns");
        assert_eq!(c.ping_interval, Duration::from_millis(10));
        assert_eq!(c.backoff_max, c.backoff_min);
        assert_eq!(c.timeout, HOUR);
        assert!(!format!("{c:?}").contains("secret"));
        assert!(RedisCoherence::with_urls(Vec::<String>::new()).is_err());
        for failures in 1..30 {
            let d = backoff(&c, failures, 1);
            assert!(d <= c.backoff_max, "{d:?}");
        }
        assert_ne!(random_origin(), random_origin());
    }
}
