//! [`CsrfLayer`]: its configuration and the layer.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use tower::Layer;

use super::service::Csrf;

/// Default limit of a buffered form body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Default header carrying the token.
pub const DEFAULT_HEADER_NAME: &str = "x-csrf-token";
/// Default form field carrying the token.
pub const DEFAULT_FIELD_NAME: &str = "csrf_token";

type Exempt = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) struct CsrfConfig {
    pub(crate) max_body: usize,
    /// `scheme://host[:port]`, lowercase, without default ports.
    pub(crate) trusted_origins: Vec<String>,
    pub(crate) exempt: Option<Exempt>,
    pub(crate) header: HeaderName,
    pub(crate) field: String,
}

impl fmt::Debug for CsrfConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfConfig")
            .field("max_body", &self.max_body)
            .field("trusted_origins", &self.trusted_origins)
            .field("exempt", &self.exempt.is_some())
            .field("header", &self.header)
            .field("field", &self.field)
            .finish()
    }
}

/// Cross-site request forgery protection bound to the session; see the
/// [module docs](super). Place it inside `SessionLayer`.
///
/// ```
/// use covet_session::{CsrfLayer, MemoryStore, SessionLayer};
/// use tower::ServiceBuilder;
///
/// let layers = ServiceBuilder::new()
///     .layer(SessionLayer::new(MemoryStore::new()))
///     .layer(
///         CsrfLayer::new()
///             .with_trusted_origins(["https://admin.example.com"])
///             .with_exempt(|req| req.uri.path().starts_with("/webhooks/")),
///     );
/// # let _ = layers;
/// ```
#[derive(Clone, Debug)]
pub struct CsrfLayer {
    config: Arc<CsrfConfig>,
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CsrfLayer {
    /// The defaults: token in `X-CSRF-Token` or the `csrf_token` form
    /// field, form bodies up to 1 MiB, only the request's own origin
    /// trusted, no exemptions.
    pub fn new() -> Self {
        CsrfLayer {
            config: Arc::new(CsrfConfig {
                max_body: DEFAULT_MAX_BODY,
                trusted_origins: Vec::new(),
                exempt: None,
                header: HeaderName::from_static(DEFAULT_HEADER_NAME),
                field: DEFAULT_FIELD_NAME.to_owned(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut CsrfConfig)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The largest form body buffered to find the token (default 1 MiB); a
    /// larger one is refused with `413 Payload Too Large`.
    #[must_use]
    pub fn with_max_body(self, bytes: usize) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// Other origins whose pages may send unsafe requests
    /// (`https://admin.example.com`): matched exactly on scheme, host and
    /// port. Entries that are not an origin are ignored (and logged).
    #[must_use]
    pub fn with_trusted_origins<I>(self, origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = Vec::new();
        for o in origins {
            match super::service::normalize_origin(o.as_ref()) {
                Some(origin) => list.push(origin),
                None => tracing::error!(
                    origin = o.as_ref(),
                    "not an origin (scheme://host[:port]); ignored"
                ),
            }
        }
        self.with(|c| c.trusted_origins = list)
    }

    /// Requests for which `exempt` answers `true` are not checked (webhooks
    /// signed by their sender, for example).
    #[must_use]
    pub fn with_exempt(self, exempt: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        let exempt: Exempt = Arc::new(exempt);
        self.with(|c| c.exempt = Some(exempt))
    }

    /// The header carrying the token (default `X-CSRF-Token`).
    ///
    /// # Panics
    /// If `name` is not a valid header name (a mistake in the code, found
    /// when the app is built).
    #[must_use]
    pub fn with_header_name(self, name: &str) -> Self {
        let header = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("invalid CSRF header name {name:?}"));
        self.with(|c| c.header = header)
    }

    /// The form field carrying the token (default `csrf_token`).
    #[must_use]
    pub fn with_field_name(self, name: impl Into<String>) -> Self {
        let field = name.into();
        self.with(|c| c.field = field)
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Csrf<S> {
        Csrf::from_config(inner, self.config.clone())
    }
}
