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
    let get = |path: &str| {
        let request = http.get(server.url(path));
        async move {
            let response = request.send().await.expect("request");
            response.text().await.expect("body")
        }
    };
    for want in ["visit 0\n", "visit 1\n"] {
        assert_eq!(get("/visit").await, want);
    }
    let body = get("/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(stats["sessions"]["created"], 1, "{stats}");
    assert_eq!(stats["sessions"]["loaded"], 1, "{stats}");
    assert_eq!(stats["sessions"]["saved"], 1, "{stats}");
    assert!(
        stats["hits"].is_u64() && stats["http_misses"].is_u64(),
        "{stats}"
    );
}
