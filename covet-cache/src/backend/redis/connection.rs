//! The connection to one Redis server or to a cluster, and its replacement
//! when it stops answering.
//!
//! Sockets get TCP keepalive and (on Linux) `TCP_USER_TIMEOUT`,
//! so the kernel notices a peer that vanished without a RST within about
//! [`DEFAULT_TCP_KEEPALIVE`] plus three probes instead of its default of
//! about 15 minutes. Faster than that, [`Remote`](crate::backend::remote)
//! asks for a new connection after repeated timeouts or when the circuit
//! breaker trips: the new connection is opened lazily, by the next request
//! (the breaker's probe), on a new socket; requests already in flight finish
//! on the old one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{
    Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

use super::NAME;
use crate::backend::remote::{Health, Link};
use crate::error::{Error, Result};

/// Idle time before the first TCP keepalive probe: 10 s (then three
/// probes, 5 s apart).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(10);

/// Reconnection attempts the connection manager makes before it reports a
/// failure (the next command starts a new round).
const RECONNECT_RETRIES: usize = 2;

/// Keepalive probes after the idle time, and their interval.
const KEEPALIVE_PROBES: u32 = 3;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// The socket options of every connection. `TCP_NODELAY` stays off: on a
/// multiplexed connection Nagle's algorithm batches the writes of
/// concurrent requests, and turning it on cost 38 % of `SET` throughput in
/// `benches/redis.rs` (a single outstanding request is never delayed).
pub(super) fn tcp_settings(keepalive: Duration) -> TcpSettings {
    let ka = TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let settings = TcpSettings::default().set_keepalive(ka);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let settings = settings.set_user_timeout(keepalive + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES);
    settings
}

/// One connection handle, to a single server or a cluster.
#[derive(Clone)]
pub(super) enum Conn {
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

/// How to open a new connection.
enum Factory {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
        config: ClusterConfig,
    },
}

impl Factory {
    /// A connection that connects on its first request.
    fn lazy(&self) -> RedisResult<Conn> {
        match self {
            Factory::Single { client, config } => {
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map(Conn::Single)
            }
            Factory::Cluster { client, config } => Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
        }
    }

    /// A connection, connected.
    async fn connected(&self) -> RedisResult<Conn> {
        match self {
            Factory::Single { client, config } => {
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map(Conn::Single)
            }
            Factory::Cluster { client, config } => client
                .get_async_connection_with_config(config.clone())
                .await
                .map(Conn::Cluster),
        }
    }
}

/// What a connection is opened with.
pub(super) struct Settings {
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) keepalive: Duration,
    pub(super) lazy: bool,
}

/// The backend's connection: the current handle, its timeout count, and
/// how to open the next one. Shared by the backend and every
/// [`RedisConnection`] handed out.
pub(super) struct Connection {
    /// The current handle and its epoch (bumped by every replacement):
    /// read without a lock on every request.
    slot: ArcSwap<(Conn, u64)>,
    /// Serializes replacements.
    renewing: Mutex<()>,
    health: Health,
    factory: Factory,
    /// The URL(s), passwords masked.
    endpoint: String,
    /// The URL(s) as given (credentials included), for the coherence
    /// subscription.
    urls: Vec<String>,
    /// The bound of a request sent through a [`RedisConnection`].
    command_timeout: Duration,
}

impl Connection {
    /// Connects to one server (or, lazily, only prepares to).
    pub(super) async fn single(url: &str, endpoint: String, s: &Settings) -> Result<Connection> {
        let info = url
            .into_connection_info()
            .map_err(|e| Error::backend(NAME, format!("invalid Redis URL {endpoint}"), e))?
            .set_tcp_settings(tcp_settings(s.keepalive));
        let client = redis::Client::open(info)
            .map_err(|e| Error::backend(NAME, format!("invalid Redis URL {endpoint}"), e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            // No timer of the client's own: every request it carries is
            // already bounded by the command timeout (by `Remote::call` or
            // by a `RedisConnection`), and a second timer per command
            // costs a registration in tokio's timer wheel and its removal.
            .set_response_timeout(None)
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(Duration::from_millis(250));
        let factory = Factory::Single { client, config };
        Connection::open(factory, endpoint, vec![url.to_owned()], s).await
    }

    /// Connects to a cluster through some of its nodes.
    pub(super) async fn cluster(
        urls: Vec<String>,
        endpoint: String,
        s: &Settings,
    ) -> Result<Connection> {
        if urls.is_empty() {
            return Err(Error::Backend {
                backend: NAME,
                message: "connect_cluster needs at least one node URL".into(),
                source: None,
            });
        }
        let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(s.connect_timeout)
            .response_timeout(s.command_timeout)
            .retries(RECONNECT_RETRIES as u32)
            .min_retry_wait(25)
            .max_retry_wait(250)
            .tcp_settings(tcp_settings(s.keepalive))
            .build()
            .map_err(|e| Error::backend(NAME, format!("invalid cluster URLs {endpoint}"), e))?;
        let config = ClusterConfig::new()
            .set_connection_timeout(s.connect_timeout)
            .set_response_timeout(s.command_timeout);
        let factory = Factory::Cluster { client, config };
        Connection::open(factory, endpoint, urls, s).await
    }

    async fn open(
        factory: Factory,
        endpoint: String,
        urls: Vec<String>,
        s: &Settings,
    ) -> Result<Connection> {
        let conn = if s.lazy {
            factory
                .lazy()
                .map_err(|e| Error::backend(NAME, format!("configuring {endpoint}"), e))?
        } else {
            match tokio::time::timeout(s.connect_timeout * 2, factory.connected()).await {
                Ok(Ok(c)) => c,
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
            }
        };
        Ok(Connection {
            slot: ArcSwap::from_pointee((conn, 0)),
            renewing: Mutex::new(()),
            health: Health::default(),
            factory,
            endpoint,
            urls,
            command_timeout: s.command_timeout,
        })
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.factory, Factory::Cluster { .. })
    }

    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(super) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// How many times the connection was replaced.
    pub(super) fn renewals(&self) -> u64 {
        self.slot.load().1
    }

    /// Sends a request outside [`Remote::call`] (through a
    /// [`RedisConnection`]): bounded by the command timeout, its outcome
    /// counted toward replacing the connection.
    ///
    /// [`Remote::call`]: crate::backend::remote::Remote::call
    async fn bounded<T>(
        &self,
        epoch: u64,
        request: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let outcome = match tokio::time::timeout(self.command_timeout, request).await {
            Ok(outcome) => outcome,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms", self.command_timeout.as_millis()),
            ))),
        };
        self.observe(epoch, &outcome);
        outcome
    }

    fn observe<T>(&self, epoch: u64, outcome: &RedisResult<T>) {
        match outcome {
            Err(e) if Self::is_timeout(e) => {
                if self.health.timed_out(epoch) {
                    self.renew(epoch);
                }
            }
            Err(e) if Self::is_connection_error(e) => {}
            _ => self.health.answered(epoch),
        }
    }
}

impl Link for Connection {
    type Conn = Conn;
    type Error = RedisError;

    #[inline]
    fn current(&self) -> (Conn, u64) {
        let slot = self.slot.load();
        (slot.0.clone(), slot.1)
    }

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

    fn is_timeout(e: &RedisError) -> bool {
        e.is_timeout()
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn renew(&self, epoch: u64) {
        let _one_at_a_time = self.renewing.lock();
        if self.slot.load().1 != epoch || !self.health.claim_renewal(epoch) {
            return;
        }
        match self.factory.lazy() {
            Ok(fresh) => {
                self.slot.store(std::sync::Arc::new((fresh, epoch + 1)));
                tracing::info!(
                    endpoint = %self.endpoint,
                    "redis connection stopped answering; replaced by a new one"
                );
            }
            Err(err) => {
                // Keep the epoch moving so the next failures try again.
                let conn = self.slot.load().0.clone();
                self.slot.store(std::sync::Arc::new((conn, epoch + 1)));
                tracing::warn!(endpoint = %self.endpoint, error = %err, "could not open a new redis connection");
            }
        }
    }
}

/// A handle on the backend's multiplexed connection (single server or
/// cluster), for other Redis-based components (such as a session store)
/// that should share its connection, timeouts and reconnection instead of
/// opening their own. It implements the `redis` crate's `ConnectionLike`;
/// every request is bounded by the backend's command timeout (an expired
/// one fails with an I/O error of kind `TimedOut`). Every request goes to
/// the backend's current connection, so a replaced connection is replaced for
/// every handle too, and their timeouts count toward that replacement.
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
pub struct RedisConnection(pub(super) Arc<Connection>);

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.0.is_cluster() {
            "cluster"
        } else {
            "single"
        };
        f.debug_tuple("RedisConnection").field(&mode).finish()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let (mut conn, epoch) = self.0.current();
        let link = &self.0;
        Box::pin(async move { link.bounded(epoch, conn.req_packed_command(cmd)).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let (mut conn, epoch) = self.0.current();
        let link = &self.0;
        Box::pin(async move {
            link.bounded(epoch, conn.req_packed_commands(pipeline, offset, count))
                .await
        })
    }

    fn get_db(&self) -> i64 {
        self.0.current().0.get_db()
    }
}
