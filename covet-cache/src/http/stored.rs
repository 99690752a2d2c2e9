//! Stored responses and what a cache key holds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::directives::ResponseDirectives;
use super::freshness::{AgeClock, Lifetime};

/// What the primary key of a URI holds: the response itself, or, for a
/// response with `Vary`, the header names its variants are keyed by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum HttpEntry {
    /// The one response for this URI (no `Vary`).
    Response(Arc<StoredResponse>),
    /// Variants live under `<primary>#<generation>:<hash of values>`. A new
    /// generation after an invalidation makes older variants unreachable.
    Variants {
        /// Lowercase header names.
        vary: Vec<String>,
        /// Random per index.
        generation: u64,
        /// The hashes of the variants stored, oldest first (at most the
        /// layer's `max_variants`).
        variants: Vec<u64>,
    },
}

/// A response kept by the HTTP cache.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) clock: AgeClock,
    /// Freshness lifetime in milliseconds.
    pub(crate) lifetime_ms: u64,
    /// `Vary` header names and the request's values for them.
    pub(crate) vary: Vec<String>,
    pub(crate) vary_values: Vec<Option<String>>,
    pub(crate) policy: StoredPolicy,
}

/// The response directives that matter when serving, read once when the
/// response is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct StoredPolicy {
    /// `no-cache`: revalidate before every use.
    pub(crate) no_cache: bool,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never serve
    /// stale.
    pub(crate) forbids_stale: bool,
    /// `stale-while-revalidate` seconds.
    pub(crate) swr: Option<u64>,
    /// `stale-if-error` seconds.
    pub(crate) sie: Option<u64>,
    /// Explicitly shareable: `public`, `s-maxage`, or stored with
    /// `CachePolicy::Store`; only such responses answer private requests.
    pub(crate) shareable: bool,
    /// `must-revalidate` (which RFC 9111 §3.5 also lets answer requests
    /// with `Authorization`, under `PrivateRequests::Rfc9111`).
    pub(crate) must_revalidate: bool,
    /// Stored with `CachePolicy::Store` (kept when a 304 updates it).
    pub(crate) opted_in: bool,
}

impl StoredPolicy {
    pub(crate) fn from_directives(cc: &ResponseDirectives, opted_in: bool) -> Self {
        StoredPolicy {
            no_cache: cc.no_cache,
            forbids_stale: cc.forbids_stale(),
            swr: cc.stale_while_revalidate.secs(),
            sie: cc.stale_if_error.secs(),
            shareable: cc.public || cc.s_maxage.is_present() || opted_in,
            must_revalidate: cc.must_revalidate,
            opted_in,
        }
    }
}

/// Fields of a `304` never merged into a stored response nor the response
/// served from it: the stored body and the stored key depend on them
/// (RFC 9111 §3.2 lets a cache keep such fields).
const BODY_BOUND: &[HeaderName] = &[
    CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_RANGE,
    http::header::VARY,
];

/// Fields of a `304` that the client whose request was revalidated gets,
/// but that are never stored: the origin said them to that client (a
/// session cookie refreshed for a logged-in user must never reach anyone
/// else), and representation metadata must not change under a stored
/// body.
const REQUESTER_ONLY: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "content-type",
    "content-language",
];

/// Headers a stored response never keeps: hop-by-hop fields and our own
/// per-delivery ones (RFC 9111 §3.1).
pub(crate) fn strip_unstorable(headers: &mut HeaderMap) {
    let mut connection_named: Vec<HeaderName> = Vec::new();
    for v in headers.get_all(http::header::CONNECTION) {
        if let Ok(v) = v.to_str() {
            for n in v.split(',') {
                if let Ok(name) = HeaderName::from_bytes(n.trim().as_bytes()) {
                    connection_named.push(name);
                }
            }
        }
    }
    for name in connection_named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authentication-info",
        "trailer",
        "cache-status",
    ] {
        headers.remove(name);
    }
}

impl StoredResponse {
    /// About how many bytes this response takes: body, header fields and
    /// the request values of its variant.
    pub(crate) fn approx_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let vary: usize = self
            .vary
            .iter()
            .map(String::len)
            .chain(self.vary_values.iter().flatten().map(String::len))
            .sum();
        self.body.len() + headers + vary + 64
    }

    pub(crate) fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms)
    }

    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        self.clock.current_age(now)
    }

    /// Remaining freshness (negative when stale), in whole seconds for the
    /// `ttl` of `Cache-Status`.
    pub(crate) fn ttl_secs(&self, now: SystemTime) -> i64 {
        let life = i128::from(self.lifetime_ms);
        let age = i128::try_from(self.age(now).as_millis()).unwrap_or(i128::MAX);
        i64::try_from((life - age).div_euclid(1000)).unwrap_or(i64::MIN)
    }

    pub(crate) fn has_validator(&self) -> bool {
        self.headers.contains_key(http::header::ETAG)
            || self.headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// The headers of this response updated from a `304 Not Modified`
    /// (RFC 9111 §3.2, §4.3.4): every field of the 304 replaces the stored
    /// one, except those the stored body depends on, hop-by-hop fields and,
    /// `for_storage`, those meant for the requester only.
    pub(crate) fn merged_headers(&self, not_modified: &HeaderMap, for_storage: bool) -> HeaderMap {
        let mut incoming = not_modified.clone();
        strip_unstorable(&mut incoming);
        for name in BODY_BOUND {
            incoming.remove(name);
        }
        if for_storage {
            for name in REQUESTER_ONLY {
                incoming.remove(*name);
            }
        }
        let mut merged = self.headers.clone();
        let names: Vec<HeaderName> = incoming.keys().cloned().collect();
        for name in names {
            merged.remove(&name);
            for v in incoming.get_all(&name) {
                merged.append(name.clone(), v.clone());
            }
        }
        merged
    }

    /// This response with `headers` (from [`merged_headers`]), restarted
    /// age clock and lifetime.
    ///
    /// [`merged_headers`]: StoredResponse::merged_headers
    pub(crate) fn freshened(
        &self,
        headers: HeaderMap,
        cc: &ResponseDirectives,
        clock: AgeClock,
        lifetime: Lifetime,
    ) -> StoredResponse {
        StoredResponse {
            status: self.status,
            policy: StoredPolicy::from_directives(cc, self.policy.opted_in),
            headers,
            body: self.body.clone(),
            clock,
            lifetime_ms: u64::try_from(lifetime.duration().as_millis()).unwrap_or(u64::MAX),
            vary: self.vary.clone(),
            vary_values: self.vary_values.clone(),
        }
    }

    /// The response to send: the stored headers plus `Age`.
    pub(crate) fn to_response(&self, now: SystemTime, with_body: bool) -> http::Response<Bytes> {
        let body = if with_body {
            self.body.clone()
        } else {
            Bytes::new()
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        let age = self
            .age(now)
            .as_secs()
            .min(super::directives::MAX_DELTA_SECONDS);
        response.headers_mut().insert(AGE, HeaderValue::from(age));
        response
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    clock: AgeClock,
    lifetime_ms: u64,
    vary: Vec<String>,
    vary_values: Vec<Option<String>>,
    policy: StoredPolicy,
}

impl Serialize for StoredResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            status: self.status.as_u16(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: self.body.to_vec(),
            clock: self.clock,
            lifetime_ms: self.lifetime_ms,
            vary: self.vary.clone(),
            vary_values: self.vary_values.clone(),
            policy: self.policy,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for StoredResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = Wire::deserialize(d)?;
        let status = StatusCode::from_u16(w.status).map_err(D::Error::custom)?;
        let mut headers = HeaderMap::with_capacity(w.headers.len());
        for (n, v) in w.headers {
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(D::Error::custom)?;
            let value = HeaderValue::from_bytes(&v).map_err(D::Error::custom)?;
            headers.append(name, value);
        }
        Ok(StoredResponse {
            status,
            headers,
            body: Bytes::from(w.body),
            clock: w.clock,
            lifetime_ms: w.lifetime_ms,
            vary: w.vary,
            vary_values: w.vary_values,
            policy: w.policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_postcard() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.append("etag", HeaderValue::from_static("\"v1\""));
        let r = StoredResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"hello"),
            clock: AgeClock {
                initial_age_ms: 5,
                response_time_ms: 10,
            },
            lifetime_ms: 60_000,
            vary: vec!["accept".into()],
            vary_values: vec![Some("text/html".into())],
            policy: StoredPolicy::default(),
        };
        let bytes = postcard::to_allocvec(&HttpEntry::Response(Arc::new(r.clone()))).unwrap();
        let back: HttpEntry = postcard::from_bytes(&bytes).unwrap();
        match back {
            HttpEntry::Response(b) => assert_eq!(*b, r),
            HttpEntry::Variants { .. } => panic!("wrong variant"),
        }
    }

    #[test]
    fn a_304_updates_headers_but_never_the_body_bound_or_requester_only_ones() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("5"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        headers.insert("x-old", HeaderValue::from_static("keep"));
        headers.insert("cache-control", HeaderValue::from_static("max-age=1"));
        let r = StoredResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"hello"),
            clock: AgeClock {
                initial_age_ms: 0,
                response_time_ms: 0,
            },
            lifetime_ms: 1000,
            vary: vec![],
            vary_values: vec![],
            policy: StoredPolicy::from_directives(&ResponseDirectives::default(), true),
        };
        let mut nm = HeaderMap::new();
        nm.insert("content-length", HeaderValue::from_static("0"));
        nm.insert("content-encoding", HeaderValue::from_static("gzip"));
        nm.insert("content-type", HeaderValue::from_static("text/html"));
        nm.insert("vary", HeaderValue::from_static("cookie"));
        nm.insert("set-cookie", HeaderValue::from_static("id=alice"));
        nm.insert(
            "cache-control",
            HeaderValue::from_static("max-age=60, must-revalidate"),
        );
        nm.insert("connection", HeaderValue::from_static("close"));
        let stored = r.merged_headers(&nm, true);
        assert_eq!(stored["content-length"], "5");
        assert_eq!(stored["content-type"], "text/plain");
        assert_eq!(stored["cache-control"], "max-age=60, must-revalidate");
        assert_eq!(stored["x-old"], "keep");
        for absent in ["connection", "set-cookie", "content-encoding", "vary"] {
            assert!(!stored.contains_key(absent), "{absent}");
        }
        let requester = r.merged_headers(&nm, false);
        assert_eq!(requester["set-cookie"], "id=alice");
        assert_eq!(requester["content-type"], "text/html");
        assert_eq!(requester["content-length"], "5");
        assert!(!requester.contains_key("content-encoding"));
        let clock = AgeClock {
            initial_age_ms: 0,
            response_time_ms: 99,
        };
        let cc = ResponseDirectives::from_headers(&stored);
        let fresh = r.freshened(
            stored,
            &cc,
            clock,
            Lifetime::Explicit(Duration::from_secs(60)),
        );
        assert_eq!(fresh.lifetime_ms, 60_000);
        assert!(fresh.policy.forbids_stale);
        assert!(
            fresh.policy.opted_in && fresh.policy.shareable,
            "the opt-in survives"
        );
        assert_eq!(fresh.clock, clock);
    }
}
