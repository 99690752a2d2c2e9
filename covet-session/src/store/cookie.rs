//! [`CookieStore`]: the whole session travels in its cookie, sealed with a
//! server key.
//!
//! The cookie value is the session: its data, its expiry (milliseconds since
//! the Unix epoch) and a format version, written as JSON and sealed with the
//! private jar of the [`cookie`] crate (AES-256-GCM: the client can neither
//! read nor change it) or, in [`CookieMode::Signed`], its signed jar
//! (HMAC-SHA256: the client can read the data but not change it). Either way
//! the seal also covers a fixed internal name, so a value the application
//! seals for another purpose with the same key is not a session.
//!
//! There is nothing to run on the server, and nothing to clean up; the
//! price is what a client-side store cannot do:
//!
//! - A session must fit in one cookie: the cookie name, `=` and the sealed
//!   value together at most [`DEFAULT_MAX_COOKIE_SIZE`] bytes (the size
//!   RFC 6265 asks every browser to support). A larger session is
//!   [`Error::CookieTooLarge`]: nothing is sent, never a truncated cookie.
//! - `delete` cannot revoke a value: the `SessionLayer` sends a removal
//!   cookie, but a copy of the old value stays valid until the expiry sealed
//!   inside it. Keep the idle timeout short for sensitive sessions.
//! - Concurrent requests do not merge: each one answers with its own cookie,
//!   and the one the browser keeps last wins.
//!
//! ```
//! use std::sync::Arc;
//! use covet_session::store::cookie::{CookieStore, Key};
//! use covet_session::{Session, SessionStore};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store: Arc<dyn SessionStore> = Arc::new(CookieStore::new(Key::generate()));
//! let session = Session::new(store.clone(), &covet_session::SessionConfig::default());
//! session.insert("user_id", 42u64)?;
//! session.save().await?;
//! // The id is the sealed session: no server holds it.
//! let id = session.id().unwrap();
//! let again = Session::load(store, &id, &covet_session::SessionConfig::default()).await?.unwrap();
//! assert_eq!(again.get::<u64>("user_id")?, Some(42));
//! # Ok::<(), covet_session::Error>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;

use ::cookie::{Cookie, CookieJar};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

pub use ::cookie::Key;

use crate::config::DEFAULT_COOKIE_NAME;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::store::{Changes, Data, Record, SessionInfo, SessionStore};
use crate::time::{from_ms, to_ms};

/// Default limit on the cookie, name and `=` included: 4096 bytes, the
/// size RFC 6265 asks every browser to support.
pub const DEFAULT_MAX_COOKIE_SIZE: usize = 4096;

/// The shortest secret [`derive_key`] accepts: 32 bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The name the seal covers (the associated data of AES-GCM, or a prefix of
/// the HMAC input that is never sent). It is not the cookie's name, so
/// renaming the cookie keeps old values valid.
const SEAL_NAME: &str = "covet-session";
/// The signed jar computes `HMAC(SIGN_CONTEXT || value)`.
const SIGN_CONTEXT: &str = "covet-session=";
/// Version of the payload format inside the seal.
const FORMAT_VERSION: u8 = 1;
/// Random bytes a signed payload carries, so identical sessions get
/// different values.
const SALT_BYTES: usize = 16;
/// Length of the base64 HMAC-SHA256 the signed jar puts first.
const DIGEST_LEN: usize = 44;
/// No sealed value is shorter: an encrypted one is at least 12 bytes of
/// nonce and 16 of tag and a JSON object, a signed one the digest and a
/// payload.
const MIN_SEALED_LEN: usize = 48;
const STORE: &str = "cookie";

/// How a [`CookieStore`] seals its values.
///
/// ```
/// use covet_session::store::cookie::{CookieMode, CookieStore, Key};
/// let store = CookieStore::builder(Key::generate()).signed().build().unwrap();
/// assert_eq!(store.mode(), CookieMode::Signed);
/// assert_eq!(CookieMode::default(), CookieMode::Encrypted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieMode {
    /// Authenticated encryption (AES-256-GCM, the private jar): the client
    /// can neither read nor change the session.
    #[default]
    Encrypted,
    /// A signature (HMAC-SHA256, the signed jar): the data is readable by
    /// anyone holding the cookie (base64 of JSON) but cannot be changed.
    Signed,
}

/// Derives a [`Key`] from a secret of at least [`MIN_SECRET_LEN`] bytes
/// with HKDF-SHA256; a shorter secret is [`Error::SecretTooShort`].
///
/// The secret must be random (not a password): the derivation does not
/// stretch it. The same secret always derives the same key, so every
/// process of an application can share it.
///
/// ```
/// use covet_session::Error;
/// use covet_session::store::cookie::derive_key;
/// let secret = [7u8; 32]; // read it from your secret store instead
/// assert_eq!(derive_key(&secret).unwrap(), derive_key(&secret).unwrap());
/// assert!(matches!(
///     derive_key(b"too short"),
///     Err(Error::SecretTooShort { len: 9, min: 32 })
/// ));
/// ```
pub fn derive_key(secret: &[u8]) -> Result<Key> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(Error::SecretTooShort {
            len: secret.len(),
            min: MIN_SECRET_LEN,
        });
    }
    Ok(Key::derive_from(secret))
}

/// A client-side session store: each session lives in its cookie, sealed
/// with a [`Key`] (see [the module documentation](self) for what that
/// implies).
///
/// Every `create`, `save` and `touch` returns a new id, the new sealed value
/// ([`is_client_side`](SessionStore::is_client_side) is `true`), which the
/// `SessionLayer` sends as the cookie. `load` opens a value with the
/// current key, then with each old key; a value that does not open, or
/// whose sealed expiry has passed, is no session. `delete` and
/// `delete_expired` have nothing to do.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use covet_session::store::cookie::{CookieStore, Key};
/// use covet_session::store::{Changes, Data, Record};
/// use covet_session::SessionStore;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = CookieStore::new(Key::generate());
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let mut data = Data::new();
/// data.insert("user".into(), serde_json::json!(7));
/// let id = store.create(&Record::new(data, expires)).await.unwrap();
///
/// let mut changes = Changes::new(expires);
/// changes.set.insert("theme".into(), serde_json::json!("dark"));
/// let new_id = store.save(&id, &changes).await.unwrap().unwrap();
/// assert_ne!(new_id, id);
/// let record = store.load(&new_id).await.unwrap().unwrap();
/// assert_eq!(record.data["user"], 7);
/// assert_eq!(record.data["theme"], "dark");
/// # });
/// ```
#[derive(Clone)]
pub struct CookieStore {
    key: Key,
    old_keys: Vec<Key>,
    mode: CookieMode,
    /// The layer's cookie name ([`SessionStore::use_cookie_name`]): one
    /// name, in the `SessionConfig`, shared by every clone.
    cookie_name: Arc<RwLock<Arc<str>>>,
    max_cookie_size: usize,
}

impl fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieStore")
            .field("mode", &self.mode)
            .field("old_keys", &self.old_keys.len())
            .field("cookie_name", &self.cookie_name())
            .field("max_cookie_size", &self.max_cookie_size)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`CookieStore`], from [`CookieStore::builder`].
///
/// ```
/// use covet_session::store::cookie::{CookieStore, Key, derive_key};
/// # let (current_secret, last_years_secret) = ([1u8; 32], [2u8; 32]);
/// let store = CookieStore::builder(derive_key(&current_secret)?)
///     .old_key(derive_key(&last_years_secret)?)
///     .signed()
///     .max_cookie_size(4000)
///     .build()?;
/// // The layer tells the store its cookie name (from `SessionConfig`).
/// assert_eq!(&*store.cookie_name(), "id");
/// # Ok::<(), covet_session::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CookieStoreBuilder {
    key: Key,
    old_keys: Vec<Key>,
    mode: CookieMode,
    max_cookie_size: usize,
}

impl CookieStoreBuilder {
    /// Also opens values sealed with `key`, a key in use before the current
    /// one. New values are always sealed with the current key, so a session
    /// moves to it at its next save or touch.
    pub fn old_key(mut self, key: Key) -> Self {
        self.old_keys.push(key);
        self
    }

    /// Also opens values sealed with any of `keys` (tried in order, after
    /// the current key); see [`old_key`](Self::old_key).
    pub fn old_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.old_keys.extend(keys);
        self
    }

    /// Signs values instead of encrypting them ([`CookieMode::Signed`]).
    pub fn signed(mut self) -> Self {
        self.mode = CookieMode::Signed;
        self
    }

    /// Encrypts values ([`CookieMode::Encrypted`], the default).
    pub fn encrypted(mut self) -> Self {
        self.mode = CookieMode::Encrypted;
        self
    }

    /// The largest cookie, name and `=` and sealed value together (default
    /// [`DEFAULT_MAX_COOKIE_SIZE`]). Larger sessions are
    /// [`Error::CookieTooLarge`]. Raise it only if every browser you serve
    /// accepts larger cookies.
    pub fn max_cookie_size(mut self, bytes: usize) -> Self {
        self.max_cookie_size = bytes;
        self
    }

    /// Builds the store. Its cookie name is the `SessionLayer`'s, which
    /// the layer passes on ([`SessionStore::use_cookie_name`]); until then
    /// it is [`DEFAULT_COOKIE_NAME`].
    pub fn build(self) -> Result<CookieStore> {
        Ok(CookieStore {
            key: self.key,
            old_keys: self.old_keys,
            mode: self.mode,
            cookie_name: Arc::new(RwLock::new(Arc::from(DEFAULT_COOKIE_NAME))),
            max_cookie_size: self.max_cookie_size,
        })
    }
}

/// The characters a sealed value is made of: standard base64 with padding
/// (the jars) and URL-safe base64 (a signed payload).
fn is_sealed_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// What is sealed.
#[derive(Serialize)]
struct PayloadRef<'a> {
    v: u8,
    /// Expiry, milliseconds since the Unix epoch.
    e: u64,
    d: &'a Data,
    /// Random salt (signed mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

/// What is opened.
#[derive(Deserialize)]
struct Payload {
    v: u8,
    e: u64,
    d: Data,
}

impl CookieStore {
    /// An encrypting store with the default cookie name and size limit.
    ///
    /// ```
    /// use covet_session::store::cookie::{CookieMode, CookieStore, Key};
    /// let store = CookieStore::new(Key::generate());
    /// assert_eq!(store.mode(), CookieMode::Encrypted);
    /// ```
    pub fn new(key: Key) -> Self {
        Self::builder(key)
            .build()
            .expect("the default cookie name is a valid token")
    }

    /// A builder sealing with `key`, to add old keys, pick the mode or set
    /// the size limit.
    ///
    /// ```
    /// use covet_session::store::cookie::{CookieStore, Key};
    /// let (old, current) = (Key::generate(), Key::generate());
    /// let store = CookieStore::builder(current).old_keys([old]).build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn builder(key: Key) -> CookieStoreBuilder {
        CookieStoreBuilder {
            key,
            old_keys: Vec::new(),
            mode: CookieMode::default(),
            max_cookie_size: DEFAULT_MAX_COOKIE_SIZE,
        }
    }

    /// How this store seals values.
    pub fn mode(&self) -> CookieMode {
        self.mode
    }

    /// The cookie name counted in the size limit: the `SessionLayer`'s.
    pub fn cookie_name(&self) -> Arc<str> {
        self.cookie_name.read().clone()
    }

    /// The size limit of the cookie, name and `=` included.
    pub fn max_cookie_size(&self) -> usize {
        self.max_cookie_size
    }

    /// Seals `data` expiring at `expires_at` with the current key.
    fn seal(&self, data: &Data, expires_at: SystemTime) -> Result<SessionId> {
        let salt = match self.mode {
            CookieMode::Encrypted => None,
            CookieMode::Signed => {
                let mut bytes = [0u8; SALT_BYTES];
                getrandom::fill(&mut bytes).map_err(Error::Random)?;
                Some(URL_SAFE_NO_PAD.encode(bytes))
            }
        };
        let payload = PayloadRef {
            v: FORMAT_VERSION,
            e: to_ms(expires_at),
            d: data,
            r: salt,
        };
        let json = serde_json::to_string(&payload)
            .map_err(|e| Error::store(STORE, "encoding the session", e))?;
        let mut jar = CookieJar::new();
        let value = match self.mode {
            CookieMode::Encrypted => {
                jar.private_mut(&self.key).add(Cookie::new(SEAL_NAME, json));
                jar.get(SEAL_NAME).map(|c| c.value().to_owned())
            }
            CookieMode::Signed => {
                let inner = format!("{SIGN_CONTEXT}{}", URL_SAFE_NO_PAD.encode(json));
                jar.signed_mut(&self.key).add(Cookie::new(SEAL_NAME, inner));
                // The jar gives `digest || context || payload`; the context
                // is covered by the digest but not sent.
                jar.get(SEAL_NAME).and_then(|c| {
                    let v = c.value();
                    let rest = v.get(DIGEST_LEN..)?.strip_prefix(SIGN_CONTEXT)?;
                    Some(format!("{}{rest}", &v[..DIGEST_LEN]))
                })
            }
        }
        .ok_or_else(|| Error::store_msg(STORE, "the cookie jar did not seal the session"))?;
        let size = self.cookie_name.read().len() + 1 + value.len();
        if size > self.max_cookie_size {
            return Err(Error::CookieTooLarge {
                size,
                limit: self.max_cookie_size,
            });
        }
        Ok(SessionId::from_sealed(value))
    }

    /// The JSON sealed in `value` by `key`, if it opens.
    fn unseal(&self, key: &Key, value: &str) -> Option<String> {
        let jar = CookieJar::new();
        match self.mode {
            CookieMode::Encrypted => jar
                .private(key)
                .decrypt(Cookie::new(SEAL_NAME, value.to_owned()))
                .map(|c| c.value().to_owned()),
            CookieMode::Signed => {
                let (digest, payload) = value.split_at_checked(DIGEST_LEN)?;
                let full = format!("{digest}{SIGN_CONTEXT}{payload}");
                let verified = jar.signed(key).verify(Cookie::new(SEAL_NAME, full))?;
                let encoded = verified.value().strip_prefix(SIGN_CONTEXT)?;
                String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
            }
        }
    }

    /// The data and expiry sealed in `id`, or `None` if it does not open
    /// with any key, is malformed, or has expired.
    fn open(&self, id: &SessionId) -> Option<(Data, SystemTime)> {
        let value = id.expose();
        if !self.looks_sealed(value) {
            tracing::debug!(session = ?id, "cookie session: not a sealed value");
            return None;
        }
        let Some(json) = std::iter::once(&self.key)
            .chain(&self.old_keys)
            .find_map(|key| self.unseal(key, value))
        else {
            tracing::debug!(session = ?id, "cookie session: the value does not authenticate");
            return None;
        };
        let payload = match serde_json::from_str::<Payload>(&json) {
            Ok(p) if p.v == FORMAT_VERSION => p,
            Ok(p) => {
                tracing::debug!(session = ?id, version = p.v, "cookie session: unknown format");
                return None;
            }
            Err(e) => {
                tracing::debug!(session = ?id, error = %e, "cookie session: malformed payload");
                return None;
            }
        };
        let expires_at = from_ms(payload.e);
        if expires_at <= SystemTime::now() {
            tracing::debug!(session = ?id, "cookie session: expired");
            return None;
        }
        Some((payload.d, expires_at))
    }

    /// Whether `value` could be a value this store sealed: the right
    /// characters, and a length the size limit allows.
    fn looks_sealed(&self, value: &str) -> bool {
        value.len() >= MIN_SEALED_LEN
            && self.cookie_name.read().len() + 1 + value.len() <= self.max_cookie_size
            && value.bytes().all(is_sealed_char)
    }
}

#[async_trait::async_trait]
impl SessionStore for CookieStore {
    async fn create(&self, record: &Record) -> Result<SessionId> {
        self.seal(&record.data, record.expires_at)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        Ok(self
            .open(id)
            .map(|(data, expires_at)| Record::new(data, expires_at)))
    }

    async fn save(&self, id: &SessionId, changes: &Changes) -> Result<Option<SessionId>> {
        let Some((mut data, _)) = self.open(id) else {
            return Ok(None);
        };
        changes.apply_to(&mut data);
        self.seal(&data, changes.expires_at).map(Some)
    }

    /// Nothing to delete: the layer sends a removal cookie, but a copy of
    /// the value stays valid until the expiry sealed inside it.
    async fn delete(&self, _id: &SessionId) -> Result<()> {
        Ok(())
    }

    /// Nothing is stored: always `0`.
    async fn delete_expired(&self) -> Result<u64> {
        Ok(0)
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> Result<Option<SessionId>> {
        let Some((data, _)) = self.open(id) else {
            return Ok(None);
        };
        self.seal(&data, expires_at).map(Some)
    }

    fn parse_id(&self, cookie_value: &str) -> Option<SessionId> {
        self.looks_sealed(cookie_value)
            .then(|| SessionId::from_sealed(cookie_value.to_owned()))
    }

    fn is_client_side(&self) -> bool {
        true
    }

    fn use_cookie_name(&self, name: &str) {
        *self.cookie_name.write() = Arc::from(name);
    }

    /// Each session lives only in a browser: nothing lists them.
    async fn list_user_sessions(&self, _user_id: &str) -> Result<Vec<SessionInfo>> {
        Err(Error::Unsupported {
            store: STORE,
            operation: "listing a user's sessions (each lives only in its cookie)",
        })
    }

    /// A copied cookie stays valid until the expiry sealed inside it:
    /// nothing can revoke it. Keep idle and absolute timeouts short, or use
    /// a server-side store, when revocation matters.
    async fn delete_user_sessions(&self, _user_id: &str) -> Result<u64> {
        Err(Error::Unsupported {
            store: STORE,
            operation: "revoking a user's sessions (a copied cookie stays valid until it expires)",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use super::*;

    fn in_secs(s: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(s)
    }

    fn record(expires_at: SystemTime) -> Record {
        let mut data = Data::new();
        data.insert("user".into(), json!(7));
        data.insert("role".into(), json!("reader"));
        Record::new(data, expires_at)
    }

    fn stores(key: &Key) -> [CookieStore; 2] {
        [
            CookieStore::new(key.clone()),
            CookieStore::builder(key.clone()).signed().build().unwrap(),
        ]
    }

    /// `value` as an id, bypassing `parse_id`.
    fn raw(value: impl Into<String>) -> SessionId {
        SessionId::from_sealed(value.into())
    }

    async fn opens(store: &CookieStore, value: &str) -> bool {
        store.load(&raw(value)).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn round_trip_in_both_modes() {
        for store in stores(&Key::generate()) {
            let r = record(in_secs(60));
            let id = store.create(&r).await.unwrap();
            assert!(id.expose().bytes().all(is_sealed_char), "{:?}", store.mode);
            assert_eq!(store.parse_id(id.expose()), Some(id.clone()));
            let loaded = store.load(&id).await.unwrap().unwrap();
            assert_eq!(loaded.data, r.data);
            // Milliseconds survive the trip.
            let drift = r
                .expires_at
                .duration_since(loaded.expires_at)
                .unwrap_or_default();
            assert!(drift < Duration::from_millis(1), "{drift:?}");
        }
    }

    #[tokio::test]
    async fn identical_records_get_different_values() {
        for store in stores(&Key::generate()) {
            let r = record(in_secs(60));
            let a = store.create(&r).await.unwrap();
            let b = store.create(&r).await.unwrap();
            assert_ne!(a, b, "{:?}", store.mode);
        }
    }

    #[tokio::test]
    async fn encrypted_values_hide_the_data_and_signed_ones_show_it() {
        let [encrypted, signed] = stores(&Key::generate());
        let mut data = Data::new();
        data.insert("secret".into(), json!("swordfish"));
        let r = Record::new(data, in_secs(60));
        let e = encrypted.create(&r).await.unwrap();
        let s = signed.create(&r).await.unwrap();
        let decoded = |text: &str| {
            let mut out = STANDARD.decode(text).unwrap_or_default();
            out.extend(URL_SAFE_NO_PAD.decode(text).unwrap_or_default());
            String::from_utf8_lossy(&out).into_owned()
        };
        assert!(!decoded(e.expose()).contains("swordfish"));
        assert!(decoded(&s.expose()[DIGEST_LEN..]).contains("swordfish"));
    }

    #[tokio::test]
    async fn every_flipped_bit_is_rejected() {
        for store in stores(&Key::generate()) {
            let id = store.create(&record(in_secs(60))).await.unwrap();
            let text = id.expose();
            // In the text as sent.
            for i in 0..text.len() {
                for bit in 0..8 {
                    let mut bytes = text.as_bytes().to_vec();
                    bytes[i] ^= 1 << bit;
                    let Ok(s) = String::from_utf8(bytes) else {
                        continue;
                    };
                    if let Some(t) = store.parse_id(&s) {
                        assert_eq!(store.load(&t).await.unwrap(), None, "{i}/{bit}");
                    }
                }
            }
            // In the bytes the base64 stands for, re-encoded canonically.
            let parts: Vec<(String, Vec<u8>, bool)> = match store.mode {
                CookieMode::Encrypted => {
                    vec![(String::new(), STANDARD.decode(text).unwrap(), true)]
                }
                _ => vec![
                    (
                        text[DIGEST_LEN..].to_owned(),
                        STANDARD.decode(&text[..DIGEST_LEN]).unwrap(),
                        true,
                    ),
                    (
                        text[..DIGEST_LEN].to_owned(),
                        URL_SAFE_NO_PAD.decode(&text[DIGEST_LEN..]).unwrap(),
                        false,
                    ),
                ],
            };
            for (other, bytes, standard_first) in parts {
                for i in 0..bytes.len() {
                    for bit in 0..8 {
                        let mut b = bytes.clone();
                        b[i] ^= 1 << bit;
                        let s = if standard_first {
                            format!("{}{other}", STANDARD.encode(&b))
                        } else {
                            format!("{other}{}", URL_SAFE_NO_PAD.encode(&b))
                        };
                        assert!(!opens(&store, &s).await, "{:?} {i}/{bit}", store.mode);
                    }
                }
            }
            assert!(opens(&store, text).await);
        }
    }

    #[tokio::test]
    async fn truncated_and_extended_values_are_rejected() {
        for store in stores(&Key::generate()) {
            let id = store.create(&record(in_secs(60))).await.unwrap();
            let text = id.expose();
            for n in 0..text.len() {
                assert!(!opens(&store, &text[..n]).await, "{:?} {n}", store.mode);
                assert!(!opens(&store, &text[n + 1..]).await, "{:?} {n}", store.mode);
            }
            assert!(!opens(&store, &format!("{text}A")).await);
            assert!(!opens(&store, &format!("{text}AAAA")).await);
        }
    }

    #[tokio::test]
    async fn garbage_never_panics() {
        let long = "A".repeat(5000);
        for store in stores(&Key::generate()) {
            for bad in [
                "",
                "x",
                "not base64 at all, not even close!!",
                "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "////////////////////////////////////////////////////////////",
                "=============================================================",
                "ééééééééééééééééééééééééééééééééééééééééééééééééééé",
                &long,
            ] {
                assert_eq!(store.load(&raw(bad)).await.unwrap(), None, "{bad:?}");
                assert_eq!(store.touch(&raw(bad), in_secs(60)).await.unwrap(), None);
                assert_eq!(
                    store
                        .save(&raw(bad), &Changes::new(in_secs(60)))
                        .await
                        .unwrap(),
                    None
                );
            }
            // A random 43-character id of a server-side store is no session.
            let id = SessionId::generate().unwrap();
            assert_eq!(store.parse_id(id.expose()), None);
            assert_eq!(store.load(&id).await.unwrap(), None);
            // parse_id bounds the length and the characters.
            assert_eq!(store.parse_id(&long), None);
            assert_eq!(store.parse_id(&"A;".repeat(40)), None);
            assert_eq!(store.parse_id(&"A ".repeat(40)), None);
            assert!(store.parse_id(&"A".repeat(100)).is_some());
        }
    }

    #[tokio::test]
    async fn values_sealed_with_another_key_are_rejected() {
        let key = Key::generate();
        let other = Key::generate();
        for (mine, theirs) in stores(&key).into_iter().zip(stores(&other)) {
            let id = theirs.create(&record(in_secs(60))).await.unwrap();
            assert_eq!(mine.load(&id).await.unwrap(), None, "{:?}", mine.mode);
            let ch = Changes::new(in_secs(60));
            assert_eq!(mine.save(&id, &ch).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn modes_do_not_open_each_other() {
        // Even with the same key.
        let [encrypted, signed] = stores(&Key::generate());
        let e = encrypted.create(&record(in_secs(60))).await.unwrap();
        let s = signed.create(&record(in_secs(60))).await.unwrap();
        assert_eq!(signed.load(&e).await.unwrap(), None);
        assert_eq!(encrypted.load(&s).await.unwrap(), None);
    }

    #[tokio::test]
    async fn values_sealed_under_another_name_are_rejected() {
        let key = Key::generate();
        let [encrypted, signed] = stores(&key);
        let json = r#"{"v":1,"e":99999999999999,"d":{"admin":true}}"#;

        let mut jar = CookieJar::new();
        jar.private_mut(&key).add(Cookie::new("other", json));
        let e = jar.get("other").unwrap().value().to_owned();
        assert!(!opens(&encrypted, &e).await);

        // A value the application signs itself, even one shaped like ours.
        let mut jar = CookieJar::new();
        let payload = URL_SAFE_NO_PAD.encode(json);
        jar.signed_mut(&key)
            .add(Cookie::new(SEAL_NAME, payload.clone()));
        let s = jar.get(SEAL_NAME).unwrap().value().to_owned();
        assert!(!opens(&signed, &s).await);

        // The same payload signed under our context opens: the check above
        // failed on the context only.
        let mut jar = CookieJar::new();
        jar.signed_mut(&key)
            .add(Cookie::new(SEAL_NAME, format!("{SIGN_CONTEXT}{payload}")));
        let v = jar.get(SEAL_NAME).unwrap().value().to_owned();
        let ours = format!(
            "{}{}",
            &v[..DIGEST_LEN],
            &v[DIGEST_LEN + SIGN_CONTEXT.len()..]
        );
        assert!(opens(&signed, &ours).await);
    }

    #[tokio::test]
    async fn a_signed_payload_edited_by_the_client_is_rejected() {
        let [_, signed] = stores(&Key::generate());
        let id = signed.create(&record(in_secs(60))).await.unwrap();
        let (digest, payload) = id.expose().split_at(DIGEST_LEN);
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["d"]["role"], "reader");

        value["d"]["role"] = json!("admin");
        let edited = URL_SAFE_NO_PAD.encode(value.to_string());
        assert!(!opens(&signed, &format!("{digest}{edited}")).await);

        // Nor can the client extend its expiry.
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["e"] = json!(to_ms(in_secs(10_000_000)));
        let edited = URL_SAFE_NO_PAD.encode(value.to_string());
        assert!(!opens(&signed, &format!("{digest}{edited}")).await);
        assert!(opens(&signed, id.expose()).await);
    }

    #[tokio::test]
    async fn expired_values_are_rejected_even_if_authentic() {
        for store in stores(&Key::generate()) {
            let past = SystemTime::now() - Duration::from_secs(1);
            let id = store.create(&record(past)).await.unwrap();
            assert_eq!(store.load(&id).await.unwrap(), None);
            let ch = Changes::new(in_secs(60));
            assert_eq!(store.save(&id, &ch).await.unwrap(), None);
            assert_eq!(store.touch(&id, in_secs(60)).await.unwrap(), None);

            // A replay after the lifetime, although the same value loaded
            // before.
            let soon = SystemTime::now() + Duration::from_millis(300);
            let id = store.create(&record(soon)).await.unwrap();
            assert!(store.load(&id).await.unwrap().is_some());
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(store.load(&id).await.unwrap(), None);
            assert_eq!(store.touch(&id, in_secs(60)).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn an_unknown_format_version_is_rejected() {
        let key = Key::generate();
        let store = CookieStore::new(key.clone());
        let mut jar = CookieJar::new();
        let json = format!(r#"{{"v":2,"e":{},"d":{{}}}}"#, to_ms(in_secs(60)));
        jar.private_mut(&key).add(Cookie::new(SEAL_NAME, json));
        let v = jar.get(SEAL_NAME).unwrap().value().to_owned();
        assert!(!opens(&store, &v).await);
    }

    #[tokio::test]
    async fn rotation_reads_old_keys_and_writes_the_current_one() {
        let (old, new) = (Key::generate(), Key::generate());
        for signed in [false, true] {
            let mode = |b: CookieStoreBuilder| if signed { b.signed() } else { b };
            let before = mode(CookieStore::builder(old.clone())).build().unwrap();
            let after = mode(CookieStore::builder(new.clone()))
                .old_keys([Key::generate(), old.clone()])
                .build()
                .unwrap();
            let only_new = mode(CookieStore::builder(new.clone())).build().unwrap();

            let id = before.create(&record(in_secs(60))).await.unwrap();
            assert!(after.load(&id).await.unwrap().is_some());
            assert_eq!(only_new.load(&id).await.unwrap(), None);

            let mut ch = Changes::new(in_secs(60));
            ch.set.insert("n".into(), json!(1));
            let saved = after.save(&id, &ch).await.unwrap().unwrap();
            assert_eq!(before.load(&saved).await.unwrap(), None, "old key alone");
            assert_eq!(only_new.load(&saved).await.unwrap().unwrap().data["n"], 1);
            let touched = after.touch(&id, in_secs(60)).await.unwrap().unwrap();
            assert_eq!(before.load(&touched).await.unwrap(), None);
            assert!(only_new.load(&touched).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn oversize_sessions_are_a_typed_error() {
        for store in stores(&Key::generate()) {
            let mut data = Data::new();
            data.insert("blob".into(), json!("x".repeat(5000)));
            let err = store
                .create(&Record::new(data.clone(), in_secs(60)))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::CookieTooLarge { size, limit: 4096 } if size > 5000),
                "{err:?}"
            );

            let id = store.create(&record(in_secs(60))).await.unwrap();
            let mut ch = Changes::new(in_secs(60));
            ch.set = data;
            let err = store.save(&id, &ch).await.unwrap_err();
            assert!(matches!(err, Error::CookieTooLarge { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn the_limit_counts_the_cookie_name() {
        let key = Key::generate();
        let id = CookieStore::new(key.clone())
            .create(&record(in_secs(60)))
            .await
            .unwrap();
        let exact = "id".len() + 1 + id.expose().len();
        let fits = CookieStore::builder(key.clone())
            .max_cookie_size(exact)
            .build()
            .unwrap();
        assert!(fits.create(&record(in_secs(60))).await.is_ok());
        assert!(fits.parse_id(id.expose()).is_some());
        let longer_name = CookieStore::builder(key)
            .max_cookie_size(exact)
            .build()
            .unwrap();
        longer_name.use_cookie_name("session");
        assert!(matches!(
            longer_name.create(&record(in_secs(60))).await,
            Err(Error::CookieTooLarge { limit, .. }) if limit == exact
        ));
        assert_eq!(longer_name.parse_id(id.expose()), None);
    }

    #[test]
    fn builder_checks_its_configuration() {
        assert!(matches!(
            derive_key(&[0; 31]),
            Err(Error::SecretTooShort { len: 31, min: 32 })
        ));
        assert!(derive_key(&[0; 32]).is_ok());
        assert_ne!(derive_key(&[0; 32]).unwrap(), derive_key(&[1; 32]).unwrap());
    }

    #[tokio::test]
    async fn debug_reveals_neither_keys_nor_values() {
        let store = CookieStore::new(Key::generate());
        let text = format!("{store:?}");
        assert!(
            text.contains("Encrypted") && !text.contains("key:"),
            "{text}"
        );
        let id = store.create(&record(in_secs(60))).await.unwrap();
        assert!(!format!("{id:?}").contains(id.expose()));
        assert_eq!(id.storage_key().len(), 64);
    }
}
