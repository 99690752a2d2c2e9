//! Range requests answered from a stored response: `206` with
//! `Content-Range`, `416`, `If-Range`, and what is never stored.

use crate::support::Within;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet_test::http::TestServer;

use crate::support::fetch;

const BODY: &str = "0123456789abcdefghij";

/// The document (20 bytes, an ETag and a Last-Modified), counting origin
/// requests and the `Range` headers the origin saw; and its layer.
fn app(runs: Arc<AtomicUsize>, ranges_seen: Arc<AtomicUsize>) -> (Router, HttpCacheLayer) {
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route(
            "/doc",
            get(move |headers: axum::http::HeaderMap| {
                let (runs, ranges_seen) = (runs.clone(), ranges_seen.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if headers.contains_key(header::RANGE) {
                        ranges_seen.fetch_add(1, Ordering::SeqCst);
                    }
                    (
                        [
                            (header::CACHE_CONTROL, "max-age=60"),
                            (header::ETAG, "\"v1\""),
                            (header::LAST_MODIFIED, "Tue, 01 Dec 2026 00:00:00 GMT"),
                            (header::CONTENT_TYPE, "text/plain"),
                        ],
                        BODY,
                    )
                }
            }),
        )
        .layer(layer.clone());
    (app, layer)
}

#[tokio::test]
async fn ranges_are_answered_from_the_stored_response() {
    let (runs, ranges_seen) = (Arc::default(), Arc::default());
    let (app, layer) = app(Arc::clone(&runs), Arc::clone(&ranges_seen));
    let server = TestServer::start(app).await;

    // A miss with a range: the origin is asked for the whole response
    // (its answer is for everyone), the client gets the whole 200.
    let first = fetch(&server, "/doc", &[("range", "bytes=0-4")]).await;
    assert_eq!((first.status, first.body.as_str()), (200, BODY));
    assert_eq!(ranges_seen.load(Ordering::SeqCst), 0);
    layer.settled().within().await;
    let stored = fetch(&server, "/doc", &[]).await;
    assert!(stored.is_hit(), "never stored: {}", stored.cache_status());
    let origin_runs = runs.load(Ordering::SeqCst);

    for (range, want, content_range) in [
        ("bytes=0-4", "01234", "bytes 0-4/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=-3", "hij", "bytes 17-19/20"),
        ("bytes=18-100", "ij", "bytes 18-19/20"),
    ] {
        let r = fetch(&server, "/doc", &[("range", range)]).await;
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.body, want, "{range}");
        assert_eq!(r.header("content-range"), Some(content_range));
        assert_eq!(
            r.header("content-length"),
            Some(want.len().to_string().as_str())
        );
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert!(
            r.header("cache-status")
                .is_some_and(|s| s.contains("; hit"))
        );
        assert!(r.header("age").is_some());
    }

    let r = fetch(&server, "/doc", &[("range", "bytes=20-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */20"));
    assert_eq!(r.body, "");

    // Several ranges, other units, malformed ranges: the whole response.
    for range in ["bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x-"] {
        let r = fetch(&server, "/doc", &[("range", range)]).await;
        assert_eq!((r.status, r.body.as_str()), (200, BODY), "{range}");
    }

    // If-Range: a strong match or the exact date applies the range; anything
    // else gets the whole response.
    let part = [("range", "bytes=0-1")];
    for (cond, status) in [
        ("\"v1\"", 206),
        ("Tue, 01 Dec 2026 00:00:00 GMT", 206),
        ("\"v0\"", 200),
        ("W/\"v1\"", 200),
        ("Mon, 30 Nov 2026 00:00:00 GMT", 200),
    ] {
        let r = fetch(&server, "/doc", &[part[0], ("if-range", cond)]).await;
        assert_eq!(r.status, status, "If-Range: {cond}");
    }

    // A matching If-None-Match wins over the range.
    let r = fetch(&server, "/doc", &[part[0], ("if-none-match", "\"v1\"")]).await;
    assert_eq!(r.status, 304);

    // HEAD ignores Range.
    let head = reqwest::Client::new()
        .head(server.url("/doc"))
        .header("range", "bytes=0-1")
        .send()
        .await
        .expect("head");
    assert_eq!(head.status().as_u16(), 200);

    assert_eq!(
        runs.load(Ordering::SeqCst),
        origin_runs,
        "every answer came from the cache"
    );
    assert_eq!(ranges_seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_partial_response_from_the_origin_is_passed_through_not_stored() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route(
            "/part",
            get(move || {
                let runs = counter.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    (
                        axum::http::StatusCode::PARTIAL_CONTENT,
                        [
                            (header::CACHE_CONTROL, "max-age=60"),
                            (header::CONTENT_RANGE, "bytes 0-1/20"),
                        ],
                        "01",
                    )
                }
            }),
        )
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    for _ in 0..3 {
        let r = reqwest::get(server.url("/part")).await.expect("get");
        assert_eq!(r.status().as_u16(), 206);
        assert_eq!(r.text().await.expect("body"), "01");
        layer.settled().within().await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3, "a 206 is never stored");
}
