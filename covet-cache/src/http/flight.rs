//! Request coalescing: one origin request per key at a time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::stored::StoredResponse;

type Published = Option<Arc<StoredResponse>>;
type Map = HashMap<String, watch::Receiver<Published>, foldhash::fast::RandomState>;

/// Keys with an origin request in progress.
#[derive(Default, Clone)]
pub(crate) struct HttpFlights {
    map: Arc<Mutex<Map>>,
}

impl fmt::Debug for HttpFlights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFlights")
            .field("in_flight", &self.map.lock().len())
            .finish()
    }
}

pub(crate) enum Role {
    Leader(Leader),
    Follower(watch::Receiver<Published>),
}

/// Held by the request that went to the origin; dropping it (stored, not
/// storable, failed or cancelled) wakes the followers.
pub(crate) struct Leader {
    flights: HttpFlights,
    key: String,
    tx: watch::Sender<Published>,
}

impl Leader {
    /// Hands the stored response to the followers.
    pub(crate) fn publish(&self, r: Arc<StoredResponse>) {
        self.tx.send_replace(Some(r));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.flights.map.lock().remove(&self.key);
    }
}

impl HttpFlights {
    pub(crate) fn join_or_lead(&self, key: &str) -> Role {
        let mut map = self.map.lock();
        if let Some(rx) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_owned(), rx);
        Role::Leader(Leader {
            flights: self.clone(),
            key: key.to_owned(),
            tx,
        })
    }
}

/// Waits until the leader publishes or goes away; the published response,
/// if any.
pub(crate) async fn follow(mut rx: watch::Receiver<Published>) -> Published {
    loop {
        if let Some(r) = rx.borrow_and_update().clone() {
            return Some(r);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}
