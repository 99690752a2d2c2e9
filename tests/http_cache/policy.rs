//! What the application decides: per-route opt-out and opt-in,
//! `default_ttl`, the key prefix and extension, sharing through Redis, and
//! plain hyper services without axum.

use crate::support::Within;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;
use covet::cache::Cache;
use covet::cache::http::HttpCache;

use crate::support::{App, cc_path};

#[tokio::test]
async fn per_route_opt_out_opt_in_and_default_ttl() {
    let app = App::start().await;
    app.get("/bypass").await;
    app.settled().within().await;
    assert!(!app.get("/bypass").await.is_hit());
    // A route layer with a default TTL caches a response without headers.
    let first = app.get("/report").await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    app.settled().within().await;
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
    opt_in.settled().within().await;
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
    app.settled().within().await;
    let b = app.get_with(&path, &[("x-tenant", "b")]).await;
    assert_ne!(a.body, b.body);
    app.settled().within().await;
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
    app_a.settled().within().await;
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
    // Clones share what is being stored: this one waits on the server's.
    let stores = svc.clone();
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
    stores.settled().within().await;
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
