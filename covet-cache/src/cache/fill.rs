//! The miss path: single-flight in the process, a lease across processes,
//! and the checks that keep a computed value from undoing an invalidation.
//!
//! * Concurrent misses of one key compute once; the others wait for the
//!   leader ([`Flights`]). When the leader's result is not cacheable (an
//!   `Err`, a `None`), the waiters that joined its flight get that same
//!   failure when it can be shared (`None`; an error type that is `Clone`,
//!   through `#[cached]`), and otherwise compute at once, side by side:
//!   never one after another.
//! * A computation that asks for its own key (directly or through another
//!   cached fn with the same key template) computes directly instead of
//!   waiting for itself.
//! * A value computed from data read before an invalidation of its key
//!   (`delete`, `<fn>_invalidate`, an explicit `set`, a pattern delete,
//!   `clear`, a tag invalidation, in this `Cache` or its clones) is not
//!   stored: the key's epoch is noted before computing and checked before
//!   and after the store, which is undone if an invalidation slipped in.
//! * With a lease (`lock`, or `distributed_single_flight`), the leader of
//!   this process also takes the key's lease in the shared backend,
//!   renewed while it computes (see [`lease`](crate::lease)).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Cache, CacheValue};
use crate::backend::Decoded;
use crate::codec::Codec;
use crate::flight::{Follower, Role};
use crate::key::KeyBuf;
use crate::lease::Lease;

/// What a finished flight hands its followers.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The value computed (and stored).
    Value(Decoded),
    /// The computation's result was not cacheable: shared if it can be.
    Failed(Option<Decoded>),
}

/// How a result splits into its cacheable value or a failure, and how a
/// failure is shared with the followers of a flight.
pub(crate) trait Shape<T, R>: Copy + Send + Sync {
    /// The cacheable value, or the result as it is.
    fn split(self, result: R) -> Result<T, R>;
    /// A result carrying `value`.
    fn wrap(self, value: T) -> R;
    /// A failure in a form followers can rebuild, if it can be shared.
    fn share(self, _failure: &R) -> Option<Decoded> {
        None
    }
    /// A follower's copy of a shared failure.
    fn rebuild(self, _shared: &Decoded) -> Option<R> {
        None
    }
}

/// Any value is cacheable.
#[derive(Clone, Copy)]
pub(crate) struct Whole;

impl<T> Shape<T, T> for Whole {
    fn split(self, result: T) -> Result<T, T> {
        Ok(result)
    }
    fn wrap(self, value: T) -> T {
        value
    }
}

/// `Some` is cacheable; `None` is shared as it is.
#[derive(Clone, Copy)]
pub(crate) struct SomePart;

impl<T> Shape<T, Option<T>> for SomePart {
    fn split(self, result: Option<T>) -> Result<T, Option<T>> {
        result.ok_or(None)
    }
    fn wrap(self, value: T) -> Option<T> {
        Some(value)
    }
    fn share(self, _failure: &Option<T>) -> Option<Decoded> {
        Some(Arc::new(()))
    }
    fn rebuild(self, _shared: &Decoded) -> Option<Option<T>> {
        Some(None)
    }
}

/// How an error is copied for the followers of a failed flight.
pub struct ErrShare<E> {
    pub(crate) to: fn(&E) -> Decoded,
    pub(crate) back: fn(&Decoded) -> Option<E>,
}

impl<E> std::fmt::Debug for ErrShare<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErrShare")
    }
}

impl<E> Clone for ErrShare<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for ErrShare<E> {}

impl<E: Clone + Send + Sync + 'static> ErrShare<E> {
    /// Errors that are `Clone` (and `Send + Sync`) are shared.
    pub(crate) fn cloning() -> ErrShare<E> {
        fn to<E: Clone + Send + Sync + 'static>(e: &E) -> Decoded {
            Arc::new(e.clone())
        }
        fn back<E: Clone + Send + Sync + 'static>(d: &Decoded) -> Option<E> {
            d.downcast_ref::<E>().cloned()
        }
        ErrShare {
            to: to::<E>,
            back: back::<E>,
        }
    }
}

/// `Ok` is cacheable; an `Err` is shared when `share` says how.
pub(crate) struct OkPart<E>(pub(crate) Option<ErrShare<E>>);

impl<E> Clone for OkPart<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for OkPart<E> {}

impl<T, E> Shape<T, Result<T, E>> for OkPart<E> {
    fn split(self, result: Result<T, E>) -> Result<T, Result<T, E>> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(Err(e)),
        }
    }
    fn wrap(self, value: T) -> Result<T, E> {
        Ok(value)
    }
    fn share(self, failure: &Result<T, E>) -> Option<Decoded> {
        match (self.0, failure) {
            (Some(share), Err(e)) => Some((share.to)(e)),
            _ => None,
        }
    }
    fn rebuild(self, shared: &Decoded) -> Option<Result<T, E>> {
        self.0.and_then(|share| (share.back)(shared)).map(Err)
    }
}

/// What the cross-process lease said.
enum LeaseOutcome<T> {
    Acquired(Lease),
    Computed(T),
    ComputeAnyway,
}

impl Cache {
    /// Miss path with single-flight (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fill<T, R, F, Fut, S>(
        &self,
        key: KeyBuf,
        ttl: Option<Duration>,
        tags: Vec<String>,
        lock: bool,
        init: F,
        shape: S,
    ) -> R
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
        S: Shape<T, R>,
    {
        let inner = &*self.inner;
        loop {
            let follower: Follower<Outcome> = match inner.flights.join_or_lead(key.as_str()) {
                Role::Leader(leader) => {
                    let epoch = inner.epochs.of(key.as_str());
                    let mut lease = None;
                    if (lock || inner.lease.always) && inner.backend.supports_leases() {
                        match self.lease_or_wait::<T>(&key).await {
                            LeaseOutcome::Acquired(l) => lease = Some(l),
                            LeaseOutcome::Computed(v) => {
                                inner.stats.coalesced.incr();
                                leader.publish(Outcome::Value(Arc::new(v.clone())));
                                return shape.wrap(v);
                            }
                            LeaseOutcome::ComputeAnyway => {}
                        }
                    }
                    let result = match &mut lease {
                        Some(lease) => leader.run(lease.run(init())).await,
                        None => leader.run(init()).await,
                    };
                    let value = match shape.split(result) {
                        Ok(value) => value,
                        Err(failure) => {
                            // No await from here on: a failure that is not
                            // `Send` never lives across one.
                            leader.publish(Outcome::Failed(shape.share(&failure)));
                            drop(lease); // released in the background
                            return failure;
                        }
                    };
                    if let Some(decoded) = self.store_fill(&key, &value, ttl, &tags, epoch).await {
                        leader.publish(Outcome::Value(decoded));
                    }
                    drop(leader);
                    if let Some(lease) = lease
                        && let Err(err) = lease.release().await
                    {
                        tracing::debug!(key = %key, error = %err, "lease release failed; it expires by itself");
                    }
                    return shape.wrap(value);
                }
                Role::Follower(follower) => follower,
                Role::Reentrant => {
                    tracing::debug!(key = %key, "a computation asked for its own key; computing it directly");
                    return self.compute_directly(&key, ttl, &tags, init, shape).await;
                }
            };
            // Wakes on publish, or when the leader is gone (finished,
            // failed, cancelled or panicked).
            match follower.wait().await {
                Some(Outcome::Value(decoded)) => {
                    if let Some(v) = decoded.downcast_ref::<T>() {
                        inner.stats.coalesced.incr();
                        return shape.wrap(v.clone());
                    }
                }
                Some(Outcome::Failed(shared)) => {
                    if let Some(failure) = shared.as_ref().and_then(|d| shape.rebuild(d)) {
                        inner.stats.coalesced.incr();
                        return failure;
                    }
                    // Not shareable: compute now, alongside the other
                    // followers of that flight, not one after another.
                    return self.compute_directly(&key, ttl, &tags, init, shape).await;
                }
                // The leader went away without a word (cancelled, panicked,
                // or its value was invalidated meanwhile): compete again.
                None => {}
            }
        }
    }

    /// Computes without single-flight, storing a cacheable result.
    async fn compute_directly<T, R, F, Fut, S>(
        &self,
        key: &KeyBuf,
        ttl: Option<Duration>,
        tags: &[String],
        init: F,
        shape: S,
    ) -> R
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
        S: Shape<T, R>,
    {
        let epoch = self.inner.epochs.of(key.as_str());
        let value = match shape.split(init().await) {
            Ok(value) => value,
            Err(failure) => return failure,
        };
        self.store_fill(key, &value, ttl, tags, epoch).await;
        shape.wrap(value)
    }

    /// Stores a computed value unless its key was invalidated since
    /// `epoch`; undoes the store if an invalidation slipped in while it
    /// ran. The decoded value to hand to followers, if it stands.
    async fn store_fill<T: CacheValue>(
        &self,
        key: &KeyBuf,
        value: &T,
        ttl: Option<Duration>,
        tags: &[String],
        epoch: u64,
    ) -> Option<Decoded> {
        let epochs = &self.inner.epochs;
        if epochs.of(key.as_str()) != epoch {
            self.inner.stats.stale_fills.incr();
            tracing::debug!(key = %key, "invalidated while computing; the value is returned, not stored");
            return None;
        }
        let decoded = self.store_computed(key, value, ttl, tags).await;
        if epochs.of(key.as_str()) != epoch {
            self.inner.stats.stale_fills.incr();
            tracing::debug!(key = %key, "invalidated while storing; store undone");
            if let Err(err) = self.inner.backend.delete(key.as_str()).await {
                self.inner.stats.errors.incr();
                tracing::warn!(key = %key, error = %err, "could not undo a store that raced an invalidation");
            }
            return None;
        }
        decoded
    }

    /// Takes the cross-process lease for `key`, or waits (bounded) for the
    /// process holding it to store the value.
    async fn lease_or_wait<T: CacheValue>(&self, key: &KeyBuf) -> LeaseOutcome<T> {
        let inner = &*self.inner;
        let deadline = tokio::time::Instant::now() + inner.lease.wait;
        let mut pause = Duration::from_millis(5);
        loop {
            match Lease::try_acquire(&inner.backend, key.as_str(), inner.lease.ttl).await {
                Ok(Some(lease)) => {
                    // The previous holder may have stored the value just
                    // before releasing: check once more.
                    if let Some(v) = self.peek::<T>(key).await {
                        drop(lease);
                        return LeaseOutcome::Computed(v);
                    }
                    return LeaseOutcome::Acquired(lease);
                }
                Ok(None) => {}
                Err(err) => {
                    inner.stats.errors.incr();
                    tracing::warn!(key = %key, error = %err, "lease unavailable; computing without it");
                    return LeaseOutcome::ComputeAnyway;
                }
            }
            if let Some(v) = self.peek::<T>(key).await {
                return LeaseOutcome::Computed(v);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::debug!(key = %key, "waited long enough for another process; computing");
                return LeaseOutcome::ComputeAnyway;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Reads the shared value without counting a hit or a miss.
    async fn peek<T: CacheValue>(&self, key: &KeyBuf) -> Option<T> {
        let bytes = self.inner.backend.get(key.as_str()).await.ok()??;
        Codec::decode::<T>(&bytes, self.fingerprint::<T>()).ok()
    }

    /// `<fn>_refresh`: compute, store, return; no lookup, no waiting.
    pub(crate) async fn refresh<T, R, Fut, S>(
        &self,
        key: KeyBuf,
        ttl: Option<Duration>,
        tags: Vec<String>,
        fut: Fut,
        shape: S,
    ) -> R
    where
        T: CacheValue,
        Fut: Future<Output = R>,
        S: Shape<T, R>,
    {
        let value = match shape.split(fut.await) {
            Ok(value) => value,
            Err(failure) => return failure,
        };
        // A fresh value: fills that started before it must not overwrite it.
        self.inner.epochs.bump_key(key.as_str());
        self.store_computed(&key, &value, ttl, &tags).await;
        shape.wrap(value)
    }
}
