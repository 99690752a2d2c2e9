//! Cache keys for HTTP responses: the effective request URI (RFC 9110
//! §7.1) without the method, an optional extension, and for responses with
//! `Vary` a variant suffix from the named request headers.

use http::header::HOST;
use http::request::Parts;
use http::{HeaderMap, HeaderName, Uri};

/// The effective request URI: `scheme://authority/path?query`, with the
/// authority from the request target or the `Host` header, lowercased,
/// and the default port of the scheme dropped. The scheme is `http`
/// unless the request target says otherwise.
pub(crate) fn effective_uri(parts: &Parts) -> String {
    let uri = &parts.uri;
    let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let authority = normalize_authority(&scheme, &authority);
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    format!("{scheme}://{authority}{path_and_query}")
}

fn normalize_authority(scheme: &str, authority: &str) -> String {
    // User info never belongs in a cache key.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let mut a = authority.trim().to_ascii_lowercase();
    let default_port = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    if a.ends_with(default_port) {
        a.truncate(a.len() - default_port.len());
    }
    a
}

/// Resolves a `Location`/`Content-Location` value against the request and
/// returns its effective URI if it has the same origin (RFC 9111 §4.4).
pub(crate) fn same_origin_target(parts: &Parts, value: &str) -> Option<String> {
    let request = effective_uri(parts);
    let (scheme, rest) = request.split_once("://")?;
    let origin_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..origin_end]);
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.starts_with("//") {
        let target: Uri = format!("{scheme}:{value}").parse().ok()?;
        return same_origin_absolute(&origin, scheme, &target);
    }
    if let Ok(target) = value.parse::<Uri>()
        && target.scheme().is_some()
    {
        return same_origin_absolute(&origin, scheme, &target);
    }
    if value.starts_with('/') {
        let target: Uri = value.parse().ok()?;
        let pq = target.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Some(format!("{origin}{pq}"));
    }
    // A relative path: resolve against the request path's directory.
    let path = parts.uri.path();
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let target: Uri = format!("{dir}{value}").parse().ok()?;
    let pq = target.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Some(format!("{origin}{pq}"))
}

fn same_origin_absolute(origin: &str, scheme: &str, target: &Uri) -> Option<String> {
    let t_scheme = target.scheme_str()?.to_ascii_lowercase();
    let t_auth = normalize_authority(&t_scheme, target.authority()?.as_str());
    let candidate = format!("{t_scheme}://{t_auth}");
    if candidate != origin || t_scheme != scheme {
        return None;
    }
    let pq = target.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Some(format!("{candidate}{pq}"))
}

/// The values a request has for the header names a response varies on,
/// normalized (lists joined with ", ", surrounding space trimmed) so that
/// equivalent requests match (RFC 9111 §4.1).
pub(crate) fn vary_values(names: &[String], headers: &HeaderMap) -> Vec<Option<String>> {
    names
        .iter()
        .map(|name| {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                return None;
            };
            let values: Vec<String> = headers
                .get_all(&name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        })
        .collect()
}

/// The header names of every `Vary` line, lowercased, deduplicated and
/// sorted; `None` if one of them is `*` (never served from a cache).
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for line in headers.get_all(http::header::VARY) {
        let Ok(line) = line.to_str() else {
            // An unreadable Vary cannot be matched.
            return None;
        };
        for name in line.split(',') {
            let name = name.trim();
            if name == "*" {
                return None;
            }
            if !name.is_empty() {
                names.push(name.to_ascii_lowercase());
            }
        }
    }
    names.sort_unstable();
    names.dedup();
    Some(names)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn effective_uris() {
        assert_eq!(
            effective_uri(&parts("/a?b=1", Some("Example.COM:80"))),
            "http://example.com/a?b=1"
        );
        assert_eq!(
            effective_uri(&parts("https://Example.com:443/x", None)),
            "https://example.com/x"
        );
        assert_eq!(
            effective_uri(&parts("http://example.com:8080", None)),
            "http://example.com:8080/"
        );
        assert_eq!(effective_uri(&parts("/p", None)), "http:///p");
    }

    #[test]
    fn same_origin_targets() {
        let p = parts("/dir/page?x", Some("example.com"));
        assert_eq!(
            same_origin_target(&p, "/other?y=1").as_deref(),
            Some("http://example.com/other?y=1")
        );
        assert_eq!(
            same_origin_target(&p, "sibling").as_deref(),
            Some("http://example.com/dir/sibling")
        );
        assert_eq!(
            same_origin_target(&p, "http://EXAMPLE.com:80/z").as_deref(),
            Some("http://example.com/z")
        );
        assert_eq!(
            same_origin_target(&p, "//example.com/q").as_deref(),
            Some("http://example.com/q")
        );
        assert_eq!(same_origin_target(&p, "http://evil.test/z"), None);
        assert_eq!(same_origin_target(&p, "https://example.com/z"), None);
        assert_eq!(same_origin_target(&p, "//evil.test/z"), None);
        assert_eq!(same_origin_target(&p, ""), None);
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
        assert_eq!(vary_names(&h), None);

        let mut r = HeaderMap::new();
        r.append("accept", " text/html ".parse().unwrap());
        r.append("accept", "application/json".parse().unwrap());
        let names = vec!["accept".to_owned(), "x-none".to_owned()];
        let v = vary_values(&names, &r);
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
