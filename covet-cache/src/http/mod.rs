//! HTTP caching semantics (feature `http`): the parts of RFC 9111 a shared
//! cache needs, as plain functions over `http` types.
//!
//! - [`ResponseDirectives`] / [`RequestDirectives`]: `Cache-Control`
//!   (several lines, quoted values, unknown directives ignored, invalid
//!   values conservative) and `Pragma: no-cache`.
//! - [`freshness_lifetime`]: `s-maxage`, `max-age`, `Expires`, a configured
//!   default, then the `Last-Modified` heuristic.
//! - [`AgeClock`]: the age of a stored response, including the origin's
//!   `Age` and `Date`.
//! - [`parse_date`]: HTTP dates in all three formats.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use covet_cache::http::{freshness_lifetime, Lifetime, ResponseDirectives};
//! use http::{HeaderMap, HeaderValue, StatusCode, header::CACHE_CONTROL};
//!
//! let mut headers = HeaderMap::new();
//! headers.append(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
//! headers.append(CACHE_CONTROL, HeaderValue::from_static("s-maxage=\"30\", x-unknown"));
//! let cc = ResponseDirectives::from_headers(&headers);
//! assert!(cc.public);
//! let life = freshness_lifetime(StatusCode::OK, &headers, &cc, None, SystemTime::now());
//! assert_eq!(life, Lifetime::Explicit(Duration::from_secs(30)));
//! ```

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
