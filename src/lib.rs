//! # Covet
//!
//! Memoization, caching and HTTP sessions for async Rust web services.
//!
//! * [`cached`]: put `#[covet::cached(ttl = 300, key = "user:{user_id}")]`
//!   on an async fn and its results are cached; the key template is checked
//!   at compile time.
//! * [`cache`]: the typed [`Cache`](cache::Cache) facade over pluggable
//!   backends (in-memory on moka by default), with namespaces, TTLs, tags,
//!   pattern deletes, single-flight and statistics.
//! * [`session`]: HTTP sessions for tower and axum: the
//!   [`Session`](session::Session) handle, the
//!   [`SessionLayer`](session::SessionLayer) middleware and session stores.
//! * [`session_state`]: typed session data; a handler takes
//!   [`SessionState<Cart>`](session::SessionState), changes it in place, and
//!   the change is saved.
//!
//! ```
//! use covet::cache::{Cache, MemoryBackend};
//! use std::time::Duration;
//!
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
//! struct User { name: String }
//!
//! # #[derive(Debug)] struct DbError;
//! # impl std::fmt::Display for DbError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("db") } }
//! # impl std::error::Error for DbError {}
//! #[covet::cached(ttl = 300, key = "user:{user_id}")]
//! async fn get_user(user_id: u64) -> Result<User, DbError> {
//!     Ok(User { name: format!("user {user_id}") })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::builder()
//!     .backend(MemoryBackend::builder().max_capacity_bytes(64 << 20).build())
//!     .namespace("myapp")
//!     .default_ttl(Duration::from_secs(300))
//!     .build()?;
//! covet::cache::set_default(cache.clone());
//!
//! cache.set("user:1", &User { name: "Alice".into() }, None).await?;
//! let u: Option<User> = cache.get("user:1").await?;
//! assert_eq!(u.unwrap().name, "Alice");
//! let user = get_user(7).await?;          // computed once, then served from the cache
//! assert_eq!(user.name, "user 7");
//! get_user_invalidate(7).await?;          // generated companion
//! assert_eq!(get_user_key(7), "user:7");  // generated companion
//! let removed = cache.delete_pattern("user:*").await?;
//! assert_eq!(removed, 1);
//! println!("{:?}", cache.stats());
//! # Ok(())
//! # }
//! ```
//!
//! ## Cargo features
//! * `memory` (default): the in-memory cache backend and the in-memory
//!   session store ([`MemoryStore`](session::MemoryStore)).
//! * `json`, `bincode`: extra value codecs (postcard is always available).
//! * `redis`: [`RedisBackend`](cache::RedisBackend) (single server and
//!   Redis Cluster) and coherent two-tier caches ([`Tiered`](cache::Tiered)
//!   with Redis pub/sub invalidation).
//! * `redis-tls`: `rediss://` connections.
//! * `axum`: [`Session`](session::Session) as an axum extractor and
//!   `IntoResponse` for [`session::Error`] (an opaque 500).
//! * `memcached`: the cache backend `cache::MemcachedBackend` on one or
//!   several memcached servers.
//! * `sql-postgres`, `sql-mysql`, `sql-sqlite`: the SQL cache backend
//!   `cache::SqlBackend` and session store `session::SqlStore` on
//!   PostgreSQL, MySQL/MariaDB or SQLite (sqlx).
//! * `metrics`: counters, gauges and histograms through the `metrics`
//!   facade (`covet::metrics` lists the names and labels).

/// Caching: backends, the typed [`Cache`](cache::Cache), the process-wide
/// default cache used by [`cached`].
pub mod cache {
    pub use covet_cache::*;
}

#[cfg(feature = "metrics")]
pub mod metrics {
    //! Metrics through the [`metrics`](https://docs.rs/metrics) facade
    //! (feature `metrics`): install any exporter as the global recorder
    //! (Prometheus, OpenTelemetry, StatsD...) and covet's series reach it.
    //! Without the feature none of this is compiled.
    //!
    //! | name | type | labels | what |
    //! | --- | --- | --- | --- |
    //! | `covet_cache_requests_total` | counter | `cache`, `outcome` = `hit` \| `miss` \| `stale` \| `error` | lookups of each `Cache` (summed per namespace) |
    //! | `covet_cache_evictions_total` | counter | `cache` | entries the backend dropped to stay within its bound |
    //! | `covet_cache_fn_requests_total` | counter | `fn`, `outcome` = `hit` \| `miss` \| `stale` \| `error` \| `coalesced` \| `refresh` \| `bypass` | calls of each `#[cached]` fn (its path) |
    //! | `covet_cache_backend_duration_seconds` | histogram | `backend` = `redis` \| `memcached` \| `sql`..., `op` | each call to a remote backend (the memory backend answers in nanoseconds and is not timed) |
    //! | `covet_cache_circuit_open` | gauge | `backend` | 1 while a backend's circuit breaker refuses calls, 0 once a probe answered |
    //! | `covet_http_cache_requests_total` | counter | `status` = `hit` \| `miss` \| `stale` \| `bypass` | requests through an `HttpCacheLayer` |
    //! | `covet_sessions_total` | counter | `event` = `created` \| `loaded` \| `saved` \| `deleted` \| `expired_idle` \| `expired_absolute` \| `rotated` \| `unknown_id` \| `malformed_cookie` \| `corrupt_record` \| `store_error` \| `csrf_rejected` \| `binding_mismatch` | session events (see `SessionLayer::stats`) |
    //! | `covet_sessions_active` | gauge | none | live sessions in every store behind a `SessionLayer` that can count them, sampled |
    //!
    //! Label values are bounded: namespaces, fn paths, backend and operation
    //! names, fixed outcome sets; never a key, a session id or a URL.
    //!
    //! The `#[cached]` and `Cache` counters are kept by covet in per-thread
    //! cells, so a hit pays nothing for metrics; [`publish`] copies them to
    //! the recorder (call it before a scrape, or let [`spawn_publisher`] do
    //! it every few seconds). Everything else is reported as it happens.
    //!
    //! ```
    //! # #[tokio::main(flavor = "current_thread")]
    //! # async fn main() {
    //! // With an exporter installed as the global recorder:
    //! let publisher = covet::metrics::spawn_publisher(std::time::Duration::from_secs(5));
    //! covet::metrics::publish();
    //! publisher.abort();
    //! # }
    //! ```

    use std::time::Duration;

    /// Copies the cache and `#[cached]` counters to the recorder now.
    pub fn publish() {
        covet_cache::metrics::publish();
    }

    /// Samples `covet_sessions_active` now (a count of every store; see
    /// [`covet_session::metrics::publish_active`]).
    pub async fn publish_sessions() -> u64 {
        covet_session::metrics::publish_active().await
    }

    /// A tokio task that calls [`publish`] and [`publish_sessions`] every
    /// `every` (at least 100 ms), until aborted.
    pub fn spawn_publisher(every: Duration) -> tokio::task::JoinHandle<()> {
        let every = every.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                publish();
                publish_sessions().await;
            }
        })
    }
}

/// HTTP sessions: the [`Session`](session::Session) handle,
/// [`SessionLayer`](session::SessionLayer), [`SessionStore`](session::SessionStore)
/// and its stores.
pub use covet_session as session;

#[doc = include_str!("docs/cached.md")]
pub use covet_macros::cached;

#[doc = include_str!("docs/session_state.md")]
pub use covet_macros::session_state;

/// Derives [`SessionData`](trait@session::SessionData): the struct is stored
/// under one session key, by default its name in snake case. Options go in
/// `#[session(key = "...", crate = "...")]`; see [`session_state`], which
/// also derives serde's traits.
///
/// ```
/// use covet::session::SessionData;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize, SessionData)]
/// struct ShoppingCart {
///     items: Vec<String>,
/// }
///
/// assert_eq!(ShoppingCart::KEY, "shopping_cart");
/// ```
pub use covet_macros::SessionData;

#[doc(hidden)]
pub mod __private {
    pub use covet_cache::__private::*;
}
