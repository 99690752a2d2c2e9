//! Targeted cache control (RFC 9213): `CDN-Cache-Control` replaces
//! `Cache-Control` (and `Expires`) for the layer's decisions when it is a
//! valid dictionary, and is ignored entirely when it is not.

use crate::support::Within;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet_test::http::TestServer;

use crate::support::fetch;

type Headers = &'static [(&'static str, &'static str)];

/// One route per case, each answering its headers and counting its runs.
fn app(
    cases: &[(&'static str, Headers)],
    layer: HttpCacheLayer,
) -> (Router, Vec<Arc<AtomicUsize>>) {
    let mut router = Router::new();
    let mut counters = Vec::new();
    for (path, headers) in cases {
        let runs = Arc::new(AtomicUsize::new(0));
        counters.push(runs.clone());
        router = router.route(path, covet_test::http::fixed_route(headers, runs));
    }
    (router.layer(layer), counters)
}

/// Fetches each case once, waits for `layer` to store it, then checks
/// which become hits.
async fn expect_hits(
    server: &TestServer,
    layer: &HttpCacheLayer,
    cases: &[(&'static str, Headers)],
    wants: &[bool],
) {
    for ((path, sent), want_hit) in cases.iter().zip(wants) {
        fetch(server, path, &[]).await;
        layer.settled().within().await;
        let again = fetch(server, path, &[]).await;
        let hit = again.is_hit();
        assert_eq!(hit, *want_hit, "{path}");
        if hit && sent.iter().any(|(k, _)| *k == "cdn-cache-control") {
            assert!(
                again.headers.contains_key("cdn-cache-control"),
                "{path}: forwarded as it is"
            );
        }
    }
}

const FUTURE: &str = "Thu, 01 Jan 2099 00:00:00 GMT";

const CASES: &[(&str, Headers)] = &[
    (
        "/cdn-stores",
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
    ),
    (
        "/cdn-forbids",
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ],
    ),
    (
        "/cdn-aged",
        &[("cdn-cache-control", "max-age=60"), ("age", "100")],
    ),
    (
        "/cdn-wrong-type",
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=\"60\""),
        ],
    ),
    (
        "/cdn-not-a-dict",
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=60,"),
        ],
    ),
    (
        "/cdn-no-expires",
        &[("cdn-cache-control", "public"), ("expires", FUTURE)],
    ),
    (
        "/cdn-private",
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "private"),
        ],
    ),
];

#[tokio::test]
async fn a_targeted_field_replaces_cache_control() {
    let layer = HttpCacheLayer::new(Cache::memory()).targeted("CDN-Cache-Control");
    let (router, runs) = app(CASES, layer.clone());
    let server = TestServer::start(router).await;
    expect_hits(
        &server,
        &layer,
        CASES,
        &[true, false, false, false, true, false, false],
    )
    .await;
    // The stale one went back to the origin each time.
    assert!(runs[2].load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn without_targeted_the_field_means_nothing() {
    let layer = HttpCacheLayer::new(Cache::memory());
    let (router, _) = app(CASES, layer.clone());
    let server = TestServer::start(router).await;
    expect_hits(
        &server,
        &layer,
        CASES,
        &[false, true, false, false, true, true, true],
    )
    .await;
}

#[tokio::test]
async fn the_most_specific_field_comes_first() {
    const TWO: &[(&str, Headers)] = &[
        (
            "/both",
            &[
                ("covet-cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
                ("cache-control", "max-age=60"),
            ],
        ),
        (
            "/fallback",
            &[
                ("cdn-cache-control", "max-age=60"),
                ("cache-control", "no-store"),
            ],
        ),
    ];
    let layer =
        HttpCacheLayer::new(Cache::memory()).targeted(["Covet-Cache-Control", "CDN-Cache-Control"]);
    let (router, _) = app(TWO, layer.clone());
    let server = TestServer::start(router).await;
    expect_hits(&server, &layer, TWO, &[false, true]).await;
}
