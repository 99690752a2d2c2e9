//! The cache runtime of [covet](https://docs.rs/covet): one async
//! bytes-level [`CacheBackend`] trait, the in-memory [`MemoryBackend`] on
//! moka, and the typed [`Cache`] facade with namespaces, TTLs, a versioned
//! value envelope, pattern deletes, tags, single-flight and statistics.
//!
//! Most users reach this crate through `covet::cache` and `#[covet::cached]`.
//!
//! ```
//! use covet_cache::Cache;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = Cache::memory();
//! cache.set("greeting", &"hello".to_string(), None).await.unwrap();
//! assert_eq!(cache.get::<String>("greeting").await.unwrap().as_deref(), Some("hello"));
//! # });
//! ```

pub mod backend;
mod cache;
mod codec;
mod default;
mod epochs;
pub mod error;
mod flight;
#[cfg(feature = "http")]
pub mod http;
mod key;
pub mod lease;
pub mod local;
mod memo;
#[cfg(feature = "metrics")]
pub mod metrics;
mod stats;
pub mod time;

#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}
mod private;

#[cfg(feature = "memcached")]
pub use backend::memcached::{MemcachedBackend, MemcachedBackendBuilder};
#[cfg(feature = "memory")]
pub use backend::memory::{MemoryBackend, MemoryBackendBuilder};
#[cfg(feature = "redis")]
pub use backend::redis::{RedisBackend, RedisBackendBuilder, RedisConnection};
pub use backend::remote::CircuitOpen;
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
pub use backend::sql::{SqlBackend, SqlBackendBuilder, SqlPool};
#[cfg(feature = "redis")]
pub use backend::tiered::RedisCoherence;
#[cfg(feature = "memory")]
pub use backend::tiered::{Coherence, CoherenceStats, Tiered, TieredBuilder};
pub use backend::{CacheBackend, Capabilities, Decoded, Entry, KeyTtl};
pub use cache::{
    Cache, CacheBuilder, CacheValue, DEFAULT_LEASE_TTL, DEFAULT_LEASE_WAIT, DEFAULT_NAMESPACE,
};
pub use codec::{Codec, Envelope};
pub use default::{default_cache, set_default};
pub use error::{CodecError, ConfigError, Error, Result};
/// Weighs keys and values for a memo bounded by bytes
/// ([`LocalMemoBuilder::max_bytes`], `#[cached(local, max_bytes = ..)]`):
/// the `get-size2` crate's trait, implemented for the standard types; derive
/// it with that crate's `derive` feature.
pub use get_size2::GetSize;
pub use key::{Glob, KeyBuf, MAX_KEY_LEN};
pub use local::{LocalMemo, LocalMemoBuilder, LocalStats};
pub use memo::{BodyTime, CacheStatus, FnStats, fn_stats};
pub use stats::Stats;
