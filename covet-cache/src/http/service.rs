//! [`HttpCache`]: the middleware service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use http_body::Body;
use tower::Service;

use super::body::HttpCacheBody;
use super::config::Shared;
use super::future::ResponseFuture;
use super::layer::HttpCacheLayer;
use crate::Cache;

/// The header RFC 9211 defines.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Middleware that answers from stored responses and stores what the
/// origin allows; built by [`HttpCacheLayer`].
#[derive(Clone)]
pub struct HttpCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for HttpCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCache")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S> HttpCache<S> {
    /// Wraps `inner` with a cache in `cache` and the default configuration.
    pub fn new(inner: S, cache: Cache) -> Self {
        tower::Layer::layer(&HttpCacheLayer::new(cache), inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        HttpCache { inner, shared }
    }

    /// A layer for `cache`.
    pub fn layer(cache: Cache) -> HttpCacheLayer {
        HttpCacheLayer::new(cache)
    }

    /// Resolves once nothing this service's layer began is still in
    /// progress (see [`HttpCacheLayer::settled`]).
    pub async fn settled(&self) {
        self.shared.pending.settled().await;
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl HttpCache<()> {
    /// Removes the responses stored for `uri` (every variant, every
    /// forwarding header and key extension) under the default key prefix
    /// `http:` of `cache`, and returns how many keys went. An absolute URI
    /// removes that origin's entries; a path (`/products?page=2`) removes
    /// it for every scheme and host. A response being read from the origin
    /// for that URI when this runs is not stored afterwards.
    ///
    /// ```
    /// use covet_cache::{Cache, http::HttpCache};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = Cache::memory();
    /// let removed = HttpCache::invalidate(&cache, "/products").await.unwrap();
    /// assert_eq!(removed, 0);
    /// # });
    /// ```
    pub async fn invalidate(cache: &Cache, uri: &str) -> crate::Result<u64> {
        super::storage::invalidate_uri(cache, super::config::DEFAULT_KEY_PREFIX, None, uri).await
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpCache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Send,
{
    type Response = Response<HttpCacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready handles this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture::new(super::flow::handle(shared, inner, req))
    }
}

/// The origin services the steps of a request work with: what the public
/// `Service` impl requires, under one name.
pub(crate) trait Origin<ReqBody, ResBody>:
    Service<
        Request<ReqBody>,
        Response = Response<ResBody>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, ReqBody, ResBody> Origin<ReqBody, ResBody> for S
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
}

/// Response bodies that stream through the layer.
pub(crate) trait OriginBody: Body<Data: Send, Error: Send> + Send + 'static {}

impl<B> OriginBody for B
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
}
