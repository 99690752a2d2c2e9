//! Sessions end to end over real HTTP: an axum app on a loopback listener,
//! a client with a cookie jar, and every session store.
//!
//! Each store gets the same scenarios (one `#[tokio::test]` each); stores
//! that need a server use their own namespace or table.

#![cfg(feature = "axum")]

mod common;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Router, response::IntoResponse};
use common::stores::{self, Store};
use covet::session::{Error, Flashes, Level, Session, SessionConfig, SessionLayer, SessionState};

/// The cart of the typed-session example.
#[covet::session_state(key = "cart")]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

async fn add_to_cart(mut cart: SessionState<Cart>, Path(item): Path<String>) -> String {
    cart.items.push(item);
    cart.items.join(",")
}

async fn show_cart(cart: SessionState<Cart>) -> String {
    cart.items.join(",")
}
use covet_test::http::{TestServer, cookie_value};

async fn visit(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("visits")?.unwrap_or(0);
    session.insert("visits", n + 1)?;
    if n > 0 {
        session.flash("Welcome back!", Level::Success);
    }
    Ok(format!("visit {n}"))
}

async fn messages(flashes: Flashes) -> String {
    flashes
        .iter()
        .map(|f| format!("{}:{}", f.level, f.message))
        .collect::<Vec<_>>()
        .join("|")
}

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> Result<String, Error> {
    session.insert(&k, v)?;
    Ok("ok".into())
}

async fn read(session: Session, Path(k): Path<String>) -> Result<String, Error> {
    Ok(session.get::<String>(&k)?.unwrap_or_else(|| "-".into()))
}

async fn logout(session: Session) -> &'static str {
    session.clear();
    "bye"
}

async fn boom(session: Session) -> Result<impl IntoResponse, Error> {
    session.insert("boom", "yes")?;
    Ok((StatusCode::INTERNAL_SERVER_ERROR, "failed"))
}

fn app(store: Store) -> Router {
    let config = SessionConfig::default().with_secure(false);
    Router::new()
        .route("/", get(visit))
        .route("/messages", get(messages))
        .route("/set/{k}/{v}", post(set))
        .route("/get/{k}", get(read))
        .route("/logout", post(logout))
        .route("/boom", post(boom))
        .route("/none", get(|| async { "no session here" }))
        .route("/cart", get(show_cart))
        .route("/cart/{item}", post(add_to_cart))
        .layer(SessionLayer::from_shared(store).with_config(config))
}

fn session_cookie(set_cookies: &[String]) -> Option<String> {
    set_cookies
        .iter()
        .find_map(|c| cookie_value(c, "id"))
        .map(str::to_owned)
}

/// The counter survives across requests through the cookie; the cookie
/// carries the default attributes and is sent when the session is new.
async fn counter_and_cookie_attributes(store: Store) {
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    let first = browser.get("/").await;
    assert_eq!((first.status, first.body.as_str()), (200, "visit 0"));
    assert_eq!(first.set_cookies.len(), 1, "{:?}", first.set_cookies);
    let c = &first.set_cookies[0];
    assert!(c.starts_with("id="), "{c}");
    assert!(c.contains("HttpOnly"), "{c}");
    assert!(c.contains("SameSite=Lax"), "{c}");
    assert!(c.contains("Path=/"), "{c}");
    assert!(!c.contains("Domain"), "{c}");
    assert!(c.contains("Max-Age=1209600"), "two weeks: {c}");
    for n in 1..4 {
        assert_eq!(browser.get("/").await.body, format!("visit {n}"));
    }
    // Another browser has its own session.
    assert_eq!(server.browser().get("/").await.body, "visit 0");
}

/// Routes that never touch the session send no cookie; a request with a
/// session cookie that only reads sends none either (server-side stores).
async fn no_cookie_unless_needed(store: Store) {
    let client_side = store.is_client_side();
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    let none = browser.get("/none").await;
    assert_eq!(none.status, 200);
    assert!(none.set_cookies.is_empty(), "{:?}", none.set_cookies);
    // Reading an empty session stores nothing and sends nothing.
    let empty = browser.get("/get/x").await;
    assert_eq!(empty.body, "-");
    assert!(empty.set_cookies.is_empty(), "{:?}", empty.set_cookies);
    browser.post("/set/x/1").await;
    let read = browser.get("/get/x").await;
    assert_eq!(read.body, "1");
    assert!(read.set_cookies.is_empty(), "{:?}", read.set_cookies);
    let changed = browser.post("/set/x/2").await;
    assert_eq!(changed.status, 200);
    if client_side {
        // The data lives in the cookie: a change is a new cookie.
        assert_eq!(changed.set_cookies.len(), 1, "{:?}", changed.set_cookies);
    }
    assert_eq!(browser.get("/get/x").await.body, "2");
}

/// A flash is shown exactly once, on the next request that reads it.
async fn flashes_are_shown_once(store: Store) {
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    browser.get("/").await;
    assert_eq!(browser.get("/messages").await.body, "");
    browser.get("/").await;
    browser.get("/").await;
    assert_eq!(
        browser.get("/messages").await.body,
        "success:Welcome back!|success:Welcome back!"
    );
    assert_eq!(browser.get("/messages").await.body, "");
    assert_eq!(browser.get("/").await.body, "visit 3");
}

/// Clearing the session deletes it and sends a removal cookie with the same
/// attributes; the old cookie replayed afterwards finds nothing (server-side
/// stores).
async fn logout_removes_the_session(store: Store) {
    let client_side = store.is_client_side();
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    let first = browser.get("/").await;
    let old = session_cookie(&first.set_cookies).expect("a session cookie");
    browser.get("/").await;
    let bye = browser.post("/logout").await;
    assert_eq!(bye.body, "bye");
    assert_eq!(bye.set_cookies.len(), 1, "{:?}", bye.set_cookies);
    let removal = &bye.set_cookies[0];
    assert!(removal.starts_with("id=;"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(
        removal.contains("HttpOnly") && removal.contains("Path=/"),
        "{removal}"
    );
    assert_eq!(browser.get("/").await.body, "visit 0", "the jar dropped it");
    if !client_side {
        let replay = browser
            .get_with_cookie("/", Some(&format!("id={old}")))
            .await;
        assert_eq!(replay.body, "visit 0", "a deleted session stays deleted");
    }
}

/// Nothing is saved when the handler answers 5xx.
async fn server_errors_are_not_saved(store: Store) {
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    browser.post("/set/k/v").await;
    let failed = browser.post("/boom").await;
    assert_eq!(failed.status, 500);
    assert!(failed.set_cookies.is_empty(), "{:?}", failed.set_cookies);
    assert_eq!(browser.get("/get/boom").await.body, "-");
    assert_eq!(browser.get("/get/k").await.body, "v");
}

/// Garbage, truncated or unknown ids start a fresh session; they are never
/// an error.
async fn bad_cookies_start_fresh(store: Store) {
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    let first = browser.get("/").await;
    let id = session_cookie(&first.set_cookies).expect("a session cookie");
    let truncated = &id[..id.len() / 2];
    let mut flipped = id.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ASCII");
    for bad in [
        "id=",
        "id=garbage",
        "id=%%%%",
        &format!("id={truncated}"),
        &format!("id={flipped}"),
        &format!("id={id}{id}"),
        &format!("id=\"{id}"),
        "id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = browser.get_with_cookie("/", Some(bad)).await;
        assert_eq!((r.status, r.body.as_str()), (200, "visit 0"), "{bad}");
    }
    let ok = browser
        .get_with_cookie("/", Some(&format!("id={id}")))
        .await;
    assert_eq!(ok.body, "visit 1");
}

/// Two concurrent requests of one session changing different keys both
/// keep their change (server-side stores; a cookie store keeps the cookie
/// the browser received last).
async fn concurrent_requests_merge(store: Store) {
    if store.is_client_side() {
        return;
    }
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    browser.post("/set/start/1").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let b = browser.clone();
        tasks.push(tokio::spawn(async move {
            b.post(&format!("/set/k{i}/v{i}")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("request task"), 200);
    }
    for i in 0..8 {
        assert_eq!(
            browser.get(&format!("/get/k{i}")).await.body,
            format!("v{i}")
        );
    }
    assert_eq!(browser.get("/get/start").await.body, "1");
}

/// Typed session data through `SessionState`: saved after each request,
/// never written when only read, kept apart from the other keys.
async fn typed_state_round_trip(store: Store) {
    let server = TestServer::start(app(store)).await;
    let browser = server.browser();
    let empty = browser.get("/cart").await;
    assert_eq!(empty.body, "");
    assert!(empty.set_cookies.is_empty(), "{:?}", empty.set_cookies);
    assert_eq!(browser.post("/cart/book").await.body, "book");
    assert_eq!(browser.post("/cart/pen").await.body, "book,pen");
    assert_eq!(browser.get("/").await.body, "visit 0");
    assert_eq!(browser.get("/cart").await.body, "book,pen");
    assert_eq!(
        server.browser().get("/cart").await.body,
        "",
        "another visitor"
    );
    browser.post("/logout").await;
    assert_eq!(browser.get("/cart").await.body, "");
}

macro_rules! session_http_suite {
    ($name:ident, $store:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn store() -> Option<Store> {
                $store
            }

            session_http_suite!(@cases
                counter_and_cookie_attributes,
                no_cookie_unless_needed,
                flashes_are_shown_once,
                logout_removes_the_session,
                server_errors_are_not_saved,
                bad_cookies_start_fresh,
                concurrent_requests_merge,
                typed_state_round_trip,
            );
        }
    };
    (@cases $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = store().await else { return };
                super::$case(store).await;
            }
        )*
    };
}

session_http_suite!(memory, stores::memory().await);
session_http_suite!(cookie_encrypted, stores::cookie_encrypted().await);
session_http_suite!(cookie_signed, stores::cookie_signed().await);
session_http_suite!(cache_memory, stores::cache_memory().await);
#[cfg(feature = "redis")]
session_http_suite!(cache_redis, stores::cache_redis().await);
#[cfg(feature = "redis")]
session_http_suite!(cache_redis_cluster, stores::cache_redis_cluster().await);
#[cfg(feature = "redis")]
session_http_suite!(cache_tiered, stores::cache_tiered().await);
#[cfg(feature = "redis")]
session_http_suite!(redis_single, stores::redis_single().await);
#[cfg(feature = "redis")]
session_http_suite!(redis_cluster, stores::redis_cluster().await);
#[cfg(feature = "sql-postgres")]
session_http_suite!(sql_postgres, stores::sql_postgres().await);
#[cfg(feature = "sql-mysql")]
session_http_suite!(sql_mysql, stores::sql_mysql().await);
#[cfg(feature = "sql-sqlite")]
session_http_suite!(sql_sqlite, stores::sql_sqlite().await);
