//! HTTP sessions for tower and axum, re-exported by `covet` as
//! `covet::session`.
//!
//! - [`Session`]: a cheap-to-clone handle with a typed, dict-like API that
//!   records which keys changed.
//! - [`SessionStore`]: the object-safe async trait every store implements;
//!   [`MemoryStore`] (feature `memory`) keeps sessions in process memory;
//!   `RedisStore` (feature `redis`) in Redis or a Redis Cluster;
//!   [`CacheStore`] on any covet cache backend.
//! - [`SessionId`]: 256 random bits; stores key sessions by its SHA-256
//!   hash, never by the id.
//! - [`SessionLayer`]: tower middleware (axum, hyper) that loads lazily,
//!   saves what changed and sets the cookie only when needed; with the
//!   `axum` feature, `Session` is an extractor.
//!
//! ```
//! use std::sync::Arc;
//! use covet_session::{MemoryStore, Session};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let session = Session::new(Arc::new(MemoryStore::new()));
//! session.insert("user_id", 42u64)?;
//! session.save().await?;
//! assert!(session.id().is_some());
//! # Ok::<(), covet_session::Error>(())
//! # }).unwrap();
//! ```

mod config;
pub mod error;
#[cfg(feature = "axum")]
mod extract;
mod flash;
mod id;
pub mod manager;
mod session;
pub mod store;

pub use config::{DEFAULT_COOKIE_NAME, SameSite, SessionConfig};
pub use error::{BoxError, Error, Result};
pub use flash::{FLASH_KEY, Flash, Flashes, Level};
pub use id::{ID_BYTES, ID_LEN, SessionId};
pub use manager::{SessionLayer, SessionManager};
pub use session::{DEFAULT_IDLE_TIMEOUT, SaveOutcome, Session};
pub use store::SessionStore;
pub use store::cache::{CacheStore, CacheStoreBuilder, DEFAULT_CACHE_KEY_PREFIX};
#[cfg(feature = "memory")]
pub use store::memory::{DEFAULT_MAX_SESSIONS, MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder};
