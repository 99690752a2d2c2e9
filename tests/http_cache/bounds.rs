//! Per-layer bounds (`max_entries`, `max_bytes`) that count and evict only
//! the layer's own entries, and partitions that keep nested layers on one
//! cache apart.

use crate::support::Within;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet_test::http::TestServer;

/// `/page/{name}?size=N`: a body of N bytes (default 100), fresh for a
/// minute, counting origin requests.
fn pages(runs: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/page/{name}",
        get(
            move |Path(name): Path<String>, q: axum::extract::RawQuery| {
                let runs = runs.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let size =
                        q.0.and_then(|q| q.strip_prefix("size=").and_then(|n| n.parse().ok()))
                            .unwrap_or(100);
                    let mut body = name;
                    while body.len() < size {
                        body.push('.');
                    }
                    ([(header::CACHE_CONTROL, "max-age=60")], body)
                }
            },
        ),
    )
}

async fn status(server: &TestServer, path: &str) -> String {
    let resp = reqwest::get(server.url(path)).await.expect("request");
    let status = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    resp.bytes().await.expect("body");
    status
}

fn is_hit(status: &str) -> bool {
    status.contains("; hit")
}

#[tokio::test]
async fn max_entries_evicts_this_layers_least_recently_used_entries_only() {
    let cache = Cache::memory();
    // Another user of the same cache: never counted, never evicted.
    for i in 0..20 {
        cache
            .set(&format!("other:{i}"), &i, None)
            .await
            .expect("set");
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = HttpCacheLayer::new(cache.clone()).max_entries(2);
    let server = TestServer::start(pages(runs.clone()).layer(layer.clone())).await;

    for p in ["/page/a", "/page/b"] {
        assert!(status(&server, p).await.contains("stored"));
        layer.settled().within().await;
    }
    // `a` is used again, so `b` is the least recently used.
    assert!(is_hit(&status(&server, "/page/a").await));
    status(&server, "/page/c").await;
    layer.settled().within().await;

    assert!(is_hit(&status(&server, "/page/a").await));
    assert!(is_hit(&status(&server, "/page/c").await));
    let b = status(&server, "/page/b").await;
    assert!(b.contains("fwd=uri-miss"), "{b}");
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    for i in 0..20 {
        assert_eq!(
            cache.get::<i32>(&format!("other:{i}")).await.expect("get"),
            Some(i)
        );
    }
}

#[tokio::test]
async fn max_bytes_bounds_the_layer_and_refuses_what_cannot_fit() {
    let runs = Arc::new(AtomicUsize::new(0));
    // Room for two of the 1 000-byte pages with their headers, not three.
    let layer = HttpCacheLayer::new(Cache::memory()).max_bytes(2_600);
    let server = TestServer::start(pages(runs.clone()).layer(layer.clone())).await;
    for p in [
        "/page/a?size=1000",
        "/page/b?size=1000",
        "/page/c?size=1000",
    ] {
        status(&server, p).await;
        layer.settled().within().await;
    }
    let a = status(&server, "/page/a?size=1000").await;
    assert!(a.contains("fwd=uri-miss"), "{a}");
    layer.settled().within().await;
    // Storing `a` again pushed out `b`, the least recently used.
    assert!(is_hit(&status(&server, "/page/c?size=1000").await));
    assert!(is_hit(&status(&server, "/page/a?size=1000").await));

    // A body larger than the whole budget is never stored.
    let big = status(&server, "/page/big?size=3000").await;
    assert!(big.contains("detail=too-large"), "{big}");
    layer.settled().within().await;
    assert!(!is_hit(&status(&server, "/page/big?size=3000").await));
    // ...and evicted nothing.
    assert!(is_hit(&status(&server, "/page/c?size=1000").await));
}

/// An app with an outer layer (`site`) and an inner one on `/api`
/// (`api`), both on one cache and both storing for a minute by default.
async fn nested(
    partitions: bool,
) -> (TestServer, HttpCacheLayer, HttpCacheLayer, Arc<AtomicUsize>) {
    let cache = Cache::memory();
    let ttl = Duration::from_secs(60);
    let mut outer = HttpCacheLayer::new(cache.clone())
        .cache_name("site")
        .default_ttl(ttl);
    let mut inner = HttpCacheLayer::new(cache)
        .cache_name("api")
        .default_ttl(ttl);
    if partitions {
        outer = outer.partition("site");
        inner = inner.partition("api");
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let api = Router::new()
        .route(
            "/items",
            get(move || {
                let runs = counted.clone();
                async move { format!("items #{}", runs.fetch_add(1, Ordering::SeqCst) + 1) }
            })
            .post(|| async { "created" }),
        )
        .layer(inner.clone());
    let app = Router::new().nest("/api", api).layer(outer.clone());
    (TestServer::start(app).await, outer, inner, runs)
}

#[tokio::test]
async fn nested_layers_share_entries_unless_partitioned() {
    // Without partitions the outer layer answers from what the inner one
    // stored (one key space).
    let (server, outer, inner, _) = nested(false).await;
    let first = status(&server, "/api/items").await;
    assert!(first.starts_with("api; fwd=uri-miss"), "{first}");
    inner.settled().within().await;
    outer.settled().within().await;
    let second = status(&server, "/api/items").await;
    assert!(second.starts_with("site; hit"), "{second}");

    // With partitions each answers from its own entries: the outer one
    // misses and passes the inner one's hit through, storing nothing.
    let (server, outer, inner, runs) = nested(true).await;
    status(&server, "/api/items").await;
    inner.settled().within().await;
    outer.settled().within().await;
    let second = status(&server, "/api/items").await;
    assert!(second.starts_with("api; hit"), "{second}");
    assert!(!second.contains("site"), "{second}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // A POST through both invalidates the URI in both partitions.
    let post = reqwest::Client::new()
        .post(server.url("/api/items"))
        .send()
        .await
        .expect("post");
    assert_eq!(post.text().await.expect("body"), "created");
    let after = status(&server, "/api/items").await;
    assert!(after.starts_with("api; fwd=uri-miss"), "{after}");
    inner.settled().within().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // Invalidating from code reaches every partition.
    assert!(outer.invalidate("/api/items").await.expect("invalidate") >= 1);
    let again = status(&server, "/api/items").await;
    assert!(again.starts_with("api; fwd=uri-miss"), "{again}");
}
