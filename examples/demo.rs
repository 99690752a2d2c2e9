//! The Covet demo: an axum server on 127.0.0.1 with a `#[cached]` handler,
//! live cache statistics and sessions (a visit counter, a cart and flash
//! messages), on embedded defaults (in-memory, no servers).
//!
//! ```text
//! cargo run --example demo
//! curl http://127.0.0.1:3000/square/12   # slow the first time, instant after
//! curl http://127.0.0.1:3000/stats
//! curl -c jar -b jar http://127.0.0.1:3000/visit          # visit 0, visit 1, ...
//! TOKEN=$(curl -s -c jar -b jar http://127.0.0.1:3000/csrf)
//! curl -c jar -b jar -H "X-CSRF-Token: $TOKEN" -X POST http://127.0.0.1:3000/cart/book
//! curl -c jar -b jar http://127.0.0.1:3000/messages
//! curl -i http://127.0.0.1:3000/products   # Cache-Status: covet; fwd=uri-miss ... then covet; hit
//! ```
//! In a browser, <http://127.0.0.1:3000/login> is a login form protected
//! by `CsrfLayer` (any name logs in: the demo has no passwords).
//! `COVET_DEMO_ADDR` changes the listening address (loopback only).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::Path;
use axum::response::Html;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use covet::cache::http::HttpCacheLayer;
use covet::cache::{Cache, MemoryBackend, default_cache};
use covet::session::{
    CsrfLayer, CsrfToken, Error as SessionError, Flashes, Level, MemoryStore, Session,
    SessionConfig, SessionLayer, SessionState,
};
use serde::Serialize;

/// A shopping cart kept in the session under the key `cart`.
#[covet::session_state(key = "cart")]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct Square {
    n: u64,
    square: u64,
    computed_at_ms: u128,
}

/// A slow computation, cached for 30 seconds per `n`.
#[covet::cached(ttl = 30, key = "square:{n}", tags = ["squares"])]
async fn slow_square(n: u64) -> Option<Square> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let square = n.checked_mul(n)?;
    let computed_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Some(Square {
        n,
        square,
        computed_at_ms,
    })
}

#[derive(Serialize)]
struct Answer {
    result: Option<Square>,
    key: String,
    took_us: u128,
}

async fn square(Path(n): Path<u64>) -> Json<Answer> {
    let started = Instant::now();
    let result = slow_square(n).await;
    Json(Answer {
        result,
        key: slow_square_key(n),
        took_us: started.elapsed().as_micros(),
    })
}

async fn forget(Path(n): Path<u64>) -> Json<bool> {
    Json(slow_square_invalidate(n).await.unwrap_or(false))
}

/// Cache statistics, and the session layer's beside them.
async fn stats(sessions: SessionLayer) -> Json<serde_json::Value> {
    let s = default_cache().stats();
    let session_counts: serde_json::Map<String, serde_json::Value> = sessions
        .stats()
        .counts()
        .map(|(name, n)| (name.to_owned(), n.into()))
        .collect();
    Json(serde_json::json!({
        "sessions": session_counts,
        "hits": s.hits,
        "misses": s.misses,
        "sets": s.sets,
        "evictions": s.evictions,
        "errors": s.errors,
        "decode_errors": s.decode_errors,
        "coalesced": s.coalesced,
        "http_hits": s.http_hits,
        "http_misses": s.http_misses,
        "hit_rate": s.hit_rate(),
    }))
}

/// Counts this visitor's visits and greets returning ones with a flash.
async fn visit(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("visits")?.unwrap_or(0);
    session.insert("visits", n + 1)?;
    if n > 0 {
        session.flash("Welcome back!", Level::Success);
    }
    Ok(format!("visit {n}\n"))
}

/// Adds `item` to the cart; saved automatically after the response.
async fn add_to_cart(
    mut cart: SessionState<Cart>,
    session: Session,
    Path(item): Path<String>,
) -> String {
    cart.items.push(item.clone());
    session.flash(format!("Added {item} to the cart."), Level::Info);
    format!("{} item(s): {}\n", cart.items.len(), cart.items.join(", "))
}

async fn show_cart(cart: SessionState<Cart>) -> String {
    format!("{} item(s): {}\n", cart.items.len(), cart.items.join(", "))
}

/// Shows the flash messages once.
async fn messages(flashes: Flashes) -> String {
    flashes
        .iter()
        .map(|f| format!("[{}] {}\n", f.level, f.message))
        .collect()
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn flash_list(flashes: &Flashes) -> String {
    flashes
        .iter()
        .map(|f| format!("<p class=\"{}\">{}</p>", f.level, esc(&f.message)))
        .collect()
}

/// The login form, with this response's CSRF token.
async fn login_form(session: Session, token: CsrfToken, flashes: Flashes) -> Html<String> {
    let who = session
        .user_id()
        .map_or_else(|| "nobody".to_owned(), |u| esc(&u));
    Html(format!(
        "<h1>Log in</h1>{}<p>Logged in: <b>{who}</b></p>\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{token}\">\
         <label>Name <input name=\"user\" autofocus></label> <button>Log in</button></form>\
         <form method=\"post\" action=\"/logout\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{token}\">\
         <button>Log out</button></form>",
        flash_list(&flashes)
    ))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
}

/// Logs in (the id rotates; `CsrfLayer` checked the token) and says so
/// with a flash message on the next page.
async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Redirect, SessionError> {
    let user = form.user.trim();
    if user.is_empty() {
        session.flash("Type a name to log in.", Level::Warning);
        return Ok(Redirect::to("/login"));
    }
    session.login(user)?;
    session.flash(
        format!("Welcome, {user}! You are logged in."),
        Level::Success,
    );
    Ok(Redirect::to("/login"))
}

/// Logs out: deletes the session and expires the cookie. The session is
/// over, so the goodbye message is set by the next page, in a new one.
async fn logout(session: Session) -> impl IntoResponse {
    session.logout();
    Redirect::to("/goodbye")
}

async fn goodbye(session: Session) -> Redirect {
    session.flash("You are logged out.", Level::Info);
    Redirect::to("/login")
}

/// A CSRF token for scripts (`curl -H "X-CSRF-Token: ..."`).
async fn csrf(token: CsrfToken) -> String {
    token.to_string()
}

/// A slow page the HTTP cache layer keeps for 30 seconds, as its
/// `Cache-Control` allows.
async fn products() -> ([(&'static str, &'static str); 1], String) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    (
        [("cache-control", "public, max-age=30")],
        format!("products rendered at {at} ms (200 ms of work)\n"),
    )
}

async fn index() -> Html<&'static str> {
    Html(
        "<h1>Covet demo</h1>\
         <p><a href=\"/square/12\">/square/12</a>: a <code>#[cached(ttl = 30, key = \"square:{n}\")]</code> \
         handler that takes 300 ms on a miss; reload it to see a hit.</p>\
         <p>POST /square/12/forget drops one entry (<code>slow_square_invalidate</code>).</p>\
         <p><a href=\"/stats\">/stats</a>: hits, misses, sets, evictions, errors, hit rate; \
         and the sessions created, loaded, saved, rotated, deleted, refused.</p>\
         <h2>HTTP cache</h2>\
         <p><a href=\"/products\">/products</a>: a 200 ms page with <code>Cache-Control: public, max-age=30</code>, \
         stored by <code>HttpCacheLayer</code>; its <code>Cache-Status</code> and <code>Age</code> headers \
         show the hit (<code>curl -i</code>).</p>\
         <h2>Sessions</h2>\
         <p><a href=\"/visit\">/visit</a>: a visit counter in the session (cookie <code>id</code>).</p>\
         <p>POST /cart/{item} adds to a cart kept through <code>SessionState&lt;Cart&gt;</code>; \
         <a href=\"/cart\">/cart</a> shows it.</p>\
         <p><a href=\"/messages\">/messages</a>: flash messages, shown once.</p>\
         <p><a href=\"/login\">/login</a>: a login form protected by <code>CsrfLayer</code>; \
         logging in rotates the session id, logging out ends the session. \
         Every POST needs a CSRF token (<a href=\"/csrf\">/csrf</a> gives one to scripts).</p>",
    )
}

pub(crate) fn app(cache: Cache) -> Router {
    // Plain-HTTP demo on loopback: the cookie is not `Secure` here; keep
    // the default (`Secure`) behind HTTPS.
    let sessions = SessionLayer::new(MemoryStore::new())
        .with_config(SessionConfig::default().with_secure(false));
    let stats_layer = sessions.clone();
    Router::new()
        .route("/products", get(products))
        .route("/", get(index))
        .route("/square/{n}", get(square))
        .route("/square/{n}/forget", post(forget))
        .route("/stats", get(move || stats(stats_layer.clone())))
        .route("/visit", get(visit))
        .route("/cart", get(show_cart))
        .route("/cart/{item}", post(add_to_cart))
        .route("/messages", get(messages))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/goodbye", get(goodbye))
        .route("/csrf", get(csrf))
        // Every unsafe request that reaches the session carries a token;
        // the cache demo's `forget` uses no session.
        .layer(CsrfLayer::new().with_exempt(|req| req.uri.path().starts_with("/square/")))
        .layer(sessions)
        // Responses that set a cookie (sessions) are never stored.
        .layer(HttpCacheLayer::new(cache))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::builder()
        .backend(
            MemoryBackend::builder()
                .max_capacity_bytes(32 << 20)
                .build(),
        )
        .namespace("demo")
        .default_ttl(Duration::from_secs(300))
        .build()?;
    covet::cache::set_default(cache.clone());

    let addr: SocketAddr = std::env::var("COVET_DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("the demo only listens on loopback addresses".into());
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("covet demo listening on http://{}", listener.local_addr()?);
    println!(
        "try: curl http://{}/square/12 ; curl http://{}/stats",
        addr, addr
    );
    axum::serve(listener, app(cache)).await?;
    Ok(())
}
