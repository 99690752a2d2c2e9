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
    /// let session = Session::new(Arc::new(MemoryStore::new()));
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
        if let Err(err) = self.insert(FLASH_KEY, &queued) {
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
        match self.remove::<Vec<Flash>>(FLASH_KEY) {
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
        let session = Session::new(store.clone());
        session.flash("hello", Level::Info);
        session.save().await.unwrap();
        let id = session.id().unwrap();

        let next = Session::load(store.clone(), &id).await.unwrap().unwrap();
        assert_eq!(
            next.take_flashes(),
            vec![Flash {
                level: Level::Info,
                message: "hello".into()
            }]
        );
        next.save().await.unwrap();
        let after = Session::load(store, &id).await.unwrap().unwrap();
        assert!(after.take_flashes().is_empty());
    }

    #[tokio::test]
    async fn garbage_under_the_flash_key_is_not_an_error() {
        let session = Session::new(Arc::new(MemoryStore::new()));
        session.insert(FLASH_KEY, "not a list").unwrap();
        assert!(session.take_flashes().is_empty());
        session.insert(FLASH_KEY, 42).unwrap();
        session.flash("fresh", Level::Error);
        assert_eq!(session.take_flashes().len(), 1);
    }
}
