//! Security: nothing one user's request makes the origin say (a session
//! cookie, a cookie-dependent page) reaches another user.

use crate::support::Within;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet::session::{MemoryStore, Session, SessionConfig, SessionLayer};
use covet_test::http::TestServer;

use crate::support::fetch;

// ---------------------------------------------------------------------
// 304 merge: the account takeover of the issue, end to end with the real
// SessionLayer inside the cache.

async fn login(session: Session) -> Result<&'static str, covet::session::Error> {
    session.insert("user", "alice")?;
    Ok("logged in")
}

/// A public page that answers 304 to its ETag and, for a logged-in
/// visitor, records the visit in the session (so the session layer sends a
/// fresh cookie, on the 304 too).
async fn public_page(session: Session, headers: HeaderMap) -> Response {
    let user: Option<String> = session.get("user").ok().flatten();
    if user.is_some() {
        let _ = session.insert("last_visit", "now");
    }
    let cc = [
        (header::CACHE_CONTROL, "public, max-age=1"),
        (header::ETAG, "\"page-v1\""),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some("\"page-v1\"")
    {
        return (StatusCode::NOT_MODIFIED, cc).into_response();
    }
    (cc, "the public page").into_response()
}

async fn whoami(session: Session) -> String {
    let user: Option<String> = session.get("user").ok().flatten();
    user.unwrap_or_else(|| "anonymous".into())
}

#[tokio::test]
async fn a_session_cookie_from_a_304_never_reaches_another_user() {
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route("/login", post(login))
        .route("/page", get(public_page))
        .route("/whoami", get(whoami))
        .layer(
            SessionLayer::new(MemoryStore::new()).with_config(
                SessionConfig::default()
                    .with_secure(false)
                    // Her cookie is sent again on every visit.
                    .with_renewal_interval(Duration::ZERO),
            ),
        )
        .layer(layer.clone());
    let server = TestServer::start(app).await;

    // 1. An anonymous visit stores the page.
    let first = fetch(&server, "/page", &[]).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    assert!(first.set_cookies().is_empty());
    layer.settled().within().await;

    // 2. alice logs in and revisits once the page is stale: the cache
    // revalidates with her request and the origin answers 304 with her
    // refreshed session cookie.
    let alice = server.browser();
    assert_eq!(alice.post("/login").await.body, "logged in");
    assert_eq!(alice.get("/whoami").await.body, "alice");
    // Real time: the max-age=1 page goes stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let revisit = alice.get("/page").await;
    assert_eq!(revisit.status, 200);
    assert_eq!(revisit.body, "the public page");
    assert!(
        revisit.set_cookies.iter().any(|c| c.starts_with("id=")),
        "alice still gets her own cookie: {:?}",
        revisit.set_cookies
    );
    layer.settled().within().await;

    // 3. A stranger without cookies gets the page, and no cookie at all.
    // (The session layer also marks the page `Vary: Cookie`, so alice's
    // request never shares the anonymous entry; the 304 merge itself is
    // tested without a session layer below.)
    let stranger = fetch(&server, "/page", &[]).await;
    assert_eq!(stranger.body, "the public page");
    assert!(
        stranger.is_hit() || stranger.cache_status().contains("fwd-status=304"),
        "{}",
        stranger.cache_status()
    );
    assert_eq!(
        stranger.set_cookies(),
        Vec::<String>::new(),
        "alice's session cookie was handed to a stranger"
    );
}

/// A public page whose origin refreshes a visitor's cookie on every
/// response, 304s included, without saying `Vary: Cookie`.
async fn cookie_refreshing_page(headers: HeaderMap) -> Response {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut r = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some("\"p1\"")
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        "the public page".into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        "public, max-age=1".parse().expect("cc"),
    );
    h.insert(header::ETAG, "\"p1\"".parse().expect("etag"));
    if let Some(c) = cookie {
        h.insert(
            header::SET_COOKIE,
            format!("{c}; Path=/").parse().expect("cookie"),
        );
        // Representation metadata on a 304 must not change the stored body's.
        h.insert(header::CONTENT_TYPE, "text/html".parse().expect("type"));
    }
    r
}

#[tokio::test]
async fn a_set_cookie_on_a_304_goes_to_its_requester_and_is_never_stored() {
    let layer = HttpCacheLayer::new(Cache::memory());
    let app = Router::new()
        .route("/page", get(cookie_refreshing_page))
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    let first = fetch(&server, "/page", &[]).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    layer.settled().within().await;
    // Real time: the max-age=1 page goes stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let alice = fetch(&server, "/page", &[("cookie", "id=alice-session")]).await;
    assert_eq!(alice.body, "the public page");
    assert!(
        alice.cache_status().contains("fwd-status=304"),
        "{}",
        alice.cache_status()
    );
    assert_eq!(
        alice.set_cookies(),
        vec!["id=alice-session; Path=/".to_owned()]
    );
    layer.settled().within().await;
    let stranger = fetch(&server, "/page", &[]).await;
    assert!(stranger.is_hit(), "{}", stranger.cache_status());
    assert_eq!(
        stranger.set_cookies(),
        Vec::<String>::new(),
        "alice's cookie leaked"
    );
    assert_eq!(
        stranger.headers["content-type"],
        "text/plain; charset=utf-8"
    );
}

// ---------------------------------------------------------------------
// Private requests: a cookie-dependent page under `default_ttl`.

async fn greet(headers: HeaderMap) -> String {
    let user = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').find_map(|p| p.trim().strip_prefix("user=")))
        .unwrap_or("nobody");
    format!("hello user={user}")
}

#[tokio::test]
async fn a_cookie_dependent_page_is_never_served_to_a_client_without_cookies() {
    let layer = HttpCacheLayer::new(Cache::memory()).default_ttl(Duration::from_secs(60));
    let app = Router::new()
        .route("/greet", get(greet))
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    let alice = fetch(&server, "/greet", &[("cookie", "user=alice")]).await;
    assert_eq!(alice.body, "hello user=alice");
    assert!(
        alice.cache_status().contains("detail=cookie"),
        "{}",
        alice.cache_status()
    );
    layer.settled().within().await;
    let anonymous = fetch(&server, "/greet", &[]).await;
    assert_eq!(anonymous.body, "hello user=nobody");
    layer.settled().within().await;
    // The anonymous page was stored; alice, with her cookie, is not served it.
    assert!(fetch(&server, "/greet", &[]).await.is_hit());
    let alice_again = fetch(&server, "/greet", &[("cookie", "user=alice")]).await;
    assert_eq!(alice_again.body, "hello user=alice");
    assert!(!alice_again.is_hit());
}

// ---------------------------------------------------------------------
// `Vary: Cookie`: one variant per user only when the layer allows it.

async fn per_cookie(headers: HeaderMap) -> impl IntoResponse {
    let c = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    (
        [
            (header::CACHE_CONTROL, "max-age=60"),
            (header::VARY, "Cookie"),
        ],
        format!("for {c}"),
    )
}

#[tokio::test]
async fn vary_cookie_variants_are_stored_only_when_allowed() {
    let layer = HttpCacheLayer::new(Cache::memory()).ignore_cookies(["_ga"]);
    let app = Router::new()
        .route("/me", get(per_cookie))
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    fetch(&server, "/me", &[]).await;
    let alice = fetch(&server, "/me", &[("cookie", "id=alice")]).await;
    assert!(
        alice.cache_status().contains("detail=vary-credentials"),
        "{}",
        alice.cache_status()
    );
    layer.settled().within().await;
    assert_eq!(fetch(&server, "/me", &[]).await.body, "for none");
    assert!(
        fetch(&server, "/me", &[]).await.is_hit(),
        "the anonymous variant is stored"
    );
    // An ignored cookie neither makes a request private nor a new variant.
    let ga = fetch(&server, "/me", &[("cookie", "_ga=GA1.1")]).await;
    assert!(
        ga.is_hit() && ga.body == "for none",
        "{}",
        ga.cache_status()
    );
    assert!(
        !fetch(&server, "/me", &[("cookie", "id=alice")])
            .await
            .is_hit()
    );

    let layer = HttpCacheLayer::new(Cache::memory()).vary_by_credentials(true);
    let app = Router::new()
        .route("/me", get(per_cookie))
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    fetch(&server, "/me", &[("cookie", "id=alice")]).await;
    layer.settled().within().await;
    let again = fetch(&server, "/me", &[("cookie", "id=alice")]).await;
    assert!(again.is_hit() && again.body == "for id=alice");
    let bob = fetch(&server, "/me", &[("cookie", "id=bob")]).await;
    assert_eq!(bob.body, "for id=bob");
    assert!(!bob.is_hit());
    assert!(!fetch(&server, "/me", &[]).await.body.contains("alice"));
}
