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
//! * Around a miss (`#[cached]` options): a value past its freshness but
//!   within its stale-while-revalidate window is returned at once while one
//!   refresh runs in the background (one per key per process: it leads the
//!   key's flight; with a lease, one per key across processes); within its
//!   stale-if-error window it is the fallback when the computation fails;
//!   near its end (`refresh_ahead`) the first call starts a background
//!   refresh. A fn whose arguments borrow (methods, references) cannot hand
//!   its computation to another task: the caller that wins the key's flight
//!   refreshes in its own call, and every other caller gets the stale value.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Cache, CacheValue};
use crate::backend::Decoded;
use crate::codec::{Codec, Stamp};
use crate::flight::{Follower, Leader, Role};
use crate::key::KeyBuf;
use crate::lease::Lease;
use crate::memo::{CacheStatus, Count, FnSite, timed};

/// What a finished flight hands its followers.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The value computed (and stored).
    Value(Decoded),
    /// The computation's result was not cacheable: shared if it can be.
    Failed(Option<Decoded>),
}

/// How a result splits into its cacheable value or a failure, and how a
/// failure is shared with the followers of a flight. Not public API.
#[doc(hidden)]
pub trait Shape<T, R>: Copy + Send + Sync {
    /// The positive value inside what is stored (the `Ok` or `Some` part).
    type Value;
    /// The cacheable value, or the result as it is.
    fn split(self, result: R) -> Result<T, R>;
    /// A result carrying `value`.
    fn wrap(self, value: T) -> R;
    /// The positive value of a stored one; `None` for a stored failure
    /// (negative caching).
    fn positive(self, stored: &T) -> Option<&Self::Value>;
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
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Whole;

impl<T> Shape<T, T> for Whole {
    type Value = T;
    fn split(self, result: T) -> Result<T, T> {
        Ok(result)
    }
    fn wrap(self, value: T) -> T {
        value
    }
    fn positive(self, stored: &T) -> Option<&T> {
        Some(stored)
    }
}

/// `Some` is cacheable; `None` is shared as it is.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct SomePart;

impl<T> Shape<T, Option<T>> for SomePart {
    type Value = T;
    fn split(self, result: Option<T>) -> Result<T, Option<T>> {
        result.ok_or(None)
    }
    fn wrap(self, value: T) -> Option<T> {
        Some(value)
    }
    fn positive(self, stored: &T) -> Option<&T> {
        Some(stored)
    }
    fn share(self, _failure: &Option<T>) -> Option<Decoded> {
        Some(Arc::new(()))
    }
    fn rebuild(self, _shared: &Decoded) -> Option<Option<T>> {
        Some(None)
    }
}

/// `cache_none`: the whole `Option` is stored, `None` with its own TTL.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct NoneToo;

impl<T> Shape<Option<T>, Option<T>> for NoneToo {
    type Value = T;
    fn split(self, result: Option<T>) -> Result<Option<T>, Option<T>> {
        Ok(result)
    }
    fn wrap(self, value: Option<T>) -> Option<T> {
        value
    }
    fn positive(self, stored: &Option<T>) -> Option<&T> {
        stored.as_ref()
    }
}

/// `cache_err`: the whole `Result` is stored, `Err` with its own TTL.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ErrToo;

impl<T, E> Shape<Result<T, E>, Result<T, E>> for ErrToo {
    type Value = T;
    fn split(self, result: Result<T, E>) -> Result<Result<T, E>, Result<T, E>> {
        Ok(result)
    }
    fn wrap(self, value: Result<T, E>) -> Result<T, E> {
        value
    }
    fn positive(self, stored: &Result<T, E>) -> Option<&T> {
        stored.as_ref().ok()
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
#[doc(hidden)]
pub struct OkPart<E>(pub Option<ErrShare<E>>);

impl<E> std::fmt::Debug for OkPart<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OkPart")
    }
}

impl<E> Clone for OkPart<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for OkPart<E> {}

impl<T, E> Shape<T, Result<T, E>> for OkPart<E> {
    type Value = T;
    fn split(self, result: Result<T, E>) -> Result<T, Result<T, E>> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(Err(e)),
        }
    }
    fn wrap(self, value: T) -> Result<T, E> {
        Ok(value)
    }
    fn positive(self, stored: &T) -> Option<&T> {
        Some(stored)
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

/// A looked-up value and how fresh it is. Not public API.
#[doc(hidden)]
#[derive(Debug)]
pub enum Found<T> {
    /// Fresh: a hit.
    Fresh(T),
    /// Fresh, but within `refresh_ahead` of its end.
    Ahead(T),
    /// Past its freshness, within its stale-while-revalidate window.
    Stale(T),
    /// Past its freshness and any stale-while-revalidate window, within its
    /// stale-if-error window.
    Expired(T),
    /// Nothing usable.
    Absent,
    /// The backend failed.
    Down,
}

impl<T> Found<T> {
    /// Where a value stamped with `stamp` stands now.
    pub(crate) fn classify(value: T, stamp: Option<Stamp>, ahead: Duration) -> Found<T> {
        let Some(stamp) = stamp else {
            return Found::Fresh(value);
        };
        let now = crate::time::now_epoch_ms();
        if now < stamp.fresh_until {
            let ahead = u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX);
            if ahead > 0 && now.saturating_add(ahead) >= stamp.fresh_until {
                return Found::Ahead(value);
            }
            return Found::Fresh(value);
        }
        let past = now - stamp.fresh_until;
        if past < u64::from(stamp.swr) {
            Found::Stale(value)
        } else if past < u64::from(stamp.sie) {
            Found::Expired(value)
        } else {
            Found::Absent
        }
    }
}

/// What the key held before a computation.
pub(crate) enum Prior<T> {
    /// Nothing.
    Absent,
    /// A value past (or near) its end, not to be served.
    Expired,
    /// A stale value to return if the computation fails.
    Fallback(T),
}

impl<T> Prior<T> {
    /// The status of a call that computed the value.
    fn computed(&self) -> (CacheStatus, Count) {
        match self {
            Prior::Absent => (CacheStatus::Miss, Count::Miss),
            Prior::Expired | Prior::Fallback(_) => (CacheStatus::Refreshed, Count::Refresh),
        }
    }
}

/// How a computed value is stored.
pub(crate) struct Plan<V> {
    /// Fresh TTL; `None`: the cache's default.
    pub(crate) ttl: Option<Duration>,
    /// TTL of a stored failure (`cache_none`, `cache_err`); `None`: `ttl`.
    pub(crate) negative_ttl: Option<Duration>,
    /// A value's own TTL; `None` from it: `ttl`.
    pub(crate) value_ttl: Option<fn(&V) -> Option<Duration>>,
    /// Fresh TTLs are cut by up to this many thousandths, at random.
    pub(crate) jitter: u16,
    /// Stale-while-revalidate and stale-if-error windows (milliseconds):
    /// values are stamped when set.
    pub(crate) windows: Option<(u32, u32)>,
    /// Take the key's lease across processes.
    pub(crate) lock: bool,
    pub(crate) tags: Vec<String>,
    /// The fn's counters.
    pub(crate) site: Option<&'static FnSite>,
    /// The fn's key pattern, for `<fn>_clear` on backends without pattern
    /// deletes (entries then carry a tag made of it).
    pub(crate) pattern: Option<fn() -> String>,
}

impl<V> Plan<V> {
    /// A plain fill: one TTL, nothing else.
    pub(crate) fn simple(ttl: Option<Duration>) -> Plan<V> {
        Plan {
            ttl,
            negative_ttl: None,
            value_ttl: None,
            jitter: 0,
            windows: None,
            lock: false,
            tags: Vec::new(),
            site: None,
            pattern: None,
        }
    }

    fn count(&self, what: Count) {
        if let Some(site) = self.site {
            site.count(what);
        }
    }

    /// The backend TTL and stamp of a stored value.
    fn life<T, R, S: Shape<T, R, Value = V>>(
        &self,
        default_ttl: Option<Duration>,
        shape: S,
        stored: &T,
    ) -> (Option<Duration>, Option<Stamp>) {
        let fresh = match shape.positive(stored) {
            Some(value) => self.value_ttl.and_then(|f| f(value)).or(self.ttl),
            None => self.negative_ttl.or(self.ttl),
        }
        .or(default_ttl)
        .map(|ttl| jittered(ttl, self.jitter));
        let Some((swr, sie)) = self.windows else {
            return (fresh, None);
        };
        let window = Duration::from_millis(u64::from(swr.max(sie)));
        match fresh {
            None => (
                None,
                Some(Stamp {
                    fresh_until: u64::MAX,
                    swr,
                    sie,
                }),
            ),
            Some(ttl) if ttl.is_zero() => (Some(ttl), None),
            Some(ttl) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                let stamp = Stamp {
                    fresh_until: crate::time::now_epoch_ms().saturating_add(ms),
                    swr,
                    sie,
                };
                (Some(ttl.saturating_add(window)), Some(stamp))
            }
        }
    }
}

/// `ttl` cut by a random share of at most `permille` thousandths (never
/// below a millisecond), so that entries written together expire apart.
pub(crate) fn jittered(ttl: Duration, permille: u16) -> Duration {
    if permille == 0 || ttl.is_zero() {
        return ttl;
    }
    let share = f64::from(permille.min(1000)) / 1000.0 * fastrand::f64();
    ttl.mul_f64(1.0 - share).max(Duration::from_millis(1))
}

impl Cache {
    /// Answers with a value past its freshness, counted for the fn (if
    /// any) and the cache.
    pub(crate) fn answer_stale<T, R, S: Shape<T, R>>(
        &self,
        site: Option<&'static FnSite>,
        value: T,
        shape: S,
    ) -> (R, CacheStatus) {
        if let Some(site) = site {
            site.count(Count::Stale);
        }
        self.inner.stats.stale.incr();
        (shape.wrap(value), CacheStatus::Stale)
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
    pub(crate) async fn fill<T, R, V, F, Fut, S>(
        &self,
        key: KeyBuf,
        plan: Plan<V>,
        prior: Prior<T>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
        S: Shape<T, R, Value = V>,
    {
        let inner = &*self.inner;
        loop {
            let follower: Follower<Outcome> = match inner.flights.join_or_lead(key.as_str()) {
                Role::Leader(leader) => {
                    let mut lease = None;
                    if (plan.lock || inner.lease.always) && inner.backend.supports_leases() {
                        match self.lease_or_wait::<T>(&key).await {
                            LeaseOutcome::Acquired(l) => lease = Some(l),
                            LeaseOutcome::Computed(v) => {
                                inner.stats.coalesced.incr();
                                plan.count(Count::Coalesced);
                                leader.publish(Outcome::Value(Arc::new(v.clone())));
                                return (shape.wrap(v), CacheStatus::Coalesced);
                            }
                            LeaseOutcome::ComputeAnyway => {}
                        }
                    }
                    return self
                        .compute(Some(leader), lease, &key, &plan, prior, init, shape)
                        .await;
                }
                Role::Follower(follower) => follower,
                Role::Reentrant => {
                    tracing::debug!(key = %crate::backend::traced::key_hash(&key), "a computation asked for its own key; computing it directly");
                    return self
                        .compute(None, None, &key, &plan, prior, init, shape)
                        .await;
                }
            };
            // Wakes on publish, or when the leader is gone (finished,
            // failed, cancelled or panicked).
            match follower.wait().await {
                Some(Outcome::Value(decoded)) => {
                    if let Some(v) = decoded.downcast_ref::<T>() {
                        inner.stats.coalesced.incr();
                        plan.count(Count::Coalesced);
                        return (shape.wrap(v.clone()), CacheStatus::Coalesced);
                    }
                }
                Some(Outcome::Failed(shared)) => {
                    if let Prior::Fallback(stale) = prior {
                        return self.answer_stale(plan.site, stale, shape);
                    }
                    if let Some(failure) = shared.as_ref().and_then(|d| shape.rebuild(d)) {
                        inner.stats.coalesced.incr();
                        plan.count(Count::Coalesced);
                        return (failure, CacheStatus::Coalesced);
                    }
                    // Not shareable: compute now, alongside the other
                    // followers of that flight, not one after another.
                    return self
                        .compute(None, None, &key, &plan, prior, init, shape)
                        .await;
                }
                // The leader went away without a word (cancelled, panicked,
                // or its value was invalidated meanwhile): compete again.
                None => {}
            }
        }
    }

    /// Computes (as the flight's leader when there is one), stores a
    /// cacheable result unless the key was invalidated meanwhile, and tells
    /// the followers. A failure returns the fallback when there is one.
    #[allow(clippy::too_many_arguments)]
    async fn compute<T, R, V, F, Fut, S>(
        &self,
        leader: Option<Leader<Outcome>>,
        mut lease: Option<Lease>,
        key: &KeyBuf,
        plan: &Plan<V>,
        prior: Prior<T>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
        S: Shape<T, R, Value = V>,
    {
        let epoch = self.inner.epochs.of(key.as_str());
        let body = timed(plan.site, init());
        let result = match (&leader, &mut lease) {
            (Some(leader), Some(lease)) => leader.run(lease.run(body)).await,
            (Some(leader), None) => leader.run(body).await,
            (None, Some(lease)) => lease.run(body).await,
            (None, None) => body.await,
        };
        let (status, count) = prior.computed();
        let value = match shape.split(result) {
            Ok(value) => value,
            Err(failure) => {
                // No await from here on: a failure that is not `Send`
                // never lives across one.
                plan.count(Count::Error);
                if let Some(leader) = &leader {
                    leader.publish(Outcome::Failed(shape.share(&failure)));
                }
                drop(lease); // released in the background
                if let Prior::Fallback(stale) = prior {
                    return self.answer_stale(plan.site, stale, shape);
                }
                plan.count(count);
                return (failure, status);
            }
        };
        if shape.positive(&value).is_none() {
            // A failure that negative caching would store: a stale value
            // to fall back on wins over it.
            plan.count(Count::Error);
            if let Prior::Fallback(stale) = prior {
                if let Some(leader) = &leader {
                    leader.publish(Outcome::Failed(None));
                }
                drop(lease);
                return self.answer_stale(plan.site, stale, shape);
            }
        }
        plan.count(count);
        if let Some(decoded) = self.store_fill(key, &value, plan, shape, epoch).await
            && let Some(leader) = &leader
        {
            leader.publish(Outcome::Value(decoded));
        }
        drop(leader);
        if let Some(lease) = lease
            && let Err(err) = lease.release().await
        {
            tracing::debug!(key = %crate::backend::traced::key_hash(&key), error = %err, "lease release failed; it expires by itself");
        }
        (shape.wrap(value), status)
    }

    /// Starts one refresh of `key` on a background task, unless a
    /// computation of the key is in progress in this process (or, with a
    /// lease, in another one). `Err(make)` when no tokio runtime runs here.
    pub(crate) fn refresh_in_background<T, R, V, F, Fut, S>(
        &self,
        key: KeyBuf,
        plan: Plan<V>,
        make: F,
        shape: S,
    ) -> Result<(), F>
    where
        T: CacheValue,
        R: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        S: Shape<T, R, Value = V> + 'static,
        V: 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(make);
        };
        let Some(leader) = self.inner.flights.try_lead(key.as_str()) else {
            return Ok(());
        };
        let cache = self.clone();
        runtime.spawn(async move {
            let lease = match cache.refresh_lease(&key, &plan).await {
                Ok(lease) => lease,
                Err(()) => return,
            };
            cache
                .compute(
                    Some(leader),
                    lease,
                    &key,
                    &plan,
                    Prior::Expired,
                    make,
                    shape,
                )
                .await;
        });
        Ok(())
    }

    /// Refreshes `key` in this call if no computation of it is in progress
    /// (here, or with a lease, elsewhere); otherwise, or if the refresh
    /// fails, `old` is the answer: a hit while it is still `fresh`
    /// (`refresh_ahead`), a stale answer after.
    pub(crate) async fn refresh_in_call<T, R, V, F, Fut, S>(
        &self,
        key: KeyBuf,
        plan: Plan<V>,
        old: T,
        fresh: bool,
        make: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
        S: Shape<T, R, Value = V>,
    {
        let unchanged = |old: T| {
            if fresh {
                if let Some(site) = plan.site {
                    site.hit_counted();
                }
                (shape.wrap(old), CacheStatus::Hit)
            } else {
                self.answer_stale(plan.site, old, shape)
            }
        };
        let Some(leader) = self.inner.flights.try_lead(key.as_str()) else {
            return unchanged(old);
        };
        let lease = match self.refresh_lease(&key, &plan).await {
            Ok(lease) => lease,
            Err(()) => return unchanged(old),
        };
        let (r, status) = self
            .compute(
                Some(leader),
                lease,
                &key,
                &plan,
                Prior::Fallback(old),
                make,
                shape,
            )
            .await;
        match status {
            CacheStatus::Stale if fresh => (r, CacheStatus::Hit),
            status => (r, status),
        }
    }

    /// The lease a refresh takes without waiting: `Err` when another
    /// process holds it (that process refreshes), `Ok(None)` when none is
    /// needed or the backend cannot give one.
    async fn refresh_lease<V>(&self, key: &KeyBuf, plan: &Plan<V>) -> Result<Option<Lease>, ()> {
        let inner = &*self.inner;
        if !((plan.lock || inner.lease.always) && inner.backend.supports_leases()) {
            return Ok(None);
        }
        match Lease::try_acquire(&inner.backend, key.as_str(), inner.lease.ttl).await {
            Ok(Some(lease)) => Ok(Some(lease)),
            Ok(None) => Err(()),
            Err(err) => {
                inner.stats.errors.incr();
                tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "lease unavailable; refreshing without it");
                Ok(None)
            }
        }
    }

    /// Stores a computed value unless its key was invalidated since
    /// `epoch`; undoes the store if an invalidation slipped in while it
    /// ran. The decoded value to hand to followers, if it stands.
    async fn store_fill<T, R, V, S>(
        &self,
        key: &KeyBuf,
        value: &T,
        plan: &Plan<V>,
        shape: S,
        epoch: u64,
    ) -> Option<Decoded>
    where
        T: CacheValue,
        S: Shape<T, R, Value = V>,
    {
        let epochs = &self.inner.epochs;
        if epochs.of(key.as_str()) != epoch {
            self.inner.stats.stale_fills.incr();
            tracing::debug!(key = %crate::backend::traced::key_hash(&key), "invalidated while computing; the value is returned, not stored");
            return None;
        }
        let decoded = self.store_planned(key, value, plan, shape).await;
        if epochs.of(key.as_str()) != epoch {
            self.inner.stats.stale_fills.incr();
            tracing::debug!(key = %crate::backend::traced::key_hash(&key), "invalidated while storing; store undone");
            if let Err(err) = self.inner.backend.delete(key.as_str()).await {
                self.inner.stats.errors.incr();
                tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "could not undo a store that raced an invalidation");
            }
            return None;
        }
        decoded
    }

    /// Stores a computed value as `plan` says: its TTL (per value, jittered)
    /// and stamp, its tags. The decoded value for followers.
    async fn store_planned<T, R, V, S>(
        &self,
        key: &KeyBuf,
        value: &T,
        plan: &Plan<V>,
        shape: S,
    ) -> Option<Decoded>
    where
        T: CacheValue,
        S: Shape<T, R, Value = V>,
    {
        let (ttl, stamp) = plan.life(self.inner.default_ttl, shape, value);
        let tags = self.fill_tags(plan);
        self.store_computed(key, value, ttl, stamp, &tags).await
    }

    /// The tags of a computed value: the fn's own, plus, on a backend that
    /// cannot delete by pattern, one naming the fn for `<fn>_clear`.
    fn fill_tags<'p, V>(&self, plan: &'p Plan<V>) -> Cow<'p, [String]> {
        match plan.pattern {
            Some(pattern) if !self.inner.caps.pattern_deletes => {
                let mut tags = plan.tags.clone();
                tags.push(fn_tag(&pattern()));
                Cow::Owned(tags)
            }
            _ => Cow::Borrowed(&plan.tags),
        }
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
                    tracing::warn!(key = %crate::backend::traced::key_hash(&key), error = %err, "lease unavailable; computing without it");
                    return LeaseOutcome::ComputeAnyway;
                }
            }
            if let Some(v) = self.peek::<T>(key).await {
                return LeaseOutcome::Computed(v);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::debug!(key = %crate::backend::traced::key_hash(&key), "waited long enough for another process; computing");
                return LeaseOutcome::ComputeAnyway;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Reads the shared value without counting a hit or a miss.
    async fn peek<T: CacheValue>(&self, key: &KeyBuf) -> Option<T> {
        let bytes = self.inner.backend.get(key.as_str()).await.ok()??;
        if Stamp::expired(&bytes) {
            return None;
        }
        Codec::decode::<T>(&bytes, self.fingerprint::<T>()).ok()
    }

    /// `<fn>_refresh`: compute, store, return; no lookup, no waiting.
    pub(crate) async fn refresh<T, R, V, Fut, S>(
        &self,
        key: KeyBuf,
        plan: Plan<V>,
        fut: Fut,
        shape: S,
    ) -> R
    where
        T: CacheValue,
        Fut: Future<Output = R>,
        S: Shape<T, R, Value = V>,
    {
        let value = match shape.split(timed(plan.site, fut).await) {
            Ok(value) => value,
            Err(failure) => {
                plan.count(Count::Error);
                return failure;
            }
        };
        plan.count(Count::Refresh);
        if shape.positive(&value).is_none() {
            plan.count(Count::Error);
        }
        // A fresh value: fills that started before it must not overwrite it.
        self.inner.epochs.bump_key(key.as_str());
        self.store_planned(&key, &value, &plan, shape).await;
        shape.wrap(value)
    }
}

/// The tag every entry of a fn carries on backends without pattern deletes.
pub(crate) fn fn_tag(pattern: &str) -> String {
    format!("__covet_fn:{pattern}")
}
