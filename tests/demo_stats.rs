//! The demo's `/stats`: session statistics beside the cache's.

#![cfg(feature = "axum")]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo.rs"]
mod demo;

use covet_test::http::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_shows_sessions_beside_caches() {
    let server = TestServer::start(demo::app(covet::cache::Cache::memory())).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    for want in ["visit 0\n", "visit 1\n"] {
        let body = http
            .get(server.url("/visit"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, want);
    }
    let body = http
        .get(server.url("/stats"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(stats["sessions"]["created"], 1, "{stats}");
    assert_eq!(stats["sessions"]["loaded"], 1, "{stats}");
    assert_eq!(stats["sessions"]["saved"], 1, "{stats}");
    assert!(
        stats["hits"].is_u64() && stats["http_misses"].is_u64(),
        "{stats}"
    );
}
