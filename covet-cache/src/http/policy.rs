//! Decisions: may a response be stored, may a stored one be served, does a
//! conditional request match, and the `Cache-Status` header (RFC 9211).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use http::header::{
    ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    SET_COOKIE,
};
use http::{HeaderMap, Method, StatusCode};

use super::config::{Config, PrivateRequests};
use super::directives::{RequestDirectives, ResponseDirectives};
use super::freshness::{Lifetime, freshness_lifetime, heuristically_cacheable, parse_date};
use super::stored::StoredResponse;

/// Why a response was not stored, or a request bypassed the cache (the
/// `detail` of `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    Bypass,
    CacheControl,
    Forwarded,
    Host,
    Key,
    Method,
    MustUnderstand,
    NoStore,
    OnlyIfCached,
    OptIn,
    Private,
    RequestNoStore,
    Runtime,
    SetCookie,
    Stale,
    StaleIfError,
    StaleWhileRevalidate,
    Status,
    TooLarge,
    Vary,
    VaryCredentials,
    VaryStar,
    Validators,
    Body,
    Cookie,
    Authorization,
}

impl NotStored {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotStored::Bypass => "bypass",
            NotStored::CacheControl => "cache-control",
            NotStored::Forwarded => "forwarded",
            NotStored::Host => "host",
            NotStored::Key => "key",
            NotStored::Method => "method",
            NotStored::MustUnderstand => "must-understand",
            NotStored::NoStore => "no-store",
            NotStored::OnlyIfCached => "only-if-cached",
            NotStored::OptIn => "opt-in",
            NotStored::Private => "private",
            NotStored::RequestNoStore => "request-no-store",
            NotStored::Runtime => "runtime",
            NotStored::SetCookie => "set-cookie",
            NotStored::Stale => "stale",
            NotStored::StaleIfError => "stale-if-error",
            NotStored::StaleWhileRevalidate => "stale-while-revalidate",
            NotStored::Status => "status",
            NotStored::TooLarge => "too-large",
            NotStored::Vary => "vary",
            NotStored::VaryCredentials => "vary-credentials",
            NotStored::VaryStar => "vary-star",
            NotStored::Validators => "validators",
            NotStored::Body => "body",
            NotStored::Cookie => "cookie",
            NotStored::Authorization => "authorization",
        }
    }
}

/// How a request went forward (the `fwd` of `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fwd {
    UriMiss,
    VaryMiss,
    Stale,
    Request,
    Method,
    Bypass,
}

impl Fwd {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
            Fwd::Method => "method",
            Fwd::Bypass => "bypass",
        }
    }
}

/// The request side of a storing decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requester<'a> {
    pub(crate) method: &'a Method,
    pub(crate) cc: &'a RequestDirectives,
    /// `"cookie"` or `"authorization"` when the request carries them.
    pub(crate) credentials: Option<&'static str>,
}

/// The response side of a storing decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub(crate) status: StatusCode,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) cc: &'a ResponseDirectives,
    /// The response carries [`CachePolicy::Store`](super::CachePolicy::Store).
    pub(crate) opted_in: bool,
}

impl Candidate<'_> {
    /// Shareable with anyone by the origin's own words: `public`,
    /// `s-maxage`, or the app's `CachePolicy::Store`.
    pub(crate) fn explicitly_shareable(&self) -> bool {
        self.cc.public || self.cc.s_maxage.is_present() || self.opted_in
    }

    fn explicit_freshness(&self) -> bool {
        self.cc.max_age.is_present()
            || self.cc.s_maxage.is_present()
            || self.headers.contains_key(http::header::EXPIRES)
    }
}

/// Whether a final status may be stored and shared: the statuses that say
/// the same to everyone (RFC 9110 §15.1's cacheable-by-default ones, less
/// 405, 414 and 501), and temporary redirects only with explicit
/// freshness. An app opts other statuses in with `CachePolicy::Store`.
fn shareable_status(c: &Candidate<'_>) -> bool {
    match c.status.as_u16() {
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 410 => true,
        302 | 307 => c.explicit_freshness(),
        _ => c.opted_in,
    }
}

/// Whether a response to a GET or HEAD may be stored (RFC 9111 §3, with the
/// security defaults of the module docs), and for how long it is fresh.
pub(crate) fn storable(
    config: &Config,
    req: &Requester<'_>,
    c: &Candidate<'_>,
    response_time: SystemTime,
) -> Result<Lifetime, NotStored> {
    let (status, headers, cc) = (c.status, c.headers, c.cc);
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(NotStored::Method);
    }
    if req.cc.no_store {
        return Err(NotStored::RequestNoStore);
    }
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    if cc.malformed {
        // Fail closed: `no-store; private` must never read as "store".
        return Err(NotStored::CacheControl);
    }
    // must-understand lets a cache that knows the status ignore no-store.
    let understood = heuristically_cacheable(status) || status.is_success();
    if cc.no_store && !(cc.must_understand && understood) {
        return Err(NotStored::NoStore);
    }
    if cc.must_understand && !understood {
        return Err(NotStored::MustUnderstand);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    let vary = super::key::vary_names(headers)?;
    let varies_on_credentials = |cred: &str| {
        vary.iter().any(|n| match cred {
            "cookie" => n == "cookie",
            _ => n == "authorization" || n == "proxy-authorization",
        })
    };
    if let Some(cred) = req.credentials {
        let keyed_by_it = config.vary_by_credentials && varies_on_credentials(cred);
        if varies_on_credentials(cred) && !config.vary_by_credentials {
            return Err(NotStored::VaryCredentials);
        }
        let shareable = match config.private_requests {
            PrivateRequests::Explicit => c.explicitly_shareable(),
            PrivateRequests::Rfc9111 => c.explicitly_shareable() || cc.must_revalidate,
        };
        if !shareable && !keyed_by_it {
            return Err(if cred == "cookie" {
                NotStored::Cookie
            } else {
                NotStored::Authorization
            });
        }
    }
    if headers.contains_key(SET_COOKIE) && !(config.allow_set_cookie && c.explicitly_shareable()) {
        return Err(NotStored::SetCookie);
    }
    if !shareable_status(c) {
        return Err(NotStored::Status);
    }
    let default = if c.opted_in {
        config.default_ttl
    } else {
        config.default_ttl_for(status)
    };
    let lifetime = freshness_lifetime(status, headers, cc, default, response_time);
    let has_validator = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
    let stale_window = cc
        .stale_while_revalidate
        .secs()
        .max(cc.stale_if_error.secs())
        .unwrap_or(0);
    if lifetime.duration().is_zero() && !has_validator && stale_window == 0 {
        return Err(NotStored::Stale);
    }
    Ok(lifetime)
}

/// How long the backend keeps a stored response: its freshness, then the
/// longest stale window it may still be used in (revalidation,
/// `max-stale`, `stale-while-revalidate`, `stale-if-error`).
pub(crate) fn retention(r: &StoredResponse, config: &Config) -> Duration {
    let stale = Duration::from_secs(r.policy.swr.unwrap_or(0).max(r.policy.sie.unwrap_or(0)));
    (r.lifetime() + stale.max(config.stale_retention)).max(Duration::from_secs(1))
}

/// What a stored response may be used for, for this request, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Fresh enough: serve it.
    Fresh,
    /// Stale, but the client accepts it (`max-stale`): serve it.
    StaleAccepted,
    /// Stale within `stale-while-revalidate`: serve it and refresh it in
    /// the background.
    StaleWhileRevalidate,
    /// Must be validated with the origin first.
    Revalidate,
}

/// Decides how `r` may answer a request with directives `req` (RFC 9111
/// §4.2.4, §5.2.1, RFC 5861).
pub(crate) fn usability(r: &StoredResponse, req: &RequestDirectives, now: SystemTime) -> Use {
    let age = r.age(now);
    let lifetime = r.lifetime();
    if req.no_cache || r.policy.no_cache {
        return Use::Revalidate;
    }
    let mut fresh = age < lifetime;
    if let Some(max_age) = req.max_age.duration()
        && age > max_age
    {
        fresh = false;
    }
    if req.max_age.is_present() && req.max_age.secs().is_none() {
        // An unusable max-age asks for a fresh response from the origin.
        fresh = false;
    }
    if let Some(min_fresh) = req.min_fresh.duration()
        && lifetime.saturating_sub(age) < min_fresh
    {
        fresh = false;
    }
    if fresh {
        return Use::Fresh;
    }
    if r.policy.forbids_stale {
        return Use::Revalidate;
    }
    let staleness = age.saturating_sub(lifetime);
    // A request max-age that was exceeded is not overridden by max-stale.
    let max_age_exceeded = req.max_age.duration().is_some_and(|m| age > m);
    if let Some(limit) = req.max_stale
        && !max_age_exceeded
        && limit.is_none_or(|s| staleness <= Duration::from_secs(s))
    {
        return Use::StaleAccepted;
    }
    if let Some(swr) = r.policy.swr
        && !max_age_exceeded
        && req.min_fresh.secs().is_none()
        && staleness <= Duration::from_secs(swr)
    {
        return Use::StaleWhileRevalidate;
    }
    Use::Revalidate
}

/// Whether a stale `r` may stand in for a failed or 5xx origin response
/// (`stale-if-error`, RFC 5861 §4).
pub(crate) fn stale_if_error_allows(r: &StoredResponse, now: SystemTime) -> bool {
    if r.policy.forbids_stale {
        return false;
    }
    let staleness = r.age(now).saturating_sub(r.lifetime());
    r.policy
        .sie
        .is_some_and(|s| staleness <= Duration::from_secs(s))
}

/// What a client's own preconditions say about a `2xx` response the cache
/// fetched without them (RFC 9110 §13.2.2): `412` when `If-Match` or
/// `If-Unmodified-Since` fail, `304` when `If-None-Match` or
/// `If-Modified-Since` match, else `None` (send the response).
pub(crate) fn precondition_outcome(
    req: &HeaderMap,
    headers: &HeaderMap,
    fallback_date: SystemTime,
) -> Option<StatusCode> {
    let etag = headers.get(ETAG).and_then(|v| v.to_str().ok());
    if req.contains_key(IF_MATCH) {
        let matched = req
            .get_all(IF_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_etags)
            .any(|c| c == "*" || etag.is_some_and(|e| strong_eq(c, e)));
        if !matched {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let Some(since) = req
        .get(IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date)
        && let Some(modified) = headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_date)
        && modified > since
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    not_modified(req, headers, fallback_date).then_some(StatusCode::NOT_MODIFIED)
}

/// Strong comparison: equal opaque tags, neither of them weak.
fn strong_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    !a.starts_with("W/") && a.starts_with('"') && a.len() >= 2 && a == b
}

/// Whether a client's conditional GET/HEAD is answered with 304 by a
/// response with `headers` (RFC 9110 §13.1.2, §13.1.3, §13.2.2).
pub(crate) fn not_modified(
    req: &HeaderMap,
    headers: &HeaderMap,
    fallback_date: SystemTime,
) -> bool {
    if req.contains_key(IF_NONE_MATCH) {
        let etag = headers.get(ETAG).and_then(|v| v.to_str().ok());
        return req
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_etags)
            .any(|candidate| {
                candidate == "*" && etag.is_some() || etag.is_some_and(|e| weak_eq(candidate, e))
            });
    }
    let Some(since) = req
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date)
    else {
        return false;
    };
    let modified = headers
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date)
        .or_else(|| {
            headers
                .get(http::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_date)
        })
        .unwrap_or(fallback_date);
    modified <= since
}

fn split_etags(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(line[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(line[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Weak comparison: equal opaque tags, whatever their `W/` prefixes.
fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.trim().strip_prefix("W/").unwrap_or(s.trim()).to_owned();
    let (a, b) = (strip(a), strip(b));
    a.starts_with('"') && a.len() >= 2 && a == b
}

/// The headers a 304 carries from the selected response (RFC 9110 §15.4.5).
pub(crate) const NOT_MODIFIED_HEADERS: &[http::HeaderName] = &[
    http::header::CACHE_CONTROL,
    http::header::CONTENT_LOCATION,
    http::header::DATE,
    http::header::ETAG,
    http::header::EXPIRES,
    http::header::VARY,
    http::header::LAST_MODIFIED,
    http::header::AGE,
];

/// One `Cache-Status` entry (RFC 9211).
#[derive(Debug, Clone, Default)]
pub(crate) struct CacheStatus {
    pub(crate) hit: bool,
    pub(crate) fwd: Option<Fwd>,
    pub(crate) fwd_status: Option<u16>,
    pub(crate) ttl: Option<i64>,
    pub(crate) stored: bool,
    pub(crate) collapsed: bool,
    pub(crate) detail: Option<NotStored>,
}

impl CacheStatus {
    pub(crate) fn render(&self, name: &str) -> String {
        let mut s = String::with_capacity(48);
        s.push_str(name);
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            let _ = write!(s, "; fwd={}", f.as_str());
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if let Some(t) = self.ttl {
            let _ = write!(s, "; ttl={t}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            let _ = write!(s, "; detail={}", d.as_str());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn etag_matching() {
        let resp = h(&[("etag", "W/\"v1\"")]);
        let now = SystemTime::now();
        assert!(not_modified(&h(&[("if-none-match", "\"v1\"")]), &resp, now));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\", W/\"v1\"")]),
            &resp,
            now
        ));
        assert!(not_modified(&h(&[("if-none-match", "*")]), &resp, now));
        assert!(!not_modified(
            &h(&[("if-none-match", "\"v2\"")]),
            &resp,
            now
        ));
        assert!(!not_modified(&h(&[("if-none-match", "*")]), &h(&[]), now));
        assert!(!not_modified(
            &h(&[("if-none-match", "v1")]),
            &h(&[("etag", "v1")]),
            now
        ));
        // If-None-Match wins over If-Modified-Since.
        let both = h(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Sun, 06 Nov 2094 08:49:37 GMT"),
        ]);
        assert!(!not_modified(&both, &resp, now));
    }

    #[test]
    fn modified_since() {
        let resp = h(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        let now = SystemTime::now();
        assert!(not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            &resp,
            now
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT")]),
            &resp,
            now
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "garbage")]),
            &resp,
            now
        ));
    }

    #[test]
    fn cache_status_rendering() {
        let s = CacheStatus {
            fwd: Some(Fwd::UriMiss),
            fwd_status: Some(200),
            ttl: Some(60),
            stored: true,
            collapsed: true,
            ..CacheStatus::default()
        };
        assert_eq!(
            s.render("covet"),
            "covet; fwd=uri-miss; fwd-status=200; ttl=60; stored; collapsed"
        );
        let hit = CacheStatus {
            hit: true,
            ttl: Some(-3),
            ..CacheStatus::default()
        };
        assert_eq!(hit.render("covet"), "covet; hit; ttl=-3");
    }
}
