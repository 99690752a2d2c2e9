//! What every backend that talks to a server shares: the command deadline,
//! the circuit breaker, the replacement of a connection that stopped
//! answering, and the URL redactor for logs and errors.
//!
//! A backend describes its connection with [`Link`] and sends every request
//! through [`Remote::call`], which
//!
//! * refuses it at once while the breaker is open ([`CircuitOpen`]),
//! * bounds it (queueing, reconnecting and the one retry included) by the
//!   command timeout,
//! * tells the breaker whether the server answered (any answer counts,
//!   server error replies included) or was not reached,
//! * and asks the link to replace its connection when the breaker trips,
//!   when a probe times out, or after [`RENEW_AFTER_TIMEOUTS`] timeouts in
//!   a row on one connection: a host that vanished without a RST leaves a
//!   socket that accepts requests and never answers, and the client library
//!   does not count a timeout as a reason to reconnect.

#![cfg_attr(
    not(any(
        feature = "redis",
        feature = "memcached",
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite"
    )),
    allow(dead_code)
)]

mod breaker;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) use self::breaker::{Admit, Breaker, Permit};
use crate::error::{Error, Result};

/// Timeouts in a row on one connection after which it is replaced.
pub(crate) const RENEW_AFTER_TIMEOUTS: u32 = 2;

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

/// A request that timed out on our side (the source of a timeout error).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no answer within {} ms", .0.as_millis())]
pub(crate) struct TimedOut(pub(crate) Duration);

/// A backend's connection to its server(s), as [`Remote::call`] sees it.
pub(crate) trait Link: Sync {
    /// A handle requests are sent on (cheap to clone: multiplexed).
    type Conn: Send;
    /// The client library's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The current connection and its epoch (bumped by every replacement).
    fn current(&self) -> (Self::Conn, u64);

    /// Whether `err` says the server was not reached or did not answer, as
    /// opposed to an answer that was an error.
    fn is_connection_error(err: &Self::Error) -> bool;

    /// Whether `err` is the client library's own response timeout.
    fn is_timeout(err: &Self::Error) -> bool;

    /// The timeout count of the current connection.
    fn health(&self) -> &Health;

    /// The connection of `epoch` looks dead: replace it, unless that was
    /// done already (see [`Health::claim_renewal`]). Must not block.
    fn renew(&self, epoch: u64);
}

/// Counts timeouts in a row per connection epoch, for a [`Link`] to decide
/// when to replace its connection. Lock-free.
#[derive(Debug, Default)]
pub(crate) struct Health {
    epoch: AtomicU64,
    timeouts: AtomicU32,
}

impl Health {
    /// The epoch of the current connection.
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A request on the connection of `epoch` got an answer.
    #[inline]
    pub(crate) fn answered(&self, epoch: u64) {
        if self.timeouts.load(Ordering::Relaxed) != 0 && self.epoch() == epoch {
            self.timeouts.store(0, Ordering::Relaxed);
        }
    }

    /// A request on the connection of `epoch` timed out; `true` when that
    /// connection should now be replaced.
    pub(crate) fn timed_out(&self, epoch: u64) -> bool {
        if self.epoch() != epoch {
            return false;
        }
        self.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= RENEW_AFTER_TIMEOUTS
    }

    /// Claims the replacement of the connection of `epoch`: `true` for
    /// exactly one caller, who then installs the new connection.
    pub(crate) fn claim_renewal(&self, epoch: u64) -> bool {
        let won = self
            .epoch
            .compare_exchange(epoch, epoch + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.timeouts.store(0, Ordering::Relaxed);
        }
        won
    }
}

/// The command deadline and circuit breaker of one remote backend.
pub(crate) struct Remote {
    backend: &'static str,
    /// Where it connects, credentials masked.
    endpoint: String,
    breaker: Breaker,
    timeout: Duration,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker)
            .finish()
    }
}

impl Remote {
    /// `threshold` consecutive connection failures open the breaker for
    /// `cool_down` (0 turns it off); every call is bounded by `timeout`.
    pub(crate) fn new(
        backend: &'static str,
        endpoint: String,
        timeout: Duration,
        threshold: u32,
        cool_down: Duration,
    ) -> Remote {
        Remote {
            backend,
            endpoint,
            breaker: Breaker::new(threshold, cool_down),
            timeout,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the breaker refuses calls now (open, or half-open with its
    /// probe in flight).
    pub(crate) fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs one request through the breaker, under the command timeout.
    /// `f` builds the request on a connection handle; with `retry`, a
    /// request that met a dropped connection is sent once more (within the
    /// same deadline) on the link's current handle: only for idempotent
    /// requests.
    pub(crate) async fn call<L, T, F, Fut>(
        &self,
        link: &L,
        what: &'static str,
        retry: bool,
        f: F,
    ) -> Result<T>
    where
        L: Link,
        F: FnMut(L::Conn) -> Fut,
        Fut: Future<Output = std::result::Result<T, L::Error>>,
    {
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            "covet.backend",
            backend = self.backend,
            op = what,
            outcome = tracing::field::Empty,
            micros = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .call_timed(link, what, retry, f, started)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Error::Backend {
                source: Some(source),
                ..
            }) if source.is::<CircuitOpen>() => "refused",
            Err(_) => "error",
        };
        span.record("outcome", outcome);
        span.record(
            "micros",
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        #[cfg(feature = "metrics")]
        metrics::histogram!(
            "covet_cache_backend_duration_seconds",
            "backend" => self.backend,
            "op" => what,
        )
        .record(elapsed.as_secs_f64());
        result
    }

    async fn call_timed<L, T, F, Fut>(
        &self,
        link: &L,
        what: &'static str,
        retry: bool,
        mut f: F,
        started: Instant,
    ) -> Result<T>
    where
        L: Link,
        F: FnMut(L::Conn) -> Fut,
        Fut: Future<Output = std::result::Result<T, L::Error>>,
    {
        let (admit, generation) = self.breaker.admit(started);
        let permit = match admit {
            Admit::Call => Permit::new(&self.breaker, generation, false),
            Admit::Probe => Permit::new(&self.breaker, generation, true),
            Admit::Reject(retry_in) => {
                return Err(Error::backend(
                    self.backend,
                    format!("{what} refused: the server is unreachable"),
                    CircuitOpen {
                        threshold: self.breaker.threshold(),
                        retry_in,
                    },
                ));
            }
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (conn, mut epoch) = link.current();
        let mut outcome = tokio::time::timeout_at(deadline, f(conn)).await;
        if retry && matches!(&outcome, Ok(Err(e)) if L::is_connection_error(e) && !L::is_timeout(e))
        {
            let (conn, now) = link.current();
            epoch = now;
            outcome = tokio::time::timeout_at(deadline, f(conn)).await;
        }
        match outcome {
            Ok(Ok(v)) => {
                if permit.is_probe() {
                    self.breaker_state(false);
                }
                permit.success();
                link.health().answered(epoch);
                Ok(v)
            }
            Ok(Err(e)) if L::is_connection_error(&e) => {
                let timed_out = L::is_timeout(&e);
                self.failed(link, permit, epoch, timed_out, what, &e);
                let message = if timed_out {
                    format!("{what} timed out after {} ms", self.timeout.as_millis())
                } else {
                    format!("{what} failed")
                };
                Err(Error::backend(self.backend, message, e))
            }
            Ok(Err(e)) => {
                // An answer, even an error one: the server is there.
                permit.success();
                Err(Error::backend(self.backend, format!("{what} failed"), e))
            }
            Err(_) => {
                let err = TimedOut(self.timeout);
                self.failed(link, permit, epoch, true, what, &err);
                Err(Error::backend(
                    self.backend,
                    format!("{what} timed out after {} ms", self.timeout.as_millis()),
                    err,
                ))
            }
        }
    }

    /// `covet_cache_circuit_open{backend}`: 1 while the breaker refuses
    /// calls, 0 once a probe answered.
    #[allow(clippy::unused_self)]
    fn breaker_state(&self, open: bool) {
        #[cfg(feature = "metrics")]
        metrics::gauge!("covet_cache_circuit_open", "backend" => self.backend).set(if open {
            1.0
        } else {
            0.0
        });
        let _ = open;
    }

    fn failed<L: Link>(
        &self,
        link: &L,
        permit: Permit<'_>,
        epoch: u64,
        timed_out: bool,
        what: &'static str,
        err: &dyn std::error::Error,
    ) {
        let probe = permit.is_probe();
        let tripped = permit.failure();
        if tripped {
            self.breaker_state(true);
            tracing::warn!(
                backend = self.backend,
                endpoint = %self.endpoint,
                op = what,
                error = %err,
                "server unreachable; circuit breaker open"
            );
        } else if probe {
            tracing::debug!(backend = self.backend, op = what, error = %err, "probe failed; circuit breaker stays open");
        }
        // A probe that timed out went down a socket that may be dead as
        // well; other timeouts count toward a replacement.
        let renew =
            tripped || (probe && timed_out) || (timed_out && link.health().timed_out(epoch));
        if renew {
            link.renew(epoch);
        }
    }
}

/// Masks the password of a URL for logs and errors:
/// `redis://user:secret@host:6379/0` becomes `redis://user:***@host:6379/0`,
/// `redis://:secret@host` becomes `redis://:***@host`.
/// Randomized exponential backoff for a loop that lost a race on the
/// server (a compare-and-swap, a deadlock): waits start at 100 µs and
/// double up to 10 ms, each drawn between half and all of that, until
/// `within` has passed since the first attempt. Many contenders then spread
/// out instead of colliding again in lock step.
#[cfg(any(
    feature = "memcached",
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    deadline: Instant,
}

#[cfg(any(
    feature = "memcached",
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
impl Backoff {
    const FIRST: Duration = Duration::from_micros(100);
    const MAX: Duration = Duration::from_millis(10);

    pub(crate) fn new(within: Duration) -> Backoff {
        Backoff {
            next: Self::FIRST,
            deadline: Instant::now() + within,
        }
    }

    /// Waits before the next attempt; `false` (without waiting) once the
    /// time is up.
    pub(crate) async fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        let span = u64::try_from(self.next.as_micros())
            .unwrap_or(u64::MAX)
            .max(2);
        let jitter = u64::from(getrandom::u32().unwrap_or(0)) % (span / 2);
        let pause = Duration::from_micros(span / 2 + jitter).min(self.deadline - now);
        self.next = (self.next * 2).min(Self::MAX);
        tokio::time::sleep(pause).await;
        true
    }
}

pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                // `user@host`: for Redis a lone user-info is the password.
                format!("{scheme}://***@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(
        feature = "memcached",
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite"
    ))]
    #[tokio::test]
    async fn backoff_grows_and_stops_at_its_deadline() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(30));
        let mut waits = 0;
        while backoff.wait().await {
            waits += 1;
        }
        let spent = start.elapsed();
        assert!(spent >= Duration::from_millis(30), "{spent:?}");
        assert!(spent < Duration::from_millis(200), "{spent:?}");
        // 0.1, 0.2, 0.4 ... ms: far fewer waits than with a fixed 0.1 ms
        assert!((3..=30).contains(&waits), "{waits}");
        assert!(!backoff.wait().await, "stays over");
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://secret@host/2"), "redis://***@host/2");
        assert_eq!(
            redact("postgres://u:p@w@db:5432/x?sslmode=off"),
            "postgres://u:***@db:5432/x?sslmode=off"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn health_asks_for_one_renewal_per_connection() {
        let h = Health::default();
        let e = h.epoch();
        assert!(!h.timed_out(e));
        h.answered(e);
        assert!(!h.timed_out(e), "an answer resets the count");
        assert!(h.timed_out(e), "two in a row");
        assert!(h.claim_renewal(e));
        assert!(!h.claim_renewal(e), "only one caller replaces it");
        // late timeouts of the old connection count for nothing
        assert!(!h.timed_out(e));
        assert!(!h.timed_out(e));
        let e2 = h.epoch();
        assert_eq!(e2, e + 1);
        assert!(!h.timed_out(e2));
    }
}
