//! Cache keys for HTTP responses.
//!
//! A primary key is the key prefix, the effective request URI (RFC 9110
//! §7.1: scheme, validated authority, path and query) and then, each after
//! one space, the request parts that frameworks build responses from
//! without the URI saying so: forwarding headers (`f.<name>=<value>`), the
//! layer's key extension (`x=<value>`) and its partition (`p=<name>`).
//! Values are percent-encoded, so no value can contain the space, `#` or
//! `=` that separate the parts, and two different requests never produce
//! one key. Responses with `Vary` add ` #<generation>:<hash>`, stored
//! `HEAD` responses ` @head` (see `storage`).

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::config::{Config, Forwarding};
use super::policy::NotStored;

/// The request headers that frameworks read to build URLs (or to route a
/// request as another method) although the URI does not carry them. A
/// request with any of them is stored under a key that includes their
/// values, unless [`HttpCacheLayer::trusted_forwarding`] says a proxy
/// sets them.
///
/// [`HttpCacheLayer::trusted_forwarding`]: super::HttpCacheLayer::trusted_forwarding
const FORWARDING: &[&str] = &[
    "forwarded",
    "front-end-https",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-host",
    "x-http-method",
    "x-http-method-override",
    "x-method-override",
    "x-original-host",
    "x-original-url",
    "x-rewrite-url",
    "x-scheme",
    "x-url-scheme",
];

/// Where [`FORWARDING`] lists `name`, if it does.
fn forwarding_index(name: &str) -> Option<usize> {
    // Every listed name but two starts with "x-": skip the common headers
    // (accept, user-agent, cookie...) with one comparison.
    if !(name.starts_with("x-") || name == "forwarded" || name == "front-end-https") {
        return None;
    }
    FORWARDING.iter().position(|f| *f == name)
}

/// What one pass over a request's headers found.
#[derive(Debug)]
pub(crate) struct Inspected {
    /// The primary key, or why the request bypasses the cache (the
    /// `detail` of `Cache-Status`).
    pub(crate) key: Result<String, NotStored>,
    /// The request carries credentials that responses may depend on:
    /// `"cookie"` or `"authorization"` (also `Proxy-Authorization`).
    pub(crate) credentials: Option<&'static str>,
    /// Where the scheme and authority are in the key: `prefix_len..end`.
    origin: (usize, usize),
    /// Where the forwarding headers and the extension start in the key.
    suffix: usize,
}

impl Inspected {
    /// `scheme://authority` of the key (for same-origin checks).
    pub(crate) fn origin(&self) -> Option<&str> {
        self.key
            .as_ref()
            .ok()
            .map(|k| &k[self.origin.0..self.origin.1])
    }

    /// The key of another path and query on the same origin, with the
    /// same forwarding headers and extension.
    pub(crate) fn key_for(&self, path_and_query: &str) -> String {
        let key = self.key.as_deref().unwrap_or_default();
        format!(
            "{}{path_and_query}{}",
            &key[..self.origin.1],
            &key[self.suffix..]
        )
    }
}

/// The path of the URI keys are built from (see [`inspect`]).
pub(crate) fn key_path(config: &Config, parts: &Parts) -> String {
    key_uri(config, parts).path().to_owned()
}

/// The URI a key is built from: the layer's `key_uri` hook, else the URI
/// the outermost axum router saw (`OriginalUri`, so routers nested under
/// different paths never share keys), else the request's.
fn key_uri<'a>(config: &Config, parts: &'a Parts) -> std::borrow::Cow<'a, Uri> {
    if let Some(f) = &config.key_uri {
        return std::borrow::Cow::Owned(f(parts));
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(original)) =
        parts.extensions.get::<axum::extract::OriginalUri>()
    {
        return std::borrow::Cow::Borrowed(original);
    }
    std::borrow::Cow::Borrowed(&parts.uri)
}

/// Inspects a request once: its key, and whether it carries credentials.
pub(crate) fn inspect(config: &Config, parts: &Parts) -> Inspected {
    let mut host: Option<&HeaderValue> = None;
    let mut hosts = 0usize;
    let mut cookie = false;
    let mut authorization = false;
    let mut forwarded: Vec<(usize, &HeaderValue)> = Vec::new();
    for (name, value) in &parts.headers {
        match name.as_str() {
            "host" => {
                hosts += 1;
                host = Some(value);
            }
            "cookie" => cookie = cookie || counts_as_cookie(config, value),
            "authorization" => authorization = true,
            "proxy-authorization" => authorization = true,
            other => {
                if let Some(i) = forwarding_index(other) {
                    forwarded.push((i, value));
                }
            }
        }
    }
    let credentials = if authorization {
        Some("authorization")
    } else if cookie && config.private_requests.counts_cookies() {
        Some("cookie")
    } else {
        None
    };
    let mut out = Inspected {
        key: Err(NotStored::Key),
        credentials,
        origin: (0, 0),
        suffix: 0,
    };
    let uri = key_uri(config, parts);
    let target = match Target::resolve(config, &uri, host, hosts, &mut forwarded) {
        Ok(t) => t,
        Err(detail) => {
            out.key = Err(detail);
            return out;
        }
    };
    let mut key = String::with_capacity(config.key_prefix.len() + 96);
    key.push_str(&config.key_prefix);
    let origin_start = key.len();
    target.push_to(&mut key);
    out.origin = (origin_start, origin_start + target.origin_len());
    out.suffix = key.len();
    if !forwarded.is_empty() {
        forwarded.sort_by_key(|(i, _)| *i);
        let mut last = usize::MAX;
        for (i, value) in forwarded {
            if i == last {
                // Several lines of one header are one list.
                key.push(',');
            } else {
                key.push_str(" f.");
                key.push_str(FORWARDING[i]);
                key.push('=');
                last = i;
            }
            push_encoded(&mut key, value.as_bytes());
        }
    }
    if let Some(ext) = config.key_extension.as_ref().and_then(|f| f(parts)) {
        key.push_str(" x=");
        push_encoded(&mut key, ext.as_bytes());
    }
    if let Some(partition) = &config.partition {
        key.push_str(" p=");
        push_encoded(&mut key, partition.as_bytes());
    }
    out.key = crate::key::validate_key(&key)
        .map(|()| key)
        .map_err(|_| NotStored::Key);
    out
}

/// Whether a `Cookie` line names a cookie the layer does not ignore.
fn counts_as_cookie(config: &Config, value: &HeaderValue) -> bool {
    if config.ignore_cookies.is_empty() {
        return true;
    }
    cookie_names(value.as_bytes()).any(|name| !config.ignore_cookies.iter().any(|i| i == name))
}

/// The names of the cookies in a `Cookie` line (`a=1; b=2`); a pair that is
/// not valid UTF-8 yields a name no ignore list holds.
fn cookie_names(line: &[u8]) -> impl Iterator<Item = &str> {
    line.split(|b| *b == b';').filter_map(|pair| {
        let name = pair.split(|b| *b == b'=').next().unwrap_or(pair);
        let name = std::str::from_utf8(name).unwrap_or("\u{0}").trim();
        (!name.is_empty()).then_some(name)
    })
}

/// The scheme, authority and path of a key.
struct Target<'a> {
    scheme: &'static str,
    /// Lowercase, without a default port.
    authority: String,
    path_and_query: &'a str,
}

impl<'a> Target<'a> {
    fn resolve(
        config: &Config,
        uri: &'a Uri,
        host: Option<&HeaderValue>,
        hosts: usize,
        forwarded: &mut Vec<(usize, &HeaderValue)>,
    ) -> Result<Target<'a>, NotStored> {
        let mut scheme = match uri.scheme_str() {
            None => "http",
            Some(s) if s.eq_ignore_ascii_case("http") => "http",
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            Some(_) => return Err(NotStored::Key),
        };
        if hosts > 1 {
            return Err(NotStored::Host);
        }
        let header = match host {
            Some(h) => Some(h.to_str().map_err(|_| NotStored::Host)?),
            None => None,
        };
        let authority = match (uri.authority(), header) {
            (Some(a), Some(h)) => {
                let a = normalize_authority(scheme, a.as_str()).ok_or(NotStored::Host)?;
                if normalize_authority(scheme, h).as_ref() != Some(&a) {
                    return Err(NotStored::Host);
                }
                a
            }
            (Some(a), None) => normalize_authority(scheme, a.as_str()).ok_or(NotStored::Host)?,
            (None, Some(h)) => normalize_authority(scheme, h).ok_or(NotStored::Host)?,
            (None, None) => return Err(NotStored::Host),
        };
        let mut authority = authority;
        if let Some(trusted) = config.trusted_forwarding {
            let (proto, fwd_host, fwd_port) = trusted_values(trusted, forwarded)?;
            if let Some(p) = proto {
                scheme = p;
            }
            let mut a = fwd_host.unwrap_or_else(|| authority.clone());
            if let Some(port) = fwd_port {
                a = format!("{}:{port}", host_part(&a));
            }
            authority = normalize_authority(scheme, &a).ok_or(NotStored::Host)?;
        }
        if let Some(allowed) = &config.allowed_hosts
            && !host_allowed(allowed, host_part(&authority))
        {
            return Err(NotStored::Host);
        }
        let path_and_query = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") => "/",
            Some(p) => p,
        };
        Ok(Target {
            scheme,
            authority,
            path_and_query,
        })
    }

    fn origin_len(&self) -> usize {
        self.scheme.len() + 3 + self.authority.len()
    }

    fn push_to(&self, key: &mut String) {
        key.push_str(self.scheme);
        key.push_str("://");
        key.push_str(&self.authority);
        key.push_str(self.path_and_query);
    }
}

/// What a trusted proxy set.
type Trusted = (Option<&'static str>, Option<String>, Option<String>);

/// The scheme, host and port a trusted proxy set, taken out of `forwarded`
/// so they are not keyed again. The nearest proxy's value is the last one.
fn trusted_values(
    trusted: Forwarding,
    forwarded: &mut Vec<(usize, &HeaderValue)>,
) -> Result<Trusted, NotStored> {
    let mut proto = None;
    let mut host = None;
    let mut port = None;
    let owned = |name: &str| FORWARDING.iter().position(|f| *f == name);
    let consumed: &[&str] = match trusted {
        Forwarding::XForwarded => &["x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"],
        Forwarding::Forwarded => &["forwarded"],
    };
    let consumed: Vec<usize> = consumed.iter().filter_map(|n| owned(n)).collect();
    for (i, value) in forwarded.iter() {
        if !consumed.contains(i) {
            continue;
        }
        let value = value.to_str().map_err(|_| NotStored::Forwarded)?;
        match FORWARDING[*i] {
            "x-forwarded-proto" => proto = last_item(value).map(str::to_owned),
            "x-forwarded-host" => host = last_item(value).map(str::to_owned),
            "x-forwarded-port" => port = last_item(value).map(str::to_owned),
            _ => {
                // RFC 7239: `for=..;proto=https;host=example.com, ...`
                if let Some(element) = last_item(value) {
                    for pair in element.split(';') {
                        let Some((k, v)) = pair.split_once('=') else {
                            continue;
                        };
                        let v = v.trim().trim_matches('"');
                        match k.trim().to_ascii_lowercase().as_str() {
                            "proto" => proto = Some(v.to_owned()),
                            "host" => host = Some(v.to_owned()),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    forwarded.retain(|(i, _)| !consumed.contains(i));
    let proto = match proto.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("http") => Some("http"),
        Some("https") => Some("https"),
        Some(_) => return Err(NotStored::Forwarded),
    };
    if let Some(port) = &port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NotStored::Forwarded);
    }
    Ok((proto, host, port))
}

fn last_item(list: &str) -> Option<&str> {
    list.rsplit(',').map(str::trim).find(|s| !s.is_empty())
}

/// `host[:port]` checked and normalized: lowercase, the scheme's default
/// port dropped. `None` for anything else (user info, a path, spaces,
/// percent signs, an empty host, a bad port), so no authority can smuggle
/// another URI's path into a key.
pub(crate) fn normalize_authority(scheme: &str, authority: &str) -> Option<String> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        (&authority[..=end], &authority[end + 1..])
    } else {
        match authority.rfind(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        }
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !host_ok {
        return None;
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = p.parse().ok()?;
            if n > 65_535 {
                return None;
            }
            Some(n)
        }
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let mut out = host.to_ascii_lowercase();
    if let Some(p) = port
        && p != default
    {
        out.push(':');
        out.push_str(&p.to_string());
    }
    Some(out)
}

/// The host of a normalized authority, without its port.
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Django's rule: `example.com` matches itself, `.example.com` also every
/// subdomain, `*` anything.
fn host_allowed(allowed: &[String], host: &str) -> bool {
    allowed.iter().any(|a| {
        a == "*"
            || a.eq_ignore_ascii_case(host)
            || a.strip_prefix('.').is_some_and(|domain| {
                host.eq_ignore_ascii_case(domain)
                    || (host.len() > domain.len() + 1
                        && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
            })
    })
}

/// Appends `bytes` with everything that could be read as a separator, a
/// glob character or a control character percent-encoded.
fn push_encoded(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        let keep = b.is_ascii_graphic()
            && !matches!(
                b,
                b'%' | b'#' | b'=' | b',' | b'*' | b'?' | b'[' | b']' | b'\\'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Resolves a `Location`/`Content-Location` value against the request and
/// returns its URI if it has the request's origin (RFC 9111 §4.4), as an
/// absolute URI.
pub(crate) fn same_origin_target(origin: &str, request_path: &str, value: &str) -> Option<Uri> {
    let (scheme, _) = origin.split_once("://")?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let absolute = if value.starts_with("//") {
        format!("{scheme}:{value}")
    } else if value.parse::<Uri>().is_ok_and(|t| t.scheme().is_some()) {
        value.to_owned()
    } else if value.starts_with('/') {
        format!("{origin}{value}")
    } else {
        // A relative path: resolve against the request path's directory.
        let dir = &request_path[..request_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{origin}{dir}{value}")
    };
    let target: Uri = absolute.parse().ok()?;
    let t_scheme = target.scheme_str()?.to_ascii_lowercase();
    let t_auth = normalize_authority(&t_scheme, target.authority()?.as_str())?;
    (format!("{t_scheme}://{t_auth}") == origin).then_some(target)
}

/// The values a request has for the header names a response varies on,
/// normalized (lists joined with ", ", surrounding space trimmed) so that
/// equivalent requests match (RFC 9111 §4.1). A `Cookie` value leaves out
/// the cookies the layer ignores.
pub(crate) fn vary_values(
    names: &[String],
    headers: &HeaderMap,
    ignore_cookies: &[String],
) -> Vec<Option<String>> {
    names
        .iter()
        .map(|name| {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                return None;
            };
            let mut values: Vec<String> = Vec::new();
            for v in headers.get_all(&name) {
                if name == http::header::COOKIE && !ignore_cookies.is_empty() {
                    let kept: Vec<String> = v
                        .as_bytes()
                        .split(|b| *b == b';')
                        .map(|pair| String::from_utf8_lossy(pair).trim().to_owned())
                        .filter(|pair| {
                            let n = pair.split('=').next().unwrap_or(pair).trim();
                            !n.is_empty() && !ignore_cookies.iter().any(|i| i == n)
                        })
                        .collect();
                    if !kept.is_empty() {
                        values.push(kept.join("; "));
                    }
                } else {
                    values.push(String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
                }
            }
            (!values.is_empty()).then(|| values.join(", "))
        })
        .collect()
}

/// The header names of every `Vary` line, lowercased, deduplicated and
/// sorted; `Err` when a line is `*` (never served from a cache) or is not a
/// list of field names (never read as permission to store).
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Vec<String>, NotStored> {
    let mut names = Vec::new();
    for line in headers.get_all(http::header::VARY) {
        let line = line.to_str().map_err(|_| NotStored::Vary)?;
        for name in line.split(',') {
            let name = name.trim_matches([' ', '\t']);
            if name == "*" {
                return Err(NotStored::VaryStar);
            }
            if name.is_empty() {
                continue;
            }
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(NotStored::Vary);
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// A stable 64-bit FNV-1a hash: variant keys must be the same in every
/// process that shares a cache.
pub(crate) fn fnv64(parts: &[Option<String>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        let bytes: &[u8] = match p {
            Some(s) => s.as_bytes(),
            None => &[0xff],
        };
        for b in bytes.iter().chain(&[0u8]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The key of `uri` with no forwarding headers and no extension, for
/// invalidation from code: `None` if `uri` has no valid authority.
pub(crate) fn base_key(prefix: &str, uri: &Uri) -> Option<String> {
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        _ => return None,
    };
    let authority = normalize_authority(scheme, uri.authority()?.as_str())?;
    let pq = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/",
        Some(p) => p,
    };
    Some(format!("{prefix}{scheme}://{authority}{pq}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HOST;
    use std::sync::Arc;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn key(config: &Config, uri: &str, headers: &[(&str, &str)]) -> Result<String, NotStored> {
        inspect(config, &parts(uri, headers)).key
    }

    #[test]
    fn effective_uris() {
        let c = Config::default();
        assert_eq!(
            key(&c, "/a?b=1", &[("host", "Example.COM:80")]).unwrap(),
            "http:http://example.com/a?b=1"
        );
        assert_eq!(
            key(&c, "https://Example.com:443/x", &[]).unwrap(),
            "http:https://example.com/x"
        );
        assert_eq!(
            key(&c, "http://example.com:8080", &[]).unwrap(),
            "http:http://example.com:8080/"
        );
        assert_eq!(
            key(&c, "/p", &[("host", "[::1]:8080")]).unwrap(),
            "http:http://[::1]:8080/p"
        );
    }

    #[test]
    fn bad_authorities_bypass() {
        let c = Config::default();
        for host in [
            "example.com/static",
            "user@example.com",
            "exa mple.com",
            "example.com:",
            "example.com:99999",
            "example.com:80:80",
            "ex%41mple.com",
            "",
            "[::1",
            "[zz]",
            "example.com\\x",
        ] {
            assert_eq!(
                key(&c, "/a", &[("host", host)]),
                Err(NotStored::Host),
                "{host:?}"
            );
        }
        assert_eq!(
            key(&c, "/a", &[]),
            Err(NotStored::Host),
            "no authority at all"
        );
        let mut p = parts("/a", &[("host", "a.test")]);
        p.headers.append(HOST, HeaderValue::from_static("b.test"));
        assert_eq!(inspect(&c, &p).key, Err(NotStored::Host), "two Host lines");
        assert_eq!(
            key(&c, "http://a.test/x", &[("host", "b.test")]),
            Err(NotStored::Host),
            "the target and Host disagree"
        );
        assert!(key(&c, "http://a.test/x", &[("host", "A.test:80")]).is_ok());
        assert_eq!(key(&c, "ftp://a.test/x", &[]), Err(NotStored::Key));
    }

    #[test]
    fn allowed_hosts() {
        let c = Config {
            allowed_hosts: Some(vec!["example.com".into(), ".shop.test".into()]),
            ..Config::default()
        };
        for ok in [
            "example.com",
            "EXAMPLE.com:8080",
            "shop.test",
            "a.b.shop.test",
        ] {
            assert!(key(&c, "/", &[("host", ok)]).is_ok(), "{ok}");
        }
        for bad in ["evil.test", "xshop.test", "example.com.evil.test"] {
            assert_eq!(
                key(&c, "/", &[("host", bad)]),
                Err(NotStored::Host),
                "{bad}"
            );
        }
    }

    #[test]
    fn forwarding_headers_and_extensions_are_encoded_unambiguously() {
        let mut c = Config::default();
        let host = ("host", "h.test");
        assert_eq!(
            key(&c, "/p", &[host, ("x-forwarded-host", "evil.test")]).unwrap(),
            "http:http://h.test/p f.x-forwarded-host=evil.test"
        );
        // Header order does not matter; several lines are one list.
        let a = key(
            &c,
            "/p",
            &[
                host,
                ("x-forwarded-proto", "https"),
                ("forwarded", "proto=https"),
            ],
        );
        let b = key(
            &c,
            "/p",
            &[
                host,
                ("forwarded", "proto=https"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(a, b);
        let mut p = parts("/p", &[host, ("x-forwarded-host", "a")]);
        p.headers
            .append("x-forwarded-host", HeaderValue::from_static("b"));
        assert_eq!(
            inspect(&c, &p).key.unwrap(),
            "http:http://h.test/p f.x-forwarded-host=a,b"
        );
        // A value cannot fake a separator.
        let sneaky = key(&c, "/p", &[host, ("x-forwarded-host", "a f.x-host=b")]).unwrap();
        assert_eq!(
            sneaky,
            "http:http://h.test/p f.x-forwarded-host=a%20f.x-host%3Db"
        );
        c.key_extension = Some(Arc::new(|p: &Parts| {
            p.headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }));
        assert_eq!(
            key(&c, "/p", &[host, ("x-tenant", "a #1:2")]).unwrap(),
            "http:http://h.test/p x=a%20%231:2"
        );
        // The partition comes last, encoded like the rest.
        c.partition = Some("api v2".to_owned());
        assert_eq!(
            key(&c, "/p", &[host, ("x-tenant", "t")]).unwrap(),
            "http:http://h.test/p x=t p=api%20v2"
        );
    }

    #[test]
    fn trusted_forwarding() {
        let c = Config {
            trusted_forwarding: Some(Forwarding::XForwarded),
            ..Config::default()
        };
        let host = ("host", "internal:8080");
        assert_eq!(
            key(
                &c,
                "/p",
                &[
                    host,
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "Shop.test")
                ]
            )
            .unwrap(),
            "http:https://shop.test/p"
        );
        assert_eq!(
            key(&c, "/p", &[host, ("x-forwarded-proto", "http, https")]).unwrap(),
            "http:https://internal:8080/p",
            "the nearest proxy's value"
        );
        assert_eq!(
            key(&c, "/p", &[host, ("x-forwarded-proto", "gopher")]),
            Err(NotStored::Forwarded)
        );
        assert_eq!(
            key(&c, "/p", &[host, ("x-forwarded-host", "a/b")]),
            Err(NotStored::Host)
        );
        // Untrusted ones are still keyed.
        assert_eq!(
            key(&c, "/p", &[host, ("x-forwarded-prefix", "/api")]).unwrap(),
            "http:http://internal:8080/p f.x-forwarded-prefix=/api"
        );
        let c = Config {
            trusted_forwarding: Some(Forwarding::Forwarded),
            ..Config::default()
        };
        assert_eq!(
            key(
                &c,
                "/p",
                &[
                    host,
                    (
                        "forwarded",
                        "for=1.2.3.4;proto=http, for=5.6.7.8;proto=https;host=\"a.test\""
                    )
                ]
            )
            .unwrap(),
            "http:https://a.test/p"
        );
    }

    #[test]
    fn credentials_and_ignored_cookies() {
        let mut c = Config::default();
        let host = ("host", "h.test");
        let creds = |c: &Config, h: &[(&str, &str)]| inspect(c, &parts("/", h)).credentials;
        assert_eq!(creds(&c, &[host]), None);
        assert_eq!(creds(&c, &[host, ("cookie", "_ga=1")]), Some("cookie"));
        assert_eq!(
            creds(&c, &[host, ("authorization", "Bearer x")]),
            Some("authorization")
        );
        assert_eq!(
            creds(&c, &[host, ("proxy-authorization", "x")]),
            Some("authorization")
        );
        c.ignore_cookies = vec!["_ga".into(), "_gid".into()];
        assert_eq!(creds(&c, &[host, ("cookie", "_ga=1; _gid=2")]), None);
        assert_eq!(
            creds(&c, &[host, ("cookie", "_ga=1; id=2")]),
            Some("cookie")
        );
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("_ga=1; id=2; _gid=3"));
        assert_eq!(
            vary_values(&["cookie".into()], &h, &c.ignore_cookies),
            vec![Some("id=2".to_owned())]
        );
    }

    #[test]
    fn same_origin_targets() {
        let origin = "http://example.com";
        let t = |v| same_origin_target(origin, "/dir/page", v).map(|u| u.to_string());
        assert_eq!(
            t("/other?y=1").as_deref(),
            Some("http://example.com/other?y=1")
        );
        assert_eq!(
            t("sibling").as_deref(),
            Some("http://example.com/dir/sibling")
        );
        assert_eq!(
            t("http://EXAMPLE.com:80/z").as_deref(),
            Some("http://EXAMPLE.com:80/z")
        );
        assert_eq!(
            t("//example.com/q").as_deref(),
            Some("http://example.com/q")
        );
        assert_eq!(t("http://evil.test/z"), None);
        assert_eq!(t("https://example.com/z"), None);
        assert_eq!(t("//evil.test/z"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn vary_handling() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::VARY,
            "Accept-Encoding, accept".parse().unwrap(),
        );
        h.append(http::header::VARY, "X-Tenant".parse().unwrap());
        assert_eq!(
            vary_names(&h).unwrap(),
            vec!["accept", "accept-encoding", "x-tenant"]
        );
        h.append(http::header::VARY, "*".parse().unwrap());
        assert_eq!(vary_names(&h), Err(NotStored::VaryStar));
        let mut bad = HeaderMap::new();
        bad.append(http::header::VARY, "Accept Language".parse().unwrap());
        assert_eq!(vary_names(&bad), Err(NotStored::Vary));

        let mut r = HeaderMap::new();
        r.append("accept", " text/html ".parse().unwrap());
        r.append("accept", "application/json".parse().unwrap());
        let names = vec!["accept".to_owned(), "x-none".to_owned()];
        let v = vary_values(&names, &r, &[]);
        assert_eq!(
            v,
            vec![Some("text/html, application/json".to_owned()), None]
        );
        assert_ne!(fnv64(&v), fnv64(&[None, None]));
        assert_ne!(
            fnv64(&[Some("a".into()), None]),
            fnv64(&[None, Some("a".into())])
        );
        assert_ne!(fnv64(&[Some(String::new())]), fnv64(&[None]));
    }
}
