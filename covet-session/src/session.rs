//! The [`Session`] handle.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::store::{Changes, Data, Record, SessionStore};

/// Default idle timeout: two weeks.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// A session: a cheap-to-clone handle (an `Arc`) on the data of one visitor.
///
/// Data is a map from `String` keys to JSON values (`serde_json::Value`):
/// any `Serialize` type goes in, any `Deserialize` type comes out, and
/// stores merge changes key by key. After loading, every operation is a
/// synchronous in-memory one; the handle records which keys changed and
/// [`save`](Session::save) sends only those.
///
/// Under HTTP the `SessionLayer` creates the handle and saves it; without
/// HTTP (tests, background jobs) use [`Session::new`] / [`Session::load`]
/// and [`Session::save`]:
///
/// ```
/// use std::sync::Arc;
/// use covet_session::{MemoryStore, Session, SessionStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// let session = Session::new(store.clone());
/// session.insert("visits", 1u64).unwrap();
/// session.save().await.unwrap();
/// let id = session.id().unwrap();
///
/// let again = Session::load(store, &id).await.unwrap().unwrap();
/// assert_eq!(again.get::<u64>("visits").unwrap(), Some(1));
/// # });
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    /// The id the request presented (not yet checked against the store).
    presented: Option<SessionId>,
    idle_timeout: Duration,
    /// Serializes loading and saving.
    io: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// The id of the stored session; `None` until a new session is created.
    id: Option<SessionId>,
    data: Data,
    changed: HashSet<String>,
    removed: HashSet<String>,
    cleared: bool,
    expires_at: Option<SystemTime>,
}

impl State {
    fn is_modified(&self) -> bool {
        self.cleared || !self.changed.is_empty() || !self.removed.is_empty()
    }

    fn loaded(&self) -> Result<()> {
        if self.loaded {
            Ok(())
        } else {
            Err(Error::NotLoaded)
        }
    }
}

/// What [`Session::save`] did, which tells the layer which cookie to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Nothing to store (never loaded, or unchanged and fresh enough).
    Unchanged,
    /// A new session was stored under a new id: send the cookie.
    Created {
        /// The new id.
        id: SessionId,
    },
    /// Changes were saved or the expiry moved: refresh the cookie.
    Refreshed {
        /// The session id.
        id: SessionId,
    },
    /// The session was cleared and deleted: send a removal cookie.
    Deleted,
}

impl Session {
    /// A new, empty session in `store`, loaded (nothing to read) and not yet
    /// stored: [`save`](Session::save) creates it if it holds any data.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        let s = Self::lazy(store, None, DEFAULT_IDLE_TIMEOUT);
        s.inner.state.lock().loaded = true;
        s
    }

    /// The session `id` from `store`, or `None` if it is unknown or expired.
    pub async fn load(store: Arc<dyn SessionStore>, id: &SessionId) -> Result<Option<Self>> {
        let s = Self::lazy(store, Some(id.clone()), DEFAULT_IDLE_TIMEOUT);
        s.ensure_loaded().await?;
        Ok(s.id().is_some().then_some(s))
    }

    /// A handle that reads `presented` from the store on first use
    /// (an unknown or missing id gives a fresh session).
    pub(crate) fn lazy(
        store: Arc<dyn SessionStore>,
        presented: Option<SessionId>,
        idle_timeout: Duration,
    ) -> Self {
        Session {
            inner: Arc::new(Inner {
                store,
                presented,
                idle_timeout,
                io: tokio::sync::Mutex::new(()),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Loads the session from its store if that has not happened yet.
    ///
    /// The `SessionLayer` attaches an unloaded handle so that requests which
    /// never use the session never reach the store; the axum extractor calls
    /// this for you. Calling it again is free.
    pub async fn ensure_loaded(&self) -> Result<()> {
        if self.inner.state.lock().loaded {
            return Ok(());
        }
        let _io = self.inner.io.lock().await;
        if self.inner.state.lock().loaded {
            return Ok(());
        }
        let record = match &self.inner.presented {
            Some(id) => self.inner.store.load(id).await?,
            None => None,
        };
        let mut st = self.inner.state.lock();
        if let Some(Record {
            data, expires_at, ..
        }) = record
        {
            st.id = self.inner.presented.clone();
            st.data = data;
            st.expires_at = Some(expires_at);
        }
        st.loaded = true;
        Ok(())
    }

    /// Whether the session has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.inner.state.lock().loaded
    }

    /// The session id, or `None` for a session not stored yet.
    pub fn id(&self) -> Option<SessionId> {
        self.inner.state.lock().id.clone()
    }

    /// The value at `key` decoded as `T`, or `None` if absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let st = self.inner.state.lock();
        st.loaded()?;
        match st.data.get(key) {
            None => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|source| Error::Decode {
                key: key.to_owned(),
                source,
            }),
        }
    }

    /// The raw JSON value at `key`.
    pub fn get_value(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let st = self.inner.state.lock();
        st.loaded()?;
        Ok(st.data.get(key).cloned())
    }

    /// Stores `value` at `key`. Inserting a value equal to the stored one
    /// records no change.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        let v = serde_json::to_value(&value).map_err(|source| Error::Encode {
            key: key.to_owned(),
            source,
        })?;
        let mut st = self.inner.state.lock();
        st.loaded()?;
        if st.data.get(key) == Some(&v) {
            return Ok(());
        }
        st.removed.remove(key);
        st.changed.insert(key.to_owned());
        st.data.insert(key.to_owned(), v);
        Ok(())
    }

    /// Removes `key` and returns its value decoded as `T`. The key is
    /// removed even if decoding fails.
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let mut st = self.inner.state.lock();
        st.loaded()?;
        let Some(v) = st.data.remove(key) else {
            return Ok(None);
        };
        st.changed.remove(key);
        st.removed.insert(key.to_owned());
        drop(st);
        T::deserialize(v).map(Some).map_err(|source| Error::Decode {
            key: key.to_owned(),
            source,
        })
    }

    /// Whether `key` is present (`false` before loading).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.state.lock().data.contains_key(key)
    }

    /// The keys present, sorted (empty before loading).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.inner.state.lock().data.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Whether the session holds no data (`true` before loading).
    pub fn is_empty(&self) -> bool {
        self.inner.state.lock().data.is_empty()
    }

    /// Removes every key. If nothing is inserted afterwards, saving deletes
    /// the session from the store and the layer sends a removal cookie.
    /// Works before loading too (the presented id is then deleted).
    pub fn clear(&self) {
        let mut st = self.inner.state.lock();
        if !st.loaded {
            st.loaded = true;
            st.id = self.inner.presented.clone();
        }
        st.data.clear();
        st.changed.clear();
        st.removed.clear();
        st.cleared = true;
    }

    /// Whether something changed since loading or the last save.
    pub fn is_modified(&self) -> bool {
        self.inner.state.lock().is_modified()
    }

    /// When the stored session expires (`None` if not stored).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.state.lock().expires_at
    }

    /// The idle timeout this handle applies when saving.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
    }

    /// Stores what changed; see [`SaveOutcome`]. A session that was not
    /// modified is only touched (expiry moved) once an eighth of the idle
    /// timeout has passed since its last extension.
    pub async fn save(&self) -> Result<SaveOutcome> {
        let _io = self.inner.io.lock().await;
        let store = &self.inner.store;
        let now = SystemTime::now();
        let expires_at = now + self.inner.idle_timeout;

        enum Plan {
            Nothing,
            Delete(Option<SessionId>),
            Create(Data),
            Save(SessionId, Changes),
            Touch(SessionId),
        }
        let plan = {
            let st = self.inner.state.lock();
            if !st.loaded {
                Plan::Nothing
            } else if st.cleared && st.data.is_empty() {
                Plan::Delete(st.id.clone())
            } else if let Some(id) = st.id.clone() {
                if st.is_modified() {
                    let mut changes = Changes::new(expires_at);
                    changes.cleared = st.cleared;
                    changes.removed = st.removed.clone();
                    changes.set = st
                        .changed
                        .iter()
                        .filter_map(|k| Some((k.clone(), st.data.get(k)?.clone())))
                        .collect();
                    Plan::Save(id, changes)
                } else if self.needs_refresh(st.expires_at, now) {
                    Plan::Touch(id)
                } else {
                    Plan::Nothing
                }
            } else if st.data.is_empty() {
                Plan::Nothing
            } else {
                Plan::Create(st.data.clone())
            }
        };

        let outcome = match plan {
            Plan::Nothing => return Ok(SaveOutcome::Unchanged),
            Plan::Delete(id) => {
                if let Some(id) = &id {
                    store.delete(id).await?;
                }
                let mut st = self.inner.state.lock();
                st.id = None;
                st.expires_at = None;
                self.reset(&mut st);
                return Ok(if id.is_some() {
                    SaveOutcome::Deleted
                } else {
                    SaveOutcome::Unchanged
                });
            }
            Plan::Create(data) => SaveOutcome::Created {
                id: store.create(&Record::new(data, expires_at)).await?,
            },
            Plan::Save(id, changes) => {
                if let Some(id) = store.save(&id, &changes).await? {
                    SaveOutcome::Refreshed { id }
                } else {
                    // Expired or deleted meanwhile: store the whole session
                    // anew, with its data as it is now.
                    let data = self.inner.state.lock().data.clone();
                    SaveOutcome::Created {
                        id: store.create(&Record::new(data, expires_at)).await?,
                    }
                }
            }
            Plan::Touch(id) => {
                if let Some(id) = store.touch(&id, expires_at).await? {
                    SaveOutcome::Refreshed { id }
                } else {
                    let data = self.inner.state.lock().data.clone();
                    if data.is_empty() {
                        return Ok(SaveOutcome::Unchanged);
                    }
                    SaveOutcome::Created {
                        id: store.create(&Record::new(data, expires_at)).await?,
                    }
                }
            }
        };
        let mut st = self.inner.state.lock();
        if let SaveOutcome::Created { id } | SaveOutcome::Refreshed { id } = &outcome {
            st.id = Some(id.clone());
        }
        st.expires_at = Some(expires_at);
        self.reset(&mut st);
        Ok(outcome)
    }

    fn reset(&self, st: &mut State) {
        st.changed.clear();
        st.removed.clear();
        st.cleared = false;
    }

    fn needs_refresh(&self, expires_at: Option<SystemTime>, now: SystemTime) -> bool {
        let idle = self.inner.idle_timeout;
        match expires_at.and_then(|e| e.duration_since(now).ok()) {
            Some(left) => idle.saturating_sub(left) >= idle / 8,
            None => true,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("Session")
            .field("id", &st.id)
            .field("loaded", &st.loaded)
            .field("keys", &st.data.len())
            .field("modified", &st.is_modified())
            .finish()
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn store() -> Arc<dyn SessionStore> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn tracks_changes_and_ignores_equal_inserts() {
        let store = store();
        let s = Session::new(store.clone());
        assert_eq!(s.save().await.unwrap(), SaveOutcome::Unchanged);
        s.insert("a", 1).unwrap();
        s.insert("b", "x").unwrap();
        assert!(matches!(
            s.save().await.unwrap(),
            SaveOutcome::Created { .. }
        ));
        assert!(!s.is_modified());
        s.insert("a", 1).unwrap();
        assert!(!s.is_modified());
        s.insert("a", 2).unwrap();
        assert!(s.is_modified());
        assert_eq!(s.remove::<String>("b").unwrap().as_deref(), Some("x"));
        assert!(s.contains("a") && !s.contains("b"));
        assert_eq!(s.keys(), vec!["a".to_string()]);
        assert!(matches!(
            s.save().await.unwrap(),
            SaveOutcome::Refreshed { .. }
        ));
        let id = s.id().unwrap();
        let again = Session::load(store.clone(), &id).await.unwrap().unwrap();
        assert_eq!(again.get::<i32>("a").unwrap(), Some(2));
        assert_eq!(again.get::<String>("b").unwrap(), None);
        assert!(matches!(
            again.get::<String>("a"),
            Err(Error::Decode { .. })
        ));
        again.clear();
        assert_eq!(again.save().await.unwrap(), SaveOutcome::Deleted);
        assert!(Session::load(store, &id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn lazy_handles_refuse_use_before_loading() {
        let s = Session::lazy(store(), None, DEFAULT_IDLE_TIMEOUT);
        assert!(matches!(s.get::<u8>("a"), Err(Error::NotLoaded)));
        assert!(matches!(s.insert("a", 1), Err(Error::NotLoaded)));
        assert_eq!(s.save().await.unwrap(), SaveOutcome::Unchanged);
        s.ensure_loaded().await.unwrap();
        assert_eq!(s.get::<u8>("a").unwrap(), None);
    }

    #[tokio::test]
    async fn clear_then_insert_replaces_the_data() {
        let store = store();
        let s = Session::new(store.clone());
        s.insert("a", 1).unwrap();
        s.save().await.unwrap();
        let id = s.id().unwrap();
        s.clear();
        s.insert("b", 2).unwrap();
        assert!(matches!(
            s.save().await.unwrap(),
            SaveOutcome::Refreshed { .. }
        ));
        let r = store.load(&id).await.unwrap().unwrap();
        assert_eq!(r.data.len(), 1);
        assert_eq!(r.data["b"], 2);
    }
}
