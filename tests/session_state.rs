//! `SessionState<T>` over real HTTP: an axum app on a loopback listener and a
//! client with a cookie jar.

#![cfg(feature = "axum")]

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use covet::session::{Error, MemoryStore, Session, SessionConfig, SessionLayer, SessionState};
use covet_test::http::{Reply, TestServer, cookie_value};

#[covet::session_state(key = "cart")]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

#[covet::session_state]
#[derive(Default)]
struct Prefs {
    dark: bool,
}

async fn add(mut cart: SessionState<Cart>) -> String {
    cart.items.push("apple".to_owned());
    cart.items.len().to_string()
}

async fn show(cart: SessionState<Cart>) -> String {
    cart.items.len().to_string()
}

async fn both(mut cart: SessionState<Cart>, mut prefs: SessionState<Prefs>) -> String {
    cart.items.push("pear".to_owned());
    prefs.dark = !prefs.dark;
    format!("{} {}", cart.items.len(), prefs.dark)
}

// Stores a value that is not a `Cart` under the cart's key.
async fn corrupt(session: Session) -> Result<&'static str, Error> {
    session.insert("cart", serde_json::json!({ "products": 3 }))?;
    Ok("ok")
}

async fn raw(session: Session, Path(key): Path<String>) -> Result<String, Error> {
    Ok(session
        .get_value(&key)?
        .map_or_else(|| "-".to_owned(), |v| v.to_string()))
}

async fn server() -> TestServer {
    let app = Router::new()
        .route("/cart", post(add).get(show))
        .route("/both", post(both))
        .route("/corrupt", post(corrupt))
        .route("/raw/{key}", get(raw))
        .layer(
            SessionLayer::new(MemoryStore::new())
                .with_config(SessionConfig::default().with_secure(false)),
        );
    TestServer::start(app).await
}

fn session_id(reply: &Reply) -> Option<String> {
    reply
        .set_cookies
        .iter()
        .find_map(|c| cookie_value(c, "id"))
        .map(str::to_owned)
}

#[tokio::test]
async fn changes_are_saved_across_requests() {
    let server = server().await;
    let browser = server.browser();

    let first = browser.post("/cart").await;
    assert_eq!((first.status, first.body.as_str()), (200, "1"));
    let id = session_id(&first).expect("a new session sends its cookie");

    let second = browser.post("/cart").await;
    assert_eq!((second.status, second.body.as_str()), (200, "2"));
    // Same session: no new cookie, or the same id again.
    assert!(session_id(&second).is_none_or(|again| again == id));

    assert_eq!(
        browser.get("/raw/cart").await.body,
        r#"{"items":["apple","apple"]}"#
    );
}

#[tokio::test]
async fn reading_creates_no_session() {
    let server = server().await;
    let browser = server.browser();

    for _ in 0..2 {
        let reply = browser.get("/cart").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "0"));
        assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    }

    // Reading a stored cart leaves the session unchanged: no cookie either.
    assert!(session_id(&browser.post("/cart").await).is_some());
    let reply = browser.get("/cart").await;
    assert_eq!(reply.body, "1");
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
}

#[tokio::test]
async fn a_value_of_the_wrong_shape_falls_back_to_the_default() {
    let server = server().await;
    let browser = server.browser();

    assert_eq!(browser.post("/corrupt").await.status, 200);
    let reply = browser.get("/cart").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "0"));
    // Only read: the stored value is left as it was.
    assert_eq!(browser.get("/raw/cart").await.body, r#"{"products":3}"#);

    let reply = browser.post("/cart").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "1"));
    assert_eq!(
        browser.get("/raw/cart").await.body,
        r#"{"items":["apple"]}"#
    );
}

#[tokio::test]
async fn two_types_in_one_handler_keep_their_own_keys() {
    let server = server().await;
    let browser = server.browser();

    assert_eq!(browser.post("/both").await.body, "1 true");
    assert_eq!(browser.post("/both").await.body, "2 false");
    assert_eq!(browser.post("/cart").await.body, "3");
    assert_eq!(
        browser.get("/raw/cart").await.body,
        r#"{"items":["pear","pear","apple"]}"#
    );
    assert_eq!(browser.get("/raw/prefs").await.body, r#"{"dark":false}"#);
}

#[tokio::test]
async fn sessions_of_different_visitors_are_separate() {
    let server = server().await;
    let (alice, bob) = (server.browser(), server.browser());

    assert_eq!(alice.post("/cart").await.body, "1");
    assert_eq!(alice.post("/cart").await.body, "2");
    assert_eq!(bob.get("/cart").await.body, "0");
    assert_eq!(bob.post("/cart").await.body, "1");
    assert_eq!(alice.get("/cart").await.body, "2");
}
