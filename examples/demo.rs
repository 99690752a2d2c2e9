//! The Covet demo: an axum server on 127.0.0.1 with a `#[cached]` handler
//! and live cache statistics, on embedded defaults (in-memory, no servers).
//!
//! ```text
//! cargo run --example demo
//! curl http://127.0.0.1:3000/square/12   # slow the first time, instant after
//! curl http://127.0.0.1:3000/stats
//! ```
//! `COVET_DEMO_ADDR` changes the listening address (loopback only).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use covet::cache::{Cache, MemoryBackend, default_cache};
use serde::Serialize;

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

async fn stats() -> Json<serde_json::Value> {
    let s = default_cache().stats();
    Json(serde_json::json!({
        "hits": s.hits,
        "misses": s.misses,
        "sets": s.sets,
        "evictions": s.evictions,
        "errors": s.errors,
        "decode_errors": s.decode_errors,
        "coalesced": s.coalesced,
        "hit_rate": s.hit_rate(),
    }))
}

async fn index() -> Html<&'static str> {
    Html(
        "<h1>Covet demo</h1>\
         <p><a href=\"/square/12\">/square/12</a>: a <code>#[cached(ttl = 30, key = \"square:{n}\")]</code> \
         handler that takes 300 ms on a miss; reload it to see a hit.</p>\
         <p>POST /square/12/forget drops one entry (<code>slow_square_invalidate</code>).</p>\
         <p><a href=\"/stats\">/stats</a>: hits, misses, sets, evictions, errors, hit rate.</p>",
    )
}

fn app() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/square/{n}", get(square))
        .route("/square/{n}/forget", post(forget))
        .route("/stats", get(stats))
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
    covet::cache::set_default(cache);

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
    axum::serve(listener, app()).await?;
    Ok(())
}
