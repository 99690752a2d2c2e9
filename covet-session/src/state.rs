//! Typed session data: the [`SessionData`] trait and the [`SessionState`]
//! handle (an axum extractor with the `axum` feature).

use std::any::type_name;
use std::fmt;
use std::mem;
use std::ops::{Deref, DerefMut};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::session::Session;

/// A type stored as a whole under one session key, read and written through
/// [`SessionState`].
///
/// Derive it with `#[derive(SessionData)]` (the key defaults to the type's
/// name in snake case: `ShoppingCart` is stored under `"shopping_cart"`), or
/// declare the type with `#[covet::session_state]`, which also derives
/// `Serialize` and `Deserialize`. An implementation by hand only names the
/// key:
///
/// ```
/// use covet_session::SessionData;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// impl SessionData for Cart {
///     const KEY: &'static str = "cart";
/// }
/// ```
///
/// `Default` is the value a visitor starts with, and the value used when the
/// stored one no longer decodes (after a field was added or renamed without
/// `#[serde(default)]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not session data",
    label = "`{Self}` does not implement `SessionData`",
    note = "derive it with `#[derive(SessionData)]`, or declare the type with \
            `#[covet::session_state]`"
)]
pub trait SessionData: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The session key the value is stored under. Keys starting with
    /// `__covet` are reserved for covet's own data.
    const KEY: &'static str;
}

/// A typed value in the [`Session`], stored under [`SessionData::KEY`] and
/// written back when the `SessionState` is dropped.
///
/// It dereferences to `T`, so a handler reads and changes the value in
/// place:
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::post};
/// use covet_session::{MemoryStore, SessionData, SessionLayer, SessionState};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// impl SessionData for Cart {
///     const KEY: &'static str = "cart";
/// }
///
/// async fn add(mut cart: SessionState<Cart>) -> String {
///     cart.items.push("apple".to_owned());
///     cart.items.len().to_string()
/// } // `cart` is written into the session here; the layer saves it
///
/// let app: Router = Router::new()
///     .route("/cart", post(add))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// # }
/// ```
///
/// # Loading
///
/// The extractor loads the session (a store failure or a missing
/// `SessionLayer` is an opaque 500) and decodes `T` from its key. An absent
/// key gives `T::default()`. A stored value that no longer decodes as `T`
/// also gives `T::default()`, with a `tracing` warning: a change of the
/// type's shape never turns into an error response.
///
/// # Writing back
///
/// When the `SessionState` is dropped, its value is written into the
/// `Session` (a synchronous, in-memory
/// [`Session::insert`]) if it encodes differently from the value it
/// started with (or last [`save`](SessionState::save)d). A value that was
/// only read is never written: a handler that reads an empty cart creates no
/// session and sends no cookie, and a stored value that did not decode stays
/// in the store until the value is changed. An encoding failure at that
/// point is logged with `tracing`, never a panic.
///
/// Under axum, the handler owns the extractor and drops it when it returns,
/// before its response reaches the `SessionLayer`, which then saves the
/// session. A `SessionState` that outlives the handler (moved into a spawned
/// task, or into the response body) writes after the layer has saved: that
/// write reaches no store unless the code holding it also calls
/// [`Session::save`] on [`session`](SessionState::session).
///
/// Two `SessionState`s of the same type in one request each hold their own
/// copy; the one dropped last wins. Types with different keys are
/// independent. A value changed after [`Session::clear`] (logout) is written
/// into the cleared session.
///
/// # Without HTTP
///
/// [`SessionState::load`] reads from a loaded [`Session`]:
///
/// ```
/// use std::sync::Arc;
/// use covet_session::{MemoryStore, Session, SessionData, SessionState};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Serialize, Deserialize)]
/// # struct Cart { items: Vec<String> }
/// # impl SessionData for Cart { const KEY: &'static str = "cart"; }
///
/// let session = Session::new(Arc::new(MemoryStore::new()), &covet_session::SessionConfig::default());
/// {
///     let cart = SessionState::<Cart>::load(&session)?;
///     assert!(cart.items.is_empty());
/// } // only read: nothing written
/// assert!(!session.contains("cart"));
/// {
///     let mut cart = SessionState::<Cart>::load(&session)?;
///     cart.items.push("apple".to_owned());
/// } // changed: written back
/// assert_eq!(session.get::<Cart>("cart")?.unwrap().items, ["apple"]);
/// # Ok::<(), covet_session::Error>(())
/// ```
pub struct SessionState<T: SessionData> {
    value: T,
    // `None` once `into_inner` took the value: nothing is written back.
    session: Option<Session>,
    // JSON of the value as loaded or last saved (`None` if it did not
    // encode): the value is written back only when it encodes differently.
    baseline: Mutex<Option<serde_json::Value>>,
}

impl<T: SessionData> SessionState<T> {
    /// Reads `T` from `session` under [`T::KEY`](SessionData::KEY): the
    /// stored value, or `T::default()` if it is absent or does not decode
    /// (the latter with a `tracing` warning).
    ///
    /// Fails with [`Error::NotLoaded`] if the session has not been loaded
    /// (see [`Session::ensure_loaded`]).
    pub fn load(session: &Session) -> Result<Self> {
        let value = match session.get_value(T::KEY)? {
            None => T::default(),
            Some(stored) => T::deserialize(stored).unwrap_or_else(|err| {
                tracing::warn!(
                    key = T::KEY,
                    r#type = type_name::<T>(),
                    error = %err,
                    "stored session data does not decode; using the default value"
                );
                T::default()
            }),
        };
        let baseline = match encode(&value) {
            Ok(json) => Some(json),
            Err(err) => {
                err.log("session data does not encode");
                None
            }
        };
        Ok(SessionState {
            value,
            session: Some(session.clone()),
            baseline: Mutex::new(baseline),
        })
    }

    /// Writes the value into the session now (in memory, like
    /// [`Session::insert`]; the store is written when the session is saved).
    /// Dropping the `SessionState` does this too, when the value changed.
    pub fn save(&self) -> Result<()> {
        let json = encode(&self.value)?;
        if let Some(session) = &self.session {
            session.insert(T::KEY, &json)?;
        }
        *self.baseline.lock() = Some(json);
        Ok(())
    }

    /// The session the value belongs to.
    pub fn session(&self) -> &Session {
        self.session
            .as_ref()
            .expect("the session is only taken by `into_inner`")
    }

    /// The value, detached from the session: changes made to it afterwards
    /// are not written back (call [`save`](SessionState::save) first to keep
    /// earlier ones).
    pub fn into_inner(mut self) -> T {
        self.session = None;
        mem::take(&mut self.value)
    }
}

fn encode<T: SessionData>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|source| Error::Encode {
        key: T::KEY.to_owned(),
        source,
    })
}

impl<T: SessionData> Deref for SessionState<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: SessionData> DerefMut for SessionState<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: SessionData> Drop for SessionState<T> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let json = match encode(&self.value) {
            Ok(json) => json,
            Err(err) => return err.log("session data not written back"),
        };
        if self.baseline.get_mut().as_ref() == Some(&json) {
            return;
        }
        if let Err(err) = session.insert(T::KEY, &json) {
            err.log("session data not written back");
        }
    }
}

impl<T: SessionData + fmt::Debug> fmt::Debug for SessionState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionState")
            .field("key", &T::KEY)
            .field("value", &self.value)
            .finish()
    }
}

// The check `#[derive(SessionData)]` generates for `Default`, reached
// through `crate::__private`: method resolution picks `HasDefault` when the
// type implements `Default` and `MissingDefault` otherwise, so a missing
// `Default` is one error with the message below, on the type's name.
#[doc(hidden)]
pub(crate) mod checks {
    use std::marker::PhantomData;

    #[derive(Debug)]
    pub struct DefaultCheck<T>(PhantomData<T>);

    impl<T> DefaultCheck<T> {
        pub const fn new() -> Self {
            DefaultCheck(PhantomData)
        }
    }

    impl<T> Default for DefaultCheck<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    #[derive(Debug)]
    pub struct HasDefault;

    #[derive(Debug)]
    pub struct MissingDefault;

    pub trait ViaDefault {
        fn probe(&self) -> HasDefault {
            HasDefault
        }
    }

    impl<T: Default> ViaDefault for DefaultCheck<T> {}

    pub trait ViaFallback {
        fn probe(&self) -> MissingDefault {
            MissingDefault
        }
    }

    impl<T> ViaFallback for &DefaultCheck<T> {}

    #[diagnostic::on_unimplemented(
        message = "session data must implement `Default`",
        label = "add `#[derive(Default)]` to this struct",
        note = "`Default` gives the value of a visitor who has none stored yet"
    )]
    pub trait DefaultImplemented {}

    impl DefaultImplemented for HasDefault {}

    pub fn assert_default<C: DefaultImplemented>(_: C) {}
}

/// Loads the session the `SessionLayer` attached and reads `T` from it; see
/// [`SessionState`]. A missing layer or a store failure is an opaque 500.
#[cfg(feature = "axum")]
impl<S: Send + Sync, T: SessionData> axum::extract::FromRequestParts<S> for SessionState<T> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRequestParts;
        let session = <Session as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Self::load(&session)
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::sync::Arc;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{MemoryStore, SaveOutcome};

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Cart {
        items: Vec<String>,
    }

    impl SessionData for Cart {
        const KEY: &'static str = "cart";
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Prefs {
        dark: bool,
    }

    impl SessionData for Prefs {
        const KEY: &'static str = "prefs";
    }

    fn session() -> Session {
        Session::new(
            Arc::new(MemoryStore::new()),
            &crate::SessionConfig::default(),
        )
    }

    #[tokio::test]
    async fn reading_a_default_writes_nothing() {
        let s = session();
        let cart = SessionState::<Cart>::load(&s).unwrap();
        assert_eq!(*cart, Cart::default());
        drop(cart);
        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        // A mutable borrow that leaves the value as it was is not a change.
        cart.items.clear();
        drop(cart);
        assert!(!s.is_modified());
        assert_eq!(s.save().await.unwrap(), SaveOutcome::Unchanged);
    }

    #[test]
    fn changes_are_written_on_drop() {
        let s = session();
        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        cart.items.push("apple".into());
        assert!(!s.contains("cart"));
        drop(cart);
        assert_eq!(s.get::<Cart>("cart").unwrap().unwrap().items, ["apple"]);

        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        assert_eq!(cart.items, ["apple"]);
        cart.items.clear();
        drop(cart);
        // Back to the default is a change too.
        assert_eq!(
            s.get_value("cart").unwrap(),
            Some(serde_json::json!({"items": []}))
        );
    }

    #[tokio::test]
    async fn unchanged_stored_values_are_not_rewritten() {
        let s = session();
        s.insert("cart", serde_json::json!({"items": ["a"], "unknown": 1}))
            .unwrap();
        s.save().await.unwrap();
        let cart = SessionState::<Cart>::load(&s).unwrap();
        assert_eq!(cart.items, ["a"]);
        drop(cart);
        // The unknown field survives: the value was not re-encoded into the
        // session.
        assert!(!s.is_modified());
        assert_eq!(s.get_value("cart").unwrap().unwrap()["unknown"], 1);
    }

    #[test]
    fn undecodable_values_fall_back_to_the_default() {
        let s = session();
        s.insert("cart", "not a cart").unwrap();
        let cart = SessionState::<Cart>::load(&s).unwrap();
        assert_eq!(*cart, Cart::default());
        drop(cart);
        // Only read: the stored value is left alone.
        assert_eq!(
            s.get::<String>("cart").unwrap().as_deref(),
            Some("not a cart")
        );
        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        cart.items.push("b".into());
        drop(cart);
        assert_eq!(s.get::<Cart>("cart").unwrap().unwrap().items, ["b"]);
    }

    #[test]
    fn save_writes_now_and_moves_the_baseline() {
        let s = session();
        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        cart.items.push("a".into());
        cart.save().unwrap();
        assert_eq!(s.get::<Cart>("cart").unwrap().unwrap().items, ["a"]);
        // Changed back to what was loaded: still a change against the saved
        // value.
        cart.items.clear();
        drop(cart);
        assert_eq!(s.get::<Cart>("cart").unwrap().unwrap(), Cart::default());
    }

    #[test]
    fn into_inner_detaches() {
        let s = session();
        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        cart.items.push("a".into());
        let inner = cart.into_inner();
        assert_eq!(inner.items, ["a"]);
        assert!(!s.contains("cart"));
    }

    #[test]
    fn types_with_different_keys_are_independent() {
        let s = session();
        let mut cart = SessionState::<Cart>::load(&s).unwrap();
        let mut prefs = SessionState::<Prefs>::load(&s).unwrap();
        cart.items.push("a".into());
        prefs.dark = true;
        drop((cart, prefs));
        assert_eq!(s.keys(), ["cart", "prefs"]);
        assert!(s.get::<Prefs>("prefs").unwrap().unwrap().dark);
    }

    #[tokio::test]
    async fn an_unloaded_session_is_an_error() {
        let s = Session::lazy(
            Arc::new(MemoryStore::new()),
            Vec::new(),
            Arc::new(crate::SessionConfig::default()),
            None,
            None,
        );
        assert!(matches!(
            SessionState::<Cart>::load(&s),
            Err(Error::NotLoaded)
        ));
        s.ensure_loaded().await.unwrap();
        assert!(SessionState::<Cart>::load(&s).is_ok());
    }
}
