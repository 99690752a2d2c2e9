//! Freshness lifetime and age (RFC 9111 §4.2).

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::directives::{Delta, ResponseDirectives};

/// Heuristic freshness is this fraction of the time since `Last-Modified`
/// (RFC 9111 §4.2.2 suggests 10 %) ...
const HEURISTIC_FRACTION: u32 = 10;
/// ... and never more than a day.
pub(crate) const MAX_HEURISTIC_FRESHNESS: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses an HTTP date in any of the three formats of RFC 9110 §5.6.7
/// (IMF-fixdate, RFC 850, asctime); `None` if it is none of them.
pub(crate) fn parse_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

/// The value of the single header `name` as an HTTP date. Several lines or
/// an unparsable value are `Err(())` (treated as "in the past" for
/// `Expires`); an absent header is `Ok(None)`.
fn header_date(headers: &HeaderMap, name: http::HeaderName) -> Result<Option<SystemTime>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let date = first.to_str().ok().and_then(parse_date).ok_or(())?;
    Ok(Some(date))
}

/// Status codes that are cacheable by default (RFC 9110 §15.1), so that
/// heuristic freshness may apply. 206 is left out: partial content is not
/// stored.
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// How a freshness lifetime was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// From `s-maxage`, `max-age` or `Expires`.
    Explicit(Duration),
    /// From `Last-Modified` (RFC 9111 §4.2.2).
    Heuristic(Duration),
    /// From the layer's configured default.
    Default(Duration),
    /// None may be computed: the response is stale once stored (it can
    /// still be stored and revalidated if it has a validator).
    None,
}

impl Lifetime {
    /// The lifetime, zero when there is none.
    pub(crate) fn duration(self) -> Duration {
        match self {
            Lifetime::Explicit(d) | Lifetime::Heuristic(d) | Lifetime::Default(d) => d,
            Lifetime::None => Duration::ZERO,
        }
    }
}

/// The freshness lifetime of a response in a shared cache (RFC 9111
/// §4.2.1): `s-maxage`, then `max-age`, then `Expires - Date`; an invalid
/// value of the first of these present makes the response stale. Without
/// explicit freshness, `default_ttl` when configured, else the heuristic
/// where the status allows it.
pub(crate) fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &ResponseDirectives,
    default_ttl: Option<Duration>,
    response_time: SystemTime,
) -> Lifetime {
    for delta in [cc.s_maxage, cc.max_age] {
        match delta {
            Delta::Secs(s) => return Lifetime::Explicit(Duration::from_secs(s)),
            Delta::Invalid => return Lifetime::Explicit(Duration::ZERO),
            Delta::Absent => {}
        }
    }
    let date = match header_date(headers, DATE) {
        Ok(Some(d)) => d,
        _ => response_time,
    };
    // A targeted field (RFC 9213) replaces `Expires` as well.
    let expires = if cc.targeted {
        Ok(None)
    } else {
        header_date(headers, EXPIRES)
    };
    match expires {
        Ok(Some(expires)) => {
            return Lifetime::Explicit(expires.duration_since(date).unwrap_or(Duration::ZERO));
        }
        // An invalid Expires (for example "0") means already expired.
        Err(()) => return Lifetime::Explicit(Duration::ZERO),
        Ok(None) => {}
    }
    if let Some(ttl) = default_ttl {
        return Lifetime::Default(ttl);
    }
    if (heuristically_cacheable(status) || cc.public)
        && let Ok(Some(modified)) = header_date(headers, LAST_MODIFIED)
        && let Ok(since) = date.duration_since(modified)
    {
        return Lifetime::Heuristic((since / HEURISTIC_FRACTION).min(MAX_HEURISTIC_FRESHNESS));
    }
    Lifetime::None
}

/// When and how a stored response was received: what its age is computed
/// from (RFC 9111 §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AgeClock {
    /// `corrected_initial_age`, in milliseconds.
    pub(crate) initial_age_ms: u64,
    /// `response_time`, in milliseconds since the Unix epoch.
    pub(crate) response_time_ms: u64,
}

use crate::time::to_epoch_ms as epoch_ms;

/// The origin's `Age` header in delta-seconds: 0 when absent. `Age` is a
/// singleton: a list (several lines, or a comma) or a value that is not a
/// non-negative integer cannot be trusted to say how old the response is,
/// so it counts as the largest age (`MAX_DELTA_SECONDS`), which makes the
/// response stale (it is then revalidated, never served as fresh).
pub(crate) fn age_value(headers: &HeaderMap) -> u64 {
    let max = super::directives::MAX_DELTA_SECONDS;
    let mut lines = headers.get_all(AGE).iter();
    let Some(first) = lines.next() else {
        return 0;
    };
    if lines.next().is_some() {
        return max;
    }
    let Ok(v) = first.to_str() else {
        return max;
    };
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return max;
    }
    v.parse::<u64>().unwrap_or(max).min(max)
}

impl AgeClock {
    /// The clock of a response received at `response_time` for a request
    /// sent at `request_time`.
    pub(crate) fn new(
        headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let date = header_date(headers, DATE).ok().flatten();
        let apparent_age = date
            .and_then(|d| response_time.duration_since(d).ok())
            .unwrap_or(Duration::ZERO);
        let response_delay = response_time
            .duration_since(request_time)
            .unwrap_or(Duration::ZERO);
        let corrected_age_value = Duration::from_secs(age_value(headers)) + response_delay;
        let initial = apparent_age.max(corrected_age_value);
        AgeClock {
            initial_age_ms: u64::try_from(initial.as_millis()).unwrap_or(u64::MAX),
            response_time_ms: epoch_ms(response_time),
        }
    }

    /// `current_age` at `now`.
    pub(crate) fn current_age(&self, now: SystemTime) -> Duration {
        let resident = epoch_ms(now).saturating_sub(self.response_time_ms);
        Duration::from_millis(self.initial_age_ms.saturating_add(resident))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CACHE_CONTROL;

    fn h(lines: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in lines {
            m.append(n.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn lifetime(lines: &[(http::HeaderName, &str)], default_ttl: Option<Duration>) -> Lifetime {
        let headers = h(lines);
        let cc = ResponseDirectives::from_headers(&headers);
        let now = parse_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        freshness_lifetime(StatusCode::OK, &headers, &cc, default_ttl, now)
    }

    #[test]
    fn three_date_formats() {
        let a = parse_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(a));
        assert_eq!(parse_date("Sun Nov  6 08:49:37 1994"), Some(a));
        for bad in ["0", "-1", "yesterday", "", "Sun, 06 Nov 1994 25:49:37 GMT"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn explicit_lifetimes_in_priority_order() {
        use http::header::{DATE, EXPIRES};
        assert_eq!(
            lifetime(&[(CACHE_CONTROL, "max-age=60, s-maxage=5")], None),
            Lifetime::Explicit(Duration::from_secs(5))
        );
        assert_eq!(
            lifetime(
                &[
                    (CACHE_CONTROL, "max-age=60"),
                    (EXPIRES, "Sun, 06 Nov 1994 09:49:37 GMT")
                ],
                None
            ),
            Lifetime::Explicit(Duration::from_secs(60))
        );
        assert_eq!(
            lifetime(
                &[
                    (DATE, "Sun, 06 Nov 1994 08:49:37 GMT"),
                    (EXPIRES, "Sunday, 06-Nov-94 08:50:37 GMT")
                ],
                None
            ),
            Lifetime::Explicit(Duration::from_secs(60))
        );
        assert_eq!(
            lifetime(
                &[(CACHE_CONTROL, "max-age=x")],
                Some(Duration::from_secs(9))
            ),
            Lifetime::Explicit(Duration::ZERO),
            "invalid max-age is stale, not the default"
        );
        assert_eq!(
            lifetime(&[(EXPIRES, "0")], Some(Duration::from_secs(9))),
            Lifetime::Explicit(Duration::ZERO),
            "invalid Expires is already expired"
        );
    }

    #[test]
    fn default_then_heuristic() {
        use http::header::{DATE, LAST_MODIFIED};
        assert_eq!(
            lifetime(&[], Some(Duration::from_secs(30))),
            Lifetime::Default(Duration::from_secs(30))
        );
        assert_eq!(lifetime(&[], None), Lifetime::None);
        assert_eq!(
            lifetime(
                &[
                    (DATE, "Sun, 06 Nov 1994 08:49:37 GMT"),
                    (LAST_MODIFIED, "Sun, 06 Nov 1994 07:49:37 GMT")
                ],
                None
            ),
            Lifetime::Heuristic(Duration::from_secs(360))
        );
        assert_eq!(
            lifetime(&[(LAST_MODIFIED, "Thu, 06 Nov 1980 07:49:37 GMT")], None),
            Lifetime::Heuristic(MAX_HEURISTIC_FRESHNESS)
        );
    }

    #[test]
    fn age_follows_rfc_9111() {
        use http::header::{AGE, DATE};
        let t0 = parse_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let sent = t0;
        let received = t0 + Duration::from_secs(2);
        // Origin says Age: 10; the response took 2 s.
        let c = AgeClock::new(&h(&[(AGE, "10")]), sent, received);
        assert_eq!(c.current_age(received), Duration::from_secs(12));
        assert_eq!(
            c.current_age(received + Duration::from_secs(5)),
            Duration::from_secs(17)
        );
        // The Date is 30 s before receipt: apparent age wins.
        let c = AgeClock::new(
            &h(&[(AGE, "1"), (DATE, "Sun, 06 Nov 1994 08:49:09 GMT")]),
            sent,
            received,
        );
        assert_eq!(c.current_age(received), Duration::from_secs(30));
        // A Date in the future counts as zero; a bad Age as the largest age.
        let c = AgeClock::new(
            &h(&[(DATE, "Sun, 06 Nov 2094 09:49:09 GMT")]),
            received,
            received,
        );
        assert_eq!(c.current_age(received), Duration::ZERO);
        for bad in ["abc", "10, 20", "-5", "1.5", ""] {
            assert_eq!(age_value(&h(&[(AGE, bad)])), 1 << 31, "{bad:?}");
        }
        let mut two = h(&[(AGE, "10")]);
        two.append(AGE, HeaderValue::from_static("20"));
        assert_eq!(age_value(&two), 1 << 31);
        assert_eq!(age_value(&h(&[(AGE, "99999999999999999999")])), 1 << 31);
    }
}
