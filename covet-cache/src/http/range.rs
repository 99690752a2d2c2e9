//! Byte ranges answered from a stored complete response (RFC 9110 §14):
//! one `bytes` range (`a-b`, `a-`, `-n`) gets a `206` with its
//! `Content-Range`, a range that starts past the end a `416`; `If-Range`
//! with a strong entity tag (exact match) or a date equal to the stored
//! `Last-Modified` decides whether the range applies. Several ranges, other
//! units and malformed values are answered with the whole `200`, which the
//! RFC allows.

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue};

use super::freshness::parse_date;

/// What a request's `Range` asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The whole response (no usable `Range`, or `If-Range` failed).
    Whole,
    /// Bytes `first..=last`.
    Part { first: u64, last: u64 },
    /// Nothing can be served: `416`.
    Unsatisfiable,
}

/// The range of `req` on the stored response with `headers` and a body of
/// `len` bytes.
pub(crate) fn wanted(req: &HeaderMap, headers: &HeaderMap, len: u64) -> Wanted {
    let mut ranges = req.get_all(RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return Wanted::Whole;
    };
    if !if_range_holds(req, headers) {
        return Wanted::Whole;
    }
    range.to_str().map_or(Wanted::Whole, |r| parse(r, len))
}

/// `If-Range`: absent, or a strong entity tag equal to the stored one, or
/// a date equal to the stored `Last-Modified`.
fn if_range_holds(req: &HeaderMap, headers: &HeaderMap) -> bool {
    let Some(cond) = req.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return req.get(IF_RANGE).is_none();
    };
    let cond = cond.trim();
    if cond.starts_with('"') {
        return headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|etag| etag.trim() == cond);
    }
    if cond.starts_with("W/") {
        return false;
    }
    let (Some(date), Some(modified)) = (
        parse_date(cond),
        headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_date),
    ) else {
        return false;
    };
    date == modified
}

fn parse(range: &str, len: u64) -> Wanted {
    let Some((unit, spec)) = range.split_once('=') else {
        return Wanted::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => Wanted::Whole,
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part {
                first: len.saturating_sub(n),
                last: len - 1,
            },
        },
        (first, "") => match number(first) {
            None => Wanted::Whole,
            Some(f) if f >= len => Wanted::Unsatisfiable,
            Some(f) => Wanted::Part {
                first: f,
                last: len - 1,
            },
        },
        (first, last) => match (number(first), number(last)) {
            (Some(f), Some(l)) if f <= l => {
                if f >= len {
                    Wanted::Unsatisfiable
                } else {
                    Wanted::Part {
                        first: f,
                        last: l.min(len - 1),
                    }
                }
            }
            _ => Wanted::Whole,
        },
    }
}

/// Sets `Content-Range` and `Content-Length` for a part of a `len`-byte body.
pub(crate) fn part_headers(headers: &mut HeaderMap, first: u64, last: u64, len: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")) {
        headers.insert(CONTENT_RANGE, v);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(last - first + 1));
}

/// `Content-Range: bytes */len` of a `416`.
pub(crate) fn unsatisfiable_header(len: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("bytes */{len}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn byte_ranges() {
        let stored = HeaderMap::new();
        let w = |r: &str, len| wanted(&req(&[("range", r)]), &stored, len);
        assert_eq!(w("bytes=0-4", 20), Wanted::Part { first: 0, last: 4 });
        assert_eq!(w("bytes=5-", 20), Wanted::Part { first: 5, last: 19 });
        assert_eq!(
            w("bytes=-3", 20),
            Wanted::Part {
                first: 17,
                last: 19
            }
        );
        assert_eq!(w("bytes=-50", 20), Wanted::Part { first: 0, last: 19 });
        assert_eq!(
            w("bytes=10-100", 20),
            Wanted::Part {
                first: 10,
                last: 19
            }
        );
        assert_eq!(w("BYTES = 1-1", 20), Wanted::Part { first: 1, last: 1 });
        assert_eq!(w("bytes=20-", 20), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=25-30", 20), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0", 20), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-1", 0), Wanted::Unsatisfiable);
        for whole in [
            "bytes=5-2",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes 0-1",
            "bytes=+1-2",
            "bytes=0-99999999999999999999999",
        ] {
            assert_eq!(w(whole, 20), Wanted::Whole, "{whole}");
        }
        let two = req(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
        assert_eq!(wanted(&two, &stored, 20), Wanted::Whole);
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let stored = req(&[
            ("etag", "\"v1\""),
            ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ]);
        let with = |cond: &str| {
            wanted(
                &req(&[("range", "bytes=0-1"), ("if-range", cond)]),
                &stored,
                20,
            )
        };
        let part = Wanted::Part { first: 0, last: 1 };
        assert_eq!(with("\"v1\""), part);
        assert_eq!(with("\"v2\""), Wanted::Whole);
        assert_eq!(with("W/\"v1\""), Wanted::Whole);
        assert_eq!(with("Tue, 01 Dec 2026 00:00:00 GMT"), part);
        assert_eq!(with("Mon, 30 Nov 2026 00:00:00 GMT"), Wanted::Whole);
        assert_eq!(with("garbage"), Wanted::Whole);
    }
}
