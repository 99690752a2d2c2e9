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

/// Caching: backends, the typed [`Cache`](cache::Cache), the process-wide
/// default cache used by [`cached`].
pub mod cache {
    pub use covet_cache::*;
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
