//! The hit path of `HttpCacheLayer` in process, without sockets: a
//! browser-like `GET` answered from a stored 1 KiB response, against the
//! same handler called without the layer, in the same run.
//!
//! ```sh
//! cargo bench --bench http_cache_hit
//! ```
//!
//! Contenders (each call builds the request, runs the service with
//! `oneshot` and reads the whole body):
//! * `bare`: the axum router without the layer (the handler runs);
//! * `hit`: the same router behind `HttpCacheLayer` on `Cache::memory()`,
//!   every call a hit (checked before timing);
//! * `range_hit`: the same request with `Range: bytes=100-611`, answered
//!   from the stored response with a `206` of 512 bytes;
//! * `bounded_hit`: `hit` behind a layer with `max_entries` and
//!   `max_bytes` (each hit also marks its entry as used).
//!
//! The request carries what a browser sends to a public page: `Host`,
//! `User-Agent`, `Accept`, `Accept-Encoding`, `Accept-Language`, and a
//! `Cookie` with only analytics cookies (ignored by the layer through
//! `ignore_cookies`), so the security checks of the hit path (authority,
//! forwarding headers, credentials) run on every call.
//!
//! `COVET_BENCH_PROFILE=hit:<calls>` runs only the hit path that many times
//! outside criterion, for `valgrind --tool=callgrind`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use criterion::Criterion;
use http::Request;
use http_body_util::BodyExt;
use tokio::runtime::{Builder, Runtime};
use tower::ServiceExt;

const RANGE: &str = "bytes=100-611";

async fn page() -> ([(&'static str, &'static str); 1], Bytes) {
    (
        [("cache-control", "public, max-age=3600")],
        Bytes::from(vec![b'x'; 1024]),
    )
}

fn request_with(range: Option<&str>) -> Request<Body> {
    let mut req = Request::get("/page");
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.header("host", "shop.example")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .header("accept-language", "en-GB,en;q=0.5")
        .header(
            "cookie",
            "_ga=GA1.1.2093847.1700000000; _gid=GA1.1.55.1700000001",
        )
        .body(Body::empty())
        .expect("request")
}

async fn call(app: &Router) -> (Option<String>, usize) {
    call_with(app, None).await
}

async fn call_with(app: &Router, range: Option<&str>) -> (Option<String>, usize) {
    let response = app
        .clone()
        .oneshot(request_with(range))
        .await
        .expect("infallible");
    let status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body.len())
}

fn layered(bounded: bool) -> Router {
    let mut layer = HttpCacheLayer::new(Cache::memory()).ignore_cookies(["_ga", "_gid"]);
    if bounded {
        layer = layer.max_entries(10_000).max_bytes(64 << 20);
    }
    Router::new().route("/page", get(page)).layer(layer)
}

fn main() {
    let rt: Runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare = Router::new().route("/page", get(page));
    let hit = layered(false);
    let bounded = layered(true);
    rt.block_on(async {
        for app in [&hit, &bounded] {
            call(app).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (status, len) = call(app).await;
            let status = status.unwrap_or_default();
            assert!(status.starts_with("covet; hit"), "not a hit: {status}");
            assert_eq!(len, 1024);
        }
        assert_eq!(call(&bare).await.1, 1024);
        assert_eq!(call_with(&hit, Some(RANGE)).await.1, 512);
    });
    if let Ok(spec) = std::env::var("COVET_BENCH_PROFILE") {
        let calls: u64 = spec
            .strip_prefix("hit:")
            .and_then(|n| n.parse().ok())
            .expect("COVET_BENCH_PROFILE=hit:<calls>");
        rt.block_on(async {
            for _ in 0..calls {
                call(&hit).await;
            }
        });
        return;
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(50)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let mut group = c.benchmark_group("http_cache_hit");
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    group.bench_function("hit", |b| b.to_async(&rt).iter(|| call(&hit)));
    group.bench_function("range_hit", |b| {
        b.to_async(&rt).iter(|| call_with(&hit, Some(RANGE)))
    });
    group.bench_function("bounded_hit", |b| b.to_async(&rt).iter(|| call(&bounded)));
    group.finish();
    c.final_summary();
}
