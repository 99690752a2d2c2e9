//! The object-safe [`SessionStore`] trait and the types it exchanges.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{META_KEY, Meta};
use crate::time::from_ms;

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

/// What a store can say about one session of a user, for "your devices"
/// pages and revocation. It never holds the session id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// A short hash of the id (the first 12 characters of its storage
    /// key), to tell sessions apart.
    pub id_hash: String,
    /// When the session was created, or its user logged in.
    pub created_at: Option<SystemTime>,
    /// When the session was last written (a change or a renewal: at most
    /// the renewal interval before the last request that used it).
    pub last_seen: Option<SystemTime>,
    /// When it expires unless used again.
    pub expires_at: SystemTime,
    /// The `User-Agent` recorded at login, if any.
    pub user_agent: Option<String>,
}

impl SessionInfo {
    /// The info of a stored record, kept under `storage_key`.
    pub fn from_record(storage_key: &str, record: &Record) -> SessionInfo {
        let meta = Meta::from_value(record.data.get(META_KEY));
        SessionInfo {
            id_hash: storage_key.chars().take(12).collect(),
            created_at: meta.created_ms.map(from_ms),
            // Every write sets the expiry to the write time plus the idle
            // timeout.
            last_seen: meta.idle_ms.and_then(|i| {
                record
                    .expires_at
                    .checked_sub(std::time::Duration::from_millis(i))
            }),
            expires_at: record.expires_at,
            user_agent: meta.agent,
        }
    }
}

/// Every key a server-side store writes starts with this root, which no
/// cache namespace may use (`Cache` refuses namespaces starting with
/// `__covet`): no cache's `clear()`, pattern delete or tag invalidation on a
/// shared server ever touches a session.
pub const SESSION_KEY_ROOT: &str = "__covet_session:";

/// The key part naming a user's session list: `user:` and the SHA-256 of
/// the user id (URL-safe base64), so user ids never appear in keys.
pub(crate) fn user_key(user_id: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(user_id.as_bytes());
    format!(
        "user:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// The user a stored session belongs to (set by `Session::login`).
pub fn user_of(data: &Data) -> Option<&str> {
    data.get(META_KEY)?.get(3)?.as_str()
}

/// The user id a set of changes writes, if any.
pub(crate) fn user_written(changes: &Changes) -> Option<&str> {
    user_of(&changes.set)
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
    /// Whether the expiry must move to `expires_at` now (`true` from
    /// [`Changes::new`]). `Session` clears it for saves that come before
    /// the renewal interval is up, so a store where moving the expiry costs
    /// extra (Redis) may keep the current one; stores where it is free
    /// write `expires_at` regardless.
    pub extend: bool,
}

impl Changes {
    /// Changes that only move the expiry.
    pub fn new(expires_at: SystemTime) -> Self {
        Changes {
            set: Data::new(),
            removed: HashSet::new(),
            cleared: false,
            expires_at,
            extend: true,
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
            match data.get_mut(k) {
                Some(slot) => slot.clone_from(v),
                None => {
                    data.insert(k.clone(), v.clone());
                }
            }
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

    /// The live sessions of `user_id` (see `Session::login`), oldest
    /// first. The default is [`Error::Unsupported`].
    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>> {
        let _ = user_id;
        Err(Error::Unsupported {
            store: "this",
            operation: "listing a user's sessions",
        })
    }

    /// Deletes every session of `user_id` (log out everywhere) and returns
    /// how many there were. The default is [`Error::Unsupported`].
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        let _ = user_id;
        Err(Error::Unsupported {
            store: "this",
            operation: "deleting a user's sessions",
        })
    }

    /// Deletes every session of `user_id` except `keep` (log out the other
    /// devices, from a "your sessions" page) and returns how many went.
    /// The default is [`Error::Unsupported`].
    async fn delete_other_user_sessions(&self, user_id: &str, keep: &SessionId) -> Result<u64> {
        let _ = (user_id, keep);
        Err(Error::Unsupported {
            store: "this",
            operation: "deleting a user's other sessions",
        })
    }

    /// How many sessions are live now: exact for `MemoryStore` and
    /// `SqlStore`, a `SCAN` for `RedisStore` (cost in its docs), a count by
    /// pattern for `CacheStore` where its backend can count keys (memory,
    /// Redis, SQL, `Tiered` over them; not Memcached). The default is
    /// [`Error::Unsupported`] (a `CookieStore` keeps nothing).
    async fn count(&self) -> Result<u64> {
        Err(Error::Unsupported {
            store: "this",
            operation: "counting sessions",
        })
    }

    /// Told by `SessionLayer` which cookie name it uses, for stores whose
    /// values are bound to it (the cookie store seals the name into the
    /// value and counts it in the size limit): one name, set once, in
    /// [`SessionConfig`](crate::SessionConfig). The default ignores it.
    fn use_cookie_name(&self, name: &str) {
        let _ = name;
    }
}

/// Sorts infos oldest first.
pub(crate) fn oldest_first(mut infos: Vec<SessionInfo>) -> Vec<SessionInfo> {
    infos.sort_by_key(|i| i.created_at);
    infos
}
