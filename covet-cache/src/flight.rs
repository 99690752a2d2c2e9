//! Single-flight: concurrent misses of one key run one computation. Used by
//! [`Cache`](crate::Cache) (and so `#[cached]`) and by the HTTP cache.
//!
//! The first caller becomes the [`Leader`]; later callers get a
//! [`Follower`] and wait on a `watch` channel. The leader publishes what it
//! got; when the leader drops (published, failed, cancelled or panicked)
//! its entry leaves the map, only if it is still its own, and every
//! follower wakes. A follower that finds nothing published competes to lead
//! again, so no follower ever waits on a leader that is gone.
//!
//! # Re-entrance
//!
//! A leader's computation that asks for its own key (a cached fn whose body
//! calls itself, or two fns sharing a key template where one calls the
//! other) would wait for itself forever. Leaders run their computation
//! under [`Leader::run`], which records the flight in a task-local; a
//! [`join_or_lead`](Flights::join_or_lead) from inside it for a key that
//! this same task is computing returns [`Role::Reentrant`] instead of a
//! follower. (A computation that spawns a separate task which then asks for
//! the key is not seen: the task-local does not cross `tokio::spawn`.)

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

struct Flight<V> {
    id: u64,
    rx: watch::Receiver<Option<V>>,
}

type Map<V> = HashMap<Box<str>, Flight<V>, foldhash::fast::RandomState>;

/// Flight ids, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

tokio::task_local! {
    /// The flights the current task leads, innermost last.
    static LEADING: Arc<[u64]>;
}

/// The keys with a computation in progress, and their waiters.
pub(crate) struct Flights<V> {
    map: Arc<Mutex<Map<V>>>,
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Flights {
            map: Arc::default(),
        }
    }
}

impl<V> Clone for Flights<V> {
    fn clone(&self) -> Self {
        Flights {
            map: Arc::clone(&self.map),
        }
    }
}

impl<V> fmt::Debug for Flights<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.map.lock().len())
            .finish()
    }
}

/// What a caller is to do about a key.
pub(crate) enum Role<V> {
    /// Compute (under [`Leader::run`]) and publish.
    Leader(Leader<V>),
    /// Wait for the leader ([`Follower::wait`]).
    Follower(Follower<V>),
    /// This very task is computing the key already: waiting would never
    /// end. Compute directly.
    Reentrant,
}

/// The caller computing a key; dropping it wakes the followers.
pub(crate) struct Leader<V> {
    map: Arc<Mutex<Map<V>>>,
    key: Box<str>,
    id: u64,
    tx: watch::Sender<Option<V>>,
}

/// A caller waiting for a leader.
pub(crate) struct Follower<V> {
    rx: watch::Receiver<Option<V>>,
}

fn leading_contains(id: u64) -> bool {
    LEADING.try_with(|ids| ids.contains(&id)).unwrap_or(false)
}

impl<V: Clone> Flights<V> {
    /// Leads the key's computation, follows the one in progress, or (from
    /// inside that computation) says it is re-entrant.
    pub(crate) fn join_or_lead(&self, key: &str) -> Role<V> {
        let mut map = self.map.lock();
        if let Some(flight) = map.get(key) {
            if leading_contains(flight.id) {
                return Role::Reentrant;
            }
            return Role::Follower(Follower {
                rx: flight.rx.clone(),
            });
        }
        Role::Leader(self.lead(&mut map, key))
    }

    /// Registers a new flight of `key` (absent from `map`), led by the caller.
    fn lead(&self, map: &mut Map<V>, key: &str) -> Leader<V> {
        let (tx, rx) = watch::channel(None);
        let key: Box<str> = key.into();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        map.insert(key.clone(), Flight { id, rx });
        Leader {
            map: Arc::clone(&self.map),
            key,
            id,
            tx,
        }
    }

    /// Leads the key's computation if none is in progress (a refresh that
    /// nobody waits for: skipped when someone already computes the key).
    pub(crate) fn try_lead(&self, key: &str) -> Option<Leader<V>> {
        let mut map = self.map.lock();
        if map.contains_key(key) {
            return None;
        }
        Some(self.lead(&mut map, key))
    }

    /// Keys with a computation in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

impl<V> Leader<V> {
    /// Hands `value` to the followers (they wake at once).
    pub(crate) fn publish(&self, value: V) {
        self.tx.send_replace(Some(value));
    }

    /// Runs the computation of this flight, marked as such for the
    /// re-entrance check.
    pub(crate) async fn run<F: Future>(&self, computation: F) -> F::Output {
        let mut ids: Vec<u64> = LEADING.try_with(|ids| ids.to_vec()).unwrap_or_default();
        ids.push(self.id);
        LEADING.scope(ids.into(), computation).await
    }
}

impl<V> Drop for Leader<V> {
    fn drop(&mut self) {
        let mut map = self.map.lock();
        // Remove the entry only if it is ours (it always is while we live;
        // the check keeps a late drop from removing a successor).
        if map.get(&*self.key).is_some_and(|f| f.id == self.id) {
            map.remove(&*self.key);
        }
        // `tx` drops after this, waking every follower.
    }
}

impl<V: Clone> Follower<V> {
    /// Waits until the leader publishes or goes away; what it published,
    /// if anything.
    pub(crate) async fn wait(mut self) -> Option<V> {
        loop {
            if let Some(v) = self.rx.borrow_and_update().clone() {
                return Some(v);
            }
            if self.rx.changed().await.is_err() {
                return self.rx.borrow().clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_then_followers_get_its_value() {
        let flights: Flights<u32> = Flights::default();
        let Role::Leader(leader) = flights.join_or_lead("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(follower) = flights.join_or_lead("k") else {
            panic!("second caller follows")
        };
        let waiting = tokio::spawn(follower.wait());
        leader.publish(7);
        assert_eq!(waiting.await.unwrap(), Some(7));
        drop(leader);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_leader_gone_without_publishing_wakes_followers_empty_handed() {
        let flights: Flights<u32> = Flights::default();
        let Role::Leader(leader) = flights.join_or_lead("k") else {
            panic!()
        };
        let Role::Follower(follower) = flights.join_or_lead("k") else {
            panic!()
        };
        drop(leader);
        assert_eq!(follower.wait().await, None);
        assert!(matches!(flights.join_or_lead("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn asking_for_your_own_key_is_reentrant_not_a_wait() {
        let flights: Flights<u32> = Flights::default();
        let Role::Leader(leader) = flights.join_or_lead("k") else {
            panic!()
        };
        let inner = leader
            .run(async {
                let own = matches!(flights.join_or_lead("k"), Role::Reentrant);
                let Role::Leader(other) = flights.join_or_lead("other") else {
                    panic!("another key is led normally")
                };
                let nested = other
                    .run(async { matches!(flights.join_or_lead("k"), Role::Reentrant) })
                    .await;
                (own, nested)
            })
            .await;
        assert_eq!(inner, (true, true));
        // Outside the computation, another caller follows as usual.
        assert!(matches!(flights.join_or_lead("k"), Role::Follower(_)));
    }

    #[tokio::test]
    async fn a_late_drop_never_removes_a_successor() {
        let flights: Flights<u32> = Flights::default();
        let Role::Leader(first) = flights.join_or_lead("k") else {
            panic!()
        };
        // Simulate the entry being replaced (as after a removal race).
        flights.map.lock().remove("k");
        let Role::Leader(second) = flights.join_or_lead("k") else {
            panic!()
        };
        drop(first);
        assert_eq!(flights.len(), 1, "the successor's entry stays");
        drop(second);
        assert_eq!(flights.len(), 0);
    }
}
