use std::fmt;
use std::sync::Arc;

use tower::Layer;

use crate::config::SessionConfig;
use crate::error::ConfigError;
use crate::manager::SessionManager;
use crate::store::SessionStore;

/// Applies [`SessionManager`] to a service; see the [module docs](crate::manager).
///
/// ```
/// use covet_session::{MemoryStore, SessionConfig, SessionLayer};
/// let layer = SessionLayer::new(MemoryStore::new())
///     .with_config(SessionConfig::default().with_secure(false));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: Arc<SessionConfig>,
}

impl SessionLayer {
    /// Sessions in `store`, with the default [`SessionConfig`].
    pub fn new(store: impl SessionStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Sessions in a store that is already shared.
    pub fn from_shared(store: Arc<dyn SessionStore>) -> Self {
        let config = SessionConfig::default();
        store.use_cookie_name(config.cookie_name());
        #[cfg(feature = "metrics")]
        crate::metrics::register(&store);
        SessionLayer {
            store,
            config: Arc::new(config),
        }
    }

    /// Replaces the configuration.
    ///
    /// # Panics
    /// If `config` is invalid (see [`SessionConfig::validate`]): browsers
    /// would drop such a cookie, or every save would fail. The panic
    /// happens when the app is built, as axum's for conflicting routes;
    /// [`try_with_config`](Self::try_with_config) returns the error
    /// instead.
    #[must_use]
    pub fn with_config(self, config: SessionConfig) -> Self {
        match self.try_with_config(config) {
            Ok(layer) => layer,
            Err(e) => panic!("invalid session configuration: {e}"),
        }
    }

    /// Replaces the configuration, or says why it is invalid.
    ///
    /// ```
    /// use covet_session::{ConfigError, MemoryStore, SessionConfig, SessionLayer};
    /// let err = SessionLayer::new(MemoryStore::new())
    ///     .try_with_config(SessionConfig::default().with_cookie_name("__Host-id").with_path("/app"))
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::HostPrefix { .. }));
    /// ```
    pub fn try_with_config(mut self, mut config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        // The statistics belong to the layer, whatever its configuration.
        config.counters = self.config.counters.clone();
        self.store.use_cookie_name(config.cookie_name());
        self.config = Arc::new(config);
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// What this layer (every clone of it, and every service it built)
    /// has seen so far: sessions created, loaded, saved, deleted, expired,
    /// rotated; unknown ids and malformed cookies presented; corrupt
    /// records, store errors, CSRF rejections and binding mismatches.
    ///
    /// ```
    /// use covet_session::{MemoryStore, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::new());
    /// let copy = layer.clone();
    /// assert_eq!(copy.stats(), layer.stats());
    /// ```
    pub fn stats(&self) -> crate::SessionStats {
        self.config.counters.snapshot()
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionManager<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionManager {
            inner,
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}
