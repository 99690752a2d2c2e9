//! RFC 9111 corners: an invalid `Age`, qualified `private="..."` /
//! `no-cache="..."`, fields named by `Connection`, and interim responses.

use crate::support::Within;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet_test::http::TestServer;

use crate::support::fetch;

/// A route answering `headers` and counting its runs.
fn route(
    router: Router,
    path: &str,
    headers: &'static [(&'static str, &'static str)],
    runs: &Arc<AtomicUsize>,
) -> Router {
    router.route(path, covet_test::http::fixed_route(headers, runs.clone()))
}

#[tokio::test]
async fn rfc_9111_corners() {
    let counters: Vec<Arc<AtomicUsize>> = (0..5).map(|_| Arc::default()).collect();
    let mut app = Router::new();
    app = route(
        app,
        "/age-ok",
        &[("cache-control", "max-age=60"), ("age", "10")],
        &counters[0],
    );
    app = route(
        app,
        "/age-list",
        &[("cache-control", "max-age=60"), ("age", "10, 20")],
        &counters[1],
    );
    app = route(
        app,
        "/private-field",
        &[
            ("cache-control", "max-age=60, private=\"x-user\""),
            ("x-user", "alice"),
            ("x-shared", "yes"),
        ],
        &counters[2],
    );
    app = route(
        app,
        "/no-cache-field",
        &[
            ("cache-control", "max-age=60, no-cache=\"x-debug\""),
            ("x-debug", "trace-1"),
            ("x-shared", "yes"),
        ],
        &counters[3],
    );
    app = route(
        app,
        "/connection",
        &[
            ("cache-control", "max-age=60"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("x-shared", "yes"),
        ],
        &counters[4],
    );
    let layer = HttpCacheLayer::new(Cache::memory());
    let server = TestServer::start(app.layer(layer.clone())).await;

    // A valid Age: stored, served fresh.
    fetch(&server, "/age-ok", &[]).await;
    layer.settled().within().await;
    assert!(fetch(&server, "/age-ok", &[]).await.is_hit());
    // An Age that is a list cannot say how old the response is: stale,
    // so every request goes back to the origin.
    for _ in 0..3 {
        assert!(!fetch(&server, "/age-list", &[]).await.is_hit());
        layer.settled().within().await;
    }
    assert_eq!(counters[1].load(Ordering::SeqCst), 3);

    // private="x-user": stored without X-User, the rest served to anyone.
    let first = fetch(&server, "/private-field", &[]).await;
    assert_eq!(
        first.header("x-user"),
        Some("alice"),
        "the requester gets it"
    );
    layer.settled().within().await;
    let hit = fetch(&server, "/private-field", &[]).await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-user"), None);
    assert_eq!(hit.header("x-shared"), Some("yes"));
    assert_eq!(counters[2].load(Ordering::SeqCst), 1);

    // no-cache="x-debug": served from the cache without revalidation, and
    // without that field.
    fetch(&server, "/no-cache-field", &[]).await;
    layer.settled().within().await;
    let hit = fetch(&server, "/no-cache-field", &[]).await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-debug"), None);
    assert_eq!(hit.header("x-shared"), Some("yes"));
    assert_eq!(counters[3].load(Ordering::SeqCst), 1);

    // Fields named by Connection are hop-by-hop: never stored or served.
    fetch(&server, "/connection", &[]).await;
    layer.settled().within().await;
    let hit = fetch(&server, "/connection", &[]).await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-hop"), None);
    assert_eq!(hit.header("x-shared"), Some("yes"));
}

/// An interim (1xx) status returned as a response is never stored. (Over
/// HTTP/1.1 a server sends 1xx only ahead of a final response, so this
/// runs the layer in process.)
#[tokio::test]
async fn interim_responses_are_never_stored() {
    use http_body_util::BodyExt;
    use tower::{ServiceBuilder, ServiceExt};

    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let layer = HttpCacheLayer::new(Cache::memory());
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(
            move |_req: http::Request<axum::body::Body>| {
                let runs = counter.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let mut r = http::Response::new(axum::body::Body::empty());
                    *r.status_mut() = http::StatusCode::from_u16(103).expect("103");
                    r.headers_mut().insert(
                        "cache-control",
                        http::HeaderValue::from_static("max-age=60"),
                    );
                    Ok::<_, Infallible>(r)
                }
            },
        ));
    for _ in 0..3 {
        let req = http::Request::get("http://example.com/hints")
            .body(axum::body::Body::empty())
            .expect("request");
        let r = svc.clone().oneshot(req).await.expect("infallible");
        assert_eq!(r.status().as_u16(), 103);
        r.into_body().collect().await.expect("body");
        layer.settled().within().await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
