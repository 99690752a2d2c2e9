//! The HTTP cache's security defaults over real HTTP: nothing one user's
//! request makes the origin say (a session cookie, a cookie-dependent page)
//! reaches another user, and no request can make the cache store a
//! response under another request's key (Host, forwarding headers, nested
//! routers, conditionals, Range, request bodies).

#![cfg(all(feature = "http", feature = "axum", feature = "memory"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use covet::cache::Cache;
use covet::cache::http::{Forwarding, HttpCache, HttpCacheLayer};
use covet::session::{MemoryStore, Session, SessionConfig, SessionLayer};
use covet_test::http::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Waits until the store spawned after a response body ended has landed.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One request on a fresh connection, written by hand (to send what a
/// well-behaved client never would); the raw response, head and body.
async fn raw(server: &TestServer, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connecting");
    tcp.write_all(request.as_bytes()).await.expect("writing");
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.expect("reading");
    String::from_utf8_lossy(&out).into_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn is_hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect()
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

async fn fetch(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(server.url(path));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    send(req).await
}

// ---------------------------------------------------------------------
// 304 merge: the account takeover of the issue, end to end with the real
// SessionLayer inside the cache.

async fn login(session: Session) -> Result<&'static str, covet::session::Error> {
    session.insert("user", "alice")?;
    Ok("logged in")
}

/// A public page that answers 304 to its ETag and, for a logged-in
/// visitor, records the visit in the session (so the session layer sends a
/// fresh cookie, on the 304 too).
async fn public_page(session: Session, headers: HeaderMap) -> Response {
    let user: Option<String> = session.get("user").ok().flatten();
    if user.is_some() {
        let _ = session.insert("last_visit", "now");
    }
    let cc = [
        (header::CACHE_CONTROL, "public, max-age=1"),
        (header::ETAG, "\"page-v1\""),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some("\"page-v1\"")
    {
        return (StatusCode::NOT_MODIFIED, cc).into_response();
    }
    (cc, "the public page").into_response()
}

async fn whoami(session: Session) -> String {
    let user: Option<String> = session.get("user").ok().flatten();
    user.unwrap_or_else(|| "anonymous".into())
}

#[tokio::test]
async fn a_session_cookie_from_a_304_never_reaches_another_user() {
    let cache = Cache::memory();
    let app = Router::new()
        .route("/login", post(login))
        .route("/page", get(public_page))
        .route("/whoami", get(whoami))
        .layer(
            SessionLayer::new(MemoryStore::new()).with_config(
                SessionConfig::default()
                    .with_secure(false)
                    // Her cookie is sent again on every visit.
                    .with_renewal_interval(Duration::ZERO),
            ),
        )
        .layer(HttpCacheLayer::new(cache.clone()));
    let server = TestServer::start(app).await;

    // 1. An anonymous visit stores the page.
    let first = fetch(&server, "/page", &[]).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    assert!(first.set_cookies().is_empty());
    settle().await;

    // 2. alice logs in and revisits once the page is stale: the cache
    // revalidates with her request and the origin answers 304 with her
    // refreshed session cookie.
    let alice = server.browser();
    assert_eq!(alice.post("/login").await.body, "logged in");
    assert_eq!(alice.get("/whoami").await.body, "alice");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let revisit = alice.get("/page").await;
    assert_eq!(revisit.status, 200);
    assert_eq!(revisit.body, "the public page");
    assert!(
        revisit.set_cookies.iter().any(|c| c.starts_with("id=")),
        "alice still gets her own cookie: {:?}",
        revisit.set_cookies
    );
    settle().await;

    // 3. A stranger without cookies gets the page, and no cookie at all.
    // (The session layer also marks the page `Vary: Cookie`, so alice's
    // request never shares the anonymous entry; the 304 merge itself is
    // tested without a session layer below.)
    let stranger = fetch(&server, "/page", &[]).await;
    assert_eq!(stranger.body, "the public page");
    assert!(
        stranger.is_hit() || stranger.cache_status().contains("fwd-status=304"),
        "{}",
        stranger.cache_status()
    );
    assert_eq!(
        stranger.set_cookies(),
        Vec::<String>::new(),
        "alice's session cookie was handed to a stranger"
    );
}

/// A public page whose origin refreshes a visitor's cookie on every
/// response, 304s included, without saying `Vary: Cookie`.
async fn cookie_refreshing_page(headers: HeaderMap) -> Response {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut r = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some("\"p1\"")
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        "the public page".into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        "public, max-age=1".parse().expect("cc"),
    );
    h.insert(header::ETAG, "\"p1\"".parse().expect("etag"));
    if let Some(c) = cookie {
        h.insert(
            header::SET_COOKIE,
            format!("{c}; Path=/").parse().expect("cookie"),
        );
        // Representation metadata on a 304 must not change the stored body's.
        h.insert(header::CONTENT_TYPE, "text/html".parse().expect("type"));
    }
    r
}

#[tokio::test]
async fn a_set_cookie_on_a_304_goes_to_its_requester_and_is_never_stored() {
    let app = Router::new()
        .route("/page", get(cookie_refreshing_page))
        .layer(HttpCacheLayer::new(Cache::memory()));
    let server = TestServer::start(app).await;
    let first = fetch(&server, "/page", &[]).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let alice = fetch(&server, "/page", &[("cookie", "id=alice-session")]).await;
    assert_eq!(alice.body, "the public page");
    assert!(
        alice.cache_status().contains("fwd-status=304"),
        "{}",
        alice.cache_status()
    );
    assert_eq!(
        alice.set_cookies(),
        vec!["id=alice-session; Path=/".to_owned()]
    );
    settle().await;
    let stranger = fetch(&server, "/page", &[]).await;
    assert!(stranger.is_hit(), "{}", stranger.cache_status());
    assert_eq!(
        stranger.set_cookies(),
        Vec::<String>::new(),
        "alice's cookie leaked"
    );
    assert_eq!(
        stranger.headers["content-type"],
        "text/plain; charset=utf-8"
    );
}

// ---------------------------------------------------------------------
// Private requests: a cookie-dependent page under `default_ttl`.

async fn greet(headers: HeaderMap) -> String {
    let user = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').find_map(|p| p.trim().strip_prefix("user=")))
        .unwrap_or("nobody");
    format!("hello user={user}")
}

#[tokio::test]
async fn a_cookie_dependent_page_is_never_served_to_a_client_without_cookies() {
    let app = Router::new()
        .route("/greet", get(greet))
        .layer(HttpCacheLayer::new(Cache::memory()).default_ttl(Duration::from_secs(60)));
    let server = TestServer::start(app).await;
    let alice = fetch(&server, "/greet", &[("cookie", "user=alice")]).await;
    assert_eq!(alice.body, "hello user=alice");
    assert!(
        alice.cache_status().contains("detail=cookie"),
        "{}",
        alice.cache_status()
    );
    settle().await;
    let anonymous = fetch(&server, "/greet", &[]).await;
    assert_eq!(anonymous.body, "hello user=nobody");
    settle().await;
    // The anonymous page was stored; alice, with her cookie, is not served it.
    assert!(fetch(&server, "/greet", &[]).await.is_hit());
    let alice_again = fetch(&server, "/greet", &[("cookie", "user=alice")]).await;
    assert_eq!(alice_again.body, "hello user=alice");
    assert!(!alice_again.is_hit());
}

// ---------------------------------------------------------------------
// Authority: a Host with a path cannot put one URI's response under
// another's key.

async fn static_file(uri: axum::http::Uri) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!("file at {}", uri.path()),
    )
}

#[tokio::test]
async fn a_host_header_with_a_path_cannot_poison_another_uri() {
    let app = Router::new()
        .route("/app.js", get(static_file))
        .route("/static/app.js", get(static_file))
        .layer(HttpCacheLayer::new(Cache::memory()));
    let server = TestServer::start(app).await;
    let host = server.addr().to_string();
    let poison = raw(
        &server,
        &format!("GET /app.js HTTP/1.1\r\nHost: {host}/static\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(poison.contains("file at /app.js"), "{poison}");
    assert!(
        poison.to_ascii_lowercase().contains("detail=host"),
        "a malformed Host bypasses the cache: {poison}"
    );
    settle().await;
    let normal = fetch(&server, "/static/app.js", &[]).await;
    assert_eq!(normal.body, "file at /static/app.js");
}

// ---------------------------------------------------------------------
// Nested routers: each layer keys on the original URI.

async fn version_x(
    uri: axum::http::Uri,
    axum::extract::OriginalUri(original): axum::extract::OriginalUri,
) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!("{} (routed as {})", original.path(), uri.path()),
    )
}

#[tokio::test]
async fn nested_routers_never_share_an_entry() {
    let cache = Cache::memory();
    let v1 = Router::new()
        .route("/x", get(version_x))
        .layer(HttpCacheLayer::new(cache.clone()));
    let v2 = Router::new()
        .route("/x", get(version_x))
        .layer(HttpCacheLayer::new(cache.clone()));
    let app = Router::new().nest("/v1", v1).nest("/v2", v2);
    let server = TestServer::start(app).await;
    assert_eq!(
        fetch(&server, "/v1/x", &[]).await.body,
        "/v1/x (routed as /x)"
    );
    settle().await;
    let v2 = fetch(&server, "/v2/x", &[]).await;
    assert_eq!(v2.body, "/v2/x (routed as /x)");
    settle().await;
    let v1 = fetch(&server, "/v1/x", &[]).await;
    assert!(v1.is_hit());
    assert_eq!(v1.body, "/v1/x (routed as /x)");
    assert!(fetch(&server, "/v2/x", &[]).await.is_hit());
}

// ---------------------------------------------------------------------
// Forwarding headers: what a framework builds URLs from is in the key.

async fn link(headers: HeaderMap) -> impl IntoResponse {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = h("x-forwarded-host")
        .or_else(|| h("host"))
        .unwrap_or_default();
    let scheme = h("x-forwarded-proto").unwrap_or_else(|| "http".into());
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!("<a href=\"{scheme}://{host}/next\">"),
    )
}

#[tokio::test]
async fn forwarding_headers_are_part_of_the_key() {
    let app = Router::new()
        .route("/link", get(link))
        .layer(HttpCacheLayer::new(Cache::memory()));
    let server = TestServer::start(app).await;
    let evil = fetch(&server, "/link", &[("x-forwarded-host", "evil.test")]).await;
    assert!(evil.body.contains("evil.test"));
    settle().await;
    let normal = fetch(&server, "/link", &[]).await;
    assert!(
        !normal.body.contains("evil.test"),
        "poisoned: {}",
        normal.body
    );
    let tls = fetch(&server, "/link", &[("x-forwarded-proto", "https")]).await;
    assert!(tls.body.starts_with("<a href=\"https://"), "{}", tls.body);
    settle().await;
    assert!(!fetch(&server, "/link", &[]).await.body.contains("https://"));
    // Each variant is stored on its own.
    assert!(
        fetch(&server, "/link", &[("x-forwarded-host", "evil.test")])
            .await
            .is_hit()
    );
    assert!(
        fetch(&server, "/link", &[("x-forwarded-proto", "https")])
            .await
            .is_hit()
    );
}

#[tokio::test]
async fn http_and_https_never_share_an_entry() {
    let app = Router::new()
        .route("/link", get(link))
        .layer(HttpCacheLayer::new(Cache::memory()));
    let server = TestServer::start(app).await;
    let host = server.addr().to_string();
    let https = raw(
        &server,
        &format!("GET https://{host}/link HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(https.contains("stored"), "{https}");
    settle().await;
    let http = raw(
        &server,
        &format!("GET http://{host}/link HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(http.contains("<a href=\"http://"), "{http}");
    assert!(!http.contains("; hit"), "{http}");
}

// ---------------------------------------------------------------------
// Invalidation race: a slow read cannot re-store what a DELETE removed.

#[derive(Clone, Default)]
struct Slow {
    calls: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Notify>,
}

async fn slow_read(State(s): State<Slow>) -> impl IntoResponse {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 2 {
        // The second read started before the DELETE and ends after it.
        s.gate.notified().await;
    }
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!("version {n}"),
    )
}

async fn remove() -> &'static str {
    "deleted"
}

#[tokio::test]
async fn a_read_that_started_before_an_invalidation_is_not_stored() {
    let state = Slow::default();
    let app = Router::new()
        .route("/doc", get(slow_read).delete(remove))
        .layer(HttpCacheLayer::new(Cache::memory()))
        .with_state(state.clone());
    let server = Arc::new(TestServer::start(app).await);
    assert_eq!(fetch(&server, "/doc", &[]).await.body, "version 1");
    settle().await;
    // Stale on purpose: the next read goes to the origin.
    let slow = {
        let server = server.clone();
        tokio::spawn(async move { fetch(&server, "/doc", &[("cache-control", "no-cache")]).await })
    };
    while state.calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deleted = send(client().delete(server.url("/doc"))).await;
    assert_eq!(deleted.body, "deleted");
    state.gate.notify_one();
    assert_eq!(slow.await.expect("task").body, "version 2");
    settle().await;
    let after = fetch(&server, "/doc", &[]).await;
    assert_eq!(
        after.body, "version 3",
        "the slow read re-stored deleted content"
    );
}

// ---------------------------------------------------------------------
// Authority: missing, duplicated, mismatched and not allowed hosts bypass.

#[tokio::test]
async fn missing_duplicated_and_mismatched_hosts_bypass_the_cache() {
    let app = Router::new()
        .route("/app.js", get(static_file))
        .layer(HttpCacheLayer::new(Cache::memory()));
    let server = TestServer::start(app).await;
    let host = server.addr().to_string();
    for request in [
        "GET /app.js HTTP/1.0\r\n\r\n".to_owned(),
        format!(
            "GET /app.js HTTP/1.1\r\nHost: {host}\r\nHost: other.test\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "GET http://{host}/app.js HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n"
        ),
        "GET /app.js HTTP/1.1\r\nHost: user@other.test\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /app.js HTTP/1.1\r\nHost: other.test:99999\r\nConnection: close\r\n\r\n".to_owned(),
    ] {
        let reply = raw(&server, &request).await;
        assert!(reply.contains("file at /app.js"), "{request:?}: {reply}");
        assert!(
            reply.contains("fwd=bypass") && reply.contains("detail=host"),
            "{request:?}: {reply}"
        );
    }
}

#[tokio::test]
async fn allowed_hosts_limit_what_is_cached() {
    let app = Router::new()
        .route("/app.js", get(static_file))
        .layer(HttpCacheLayer::new(Cache::memory()).allowed_hosts(["shop.test", ".cdn.test"]));
    let server = TestServer::start(app).await;
    for (host, cached) in [
        ("shop.test", true),
        ("img.cdn.test", true),
        ("evil.test", false),
    ] {
        let first = fetch(&server, "/app.js", &[("host", host)]).await;
        assert_eq!(
            first.cache_status().contains("detail=host"),
            !cached,
            "{host}"
        );
        settle().await;
        assert_eq!(
            fetch(&server, "/app.js", &[("host", host)]).await.is_hit(),
            cached,
            "{host}"
        );
    }
}

// ---------------------------------------------------------------------
// Trusted forwarding: the proxy's scheme and host are the key's.

#[tokio::test]
async fn trusted_forwarding_keys_by_the_public_scheme_and_host() {
    let cache = Cache::memory();
    let app = Router::new()
        .route("/link", get(link))
        .layer(HttpCacheLayer::new(cache.clone()).trusted_forwarding(Forwarding::XForwarded));
    let server = TestServer::start(app).await;
    let https = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.test"),
    ];
    let http = [
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "shop.test"),
    ];
    assert!(
        fetch(&server, "/link", &https)
            .await
            .body
            .contains("https://shop.test")
    );
    assert!(
        fetch(&server, "/link", &http)
            .await
            .body
            .contains("http://shop.test")
    );
    settle().await;
    let again = fetch(&server, "/link", &https).await;
    assert!(again.is_hit() && again.body.contains("https://"));
    let again = fetch(&server, "/link", &http).await;
    assert!(again.is_hit() && again.body.contains("http://"));
    // The absolute URI the public sees invalidates exactly that entry.
    let removed = HttpCache::invalidate(&cache, "https://shop.test/link")
        .await
        .expect("invalidate");
    assert_eq!(removed, 1);
    assert!(!fetch(&server, "/link", &https).await.is_hit());
    assert!(fetch(&server, "/link", &http).await.is_hit());
}

// ---------------------------------------------------------------------
// Origin fetch hygiene.

#[derive(Clone, Default)]
struct Seen {
    headers: Arc<parking_lot::Mutex<Vec<HeaderMap>>>,
    calls: Arc<AtomicUsize>,
}

/// Answers what an origin answers to conditionals and ranges, with
/// explicit freshness on every status: a cache that forwarded them and
/// stored the answer would serve a 206, 304, 412 or 416 to everyone.
async fn strict_origin(State(seen): State<Seen>, headers: HeaderMap) -> Response {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    seen.headers.lock().push(headers.clone());
    let cc = [
        (header::CACHE_CONTROL, "public, max-age=60"),
        (header::ETAG, "\"e1\""),
        (header::LAST_MODIFIED, "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    let h = |n: header::HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(m) = h(header::IF_MATCH)
        && m != "\"e1\""
    {
        return (StatusCode::PRECONDITION_FAILED, cc).into_response();
    }
    if h(header::IF_NONE_MATCH).as_deref() == Some("\"e1\"") {
        return (StatusCode::NOT_MODIFIED, cc).into_response();
    }
    if let Some(range) = h(header::RANGE) {
        if range == "bytes=0-3" {
            return (StatusCode::PARTIAL_CONTENT, cc, "full").into_response();
        }
        return (StatusCode::RANGE_NOT_SATISFIABLE, cc).into_response();
    }
    (cc, "full body").into_response()
}

fn strict_app(seen: Seen) -> Router {
    Router::new()
        .route("/doc", get(strict_origin))
        .layer(HttpCacheLayer::new(Cache::memory()))
        .with_state(seen)
}

#[tokio::test]
async fn a_miss_forwards_neither_range_nor_the_clients_conditionals() {
    let seen = Seen::default();
    let server = TestServer::start(strict_app(seen.clone())).await;
    let first = fetch(
        &server,
        "/doc",
        &[
            ("range", "bytes=0-3"),
            ("if-range", "\"e1\""),
            ("if-none-match", "\"e1\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    )
    .await;
    // The client's If-None-Match matches the fetched response: a 304 for
    // it, and the full response stored for everyone.
    assert_eq!(first.status, 304, "{}", first.cache_status());
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    {
        let seen_headers = seen.headers.lock();
        for name in ["range", "if-range", "if-none-match", "if-modified-since"] {
            assert!(
                !seen_headers[0].contains_key(name),
                "{name} reached the origin"
            );
        }
    }
    settle().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
    assert!(normal.is_hit());
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn precondition_failures_and_bad_ranges_are_never_stored() {
    let seen = Seen::default();
    let server = TestServer::start(strict_app(seen.clone())).await;
    let failed = fetch(&server, "/doc", &[("if-match", "\"other\"")]).await;
    assert_eq!(failed.status, 412, "the cache evaluates If-Match itself");
    settle().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
    HttpCache::invalidate(&Cache::memory(), "/doc")
        .await
        .expect("invalidate");

    let seen = Seen::default();
    let server = TestServer::start(strict_app(seen.clone())).await;
    let range = fetch(&server, "/doc", &[("range", "bytes=500-")]).await;
    assert_eq!(range.status, 200, "a range is served as the full response");
    settle().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
    assert!(normal.is_hit());
    // A request whose response is never stored goes to the origin as it
    // is, and what comes back is not stored.
    let server = TestServer::start(strict_app(Seen::default())).await;
    let nostore = fetch(
        &server,
        "/doc",
        &[("cache-control", "no-store"), ("range", "bytes=0-3")],
    )
    .await;
    assert_eq!(nostore.status, 206);
    settle().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
}

#[tokio::test]
async fn a_get_with_a_body_bypasses_the_cache() {
    let seen = Seen::default();
    let server = TestServer::start(strict_app(seen.clone())).await;
    let with_body = send(client().get(server.url("/doc")).body("q=1")).await;
    assert!(
        with_body.cache_status().contains("fwd=bypass")
            && with_body.cache_status().contains("detail=body"),
        "{}",
        with_body.cache_status()
    );
    settle().await;
    assert!(!fetch(&server, "/doc", &[]).await.is_hit(), "not stored");
    settle().await;
    assert!(fetch(&server, "/doc", &[]).await.is_hit());
    let again = send(client().get(server.url("/doc")).body("q=2")).await;
    assert!(!again.is_hit(), "never answered from the cache");
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
}

/// `/status/{code}?cc=...`: that status, with that Cache-Control if any.
async fn any_status(
    axum::extract::Path(code): axum::extract::Path<u16>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    State(seen): State<Seen>,
) -> Response {
    let n = seen.calls.fetch_add(1, Ordering::SeqCst);
    let mut r = format!("status {code} #{n}").into_response();
    *r.status_mut() = StatusCode::from_u16(code).expect("status");
    if let Some(cc) = q.and_then(|q| q.strip_prefix("cc=").map(str::to_owned)) {
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            cc.replace("%20", " ").parse().expect("cc"),
        );
    }
    if code / 100 == 3 {
        r.headers_mut()
            .insert(header::LOCATION, "/elsewhere".parse().expect("location"));
    }
    r
}

#[tokio::test]
async fn only_statuses_safe_to_share_are_stored() {
    let layer = HttpCacheLayer::new(Cache::memory()).default_ttl(Duration::from_secs(60));
    let app = Router::new()
        .route("/status/{code}", get(any_status))
        .layer(layer)
        .with_state(Seen::default());
    let server = TestServer::start(app).await;
    let stored = |code: u16, cc: &'static str| {
        let server = &server;
        async move {
            let path = if cc.is_empty() {
                format!("/status/{code}")
            } else {
                format!("/status/{code}?cc={cc}")
            };
            let first = fetch(server, &path, &[]).await;
            assert_eq!(first.status, code);
            settle().await;
            fetch(server, &path, &[]).await.is_hit()
        }
    };
    for code in [200, 203, 204, 300, 301, 308, 404, 410, 302, 307] {
        assert!(stored(code, "max-age=60").await, "{code} with max-age");
    }
    for code in [200, 301, 308] {
        assert!(stored(code, "").await, "{code} under default_ttl");
    }
    for code in [302, 307, 404, 410] {
        assert!(
            !stored(code, "").await,
            "{code}: default_ttl is for 2xx and 3xx only"
        );
    }
    for code in [400, 401, 403, 405, 412, 416, 429, 500, 501, 502, 503] {
        assert!(!stored(code, "max-age=60").await, "{code} is never shared");
    }

    let negative = HttpCacheLayer::new(Cache::memory()).negative_ttl(Duration::from_secs(60));
    let app = Router::new()
        .route("/status/{code}", get(any_status))
        .layer(negative)
        .with_state(Seen::default());
    let server = TestServer::start(app).await;
    for code in [404, 410] {
        fetch(&server, &format!("/status/{code}"), &[]).await;
        settle().await;
        assert!(
            fetch(&server, &format!("/status/{code}"), &[])
                .await
                .is_hit(),
            "{code}"
        );
    }
    fetch(&server, "/status/200", &[]).await;
    settle().await;
    assert!(!fetch(&server, "/status/200", &[]).await.is_hit());
}

// ---------------------------------------------------------------------
// Encodings and variants.

async fn encoded(headers: HeaderMap) -> Response {
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let cc = (header::CACHE_CONTROL, "public, max-age=60");
    if gzip {
        ([cc, (header::CONTENT_ENCODING, "gzip")], "pretend-gzip").into_response()
    } else {
        ([cc], "plain").into_response()
    }
}

#[tokio::test]
async fn an_encoded_response_without_vary_is_keyed_by_accept_encoding() {
    let app = Router::new()
        .route("/enc", get(encoded))
        .layer(HttpCacheLayer::new(Cache::memory()));
    let server = TestServer::start(app).await;
    // reqwest sends no Accept-Encoding without its compression features.
    let gz = fetch(&server, "/enc", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers["vary"], "accept-encoding");
    settle().await;
    let plain = fetch(&server, "/enc", &[]).await;
    assert_eq!(
        plain.body, "plain",
        "a gzip body went to a client that cannot read it"
    );
    settle().await;
    assert!(
        fetch(&server, "/enc", &[("accept-encoding", "gzip")])
            .await
            .is_hit()
    );
    assert!(fetch(&server, "/enc", &[]).await.is_hit());
}

async fn variant(headers: HeaderMap) -> impl IntoResponse {
    let v = headers
        .get("x-variant")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    (
        [
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::VARY, "x-variant"),
        ],
        v,
    )
}

#[tokio::test]
async fn vary_variants_per_uri_are_bounded() {
    let cache = Cache::memory();
    let app = Router::new()
        .route("/v", get(variant))
        .layer(HttpCacheLayer::new(cache.clone()).max_variants(3));
    let server = TestServer::start(app).await;
    for i in 0..10 {
        fetch(&server, "/v", &[("x-variant", &i.to_string())]).await;
        settle().await;
    }
    assert!(fetch(&server, "/v", &[("x-variant", "9")]).await.is_hit());
    assert!(
        !fetch(&server, "/v", &[("x-variant", "0")]).await.is_hit(),
        "the oldest went"
    );
    settle().await;
    let variants = cache
        .delete_pattern("http:* #*")
        .await
        .expect("pattern delete");
    assert!(variants <= 3, "{variants} variants kept");
}

async fn per_cookie(headers: HeaderMap) -> impl IntoResponse {
    let c = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    (
        [
            (header::CACHE_CONTROL, "max-age=60"),
            (header::VARY, "Cookie"),
        ],
        format!("for {c}"),
    )
}

#[tokio::test]
async fn vary_cookie_variants_are_stored_only_when_allowed() {
    let app = Router::new()
        .route("/me", get(per_cookie))
        .layer(HttpCacheLayer::new(Cache::memory()).ignore_cookies(["_ga"]));
    let server = TestServer::start(app).await;
    fetch(&server, "/me", &[]).await;
    let alice = fetch(&server, "/me", &[("cookie", "id=alice")]).await;
    assert!(
        alice.cache_status().contains("detail=vary-credentials"),
        "{}",
        alice.cache_status()
    );
    settle().await;
    assert_eq!(fetch(&server, "/me", &[]).await.body, "for none");
    assert!(
        fetch(&server, "/me", &[]).await.is_hit(),
        "the anonymous variant is stored"
    );
    // An ignored cookie neither makes a request private nor a new variant.
    let ga = fetch(&server, "/me", &[("cookie", "_ga=GA1.1")]).await;
    assert!(
        ga.is_hit() && ga.body == "for none",
        "{}",
        ga.cache_status()
    );
    assert!(
        !fetch(&server, "/me", &[("cookie", "id=alice")])
            .await
            .is_hit()
    );

    let app = Router::new()
        .route("/me", get(per_cookie))
        .layer(HttpCacheLayer::new(Cache::memory()).vary_by_credentials(true));
    let server = TestServer::start(app).await;
    fetch(&server, "/me", &[("cookie", "id=alice")]).await;
    settle().await;
    let again = fetch(&server, "/me", &[("cookie", "id=alice")]).await;
    assert!(again.is_hit() && again.body == "for id=alice");
    let bob = fetch(&server, "/me", &[("cookie", "id=bob")]).await;
    assert_eq!(bob.body, "for id=bob");
    assert!(!bob.is_hit());
    assert!(!fetch(&server, "/me", &[]).await.body.contains("alice"));
}

// ---------------------------------------------------------------------
// Parsing fails closed.

async fn malformed(uri: axum::http::Uri) -> Response {
    let mut r = "sensitive".into_response();
    match uri.query() {
        Some("cc") => {
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                "no-store; must-revalidate".parse().expect("cc"),
            );
        }
        Some("private") => {
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                "private;max-age=60".parse().expect("cc"),
            );
        }
        _ => {
            r.headers_mut()
                .insert(header::VARY, "Accept Language".parse().expect("vary"));
        }
    }
    r
}

#[tokio::test]
async fn a_malformed_cache_control_or_vary_is_never_permission_to_store() {
    let app = Router::new()
        .route("/m", get(malformed))
        .layer(HttpCacheLayer::new(Cache::memory()).default_ttl(Duration::from_secs(60)));
    let server = TestServer::start(app).await;
    for (query, detail) in [
        ("cc", "cache-control"),
        ("private", "cache-control"),
        ("vary", "vary"),
    ] {
        let path = format!("/m?{query}");
        let first = fetch(&server, &path, &[]).await;
        assert!(
            first.cache_status().contains(&format!("detail={detail}")),
            "{query}: {}",
            first.cache_status()
        );
        settle().await;
        assert!(!fetch(&server, &path, &[]).await.is_hit(), "{query}");
    }
}

// ---------------------------------------------------------------------
// Coalescing and refreshes.

#[derive(Clone, Default)]
struct Gate {
    calls: Arc<AtomicUsize>,
    open: Arc<tokio::sync::Notify>,
}

/// The first call waits for the test to open the gate; later ones answer
/// at once.
async fn gated(State(g): State<Gate>) -> impl IntoResponse {
    let n = g.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        g.open.notified().await;
    }
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!("call {n}"),
    )
}

#[tokio::test]
async fn a_follower_waits_at_most_the_coalesce_timeout() {
    let gate = Gate::default();
    let app = Router::new()
        .route("/g", get(gated))
        .layer(HttpCacheLayer::new(Cache::memory()).coalesce_timeout(Duration::from_millis(100)))
        .with_state(gate.clone());
    let server = Arc::new(TestServer::start(app).await);
    let leader = {
        let server = server.clone();
        tokio::spawn(async move { fetch(&server, "/g", &[]).await })
    };
    while gate.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The leader's origin request hangs; the follower gives up waiting and
    // gets its own answer while the leader still waits.
    let follower = tokio::time::timeout(Duration::from_secs(10), fetch(&server, "/g", &[]))
        .await
        .expect("the follower waited for the hanging leader");
    assert_eq!(follower.body, "call 2");
    assert!(!leader.is_finished());
    gate.open.notify_one();
    assert_eq!(leader.await.expect("task").body, "call 1");
}

async fn big_page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        "x".repeat(512 * 1024),
    )
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_back_neither_the_store_nor_the_followers() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new()
        .route(
            "/big",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                big_page()
            }),
        )
        .layer(HttpCacheLayer::new(Cache::memory()));
    let request = || {
        axum::http::Request::get("http://shop.test/big")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    // The first client gets its response head and never reads the body.
    let stalled = app.clone().oneshot(request()).await.expect("response");
    assert!(
        stalled.headers()["cache-status"]
            .to_str()
            .expect("ASCII")
            .contains("stored")
    );
    let follower = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(request()))
        .await
        .expect("the follower waited for the stalled reader")
        .expect("response");
    let status = follower.headers()["cache-status"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(status.contains("hit"), "{status}");
    let body = follower
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body.len(), 512 * 1024);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    drop(stalled);
}

#[derive(Clone, Default)]
struct Refreshing {
    calls: Arc<parking_lot::Mutex<std::collections::HashMap<String, usize>>>,
    hold: Arc<tokio::sync::Notify>,
    holding: Arc<std::sync::atomic::AtomicBool>,
}

async fn swr_page(
    State(r): State<Refreshing>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> impl IntoResponse {
    let n = {
        let mut calls = r.calls.lock();
        let n = calls.entry(name.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if n == 2 && name == "a" {
        // The refresh of `a` hangs until the test is done.
        r.holding.store(true, Ordering::SeqCst);
        r.hold.notified().await;
    }
    (
        [(
            header::CACHE_CONTROL,
            "public, max-age=1, stale-while-revalidate=60",
        )],
        format!("{name} #{n}"),
    )
}

#[tokio::test]
async fn background_refreshes_are_bounded() {
    let state = Refreshing::default();
    let app = Router::new()
        .route("/swr/{name}", get(swr_page))
        .layer(HttpCacheLayer::new(Cache::memory()).max_background_refreshes(1))
        .with_state(state.clone());
    let server = TestServer::start(app).await;
    fetch(&server, "/swr/a", &[]).await;
    fetch(&server, "/swr/b", &[]).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // a's refresh takes the only slot and hangs.
    assert_eq!(fetch(&server, "/swr/a", &[]).await.body, "a #1");
    while !state.holding.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // b is served stale without a refresh.
    let b = fetch(&server, "/swr/b", &[]).await;
    assert_eq!(b.body, "b #1");
    assert!(b.cache_status().contains("stale-while-revalidate"));
    settle().await;
    assert_eq!(
        state.calls.lock().get("b").copied(),
        Some(1),
        "no refresh past the limit"
    );
    state.hold.notify_one();
    // Once the slot is free, b refreshes again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    fetch(&server, "/swr/b", &[]).await;
    settle().await;
    assert_eq!(state.calls.lock().get("b").copied(), Some(2));
}

// ---------------------------------------------------------------------
// Unsafe methods under nested routers invalidate their own URI only.

async fn nested_write() -> &'static str {
    "written"
}

#[tokio::test]
async fn an_unsafe_request_in_a_nested_router_invalidates_its_own_uri() {
    let cache = Cache::memory();
    let v1 = Router::new()
        .route("/x", get(version_x).post(nested_write))
        .layer(HttpCacheLayer::new(cache.clone()));
    let v2 = Router::new()
        .route("/x", get(version_x).post(nested_write))
        .layer(HttpCacheLayer::new(cache.clone()));
    let server = TestServer::start(Router::new().nest("/v1", v1).nest("/v2", v2)).await;
    fetch(&server, "/v1/x", &[]).await;
    fetch(&server, "/v2/x", &[]).await;
    settle().await;
    send(client().post(server.url("/v1/x"))).await;
    assert!(!fetch(&server, "/v1/x", &[]).await.is_hit());
    assert!(fetch(&server, "/v2/x", &[]).await.is_hit());
}
