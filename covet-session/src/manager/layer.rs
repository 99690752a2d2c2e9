use std::fmt;
use std::sync::Arc;

use tower::Layer;

use crate::config::SessionConfig;
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
        SessionLayer {
            store,
            config: Arc::new(SessionConfig::default()),
        }
    }

    /// Replaces the configuration.
    #[must_use]
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
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
