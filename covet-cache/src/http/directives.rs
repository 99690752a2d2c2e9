//! `Cache-Control` (RFC 9111 §5.2) and `Pragma` parsing.
//!
//! Parsing is lenient where the RFC asks recipients to be: several header
//! lines are one list, directive names are case-insensitive, values may be
//! tokens or quoted strings, unknown directives are ignored. Where a value
//! is unusable the result is the conservative one: an invalid `max-age` or
//! `s-maxage` makes the response stale, never fresh.

use std::time::Duration;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

/// The largest delta-seconds value kept (RFC 9111 §1.2.2: 2^31).
pub(crate) const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// A delta-seconds directive value as found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Delta {
    /// The directive is absent.
    #[default]
    Absent,
    /// A valid value (capped at [`MAX_DELTA_SECONDS`]).
    Secs(u64),
    /// Present with a value that is not a delta-seconds (or missing).
    Invalid,
}

impl Delta {
    /// The value, if present and valid.
    pub(crate) fn secs(self) -> Option<u64> {
        match self {
            Delta::Secs(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a `Duration`, if present and valid.
    pub(crate) fn duration(self) -> Option<Duration> {
        self.secs().map(Duration::from_secs)
    }

    /// Whether the directive appeared at all.
    pub(crate) fn is_present(self) -> bool {
        !matches!(self, Delta::Absent)
    }

    // The first occurrence wins (RFC 9111 §4.2.1).
    fn set_once(&mut self, value: Option<&str>) {
        if matches!(self, Delta::Absent) {
            *self = parse_delta(value);
        }
    }
}

/// Parses delta-seconds: ASCII digits only; values beyond 2^31 are capped.
fn parse_delta(value: Option<&str>) -> Delta {
    let Some(v) = value else {
        return Delta::Invalid;
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Delta::Invalid;
    }
    match v.parse::<u64>() {
        Ok(n) => Delta::Secs(n.min(MAX_DELTA_SECONDS)),
        // Only digits: too many of them.
        Err(_) => Delta::Secs(MAX_DELTA_SECONDS),
    }
}

/// The response directives a shared cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct ResponseDirectives {
    /// `max-age`.
    pub(crate) max_age: Delta,
    /// `s-maxage` (shared caches only).
    pub(crate) s_maxage: Delta,
    /// Unqualified `no-cache`: the whole response is revalidated before
    /// every use.
    pub(crate) no_cache: bool,
    /// `no-cache="field, ..."` (lowercase names): the response may be used
    /// without revalidation, but not these fields (a shared cache drops
    /// them when storing).
    pub(crate) no_cache_fields: Vec<String>,
    /// `no-store`.
    pub(crate) no_store: bool,
    /// Unqualified `private`: a shared cache stores nothing.
    pub(crate) private: bool,
    /// `private="field, ..."` (lowercase names): a shared cache may store
    /// the response without these fields.
    pub(crate) private_fields: Vec<String>,
    /// `public`.
    pub(crate) public: bool,
    /// `must-revalidate`.
    pub(crate) must_revalidate: bool,
    /// `proxy-revalidate`.
    pub(crate) proxy_revalidate: bool,
    /// `must-understand`.
    pub(crate) must_understand: bool,
    /// `no-transform`.
    pub(crate) no_transform: bool,
    /// `immutable` (RFC 8246).
    pub(crate) immutable: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub(crate) stale_while_revalidate: Delta,
    /// `stale-if-error` (RFC 5861).
    pub(crate) stale_if_error: Delta,
    /// Some `Cache-Control` line broke the grammar (for example
    /// `no-store; must-revalidate`): a cache must not read such a header as
    /// permission to store.
    pub(crate) malformed: bool,
    /// Read from a targeted field (RFC 9213) instead of `Cache-Control`:
    /// `Expires` is ignored too.
    pub(crate) targeted: bool,
}

impl ResponseDirectives {
    /// The directives from the first of `names` (targeted fields such as
    /// `CDN-Cache-Control`, RFC 9213) that the response carries as a valid
    /// Structured Field dictionary; `None` when none does (then
    /// `Cache-Control` applies). A field that does not parse as a
    /// dictionary, or gives a known directive a value of the wrong type, is
    /// ignored entirely.
    pub(crate) fn targeted(headers: &HeaderMap, names: &[http::HeaderName]) -> Option<Self> {
        names.iter().find_map(|name| {
            let mut lines = Vec::new();
            for v in headers.get_all(name) {
                lines.push(v.to_str().ok()?);
            }
            if lines.is_empty() {
                return None;
            }
            let joined = lines.join(", ");
            let dict: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
            from_dictionary(&dict)
        })
    }
}

/// `ResponseDirectives` from a targeted field's dictionary; `None` when a
/// known directive has a value of the wrong type.
fn from_dictionary(dict: &sfv::Dictionary) -> Option<ResponseDirectives> {
    let mut d = ResponseDirectives {
        targeted: true,
        ..ResponseDirectives::default()
    };
    for (key, entry) in dict {
        let name = key.as_str();
        let seconds = |entry: &sfv::ListEntry| match entry {
            sfv::ListEntry::Item(sfv::Item {
                bare_item: sfv::BareItem::Integer(n),
                ..
            }) => u64::try_from(i64::from(*n))
                .ok()
                .map(|n| Delta::Secs(n.min(MAX_DELTA_SECONDS))),
            _ => None,
        };
        let flag = |entry: &sfv::ListEntry| match entry {
            sfv::ListEntry::Item(sfv::Item {
                bare_item: sfv::BareItem::Boolean(b),
                ..
            }) => Some(*b),
            _ => None,
        };
        // `no-cache` and `private` may list field names (strings).
        let fields = |entry: &sfv::ListEntry| match entry {
            sfv::ListEntry::InnerList(list) => list
                .items
                .iter()
                .map(|i| match &i.bare_item {
                    sfv::BareItem::String(s) => Some(s.as_str().to_ascii_lowercase()),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        };
        match name {
            "max-age" => d.max_age = seconds(entry)?,
            "s-maxage" => d.s_maxage = seconds(entry)?,
            "stale-while-revalidate" => d.stale_while_revalidate = seconds(entry)?,
            "stale-if-error" => d.stale_if_error = seconds(entry)?,
            "no-cache" | "private" => {
                let (set, list) = match (flag(entry), fields(entry)) {
                    (Some(b), _) => (b, Vec::new()),
                    (None, Some(list)) => (false, list),
                    (None, None) => return None,
                };
                if name == "no-cache" {
                    d.no_cache |= set;
                    d.no_cache_fields.extend(list);
                } else {
                    d.private |= set;
                    d.private_fields.extend(list);
                }
            }
            "no-store" | "public" | "must-revalidate" | "proxy-revalidate" | "must-understand"
            | "no-transform" | "immutable" => {
                let b = flag(entry)?;
                match name {
                    "no-store" => d.no_store |= b,
                    "public" => d.public |= b,
                    "must-revalidate" => d.must_revalidate |= b,
                    "proxy-revalidate" => d.proxy_revalidate |= b,
                    "must-understand" => d.must_understand |= b,
                    "no-transform" => d.no_transform |= b,
                    _ => d.immutable |= b,
                }
            }
            // Extensions this cache does not know are ignored.
            _ => {}
        }
    }
    Some(d)
}

impl ResponseDirectives {
    /// Parses every `Cache-Control` line of `headers`.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut d = ResponseDirectives::default();
        let (list, malformed) = directives(headers);
        d.malformed = malformed;
        for (name, value) in list {
            match name.as_str() {
                "max-age" => d.max_age.set_once(value.as_deref()),
                "s-maxage" => d.s_maxage.set_once(value.as_deref()),
                "no-cache" => match field_names(value.as_deref()) {
                    Some(fields) => d.no_cache_fields.extend(fields),
                    None => d.no_cache = true,
                },
                "no-store" => d.no_store = true,
                "private" => match field_names(value.as_deref()) {
                    Some(fields) => d.private_fields.extend(fields),
                    None => d.private = true,
                },
                "public" => d.public = true,
                "must-revalidate" => d.must_revalidate = true,
                "proxy-revalidate" => d.proxy_revalidate = true,
                "must-understand" => d.must_understand = true,
                "no-transform" => d.no_transform = true,
                "immutable" => d.immutable = true,
                "stale-while-revalidate" => d.stale_while_revalidate.set_once(value.as_deref()),
                "stale-if-error" => d.stale_if_error.set_once(value.as_deref()),
                _ => {}
            }
        }
        d
    }

    /// Whether stale responses must never be served without revalidation
    /// (`must-revalidate`, `proxy-revalidate`, or `s-maxage`, which implies
    /// `proxy-revalidate` for a shared cache).
    pub(crate) fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_present()
    }
}

/// The request directives a cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct RequestDirectives {
    /// `max-age`: the client wants a response no older than this.
    pub(crate) max_age: Delta,
    /// `max-stale`: `Some(None)` accepts any staleness, `Some(Some(s))` up
    /// to `s` seconds.
    pub(crate) max_stale: Option<Option<u64>>,
    /// `min-fresh`: the response must stay fresh for at least this long.
    pub(crate) min_fresh: Delta,
    /// `no-cache` (or `Pragma: no-cache` without a `Cache-Control` line):
    /// do not answer from the cache without revalidating.
    pub(crate) no_cache: bool,
    /// `no-store`: store neither this request nor its response.
    pub(crate) no_store: bool,
    /// `only-if-cached`: answer from the cache or with 504.
    pub(crate) only_if_cached: bool,
}

impl RequestDirectives {
    /// Parses the `Cache-Control` lines of `headers`, and `Pragma: no-cache`
    /// when there is no `Cache-Control` (RFC 9111 §5.4).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut d = RequestDirectives::default();
        let mut any = false;
        for (name, value) in directives(headers).0 {
            any = true;
            match name.as_str() {
                "max-age" => d.max_age.set_once(value.as_deref()),
                "max-stale" if d.max_stale.is_none() => {
                    d.max_stale = Some(match value.as_deref() {
                        None => None,
                        Some(v) => match parse_delta(Some(v)) {
                            Delta::Secs(s) => Some(s),
                            // An unusable limit accepts no staleness.
                            _ => Some(0),
                        },
                    });
                }
                "min-fresh" => d.min_fresh.set_once(value.as_deref()),
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                "only-if-cached" => d.only_if_cached = true,
                _ => {}
            }
        }
        if !any && pragma_no_cache(headers) {
            d.no_cache = true;
        }
        d
    }
}

fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(PRAGMA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
}

/// The field names of a qualified `no-cache` / `private`; `None` for the
/// unqualified form, and for a value that names no valid field (read as
/// unqualified: the stricter meaning).
fn field_names(value: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = value?
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let valid = !names.is_empty()
        && names
            .iter()
            .all(|n| http::HeaderName::from_bytes(n.as_bytes()).is_ok());
    valid.then_some(names)
}

/// Every directive of every `Cache-Control` line (lowercase name and the
/// unquoted value), and whether any line broke the grammar of RFC 9111
/// §5.2 (a name that is not a token, a value that is neither a token nor a
/// closed quoted string, whitespace around `=`, bytes that are not visible
/// ASCII). Malformed items are left out of the list; callers that decide
/// about storing treat a malformed header as a refusal.
fn directives(headers: &HeaderMap) -> (Vec<(String, Option<String>)>, bool) {
    let mut out = Vec::new();
    let mut malformed = false;
    for line in headers.get_all(CACHE_CONTROL) {
        match line.to_str() {
            Ok(line) => malformed |= !split_list(line, &mut out),
            Err(_) => malformed = true,
        }
    }
    (out, malformed)
}

/// Splits one header line into directives, honouring quoted strings (a
/// comma inside quotes does not end a directive); `false` if some item
/// was malformed (and left out).
fn split_list(line: &str, out: &mut Vec<(String, Option<String>)>) -> bool {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            items.push(&line[start..i]);
            start = i + 1;
        }
    }
    if in_quotes {
        // An unterminated quoted string swallows the rest of the line.
        return false;
    }
    items.push(&line[start..]);
    let mut well_formed = true;
    for item in items {
        let item = item.trim_matches([' ', '\t']);
        if item.is_empty() {
            // Empty list elements are allowed (RFC 9110 §5.6.1).
            continue;
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        let value_ok = value.is_none_or(valid_value);
        if name.is_empty() || !name.bytes().all(is_tchar) || !value_ok {
            well_formed = false;
            continue;
        }
        out.push((name.to_ascii_lowercase(), value.map(unquote)));
    }
    well_formed
}

/// A directive value: a token, or a quoted string closed at its end.
fn valid_value(v: &str) -> bool {
    if let Some(inner) = v.strip_prefix('"') {
        let mut escaped = false;
        let mut closed_at = None;
        for (i, c) in inner.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                closed_at = Some(i);
                break;
            }
        }
        return closed_at.is_some_and(|i| i + 1 == inner.len());
    }
    !v.is_empty() && v.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The content of a quoted string (escapes removed), or the token as is.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_owned();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(lines: &[(&http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn resp(lines: &[&str]) -> ResponseDirectives {
        let l: Vec<_> = lines.iter().map(|v| (&CACHE_CONTROL, *v)).collect();
        ResponseDirectives::from_headers(&headers(&l))
    }

    fn req(lines: &[(&http::HeaderName, &str)]) -> RequestDirectives {
        RequestDirectives::from_headers(&headers(lines))
    }

    #[test]
    fn basic_response_directives() {
        let d = resp(&["public, max-age=60, s-maxage=30, must-revalidate"]);
        assert!(d.public && d.must_revalidate && !d.no_store);
        assert_eq!(d.max_age, Delta::Secs(60));
        assert_eq!(d.s_maxage, Delta::Secs(30));
        assert!(d.forbids_stale());
    }

    #[test]
    fn several_lines_are_one_list_and_names_ignore_case() {
        let d = resp(&["Max-Age=10", "NO-STORE", "private"]);
        assert_eq!(d.max_age, Delta::Secs(10));
        assert!(d.no_store && d.private);
    }

    #[test]
    fn qualified_no_cache_and_private_name_fields() {
        let d = resp(&["max-age=60, private=\"Set-Cookie, X-User\", no-cache=\"x-debug\""]);
        assert!(!d.private && !d.no_cache);
        assert_eq!(d.private_fields, ["set-cookie", "x-user"]);
        assert_eq!(d.no_cache_fields, ["x-debug"]);
        // Unqualified, empty or invalid lists keep the strict meaning.
        for line in ["private", "private=\"\"", "private=\"a b\""] {
            let d = resp(&[line]);
            assert!(d.private && d.private_fields.is_empty(), "{line}");
        }
        let d = resp(&["no-cache=\"\""]);
        assert!(d.no_cache);
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(resp(&["max-age=10, max-age=20"]).max_age, Delta::Secs(10));
        assert_eq!(resp(&["max-age=10", "max-age=20"]).max_age, Delta::Secs(10));
    }

    #[test]
    fn quoted_values_and_commas_inside_quotes() {
        let d = resp(&["max-age=\"60\", no-cache=\"Set-Cookie, X-Foo\", private=\"a\""]);
        assert_eq!(d.max_age, Delta::Secs(60));
        assert_eq!(d.no_cache_fields, ["set-cookie", "x-foo"]);
        assert_eq!(d.private_fields, ["a"]);
        let d = resp(&["ext=\"a,max-age=5\", max-age=7"]);
        assert_eq!(d.max_age, Delta::Secs(7));
        let d = resp(&["ext=\"unterminated, max-age=5"]);
        assert_eq!(d.max_age, Delta::Absent, "inside the open quote");
        assert!(d.malformed);
    }

    #[test]
    fn bad_values_are_invalid_not_fresh() {
        for v in [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "max-age=\"\"",
        ] {
            assert_eq!(resp(&[v]).max_age, Delta::Invalid, "{v}");
            assert_eq!(resp(&[v]).max_age.secs(), None, "{v}");
        }
        assert_eq!(
            resp(&["max-age=99999999999999999999999"]).max_age,
            Delta::Secs(MAX_DELTA_SECONDS)
        );
        assert_eq!(
            resp(&["max-age=4294967296"]).max_age,
            Delta::Secs(MAX_DELTA_SECONDS)
        );
    }

    #[test]
    fn unknown_and_malformed_directives_are_ignored() {
        let d = resp(&["foo, bar=baz, , max-age=5, ,,"]);
        assert_eq!(d.max_age, Delta::Secs(5));
        assert!(
            !d.malformed,
            "unknown directives and empty elements are fine"
        );
        let d = resp(&["community=\"UCI\""]);
        assert_eq!(d, ResponseDirectives::default());
    }

    #[test]
    fn malformed_lines_are_flagged() {
        for v in [
            "no-store; must-revalidate",
            "=5, max-age=5",
            "max-age=",
            "max-age= 5",
            "max-age =5",
            "max-age=\"5\"x",
            "private, ext=\"open",
            "max age=5",
        ] {
            let d = resp(&[v]);
            assert!(d.malformed, "{v}");
            assert!(!d.no_store, "{v}: a malformed item is not read");
        }
        // One bad line taints the whole header.
        assert!(resp(&["max-age=60", "no-store;"]).malformed);
        let mut h = HeaderMap::new();
        h.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=60, \xff").unwrap(),
        );
        assert!(ResponseDirectives::from_headers(&h).malformed);
        for v in [
            "max-age=60",
            "public,max-age=60",
            "ext=\"a, \\\"b\\\"\", max-age=1",
            "max-age=3600.0",
        ] {
            assert!(!resp(&[v]).malformed, "{v}");
        }
    }

    #[test]
    fn stale_extensions() {
        let d = resp(&["max-age=1, stale-while-revalidate=30, stale-if-error=600"]);
        assert_eq!(d.stale_while_revalidate, Delta::Secs(30));
        assert_eq!(d.stale_if_error, Delta::Secs(600));
        assert!(!d.forbids_stale());
    }

    #[test]
    fn request_directives() {
        let d = req(&[(
            &CACHE_CONTROL,
            "max-age=5, min-fresh=3, only-if-cached, no-store",
        )]);
        assert_eq!(d.max_age, Delta::Secs(5));
        assert_eq!(d.min_fresh, Delta::Secs(3));
        assert!(d.only_if_cached && d.no_store && !d.no_cache);
        assert_eq!(req(&[(&CACHE_CONTROL, "max-stale")]).max_stale, Some(None));
        assert_eq!(
            req(&[(&CACHE_CONTROL, "max-stale=10")]).max_stale,
            Some(Some(10))
        );
        assert_eq!(
            req(&[(&CACHE_CONTROL, "max-stale=x")]).max_stale,
            Some(Some(0))
        );
        assert_eq!(req(&[]).max_stale, None);
    }

    #[test]
    fn pragma_only_without_cache_control() {
        assert!(req(&[(&PRAGMA, "no-cache")]).no_cache);
        assert!(req(&[(&PRAGMA, "foo, No-Cache")]).no_cache);
        assert!(!req(&[(&PRAGMA, "no-cache"), (&CACHE_CONTROL, "max-age=5")]).no_cache);
        assert!(!req(&[(&PRAGMA, "other")]).no_cache);
    }
}
