//! Prometheus metrics for caches and sessions: a small app (a `#[cached]`
//! fn, a page behind `HttpCacheLayer`, a session counter, a CSRF-protected
//! form) and `/metrics` in the Prometheus text format, through
//! `metrics-exporter-prometheus`.
//!
//! ```text
//! cargo run --example metrics --features metrics
//! curl -c jar -b jar http://127.0.0.1:3002/visit
//! curl http://127.0.0.1:3002/product/7
//! curl http://127.0.0.1:3002/page
//! curl http://127.0.0.1:3002/metrics
//! ```
//! `COVET_METRICS_ADDR` (default `127.0.0.1:3002`, loopback only) names the
//! address; `COVET_REDIS_URL`, when set, puts the sessions in Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use covet::cache::Cache;
use covet::cache::http::HttpCacheLayer;
use covet::session::{CsrfLayer, Error, Session, SessionConfig, SessionLayer, SessionStore};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// A product name, memoized for a minute.
#[covet::cached(ttl = 60, key = "product:{id}")]
pub(crate) async fn product_name(id: u32) -> String {
    format!("product #{id}")
}

async fn product(Path(id): Path<u32>) -> String {
    format!("{}\n", product_name(id).await)
}

async fn visit(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("visits")?.unwrap_or(0);
    session.insert("visits", n + 1)?;
    Ok(format!("visit {n}\n"))
}

async fn page() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("cache-control", "public, max-age=60")], "a cached page\n")
}

/// The app, its sessions in `store`, and `/metrics` rendered by `handle`
/// (after publishing covet's counters).
pub(crate) fn app(handle: PrometheusHandle, store: Arc<dyn SessionStore>) -> Router {
    let metrics = get(move || {
        let handle = handle.clone();
        async move {
            covet::metrics::publish();
            covet::metrics::publish_sessions().await;
            handle.render()
        }
    });
    let cached_page = Router::new()
        .route("/page", get(page))
        .layer(HttpCacheLayer::new(Cache::memory()));
    Router::new()
        .route("/product/{id}", get(product))
        .route("/visit", get(visit))
        .route("/form", post(|| async { "accepted\n" }))
        .layer(CsrfLayer::new())
        .layer(
            SessionLayer::from_shared(store)
                .with_config(SessionConfig::default().with_secure(false)),
        )
        .merge(cached_page)
        .route("/metrics", metrics)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let handle = PrometheusBuilder::new().install_recorder()?;
    let store: Arc<dyn SessionStore> = match std::env::var("COVET_REDIS_URL") {
        #[cfg(feature = "redis")]
        Ok(url) => Arc::new(covet::session::RedisStore::connect(&url).await?),
        _ => Arc::new(covet::session::MemoryStore::new()),
    };
    // Cache and `#[cached]` counters reach the recorder every 5 s (and
    // before each scrape of `/metrics`).
    let _publisher = covet::metrics::spawn_publisher(Duration::from_secs(5));
    let addr: SocketAddr = std::env::var("COVET_METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3002".to_owned())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("COVET_METRICS_ADDR must be a loopback address".into());
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("listening on http://{}/metrics", listener.local_addr()?);
    axum::serve(listener, app(handle, store)).await?;
    Ok(())
}
