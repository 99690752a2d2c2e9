//! Around a miss in a local memo: an entry past its TTL answers within its
//! stale-while-revalidate window while one refresh runs (on a spawned task
//! when the computation can move there, else in the call that finds it),
//! and within its stale-if-error window when the computation that replaces
//! it fails; near its end (`refresh_ahead`) the first lookup refreshes it.
//! One refresh per key at a time; an invalidation while it runs keeps its
//! result out of the memo.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::Ordering;

use super::{LocalMemo, Slot};
use crate::cache::Shape;
use crate::memo::{CacheStatus, Count, FnSite, timed, timed_sync};
use crate::private::{Inline, Spawn};

/// The windows around an entry's freshness, all off by default.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Windows {
    pub(super) swr: Option<coarsetime::Duration>,
    pub(super) sie: Option<coarsetime::Duration>,
    pub(super) ahead: Option<coarsetime::Duration>,
}

/// Where an entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Fresh,
    /// Fresh, within `refresh_ahead` of its end.
    Ahead,
    /// Past its end, within stale-while-revalidate.
    Stale,
    /// Past its end, within stale-if-error only: a fallback.
    Expired,
    /// Absent, or past every window.
    Gone,
}

/// What a lookup found (see [`LocalMemo::lookup`]). Not public API.
#[doc(hidden)]
pub struct Looked<V> {
    state: State,
    slot: Option<Slot<V>>,
}

impl<V> std::fmt::Debug for Looked<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Looked")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<V> Looked<V> {
    /// The value of a fresh entry that needs nothing else, or what the miss
    /// path needs.
    #[inline]
    pub fn fresh(self) -> Result<V, Looked<V>> {
        match (self.state, self.slot) {
            (State::Fresh, Some(slot)) => Ok(slot.value),
            (state, slot) => Err(Looked { state, slot }),
        }
    }
}

/// One key being refreshed; released when dropped (a panic included).
#[derive(Debug)]
pub struct RefreshMark<'a, K, V> {
    memo: &'a LocalMemo<K, V>,
    hash: u64,
}

impl<K, V> Drop for RefreshMark<'_, K, V> {
    fn drop(&mut self) {
        self.memo.refreshing.lock().remove(&self.hash);
    }
}

/// What a refresh that cannot be launched hands back to run in the call.
type Relaunch<K, V, F> = (K, RefreshMark<'static, K, V>, F);

/// Whether a local memo's refresh runs on a spawned task ([`Spawn`]: the
/// fn's arguments are owned and its body `Send`) or in the call
/// ([`Inline`]). Not public API.
#[doc(hidden)]
pub trait LaunchLocal<K, V, R, F, S>: Copy {
    /// Starts the refresh, or hands it back.
    fn launch(
        self,
        memo: &'static LocalMemo<K, V>,
        key: K,
        site: &'static FnSite,
        mark: RefreshMark<'static, K, V>,
        make: F,
        shape: S,
    ) -> Result<(), Relaunch<K, V, F>>;
}

impl<K, V, R, F, Fut, S> LaunchLocal<K, V, R, F, S> for Spawn
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    R: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    S: Shape<V, R> + 'static,
{
    fn launch(
        self,
        memo: &'static LocalMemo<K, V>,
        key: K,
        site: &'static FnSite,
        mark: RefreshMark<'static, K, V>,
        make: F,
        shape: S,
    ) -> Result<(), Relaunch<K, V, F>> {
        // Outside a tokio runtime: refreshed in the call.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err((key, mark, make));
        };
        let epoch = memo.epoch.load(Ordering::SeqCst);
        runtime.spawn(async move {
            let r = timed(Some(site), make()).await;
            let _ = memo.refreshed(key, site, epoch, r, None, shape);
            drop(mark);
        });
        Ok(())
    }
}

impl<K, V, R, F, S> LaunchLocal<K, V, R, F, S> for Inline {
    fn launch(
        self,
        _memo: &'static LocalMemo<K, V>,
        key: K,
        _site: &'static FnSite,
        mark: RefreshMark<'static, K, V>,
        make: F,
        _shape: S,
    ) -> Result<(), Relaunch<K, V, F>> {
        Err((key, mark, make))
    }
}

impl<K, V> LocalMemo<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    pub(super) fn state(&self, slot: &Slot<V>, now: coarsetime::Instant) -> State {
        let Some(end) = slot.expires_at else {
            return State::Fresh;
        };
        let w = &self.windows;
        if now < end {
            return match w.ahead {
                Some(ahead) if now + ahead >= end => State::Ahead,
                _ => State::Fresh,
            };
        }
        let past = now.duration_since(end);
        if w.swr.is_some_and(|swr| past < swr) {
            State::Stale
        } else if w.sie.is_some_and(|sie| past < sie) {
            State::Expired
        } else {
            State::Gone
        }
    }

    /// The entry of `key` and where it is in its life, counting a hit
    /// (fresh) or a miss. For memos with stale or refresh windows;
    /// [`get`](Self::get) is the lookup of the others.
    #[doc(hidden)]
    #[inline]
    pub fn lookup<Q>(&self, key: &Q) -> Looked<V>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let Some(slot) = self.store.get(key) else {
            self.misses.incr();
            return Looked {
                state: State::Gone,
                slot: None,
            };
        };
        let state = self.state(&slot, coarsetime::Instant::now());
        if matches!(state, State::Fresh | State::Ahead) {
            self.hits.incr();
        } else {
            self.misses.incr();
        }
        Looked {
            state,
            slot: Some(slot),
        }
    }

    /// Marks `key` as being refreshed; `None` if it is already.
    fn begin_refresh(&self, key: &K) -> Option<RefreshMark<'_, K, V>> {
        let (_, hash) = self.mark(key);
        let marked = self.refreshing.lock().insert(hash);
        marked.then(|| RefreshMark { memo: self, hash })
    }

    /// The entry found answers as it is: a hit near its end, or stale.
    fn unchanged<R, S: Shape<V, R>>(
        &self,
        site: &'static FnSite,
        slot: Slot<V>,
        fresh: bool,
        shape: S,
    ) -> (R, CacheStatus) {
        if fresh {
            site.hit_counted();
            (shape.wrap(slot.value), CacheStatus::Hit)
        } else {
            self.stale.incr();
            site.count(Count::Stale);
            (shape.wrap(slot.value), CacheStatus::Stale)
        }
    }

    /// Stores a refreshed value unless an invalidation came after `epoch`
    /// (checked before and after the store, which is undone if one slipped
    /// in). A failure stores nothing: the old entry answers with
    /// `old` (in the call), or stays until its windows pass (background).
    fn refreshed<R, S: Shape<V, R>>(
        &self,
        key: K,
        site: &'static FnSite,
        epoch: u64,
        r: R,
        old: Option<(Slot<V>, bool)>,
        shape: S,
    ) -> (R, CacheStatus) {
        let value = match shape.split(r) {
            Ok(value) if shape.positive(&value).is_some() => value,
            split => {
                site.count(Count::Error);
                let failure = match split {
                    Ok(value) => shape.wrap(value),
                    Err(failure) => failure,
                };
                return match old {
                    Some((slot, fresh)) => self.unchanged(site, slot, fresh, shape),
                    None => (failure, CacheStatus::Refreshed),
                };
            }
        };
        self.refreshes.incr();
        site.count(Count::Refresh);
        if self.epoch.load(Ordering::SeqCst) == epoch {
            let slot = self.slot(&key, value.clone());
            self.store.insert(key.clone(), slot);
            if self.epoch.load(Ordering::SeqCst) == epoch {
                self.sets.incr();
            } else {
                self.store.remove(&key);
                self.stale_fills.incr();
            }
        } else {
            self.stale_fills.incr();
        }
        (shape.wrap(value), CacheStatus::Refreshed)
    }

    /// What the miss path of a memo with windows does with what
    /// [`lookup`](Self::lookup) found.
    fn step<R, S: Shape<V, R>>(
        &self,
        key: &K,
        site: &'static FnSite,
        looked: Looked<V>,
        shape: S,
    ) -> Step<'_, K, V, R> {
        let Looked { state, slot } = looked;
        let Some(slot) = slot else {
            return Step::Fill(None);
        };
        match state {
            State::Fresh => Step::Answer(self.unchanged(site, slot, true, shape)),
            State::Ahead | State::Stale => {
                let fresh = state == State::Ahead;
                match self.begin_refresh(key) {
                    Some(mark) => Step::Refresh(mark, slot, fresh),
                    None => Step::Answer(self.unchanged(site, slot, fresh, shape)),
                }
            }
            State::Expired => Step::Fill(Some(slot)),
            State::Gone => Step::Fill(None),
        }
    }

    /// The sync miss path of a memo with windows, after [`lookup`](Self::lookup):
    /// a stale or expiring entry is refreshed by the caller that marks it
    /// first (the others answer with it at once); an expired one is the
    /// fallback of a failed computation.
    #[doc(hidden)]
    pub fn around_sync<R, S, F>(
        &self,
        key: K,
        site: &'static FnSite,
        looked: Looked<V>,
        init: F,
        shape: S,
    ) -> (R, CacheStatus)
    where
        S: Shape<V, R>,
        F: FnOnce() -> R,
    {
        match self.step(&key, site, looked, shape) {
            Step::Answer(answer) => answer,
            Step::Fill(fallback) => self.fill_from_sync(key, Some(site), fallback, init, shape),
            Step::Refresh(mark, slot, fresh) => {
                let epoch = self.epoch.load(Ordering::SeqCst);
                let r = timed_sync(Some(site), init);
                let answer = self.refreshed(key, site, epoch, r, Some((slot, fresh)), shape);
                drop(mark);
                answer
            }
        }
    }

    /// The async miss path of a memo with windows, after
    /// [`lookup`](Self::lookup): as [`around_sync`](Self::around_sync), the
    /// refresh running on a spawned task when `launch` can.
    #[doc(hidden)]
    pub async fn around<R, S, F, Fut, L>(
        &'static self,
        key: K,
        site: &'static FnSite,
        looked: Looked<V>,
        make: F,
        shape: S,
        launch: L,
    ) -> (R, CacheStatus)
    where
        S: Shape<V, R>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
        L: LaunchLocal<K, V, R, F, S>,
    {
        match self.step(&key, site, looked, shape) {
            Step::Answer(answer) => answer,
            Step::Fill(fallback) => self.fill_from(key, Some(site), fallback, make, shape).await,
            Step::Refresh(mark, slot, fresh) => {
                match launch.launch(self, key, site, mark, make, shape) {
                    Ok(()) => self.unchanged(site, slot, fresh, shape),
                    Err((key, mark, make)) => {
                        let epoch = self.epoch.load(Ordering::SeqCst);
                        let r = timed(Some(site), make()).await;
                        let answer =
                            self.refreshed(key, site, epoch, r, Some((slot, fresh)), shape);
                        drop(mark);
                        answer
                    }
                }
            }
        }
    }
}

/// The next step of a miss path with windows.
enum Step<'a, K, V, R> {
    /// Answered as found.
    Answer((R, CacheStatus)),
    /// This caller refreshes the entry (fresh: it was only near its end).
    Refresh(RefreshMark<'a, K, V>, Slot<V>, bool),
    /// Compute through the single-flight, with the entry to fall back on.
    Fill(Option<Slot<V>>),
}
