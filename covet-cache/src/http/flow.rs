//! What the layer does with one request: answer from the cache, revalidate,
//! or forward to the origin and store what may be stored.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION, ETAG, HeaderValue, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, LOCATION,
    RANGE, SET_COOKIE, TRANSFER_ENCODING, VARY,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body::Body;

use super::body::HttpCacheBody;
use super::config::{PrivateRequests, Shared};
use super::directives::RequestDirectives;
use super::flight::{Leader, Role};
use super::freshness::{AgeClock, freshness_lifetime};
use super::invalidation;
use super::key::{Inspected, inspect, key_path, same_origin_target, vary_names, vary_values};
use super::layer::CachePolicy;
use super::policy::{
    CacheStatus, Candidate, Fwd, NOT_MODIFIED_HEADERS, NotStored, Requester, Use, not_modified,
    precondition_outcome, stale_if_error_allows, storable, usability,
};
use super::service::{CACHE_STATUS, Origin, OriginBody};
use super::storage::{Found, find, head_key, invalidate_keys, matches_request, remove, store};
use super::stored::{StoredPolicy, StoredResponse, strip_unstorable};

/// Marks a response a covet HTTP cache already handled, so an outer layer
/// on the same request passes it through.
#[derive(Debug, Clone, Copy)]
struct Handled;

/// The request headers a cache never forwards on a miss it may store: the
/// origin's answer to them (206, 304, 412, 416) is for one client only.
/// The cache evaluates the conditionals itself on the full response.
const CLIENT_CONDITIONALS: [HeaderName; 6] = [
    RANGE,
    IF_RANGE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
];

/// Everything one request needs to carry around.
struct Ctx {
    shared: Arc<Shared>,
    parts: Parts,
    req_cc: RequestDirectives,
    primary: String,
    credentials: Option<&'static str>,
    /// The invalidation mark when the request started.
    since: u64,
    /// The stored `GET` response found for this request: a `HEAD`
    /// forwarded while one is stored updates it (RFC 9111 §4.3.5) and is
    /// not stored itself.
    stored_get: Option<Arc<StoredResponse>>,
}

impl Ctx {
    fn head(&self) -> bool {
        self.parts.method == Method::HEAD
    }

    fn requester(&self) -> Requester<'_> {
        self.requester_as(&self.parts.method)
    }

    /// This request's storing rules, for a response to `method`.
    fn requester_as<'a>(&'a self, method: &'a Method) -> Requester<'a> {
        Requester {
            method,
            cc: &self.req_cc,
            credentials: self.credentials,
        }
    }

    /// Whether `r` may answer this request: anyone may get a stored
    /// response, except that a request with credentials only gets an
    /// explicitly shareable one (or a variant keyed by its credentials).
    fn may_serve(&self, r: &StoredResponse) -> bool {
        let Some(cred) = self.credentials else {
            return true;
        };
        let config = &self.shared.config;
        let keyed = config.vary_by_credentials
            && r.vary.iter().any(|n| match cred {
                "cookie" => n == "cookie",
                _ => n == "authorization" || n == "proxy-authorization",
            });
        keyed
            || r.policy.shareable
            || (config.private_requests == PrivateRequests::Rfc9111 && r.policy.must_revalidate)
    }

    fn miss(&self) {
        self.shared.cache.stats_inner().http_misses.incr();
    }
}

/// Whether a request carries content (a `GET` with a body is never
/// answered from, nor stored in, the cache: the body may change the
/// answer).
fn has_body<B: Body>(req: &Request<B>) -> bool {
    let h = req.headers();
    if h.contains_key(TRANSFER_ENCODING) {
        return true;
    }
    if let Some(len) = h.get(CONTENT_LENGTH) {
        return len.as_bytes() != b"0";
    }
    let hint = req.body().size_hint();
    hint.lower() > 0 || (!req.body().is_end_stream() && hint.exact() != Some(0))
}

pub(crate) async fn handle<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    inner: S,
    req: Request<ReqBody>,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ReqBody: Body + Send + 'static,
    ResBody: OriginBody,
{
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return other_method(shared, inner, req).await;
    }
    let with_body = has_body(&req);
    let (parts, body) = req.into_parts();
    let Inspected {
        key, credentials, ..
    } = inspect(&shared.config, &parts);
    let primary = match key {
        Ok(_) if with_body => return bypass(shared, inner, parts, body, NotStored::Body).await,
        Ok(k) => k,
        Err(detail) => return bypass(shared, inner, parts, body, detail).await,
    };
    let mut ctx = Ctx {
        req_cc: RequestDirectives::from_headers(&parts.headers),
        since: invalidation::mark(),
        shared,
        parts,
        primary,
        credentials,
        stored_get: None,
    };
    let now = SystemTime::now();
    let (stored, fwd) = match find(&ctx.shared, &ctx.primary, &ctx.parts.headers).await {
        Found::Stored(r) => (Some(r), Fwd::Stale),
        Found::UriMiss => (None, Fwd::UriMiss),
        Found::VaryMiss => (None, Fwd::VaryMiss),
    };
    ctx.stored_get.clone_from(&stored);
    // A `HEAD` with no `GET` stored for it: a stored response to an
    // earlier `HEAD` may answer it.
    let stored = match stored {
        None if ctx.head() => {
            match find(&ctx.shared, &head_key(&ctx.primary), &ctx.parts.headers).await {
                Found::Stored(r) => Some(r),
                Found::UriMiss | Found::VaryMiss => None,
            }
        }
        found => found,
    };

    if let Some(r) = stored {
        if ctx.may_serve(&r) {
            match usability(&r, &ctx.req_cc, now) {
                Use::Fresh | Use::StaleAccepted => {
                    return Ok(serve(&ctx, &r, now, hit(&r, now)));
                }
                Use::StaleWhileRevalidate => {
                    // A stored `HEAD` response is served stale without a
                    // refresh (a refresh is a `GET`).
                    if ctx.stored_get.is_some() {
                        refresh_in_background(&ctx, inner, body, r.clone());
                    }
                    let mut status = hit(&r, now);
                    status.detail = Some(NotStored::StaleWhileRevalidate);
                    return Ok(serve(&ctx, &r, now, status));
                }
                Use::Revalidate => {
                    if ctx.req_cc.only_if_cached {
                        return Ok(gateway_timeout(&ctx));
                    }
                    // RFC 9211: `request` when only the request's
                    // directives keep a fresh response from being used.
                    let fwd = if r.age(now) < r.lifetime() && !r.policy.no_cache {
                        Fwd::Request
                    } else {
                        Fwd::Stale
                    };
                    return revalidate(&ctx, inner, body, r, fwd).await;
                }
            }
        }
        if ctx.req_cc.only_if_cached {
            return Ok(gateway_timeout(&ctx));
        }
        return forward(&ctx, inner, body, Trip::new(Fwd::Request)).await;
    }
    if ctx.req_cc.only_if_cached {
        return Ok(gateway_timeout(&ctx));
    }
    if ctx.head() || !ctx.shared.config.coalesce {
        return forward(&ctx, inner, body, Trip::new(fwd)).await;
    }
    match ctx.shared.flights.join_or_lead(&ctx.primary) {
        Role::Leader(leader) => {
            forward(
                &ctx,
                inner,
                body,
                Trip {
                    leader: Some(leader),
                    ..Trip::new(fwd)
                },
            )
            .await
        }
        // An origin asking for its own URL through this layer, from the
        // request's own task: forwarded, never waited for.
        Role::Reentrant => forward(&ctx, inner, body, Trip::new(fwd)).await,
        Role::Follower(follower) => {
            let timeout = ctx.shared.config.coalesce_timeout;
            // After the timeout, go to the origin rather than wait on.
            let published = tokio::time::timeout(timeout, follower.wait()).await;
            let waited = published.is_ok();
            let now = SystemTime::now();
            if let Ok(Some(r)) = published
                && matches_request(&ctx.shared, &r, &ctx.parts.headers)
                && ctx.may_serve(&r)
                && matches!(usability(&r, &ctx.req_cc, now), Use::Fresh)
            {
                let mut status = hit(&r, now);
                status.collapsed = true;
                return Ok(serve(&ctx, &r, now, status));
            }
            forward(
                &ctx,
                inner,
                body,
                Trip {
                    collapsed: waited,
                    ..Trip::new(fwd)
                },
            )
            .await
        }
    }
}

/// Methods other than GET and HEAD: forwarded; a successful unsafe one
/// invalidates its URI and same-origin `Location` / `Content-Location`
/// (RFC 9111 §4.4).
async fn other_method<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ResBody: OriginBody,
{
    let method = req.method().clone();
    let unsafe_method = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) || !is_known_safe(&method);
    let (parts, body) = req.into_parts();
    let target = unsafe_method.then(|| {
        let inspected = inspect(&shared.config, &parts);
        (inspected, key_path(&shared.config, &parts))
    });
    let response = inner.call(Request::from_parts(parts, body)).await?;
    // An inner covet layer that handled the request invalidated its own
    // entries; this layer's (another partition) go as well.
    let handled = response.extensions().get::<Handled>().is_some();
    let status = response.status();
    if let Some((inspected, path)) = target
        && (status.is_success() || status.is_redirection())
    {
        let mut keys = Vec::new();
        if let (Ok(key), Some(origin)) = (&inspected.key, inspected.origin()) {
            for name in [LOCATION, CONTENT_LOCATION] {
                if let Some(v) = response.headers().get(&name).and_then(|v| v.to_str().ok())
                    && let Some(t) = same_origin_target(origin, &path, v)
                {
                    keys.push(inspected.key_for(t.path_and_query().map_or("/", |p| p.as_str())));
                }
            }
            keys.push(key.clone());
        }
        invalidate_keys(&shared, &keys).await;
    }
    if handled {
        return Ok(response.map(HttpCacheBody::stream));
    }
    let cache_status = CacheStatus {
        fwd: Some(Fwd::Method),
        fwd_status: Some(status.as_u16()),
        ..CacheStatus::default()
    };
    Ok(with_status(
        &shared,
        response.map(HttpCacheBody::stream),
        &cache_status,
    ))
}

fn is_known_safe(m: &Method) -> bool {
    matches!(*m, Method::OPTIONS | Method::TRACE | Method::CONNECT) || m.as_str() == "PROPFIND"
}

/// Forwards a request the cache does not handle (no valid key, a body),
/// untouched.
async fn bypass<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    parts: Parts,
    body: ReqBody,
    detail: NotStored,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ResBody: OriginBody,
{
    let response = inner.call(Request::from_parts(parts, body)).await?;
    if response.extensions().get::<Handled>().is_some() {
        return Ok(response.map(HttpCacheBody::stream));
    }
    let status = CacheStatus {
        fwd: Some(Fwd::Bypass),
        fwd_status: Some(response.status().as_u16()),
        detail: Some(detail),
        ..CacheStatus::default()
    };
    shared.cache.stats_inner().http_misses.incr();
    Ok(with_status(
        &shared,
        response.map(HttpCacheBody::stream),
        &status,
    ))
}

fn hit(r: &StoredResponse, now: SystemTime) -> CacheStatus {
    CacheStatus {
        hit: true,
        ttl: Some(r.ttl_secs(now)),
        ..CacheStatus::default()
    }
}

fn with_status<B>(shared: &Shared, mut response: Response<B>, status: &CacheStatus) -> Response<B> {
    #[cfg(feature = "metrics")]
    {
        let label = match (status.hit, status.ttl, status.fwd) {
            (true, Some(ttl), _) if ttl < 0 => "stale",
            (true, _, _) => "hit",
            (false, _, Some(Fwd::Bypass | Fwd::Method)) => "bypass",
            _ => "miss",
        };
        metrics::counter!("covet_http_cache_requests_total", "status" => label).increment(1);
    }
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

/// A `304` or `412` for the client, with what RFC 9110 §15.4.5 lets a 304
/// carry from `headers` (and the client's own `Set-Cookie`, if any).
fn short_answer<B: Body>(code: StatusCode, headers: &HeaderMap) -> Response<HttpCacheBody<B>> {
    let mut r = Response::new(HttpCacheBody::full(Bytes::new()));
    *r.status_mut() = code;
    if code == StatusCode::NOT_MODIFIED {
        for name in NOT_MODIFIED_HEADERS {
            for v in headers.get_all(name) {
                r.headers_mut().append(name.clone(), v.clone());
            }
        }
    }
    for v in headers.get_all(SET_COOKIE) {
        r.headers_mut().append(SET_COOKIE, v.clone());
    }
    r
}

/// Answers from `r`: the stored response with `Age`, or a 304 when the
/// client's conditional matches.
fn serve<B: Body>(
    ctx: &Ctx,
    r: &StoredResponse,
    now: SystemTime,
    status: CacheStatus,
) -> Response<HttpCacheBody<B>> {
    ctx.shared.cache.stats_inner().http_hits.incr();
    let response_time = crate::time::from_epoch_ms(r.clock.response_time_ms);
    let response = if not_modified(&ctx.parts.headers, &r.headers, response_time) {
        short_answer(
            StatusCode::NOT_MODIFIED,
            &r.to_response(now, false).into_parts().0.headers,
        )
    } else if ctx.parts.method == Method::GET && r.status == StatusCode::OK {
        serve_range(ctx, r, now)
    } else {
        r.to_response(now, !ctx.head()).map(HttpCacheBody::full)
    };
    with_status(&ctx.shared, response, &status)
}

/// A stored `200` for a `GET`: the whole body, or the part a single
/// `Range` asks for (`206`), or `416`.
fn serve_range<B: Body>(
    ctx: &Ctx,
    r: &StoredResponse,
    now: SystemTime,
) -> Response<HttpCacheBody<B>> {
    use super::range::{Wanted, part_headers, unsatisfiable_header, wanted};
    let len = r.body.len() as u64;
    match wanted(&ctx.parts.headers, &r.headers, len) {
        Wanted::Whole => r.to_response(now, true).map(HttpCacheBody::full),
        Wanted::Part { first, last } => {
            let mut response = r.to_response(now, true);
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            part_headers(response.headers_mut(), first, last, len);
            #[allow(clippy::cast_possible_truncation)]
            let part = r.body.slice(first as usize..=last as usize);
            response.map(|_| HttpCacheBody::full(part))
        }
        Wanted::Unsatisfiable => {
            let mut response = Response::new(HttpCacheBody::full(Bytes::new()));
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Some(v) = unsatisfiable_header(len) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_RANGE, v);
            }
            response
        }
    }
}

fn gateway_timeout<B: Body>(ctx: &Ctx) -> Response<HttpCacheBody<B>> {
    let mut response = Response::new(HttpCacheBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    ctx.miss();
    let status = CacheStatus {
        detail: Some(NotStored::OnlyIfCached),
        ..CacheStatus::default()
    };
    with_status(&ctx.shared, response, &status)
}

/// The request as sent to the origin: without the client's conditionals
/// and `Range` when its response may be stored (a `GET` or `HEAD`), and
/// with the stored response's validators when revalidating it.
fn origin_parts(ctx: &Ctx, validators_of: Option<&StoredResponse>) -> (Parts, bool) {
    let mut p = ctx.parts.clone();
    let strip = validators_of.is_some() || !ctx.req_cc.no_store;
    if strip {
        for h in &CLIENT_CONDITIONALS {
            p.headers.remove(h);
        }
    }
    if let Some(r) = validators_of {
        if let Some(etag) = r.headers.get(ETAG) {
            p.headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = r.headers.get(LAST_MODIFIED) {
            p.headers.insert(IF_MODIFIED_SINCE, lm.clone());
        }
    }
    (p, strip)
}

/// Why and how a request goes to the origin.
struct Trip {
    /// The `fwd` of `Cache-Status`.
    fwd: Fwd,
    /// A stored response that may stand in for an origin failure
    /// (`stale-if-error`).
    stale: Option<Arc<StoredResponse>>,
    /// Wakes the requests coalesced on this one when dropped.
    leader: Option<Leader>,
    /// This request waited for another one's response first.
    collapsed: bool,
}

impl Trip {
    fn new(fwd: Fwd) -> Trip {
        Trip {
            fwd,
            stale: None,
            leader: None,
            collapsed: false,
        }
    }
}

/// Sends the request to the origin and stores what may be stored.
/// What the trip carries is described on [`Trip`].
async fn forward<S, ReqBody, ResBody>(
    ctx: &Ctx,
    mut inner: S,
    body: ReqBody,
    trip: Trip,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ResBody: OriginBody,
{
    let Trip {
        fwd,
        stale,
        leader,
        collapsed,
    } = trip;
    ctx.miss();
    let request_time = SystemTime::now();
    let (parts, stripped) = origin_parts(ctx, None);
    let result = inner.call(Request::from_parts(parts, body)).await;
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
    let mut updated = None;
    if ctx.head()
        && response.status() == StatusCode::OK
        && let Some(get) = ctx.stored_get.as_ref()
        && ctx.may_serve(get)
    {
        updated = Some(updated_by_head(ctx, get, response.headers(), request_time).await);
    }
    let outcome = Outcome {
        request_time,
        fwd,
        leader,
        collapsed,
        stripped,
        updated,
    };
    Ok(finish(ctx, response, outcome))
}

fn serve_stale_on_error<B: Body>(
    ctx: &Ctx,
    r: &StoredResponse,
    origin_status: Option<StatusCode>,
) -> Response<HttpCacheBody<B>> {
    let now = SystemTime::now();
    let status = CacheStatus {
        fwd: Some(Fwd::Stale),
        fwd_status: origin_status.map(|s| s.as_u16()),
        ttl: Some(r.ttl_secs(now)),
        detail: Some(NotStored::StaleIfError),
        ..CacheStatus::default()
    };
    serve(ctx, r, now, status)
}

/// How an origin response came to be.
struct Outcome {
    request_time: SystemTime,
    fwd: Fwd,
    leader: Option<Leader>,
    collapsed: bool,
    /// The client's conditionals were held back: evaluate them here.
    stripped: bool,
    /// A `HEAD` response that went to updating the stored `GET`: whether
    /// that was stored, and why not. Such a response is not stored itself.
    updated: Option<(bool, Option<NotStored>)>,
}

/// The `Vary` names a stored response is keyed by: its own, and
/// `Accept-Encoding` when it is encoded without saying so (a gzip body
/// must never reach a client that did not ask for it). `true` when
/// `Accept-Encoding` was added.
fn keyed_vary(headers: &HeaderMap) -> (Vec<String>, bool) {
    let mut vary = vary_names(headers).unwrap_or_default();
    let encoded = headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded && !vary.iter().any(|n| n == "accept-encoding") {
        vary.push("accept-encoding".to_owned());
        vary.sort_unstable();
        return (vary, true);
    }
    (vary, false)
}

/// Decides whether an origin response is stored and returns it to the
/// client (streaming; a stored body is read by the cache and copied).
fn finish<B>(ctx: &Ctx, response: Response<B>, outcome: Outcome) -> Response<HttpCacheBody<B>>
where
    B: OriginBody,
{
    let response_time = SystemTime::now();
    if response.extensions().get::<Handled>().is_some() {
        // An inner covet cache already did the work.
        return response.map(HttpCacheBody::stream);
    }
    let (mut parts, body) = response.into_parts();
    let cc = ctx.shared.config.response_directives(&parts.headers);
    let policy = parts.extensions.get::<CachePolicy>().copied();
    let opted_in = policy == Some(CachePolicy::Store);
    let config = &ctx.shared.config;
    let candidate = Candidate {
        status: parts.status,
        headers: &parts.headers,
        cc: &cc,
        opted_in,
    };
    let decision = match policy {
        // A `HEAD` response is stored only while no `GET` is.
        _ if ctx.head() && ctx.stored_get.is_some() => Err(NotStored::Method),
        Some(CachePolicy::Bypass) => Err(NotStored::Bypass),
        _ if config.opt_in && !opted_in => Err(NotStored::OptIn),
        _ => storable(config, &ctx.requester(), &candidate, response_time),
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = declared
        .or(body.size_hint().exact())
        .unwrap_or(body.size_hint().lower())
        > ctx.shared.body_limit() as u64;
    let decision = match decision {
        Ok(_) if too_large => Err(NotStored::TooLarge),
        other => other,
    };
    // The client's own preconditions, on the full response.
    let answer = (outcome.stripped && parts.status.is_success())
        .then(|| precondition_outcome(&ctx.parts.headers, &parts.headers, response_time))
        .flatten();
    let mut status = CacheStatus {
        fwd: Some(outcome.fwd),
        fwd_status: Some(parts.status.as_u16()),
        collapsed: outcome.collapsed,
        ..CacheStatus::default()
    };
    let stored = match (decision, tokio::runtime::Handle::try_current()) {
        (Ok(lifetime), Ok(runtime)) => Ok((lifetime, runtime)),
        (Ok(_), Err(_)) => Err(NotStored::Runtime),
        (Err(reason), _) => Err(reason),
    };
    let (lifetime, runtime) = match stored {
        Ok(stored) => stored,
        Err(reason) => {
            match outcome.updated {
                // The stored `GET` took this `HEAD` response's fields.
                Some((stored, detail)) => (status.stored, status.detail) = (stored, detail),
                None => status.detail = Some(reason),
            }
            drop(outcome.leader);
            let response = match answer {
                Some(code) => short_answer(code, &parts.headers),
                None => Response::from_parts(parts, HttpCacheBody::stream(body)),
            };
            return with_status(&ctx.shared, response, &status);
        }
    };
    let (vary, added) = keyed_vary(&parts.headers);
    if added {
        parts
            .headers
            .append(VARY, HeaderValue::from_static("accept-encoding"));
    }
    let mut headers = parts.headers.clone();
    strip_unstorable(&mut headers);
    headers.remove(SET_COOKIE);
    // Qualified `private="..."` / `no-cache="..."`: the rest is stored.
    for name in cc.private_fields.iter().chain(&cc.no_cache_fields) {
        headers.remove(name.as_str());
    }
    let vary_values = vary_values(&vary, &ctx.parts.headers, &config.ignore_cookies);
    let template = StoredResponse {
        status: parts.status,
        headers,
        body: Bytes::new(),
        clock: AgeClock::new(&parts.headers, outcome.request_time, response_time),
        lifetime_ms: u64::try_from(lifetime.duration().as_millis()).unwrap_or(u64::MAX),
        vary,
        vary_values,
        policy: StoredPolicy::from_directives(&cc, opted_in),
    };
    status.stored = true;
    status.ttl = Some(template.ttl_secs(response_time));
    let shared = ctx.shared.clone();
    let head = ctx.head();
    let key = if head {
        head_key(&ctx.primary)
    } else {
        ctx.primary.clone()
    };
    let since = ctx.since;
    let leader = outcome.leader;
    let spawner = runtime.clone();
    // Counted until the body is stored or given up (see `settled`).
    let pending = shared.pending.begin();
    let on_complete = Box::new(move |bytes: Bytes| {
        let mut r = template;
        if !r.headers.contains_key(CONTENT_LENGTH) {
            r.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        // A `HEAD` response keeps the length of the body it describes;
        // a body the origin sent anyway is not kept.
        r.body = if head { Bytes::new() } else { bytes };
        let r = Arc::new(r);
        spawner.spawn(async move {
            let _pending = pending;
            if store(&shared, &key, since, r.clone()).await
                && let Some(l) = leader
            {
                l.publish(r);
            }
        });
    });
    let limit = ctx.shared.body_limit();
    let body = HttpCacheBody::driven(body, limit, on_complete, &runtime);
    let response = match answer {
        // The cache goes on reading the body it stores.
        Some(code) => short_answer(code, &parts.headers),
        None => Response::from_parts(parts, body),
    };
    with_status(&ctx.shared, response, &status)
}

/// Validates a stored response with the origin (RFC 9111 §4.3).
async fn revalidate<S, ReqBody, ResBody>(
    ctx: &Ctx,
    mut inner: S,
    body: ReqBody,
    r: Arc<StoredResponse>,
    fwd: Fwd,
) -> Result<Response<HttpCacheBody<ResBody>>, S::Error>
where
    S: Origin<ReqBody, ResBody>,
    ResBody: OriginBody,
{
    if ctx.head() || !r.has_validator() {
        return forward(
            ctx,
            inner,
            body,
            Trip {
                stale: Some(r),
                ..Trip::new(fwd)
            },
        )
        .await;
    }
    ctx.miss();
    let request_time = SystemTime::now();
    let (parts, stripped) = origin_parts(ctx, Some(&r));
    let response = match inner.call(Request::from_parts(parts, body)).await {
        Ok(resp) => resp,
        Err(e) => {
            if stale_if_error_allows(&r, SystemTime::now()) {
                return Ok(serve_stale_on_error(ctx, &r, None));
            }
            return Err(e);
        }
    };
    if response.status() == StatusCode::NOT_MODIFIED {
        return Ok(updated_by_304(ctx, &r, response.headers(), request_time, fwd).await);
    }
    if response.status().is_server_error() && stale_if_error_allows(&r, SystemTime::now()) {
        return Ok(serve_stale_on_error(ctx, &r, Some(response.status())));
    }
    let outcome = Outcome {
        request_time,
        fwd,
        leader: None,
        collapsed: false,
        stripped,
        updated: None,
    };
    Ok(finish(ctx, response, outcome))
}

/// The origin says the stored `r` is still good: the stored copy takes
/// the 304's fields (never `Set-Cookie` nor the metadata of the stored
/// body), if the merged response may still be stored for this request;
/// the requester gets the response with every field of its 304.
async fn updated_by_304<B: Body>(
    ctx: &Ctx,
    r: &StoredResponse,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    fwd: Fwd,
) -> Response<HttpCacheBody<B>> {
    let now = SystemTime::now();
    let clock = AgeClock::new(not_modified, request_time, now);
    let config = &ctx.shared.config;
    let (stored, detail) = store_updated(ctx, r, not_modified, clock, now).await;
    let mut status = CacheStatus {
        fwd: Some(fwd),
        fwd_status: Some(304),
        stored,
        detail,
        ..CacheStatus::default()
    };
    let default = if r.policy.opted_in {
        config.default_ttl
    } else {
        config.default_ttl_for(r.status)
    };
    let stored_headers = r.merged_headers(not_modified, true);
    let stored_cc = config.response_directives(&stored_headers);
    let lifetime = freshness_lifetime(r.status, &stored_headers, &stored_cc, default, now);
    let view_headers = r.merged_headers(not_modified, false);
    let view_cc = config.response_directives(&view_headers);
    let view = r.freshened(view_headers, &view_cc, clock, lifetime);
    status.ttl = Some(view.ttl_secs(now));
    // Served from the updated copy: not a second miss.
    serve(ctx, &view, now, status)
}

/// A `200` to a `HEAD` forwarded while a `GET` response is stored (RFC
/// 9111 §4.3.5): when their validators (`ETag`, `Last-Modified`) and the
/// length agree, the stored response takes the `HEAD` response's fields
/// as from a 304; otherwise the stored body is out of date and is
/// dropped. Whether the updated response was stored, and why not.
async fn updated_by_head(
    ctx: &Ctx,
    r: &StoredResponse,
    head: &HeaderMap,
    request_time: SystemTime,
) -> (bool, Option<NotStored>) {
    let agrees = [ETAG, LAST_MODIFIED].iter().all(|name| {
        head.get(name)
            .is_none_or(|v| r.headers.get(name) == Some(v))
    }) && head.get(CONTENT_LENGTH).is_none_or(|v| {
        v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) == Some(r.body.len() as u64)
    });
    if !agrees {
        remove(&ctx.shared, &ctx.primary).await;
        return (false, Some(NotStored::Validators));
    }
    let now = SystemTime::now();
    let clock = AgeClock::new(head, request_time, now);
    store_updated(ctx, r, head, clock, now).await
}

/// Stores `r` with the fields of a response that confirmed it (a 304, or
/// a `HEAD`'s 200), if the merged response may still be stored for this
/// request; drops it when the origin no longer lets it be shared.
/// Whether it was stored, and why not.
async fn store_updated(
    ctx: &Ctx,
    r: &StoredResponse,
    fields: &HeaderMap,
    clock: AgeClock,
    now: SystemTime,
) -> (bool, Option<NotStored>) {
    let config = &ctx.shared.config;
    let stored_headers = r.merged_headers(fields, true);
    let cc = config.response_directives(&stored_headers);
    let candidate = Candidate {
        status: r.status,
        headers: &stored_headers,
        cc: &cc,
        opted_in: r.policy.opted_in,
    };
    match storable(config, &ctx.requester_as(&Method::GET), &candidate, now) {
        Ok(lifetime) => {
            let fresh = Arc::new(r.freshened(stored_headers, &cc, clock, lifetime));
            (
                store(&ctx.shared, &ctx.primary, ctx.since, fresh).await,
                None,
            )
        }
        // Only this request asked not to store: the stored copy stays.
        Err(NotStored::RequestNoStore) => (false, Some(NotStored::RequestNoStore)),
        Err(reason) => {
            // The origin no longer lets it be shared: drop it.
            remove(&ctx.shared, &ctx.primary).await;
            (false, Some(reason))
        }
    }
}

/// `stale-while-revalidate`: one background revalidation per key, and at
/// most the layer's `max_background_refreshes` at once (beyond that the
/// stale response is served without one).
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
    let Ok(permit) = ctx.shared.refreshes.clone().try_acquire_owned() else {
        tracing::debug!("background refreshes at their limit; serving stale without one");
        return;
    };
    let Role::Leader(leader) = ctx.shared.flights.join_or_lead(&ctx.primary) else {
        return;
    };
    let mut parts = ctx.parts.clone();
    parts.method = Method::GET;
    let bg = Ctx {
        shared: ctx.shared.clone(),
        req_cc: RequestDirectives::default(),
        parts,
        primary: ctx.primary.clone(),
        credentials: ctx.credentials,
        since: ctx.since,
        stored_get: Some(r.clone()),
    };
    let pending = ctx.shared.pending.begin();
    handle.spawn(async move {
        let _pending = pending;
        let _leader = leader;
        let _permit = permit;
        // The client's own (GET) body goes with the background request.
        if let Ok(response) = revalidate(&bg, inner, body, r, Fwd::Stale).await {
            let mut body = std::pin::pin!(response.into_body());
            while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                if frame.is_err() {
                    break;
                }
            }
        }
    });
}
