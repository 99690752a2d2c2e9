//! Sessions in Redis: the same visit counter, cart and flash messages as
//! the demo, with every session stored as one Redis hash (`RedisStore`), so
//! any number of app processes share them.
//!
//! ```text
//! cargo run --example sessions_redis --features redis
//! curl -c jar -b jar http://127.0.0.1:3001/visit
//! curl -c jar -b jar -X POST http://127.0.0.1:3001/cart/book
//! curl -c jar -b jar http://127.0.0.1:3001/messages
//! redis-cli --scan --pattern 'sessions-example:*'   # hashed ids, never the cookie value
//! ```
//! `COVET_REDIS_URL` (default `redis://127.0.0.1:6379`) names the server and
//! `COVET_DEMO_ADDR` (default `127.0.0.1:3001`, loopback only) the address.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use covet::session::{
    Error, Flashes, Level, RedisStore, Session, SessionConfig, SessionLayer, SessionState,
};

/// A shopping cart kept in the session under the key `cart`.
#[covet::session_state(key = "cart")]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

async fn visit(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("visits")?.unwrap_or(0);
    session.insert("visits", n + 1)?;
    if n > 0 {
        session.flash("Welcome back!", Level::Success);
    }
    Ok(format!("visit {n}\n"))
}

async fn add_to_cart(mut cart: SessionState<Cart>, Path(item): Path<String>) -> String {
    cart.items.push(item);
    format!("{} item(s): {}\n", cart.items.len(), cart.items.join(", "))
}

async fn messages(flashes: Flashes) -> String {
    flashes
        .iter()
        .map(|f| format!("[{}] {}\n", f.level, f.message))
        .collect()
}

async fn logout(session: Session) -> &'static str {
    session.logout();
    "session cleared\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("COVET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = RedisStore::builder()
        .key_prefix("sessions-example:")
        .connect(&url)
        .await?;

    let addr: SocketAddr = std::env::var("COVET_DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".to_owned())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("the example only listens on loopback addresses".into());
    }
    let app = Router::new()
        .route("/visit", get(visit))
        .route("/cart/{item}", post(add_to_cart))
        .route("/messages", get(messages))
        .route("/logout", post(logout))
        // Plain HTTP on loopback: no `Secure` flag here; keep the default
        // behind HTTPS.
        .layer(SessionLayer::new(store).with_config(SessionConfig::default().with_secure(false)));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "sessions in Redis at {url}; listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
