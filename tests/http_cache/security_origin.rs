//! Security: what the cache sends the origin and what it stores of the
//! answer (conditionals, Range, request bodies, statuses, malformed
//! fields, an invalidation racing a read), and what bounds the work one
//! client can cause (coalescing timeouts, stalled readers, background
//! refreshes).

use crate::support::Within;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::{HttpCache, HttpCacheLayer};
use covet_test::http::TestServer;

use crate::support::{client, fetch, send};

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
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route("/doc", get(slow_read).delete(remove))
        .layer(layer.clone())
        .with_state(state.clone());
    let server = Arc::new(TestServer::start(app).await);
    assert_eq!(fetch(&server, "/doc", &[]).await.body, "version 1");
    layer.settled().within().await;
    // Stale on purpose: the next read goes to the origin.
    let slow = {
        let server = server.clone();
        tokio::spawn(async move { fetch(&server, "/doc", &[("cache-control", "no-cache")]).await })
    };
    // Until the slow read reached the origin (it then waits at the gate).
    while state.calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deleted = send(client().delete(server.url("/doc"))).await;
    assert_eq!(deleted.body, "deleted");
    state.gate.notify_one();
    assert_eq!(slow.await.expect("task").body, "version 2");
    layer.settled().within().await;
    let after = fetch(&server, "/doc", &[]).await;
    assert_eq!(
        after.body, "version 3",
        "the slow read re-stored deleted content"
    );
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

/// The strict origin behind a layer of its own, and that layer.
fn strict_app(seen: Seen) -> (Router, HttpCacheLayer) {
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route("/doc", get(strict_origin))
        .layer(layer.clone())
        .with_state(seen);
    (app, layer)
}

#[tokio::test]
async fn a_miss_forwards_neither_range_nor_the_clients_conditionals() {
    let seen = Seen::default();
    let (app, layer) = strict_app(seen.clone());
    let server = TestServer::start(app).await;
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
    layer.settled().within().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
    assert!(normal.is_hit());
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn precondition_failures_and_bad_ranges_are_never_stored() {
    let seen = Seen::default();
    let (app, layer) = strict_app(seen.clone());
    let server = TestServer::start(app).await;
    let failed = fetch(&server, "/doc", &[("if-match", "\"other\"")]).await;
    assert_eq!(failed.status, 412, "the cache evaluates If-Match itself");
    layer.settled().within().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
    HttpCache::invalidate(&Cache::memory(), "/doc")
        .await
        .expect("invalidate");

    let seen = Seen::default();
    let (app, layer) = strict_app(seen.clone());
    let server = TestServer::start(app).await;
    let range = fetch(&server, "/doc", &[("range", "bytes=500-")]).await;
    assert_eq!(range.status, 200, "a range is served as the full response");
    layer.settled().within().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
    assert!(normal.is_hit());
    // A request whose response is never stored goes to the origin as it
    // is, and what comes back is not stored.
    let (app, layer) = strict_app(Seen::default());
    let server = TestServer::start(app).await;
    let nostore = fetch(
        &server,
        "/doc",
        &[("cache-control", "no-store"), ("range", "bytes=0-3")],
    )
    .await;
    assert_eq!(nostore.status, 206);
    layer.settled().within().await;
    let normal = fetch(&server, "/doc", &[]).await;
    assert_eq!((normal.status, normal.body.as_str()), (200, "full body"));
}

#[tokio::test]
async fn a_get_with_a_body_bypasses_the_cache() {
    let seen = Seen::default();
    let (app, layer) = strict_app(seen.clone());
    let server = TestServer::start(app).await;
    let with_body = send(client().get(server.url("/doc")).body("q=1")).await;
    assert!(
        with_body.cache_status().contains("fwd=bypass")
            && with_body.cache_status().contains("detail=body"),
        "{}",
        with_body.cache_status()
    );
    layer.settled().within().await;
    assert!(!fetch(&server, "/doc", &[]).await.is_hit(), "not stored");
    layer.settled().within().await;
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
        .layer(layer.clone())
        .with_state(Seen::default());
    let server = TestServer::start(app).await;
    let stored = |code: u16, cc: &'static str| {
        let (server, layer) = (&server, &layer);
        async move {
            let path = if cc.is_empty() {
                format!("/status/{code}")
            } else {
                format!("/status/{code}?cc={cc}")
            };
            let first = fetch(server, &path, &[]).await;
            assert_eq!(first.status, code);
            layer.settled().within().await;
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
        .layer(negative.clone())
        .with_state(Seen::default());
    let server = TestServer::start(app).await;
    for code in [404, 410] {
        fetch(&server, &format!("/status/{code}"), &[]).await;
        negative.settled().within().await;
        assert!(
            fetch(&server, &format!("/status/{code}"), &[])
                .await
                .is_hit(),
            "{code}"
        );
    }
    fetch(&server, "/status/200", &[]).await;
    negative.settled().within().await;
    assert!(!fetch(&server, "/status/200", &[]).await.is_hit());
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
    let layer = HttpCacheLayer::new(Cache::memory()).default_ttl(Duration::from_secs(60));
    let app = Router::new()
        .route("/m", get(malformed))
        .layer(layer.clone());
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
        layer.settled().within().await;
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
    // Until the leader reached the origin (it then waits at the gate).
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
    holding: Arc<AtomicBool>,
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
    let layer = HttpCacheLayer::new(Cache::memory()).max_background_refreshes(1);
    let app = Router::new()
        .route("/swr/{name}", get(swr_page))
        .layer(layer.clone())
        .with_state(state.clone());
    let server = TestServer::start(app).await;
    fetch(&server, "/swr/a", &[]).await;
    fetch(&server, "/swr/b", &[]).await;
    layer.settled().within().await;
    // Real time: both max-age=1 pages go stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // a's refresh takes the only slot and hangs.
    assert_eq!(fetch(&server, "/swr/a", &[]).await.body, "a #1");
    // Until a's refresh reached the origin (it then hangs there).
    while !state.holding.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // b is served stale without a refresh.
    let b = fetch(&server, "/swr/b", &[]).await;
    assert_eq!(b.body, "b #1");
    assert!(b.cache_status().contains("stale-while-revalidate"));
    // `settled` counts a's hanging refresh: release it first. Once settled,
    // any refresh of b, had one started, has reached the origin too.
    state.hold.notify_one();
    layer.settled().within().await;
    assert_eq!(
        state.calls.lock().get("b").copied(),
        Some(1),
        "no refresh past the limit"
    );
    // Once the slot is free, b refreshes again.
    fetch(&server, "/swr/b", &[]).await;
    layer.settled().within().await;
    assert_eq!(state.calls.lock().get("b").copied(), Some(2));
}
