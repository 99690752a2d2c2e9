//! The `metrics` example's app, scraped: after a few real requests, every
//! documented series is on `/metrics` with the values those requests
//! imply.

#![cfg(all(feature = "metrics", feature = "axum", feature = "redis"))]

#[path = "../examples/metrics.rs"]
mod example;

use std::sync::Arc;
use std::time::Duration;

use covet::cache::{Cache, RedisBackend};
use covet::session::{MemoryStore, RedisStore};
use covet_test::http::TestServer;
use covet_test::{RedisProcess, Server, require, unique_namespace};
use metrics_exporter_prometheus::PrometheusBuilder;

/// The value of the series whose line starts with `series` (name and
/// labels as rendered), if present.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_series_are_scraped_after_real_requests() {
    // One recorder per process: this file holds one test.
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("installing the recorder");
    let server =
        TestServer::start(example::app(handle.clone(), Arc::new(MemoryStore::new()))).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let get = |path: &str| {
        let (http, url) = (http.clone(), server.url(path));
        async move {
            let r = http.get(url).send().await.expect("request");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    assert_eq!(get("/visit").await.1, "visit 0\n");
    assert_eq!(get("/visit").await.1, "visit 1\n");
    assert_eq!(get("/product/7").await.1, "product #7\n");
    assert_eq!(get("/product/7").await.1, "product #7\n");
    assert_eq!(get("/page").await.0, 200);
    assert_eq!(get("/page").await.0, 200);
    let form = http.post(server.url("/form")).send().await.expect("post");
    assert_eq!(form.status().as_u16(), 403, "no CSRF token");

    // A remote backend's calls are timed.
    let url = require(Server::Redis).expect("Redis");
    let redis = Cache::builder()
        .backend(RedisBackend::connect(&url).await.expect("Redis"))
        .namespace(unique_namespace("covet-metrics"))
        .build()
        .expect("cache");
    // Expiring: nothing of this test stays on the shared server.
    redis
        .set("k", &1u32, Some(Duration::from_secs(60)))
        .await
        .expect("set");
    let _: Option<u32> = redis.get("k").await.expect("get");

    let (status, page) = get("/metrics").await;
    assert_eq!(status, 200);
    let series = |s: &str| value(&page, s).unwrap_or_else(|| panic!("no {s} in:\n{page}"));
    let product = "metrics_prometheus::example::product_name";
    assert_eq!(
        series(&format!(
            "covet_cache_fn_requests_total{{fn=\"{product}\",outcome=\"hit\"}}"
        )),
        1.0
    );
    assert_eq!(
        series(&format!(
            "covet_cache_fn_requests_total{{fn=\"{product}\",outcome=\"miss\"}}"
        )),
        1.0
    );
    assert!(series("covet_cache_requests_total{cache=\"covet\",outcome=\"hit\"}") >= 1.0);
    assert!(series("covet_cache_requests_total{cache=\"covet\",outcome=\"miss\"}") >= 1.0);
    assert_eq!(
        series("covet_http_cache_requests_total{status=\"hit\"}"),
        1.0
    );
    assert_eq!(
        series("covet_http_cache_requests_total{status=\"miss\"}"),
        1.0
    );
    assert_eq!(series("covet_sessions_total{event=\"created\"}"), 1.0);
    assert!(series("covet_sessions_total{event=\"loaded\"}") >= 1.0);
    assert_eq!(series("covet_sessions_total{event=\"csrf_rejected\"}"), 1.0);
    assert!(series("covet_sessions_active") >= 1.0);
    assert!(
        page.lines()
            .any(|l| l.starts_with("covet_cache_backend_duration_seconds")
                && l.contains("backend=\"redis\"")),
        "no backend durations in:\n{page}"
    );
    assert!(page.contains("covet_cache_evictions_total{cache=\"covet\"}"));
    // Label values are bounded: no key, session id or URL.
    assert!(!page.contains("product:7") && !page.contains("/visit"));

    // The same app with its sessions in Redis: the same series move.
    let store = RedisStore::builder()
        .key_prefix(format!("{}:", unique_namespace("covet-metrics-sessions")))
        .connect(&url)
        .await
        .expect("Redis");
    let on_redis = TestServer::start(example::app(handle, Arc::new(store))).await;
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    for want in ["visit 0\n", "visit 1\n"] {
        let r = jar.get(on_redis.url("/visit")).send().await.expect("visit");
        assert_eq!(r.text().await.expect("body"), want);
    }
    let page = get("/metrics").await.1;
    assert_eq!(
        value(&page, "covet_sessions_total{event=\"created\"}"),
        Some(2.0)
    );
    assert!(
        value(&page, "covet_sessions_active").is_some_and(|n| n >= 2.0),
        "{page}"
    );

    // A circuit breaker's state: open once its server is gone, closed once
    // a probe is answered again.
    let mut own = RedisProcess::start().expect("starting redis-server");
    let port = own.port();
    let backend = RedisBackend::builder()
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(250))
        .circuit_breaker(2, Duration::from_millis(300))
        .build(&own.url())
        .await
        .expect("connecting");
    let flaky = Cache::builder()
        .backend(backend)
        .namespace(unique_namespace("covet-breaker"))
        .build()
        .expect("cache");
    flaky.set("k", &1u32, None).await.expect("set");
    own.kill();
    let breaker = "covet_cache_circuit_open{backend=\"redis\"}";
    for _ in 0..5 {
        let _ = flaky.get::<u32>("k").await;
    }
    let page = get("/metrics").await.1;
    assert_eq!(value(&page, breaker), Some(1.0), "open:\n{page}");
    let _back = RedisProcess::start_on(port).expect("restarting redis-server");
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if flaky.get::<u32>("k").await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server never answered"
        );
    }
    let page = get("/metrics").await.1;
    assert_eq!(value(&page, breaker), Some(0.0), "closed:\n{page}");
}
