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
//! - Storing: responses to `GET` (and to `HEAD`, see below) with a
//!   status that is safe to share
//!   (200, 203, 204, 300, 301, 308, 404, 410; 302 and 307 only with
//!   explicit freshness; never an interim 1xx or a 206), unless the
//!   response says `no-store` (`must-understand` honoured) or `private`
//!   (unqualified), the
//!   request says `no-store`, or the response carries `Set-Cookie` or
//!   `Vary: *` (see the security defaults below). Freshness from
//!   `s-maxage`, `max-age`, `Expires - Date`, then
//!   [`HttpCacheLayer::default_ttl`] (2xx and 3xx) or
//!   [`HttpCacheLayer::negative_ttl`] (404 and 410), then 10 % of the time
//!   since `Last-Modified` (at most a day). Invalid `max-age`/`s-maxage`
//!   values, invalid `Expires` dates and an invalid `Age` (a list, or not
//!   a non-negative integer) make a response stale. Qualified
//!   `private="field, ..."` and `no-cache="field, ..."` drop the named
//!   fields from the stored copy and store the rest (served without
//!   revalidation); an empty or invalid field list keeps the unqualified
//!   meaning. Fields named by `Connection` and the hop-by-hop fields are
//!   never stored or served from the cache. Several
//!   `Cache-Control` lines, quoted values and unknown directives are
//!   handled; HTTP dates in all three formats.
//! - Serving: the age of RFC 9111 §4.2.3 (origin `Age` and `Date`
//!   included) in an `Age` header; request `max-age`, `min-fresh`,
//!   `max-stale`, `no-cache`, `Pragma: no-cache`, `only-if-cached` (504);
//!   `no-cache`, `must-revalidate`, `proxy-revalidate` and `s-maxage`
//!   responses never served stale.
//! - `HEAD`: answered from a stored `GET`; while none is stored, a
//!   response to `HEAD` is stored on its own (under the same rules) and
//!   answers later `HEAD`s only. A `HEAD` forwarded while a stale `GET` is
//!   stored updates it (RFC 9111 §4.3.5): when the `ETag`,
//!   `Last-Modified` and `Content-Length` it carries match the stored
//!   response's, the stored response takes its fields and freshness as
//!   from a `304`; otherwise the stored response is dropped
//!   (`detail=validators`).
//! - `Vary`: one variant per combination of the named request headers'
//!   values, at most [`HttpCacheLayer::max_variants`] per URI; `Vary: *` is
//!   never served from the cache.
//! - Conditional requests: `If-None-Match` (weak comparison) and
//!   `If-Modified-Since` answered with `304` from a stored response, and
//!   `If-Match` / `If-Unmodified-Since` evaluated on a response fetched on
//!   a miss (`412`); stale responses with a validator are revalidated with
//!   `If-None-Match` / `If-Modified-Since`, and a `304` from the origin
//!   freshens the stored response and updates its headers (not the ones
//!   its body depends on, nor `Set-Cookie`: see below).
//! - Targeted cache control (RFC 9213), off by default:
//!   [`HttpCacheLayer::targeted`] names fields such as `CDN-Cache-Control`
//!   that, when a response carries one as a valid Structured Field
//!   dictionary, replace `Cache-Control` and `Expires` for this cache's
//!   storing and freshness decisions; an invalid one is ignored entirely.
//! - Ranges: a `GET` with one `bytes` range (`a-b`, `a-`, `-n`) on a
//!   stored `200` is answered from the cache with `206` and its
//!   `Content-Range`, or `416` (`Content-Range: bytes */len`) when the
//!   range starts past the end; `If-Range` applies the range only on a
//!   strong entity tag that matches exactly or a date equal to the stored
//!   `Last-Modified`. Several ranges, other units and malformed values get
//!   the whole `200` (as RFC 9110 allows); `HEAD` ignores `Range`. A `206`
//!   from the origin is passed through and never stored.
//! - `stale-while-revalidate` (one background refresh per key, at most
//!   [`HttpCacheLayer::max_background_refreshes`] at once) and
//!   `stale-if-error` (origin errors and 5xx).
//! - Invalidation: a successful `POST`, `PUT`, `PATCH`, `DELETE` (or any
//!   method not known to be safe) removes the responses stored for its URI
//!   and for same-origin `Location` / `Content-Location`;
//!   [`HttpCache::invalidate`] and [`HttpCacheLayer::invalidate`] from
//!   code (every variant, partition and stored `HEAD`);
//!   `cache.delete_pattern("http:*")` and `cache.clear()`. A response
//!   read from the origin before an invalidation of its URI and finished
//!   after it is not stored.
//! - Concurrent misses for one URI send one request to the origin; the
//!   others wait for its response (`collapsed` in `Cache-Status`), at most
//!   [`HttpCacheLayer::coalesce_timeout`].
//! - Streaming: responses pass through as streams. A response being
//!   stored is read by the cache at the origin's pace, up to
//!   [`HttpCacheLayer::max_body_size`], and handed to the client as it
//!   arrives: a slow or vanished client delays neither the store nor the
//!   requests waiting for it. A larger body is not stored, never buffered
//!   whole, and read only as fast as the client reads it.
//! - `Cache-Status` (RFC 9211) on every response that passed through the
//!   layer: `hit`, `fwd=uri-miss|vary-miss|stale|request|method|bypass`,
//!   `fwd-status`, `ttl`, `stored`, `collapsed`, and a `detail` naming why
//!   a response was not stored or the request bypassed the cache (`host`,
//!   `body`, `cookie`, `authorization`, `set-cookie`, `status`,
//!   `cache-control`, `vary`, `vary-credentials`...).
//! - Bounds per layer: [`HttpCacheLayer::max_entries`] and
//!   [`HttpCacheLayer::max_bytes`] evict the layer's own least recently
//!   used entries, never other users' of the same [`Cache`];
//!   [`HttpCacheLayer::partition`] keeps layers on one cache (nested ones,
//!   say) from answering from each other's entries.
//! - [`HttpCacheLayer::settled`] waits until every response the layer
//!   began storing is stored (for tests and graceful shutdown).
//! - Beyond the RFC: [`HttpCacheLayer::default_ttl`] (Django's
//!   `cache_page`), per-response [`CachePolicy`] (opt out, or opt in under
//!   [`HttpCacheLayer::opt_in`]), a key prefix and a key extension (for
//!   example a tenant header).
//!
//! # Security defaults
//! An application cache sits next to sessions and authentication. These
//! defaults keep one user's response from reaching another and keep
//! requests from storing a response under another request's key; each
//! says how to opt out.
//! - **No credentials leak through the cache.** A request with `Cookie`,
//!   `Authorization` or `Proxy-Authorization` is answered from the cache,
//!   and its response stored, only when the response is explicitly
//!   shareable: `public`, `s-maxage`, or [`CachePolicy::Store`].
//!   `default_ttl`, the `Last-Modified` heuristic, background refreshes
//!   and `must-revalidate` never make it shareable: a page that greets by
//!   cookie is never served to someone else. Opt out: cookies that do not
//!   change responses with [`HttpCacheLayer::ignore_cookies`] (analytics),
//!   or RFC 9111's own rule for apps whose responses never depend on
//!   cookies with [`HttpCacheLayer::private_requests`]
//!   ([`PrivateRequests::Rfc9111`]).
//! - **`Set-Cookie` is never stored.** A response with `Set-Cookie` is not
//!   stored, unless [`HttpCacheLayer::allow_set_cookie`] is on and the
//!   response is explicitly shareable; then it is stored without its
//!   `Set-Cookie` lines. A `304` from the origin that revalidates a stored
//!   response gives its `Set-Cookie` (a session layer refreshing a
//!   logged-in user's cookie) to the client that asked and never to the
//!   stored copy, which also keeps its own `Content-Type`,
//!   `Content-Encoding`, `Content-Length`, `Content-Language` and `Vary`
//!   (its body and key depend on them). The merged response must pass the
//!   storing rules again for the request that revalidated it, or the
//!   stored copy is dropped.
//! - **One validated authority.** The key's host comes from the request
//!   target or the single `Host` header; a missing, duplicated or
//!   malformed authority (a `/`, `@`, space or bad port), or a target and
//!   `Host` that disagree, bypass the cache (`detail=host`), so
//!   `Host: example.com/static` can never put `/app.js` under
//!   `/static/app.js`. [`HttpCacheLayer::allowed_hosts`] limits caching to
//!   known hosts. Every part of a key is encoded so that two different
//!   requests never share one key.
//! - **Forwarding headers are part of the key.** `Forwarded`,
//!   `X-Forwarded-Host`, `-Proto`, `-Port`, `-Prefix` and the other headers
//!   frameworks build URLs from (and method overrides) are keyed when
//!   present, so a poisoned link built from `X-Forwarded-Host` stays with
//!   the request that sent it. Behind a proxy that sets them, say so with
//!   [`HttpCacheLayer::trusted_forwarding`]: keys then take their scheme
//!   and host from them. `http` and `https` never share an entry.
//! - **The origin answers for everyone.** On a miss the client's `Range`,
//!   `If-Range`, `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
//!   `If-Modified-Since` are not forwarded (the cache evaluates them on the
//!   full response, and adds its own validators when it revalidates), so
//!   no `206`, `304`, `412` or `416` meant for one client is stored. A
//!   range request gets the full `200` on a miss. A `GET` with a body
//!   bypasses the cache (`detail=body`). Only statuses safe to share are
//!   stored (see above): a `500`, `403` or `412` with `max-age` is not, unless
//!   the app marks it [`CachePolicy::Store`].
//! - **Routers keep their own entries.** Under axum's `nest`, keys use the
//!   original URI (`OriginalUri`), so routers nested at `/v1` and `/v2`
//!   never share an entry or a coalesced request;
//!   [`HttpCacheLayer::key_uri`] does the same for other routers.
//! - **Encodings and variants.** A response with `Content-Encoding` and no
//!   `Vary: Accept-Encoding` is keyed (and marked) as if it had one. At
//!   most [`HttpCacheLayer::max_variants`] variants per URI are kept. A
//!   response with `Vary: Cookie` or `Vary: Authorization` is stored for
//!   requests with those credentials only under
//!   [`HttpCacheLayer::vary_by_credentials`].
//! - **Bounded waiting.** Coalesced requests wait at most
//!   [`HttpCacheLayer::coalesce_timeout`] for another's origin request;
//!   background refreshes are bounded by
//!   [`HttpCacheLayer::max_background_refreshes`].
//! - **Parsing fails closed.** A malformed `Cache-Control` (for example
//!   `no-store; must-revalidate`) or `Vary` is never read as permission to
//!   store (`detail=cache-control`, `detail=vary`).
//!
//! # What is not
//! - Several ranges in one request (`multipart/byteranges`): answered with
//!   the whole response; `206` responses from the origin are never stored.
//! - Storing responses to `POST` with `Content-Location`.
//! - Responses with trailers are passed through but not stored.
//! - The scheme is taken from the request target or a trusted proxy's
//!   header (`http` when neither says): a server that terminates TLS
//!   itself and also serves plain HTTP on the same layer should tell the
//!   two apart with [`HttpCacheLayer::key_uri`] or a key prefix per
//!   listener.
//! - Invalidation wins over slower stores within one process; between
//!   processes sharing a Redis cache the window is the store's own write.
//! - When a body's length is unknown up front, `stored` in `Cache-Status`
//!   means the response is being stored; it is dropped if it outgrows the
//!   size limit.
//!
//! [`Cache`]: crate::Cache
//! [`Stats::http_hits`]: crate::Stats::http_hits
//! [`Stats::http_misses`]: crate::Stats::http_misses

mod body;
mod bounds;
mod config;
mod directives;
mod flight;
mod flow;
mod freshness;
mod future;
mod invalidation;
mod key;
mod layer;
mod policy;
mod range;
mod service;
mod storage;
mod stored;

pub use body::HttpCacheBody;
pub use config::{
    DEFAULT_CACHE_NAME, DEFAULT_COALESCE_TIMEOUT, DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_BACKGROUND_REFRESHES, DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_VARIANTS,
    DEFAULT_STALE_RETENTION, Forwarding, PrivateRequests,
};
pub use future::ResponseFuture;
pub use layer::{CachePolicy, FieldNames, HttpCacheLayer};
pub use service::{CACHE_STATUS, HttpCache};
