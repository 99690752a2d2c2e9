//! Security: no request can make the cache store a response under another
//! request's key (Host, forwarding headers, schemes, nested routers,
//! encodings and variants).

use crate::support::Within;
use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::{Forwarding, HttpCache, HttpCacheLayer};
use covet_test::http::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{client, fetch, send};

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
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route("/app.js", get(static_file))
        .route("/static/app.js", get(static_file))
        .layer(layer.clone());
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
    layer.settled().within().await;
    let normal = fetch(&server, "/static/app.js", &[]).await;
    assert_eq!(normal.body, "file at /static/app.js");
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
    let layer = HttpCacheLayer::new(Cache::memory()).allowed_hosts(["shop.test", ".cdn.test"]);
    let app = Router::new()
        .route("/app.js", get(static_file))
        .layer(layer.clone());
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
        layer.settled().within().await;
        assert_eq!(
            fetch(&server, "/app.js", &[("host", host)]).await.is_hit(),
            cached,
            "{host}"
        );
    }
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
    let v1_layer = HttpCacheLayer::new(cache.clone());
    let v2_layer = HttpCacheLayer::new(cache.clone());
    let v1 = Router::new()
        .route("/x", get(version_x))
        .layer(v1_layer.clone());
    let v2 = Router::new()
        .route("/x", get(version_x))
        .layer(v2_layer.clone());
    let app = Router::new().nest("/v1", v1).nest("/v2", v2);
    let server = TestServer::start(app).await;
    assert_eq!(
        fetch(&server, "/v1/x", &[]).await.body,
        "/v1/x (routed as /x)"
    );
    v1_layer.settled().within().await;
    let v2 = fetch(&server, "/v2/x", &[]).await;
    assert_eq!(v2.body, "/v2/x (routed as /x)");
    v2_layer.settled().within().await;
    let v1 = fetch(&server, "/v1/x", &[]).await;
    assert!(v1.is_hit());
    assert_eq!(v1.body, "/v1/x (routed as /x)");
    assert!(fetch(&server, "/v2/x", &[]).await.is_hit());
}

// ---------------------------------------------------------------------
// Unsafe methods under nested routers invalidate their own URI only.

async fn nested_write() -> &'static str {
    "written"
}

#[tokio::test]
async fn an_unsafe_request_in_a_nested_router_invalidates_its_own_uri() {
    let cache = Cache::memory();
    let v1_layer = HttpCacheLayer::new(cache.clone());
    let v2_layer = HttpCacheLayer::new(cache.clone());
    let v1 = Router::new()
        .route("/x", get(version_x).post(nested_write))
        .layer(v1_layer.clone());
    let v2 = Router::new()
        .route("/x", get(version_x).post(nested_write))
        .layer(v2_layer.clone());
    let server = TestServer::start(Router::new().nest("/v1", v1).nest("/v2", v2)).await;
    fetch(&server, "/v1/x", &[]).await;
    fetch(&server, "/v2/x", &[]).await;
    v1_layer.settled().within().await;
    v2_layer.settled().within().await;
    send(client().post(server.url("/v1/x"))).await;
    assert!(!fetch(&server, "/v1/x", &[]).await.is_hit());
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
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new().route("/link", get(link)).layer(layer.clone());
    let server = TestServer::start(app).await;
    let evil = fetch(&server, "/link", &[("x-forwarded-host", "evil.test")]).await;
    assert!(evil.body.contains("evil.test"));
    layer.settled().within().await;
    let normal = fetch(&server, "/link", &[]).await;
    assert!(
        !normal.body.contains("evil.test"),
        "poisoned: {}",
        normal.body
    );
    let tls = fetch(&server, "/link", &[("x-forwarded-proto", "https")]).await;
    assert!(tls.body.starts_with("<a href=\"https://"), "{}", tls.body);
    layer.settled().within().await;
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
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new().route("/link", get(link)).layer(layer.clone());
    let server = TestServer::start(app).await;
    let host = server.addr().to_string();
    let https = raw(
        &server,
        &format!("GET https://{host}/link HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(https.contains("stored"), "{https}");
    layer.settled().within().await;
    let http = raw(
        &server,
        &format!("GET http://{host}/link HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(http.contains("<a href=\"http://"), "{http}");
    assert!(!http.contains("; hit"), "{http}");
}

// ---------------------------------------------------------------------
// Trusted forwarding: the proxy's scheme and host are the key's.

#[tokio::test]
async fn trusted_forwarding_keys_by_the_public_scheme_and_host() {
    let cache = Cache::memory();
    let layer = HttpCacheLayer::new(cache.clone()).trusted_forwarding(Forwarding::XForwarded);
    let app = Router::new().route("/link", get(link)).layer(layer.clone());
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
    layer.settled().within().await;
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
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route("/enc", get(encoded))
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    // reqwest sends no Accept-Encoding without its compression features.
    let gz = fetch(&server, "/enc", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers["vary"], "accept-encoding");
    layer.settled().within().await;
    let plain = fetch(&server, "/enc", &[]).await;
    assert_eq!(
        plain.body, "plain",
        "a gzip body went to a client that cannot read it"
    );
    layer.settled().within().await;
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
    let layer = HttpCacheLayer::new(cache.clone()).max_variants(3);
    let app = Router::new().route("/v", get(variant)).layer(layer.clone());
    let server = TestServer::start(app).await;
    for i in 0..10 {
        fetch(&server, "/v", &[("x-variant", &i.to_string())]).await;
        layer.settled().within().await;
    }
    assert!(fetch(&server, "/v", &[("x-variant", "9")]).await.is_hit());
    assert!(
        !fetch(&server, "/v", &[("x-variant", "0")]).await.is_hit(),
        "the oldest went"
    );
    layer.settled().within().await;
    let variants = cache
        .delete_pattern("http:* #*")
        .await
        .expect("pattern delete");
    assert!(variants <= 3, "{variants} variants kept");
}
