//! Invalidation: by unsafe requests (their URI, and same-origin
//! `Location` / `Content-Location`), from code, by pattern, and by a
//! flush of the whole cache.

use crate::support::Within;
use std::time::Duration;

use covet::cache::Cache;
use covet::cache::http::HttpCache;

use crate::support::{App, cc_path};

#[tokio::test]
async fn unsafe_requests_invalidate_the_uri_and_same_origin_locations() {
    let app = App::with(Cache::memory(), |l| l.default_ttl(Duration::from_secs(60))).await;
    let target = cc_path("target", &["max-age=60"], &[]);
    app.get(&target).await;
    app.settled().within().await;
    assert!(app.get(&target).await.is_hit());
    let r = app.req("POST", &target, &[]).await;
    assert_eq!(r.body, "written");
    assert_eq!(r.cache_status(), "covet; fwd=method; fwd-status=200");
    assert!(!app.get(&target).await.is_hit(), "invalidated by the POST");
    app.settled().within().await;
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
    app.settled().within().await;
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
    app.settled().within().await;
    assert_eq!(app.req("POST", "/failing-write", &[]).await.status, 500);
    assert!(app.get(&path).await.is_hit());
}

#[tokio::test]
async fn invalidation_from_code_and_by_pattern() {
    let app = App::start().await;
    let path = cc_path("inv", &["max-age=60"], &[]);
    app.get(&path).await;
    app.settled().within().await;
    assert!(app.get(&path).await.is_hit());
    let removed = HttpCache::invalidate(&app.cache, &path)
        .await
        .expect("invalidate");
    assert_eq!(removed, 1);
    assert!(!app.get(&path).await.is_hit());
    app.settled().within().await;
    let absolute = app.server.url(&path);
    assert_eq!(
        HttpCache::invalidate(&app.cache, &absolute)
            .await
            .expect("invalidate"),
        1
    );
    assert!(!app.get(&path).await.is_hit());
    app.settled().within().await;
    // The same flush clears #[cached] values and HTTP responses.
    app.cache.clear().await.expect("clear");
    assert!(!app.get(&path).await.is_hit());
}
