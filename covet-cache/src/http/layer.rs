//! [`HttpCacheLayer`]: configuration and the layer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use tower::Layer;

use super::flight::HttpFlights;
use super::service::HttpCache;
use crate::Cache;

/// The key prefix of stored responses, inside the cache's namespace.
pub const DEFAULT_KEY_PREFIX: &str = "http:";
/// Bodies larger than this stream through without being stored.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1 << 20;
/// How long a response is kept once stale: for revalidation with its
/// validator, or for clients that accept stale responses (`max-stale`).
pub const DEFAULT_STALE_RETENTION: Duration = Duration::from_secs(10 * 60);
/// The cache name in `Cache-Status`.
pub const DEFAULT_CACHE_NAME: &str = "covet";

pub(crate) type KeyExtension = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// What a response says about being stored, as a response extension: a
/// per-route opt-out ([`Bypass`](CachePolicy::Bypass)) under a layer that
/// caches everything it may, or the opt-in
/// ([`Store`](CachePolicy::Store)) a layer built with
/// [`opt_in`](HttpCacheLayer::opt_in) requires.
///
/// With axum, return `(Extension(CachePolicy::Bypass), body)` from a handler,
/// or add it to every response of a route with a `map_response` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CachePolicy {
    /// Never store this response.
    Bypass,
    /// Store it if HTTP allows (the opt-in of an `opt_in` layer).
    Store,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) max_body_size: usize,
    pub(crate) key_prefix: String,
    pub(crate) key_extension: Option<KeyExtension>,
    pub(crate) allow_set_cookie: bool,
    pub(crate) opt_in: bool,
    pub(crate) stale_retention: Duration,
    pub(crate) cache_name: String,
    pub(crate) coalesce: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("default_ttl", &self.default_ttl)
            .field("max_body_size", &self.max_body_size)
            .field("key_prefix", &self.key_prefix)
            .field("key_extension", &self.key_extension.is_some())
            .field("allow_set_cookie", &self.allow_set_cookie)
            .field("opt_in", &self.opt_in)
            .field("stale_retention", &self.stale_retention)
            .field("cache_name", &self.cache_name)
            .field("coalesce", &self.coalesce)
            .finish()
    }
}

/// What every clone of one layer's services shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cache: Cache,
    pub(crate) config: Config,
    pub(crate) flights: HttpFlights,
}

/// A tower layer that caches HTTP responses in a [`Cache`] as a shared
/// cache does (RFC 9111); see the [module docs](super) for what it
/// implements.
///
/// ```
/// use std::time::Duration;
/// use covet_cache::{Cache, http::HttpCacheLayer};
///
/// let cache = Cache::memory();
/// let layer = HttpCacheLayer::new(cache.clone())
///     .default_ttl(Duration::from_secs(30))
///     .max_body_size(256 * 1024)
///     .key_prefix("pages:");
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct HttpCacheLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCacheLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl HttpCacheLayer {
    /// A layer storing responses in `cache`, with the defaults: no default
    /// TTL (only responses that HTTP says are cacheable are stored), bodies
    /// up to 1 MiB, keys under `http:`, no `Set-Cookie` responses, request
    /// coalescing on.
    pub fn new(cache: Cache) -> Self {
        HttpCacheLayer {
            shared: Arc::new(Shared {
                cache,
                config: Config {
                    default_ttl: None,
                    max_body_size: DEFAULT_MAX_BODY_SIZE,
                    key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
                    key_extension: None,
                    allow_set_cookie: false,
                    opt_in: false,
                    stale_retention: DEFAULT_STALE_RETENTION,
                    cache_name: DEFAULT_CACHE_NAME.to_owned(),
                    coalesce: true,
                },
                flights: HttpFlights::default(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config.clone();
        f(&mut config);
        self.shared = Arc::new(Shared {
            cache: self.shared.cache.clone(),
            config,
            flights: HttpFlights::default(),
        });
        self
    }

    /// Freshness for cacheable responses (status 200, 203, 204, 300, 301,
    /// 308, 404, 405, 410, 414, 501) that carry no explicit freshness
    /// (`max-age`, `s-maxage`, `Expires`): Django's `cache_page`. Without
    /// it such responses get the RFC's heuristic from `Last-Modified`, or
    /// are only kept for revalidation.
    #[must_use]
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.with(|c| c.default_ttl = Some(ttl))
    }

    /// Bodies larger than `bytes` are not stored; they stream through and
    /// are never buffered whole.
    #[must_use]
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.with(|c| c.max_body_size = bytes)
    }

    /// The key prefix (inside the cache's namespace); default `http:`.
    #[must_use]
    pub fn key_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.with(|c| c.key_prefix = prefix)
    }

    /// Adds a part to every key, computed from the request, for example a
    /// tenant header: requests with different extensions never share a
    /// stored response. `None` adds nothing.
    ///
    /// ```
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    /// let layer = HttpCacheLayer::new(Cache::memory()).key_extension(|req| {
    ///     req.headers.get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned)
    /// });
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn key_extension(
        self,
        f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let f: KeyExtension = Arc::new(f);
        self.with(|c| c.key_extension = Some(f))
    }

    /// Stores responses that carry `Set-Cookie` (without the `Set-Cookie`
    /// lines: a stored response never hands one visitor's cookie to
    /// another). Off by default: such responses are not stored.
    #[must_use]
    pub fn allow_set_cookie(self, allow: bool) -> Self {
        self.with(|c| c.allow_set_cookie = allow)
    }

    /// Stores only responses that carry [`CachePolicy::Store`].
    #[must_use]
    pub fn opt_in(self, opt_in: bool) -> Self {
        self.with(|c| c.opt_in = opt_in)
    }

    /// How long a response is kept after it went stale, so it can be
    /// revalidated with a conditional request (`ETag`, `Last-Modified`) or
    /// served to clients that accept stale responses (`max-stale`); default
    /// 10 minutes. `stale-while-revalidate` and `stale-if-error` windows
    /// that are longer extend it.
    #[must_use]
    pub fn stale_retention(self, window: Duration) -> Self {
        self.with(|c| c.stale_retention = window)
    }

    /// The cache name in the `Cache-Status` header; default `covet`.
    #[must_use]
    pub fn cache_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|c| c.cache_name = name)
    }

    /// Whether concurrent misses for one key are sent to the origin once
    /// (default `true`).
    #[must_use]
    pub fn coalesce(self, coalesce: bool) -> Self {
        self.with(|c| c.coalesce = coalesce)
    }

    /// Removes the stored responses (every variant) for `uri` under this
    /// layer's key prefix, for every key extension. Returns how many keys
    /// were removed.
    pub async fn invalidate(&self, uri: &str) -> crate::Result<u64> {
        super::service::invalidate_uri(&self.shared.cache, &self.shared.config.key_prefix, uri)
            .await
    }
}

impl<S> Layer<S> for HttpCacheLayer {
    type Service = HttpCache<S>;

    fn layer(&self, inner: S) -> HttpCache<S> {
        HttpCache::from_shared(inner, self.shared.clone())
    }
}
