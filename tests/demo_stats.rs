//! The demo's `/stats.json`: session statistics beside the cache's and
//! the `#[cached]` functions'.

#![cfg(feature = "axum")]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo/app.rs"]
mod demo;

use covet_test::http::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_show_sessions_beside_caches() {
    let server = TestServer::start(demo::app(demo::Setup::in_memory())).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let get = |path: &str| {
        let request = http.get(server.url(path));
        let path = path.to_owned();
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.expect("body")
        }
    };
    // Two catalogue views: misses, then hits.
    get("/catalogue").await;
    let second = get("/catalogue").await;
    assert!(second.contains("HIT"), "{second}");
    let body = get("/stats.json").await;
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let product = stats["fns"]
        .as_array()
        .and_then(|fns| fns.iter().find(|f| f["name"] == "product"))
        .unwrap_or_else(|| panic!("no product fn: {stats}"));
    assert_eq!(product["misses"], 6, "{stats}");
    assert_eq!(product["hits"], 6, "{stats}");
    assert!(stats["sessions"]["loaded"].is_u64(), "{stats}");
    assert!(
        stats["hits"].is_u64() && stats["http_misses"].is_u64(),
        "{stats}"
    );
    let page = get("/stats").await;
    assert!(page.contains("product"), "{page}");
    assert!(page.contains("http-equiv=\"refresh\""));
}
