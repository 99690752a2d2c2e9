//! Single-flight: concurrent misses of one key run one computation.
//!
//! The first caller becomes the leader and holds a [`LeaderGuard`]; later
//! callers subscribe to a `watch` channel. The leader publishes the value it
//! computed; when the guard drops (success, failure, cancellation or panic)
//! the entry leaves the map and every follower wakes. A follower that finds
//! no published value checks the cache and, failing that, competes to lead,
//! so no follower ever waits on a leader that is gone.

use std::collections::HashMap;
use std::fmt;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::backend::Decoded;

type Map = HashMap<Box<str>, watch::Receiver<Option<Decoded>>, foldhash::fast::RandomState>;

#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<Map>,
}

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.map.lock().len())
            .finish()
    }
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Follower(watch::Receiver<Option<Decoded>>),
}

pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    key: Box<str>,
    tx: watch::Sender<Option<Decoded>>,
}

impl Flights {
    pub(crate) fn join_or_lead(&self, key: &str) -> Role<'_> {
        let mut map = self.map.lock();
        if let Some(rx) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        let key: Box<str> = key.into();
        map.insert(key.clone(), rx);
        Role::Leader(LeaderGuard {
            flights: self,
            key,
            tx,
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

impl LeaderGuard<'_> {
    /// Hands the computed value to the followers.
    pub(crate) fn publish(&self, value: Decoded) {
        self.tx.send_replace(Some(value));
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock();
        if map
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.key);
        }
        // `tx` drops after this, waking every follower.
    }
}
