//! The HTTP response cache over real HTTP: an axum app behind
//! `HttpCacheLayer` on a loopback listener, and a real client.
//!
//! Every handler counts how often it ran, so each test can tell a hit from
//! a trip to the origin.

#![cfg(feature = "http")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::{CachePolicy, HttpCache, HttpCacheLayer};
use covet_test::http::TestServer;

#[derive(Clone, Default)]
struct Origin {
    counts: Arc<parking_lot::Mutex<HashMap<String, usize>>>,
    failing: Arc<AtomicBool>,
    release: Arc<tokio::sync::Notify>,
}

impl Origin {
    fn hit(&self, name: &str) -> usize {
        let mut c = self.counts.lock();
        let n = c.entry(name.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    fn count(&self, name: &str) -> usize {
        self.counts.lock().get(name).copied().unwrap_or(0)
    }
}

fn resp(headers: &[(&str, &str)], body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    for (n, v) in headers {
        r.headers_mut().append(
            header::HeaderName::from_bytes(n.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    r
}

/// `/cc/{name}?cc=...` answers with the given Cache-Control lines (split on
/// `;;`), and extra headers from the other query parameters.
async fn configurable(
    State(o): State<Origin>,
    Path(name): Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    req_headers: HeaderMap,
) -> Response {
    let n = o.hit(&name);
    let mut headers: Vec<(String, String)> = Vec::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        if k == "cc" {
            for line in v.split(";;") {
                headers.push(("cache-control".into(), line.to_owned()));
            }
        } else {
            headers.push((k.to_owned(), v));
        }
    }
    let etag = headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone());
    if let (Some(etag), Some(inm)) = (etag, req_headers.get(header::IF_NONE_MATCH))
        && inm.to_str().ok() == Some(etag.as_str())
    {
        let validations = o.hit(&format!("{name}:304")).to_string();
        let mut refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // A header only the 304s carry: the stored response must take it.
        refs.push(("x-validated", validations.as_str()));
        let mut r = resp(&refs, String::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    }
    if o.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let lang = req_headers
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    resp(&refs, format!("{name} #{n} lang={lang}"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 query")
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL for `/cc/{name}` with Cache-Control lines and extra headers.
fn cc_path(name: &str, cc: &[&str], extra: &[(&str, &str)]) -> String {
    let mut q = Vec::new();
    if !cc.is_empty() {
        q.push(format!("cc={}", enc(&cc.join(";;"))));
    }
    for (k, v) in extra {
        q.push(format!("{k}={}", enc(v)));
    }
    format!("/cc/{name}?{}", q.join("&"))
}

async fn slow(State(o): State<Origin>) -> Response {
    let n = o.hit("slow");
    tokio::time::sleep(Duration::from_millis(200)).await;
    resp(&[("cache-control", "max-age=60")], format!("slow #{n}"))
}

async fn big(State(o): State<Origin>) -> Response {
    o.hit("big");
    resp(&[("cache-control", "max-age=60")], "x".repeat(300 * 1024))
}

/// Sends one chunk, waits for the test to say go, then ends.
async fn stream(State(o): State<Origin>) -> Response {
    o.hit("stream");
    let release = o.release.clone();
    let chunks = futures_util::stream::unfold(0u8, move |state| {
        let release = release.clone();
        async move {
            match state {
                0 => Some((Ok::<_, Infallible>(bytes::Bytes::from_static(b"first;")), 1)),
                1 => {
                    release.notified().await;
                    Some((Ok(bytes::Bytes::from_static(b"second")), 2))
                }
                _ => None,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(chunks));
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("max-age=60"));
    r
}

/// Server-sent events: one event, then the rest once the test says go.
async fn events(State(o): State<Origin>) -> impl IntoResponse {
    o.hit("events");
    let release = o.release.clone();
    let events = futures_util::stream::unfold(0u8, move |state| {
        let release = release.clone();
        async move {
            match state {
                0 => Some((
                    Ok::<_, Infallible>(axum::response::sse::Event::default().data("one")),
                    1,
                )),
                1 => {
                    release.notified().await;
                    Some((Ok(axum::response::sse::Event::default().data("two")), 2))
                }
                _ => None,
            }
        }
    });
    axum::response::sse::Sse::new(events)
}

async fn bypass(State(o): State<Origin>) -> impl IntoResponse {
    let n = o.hit("bypass");
    (
        axum::Extension(CachePolicy::Bypass),
        [("cache-control", "max-age=60")],
        format!("bypass #{n}"),
    )
}

async fn opted_in(State(o): State<Origin>) -> impl IntoResponse {
    let n = o.hit("opted-in");
    (
        axum::Extension(CachePolicy::Store),
        format!("opted-in #{n}"),
    )
}

async fn report(State(o): State<Origin>) -> String {
    let n = o.hit("report");
    format!("report #{n}")
}

async fn write(State(o): State<Origin>, Path(name): Path<String>) -> Response {
    o.hit(&format!("write:{name}"));
    resp(
        &[
            ("location", "/cc/located"),
            ("content-location", "http://other.test/cc/foreign"),
        ],
        "written".into(),
    )
}

async fn failing_write(State(o): State<Origin>) -> Response {
    o.hit("failing-write");
    (StatusCode::INTERNAL_SERVER_ERROR, "no").into_response()
}

struct App {
    server: TestServer,
    origin: Origin,
    cache: Cache,
    client: reqwest::Client,
}

impl App {
    async fn start() -> App {
        App::with(Cache::memory(), |l| l).await
    }

    async fn with(cache: Cache, configure: impl FnOnce(HttpCacheLayer) -> HttpCacheLayer) -> App {
        let origin = Origin::default();
        let layer = configure(HttpCacheLayer::new(cache.clone()));
        let app = Router::new()
            .route("/cc/{name}", get(configurable).post(write).delete(write))
            .route("/slow", get(slow))
            .route("/big", get(big))
            .route("/stream", get(stream))
            .route("/events", get(events))
            .route("/bypass", get(bypass))
            .route("/opted-in", get(opted_in))
            .route(
                "/report",
                get(report)
                    .layer(HttpCacheLayer::new(cache.clone()).default_ttl(Duration::from_secs(30))),
            )
            .route("/failing-write", axum::routing::post(failing_write))
            .layer(layer)
            .with_state(origin.clone());
        App {
            server: TestServer::start(app).await,
            origin,
            cache,
            client: reqwest::Client::new(),
        }
    }

    async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.client.request(method, self.server.url(path));
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("body");
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.req("GET", path, &[]).await
    }

    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.req("GET", path, headers).await
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn cache_status(&self) -> String {
        self.headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    fn is_hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }

    fn age(&self) -> Option<u64> {
        self.headers
            .get("age")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

/// Waits until the store spawned after a response body ended has landed.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn max_age_is_stored_and_served_with_age_and_cache_status() {
    let app = App::start().await;
    let path = cc_path("a", &["max-age=60"], &[]);
    let first = app.get(&path).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "a #1 lang=-");
    assert_eq!(
        first.cache_status(),
        "covet; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    settle().await;
    let second = app.get(&path).await;
    assert_eq!(second.body, "a #1 lang=-");
    assert!(second.is_hit(), "{}", second.cache_status());
    assert!(second.cache_status().starts_with("covet; hit; ttl="));
    assert_eq!(second.age(), Some(0));
    assert_eq!(app.origin.count("a"), 1);
    let stats = app.cache.stats();
    assert_eq!((stats.http_hits, stats.http_misses), (1, 1));
}

#[tokio::test]
async fn responses_that_forbid_storing_are_not_stored() {
    let app = App::start().await;
    for (name, cc) in [
        ("no-store", "no-store, max-age=60"),
        ("private", "private, max-age=60"),
        ("plain", ""),
        ("bad", "max-age=abc"),
        ("neg", "max-age=-5"),
        ("zero", "max-age=0"),
    ] {
        let ccs: Vec<&str> = if cc.is_empty() { vec![] } else { vec![cc] };
        let path = cc_path(name, &ccs, &[]);
        let first = app.get(&path).await;
        assert!(
            first.cache_status().contains("fwd=uri-miss"),
            "{name}: {}",
            first.cache_status()
        );
        assert!(
            !first.cache_status().contains("stored"),
            "{name}: {}",
            first.cache_status()
        );
        settle().await;
        let second = app.get(&path).await;
        assert!(!second.is_hit(), "{name}");
        assert_eq!(app.origin.count(name), 2, "{name}");
    }
}

#[tokio::test]
async fn several_cache_control_lines_quoted_values_and_unknown_directives() {
    let app = App::start().await;
    for (name, ccs) in [
        ("multi", vec!["public", "max-age=60"]),
        ("quoted", vec!["max-age=\"60\""]),
        ("unknown", vec!["x-foo=\"a, b\", max-age=60, community=UCI"]),
        ("case", vec!["MAX-AGE=60"]),
        ("first-wins", vec!["max-age=60", "max-age=0"]),
    ] {
        let path = cc_path(name, &ccs, &[]);
        app.get(&path).await;
        settle().await;
        assert!(app.get(&path).await.is_hit(), "{name}");
        assert_eq!(app.origin.count(name), 1, "{name}");
    }
    // An s-maxage wins over max-age for a shared cache.
    let path = cc_path("smax", &["max-age=0, s-maxage=60"], &[]);
    app.get(&path).await;
    settle().await;
    assert!(app.get(&path).await.is_hit());
}

#[tokio::test]
async fn expires_in_three_date_formats_and_invalid_dates() {
    let app = App::start().await;
    let future = SystemTime::now() + Duration::from_secs(3600);
    let imf = httpdate::fmt_http_date(future);
    // RFC 850 and asctime forms of the same instant.
    let dt: Vec<&str> = imf.split([' ', ',']).filter(|s| !s.is_empty()).collect();
    // dt = [Wkd, DD, Mon, YYYY, HH:MM:SS, GMT]
    let weekday_long = match dt[0] {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let rfc850 = format!(
        "{weekday_long}, {}-{}-{} {} GMT",
        dt[1],
        dt[2],
        &dt[3][2..],
        dt[4]
    );
    let day: u32 = dt[1].parse().expect("day");
    let asctime = format!("{} {} {:>2} {} {}", dt[0], dt[2], day, dt[4], dt[3]);
    for (name, expires) in [
        ("imf", imf.as_str()),
        ("rfc850", &rfc850),
        ("asctime", &asctime),
    ] {
        let path = cc_path(name, &[], &[("expires", expires)]);
        let first = app.get(&path).await;
        assert!(
            first.cache_status().contains("stored"),
            "{name} {expires}: {}",
            first.cache_status()
        );
        settle().await;
        assert!(app.get(&path).await.is_hit(), "{name}");
    }
    for (name, expires) in [
        ("exp-zero", "0"),
        ("exp-garbage", "tomorrow"),
        ("exp-past", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ] {
        let path = cc_path(name, &[], &[("expires", expires)]);
        app.get(&path).await;
        settle().await;
        assert!(!app.get(&path).await.is_hit(), "{name}");
        assert_eq!(app.origin.count(name), 2, "{name}");
    }
}

#[tokio::test]
async fn origin_age_makes_a_response_stale() {
    let app = App::start().await;
    // Age 100 with max-age 60: already stale when received.
    let path = cc_path("aged", &["max-age=60"], &[("age", "100")]);
    app.get(&path).await;
    settle().await;
    let second = app.get(&path).await;
    assert!(!second.is_hit(), "{}", second.cache_status());
    // Age 10 with max-age 60: fresh, and the served Age counts it.
    let path = cc_path("young", &["max-age=60"], &[("age", "10")]);
    app.get(&path).await;
    settle().await;
    let hit = app.get(&path).await;
    assert!(hit.is_hit());
    assert!(hit.age().expect("an Age header") >= 10);
}

#[tokio::test]
async fn heuristic_freshness_from_last_modified() {
    let app = App::start().await;
    let modified = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(10 * 86400));
    let path = cc_path("heur", &[], &[("last-modified", &modified)]);
    let first = app.get(&path).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    settle().await;
    assert!(app.get(&path).await.is_hit());
}

#[tokio::test]
async fn vary_keeps_one_variant_per_header_value() {
    let app = App::start().await;
    let path = cc_path("vary", &["max-age=60"], &[("vary", "Accept-Language")]);
    let en = app.get_with(&path, &[("accept-language", "en")]).await;
    assert_eq!(en.body, "vary #1 lang=en");
    settle().await;
    let fr = app.get_with(&path, &[("accept-language", "fr")]).await;
    assert_eq!(fr.body, "vary #2 lang=fr");
    assert!(
        fr.cache_status().contains("fwd=vary-miss"),
        "{}",
        fr.cache_status()
    );
    settle().await;
    let en2 = app.get_with(&path, &[("accept-language", "en")]).await;
    assert_eq!(en2.body, "vary #1 lang=en");
    assert!(en2.is_hit());
    let fr2 = app.get_with(&path, &[("accept-language", "fr")]).await;
    assert_eq!(fr2.body, "vary #2 lang=fr");
    assert!(fr2.is_hit());
    let none = app.get(&path).await;
    assert!(!none.is_hit());
    assert_eq!(app.origin.count("vary"), 3);

    let star = cc_path("star", &["max-age=60"], &[("vary", "*")]);
    app.get(&star).await;
    settle().await;
    assert!(!app.get(&star).await.is_hit());
    assert_eq!(app.origin.count("star"), 2);
}

#[tokio::test]
async fn conditional_requests_get_304_from_a_fresh_stored_response() {
    let app = App::start().await;
    let modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    let path = cc_path(
        "cond",
        &["max-age=60"],
        &[("etag", "\"v1\""), ("last-modified", modified)],
    );
    app.get(&path).await;
    settle().await;
    let nm = app.get_with(&path, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());
    assert_eq!(nm.headers["etag"], "\"v1\"");
    assert!(nm.is_hit());
    let weak = app
        .get_with(&path, &[("if-none-match", "\"x\", W/\"v1\"")])
        .await;
    assert_eq!(weak.status, 304);
    let other = app.get_with(&path, &[("if-none-match", "\"v2\"")]).await;
    assert_eq!(other.status, 200);
    let ims = app
        .get_with(&path, &[("if-modified-since", modified)])
        .await;
    assert_eq!(ims.status, 304);
    let older = app
        .get_with(
            &path,
            &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!(older.status, 200);
    assert_eq!(app.origin.count("cond"), 1);
}

#[tokio::test]
async fn stale_responses_are_revalidated_and_a_304_freshens_them() {
    let app = App::start().await;
    let path = cc_path(
        "reval",
        &["max-age=1"],
        &[("etag", "\"r1\""), ("x-version", "1")],
    );
    app.get(&path).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = app.get(&path).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, "reval #1 lang=-", "the stored body, validated");
    assert_eq!(
        second.cache_status(),
        "covet; fwd=stale; fwd-status=304; ttl=1; stored"
    );
    assert_eq!(app.origin.count("reval:304"), 1);
    assert_eq!(
        second.headers["x-validated"], "1",
        "headers updated from the 304"
    );
    assert_eq!(
        second.headers["x-version"], "1",
        "other stored headers kept"
    );
    let third = app.get(&path).await;
    assert!(third.is_hit(), "freshened: {}", third.cache_status());
    assert_eq!(third.headers["x-validated"], "1");
    assert_eq!(app.origin.count("reval:304"), 1);
}

#[tokio::test]
async fn no_cache_responses_are_revalidated_every_time() {
    let app = App::start().await;
    let path = cc_path("nocache", &["no-cache, max-age=60"], &[("etag", "\"n1\"")]);
    app.get(&path).await;
    settle().await;
    for i in 1..=2 {
        let r = app.get(&path).await;
        assert_eq!(r.body, "nocache #1 lang=-");
        assert!(
            r.cache_status().contains("fwd-status=304"),
            "{}",
            r.cache_status()
        );
        assert_eq!(app.origin.count("nocache:304"), i);
    }
}

#[tokio::test]
async fn request_directives() {
    let app = App::start().await;
    let path = cc_path("req", &["max-age=60"], &[]);
    // only-if-cached with nothing stored: 504.
    let r = app
        .get_with(&path, &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(app.origin.count("req"), 0);
    app.get(&path).await;
    settle().await;
    assert_eq!(
        app.get_with(&path, &[("cache-control", "only-if-cached")])
            .await
            .status,
        200
    );
    // no-cache and Pragma: no-cache go to the origin.
    assert!(
        !app.get_with(&path, &[("cache-control", "no-cache")])
            .await
            .is_hit()
    );
    settle().await;
    assert!(
        !app.get_with(&path, &[("pragma", "no-cache")])
            .await
            .is_hit()
    );
    settle().await;
    // Pragma is ignored when Cache-Control is present.
    assert!(
        app.get_with(
            &path,
            &[("pragma", "no-cache"), ("cache-control", "max-stale=0")]
        )
        .await
        .is_hit()
    );
    // max-age=0 wants a response no older than 0 s: our copy is older after 1 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        !app.get_with(&path, &[("cache-control", "max-age=0")])
            .await
            .is_hit()
    );
    settle().await;
    // min-fresh beyond the remaining lifetime: forwarded.
    assert!(
        !app.get_with(&path, &[("cache-control", "min-fresh=3600")])
            .await
            .is_hit()
    );
    settle().await;
    assert!(
        app.get_with(&path, &[("cache-control", "min-fresh=10")])
            .await
            .is_hit()
    );
    // no-store: served from cache if fresh, but never stores.
    let fresh = cc_path("req-nostore", &["max-age=60"], &[]);
    app.get_with(&fresh, &[("cache-control", "no-store")]).await;
    settle().await;
    assert!(!app.get(&fresh).await.is_hit());
}

#[tokio::test]
async fn max_stale_accepts_a_stale_response() {
    let app = App::start().await;
    let path = cc_path("maxstale", &["max-age=1"], &[]);
    app.get(&path).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = app
        .get_with(&path, &[("cache-control", "max-stale=60")])
        .await;
    assert!(stale.is_hit(), "{}", stale.cache_status());
    assert!(
        stale.cache_status().contains("ttl=-"),
        "{}",
        stale.cache_status()
    );
    let any = app.get_with(&path, &[("cache-control", "max-stale")]).await;
    assert!(any.is_hit());
    assert_eq!(app.origin.count("maxstale"), 1);
    // must-revalidate forbids it.
    let strict = cc_path("strict", &["max-age=1, must-revalidate"], &[]);
    app.get(&strict).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        !app.get_with(&strict, &[("cache-control", "max-stale")])
            .await
            .is_hit()
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let app = App::start().await;
    let path = cc_path("swr", &["max-age=1, stale-while-revalidate=60"], &[]);
    app.get(&path).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = app.get(&path).await;
    assert_eq!(stale.body, "swr #1 lang=-");
    assert!(stale.is_hit());
    assert!(
        stale
            .cache_status()
            .contains("detail=stale-while-revalidate")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.origin.count("swr"),
        2,
        "refreshed once in the background"
    );
    let fresh = app.get(&path).await;
    assert_eq!(fresh.body, "swr #2 lang=-");
    assert!(fresh.is_hit());
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails() {
    let app = App::start().await;
    let path = cc_path("sie", &["max-age=1, stale-if-error=60"], &[]);
    app.get(&path).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.origin.failing.store(true, Ordering::SeqCst);
    let r = app.get(&path).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "sie #1 lang=-");
    assert_eq!(
        &r.cache_status()[..r.cache_status().find("; ttl").unwrap_or(0)],
        "covet; fwd=stale; fwd-status=503"
    );
    assert!(r.cache_status().ends_with("detail=stale-if-error"));
    // Without stale-if-error the failure reaches the client.
    let plain = cc_path("nosie", &["max-age=1"], &[]);
    app.origin.failing.store(false, Ordering::SeqCst);
    app.get(&plain).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.origin.failing.store(true, Ordering::SeqCst);
    assert_eq!(app.get(&plain).await.status, 503);
}

#[tokio::test]
async fn unsafe_requests_invalidate_the_uri_and_same_origin_locations() {
    let app = App::with(Cache::memory(), |l| l.default_ttl(Duration::from_secs(60))).await;
    let target = cc_path("target", &["max-age=60"], &[]);
    app.get(&target).await;
    settle().await;
    assert!(app.get(&target).await.is_hit());
    let r = app.req("POST", &target, &[]).await;
    assert_eq!(r.body, "written");
    assert_eq!(r.cache_status(), "covet; fwd=method; fwd-status=200");
    assert!(!app.get(&target).await.is_hit(), "invalidated by the POST");
    settle().await;
    assert!(app.get(&target).await.is_hit());
    app.req("DELETE", &target, &[]).await;
    assert!(
        !app.get(&target).await.is_hit(),
        "invalidated by the DELETE"
    );

    // The POST answers `Location: /cc/located` (same origin) and
    // `Content-Location: http://other.test/cc/foreign` (another origin).
    let foreign_host = [("host", "other.test")];
    app.get("/cc/located").await;
    app.get_with("/cc/foreign", &foreign_host).await;
    settle().await;
    assert!(app.get("/cc/located").await.is_hit());
    assert!(app.get_with("/cc/foreign", &foreign_host).await.is_hit());
    app.req("POST", "/cc/other", &[]).await;
    assert!(
        !app.get("/cc/located").await.is_hit(),
        "invalidated through Location"
    );
    assert!(
        app.get_with("/cc/foreign", &foreign_host).await.is_hit(),
        "another origin is never invalidated"
    );
}

#[tokio::test]
async fn failed_unsafe_requests_invalidate_nothing() {
    let app = App::with(Cache::memory(), |l| l.default_ttl(Duration::from_secs(60))).await;
    app.get("/failing-write").await;
    let path = cc_path("keep", &["max-age=60"], &[]);
    app.get(&path).await;
    settle().await;
    assert_eq!(app.req("POST", "/failing-write", &[]).await.status, 500);
    assert!(app.get(&path).await.is_hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_go_to_the_origin_once() {
    let app = Arc::new(App::start().await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { app.get("/slow").await }));
    }
    let mut collapsed = 0;
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.body, "slow #1");
        if r.cache_status().contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(app.origin.count("slow"), 1);
    assert!(collapsed >= 1, "followers say so");
}

#[tokio::test]
async fn set_cookie_responses_are_not_stored_unless_allowed() {
    let app = App::start().await;
    let path = cc_path(
        "cookie",
        &["public, max-age=60"],
        &[("set-cookie", "sid=secret")],
    );
    let first = app.get(&path).await;
    assert!(first.cache_status().contains("detail=set-cookie"));
    settle().await;
    let second = app.get(&path).await;
    assert!(!second.is_hit());
    assert_eq!(app.origin.count("cookie"), 2);

    let allowed = App::with(Cache::memory(), |l| l.allow_set_cookie(true)).await;
    let first = allowed.get(&path).await;
    assert_eq!(
        first.headers["set-cookie"], "sid=secret",
        "the first client gets its cookie"
    );
    settle().await;
    let second = allowed.get(&path).await;
    assert!(second.is_hit());
    assert!(
        second.headers.get("set-cookie").is_none(),
        "never replayed to others"
    );
    // Only an explicitly shareable response is stored, even when allowed.
    let implicit = cc_path(
        "cookie-implicit",
        &["max-age=60"],
        &[("set-cookie", "sid=x")],
    );
    let first = allowed.get(&implicit).await;
    assert!(
        first.cache_status().contains("detail=set-cookie"),
        "{}",
        first.cache_status()
    );
    settle().await;
    assert!(!allowed.get(&implicit).await.is_hit());
}

#[tokio::test]
async fn authorization_needs_an_explicitly_shareable_response() {
    let app = App::start().await;
    let auth = [("authorization", "Bearer alice")];
    let private = cc_path("auth", &["max-age=60"], &[]);
    app.get_with(&private, &auth).await;
    settle().await;
    assert!(!app.get_with(&private, &auth).await.is_hit());
    for (name, cc, stored) in [
        ("auth-public", "public, max-age=60", true),
        ("auth-smax", "s-maxage=60", true),
        // must-revalidate alone is not explicit enough by default.
        ("auth-mr", "max-age=60, must-revalidate", false),
    ] {
        let path = cc_path(name, &[cc], &[]);
        app.get_with(&path, &auth).await;
        settle().await;
        assert_eq!(app.get_with(&path, &auth).await.is_hit(), stored, "{name}");
    }
    // A response stored without Authorization is not served to a request with it.
    let shared = cc_path("auth-shared", &["max-age=60"], &[]);
    app.get(&shared).await;
    settle().await;
    assert!(app.get(&shared).await.is_hit());
    assert!(!app.get_with(&shared, &auth).await.is_hit());

    // RFC 9111 as written: must-revalidate is enough (§3.5).
    let rfc = App::with(Cache::memory(), |l| {
        l.private_requests(covet::cache::http::PrivateRequests::Rfc9111)
    })
    .await;
    let path = cc_path("auth-mr", &["max-age=60, must-revalidate"], &[]);
    rfc.get_with(&path, &auth).await;
    settle().await;
    assert!(rfc.get_with(&path, &auth).await.is_hit());
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let app = App::start().await;
    let path = cc_path("head", &["max-age=60"], &[]);
    let get = app.get(&path).await;
    settle().await;
    let head = app.req("HEAD", &path, &[]).await;
    assert!(head.is_hit());
    assert!(head.body.is_empty());
    assert_eq!(
        head.headers.get("content-length"),
        get.headers.get("content-length")
    );
    assert_eq!(app.origin.count("head"), 1);
}

#[tokio::test]
async fn bodies_over_the_limit_stream_through_unstored() {
    let app = App::with(Cache::memory(), |l| l.max_body_size(64 * 1024)).await;
    let r = app.get("/big").await;
    assert_eq!(r.body.len(), 300 * 1024);
    assert!(
        r.cache_status().contains("detail=too-large"),
        "{}",
        r.cache_status()
    );
    settle().await;
    let again = app.get("/big").await;
    assert_eq!(again.body.len(), 300 * 1024);
    assert!(!again.is_hit());
    assert_eq!(app.origin.count("big"), 2);
}

#[tokio::test]
async fn streaming_responses_are_not_held_back() {
    let app = App::start().await;
    let resp = app
        .client
        .get(app.server.url("/stream"))
        .send()
        .await
        .expect("request");
    let mut resp = resp;
    // The first chunk arrives while the handler still waits: nothing buffers it.
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first chunk came through before the body ended")
        .expect("chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"first;");
    app.origin.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.expect("chunk") {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second");
    settle().await;
    // Stored once it ended within the limit.
    let again = app.get("/stream").await;
    assert!(again.is_hit(), "{}", again.cache_status());
    assert_eq!(again.body, "first;second");
}

#[tokio::test]
async fn server_sent_events_stream_through() {
    let app = App::start().await;
    let mut resp = app
        .client
        .get(app.server.url("/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let status = resp.headers()["cache-status"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(status.contains("fwd=uri-miss"), "{status}");
    assert!(
        !status.contains("stored"),
        "an event stream is not cacheable: {status}"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first event came through while the stream was open")
        .expect("chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"data: one\n\n");
    app.origin.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.expect("chunk") {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: two\n\n");
    assert_eq!(app.origin.count("events"), 1);
}

#[tokio::test]
async fn per_route_opt_out_opt_in_and_default_ttl() {
    let app = App::start().await;
    app.get("/bypass").await;
    settle().await;
    assert!(!app.get("/bypass").await.is_hit());
    // A route layer with a default TTL caches a response without headers.
    let first = app.get("/report").await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    settle().await;
    let second = app.get("/report").await;
    assert!(second.is_hit());
    assert_eq!(second.body, "report #1");
    assert_eq!(
        second.cache_status().matches("covet").count(),
        1,
        "one entry: {}",
        second.cache_status()
    );

    let opt_in = App::with(Cache::memory(), |l| {
        l.opt_in(true).default_ttl(Duration::from_secs(60))
    })
    .await;
    opt_in.get("/opted-in").await;
    let plain = cc_path("not-opted", &["max-age=60"], &[]);
    opt_in.get(&plain).await;
    settle().await;
    assert!(opt_in.get("/opted-in").await.is_hit());
    assert!(!opt_in.get(&plain).await.is_hit());
}

#[tokio::test]
async fn key_prefix_and_key_extension() {
    let cache = Cache::memory();
    let app = App::with(cache.clone(), |l| {
        l.key_prefix("pages:").key_extension(|req| {
            req.headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
    })
    .await;
    let path = cc_path("tenant", &["max-age=60"], &[]);
    let a = app.get_with(&path, &[("x-tenant", "a")]).await;
    settle().await;
    let b = app.get_with(&path, &[("x-tenant", "b")]).await;
    assert_ne!(a.body, b.body);
    settle().await;
    assert!(app.get_with(&path, &[("x-tenant", "a")]).await.is_hit());
    assert!(app.get_with(&path, &[("x-tenant", "b")]).await.is_hit());
    assert_eq!(
        cache
            .delete_pattern("pages:*")
            .await
            .expect("pattern delete"),
        2
    );
    assert!(!app.get_with(&path, &[("x-tenant", "a")]).await.is_hit());
}

#[tokio::test]
async fn invalidation_from_code_and_by_pattern() {
    let app = App::start().await;
    let path = cc_path("inv", &["max-age=60"], &[]);
    app.get(&path).await;
    settle().await;
    assert!(app.get(&path).await.is_hit());
    let removed = HttpCache::invalidate(&app.cache, &path)
        .await
        .expect("invalidate");
    assert_eq!(removed, 1);
    assert!(!app.get(&path).await.is_hit());
    settle().await;
    let absolute = app.server.url(&path);
    assert_eq!(
        HttpCache::invalidate(&app.cache, &absolute)
            .await
            .expect("invalidate"),
        1
    );
    assert!(!app.get(&path).await.is_hit());
    settle().await;
    // The same flush clears #[cached] values and HTTP responses.
    app.cache.clear().await.expect("clear");
    assert!(!app.get(&path).await.is_hit());
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn responses_are_shared_through_redis() {
    let Some(url) = covet_test::require(covet_test::Server::Redis) else {
        return;
    };
    let cache = || async {
        covet::cache::RedisBackend::connect(&url)
            .await
            .expect("connecting to Redis")
    };
    let ns = covet_test::unique_namespace("http");
    let a = Cache::builder()
        .backend(cache().await)
        .namespace(ns.clone())
        .build()
        .expect("cache");
    let b = Cache::builder()
        .backend(cache().await)
        .namespace(ns)
        .build()
        .expect("cache");
    let app_a = App::with(a.clone(), |l| l).await;
    let app_b = App::with(b, |l| l).await;
    // Both apps see themselves as the same host.
    let path = cc_path("shared", &["max-age=60"], &[("vary", "Accept-Language")]);
    let host = [("host", "app.test"), ("accept-language", "de")];
    app_a.get_with(&path, &host).await;
    settle().await;
    let from_b = app_b.get_with(&path, &host).await;
    assert!(from_b.is_hit(), "{}", from_b.cache_status());
    assert_eq!(from_b.body, "shared #1 lang=de");
    a.clear().await.expect("clear");
}

/// A plain hyper 1 server (no axum): `HttpCache` wraps a `service_fn`
/// whose request body is hyper's `Incoming`, which has no `Default`.
#[tokio::test]
async fn plain_hyper_services_are_cached_too() {
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let cache = Cache::memory();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc = HttpCache::new(
        tower::service_fn(move |_req: http::Request<Incoming>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let mut r = http::Response::new(Full::new(bytes::Bytes::from(format!("n={n}"))));
                r.headers_mut().insert(
                    "cache-control",
                    HeaderValue::from_static("max-age=60, stale-while-revalidate=60"),
                );
                Ok::<_, Infallible>(r)
            }
        }),
        cache.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/plain");
    let first = client.get(&url).send().await.expect("request");
    assert_eq!(first.text().await.expect("body"), "n=1");
    settle().await;
    let second = client.get(&url).send().await.expect("request");
    assert!(
        second.headers()["cache-status"]
            .to_str()
            .expect("ASCII")
            .contains("; hit")
    );
    assert_eq!(second.text().await.expect("body"), "n=1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.abort();
}
