//! One memcached server: a pool of connections, the shared call wrapper
//! (timeout and circuit breaker) and pipelined requests.

use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::protocol::{McError, Reply, Request, encode, read_reply};
use crate::backend::remote::{Health, Link, Remote};
use crate::error::Result;

/// One connection with its read buffer.
type Conn = BufStream<TcpStream>;

/// A server and its idle connections.
pub(super) struct Server {
    /// `host:port`, as given.
    pub(super) addr: String,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    connect_timeout: Duration,
    /// Largest value a reply may announce.
    read_limit: usize,
    health: Health,
    remote: Remote,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("idle", &self.idle.lock().len())
            .field("remote", &self.remote)
            .finish()
    }
}

/// What [`Server::new`] needs.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) pool_size: usize,
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) breaker_threshold: u32,
    pub(super) breaker_cool_down: Duration,
    pub(super) read_limit: usize,
}

impl Server {
    pub(super) fn new(addr: String, settings: &Settings) -> Server {
        Server {
            remote: Remote::new(
                "memcached",
                addr.clone(),
                settings.command_timeout,
                settings.breaker_threshold,
                settings.breaker_cool_down,
            ),
            addr,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(settings.pool_size.max(1)),
            connect_timeout: settings.connect_timeout,
            read_limit: settings.read_limit,
            health: Health::default(),
        }
    }

    /// The bound of every request.
    pub(super) fn timeout(&self) -> Duration {
        self.remote.timeout()
    }

    /// Whether calls are refused for now (the server is considered down).
    pub(super) fn is_open(&self) -> bool {
        self.remote.is_open()
    }

    /// Sends `requests` in one write and reads one reply each, in order,
    /// within the command timeout and behind the breaker.
    pub(super) async fn pipeline(
        &self,
        what: &'static str,
        requests: &[Request],
    ) -> Result<Vec<Reply>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let wire = encode(requests);
        self.remote
            .call(self, what, false, |()| self.exchange(&wire, requests.len()))
            .await
    }

    async fn open(&self) -> std::result::Result<Conn, McError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| McError::Io(std::io::ErrorKind::TimedOut.into()))??;
        stream.set_nodelay(true)?;
        Ok(BufStream::new(stream))
    }

    async fn exchange(
        &self,
        wire: &[u8],
        replies: usize,
    ) -> std::result::Result<Vec<Reply>, McError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| McError::Protocol("pool closed".into()))?;
        let pooled = self.idle.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.open().await?,
        };
        // Dropped on any error or cancellation: a connection in an unknown
        // state never goes back to the pool.
        conn.write_all(wire).await?;
        conn.flush().await?;
        let mut out = Vec::with_capacity(replies);
        let mut line = Vec::with_capacity(64);
        let mut failure = None;
        for _ in 0..replies {
            match read_reply(&mut conn, &mut line, self.read_limit).await {
                Ok(reply) => out.push(reply),
                // The server answered: the stream is still in step.
                Err(e @ (McError::Client(_) | McError::Server(_))) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                    out.push(Reply::NotStored);
                }
                Err(e) => return Err(e),
            }
        }
        self.idle.lock().push(conn);
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Connections are taken from the pool per request, so the handle is empty.
impl Link for Server {
    type Conn = ();
    type Error = McError;

    fn current(&self) -> ((), u64) {
        ((), self.health.epoch())
    }

    fn is_connection_error(err: &McError) -> bool {
        err.is_connection()
    }

    fn is_timeout(err: &McError) -> bool {
        matches!(err, McError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
    }

    fn health(&self) -> &Health {
        &self.health
    }

    /// Drops the idle connections: the next requests open new sockets.
    fn renew(&self, epoch: u64) {
        if self.health.claim_renewal(epoch) {
            self.idle.lock().clear();
        }
    }
}

/// The server's largest item (`stats settings`, `item_size_max`), read on
/// a connection of its own.
pub(super) async fn item_size_max(
    addr: &str,
    timeout: Duration,
) -> std::result::Result<usize, McError> {
    use tokio::io::AsyncBufReadExt;
    let ask = async {
        let stream = TcpStream::connect(addr).await?;
        let mut conn = BufStream::new(stream);
        conn.write_all(b"stats settings\r\n").await?;
        conn.flush().await?;
        let mut size = None;
        let mut line = String::new();
        for _ in 0..1000 {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err(McError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let text = line.trim_end();
            if text == "END" {
                return Ok(size);
            }
            if let Some(v) = text.strip_prefix("STAT item_size_max ") {
                size = v.parse().ok();
            }
        }
        Err(McError::Protocol("`stats settings` did not end".into()))
    };
    let size = tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| McError::Io(std::io::ErrorKind::TimedOut.into()))??;
    Ok(size.unwrap_or(1 << 20))
}
