//! Flash messages: notes for the next page a user sees, kept in the session
//! until they are taken.

use serde::{Deserialize, Serialize};

use crate::Session;

/// The session key flash messages live under. Keys starting with `__covet`
/// are reserved for covet.
pub const FLASH_KEY: &str = "__covet.flash";

/// How important a flash message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Developer information.
    Debug,
    /// Neutral information.
    Info,
    /// Something worked.
    Success,
    /// Something may need attention.
    Warning,
    /// Something failed.
    Error,
}

/// One flash message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// Its level.
    pub level: Level,
    /// Its text.
    pub message: String,
}

/// The flash messages of the current request, taken from the session (so
/// they are shown once): an axum extractor with the `axum` feature, or
/// [`Flashes::take`] anywhere else.
///
/// Extracting it loads the session; routes that do not extract it (or
/// `Session`) never reach the store.
///
/// ```
/// use std::sync::Arc;
/// use covet_session::{Flashes, Level, MemoryStore, Session};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let session = Session::new(Arc::new(MemoryStore::new()), &covet_session::SessionConfig::default());
/// session.flash("Saved.", Level::Success);
/// let flashes = Flashes::take(&session);
/// assert_eq!(flashes.len(), 1);
/// for f in &flashes {
///     assert_eq!(f.message, "Saved.");
/// }
/// assert!(Flashes::take(&session).is_empty());
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flashes(pub Vec<Flash>);

impl Flashes {
    /// Takes the queued messages out of `session`
    /// (see [`Session::take_flashes`]).
    pub fn take(session: &Session) -> Flashes {
        Flashes(session.take_flashes())
    }

    /// The messages, oldest first.
    pub fn into_inner(self) -> Vec<Flash> {
        self.0
    }
}

impl std::ops::Deref for Flashes {
    type Target = [Flash];

    fn deref(&self) -> &[Flash] {
        &self.0
    }
}

impl IntoIterator for Flashes {
    type Item = Flash;
    type IntoIter = std::vec::IntoIter<Flash>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Flashes {
    type Item = &'a Flash;
    type IntoIter = std::slice::Iter<'a, Flash>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

impl Session {
    /// Queues a message for the next page that calls
    /// [`take_flashes`](Session::take_flashes).
    ///
    /// The session must be loaded (the axum `Session` extractor loads it; in
    /// other code call [`ensure_loaded`](Session::ensure_loaded) first).
    /// On an unloaded session the message cannot be stored: it is dropped
    /// and logged as an error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use covet_session::{Level, MemoryStore, Session};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let session = Session::new(Arc::new(MemoryStore::new()), &covet_session::SessionConfig::default());
    /// session.flash("Saved.", Level::Success);
    /// session.flash("Quota at 90 %", Level::Warning);
    /// let flashes = session.take_flashes();
    /// assert_eq!(flashes.len(), 2);
    /// assert_eq!(flashes[0].level, Level::Success);
    /// assert!(session.take_flashes().is_empty(), "taken once");
    /// # });
    /// ```
    pub fn flash(&self, message: impl Into<String>, level: Level) {
        let mut queued: Vec<Flash> = match self.get(FLASH_KEY) {
            Ok(list) => list.unwrap_or_default(),
            Err(crate::Error::Decode { .. }) => {
                tracing::warn!("stored flash messages do not decode; starting a new list");
                Vec::new()
            }
            Err(err) => {
                tracing::error!(error = %err, "flash message dropped: the session is not loaded");
                return;
            }
        };
        queued.push(Flash {
            level,
            message: message.into(),
        });
        if let Err(err) = self.insert_internal(FLASH_KEY, &queued) {
            tracing::error!(error = %err, "flash message dropped");
        }
    }

    /// Removes and returns the queued flash messages, oldest first (empty
    /// when there are none, when the session is not loaded, or when the
    /// stored list does not decode, which is logged).
    pub fn take_flashes(&self) -> Vec<Flash> {
        if !self.contains(FLASH_KEY) {
            return Vec::new();
        }
        match self.remove_internal::<Vec<Flash>>(FLASH_KEY) {
            Ok(list) => list.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "stored flash messages do not decode; dropped");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn flashes_survive_a_save_and_are_taken_once() {
        let store = Arc::new(MemoryStore::new());
        let session = Session::new(store.clone(), &crate::SessionConfig::default());
        session.flash("hello", Level::Info);
        session.save().await.unwrap();
        let id = session.id().unwrap();

        let next = Session::load(store.clone(), &id, &crate::SessionConfig::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            next.take_flashes(),
            vec![Flash {
                level: Level::Info,
                message: "hello".into()
            }]
        );
        next.save().await.unwrap();
        let after = Session::load(store, &id, &crate::SessionConfig::default())
            .await
            .unwrap()
            .unwrap();
        assert!(after.take_flashes().is_empty());
    }

    #[tokio::test]
    async fn garbage_under_the_flash_key_is_not_an_error() {
        let session = Session::new(
            Arc::new(MemoryStore::new()),
            &crate::SessionConfig::default(),
        );
        session.insert_internal(FLASH_KEY, "not a list").unwrap();
        assert!(session.take_flashes().is_empty());
        session.insert_internal(FLASH_KEY, 42).unwrap();
        session.flash("fresh", Level::Error);
        assert_eq!(session.take_flashes().len(), 1);
    }
}
