//! HTTP response caching for tower and axum (feature `http`):
//! [`HttpCacheLayer`] puts a shared cache, as RFC 9111 defines it, in front
//! of any `Service<http::Request<B>>`, storing responses in a [`Cache`]
//! (in memory, Redis, two tiers...) next to `#[cached]` values: the same
//! namespace, statistics ([`Stats::http_hits`], [`Stats::http_misses`]) and
//! invalidation, so one `cache.clear()` empties both.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use covet_cache::{Cache, http::HttpCacheLayer};
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = Cache::memory();
//! let svc = ServiceBuilder::new()
//!     .layer(HttpCacheLayer::new(cache.clone()))
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         let mut r = Response::new(Full::new(Bytes::from("hello")));
//!         r.headers_mut().insert("cache-control", "max-age=60".parse().unwrap());
//!         Ok::<_, Infallible>(r)
//!     }));
//! let req = || Request::get("http://example.com/hello").body(Full::default()).unwrap();
//!
//! let first = svc.clone().oneshot(req()).await.unwrap();
//! assert_eq!(first.headers()["cache-status"], "covet; fwd=uri-miss; fwd-status=200; ttl=60; stored");
//! first.into_body().collect().await.unwrap(); // storing completes with the body
//! # tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//!
//! let second = svc.oneshot(req()).await.unwrap();
//! assert!(second.headers()["cache-status"].to_str().unwrap().starts_with("covet; hit"));
//! assert_eq!(second.headers()["age"], "0");
//! assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "hello");
//! assert_eq!(cache.stats().http_hits, 1);
//! # });
//! ```
//!
//! # What is implemented
//! - Storing: responses to `GET` with a final status, unless the response
//!   says `no-store` (`must-understand` honoured) or `private` (qualified
//!   or not), the request says `no-store`, the response carries
//!   `Set-Cookie` (see [`HttpCacheLayer::allow_set_cookie`]), or has
//!   `Vary: *`. Freshness from `s-maxage`, `max-age`, `Expires - Date`,
//!   then [`HttpCacheLayer::default_ttl`], then 10 % of the time since
//!   `Last-Modified` (at most a day) for the statuses RFC 9110 makes
//!   cacheable by default. Invalid `max-age`/`s-maxage` values and invalid
//!   `Expires` dates make a response stale. Several `Cache-Control` lines,
//!   quoted values and unknown directives are handled; HTTP dates in all
//!   three formats.
//! - Serving: the age of RFC 9111 §4.2.3 (origin `Age` and `Date`
//!   included) in an `Age` header; request `max-age`, `min-fresh`,
//!   `max-stale`, `no-cache`, `Pragma: no-cache`, `only-if-cached` (504);
//!   `HEAD` answered from a stored `GET`; `no-cache`, `must-revalidate`,
//!   `proxy-revalidate` and `s-maxage` responses never served stale.
//! - `Vary`: one variant per combination of the named request headers'
//!   values; `Vary: *` is never served from the cache.
//! - Conditional requests: `If-None-Match` (weak comparison) and
//!   `If-Modified-Since` answered with `304` from a stored response; stale
//!   responses with a validator are revalidated with `If-None-Match` /
//!   `If-Modified-Since`, and a `304` from the origin freshens the stored
//!   response and updates its headers.
//! - `stale-while-revalidate` (one background refresh per key) and
//!   `stale-if-error` (origin errors and 5xx).
//! - Invalidation: a successful `POST`, `PUT`, `PATCH`, `DELETE` (or any
//!   method not known to be safe) removes the responses stored for its URI
//!   and for same-origin `Location` / `Content-Location`;
//!   [`HttpCache::invalidate`] and [`HttpCacheLayer::invalidate`] from
//!   code; `cache.delete_pattern("http:*")` and `cache.clear()`.
//! - Requests with `Authorization` only get stored responses marked
//!   `public`, `s-maxage` or `must-revalidate`.
//! - Concurrent misses for one URI send one request to the origin; the
//!   others wait for its response (`collapsed` in `Cache-Status`).
//! - Streaming: responses pass through as streams; a response being
//!   stored is copied on the way, up to [`HttpCacheLayer::max_body_size`]
//!   (a larger body is not stored and is never buffered whole).
//! - `Cache-Status` (RFC 9211) on every response that passed through the
//!   layer: `hit`, `fwd=uri-miss|vary-miss|stale|request|method|bypass`,
//!   `fwd-status`, `ttl`, `stored`, `collapsed`, and a `detail` naming why
//!   a response was not stored.
//! - Beyond the RFC: [`HttpCacheLayer::default_ttl`] (Django's
//!   `cache_page`), per-response [`CachePolicy`] (opt out, or opt in under
//!   [`HttpCacheLayer::opt_in`]), a key prefix and a key extension (for
//!   example a tenant header).
//!
//! # What is not
//! - Range requests and `206` responses (passed through, never stored).
//! - Storing responses to `HEAD` (answered from `GET`s only) and to
//!   `POST` with `Content-Location`.
//! - Qualified `no-cache="field"` and `private="field"` are treated as
//!   their unqualified forms (the whole response is revalidated or not
//!   stored).
//! - Responses with trailers are passed through but not stored.
//! - The scheme is taken from the request target (`http` when it has
//!   none, as behind a TLS-terminating proxy): keys do not tell `http` and
//!   `https` apart unless the request target does.
//! - When a body's length is unknown up front, `stored` in `Cache-Status`
//!   means the response is being stored; it is dropped if it outgrows the
//!   size limit or the client stops reading before the end.
//!
//! The RFC 9111 building blocks are public too:
//! [`ResponseDirectives`] / [`RequestDirectives`] (`Cache-Control` and
//! `Pragma`), [`freshness_lifetime`], [`AgeClock`] and [`parse_date`].
//!
//! [`Cache`]: crate::Cache
//! [`Stats::http_hits`]: crate::Stats::http_hits
//! [`Stats::http_misses`]: crate::Stats::http_misses

mod body;
mod directives;
mod flight;
mod freshness;
mod future;
mod key;
mod layer;
mod policy;
mod service;
mod stored;

pub use body::HttpCacheBody;
pub use future::ResponseFuture;
pub use layer::{
    CachePolicy, DEFAULT_CACHE_NAME, DEFAULT_KEY_PREFIX, DEFAULT_MAX_BODY_SIZE,
    DEFAULT_STALE_RETENTION, HttpCacheLayer,
};
pub use service::{CACHE_STATUS, HttpCache};

pub use directives::{Delta, MAX_DELTA_SECONDS, RequestDirectives, ResponseDirectives};
pub use freshness::{
    AgeClock, Lifetime, MAX_HEURISTIC_FRESHNESS, age_value, freshness_lifetime,
    heuristically_cacheable, parse_date,
};
