//! [`HttpCache`]: the service and what it does per request.

use std::fmt;
use std::future::poll_fn;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_LOCATION, ETAG, HeaderValue, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, LOCATION,
    SET_COOKIE,
};
use http::request::Parts;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::body::HttpCacheBody;
use super::directives::{RequestDirectives, ResponseDirectives};
use super::flight::{Leader, Role, follow};
use super::freshness::{AgeClock, freshness_lifetime};
use super::future::ResponseFuture;
use super::key::{effective_uri, fnv64, same_origin_target, vary_names, vary_values};
use super::layer::{CachePolicy, Config, HttpCacheLayer, Shared};
use super::policy::{
    CacheStatus, NOT_MODIFIED_HEADERS, StoreRules, Use, not_modified, retention,
    stale_if_error_allows, storable, usability,
};
use super::stored::{HttpEntry, StoredPolicy, StoredResponse, strip_unstorable};
use crate::Cache;

/// The header RFC 9211 defines.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Marks a response a covet HTTP cache already handled, so an outer layer
/// on the same request passes it through.
#[derive(Debug, Clone, Copy)]
struct Handled;

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
    /// Removes the responses stored for `uri` (every variant, every key
    /// extension) under the default key prefix `http:` of `cache`, and
    /// returns how many keys went. An absolute URI removes that origin's
    /// entries; a path (`/products?page=2`) removes it for every host.
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
        invalidate_uri(cache, super::layer::DEFAULT_KEY_PREFIX, uri).await
    }
}

pub(crate) async fn invalidate_uri(cache: &Cache, prefix: &str, uri: &str) -> crate::Result<u64> {
    let invalid = || crate::Error::InvalidKey {
        key: uri.chars().take(64).collect(),
        reason: "not a URI",
    };
    let parsed: http::Uri = uri.parse().map_err(|_| invalid())?;
    let esc = crate::key::escape_glob;
    let exact = if parsed.authority().is_some() {
        let parts = Request::builder()
            .uri(parsed)
            .body(())
            .map_err(|_| invalid())?
            .into_parts()
            .0;
        esc(&format!("{prefix}{}", effective_uri(&parts)))
    } else {
        let pq = parsed.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        format!("{}*://*{}", esc(prefix), esc(pq))
    };
    let mut removed = cache.delete_pattern(&exact).await?;
    removed += cache.delete_pattern(&format!("{exact} *")).await?;
    Ok(removed)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpCache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
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
        ResponseFuture::new(handle(shared, inner, req))
    }
}

/// The origin services the steps below work with: what the public
/// `Service` impl requires, under one name.
trait Origin<ReqBody, ResBody>:
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
trait OriginBody: Body<Data: Send, Error: Send> + Send + 'static {}

impl<B> OriginBody for B
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
}

fn primary_key(config: &Config, parts: &Parts) -> Option<String> {
    let mut key = String::with_capacity(config.key_prefix.len() + 64);
    key.push_str(&config.key_prefix);
    key.push_str(&effective_uri(parts));
    if let Some(ext) = config.key_extension.as_ref().and_then(|f| f(parts)) {
        key.push(' ');
        key.push_str(&ext);
    }
    crate::key::validate_key(&key).ok()?;
    Some(key)
}

fn variant_key(primary: &str, generation: u64, values: &[Option<String>]) -> String {
    format!("{primary} #{generation:x}:{:x}", fnv64(values))
}

fn new_generation() -> u64 {
    std::hash::RandomState::new().hash_one(SystemTime::now())
}

/// What a lookup found.
enum Found {
    /// A usable entry, with the variant index it was found through.
    Stored(Arc<StoredResponse>, Option<(Vec<String>, u64)>),
    UriMiss,
    /// An index exists but not for these header values.
    VaryMiss {
        vary: Vec<String>,
        generation: u64,
    },
}

async fn read(cache: &Cache, key: &str) -> Option<HttpEntry> {
    match cache.get::<HttpEntry>(key).await {
        Ok(v) => v,
        Err(err) => {
            tracing::warn!(error = %err, "HTTP cache read failed; forwarding the request");
            None
        }
    }
}

async fn find(cache: &Cache, primary: &str, headers: &http::HeaderMap) -> Found {
    match read(cache, primary).await {
        None => Found::UriMiss,
        Some(HttpEntry::Response(r)) => Found::Stored(r, None),
        Some(HttpEntry::Variants { vary, generation }) => {
            let values = vary_values(&vary, headers);
            let key = variant_key(primary, generation, &values);
            match read(cache, &key).await {
                Some(HttpEntry::Response(r)) if r.vary == vary && r.vary_values == values => {
                    Found::Stored(r, Some((vary, generation)))
                }
                _ => Found::VaryMiss { vary, generation },
            }
        }
    }
}

fn matches_request(r: &StoredResponse, headers: &http::HeaderMap) -> bool {
    r.vary_values == vary_values(&r.vary, headers)
}

/// Everything one request needs to carry around.
struct Ctx {
    shared: Arc<Shared>,
    parts: Parts,
    req_cc: RequestDirectives,
    primary: String,
    /// The index found for this URI, reused when a variant is stored.
    index: Option<(Vec<String>, u64)>,
}

impl Ctx {
    fn rules(&self) -> StoreRules {
        StoreRules {
            default_ttl: self.shared.config.default_ttl,
            allow_set_cookie: self.shared.config.allow_set_cookie,
            stale_retention: self.shared.config.stale_retention,
        }
    }

    fn head(&self) -> bool {
        self.parts.method == Method::HEAD
    }
}

async fn handle<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ReqBody: Send + 'static,
    ResBody: OriginBody,
{
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let unsafe_method = matches!(
            method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) || !is_known_safe(&method);
        let (parts, body) = req.into_parts();
        let saved = unsafe_method.then(|| parts.clone());
        let response = inner.call(Request::from_parts(parts, body)).await?;
        if response.extensions().get::<Handled>().is_some() {
            return Ok(response.map(HttpCacheBody::stream));
        }
        if let Some(parts) = saved {
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                invalidate_after_unsafe(&shared, &parts, response.headers()).await;
            }
        }
        let status = CacheStatus {
            fwd: Some("method"),
            fwd_status: Some(response.status().as_u16()),
            ..CacheStatus::default()
        };
        return Ok(with_status(
            &shared,
            response.map(HttpCacheBody::stream),
            &status,
        ));
    }

    let (parts, body) = req.into_parts();
    let req_cc = RequestDirectives::from_headers(&parts.headers);
    let Some(primary) = primary_key(&shared.config, &parts) else {
        let response = inner.call(Request::from_parts(parts, body)).await?;
        let status = CacheStatus {
            fwd: Some("bypass"),
            fwd_status: Some(response.status().as_u16()),
            detail: Some("key"),
            ..CacheStatus::default()
        };
        shared.cache.stats_inner().http_misses.incr();
        return Ok(with_status(
            &shared,
            response.map(HttpCacheBody::stream),
            &status,
        ));
    };
    let now = SystemTime::now();
    let found = find(&shared.cache, &primary, &parts.headers).await;
    let (stored, fwd, index) = match found {
        Found::Stored(r, index) => (Some(r), "stale", index),
        Found::UriMiss => (None, "uri-miss", None),
        Found::VaryMiss { vary, generation } => (None, "vary-miss", Some((vary, generation))),
    };
    let mut ctx = Ctx {
        shared,
        parts,
        req_cc,
        primary,
        index,
    };

    if let Some(r) = stored {
        let auth_blocked = ctx.parts.headers.contains_key(AUTHORIZATION) && !r.policy.auth_ok;
        if !auth_blocked {
            match usability(&r, &ctx.req_cc, now) {
                Use::Fresh | Use::StaleAccepted => {
                    return Ok(serve(&ctx, &r, now, hit(&r, now)));
                }
                Use::StaleWhileRevalidate => {
                    // The client's own (GET) body goes with the background request.
                    refresh_in_background(&ctx, inner, body, r.clone());
                    let mut status = hit(&r, now);
                    status.detail = Some("stale-while-revalidate");
                    return Ok(serve(&ctx, &r, now, status));
                }
                Use::Revalidate => {
                    if ctx.req_cc.only_if_cached {
                        return Ok(gateway_timeout(&ctx));
                    }
                    // RFC 9211: `request` when only the request's
                    // directives keep a fresh response from being used.
                    let fwd = if r.age(now) < r.lifetime() && !r.policy.no_cache {
                        "request"
                    } else {
                        "stale"
                    };
                    return revalidate(&mut ctx, inner, body, r, fwd).await;
                }
            }
        }
        if ctx.req_cc.only_if_cached {
            return Ok(gateway_timeout(&ctx));
        }
        return forward(&ctx, inner, body, "request", None, None, false).await;
    }
    if ctx.req_cc.only_if_cached {
        return Ok(gateway_timeout(&ctx));
    }
    if ctx.head() || !ctx.shared.config.coalesce {
        return forward(&ctx, inner, body, fwd, None, None, false).await;
    }
    match ctx.shared.flights.join_or_lead(&ctx.primary) {
        Role::Leader(leader) => forward(&ctx, inner, body, fwd, None, Some(leader), false).await,
        Role::Follower(rx) => {
            let published = follow(rx).await;
            let now = SystemTime::now();
            if let Some(r) = published
                && matches_request(&r, &ctx.parts.headers)
                && (!ctx.parts.headers.contains_key(AUTHORIZATION) || r.policy.auth_ok)
                && matches!(usability(&r, &ctx.req_cc, now), Use::Fresh)
            {
                let mut status = hit(&r, now);
                status.collapsed = true;
                return Ok(serve(&ctx, &r, now, status));
            }
            forward(&ctx, inner, body, fwd, None, None, true).await
        }
    }
}

fn is_known_safe(m: &Method) -> bool {
    matches!(*m, Method::OPTIONS | Method::TRACE | Method::CONNECT) || m.as_str() == "PROPFIND"
}

fn hit(r: &StoredResponse, now: SystemTime) -> CacheStatus {
    CacheStatus {
        hit: true,
        ttl: Some(r.ttl_secs(now)),
        ..CacheStatus::default()
    }
}

fn with_status<B>(shared: &Shared, mut response: Response<B>, status: &CacheStatus) -> Response<B> {
    let entry = status.render(&shared.config.cache_name);
    let value = match response
        .headers()
        .get(CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
    {
        // The cache closest to the client comes last (RFC 9211 §2).
        Some(existing) => format!("{existing}, {entry}"),
        None => entry,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(CACHE_STATUS, v);
    }
    response.extensions_mut().insert(Handled);
    response
}

/// Answers from `r`: the stored response with `Age`, or a 304 when the
/// client's conditional matches.
fn serve<B>(
    ctx: &Ctx,
    r: &StoredResponse,
    now: SystemTime,
    status: CacheStatus,
) -> Response<HttpCacheBody<B>> {
    ctx.shared.cache.stats_inner().http_hits.incr();
    let response_time =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(r.clock.response_time_ms);
    let response = if not_modified(&ctx.parts.headers, &r.headers, response_time) {
        let full = r.to_response(now, false);
        let mut nm = Response::new(HttpCacheBody::full(Bytes::new()));
        *nm.status_mut() = StatusCode::NOT_MODIFIED;
        for name in NOT_MODIFIED_HEADERS {
            for v in full.headers().get_all(name) {
                nm.headers_mut().append(name.clone(), v.clone());
            }
        }
        nm
    } else {
        r.to_response(now, !ctx.head()).map(HttpCacheBody::full)
    };
    with_status(&ctx.shared, response, &status)
}

fn gateway_timeout<B>(ctx: &Ctx) -> Response<HttpCacheBody<B>> {
    let mut response = Response::new(HttpCacheBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    ctx.shared.cache.stats_inner().http_misses.incr();
    let status = CacheStatus {
        detail: Some("only-if-cached"),
        ..CacheStatus::default()
    };
    with_status(&ctx.shared, response, &status)
}

/// The request as sent to the origin: the client's, or with the stored
/// response's validators in place of the client's conditionals.
fn origin_parts(parts: &Parts, validators_of: Option<&StoredResponse>) -> Parts {
    let mut p = parts.clone();
    if let Some(r) = validators_of {
        for h in [
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_MATCH,
            IF_UNMODIFIED_SINCE,
            IF_RANGE,
        ] {
            p.headers.remove(h);
        }
        if let Some(etag) = r.headers.get(ETAG) {
            p.headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = r.headers.get(LAST_MODIFIED) {
            p.headers.insert(IF_MODIFIED_SINCE, lm.clone());
        }
    }
    p
}

/// Sends the request to the origin and stores what may be stored.
/// `stale` is a stored response that may stand in for an origin failure
/// (`stale-if-error`); `leader` wakes coalesced requests when dropped.
#[allow(clippy::too_many_arguments)]
async fn forward<S, ReqBody, ResBody>(
    ctx: &Ctx,
    mut inner: S,
    body: ReqBody,
    fwd: &'static str,
    stale: Option<Arc<StoredResponse>>,
    leader: Option<Leader>,
    collapsed: bool,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ResBody: OriginBody,
{
    ctx.shared.cache.stats_inner().http_misses.incr();
    let request_time = SystemTime::now();
    let result = inner
        .call(Request::from_parts(origin_parts(&ctx.parts, None), body))
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(r) = stale.as_ref()
                && stale_if_error_allows(r, SystemTime::now())
            {
                return Ok(serve_stale_on_error(ctx, r, None));
            }
            return Err(e);
        }
    };
    if response.status().is_server_error()
        && let Some(r) = stale.as_ref()
        && stale_if_error_allows(r, SystemTime::now())
    {
        return Ok(serve_stale_on_error(ctx, r, Some(response.status())));
    }
    Ok(finish(ctx, response, request_time, fwd, leader, collapsed))
}

fn serve_stale_on_error<B>(
    ctx: &Ctx,
    r: &StoredResponse,
    origin_status: Option<StatusCode>,
) -> Response<HttpCacheBody<B>> {
    let now = SystemTime::now();
    let status = CacheStatus {
        fwd: Some("stale"),
        fwd_status: origin_status.map(|s| s.as_u16()),
        ttl: Some(r.ttl_secs(now)),
        detail: Some("stale-if-error"),
        ..CacheStatus::default()
    };
    serve(ctx, r, now, status)
}

/// Decides whether an origin response is stored and returns it to the
/// client (streaming; a stored body is copied on the way).
fn finish<B>(
    ctx: &Ctx,
    response: Response<B>,
    request_time: SystemTime,
    fwd: &'static str,
    leader: Option<Leader>,
    collapsed: bool,
) -> Response<HttpCacheBody<B>>
where
    B: OriginBody,
{
    let response_time = SystemTime::now();
    if response.extensions().get::<Handled>().is_some() {
        // An inner covet cache already did the work.
        return response.map(HttpCacheBody::stream);
    }
    let (parts, body) = response.into_parts();
    let cc = ResponseDirectives::from_headers(&parts.headers);
    let policy = parts.extensions.get::<CachePolicy>().copied();
    let rules = ctx.rules();
    let decision = match policy {
        Some(CachePolicy::Bypass) => Err("bypass"),
        _ if ctx.shared.config.opt_in && policy != Some(CachePolicy::Store) => Err("opt-in"),
        _ => storable(
            &ctx.parts.method,
            &ctx.parts.headers,
            &ctx.req_cc,
            parts.status,
            &parts.headers,
            &cc,
            &rules,
            response_time,
        ),
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = declared
        .or(body.size_hint().exact())
        .unwrap_or(body.size_hint().lower())
        > ctx.shared.config.max_body_size as u64;
    let decision = match decision {
        Ok(_) if too_large => Err("too-large"),
        other => other,
    };
    let mut status = CacheStatus {
        fwd: Some(fwd),
        fwd_status: Some(parts.status.as_u16()),
        collapsed,
        ..CacheStatus::default()
    };
    let response = match decision {
        Err(reason) => {
            status.detail = Some(reason);
            drop(leader);
            Response::from_parts(parts, HttpCacheBody::stream(body))
        }
        Ok(lifetime) => {
            let mut headers = parts.headers.clone();
            strip_unstorable(&mut headers);
            headers.remove(SET_COOKIE);
            let vary = vary_names(&parts.headers).unwrap_or_default();
            let vary_values = vary_values(&vary, &ctx.parts.headers);
            let template = StoredResponse {
                status: parts.status,
                headers,
                body: Bytes::new(),
                clock: AgeClock::new(&parts.headers, request_time, response_time),
                lifetime_ms: u64::try_from(lifetime.duration().as_millis()).unwrap_or(u64::MAX),
                vary,
                vary_values,
                policy: StoredPolicy::from_directives(&cc),
            };
            status.stored = true;
            status.ttl = Some(template.ttl_secs(response_time));
            let shared = ctx.shared.clone();
            let primary = ctx.primary.clone();
            let index = ctx.index.clone();
            let on_complete = Box::new(move |bytes: Bytes| {
                let mut r = template;
                if !r.headers.contains_key(CONTENT_LENGTH) {
                    r.headers
                        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                }
                r.body = bytes;
                let r = Arc::new(r);
                let Ok(handle) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                handle.spawn(async move {
                    store(&shared, &primary, index, r.clone()).await;
                    if let Some(l) = leader {
                        l.publish(r);
                    }
                });
            });
            Response::from_parts(
                parts,
                HttpCacheBody::tee(body, ctx.shared.config.max_body_size, on_complete),
            )
        }
    };
    with_status(&ctx.shared, response, &status)
}

/// Writes `r` under its key (and the variant index for responses with
/// `Vary`); failures are logged, never returned.
async fn store(
    shared: &Shared,
    primary: &str,
    index: Option<(Vec<String>, u64)>,
    r: Arc<StoredResponse>,
) {
    let rules = StoreRules {
        default_ttl: shared.config.default_ttl,
        allow_set_cookie: shared.config.allow_set_cookie,
        stale_retention: shared.config.stale_retention,
    };
    let ttl = retention(&r, &rules);
    let cache = &shared.cache;
    let result = if r.vary.is_empty() {
        cache
            .set(primary, &HttpEntry::Response(r.clone()), Some(ttl))
            .await
    } else {
        let generation = match index {
            Some((vary, g)) if vary == r.vary => g,
            _ => new_generation(),
        };
        let key = variant_key(primary, generation, &r.vary_values);
        let index = HttpEntry::Variants {
            vary: r.vary.clone(),
            generation,
        };
        match cache.set(primary, &index, Some(ttl)).await {
            Ok(()) => {
                cache
                    .set(&key, &HttpEntry::Response(r.clone()), Some(ttl))
                    .await
            }
            Err(e) => Err(e),
        }
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "storing an HTTP response failed");
    }
}

/// Validates a stored response with the origin (RFC 9111 §4.3).
async fn revalidate<S, ReqBody, ResBody>(
    ctx: &mut Ctx,
    mut inner: S,
    body: ReqBody,
    r: Arc<StoredResponse>,
    fwd: &'static str,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ReqBody: Send + 'static,
    ResBody: OriginBody,
{
    if ctx.head() || !r.has_validator() {
        return forward(ctx, inner, body, fwd, Some(r), None, false).await;
    }
    ctx.shared.cache.stats_inner().http_misses.incr();
    let request_time = SystemTime::now();
    let result = inner
        .call(Request::from_parts(
            origin_parts(&ctx.parts, Some(&r)),
            body,
        ))
        .await;
    let response = match result {
        Ok(resp) => resp,
        Err(e) => {
            if stale_if_error_allows(&r, SystemTime::now()) {
                return Ok(serve_stale_on_error(ctx, &r, None));
            }
            return Err(e);
        }
    };
    if response.status() == StatusCode::NOT_MODIFIED {
        let now = SystemTime::now();
        let fresh = freshened(ctx, &r, response.headers(), request_time, now);
        let fresh = Arc::new(fresh);
        store(&ctx.shared, &ctx.primary, ctx.index.clone(), fresh.clone()).await;
        let status = CacheStatus {
            fwd: Some(fwd),
            fwd_status: Some(304),
            ttl: Some(fresh.ttl_secs(now)),
            stored: true,
            ..CacheStatus::default()
        };
        // Served from the freshened copy: not a second miss.
        let response = serve(ctx, &fresh, now, status);
        return Ok(response);
    }
    if response.status().is_server_error() && stale_if_error_allows(&r, SystemTime::now()) {
        return Ok(serve_stale_on_error(ctx, &r, Some(response.status())));
    }
    Ok(finish(ctx, response, request_time, fwd, None, false))
}

fn freshened(
    ctx: &Ctx,
    r: &StoredResponse,
    not_modified: &http::HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> StoredResponse {
    let mut fresh = r.clone();
    let clock = AgeClock::new(not_modified, request_time, response_time);
    let mut merged = r.headers.clone();
    for name in not_modified.keys() {
        merged.remove(name);
        for v in not_modified.get_all(name) {
            merged.append(name.clone(), v.clone());
        }
    }
    let cc = ResponseDirectives::from_headers(&merged);
    let lifetime = freshness_lifetime(
        r.status,
        &merged,
        &cc,
        ctx.shared.config.default_ttl,
        response_time,
    );
    fresh.freshen(not_modified, clock, lifetime);
    fresh
}

/// `stale-while-revalidate`: one background revalidation per key.
fn refresh_in_background<S, ReqBody, ResBody>(
    ctx: &Ctx,
    inner: S,
    body: ReqBody,
    r: Arc<StoredResponse>,
) where
    S: Origin<ReqBody, ResBody>,
    ReqBody: Send + 'static,
    ResBody: OriginBody,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Role::Leader(leader) = ctx.shared.flights.join_or_lead(&ctx.primary) else {
        return;
    };
    let mut parts = ctx.parts.clone();
    parts.method = Method::GET;
    for h in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ] {
        parts.headers.remove(h);
    }
    let mut bg = Ctx {
        shared: ctx.shared.clone(),
        req_cc: RequestDirectives::default(),
        parts,
        primary: ctx.primary.clone(),
        index: ctx.index.clone(),
    };
    handle.spawn(async move {
        let _leader = leader;
        let result = if r.has_validator() {
            revalidate(&mut bg, inner, body, r, "stale").await
        } else {
            forward(&bg, inner, body, "stale", Some(r), None, false).await
        };
        // Reading the body to its end stores it.
        if let Ok(response) = result {
            let mut body = std::pin::pin!(response.into_body());
            while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                if frame.is_err() {
                    break;
                }
            }
        }
    });
}

/// After a successful unsafe request: drop what is stored for its URI and
/// for same-origin `Location` / `Content-Location` (RFC 9111 §4.4).
async fn invalidate_after_unsafe(shared: &Shared, parts: &Parts, headers: &http::HeaderMap) {
    let mut keys = Vec::new();
    if let Some(k) = primary_key(&shared.config, parts) {
        keys.push(k);
    }
    for name in [LOCATION, CONTENT_LOCATION] {
        if let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok())
            && let Some(uri) = same_origin_target(parts, v)
            && let Ok(target) = uri.parse::<http::Uri>()
        {
            let mut p = parts.clone();
            p.uri = target;
            if let Some(k) = primary_key(&shared.config, &p) {
                keys.push(k);
            }
        }
    }
    for k in keys {
        if let Err(err) = shared.cache.delete(&k).await {
            tracing::warn!(error = %err, "invalidating a stored HTTP response failed");
        }
    }
}
