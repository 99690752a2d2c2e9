//! The Covet demo: a small shop in axum with server-rendered pages, on
//! embedded defaults (an in-memory cache and session store, no servers).
//!
//! ```text
//! cargo run --example demo                      # then open http://127.0.0.1:3000
//! cargo run --example demo -- --help            # every option
//! cargo run --example demo --features redis -- --redis redis://127.0.0.1:6379 --sessions redis
//! cargo run --example demo --features redis -- --redis redis://127.0.0.1:6379 --tiered
//! cargo run --example demo --features memcached -- --memcached memcache://127.0.0.1:11211
//! cargo run --example demo --features sql-sqlite -- --sql-cache sqlite://demo.db --sessions sql --session-url sqlite://demo.db
//! cargo run --example demo -- --sessions cookie
//! ```
//!
//! Pages: a catalogue read through `#[cached]` functions (hit or miss and
//! the time each took), a page stored by `HttpCacheLayer` with its
//! `Cache-Status`, a login form behind `CsrfLayer` with flash messages, a
//! cart in `SessionState<Cart>`, "your sessions" with a button that ends
//! the others, and statistics (also as `/stats.json`) that refresh
//! themselves. Logs go through `tracing` (`RUST_LOG=debug` for more).

mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use covet::cache::{Cache, CacheBackend, MemoryBackend};
use covet::session::{MemoryStore, SessionConfig, SessionStore};

/// The Covet demo shop: caching and sessions in one axum app.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Where to listen (loopback only).
    #[arg(long, env = "COVET_DEMO_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Keep the cache in Redis (feature `redis`).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// With --redis: an in-memory tier in front of Redis, kept coherent
    /// across processes over Redis pub/sub.
    #[arg(long, requires = "redis")]
    tiered: bool,
    /// Keep the cache in Memcached (feature `memcached`).
    #[arg(long, value_name = "URL", conflicts_with = "redis")]
    memcached: Option<String>,
    /// Keep the cache in a SQL database: `sqlite://demo.db` or
    /// `postgres://...` (features `sql-sqlite`, `sql-postgres`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["redis", "memcached"])]
    sql_cache: Option<String>,
    /// Where sessions live.
    #[arg(long, value_enum, default_value_t = Sessions::Memory)]
    sessions: Sessions,
    /// The server of `--sessions redis|sql` (default: the --redis URL for
    /// redis, `sqlite://demo-sessions.db` for sql).
    #[arg(long, value_name = "URL")]
    session_url: Option<String>,
    /// Mark cookies `Secure` (behind HTTPS).
    #[arg(long)]
    secure_cookies: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Sessions {
    /// `MemoryStore`, in this process.
    Memory,
    /// `RedisStore` (feature `redis`).
    Redis,
    /// `SqlStore` on SQLite, PostgreSQL or MySQL (features `sql-*`).
    Sql,
    /// `CookieStore`: the session sealed in the cookie (encrypted).
    Cookie,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error for an option whose feature this build lacks (with every
/// feature on, nothing needs it).
#[allow(dead_code)]
fn needs(feature: &str) -> BoxError {
    format!("this option needs the demo built with `--features {feature}`").into()
}

async fn backend(args: &Args) -> Result<(Arc<dyn CacheBackend>, String), BoxError> {
    let memory = || {
        MemoryBackend::builder()
            .max_capacity_bytes(32 << 20)
            .build()
    };
    if let Some(url) = &args.redis {
        #[cfg(feature = "redis")]
        {
            let redis = covet::cache::RedisBackend::connect(url).await?;
            if args.tiered {
                let tiered = covet::cache::Tiered::new(memory(), redis);
                return Ok((
                    Arc::new(tiered),
                    format!("memory in front of Redis ({url})"),
                ));
            }
            return Ok((Arc::new(redis), format!("Redis ({url})")));
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = url;
            return Err(needs("redis"));
        }
    }
    if let Some(url) = &args.memcached {
        #[cfg(feature = "memcached")]
        {
            let mc = covet::cache::MemcachedBackend::connect(url).await?;
            return Ok((Arc::new(mc), format!("Memcached ({url})")));
        }
        #[cfg(not(feature = "memcached"))]
        {
            let _ = url;
            return Err(needs("memcached"));
        }
    }
    if let Some(url) = &args.sql_cache {
        #[cfg(any(
            feature = "sql-sqlite",
            feature = "sql-postgres",
            feature = "sql-mysql"
        ))]
        {
            let sql = covet::cache::SqlBackend::connect(url).await?;
            let scheme = url.split(':').next().unwrap_or("sql");
            return Ok((Arc::new(sql), format!("SQL ({scheme})")));
        }
        #[cfg(not(any(
            feature = "sql-sqlite",
            feature = "sql-postgres",
            feature = "sql-mysql"
        )))]
        {
            let _ = url;
            return Err(needs("sql-sqlite"));
        }
    }
    Ok((Arc::new(memory()), "memory (moka)".to_owned()))
}

async fn store(args: &Args) -> Result<(Arc<dyn SessionStore>, String), BoxError> {
    match args.sessions {
        Sessions::Memory => Ok((Arc::new(MemoryStore::new()), "memory".to_owned())),
        Sessions::Cookie => {
            // A fresh key per start: restarting logs everybody out. Use
            // `derive_key` on a configured secret to keep sessions.
            let key = covet::session::store::cookie::Key::generate();
            Ok((
                Arc::new(covet::session::CookieStore::new(key)),
                "encrypted cookies".to_owned(),
            ))
        }
        Sessions::Redis => {
            #[cfg(feature = "redis")]
            {
                let url = args
                    .session_url
                    .clone()
                    .or_else(|| args.redis.clone())
                    .ok_or("--sessions redis needs --session-url or --redis")?;
                let store = covet::session::RedisStore::connect(&url).await?;
                Ok((Arc::new(store), format!("Redis ({url})")))
            }
            #[cfg(not(feature = "redis"))]
            Err(needs("redis"))
        }
        Sessions::Sql => {
            #[cfg(any(
                feature = "sql-sqlite",
                feature = "sql-postgres",
                feature = "sql-mysql"
            ))]
            {
                let url = args
                    .session_url
                    .clone()
                    .unwrap_or_else(|| "sqlite://demo-sessions.db?mode=rwc".to_owned());
                let store = covet::session::SqlStore::connect(&url).await?;
                store.migrate().await?;
                let scheme = url.split(':').next().unwrap_or("sql").to_owned();
                Ok((Arc::new(store), format!("SQL ({scheme})")))
            }
            #[cfg(not(any(
                feature = "sql-sqlite",
                feature = "sql-postgres",
                feature = "sql-mysql"
            )))]
            Err(needs("sql-sqlite"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,covet=info".into()),
        )
        .init();
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        return Err("the demo only listens on loopback addresses".into());
    }
    let (backend, cache_label) = backend(&args).await?;
    let cache = Cache::builder()
        .shared_backend(backend)
        .namespace("demo")
        .default_ttl(Duration::from_secs(300))
        .build()?;
    // `#[cached]` functions use the default cache.
    covet::cache::set_default(cache.clone());
    let (store, session_label) = store(&args).await?;
    let mut setup = app::Setup::in_memory();
    setup.cache = cache;
    setup.store = store;
    setup.session_config = SessionConfig::default().with_secure(args.secure_cookies);
    setup.cache_label = cache_label;
    setup.session_label = session_label;
    tracing::info!(cache = %setup.cache_label, sessions = %setup.session_label, "starting");
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    println!("covet demo listening on http://{addr}");
    axum::serve(
        listener,
        app::app(setup).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
