//! [`HttpCacheLayer`]: configuration and the layer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http::request::Parts;
use tower::Layer;

use super::config::{Config, Forwarding, KeyExtension, KeyUri, PrivateRequests, Shared};
use super::service::HttpCache;
use crate::Cache;

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
            shared: Arc::new(Shared::new(cache, Config::default())),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config.clone();
        f(&mut config);
        self.shared = Arc::new(Shared::new(self.shared.cache.clone(), config));
        self
    }

    /// Freshness for shareable 2xx and 3xx responses (status 200, 203, 204,
    /// 300, 301, 308) that carry no explicit freshness (`max-age`,
    /// `s-maxage`, `Expires`): Django's `cache_page`. Without it such
    /// responses get the RFC's heuristic from `Last-Modified`, or are only
    /// kept for revalidation. It never applies to other statuses (see
    /// [`negative_ttl`](Self::negative_ttl)), nor makes a response to a
    /// request with credentials shareable.
    #[must_use]
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.with(|c| c.default_ttl = Some(ttl))
    }

    /// Freshness for `404` and `410` responses without explicit freshness
    /// (off by default: a missing page is only cached when the origin says
    /// for how long, or through this).
    #[must_use]
    pub fn negative_ttl(self, ttl: Duration) -> Self {
        self.with(|c| c.negative_ttl = Some(ttl))
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
    /// stored response. `None` adds nothing. The part is percent-encoded in
    /// the key, so it cannot be mistaken for another part.
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

    /// Stores responses that carry `Set-Cookie` when they are explicitly
    /// shareable (`public`, `s-maxage` or [`CachePolicy::Store`]), without
    /// the `Set-Cookie` lines: a stored response never hands one visitor's
    /// cookie to another. Off by default: such responses are not stored.
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

    /// How long a request waits for the response of a coalesced origin
    /// request of another before it goes to the origin itself (default 5
    /// seconds), so one slow origin request never holds many clients.
    #[must_use]
    pub fn coalesce_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.coalesce_timeout = timeout)
    }

    /// How many `stale-while-revalidate` refreshes run in the background
    /// at once (default 64); past that, stale responses are served without
    /// starting another.
    #[must_use]
    pub fn max_background_refreshes(self, refreshes: usize) -> Self {
        self.with(|c| c.max_background_refreshes = refreshes)
    }

    /// Cookies known not to change responses (analytics, consent): a
    /// request whose `Cookie` holds only these is not private, and they
    /// are left out of a `Vary: Cookie` key.
    ///
    /// ```
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    /// let layer = HttpCacheLayer::new(Cache::memory()).ignore_cookies(["_ga", "_gid"]);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn ignore_cookies<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        self.with(|c| c.ignore_cookies = names)
    }

    /// What requests with credentials (`Cookie`, `Authorization`) may get
    /// from the cache and store; default [`PrivateRequests::Explicit`].
    #[must_use]
    pub fn private_requests(self, policy: PrivateRequests) -> Self {
        self.with(|c| c.private_requests = policy)
    }

    /// The hosts this layer caches for (Django's `ALLOWED_HOSTS`:
    /// `example.com`, `.example.com` for it and its subdomains, `*`);
    /// requests for any other host bypass the cache (`Cache-Status` detail
    /// `host`). By default every valid host is cached under its own keys.
    #[must_use]
    pub fn allowed_hosts<I>(self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let hosts: Vec<String> = hosts.into_iter().map(Into::into).collect();
        self.with(|c| c.allowed_hosts = Some(hosts))
    }

    /// Tells the layer that a proxy in front of the app sets these
    /// forwarding headers on every request (and drops what clients send):
    /// keys then take their scheme and host from them, so `http` and
    /// `https` responses, and each public host, are kept apart and
    /// invalidation by absolute URI finds them. Without it, forwarding
    /// headers that are present are part of the key as they are.
    #[must_use]
    pub fn trusted_forwarding(self, headers: Forwarding) -> Self {
        self.with(|c| c.trusted_forwarding = Some(headers))
    }

    /// The URI keys are built from, for routers that rewrite the request
    /// URI before this layer sees it. Under axum the original URI
    /// (`OriginalUri`, set by the outermost router) is used without this,
    /// so routers nested at different paths never share entries.
    ///
    /// ```
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    /// #[derive(Clone)]
    /// struct BeforeRewrite(http::Uri);
    /// let layer = HttpCacheLayer::new(Cache::memory()).key_uri(|req| {
    ///     req.extensions
    ///         .get::<BeforeRewrite>()
    ///         .map_or_else(|| req.uri.clone(), |b| b.0.clone())
    /// });
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn key_uri(self, f: impl Fn(&Parts) -> Uri + Send + Sync + 'static) -> Self {
        let f: KeyUri = Arc::new(f);
        self.with(|c| c.key_uri = Some(f))
    }

    /// How many `Vary` variants of one URI are kept (default 16); a new
    /// one past that drops the oldest.
    #[must_use]
    pub fn max_variants(self, variants: usize) -> Self {
        self.with(|c| c.max_variants = variants)
    }

    /// Stores a response with `Vary: Cookie` or `Vary: Authorization` for
    /// requests that carry those credentials, one variant per credential
    /// value (off by default: only the variant for requests without them is
    /// stored). Such a variant needs no `public`: it is keyed by the
    /// credentials it answers.
    #[must_use]
    pub fn vary_by_credentials(self, allow: bool) -> Self {
        self.with(|c| c.vary_by_credentials = allow)
    }

    /// Targeted cache control (RFC 9213): the response fields, most
    /// specific first, that this cache obeys instead of `Cache-Control`
    /// (`CDN-Cache-Control` is the usual choice; off by default). When a
    /// response carries one of them as a valid Structured Field dictionary,
    /// its `max-age`, `s-maxage`, `no-store`, `no-cache`, `private`,
    /// `must-revalidate`, `stale-while-revalidate` and `stale-if-error`
    /// decide storing and freshness (`Cache-Control` and `Expires` are then
    /// ignored; `Age` still counts against `max-age`). A field that does not
    /// parse as a dictionary, or gives a known directive a value of the
    /// wrong type, is ignored entirely and `Cache-Control` applies. The
    /// field is forwarded to the client as it is (a CDN downstream may
    /// target it too). Names that are not valid field names are ignored.
    ///
    /// ```
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    ///
    /// let layer = HttpCacheLayer::new(Cache::memory()).targeted("CDN-Cache-Control");
    /// let both = HttpCacheLayer::new(Cache::memory())
    ///     .targeted(["Covet-Cache-Control", "CDN-Cache-Control"]);
    /// # let _ = (layer, both);
    /// ```
    #[must_use]
    pub fn targeted(self, names: impl FieldNames) -> Self {
        let names: Vec<http::HeaderName> = names
            .field_names()
            .into_iter()
            .filter_map(|n| http::HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        self.with(|c| c.targeted = names)
    }

    /// Keeps this layer's entries apart from other layers on the same
    /// cache and key prefix: its keys carry the part `p=<name>`, so it
    /// neither answers from nor overwrites what another layer stored.
    ///
    /// Two layers on one cache with the same prefix share their entries.
    /// When they are nested (one on the whole app, one on a router inside
    /// it), the outer one then answers from what the inner one stored,
    /// under the outer one's own rules. With a partition each answers
    /// from its own entries; a response the inner layer handled passes
    /// through the outer one unstored, and an unsafe request (`POST`...)
    /// still invalidates the URI in both. Invalidating a URI from code
    /// ([`invalidate`](Self::invalidate), [`HttpCache::invalidate`])
    /// removes it from every partition.
    ///
    /// ```
    /// use std::time::Duration;
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    ///
    /// let cache = Cache::memory();
    /// let outer = HttpCacheLayer::new(cache.clone()).partition("site");
    /// let inner = HttpCacheLayer::new(cache)
    ///     .partition("api")
    ///     .default_ttl(Duration::from_secs(5));
    /// # let _ = (outer, inner);
    /// ```
    #[must_use]
    pub fn partition(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|c| c.partition = (!name.is_empty()).then_some(name))
    }

    /// At most this many entries stored by this layer (a response, a
    /// variant of one, or a URI's variant index each count as one); when
    /// a store goes over, the entries this layer used least recently are
    /// deleted from the cache. Only this layer's own entries count and
    /// are evicted, never other users' of the same [`Cache`], so one
    /// cache can hold values, sessions and several bounded layers. The
    /// count is kept per process: with a shared backend (Redis), each
    /// process bounds what it stored. The backend's own bounds still
    /// apply.
    ///
    /// ```
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    /// let layer = HttpCacheLayer::new(Cache::memory())
    ///     .max_entries(10_000)
    ///     .max_bytes(64 * 1024 * 1024);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn max_entries(self, entries: usize) -> Self {
        self.with(|c| c.max_entries = Some(entries))
    }

    /// At most about this many bytes stored by this layer: each entry
    /// counts its body, its header fields, its key and a fixed overhead
    /// of 64 bytes. Least recently used entries are evicted as with
    /// [`max_entries`](Self::max_entries); a response larger than the
    /// whole budget (or than [`max_body_size`](Self::max_body_size)) is
    /// not stored (`detail=too-large`).
    #[must_use]
    pub fn max_bytes(self, bytes: u64) -> Self {
        self.with(|c| c.max_bytes = Some(bytes))
    }

    /// Resolves once nothing this layer began is still in progress: every
    /// response being read for storing has been stored (or dropped), and
    /// every background refresh (`stale-while-revalidate`) has finished.
    /// For tests that must know a response is stored before the next
    /// request, and for a graceful shutdown that lets stores land.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use covet_cache::{Cache, http::HttpCacheLayer};
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let layer = HttpCacheLayer::new(Cache::memory());
    /// let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
    ///     let mut r = Response::new(Full::new(Bytes::from("hello")));
    ///     r.headers_mut().insert("cache-control", "max-age=60".parse().unwrap());
    ///     Ok::<_, Infallible>(r)
    /// }));
    /// let req = || Request::get("http://example.com/").body(Full::default()).unwrap();
    /// let first = svc.clone().oneshot(req()).await.unwrap();
    /// first.into_body().collect().await.unwrap();
    /// layer.settled().await; // the response is in the cache now
    /// let second = svc.oneshot(req()).await.unwrap();
    /// assert!(second.headers()["cache-status"].to_str().unwrap().contains("hit"));
    /// # });
    /// ```
    pub async fn settled(&self) {
        self.shared.pending.settled().await;
    }

    /// Removes the stored responses (every variant, every partition, and
    /// stored `HEAD` responses) for `uri` under this layer's key prefix,
    /// for every forwarding header and key extension. Returns how many
    /// keys were removed.
    pub async fn invalidate(&self, uri: &str) -> crate::Result<u64> {
        let shared = &self.shared;
        super::storage::invalidate_uri(
            &shared.cache,
            &shared.config.key_prefix,
            shared.bounds.as_ref(),
            uri,
        )
        .await
    }
}

impl<S> Layer<S> for HttpCacheLayer {
    type Service = HttpCache<S>;

    fn layer(&self, inner: S) -> HttpCache<S> {
        HttpCache::from_shared(inner, self.shared.clone())
    }
}

/// One field name or a list of them, for [`HttpCacheLayer::targeted`].
pub trait FieldNames {
    /// The names, in order.
    fn field_names(self) -> Vec<String>;
}

impl FieldNames for &str {
    fn field_names(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl FieldNames for String {
    fn field_names(self) -> Vec<String> {
        vec![self]
    }
}

impl<S: AsRef<str>, const N: usize> FieldNames for [S; N] {
    fn field_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}

impl<S: AsRef<str>> FieldNames for Vec<S> {
    fn field_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}

impl<S: AsRef<str>> FieldNames for &[S] {
    fn field_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
