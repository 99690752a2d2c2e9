//! The object-safe [`SessionStore`] trait and the types it exchanges.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::time::SystemTime;

use crate::error::Result;
use crate::id::SessionId;

pub mod cache;
pub mod cookie;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
pub mod sql;

/// The data of one session: JSON values by key.
///
/// Values are `serde_json::Value`s so that every store can merge changes
/// key by key (a Redis hash field, a JSON column, a map entry) and the data
/// stays readable when inspecting a store.
pub type Data = HashMap<String, serde_json::Value>;

/// A whole session as a store holds it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The session data.
    pub data: Data,
    /// When the session expires; a store never returns it after that.
    pub expires_at: SystemTime,
}

impl Record {
    /// A record with `data` that expires at `expires_at`.
    pub fn new(data: Data, expires_at: SystemTime) -> Self {
        Record { data, expires_at }
    }
}

/// What one request changed in a session: stores apply exactly this, so two
/// concurrent requests that change different keys both keep their change.
///
/// Applied in order: if `cleared`, every key is removed; then the keys in
/// `removed` are removed and those in `set` written; the expiry becomes
/// `expires_at`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Changes {
    /// Keys written, with their new values.
    pub set: Data,
    /// Keys removed.
    pub removed: HashSet<String>,
    /// Whether the session was cleared before `set` was applied.
    pub cleared: bool,
    /// The new expiry.
    pub expires_at: SystemTime,
}

impl Changes {
    /// Changes that only move the expiry.
    pub fn new(expires_at: SystemTime) -> Self {
        Changes {
            set: Data::new(),
            removed: HashSet::new(),
            cleared: false,
            expires_at,
        }
    }

    /// Applies these changes to `data` (for stores that merge in memory).
    pub fn apply_to(&self, data: &mut Data) {
        if self.cleared {
            data.clear();
        }
        for k in &self.removed {
            data.remove(k);
        }
        for (k, v) in &self.set {
            data.insert(k.clone(), v.clone());
        }
    }
}

/// Where sessions live. Object safe: the layer holds an
/// `Arc<dyn SessionStore>`.
///
/// Stores key every session by [`SessionId::storage_key`], never by the id
/// itself, and never return a session past its expiry.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use covet_session::{MemoryStore, SessionStore, store::{Changes, Record}};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let mut data = covet_session::store::Data::new();
/// data.insert("user".into(), serde_json::json!(7));
/// let id = store.create(&Record::new(data, expires)).await.unwrap();
/// let record = store.load(&id).await.unwrap().unwrap();
/// assert_eq!(record.data["user"], 7);
/// let mut changes = Changes::new(expires);
/// changes.removed.insert("user".into());
/// assert_eq!(store.save(&id, &changes).await.unwrap(), Some(id.clone()));
/// assert!(store.load(&id).await.unwrap().unwrap().data.is_empty());
/// # });
/// ```
#[async_trait::async_trait]
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Stores `record` under a fresh id that no other live session has, and
    /// returns that id.
    async fn create(&self, record: &Record) -> Result<SessionId>;

    /// The session `id`, or `None` if it is unknown or expired.
    async fn load(&self, id: &SessionId) -> Result<Option<Record>>;

    /// Applies `changes` to the session `id` and returns the id it is now
    /// stored under: `id` itself for server-side stores, a new value for a
    /// client-side store (see [`is_client_side`](SessionStore::is_client_side)).
    /// Returns `None` (and stores nothing) if the session is unknown or
    /// expired.
    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>>;

    /// Deletes the session `id`; deleting an unknown id is not an error.
    async fn delete(&self, id: &SessionId) -> Result<()>;

    /// Removes expired sessions that the store does not reclaim alone, and
    /// returns how many it removed.
    async fn delete_expired(&self) -> Result<u64>;

    /// Moves the expiry of session `id` without rewriting its data, and
    /// returns the id it is now stored under (as for
    /// [`save`](SessionStore::save)), or `None` if the session is unknown or
    /// expired.
    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>>;

    /// Turns a cookie value into the id to look up, or `None` for a value
    /// this store can never have issued (the layer then starts a fresh
    /// session without asking the store). The default accepts exactly the
    /// 43-character ids of [`SessionId::generate`].
    fn parse_id(&self, cookie_value: &str) -> Option<SessionId> {
        cookie_value.parse().ok()
    }

    /// Whether the whole session travels in its id (a cookie store): every
    /// `save`/`touch` then returns a new id, concurrent saves cannot merge
    /// (the last cookie the browser keeps wins), and `delete` cannot revoke
    /// a copy of the old value before its expiry. `false` by default.
    fn is_client_side(&self) -> bool {
        false
    }
}
