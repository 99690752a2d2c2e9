//! Responses to `HEAD`: stored while no `GET` is, answering later `HEAD`s
//! only, and a `HEAD` forwarded for a stale stored `GET` updating it (RFC
//! 9111 §4.3.5) or, when the two disagree, dropping it.

use crate::support::Within;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, Method, header};
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet_test::http::TestServer;
use parking_lot::Mutex;

const BODY: &str = "hello, world";

/// What the origin answers with, and what it saw.
#[derive(Default)]
struct Doc {
    cache_control: &'static str,
    etag: &'static str,
    version: u32,
    /// The method and `If-None-Match` of every request that reached it.
    seen: Vec<(Method, Option<String>)>,
}

type Shared = Arc<Mutex<Doc>>;

fn app(doc: Shared, layer: HttpCacheLayer) -> Router {
    Router::new()
        .route(
            "/doc",
            get(move |method: Method, headers: HeaderMap| {
                let doc = doc.clone();
                async move {
                    let mut d = doc.lock();
                    let inm = headers
                        .get(header::IF_NONE_MATCH)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    d.seen.push((method, inm));
                    (
                        [
                            (header::CACHE_CONTROL, d.cache_control.to_owned()),
                            (header::ETAG, d.etag.to_owned()),
                            (
                                header::HeaderName::from_static("x-version"),
                                d.version.to_string(),
                            ),
                        ],
                        BODY,
                    )
                }
            })
            .post(|| async { "posted" }),
        )
        .layer(layer)
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(server: &TestServer, method: Method, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new().request(method, server.url("/doc"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.expect("request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

async fn start(cache_control: &'static str) -> (TestServer, Shared, HttpCacheLayer) {
    let doc = Arc::new(Mutex::new(Doc {
        cache_control,
        etag: "\"v1\"",
        version: 1,
        seen: Vec::new(),
    }));
    let layer = HttpCacheLayer::new(Cache::memory());
    let server = TestServer::start(app(doc.clone(), layer.clone())).await;
    (server, doc, layer)
}

#[tokio::test]
async fn a_head_response_is_stored_while_no_get_is_and_answers_only_heads() {
    let (server, doc, layer) = start("max-age=60").await;
    let first = send(&server, Method::HEAD, &[]).await;
    assert_eq!(
        first.cache_status(),
        "covet; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    layer.settled().within().await;

    let second = send(&server, Method::HEAD, &[]).await;
    assert!(
        second.cache_status().starts_with("covet; hit"),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.header("etag"), "\"v1\"");
    assert_eq!(second.header("content-length"), BODY.len().to_string());
    assert_eq!(second.body, "");
    assert_eq!(doc.lock().seen.len(), 1);

    // A GET is never answered from a stored HEAD.
    let get = send(&server, Method::GET, &[]).await;
    assert!(
        get.cache_status().contains("fwd=uri-miss"),
        "{}",
        get.cache_status()
    );
    assert_eq!(get.body, BODY);
    layer.settled().within().await;
    assert_eq!(doc.lock().seen.len(), 2);

    // Once a GET is stored, HEADs are answered from it.
    doc.lock().version = 2;
    let head = send(&server, Method::HEAD, &[]).await;
    assert!(head.cache_status().starts_with("covet; hit"));
    assert_eq!(head.header("x-version"), "1");
    assert_eq!(doc.lock().seen.len(), 2);
}

#[tokio::test]
async fn a_head_miss_never_forwards_the_clients_conditionals() {
    let (server, doc, layer) = start("max-age=60").await;
    let head = send(&server, Method::HEAD, &[("if-none-match", "\"v1\"")]).await;
    // The cache evaluates the conditional on the full response it stores.
    assert_eq!(head.status, 304);
    assert!(head.cache_status().contains("stored"));
    assert_eq!(doc.lock().seen, vec![(Method::HEAD, None)]);
    layer.settled().within().await;
    // The stored response is the 200, not the client's 304.
    let again = send(&server, Method::HEAD, &[]).await;
    assert_eq!(again.status, 200);
    assert!(again.cache_status().starts_with("covet; hit"));
}

#[tokio::test]
async fn a_head_for_a_stale_get_freshens_it_when_validators_agree() {
    // Stale at once, with a validator: stored for revalidation.
    let (server, doc, layer) = start("max-age=0").await;
    let get = send(&server, Method::GET, &[]).await;
    assert!(
        get.cache_status().contains("stored"),
        "{}",
        get.cache_status()
    );
    layer.settled().within().await;

    {
        let mut d = doc.lock();
        d.cache_control = "max-age=60";
        d.version = 2;
    }
    let head = send(&server, Method::HEAD, &[]).await;
    assert_eq!(
        head.cache_status(),
        "covet; fwd=stale; fwd-status=200; stored"
    );
    assert_eq!(head.header("x-version"), "2");
    // Forwarded as a plain HEAD: the cache does not revalidate with it.
    assert_eq!(doc.lock().seen.last(), Some(&(Method::HEAD, None)));

    // The stored GET took the HEAD's fields and freshness: a hit with the
    // body it already had.
    let hit = send(&server, Method::GET, &[]).await;
    assert!(
        hit.cache_status().starts_with("covet; hit"),
        "{}",
        hit.cache_status()
    );
    assert_eq!(hit.body, BODY);
    assert_eq!(hit.header("x-version"), "2");
    assert_eq!(hit.header("cache-control"), "max-age=60");
    assert_eq!(doc.lock().seen.len(), 2);
}

#[tokio::test]
async fn a_head_that_disagrees_with_a_stale_get_drops_it() {
    let (server, doc, layer) = start("max-age=0").await;
    send(&server, Method::GET, &[]).await;
    layer.settled().within().await;

    // The document changed: a new entity tag.
    {
        let mut d = doc.lock();
        d.cache_control = "max-age=60";
        d.etag = "\"v2\"";
    }
    let head = send(&server, Method::HEAD, &[]).await;
    assert_eq!(
        head.cache_status(),
        "covet; fwd=stale; fwd-status=200; detail=validators"
    );
    // The old body is gone: the next GET goes to the origin, without the
    // stale response's validator.
    let get = send(&server, Method::GET, &[]).await;
    assert!(
        get.cache_status().contains("fwd=uri-miss"),
        "{}",
        get.cache_status()
    );
    assert_eq!(get.header("etag"), "\"v2\"");
    assert_eq!(doc.lock().seen.last(), Some(&(Method::GET, None)));
}

#[tokio::test]
async fn unsafe_requests_invalidate_stored_head_responses() {
    let (server, doc, layer) = start("max-age=60").await;
    send(&server, Method::HEAD, &[]).await;
    layer.settled().within().await;
    assert!(
        send(&server, Method::HEAD, &[])
            .await
            .cache_status()
            .starts_with("covet; hit")
    );

    let post = send(&server, Method::POST, &[]).await;
    assert_eq!(post.body, "posted");
    let head = send(&server, Method::HEAD, &[]).await;
    assert!(
        head.cache_status().contains("fwd=uri-miss"),
        "{}",
        head.cache_status()
    );
    layer.settled().within().await;

    // And from code.
    assert_eq!(layer.invalidate("/doc").await.expect("invalidate"), 1);
    let head = send(&server, Method::HEAD, &[]).await;
    assert!(head.cache_status().contains("fwd=uri-miss"));
    assert_eq!(doc.lock().seen.len(), 3);
}
