//! Cross-process leases: one holder at a time for a key, on any backend
//! whose [`supports_leases`](crate::CacheBackend::supports_leases) is
//! `true`. [`Cache`](crate::Cache) takes one around a miss with `lock`
//! (distributed single-flight); the session `CacheStore` takes one around
//! every read-modify-write of a record.
//!
//! * The token is drawn before the request is sent, so a lease taken by a
//!   request whose answer never came (timed out) or whose caller went away
//!   (cancelled) is released in the background instead of being orphaned
//!   for its whole TTL.
//! * [`Lease::run`] renews the lease every third of its TTL while the
//!   computation runs, so a long computation keeps it; if a renewal finds
//!   the lease gone (it expired during a stall, or the key was wiped), the
//!   loss is logged and [`Lease::is_held`] turns `false`.
//! * [`Lease::release`] releases it (compare-and-delete: only our own
//!   token); dropping a held lease releases it in the background.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use covet_cache::{CacheBackend, MemoryBackend, lease::Lease};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let backend: Arc<dyn CacheBackend> = Arc::new(MemoryBackend::new());
//! let lease = Lease::try_acquire(&backend, "report:1", Duration::from_secs(5)).await.unwrap();
//! let mut lease = lease.expect("nobody else holds it");
//! assert!(Lease::try_acquire(&backend, "report:1", Duration::from_secs(5)).await.unwrap().is_none());
//! let answer = lease.run(async { 42 }).await;
//! assert_eq!(answer, 42);
//! assert!(lease.release().await.unwrap());
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::backend::CacheBackend;
use crate::error::{Error, Result};

/// A fresh random lease token (32 lowercase hex digits).
pub(crate) fn new_token() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| Error::backend("lease", "drawing a lease token", e))?;
    let mut token = String::with_capacity(32);
    for b in raw {
        token.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        token.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Ok(token)
}

/// A held lease on one key of a backend.
pub struct Lease {
    backend: Arc<dyn CacheBackend>,
    key: String,
    token: String,
    ttl: Duration,
    held: bool,
    /// Still ours to release (not released, not handed to the background).
    live: bool,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// Releases `token`'s lease on `key` in the background (best effort: if
/// it fails too, the lease expires with its TTL).
fn release_in_background(backend: Arc<dyn CacheBackend>, key: String, token: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(err) = backend.lease_release(&key, &token).await {
                tracing::debug!(key = %crate::backend::traced::key_hash(&key), error = %err, "lease release failed; it expires by itself");
            }
        });
    }
}

/// Until the acquire request settles: if it is dropped (cancelled) or
/// fails in a way that may have taken the lease, release that token.
struct Pending<'a> {
    backend: &'a Arc<dyn CacheBackend>,
    key: &'a str,
    token: Option<String>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            release_in_background(Arc::clone(self.backend), self.key.to_owned(), token);
        }
    }
}

impl Lease {
    /// Tries once to take the lease on `key` for `ttl`: `Ok(None)` when
    /// another holder has it. A request that fails after it may have taken
    /// the lease (a timeout), or that is cancelled, releases it in the
    /// background.
    pub async fn try_acquire(
        backend: &Arc<dyn CacheBackend>,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let token = new_token()?;
        let mut pending = Pending {
            backend,
            key,
            token: Some(token.clone()),
        };
        match backend.lease_try(key, &token, ttl).await {
            Ok(true) => {
                pending.token = None;
                Ok(Some(Lease {
                    backend: Arc::clone(backend),
                    key: key.to_owned(),
                    token,
                    ttl,
                    held: true,
                    live: true,
                }))
            }
            Ok(false) => {
                pending.token = None;
                Ok(None)
            }
            Err(err) => {
                if !err.may_have_applied() {
                    pending.token = None;
                }
                Err(err)
            }
        }
    }

    /// Takes the lease, retrying with a growing pause (1 ms to 50 ms) for
    /// at most `wait`; `Ok(None)` if another holder kept it that long.
    pub async fn acquire(
        backend: &Arc<dyn CacheBackend>,
        key: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Lease>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(lease) = Lease::try_acquire(backend, key, ttl).await? {
                return Ok(Some(lease));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `false` once a renewal found the lease taken over or gone.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Runs `work`, renewing the lease every third of its TTL meanwhile.
    /// A renewal that finds the lease gone is logged (the computation goes
    /// on, another holder may now run alongside) and [`is_held`](Self::is_held)
    /// turns `false`; a renewal that fails is retried at the next tick.
    pub async fn run<F: Future>(&mut self, work: F) -> F::Output {
        let every = (self.ttl / 3).max(Duration::from_millis(1));
        let mut work = std::pin::pin!(work);
        loop {
            let mut tick = std::pin::pin!(tokio::time::sleep(every));
            // The work's output never lives across the renewal's await, so
            // a `Send` computation keeps this future `Send` whatever it
            // returns.
            let held = self.held;
            if let Some(out) = std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(out));
                }
                if held && tick.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await
            {
                return out;
            }
            self.renew().await;
        }
    }

    async fn renew(&mut self) {
        match self
            .backend
            .lease_renew(&self.key, &self.token, self.ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.held = false;
                tracing::warn!(
                    key = %self.key,
                    "lease lost while its computation ran (expired or taken over); another process may compute too"
                );
            }
            Err(err) => {
                tracing::debug!(key = %crate::backend::traced::key_hash(&self.key), error = %err, "lease renewal failed; retrying at the next tick");
            }
        }
    }

    /// Releases the lease; `Ok(true)` if it was still ours.
    pub async fn release(mut self) -> Result<bool> {
        self.live = false;
        self.backend.lease_release(&self.key, &self.token).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.live {
            release_in_background(
                Arc::clone(&self.backend),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
        }
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    fn backend() -> Arc<dyn CacheBackend> {
        Arc::new(MemoryBackend::new())
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let b = backend();
        let lease = Lease::try_acquire(&b, "k", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert!(
            Lease::try_acquire(&b, "k", Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
        assert!(lease.release().await.unwrap());
        assert!(
            Lease::try_acquire(&b, "k", Duration::from_secs(5))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_dropped_lease_is_released_in_the_background() {
        let b = backend();
        drop(
            Lease::try_acquire(&b, "k", Duration::from_secs(60))
                .await
                .unwrap(),
        );
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert!(
            Lease::try_acquire(&b, "k", Duration::from_secs(5))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_long_computation_keeps_its_lease() {
        let b = backend();
        let ttl = Duration::from_millis(90);
        let mut lease = Lease::try_acquire(&b, "k", ttl).await.unwrap().unwrap();
        let b2 = Arc::clone(&b);
        let stolen = lease
            .run(async move {
                // five TTLs: without renewal the lease would be gone
                tokio::time::sleep(ttl * 5).await;
                Lease::try_acquire(&b2, "k", ttl).await.unwrap().is_some()
            })
            .await;
        assert!(!stolen, "the renewed lease was never free");
        assert!(lease.is_held());
        assert!(lease.release().await.unwrap());
    }

    #[tokio::test]
    async fn a_lost_lease_is_reported() {
        let b = backend();
        let ttl = Duration::from_millis(60);
        let mut lease = Lease::try_acquire(&b, "k", ttl).await.unwrap().unwrap();
        let b2 = Arc::clone(&b);
        lease
            .run(async move {
                // someone wipes the lease (as an eviction would)
                let token = lease_token_of(&b2, "k");
                assert!(b2.lease_release("k", &token).await.unwrap());
                tokio::time::sleep(ttl).await;
            })
            .await;
        assert!(!lease.is_held());
        assert!(!lease.release().await.unwrap());
    }

    fn lease_token_of(b: &Arc<dyn CacheBackend>, key: &str) -> String {
        b.local().unwrap().lease_token(key).unwrap()
    }

    #[tokio::test]
    async fn acquire_waits_for_the_holder() {
        let b = backend();
        let first = Lease::try_acquire(&b, "k", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move {
            Lease::acquire(&b2, "k", Duration::from_secs(5), Duration::from_secs(5))
                .await
                .unwrap()
                .is_some()
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        first.release().await.unwrap();
        assert!(waiter.await.unwrap());
        assert!(
            Lease::acquire(&b, "other", Duration::from_secs(1), Duration::ZERO)
                .await
                .unwrap()
                .is_some()
        );
    }
}
