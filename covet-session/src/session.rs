//! The [`Session`] handle.

use crate::stats::Event;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::SessionConfig;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::security::{self, Binding, security_event};
use crate::store::{Changes, Data, Record, SessionStore};
use crate::time::{from_ms, to_ms};

pub use crate::config::DEFAULT_IDLE_TIMEOUT;

/// Keys starting with this belong to covet.
pub(crate) const RESERVED_PREFIX: &str = "__covet";
/// The one key covet's own fields live under, as a JSON array: when the
/// session was created or its user logged in (ms since the epoch), the
/// idle timeout it is kept for (ms), when the cookie was last sent (ms
/// since the epoch), the user, the `User-Agent` at creation or login, and
/// the client binding fingerprint (`null` when unknown).
pub(crate) const META_KEY: &str = "__covet";
/// The per-session CSRF secret (rotated at login).
pub(crate) const CSRF_SECRET_KEY: &str = "__covet.csrf";

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
/// use covet_session::{MemoryStore, Session, SessionConfig, SessionStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// let config = SessionConfig::default();
/// let session = Session::new(store.clone(), &config);
/// session.insert("visits", 1u64).unwrap();
/// session.save().await.unwrap();
/// let id = session.id().unwrap();
///
/// let again = Session::load(store, &id, &config).await.unwrap().unwrap();
/// assert_eq!(again.get::<u64>("visits").unwrap(), Some(1));
/// # });
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    /// The ids the request presented (not yet checked against the store).
    presented: Vec<SessionId>,
    config: Arc<SessionConfig>,
    /// The request's `User-Agent`, recorded at creation and login.
    user_agent: Option<HeaderValue>,
    /// The client's address (the layer resolves trusted proxies).
    client_ip: Option<std::net::IpAddr>,
    /// Serializes loading and saving.
    io: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

/// covet's own fields of a session, kept apart from its data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) created_ms: Option<u64>,
    pub(crate) idle_ms: Option<u64>,
    pub(crate) user: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) cookie_ms: Option<u64>,
    /// The client binding fingerprint recorded at creation or login.
    pub(crate) binding: Option<String>,
}

impl Meta {
    /// The fields as stored under [`META_KEY`]: the JSON array its
    /// `Serialize` writes.
    pub(crate) fn to_value(&self) -> serde_json::Value {
        // Only `Option<u64>` and `Option<String>` fields: this cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The fields stored under [`META_KEY`], moving the strings out of a
    /// value the caller owns (every load decodes them). Missing or
    /// mistyped fields are `None`; anything but an array is no fields.
    pub(crate) fn from_owned(v: Option<serde_json::Value>) -> Meta {
        use serde_json::Value;
        let Some(Value::Array(fields)) = v else {
            return Meta::default();
        };
        let mut fields = fields.into_iter();
        let mut num = || fields.next().as_ref().and_then(Value::as_u64);
        let (created_ms, idle_ms, cookie_ms) = (num(), num(), num());
        let mut text = || match fields.next() {
            Some(Value::String(t)) => Some(t),
            _ => None,
        };
        let (user, agent, binding) = (text(), text(), text());
        Meta {
            created_ms,
            idle_ms,
            cookie_ms,
            user,
            agent,
            binding,
        }
    }

    /// [`from_owned`](Meta::from_owned) of a borrowed value.
    pub(crate) fn from_value(v: Option<&serde_json::Value>) -> Meta {
        Meta::from_owned(v.cloned())
    }

    fn is_empty(&self) -> bool {
        *self == Meta::default()
    }

    /// An upper bound of its JSON's length (see [`json_bound`]).
    fn json_bound(&self) -> usize {
        let num = |n: Option<u64>| n.map_or(4, digits);
        let text = |t: &Option<String>| t.as_deref().map_or(4, str_bound);
        // Brackets and five commas.
        2 + 5
            + num(self.created_ms)
            + num(self.idle_ms)
            + num(self.cookie_ms)
            + text(&self.user)
            + text(&self.agent)
            + text(&self.binding)
    }
}

/// The stored form: `[created, idle, cookie, user, agent, binding]`, with
/// `null` for a missing field (written straight into a weighing counter or
/// a store's command).
impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (
            self.created_ms,
            self.idle_ms,
            self.cookie_ms,
            &self.user,
            &self.agent,
            &self.binding,
        )
            .serialize(s)
    }
}

/// The cookie a response must carry after the saves so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieAction {
    Set(SessionId),
    Remove,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// The id of the stored session; `None` until a new session is created.
    id: Option<SessionId>,
    /// The data, with covet's internal keys (flash messages, the CSRF
    /// secret) but not the fields in `meta`.
    data: Data,
    meta: Meta,
    changed: HashSet<String>,
    removed: HashSet<String>,
    cleared: bool,
    expires_at: Option<SystemTime>,
    /// The next save stores the session under a new id.
    rotate: bool,
    /// Logged out, or found deleted: nothing is written any more.
    ended: bool,
    /// `logout` was called.
    logged_out: bool,
    /// `meta` changed since loading or the last save.
    meta_changed: bool,
    /// The last save calls for sending the cookie again.
    send_cookie: bool,
    /// The stored form's size, computed when `bound` comes near the limit.
    size: Option<usize>,
    /// An upper bound of the stored form's size, cheap to compute: an
    /// insert that keeps it within the limit needs no exact weighing.
    bound: Option<usize>,
    cookie: Option<CookieAction>,
}

impl State {
    fn is_modified(&self) -> bool {
        self.cleared
            || self.rotate
            || self.meta_changed
            || !self.changed.is_empty()
            || !self.removed.is_empty()
    }

    fn loaded(&self) -> Result<()> {
        if self.loaded {
            Ok(())
        } else {
            Err(Error::NotLoaded)
        }
    }

    /// Whether there is anything worth storing.
    fn has_content(&self) -> bool {
        !self.data.is_empty() || self.meta.user.is_some()
    }

    fn size(&mut self) -> usize {
        if let Some(s) = self.size {
            return s;
        }
        let mut total = 2;
        for (k, v) in &self.data {
            total += entry_len(k, v);
        }
        if !self.meta.is_empty() {
            total += entry_len(META_KEY, &self.meta);
        }
        self.size = Some(total);
        total
    }

    /// [`size`](State::size)'s upper bound, from [`json_bound`].
    fn bound(&mut self) -> usize {
        if let Some(b) = self.bound {
            return b;
        }
        let mut total = 2;
        for (k, v) in &self.data {
            total += entry_bound(k, json_bound(v));
        }
        if !self.meta.is_empty() {
            total += entry_bound(META_KEY, self.meta.json_bound());
        }
        self.bound = Some(total);
        total
    }

    /// The data or the meta changed wholesale: both weights are redone on
    /// the next insert.
    fn forget_size(&mut self) {
        self.size = None;
        self.bound = None;
    }

    fn set_meta(&mut self, f: impl FnOnce(&mut Meta)) {
        f(&mut self.meta);
        self.meta_changed = true;
        self.forget_size();
    }

    /// Every field, for a store that writes the whole session.
    fn full_data(&self) -> Data {
        let mut data = self.data.clone();
        data.insert(META_KEY.to_owned(), self.meta.to_value());
        data
    }
}

/// Counts bytes without keeping them.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn json_len(v: &impl Serialize) -> usize {
    let mut c = Counter(0);
    // Writing to a counter cannot fail, and a Value always serializes.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The bytes one entry adds to the stored JSON object: `"key":value,`.
fn entry_len(key: &str, value: &impl Serialize) -> usize {
    json_len(&key) + 1 + json_len(value) + 1
}

/// An upper bound of `json_len` of a string: its quotes, and every byte
/// escaped in the longest form (`\u00XX`).
fn str_bound(s: &str) -> usize {
    2 + 6 * s.len()
}

/// An upper bound of `json_len(v)`, found without writing anything but
/// numbers (whose text is exact and short): never below it.
fn json_bound(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(n) => json_len(n),
        Value::String(s) => str_bound(s),
        // Brackets and one comma per element (one too many: a bound).
        Value::Array(items) => 2 + items.iter().map(|i| json_bound(i) + 1).sum::<usize>(),
        // Braces, and per member its key, a colon and a comma.
        Value::Object(members) => {
            2 + members
                .iter()
                .map(|(k, v)| str_bound(k) + 1 + json_bound(v) + 1)
                .sum::<usize>()
        }
    }
}

/// [`entry_len`]'s upper bound, for a value whose bound is `value`.
fn entry_bound(key: &str, value: usize) -> usize {
    str_bound(key) + 1 + value + 1
}

/// The decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// What [`Session::save`] did, which tells the layer which cookie to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Nothing to store (never loaded, or unchanged and fresh enough).
    Unchanged,
    /// A new session was stored under a new id (a first save, or the id
    /// was rotated): send the cookie.
    Created {
        /// The new id.
        id: SessionId,
    },
    /// Changes were saved or the expiry moved: refresh the cookie.
    Refreshed {
        /// The session id.
        id: SessionId,
    },
    /// The session is gone from the store (logged out, cleared, or deleted
    /// by someone else while this request ran): send a removal cookie.
    Deleted,
}

impl Session {
    /// A new, empty session in `store` with the timeouts and size limit of
    /// `config`, loaded (nothing to read) and not yet stored:
    /// [`save`](Session::save) creates it if it holds any data.
    pub fn new(store: Arc<dyn SessionStore>, config: &SessionConfig) -> Self {
        let s = Self::lazy(store, Vec::new(), Arc::new(config.clone()), None, None);
        s.inner.state.lock().loaded = true;
        s
    }

    /// The session `id` from `store`, or `None` if it is unknown, expired
    /// (idle or absolute timeout of `config`) or undecodable.
    pub async fn load(
        store: Arc<dyn SessionStore>,
        id: &SessionId,
        config: &SessionConfig,
    ) -> Result<Option<Self>> {
        let s = Self::lazy(
            store,
            vec![id.clone()],
            Arc::new(config.clone()),
            None,
            None,
        );
        s.ensure_loaded().await?;
        Ok(s.id().is_some().then_some(s))
    }

    /// A handle that reads one of the `presented` ids from the store on
    /// first use (none that loads gives a fresh session).
    pub(crate) fn lazy(
        store: Arc<dyn SessionStore>,
        presented: Vec<SessionId>,
        config: Arc<SessionConfig>,
        user_agent: Option<HeaderValue>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Self {
        Session {
            inner: Arc::new(Inner {
                store,
                presented,
                config,
                user_agent,
                client_ip,
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
    ///
    /// When the request presented several cookies with the session name
    /// (one may have been planted from a sibling domain), the session is
    /// the one that loads; if more than one loads, none is trusted and the
    /// request gets a fresh session. A stored record that cannot be decoded
    /// is deleted and logged, and the request gets a fresh session; a
    /// session past its absolute timeout is deleted.
    pub async fn ensure_loaded(&self) -> Result<()> {
        if self.inner.state.lock().loaded {
            return Ok(());
        }
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            target: "covet::session",
            "covet.session",
            op = "load",
            session = tracing::field::Empty,
        );
        if !span.is_disabled()
            && let Some(id) = self.inner.presented.first()
        {
            // A salted hash, never the id.
            span.record("session", self.event_id(id));
        }
        // Boxed: the state machine is large, and it would otherwise make
        // every handler future that extracts a session a large allocation.
        Box::pin(self.load_from_store()).instrument(span).await
    }

    async fn load_from_store(&self) -> Result<()> {
        let _io = self.inner.io.lock().await;
        if self.inner.state.lock().loaded {
            return Ok(());
        }
        let store = &self.inner.store;
        let mut found: Option<(SessionId, Record)> = None;
        let mut ambiguous = false;
        for (i, id) in self.inner.presented.iter().enumerate() {
            if self.inner.presented[..i].contains(id) {
                continue;
            }
            match store.load(id).await {
                Ok(Some(record)) => {
                    if found.is_some() {
                        ambiguous = true;
                    } else {
                        found = Some((id.clone(), record));
                    }
                }
                Ok(None) => {
                    security::unknown_id(&self.inner.config, id, self.inner.client_ip);
                }
                Err(Error::CorruptRecord {
                    store: name,
                    source,
                }) => {
                    self.record(Event::CorruptRecord);
                    security_event!(
                        warn,
                        "corrupt_record",
                        session = %self.event_id(id),
                        store = name,
                        error = %source,
                        "a stored session does not decode; deleting it and starting afresh"
                    );
                    if let Err(e) = store.delete(id).await {
                        e.log("deleting an undecodable session failed");
                    }
                }
                Err(e) => {
                    if matches!(e, Error::Store { .. }) {
                        self.record(Event::StoreError);
                    }
                    return Err(e);
                }
            }
        }
        if ambiguous {
            security_event!(
                warn,
                "ambiguous_cookies",
                "several session cookies name live sessions; trusting none of them"
            );
            found = None;
        }
        let mut loaded = None;
        if let Some((id, mut record)) = found {
            let meta = Meta::from_owned(record.data.remove(META_KEY));
            let absolute = self.inner.config.absolute_timeout();
            let now = SystemTime::now();
            let expired = meta.created_ms.is_some_and(|c| {
                from_ms(c)
                    .checked_add(absolute)
                    .is_some_and(|end| end <= now)
            });
            // Hashed only for sessions that recorded a binding.
            let mismatch = self.inner.config.binding() != Binding::Off
                && meta.binding.as_ref().is_some_and(|stored| {
                    security::fingerprint_matches(
                        &self.inner.config,
                        self.inner.user_agent.as_ref(),
                        self.inner.client_ip,
                        stored,
                    ) != Some(true)
                });
            if record.expires_at <= now {
                // A store that returns a record past its deadline (lazy
                // expiry, a TTL rounded up): the server still refuses it.
                self.record(Event::ExpiredIdle);
                security_event!(
                    info,
                    "expired",
                    session = %self.event_id(&id),
                    reason = "idle",
                    "session past its idle timeout; deleting it"
                );
                store.delete(&id).await?;
            } else if expired {
                self.record(Event::ExpiredAbsolute);
                security_event!(
                    info,
                    "expired",
                    session = %self.event_id(&id),
                    reason = "absolute",
                    "session past its absolute timeout; deleting it"
                );
                store.delete(&id).await?;
            } else if mismatch {
                self.record(Event::BindingMismatch);
                let strict = self.inner.config.binding() == Binding::Strict;
                security_event!(
                    warn,
                    "binding_mismatch",
                    session = %self.event_id(&id),
                    client = ?self.inner.client_ip,
                    action = if strict { "deleted" } else { "logged" },
                    "the session is used by another client than the one it was bound to"
                );
                if strict {
                    store.delete(&id).await?;
                } else {
                    loaded = Some((id, record, meta));
                }
            } else {
                loaded = Some((id, record, meta));
            }
        }
        if loaded.is_some() {
            self.record(Event::Loaded);
        }
        let mut st = self.inner.state.lock();
        if let Some((id, record, meta)) = loaded {
            st.id = Some(id);
            st.data = record.data;
            st.forget_size();
            st.expires_at = Some(record.expires_at);
            st.meta = meta;
            let idle = u64::try_from(self.inner.config.idle_timeout().as_millis()).ok();
            if st.meta.created_ms.is_none() || st.meta.idle_ms != idle {
                // Stored before creation times were kept, or under another
                // idle timeout: record them with the next write.
                st.set_meta(|m| {
                    m.created_ms.get_or_insert(to_ms(SystemTime::now()));
                    m.idle_ms = idle;
                });
            }
        }
        st.loaded = true;
        Ok(())
    }

    /// Counts `event` in the layer's statistics.
    pub(crate) fn record(&self, event: Event) {
        self.inner.config.counters.record(event);
    }

    /// A salted hash of `id` for events.
    fn event_id(&self, id: &SessionId) -> String {
        security::event_id(&self.inner.config, id)
    }

    /// This request's client binding fingerprint (`None` when binding is
    /// off).
    fn client_fingerprint(&self) -> Option<String> {
        security::fingerprint(
            &self.inner.config,
            self.inner.user_agent.as_ref(),
            self.inner.client_ip,
        )
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

    /// Reads the raw value at `key` without copying it.
    pub(crate) fn with_value<R>(
        &self,
        key: &str,
        f: impl FnOnce(Option<&serde_json::Value>) -> R,
    ) -> Result<R> {
        let st = self.inner.state.lock();
        st.loaded()?;
        Ok(f(st.data.get(key)))
    }

    /// The raw JSON value at `key`.
    pub fn get_value(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let st = self.inner.state.lock();
        st.loaded()?;
        Ok(st.data.get(key).cloned())
    }

    /// Stores `value` at `key`. Inserting a value equal to the stored one
    /// records no change. Keys starting with `__covet` are
    /// [reserved](Error::ReservedKey); an insert that would make the
    /// session larger than its size limit is [`Error::TooLarge`] and
    /// changes nothing; after [`logout`](Session::logout) inserts are
    /// ignored.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        if is_reserved(key) {
            return Err(Error::ReservedKey(key.to_owned()));
        }
        self.insert_internal(key, value)
    }

    /// [`insert`](Session::insert) without the reserved-key check, for
    /// covet's own keys (flash messages, the CSRF secret).
    pub(crate) fn insert_internal<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        let v = serde_json::to_value(&value).map_err(|source| Error::Encode {
            key: key.to_owned(),
            source,
        })?;
        let mut st = self.inner.state.lock();
        st.loaded()?;
        if st.ended {
            return Ok(());
        }
        let old_bound = match st.data.get(key) {
            Some(old) if *old == v => return Ok(()),
            Some(old) => entry_bound(key, json_bound(old)),
            None => 0,
        };
        let limit = self.inner.config.max_size();
        let bound = st.bound() - old_bound + entry_bound(key, json_bound(&v));
        // Within the limit even at its upper bound: no exact weighing. Only
        // a session near the limit is weighed exactly.
        let size = if bound <= limit {
            None
        } else {
            let old = st.data.get(key).map_or(0, |o| entry_len(key, o));
            Some(st.size() - old + entry_len(key, &v))
        };
        if let Some(size) = size.filter(|&s| s > limit) {
            let session = st.id.as_ref().map(|id| self.event_id(id));
            drop(st);
            security_event!(
                warn,
                "oversized",
                session = session.as_deref().unwrap_or("new"),
                size,
                limit,
                "an insert would pass the session size limit; refused"
            );
            return Err(Error::TooLarge { size, limit });
        }
        st.size = size;
        st.bound = Some(bound);
        if !st.removed.is_empty() {
            st.removed.remove(key);
        }
        if !st.changed.contains(key) {
            st.changed.insert(key.to_owned());
        }
        match st.data.get_mut(key) {
            Some(slot) => *slot = v,
            None => {
                st.data.insert(key.to_owned(), v);
            }
        }
        Ok(())
    }

    /// Removes `key` and returns its value decoded as `T`. The key is
    /// removed even if decoding fails. Keys starting with `__covet` are
    /// [reserved](Error::ReservedKey).
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        if is_reserved(key) {
            return Err(Error::ReservedKey(key.to_owned()));
        }
        self.remove_internal(key)
    }

    pub(crate) fn remove_internal<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let mut st = self.inner.state.lock();
        st.loaded()?;
        if st.ended {
            return Ok(None);
        }
        let Some(v) = st.data.remove(key) else {
            return Ok(None);
        };
        if let Some(size) = st.size {
            st.size = Some(size.saturating_sub(entry_len(key, &v)));
        }
        if let Some(bound) = st.bound {
            st.bound = Some(bound.saturating_sub(entry_bound(key, json_bound(&v))));
        }
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

    /// The keys present, sorted, without covet's own (empty before
    /// loading).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .inner
            .state
            .lock()
            .data
            .keys()
            .filter(|k| !is_reserved(k))
            .cloned()
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Whether the session holds no data (`true` before loading).
    pub fn is_empty(&self) -> bool {
        self.inner.state.lock().data.is_empty()
    }

    /// Removes every key (and the logged-in user). If nothing is inserted
    /// afterwards, saving deletes the session from the store and the layer
    /// sends a removal cookie. Works before loading too (the presented id
    /// is then deleted). To end a login, prefer [`logout`](Session::logout):
    /// later writes cannot undo it.
    pub fn clear(&self) {
        let mut st = self.inner.state.lock();
        if !st.loaded {
            st.loaded = true;
            st.id = self.inner.presented.first().cloned();
        }
        st.data.clear();
        st.changed.clear();
        st.removed.clear();
        let created = st.meta.created_ms;
        st.meta = Meta {
            created_ms: created,
            ..Meta::default()
        };
        st.forget_size();
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

    /// When the session was created (or its user logged in): what the
    /// absolute timeout counts from. `None` before it is stored.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.inner.state.lock().meta.created_ms.map(from_ms)
    }

    /// The idle timeout this handle applies when saving.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.config.idle_timeout()
    }

    /// The configuration this handle applies.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Stores the data under a fresh id at the next save, and deletes the
    /// old record: a cookie captured before (or planted by an attacker)
    /// then loads nothing. Call it on every privilege change;
    /// [`login`](Session::login) calls it for you.
    pub fn cycle_id(&self) {
        let mut st = self.inner.state.lock();
        if !st.ended {
            st.rotate = true;
            // A new id gets a new CSRF secret.
            if st.data.remove(CSRF_SECRET_KEY).is_some() {
                st.removed.insert(CSRF_SECRET_KEY.to_owned());
                st.forget_size();
            }
        }
    }

    /// Records that `user_id` logged in: the id is cycled, the user
    /// agent recorded, the creation time (for the absolute timeout)
    /// restarted, and when the session belonged to a different user it
    /// starts from empty data (Django's rule). Call it on every login.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use covet_session::{MemoryStore, Session, SessionConfig};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let session = Session::new(Arc::new(MemoryStore::new()), &SessionConfig::default());
    /// session.insert("cart", vec!["book"]).unwrap();
    /// session.login("alice").unwrap();
    /// assert_eq!(session.user_id().as_deref(), Some("alice"));
    /// assert!(session.contains("cart"), "the same user keeps the data");
    /// session.login("bob").unwrap();
    /// assert!(!session.contains("cart"), "another user starts afresh");
    /// # });
    /// ```
    pub fn login(&self, user_id: &str) -> Result<()> {
        let agent = self
            .inner
            .user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut st = self.inner.state.lock();
        st.loaded()?;
        if st.ended {
            return Ok(());
        }
        if st.meta.user.as_deref().is_some_and(|u| u != user_id) {
            st.data.clear();
            st.changed.clear();
            st.removed.clear();
            st.cleared = true;
        }
        // A new login starts without the anonymous session's CSRF secret.
        if st.data.remove(CSRF_SECRET_KEY).is_some() {
            st.removed.insert(CSRF_SECRET_KEY.to_owned());
        }
        let now = to_ms(SystemTime::now());
        let binding = self.client_fingerprint();
        st.set_meta(|m| {
            m.user = Some(user_id.to_owned());
            m.created_ms = Some(now);
            m.agent = agent;
            m.binding = binding;
        });
        st.rotate = true;
        let session = st.id.as_ref().map(|id| self.event_id(id));
        drop(st);
        security_event!(
            info,
            "logged_in",
            session = session.as_deref().unwrap_or("new"),
            "a user logged in; the session id rotates"
        );
        Ok(())
    }

    /// The user recorded by [`login`](Session::login), if any.
    pub fn user_id(&self) -> Option<String> {
        self.inner.state.lock().meta.user.clone()
    }

    /// Ends every other session of this session's user (the other devices
    /// listed by [`SessionStore::list_user_sessions`]) and keeps this one;
    /// returns how many ended. 0 when no user is logged in or the session
    /// is not stored yet.
    ///
    /// ```
    /// use covet_session::{MemoryStore, Session, SessionConfig};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = std::sync::Arc::new(MemoryStore::new());
    /// let config = SessionConfig::default();
    /// let phone = Session::new(store.clone(), &config);
    /// phone.login("alice")?;
    /// phone.save().await?;
    /// let laptop = Session::new(store.clone(), &config);
    /// laptop.login("alice")?;
    /// laptop.save().await?;
    /// assert_eq!(laptop.end_other_sessions().await?, 1);
    /// # Ok::<(), covet_session::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn end_other_sessions(&self) -> Result<u64> {
        self.ensure_loaded().await?;
        let (Some(user), Some(id)) = (self.user_id(), self.id()) else {
            return Ok(0);
        };
        self.inner
            .store
            .delete_other_user_sessions(&user, &id)
            .await
    }

    /// Ends the session: at the end of the request its record is deleted
    /// and a removal cookie (with the same attributes) is sent, with
    /// `Clear-Site-Data` if [configured](SessionConfig::with_clear_site_data).
    /// Writes later in the same request are ignored, and a slower request
    /// that loaded the session before cannot bring it back.
    pub fn logout(&self) {
        let mut st = self.inner.state.lock();
        if !st.loaded {
            st.loaded = true;
            st.id = self.inner.presented.first().cloned();
        }
        st.data.clear();
        st.changed.clear();
        st.removed.clear();
        st.meta = Meta::default();
        st.forget_size();
        st.rotate = false;
        st.cleared = true;
        st.ended = true;
        st.logged_out = true;
        let session = st.id.as_ref().map(|id| self.event_id(id));
        drop(st);
        security_event!(
            info,
            "logged_out",
            session = session.as_deref().unwrap_or("none"),
            "the session was logged out"
        );
    }

    /// Whether [`logout`](Session::logout) was called (or the session was
    /// found deleted) during this request.
    pub fn is_ended(&self) -> bool {
        self.inner.state.lock().ended
    }

    /// Stores what changed; see [`SaveOutcome`]. A session that was not
    /// modified is only renewed (its expiry written) once per
    /// [renewal interval](SessionConfig::with_renewal_interval). A session
    /// that existed when it was loaded and is gone now (logged out, or
    /// deleted, meanwhile) is never re-created: the outcome is
    /// [`Deleted`](SaveOutcome::Deleted). The outcome is also recorded for
    /// the `SessionLayer`, which sends the matching cookie even when the
    /// save happened inside a handler.
    pub async fn save(&self) -> Result<SaveOutcome> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            target: "covet::session",
            "covet.session",
            op = "save",
            session = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        if !span.is_disabled()
            && let Some(id) = self.inner.state.lock().id.clone()
        {
            span.record("session", self.event_id(&id));
        }
        let result = self.save_serialized().instrument(span.clone()).await;
        if !span.is_disabled() {
            let outcome = match &result {
                Ok(SaveOutcome::Unchanged) => "unchanged",
                Ok(SaveOutcome::Created { .. }) => "created",
                Ok(SaveOutcome::Refreshed { .. }) => "saved",
                Ok(SaveOutcome::Deleted) => "deleted",
                Err(_) => "error",
            };
            span.record("outcome", outcome);
        }
        result
    }

    async fn save_serialized(&self) -> Result<SaveOutcome> {
        let _io = self.inner.io.lock().await;
        let outcome = self.save_locked().await.inspect_err(|e| {
            if matches!(e, Error::Store { .. }) {
                self.record(Event::StoreError);
            }
        })?;
        let mut st = self.inner.state.lock();
        match &outcome {
            SaveOutcome::Created { id } => st.cookie = Some(CookieAction::Set(id.clone())),
            SaveOutcome::Refreshed { id } if st.send_cookie => {
                st.cookie = Some(CookieAction::Set(id.clone()));
            }
            SaveOutcome::Refreshed { .. } => {}
            SaveOutcome::Deleted => st.cookie = Some(CookieAction::Remove),
            SaveOutcome::Unchanged => {}
        }
        Ok(outcome)
    }

    /// Whether [`logout`](Session::logout) was called in this request.
    pub(crate) fn logged_out(&self) -> bool {
        self.inner.state.lock().logged_out
    }

    /// The cookie the saves so far call for, taken (for the layer).
    pub(crate) fn take_cookie_action(&self) -> Option<CookieAction> {
        self.inner.state.lock().cookie.take()
    }

    async fn save_locked(&self) -> Result<SaveOutcome> {
        let store = &self.inner.store;
        let config = &self.inner.config;
        let now = SystemTime::now();

        enum Plan {
            Nothing,
            Delete(Option<SessionId>, bool),
            Create(Data),
            Rotate(SessionId, Data),
            Save(SessionId, Changes),
        }
        let (plan, expires_at) = {
            let mut st = self.inner.state.lock();
            let created = match st.meta.created_ms {
                Some(c) => from_ms(c),
                None => now,
            };
            // Saturating: a configuration that skipped `validate` never
            // panics here.
            let later = |base: SystemTime, d: Duration| {
                base.checked_add(d)
                    .unwrap_or(base + crate::config::MAX_TIMEOUT)
            };
            let expires_at =
                later(now, config.idle_timeout()).min(later(created, config.absolute_timeout()));
            let plan = if !st.loaded {
                Plan::Nothing
            } else if st.ended {
                // A logout with a cookie presented removes it even if the
                // session was not found.
                let presented = !self.inner.presented.is_empty();
                if st.cookie == Some(CookieAction::Remove) && st.id.is_none() {
                    Plan::Nothing
                } else {
                    Plan::Delete(st.id.clone(), presented)
                }
            } else if st.cleared && !st.has_content() {
                Plan::Delete(st.id.clone(), false)
            } else {
                match st.id.clone() {
                    None if !st.has_content() => Plan::Nothing,
                    None => {
                        let idle = u64::try_from(config.idle_timeout().as_millis()).ok();
                        st.meta.created_ms.get_or_insert(to_ms(now));
                        st.meta.idle_ms = idle;
                        st.meta.cookie_ms = Some(to_ms(now));
                        if st.meta.binding.is_none() {
                            st.meta.binding = self.client_fingerprint();
                        }
                        Plan::Create(st.full_data())
                    }
                    Some(id) if st.rotate => {
                        st.meta.cookie_ms = Some(to_ms(now));
                        Plan::Rotate(id, st.full_data())
                    }
                    Some(id) => {
                        let renew = self.needs_renewal(st.expires_at, expires_at, now);
                        if st.is_modified() || renew {
                            // The cookie's id is unchanged: it is sent again
                            // (its Max-Age moved) at most once per renewal
                            // interval, as the expiry is written. A
                            // client-side store's value changes every time.
                            let interval = u64::try_from(config.renewal_interval().as_millis())
                                .unwrap_or(u64::MAX);
                            let now_ms = to_ms(now);
                            st.send_cookie = store.is_client_side()
                                || st
                                    .meta
                                    .cookie_ms
                                    .is_none_or(|k| now_ms.saturating_sub(k) >= interval);
                            if st.send_cookie && !store.is_client_side() {
                                st.set_meta(|m| m.cookie_ms = Some(now_ms));
                            }
                            let mut changes = Changes::new(expires_at);
                            changes.extend = renew || st.cleared || st.send_cookie;
                            changes.cleared = st.cleared;
                            changes.removed = st.removed.clone();
                            if st.cleared {
                                // The store drops everything: write it all.
                                changes.set = st.full_data();
                            } else {
                                for k in &st.changed {
                                    if let Some(v) = st.data.get(k) {
                                        changes.set.insert(k.clone(), v.clone());
                                    }
                                }
                                if st.meta_changed {
                                    changes.set.insert(META_KEY.to_owned(), st.meta.to_value());
                                }
                            }
                            Plan::Save(id, changes)
                        } else {
                            Plan::Nothing
                        }
                    }
                }
            };
            (plan, expires_at)
        };

        let mut extended = true;
        let outcome = match plan {
            Plan::Nothing => return Ok(SaveOutcome::Unchanged),
            Plan::Delete(id, presented) => {
                if let Some(id) = &id {
                    store.delete(id).await?;
                    self.record(Event::Deleted);
                }
                let mut st = self.inner.state.lock();
                st.id = None;
                st.expires_at = None;
                Self::reset(&mut st);
                return Ok(if id.is_some() || presented {
                    SaveOutcome::Deleted
                } else {
                    SaveOutcome::Unchanged
                });
            }
            Plan::Create(data) => {
                let id = store.create(&Record::new(data, expires_at)).await?;
                self.record(Event::Created);
                security_event!(info, "created", session = %self.event_id(&id), "a session was created");
                SaveOutcome::Created { id }
            }
            Plan::Rotate(old, data) => {
                // Never bring back a session deleted since it was loaded.
                if store.load(&old).await?.is_none() {
                    return Ok(self.gone(&old));
                }
                let id = store.create(&Record::new(data, expires_at)).await?;
                store.delete(&old).await?;
                self.record(Event::Rotated);
                security_event!(
                    info,
                    "rotated",
                    session = %self.event_id(&id),
                    previous = %self.event_id(&old),
                    "the session id was rotated"
                );
                SaveOutcome::Created { id }
            }
            Plan::Save(id, changes) => {
                extended = changes.extend;
                match store.save(&id, &changes).await? {
                    Some(id) => {
                        self.record(Event::Saved);
                        SaveOutcome::Refreshed { id }
                    }
                    None => return Ok(self.gone(&id)),
                }
            }
        };
        let mut st = self.inner.state.lock();
        if let SaveOutcome::Created { id } | SaveOutcome::Refreshed { id } = &outcome {
            st.id = Some(id.clone());
        }
        if extended {
            st.expires_at = Some(expires_at);
        }
        Self::reset(&mut st);
        Ok(outcome)
    }

    /// The session vanished from the store while this request ran (a
    /// logout, an expiry, a revocation): it stays gone.
    fn gone(&self, id: &SessionId) -> SaveOutcome {
        security_event!(
            info,
            "revoked",
            session = %self.event_id(id),
            "the session was deleted while the request ran; not re-creating it"
        );
        let mut st = self.inner.state.lock();
        st.id = None;
        st.expires_at = None;
        st.data.clear();
        st.meta = Meta::default();
        st.forget_size();
        st.ended = true;
        Self::reset(&mut st);
        SaveOutcome::Deleted
    }

    fn reset(st: &mut State) {
        st.changed.clear();
        st.removed.clear();
        st.cleared = false;
        st.rotate = false;
        st.meta_changed = false;
    }

    /// Whether an unchanged session is due a renewal write: its stored
    /// expiry lags the one a save would write by the renewal interval.
    fn needs_renewal(
        &self,
        stored: Option<SystemTime>,
        wanted: SystemTime,
        _now: SystemTime,
    ) -> bool {
        let interval = self.inner.config.renewal_interval();
        match stored {
            Some(stored) => wanted
                .duration_since(stored)
                .is_ok_and(|lag| lag >= interval),
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

    fn config() -> SessionConfig {
        SessionConfig::default()
    }

    #[test]
    fn meta_writes_and_reads_one_form() {
        let full = Meta {
            created_ms: Some(1),
            idle_ms: Some(2),
            cookie_ms: None,
            user: Some("alice \"a\"".into()),
            agent: None,
            binding: Some("fp".into()),
        };
        for meta in [full, Meta::default()] {
            let value = meta.to_value();
            assert_eq!(serde_json::to_value(&meta).unwrap(), value);
            assert_eq!(json_len(&meta), json_len(&value));
            assert_eq!(Meta::from_owned(Some(value.clone())), meta);
            assert_eq!(Meta::from_value(Some(&value)), meta);
        }
        // Shapes no version wrote decode as far as they go.
        let short = Meta {
            created_ms: Some(5),
            ..Meta::default()
        };
        assert_eq!(Meta::from_owned(Some(serde_json::json!([5]))), short);
        let mistyped = Meta {
            created_ms: Some(5),
            agent: Some("u".into()),
            ..Meta::default()
        };
        assert_eq!(
            Meta::from_owned(Some(serde_json::json!([5, "x", null, 7, "u"]))),
            mistyped
        );
        for odd in [serde_json::json!({"a": 1}), serde_json::json!("text")] {
            assert_eq!(Meta::from_owned(Some(odd)), Meta::default());
        }
        assert_eq!(Meta::from_owned(None), Meta::default());
    }

    #[tokio::test]
    async fn tracks_changes_and_ignores_equal_inserts() {
        let store = store();
        let s = Session::new(store.clone(), &config());
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
        let again = Session::load(store.clone(), &id, &config())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.get::<i32>("a").unwrap(), Some(2));
        assert_eq!(again.get::<String>("b").unwrap(), None);
        assert!(matches!(
            again.get::<String>("a"),
            Err(Error::Decode { .. })
        ));
        again.clear();
        assert_eq!(again.save().await.unwrap(), SaveOutcome::Deleted);
        assert!(
            Session::load(store, &id, &config())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn lazy_handles_refuse_use_before_loading() {
        let s = Session::lazy(store(), Vec::new(), Arc::new(config()), None, None);
        assert!(matches!(s.get::<u8>("a"), Err(Error::NotLoaded)));
        assert!(matches!(s.insert("a", 1), Err(Error::NotLoaded)));
        assert_eq!(s.save().await.unwrap(), SaveOutcome::Unchanged);
        s.ensure_loaded().await.unwrap();
        assert_eq!(s.get::<u8>("a").unwrap(), None);
    }

    #[tokio::test]
    async fn clear_then_insert_replaces_the_data() {
        let store = store();
        let s = Session::new(store.clone(), &config());
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
        assert_eq!(r.data.get("b"), Some(&serde_json::json!(2)));
        assert!(!r.data.contains_key("a"));
        assert!(
            r.data.contains_key(META_KEY),
            "covet's fields survive a clear"
        );
    }

    /// Any JSON value, with the strings that escape the most.
    fn any_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let text = "(\\PC|[\\x00-\\x1f\"\\\\\u{7f}\u{2028}\u{10348}]){0,12}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(text, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn the_size_bound_never_underestimates(v in any_value()) {
            proptest::prop_assert!(json_bound(&v) >= json_len(&v));
        }

        #[test]
        fn the_meta_bound_never_underestimates(
            created in proptest::option::of(proptest::num::u64::ANY),
            user in proptest::option::of("(\\PC|[\\x00-\\x1f\"\\\\]){0,12}"),
        ) {
            let meta = Meta {
                created_ms: created,
                idle_ms: created.map(|c| c / 7),
                cookie_ms: None,
                agent: user.clone().map(|u| u.repeat(3)),
                user,
                binding: Some("d2M-80X6UFkRdz_FeP9M-g".into()),
            };
            proptest::prop_assert!(meta.json_bound() >= json_len(&meta));
        }
    }

    #[tokio::test]
    async fn the_size_limit_is_exact_where_the_bound_is_not() {
        // {"k":"…"} weighs the string's length plus 9 (a comma per entry).
        let s = Session::new(store(), &config().with_max_size(100));
        s.insert("k", "a".repeat(91)).unwrap();
        let err = s.insert("k", "a".repeat(92)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    size: 101,
                    limit: 100
                }
            ),
            "{err}"
        );
        assert_eq!(s.get::<String>("k").unwrap(), Some("a".repeat(91)));
        // Escapes count as written: "\n" is two bytes.
        s.insert("k", "\n".repeat(45)).unwrap();
        assert!(s.insert("k", "\n".repeat(46)).is_err());
        // Inserts accepted on the bound alone keep the total exact.
        let s = Session::new(store(), &config().with_max_size(1000));
        for i in 0..9 {
            s.insert(&format!("k{i}"), "b".repeat(90)).unwrap();
        }
        // 2 + 9 * (4 + 1 + 92 + 1) = 884; an entry of 116 reaches 1000.
        s.insert("k9", "c".repeat(108)).unwrap();
        assert!(matches!(
            s.insert("k10", true),
            Err(Error::TooLarge {
                size: 1011,
                limit: 1000
            })
        ));
        s.remove::<String>("k9").unwrap();
        s.insert("k10", true).unwrap();
    }

    #[tokio::test]
    async fn reserved_keys_and_size_limits() {
        let s = Session::new(store(), &config().with_max_size(100));
        assert!(matches!(
            s.insert("__covet_user", "mallory"),
            Err(Error::ReservedKey(_))
        ));
        assert!(matches!(
            s.remove::<String>("__covet.flash"),
            Err(Error::ReservedKey(_))
        ));
        s.insert("small", "x").unwrap();
        let err = s.insert("big", "y".repeat(200)).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
        assert!(!s.contains("big"));
        assert_eq!(s.keys(), vec!["small".to_owned()]);
        // Replacing a value counts the difference.
        s.insert("small", "z".repeat(40)).unwrap();
        s.remove::<String>("small").unwrap();
        s.insert("other", "w".repeat(60)).unwrap();
    }

    #[tokio::test]
    async fn a_session_deleted_meanwhile_is_never_recreated() {
        let store = store();
        let first = Session::new(store.clone(), &config());
        first.insert("user", "alice").unwrap();
        first.save().await.unwrap();
        let id = first.id().unwrap();
        let slow = Session::load(store.clone(), &id, &config())
            .await
            .unwrap()
            .unwrap();
        store.delete(&id).await.unwrap();
        slow.insert("late", true).unwrap();
        assert_eq!(slow.save().await.unwrap(), SaveOutcome::Deleted);
        assert!(slow.id().is_none());
        slow.insert("later", true).unwrap();
        assert_eq!(slow.save().await.unwrap(), SaveOutcome::Unchanged);
        assert!(store.load(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unvalidated_huge_timeout_never_panics() {
        let config = config().with_idle_timeout(Duration::MAX);
        let s = Session::new(store(), &config);
        s.insert("a", 1).unwrap();
        assert!(matches!(
            s.save().await.unwrap(),
            SaveOutcome::Created { .. }
        ));
    }

    #[tokio::test]
    async fn rotation_moves_the_data_to_a_new_id() {
        let store = store();
        let s = Session::new(store.clone(), &config());
        s.insert("cart", 3).unwrap();
        s.save().await.unwrap();
        let old = s.id().unwrap();
        s.cycle_id();
        let SaveOutcome::Created { id: new } = s.save().await.unwrap() else {
            panic!("a new id")
        };
        assert_ne!(new, old);
        assert!(store.load(&old).await.unwrap().is_none());
        let again = Session::load(store.clone(), &new, &config())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.get::<u8>("cart").unwrap(), Some(3));
        again.login("alice").unwrap();
        again.save().await.unwrap();
        assert_eq!(again.user_id().as_deref(), Some("alice"));
        assert_ne!(again.id().unwrap(), new);
    }
}
