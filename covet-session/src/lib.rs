//! HTTP sessions for tower and axum, re-exported by `covet` as
//! `covet::session`.
//!
//! - [`Session`]: a cheap-to-clone handle with a typed, dict-like API that
//!   records which keys changed.
//! - [`SessionStore`]: the object-safe async trait every store implements;
//!   [`MemoryStore`] (feature `memory`) keeps sessions in process memory;
//!   `RedisStore` (feature `redis`) in Redis or a Redis Cluster;
//!   `SqlStore` (features `sql-postgres`, `sql-mysql`, `sql-sqlite`) in a
//!   PostgreSQL, MySQL/MariaDB or SQLite table;
//!   [`CacheStore`] on any covet cache backend; [`CookieStore`] keeps the
//!   whole session in its cookie, encrypted or signed, with no server.
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
//! let session = Session::new(Arc::new(MemoryStore::new()), &covet_session::SessionConfig::default());
//! session.insert("user_id", 42u64)?;
//! session.save().await?;
//! assert!(session.id().is_some());
//! # Ok::<(), covet_session::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Security
//! What each defence protects against, its default, and how to change it.
//!
//! - **Unguessable ids, never stored.** Ids are 256 bits from the OS
//!   random generator; server-side stores key sessions by the SHA-256 of
//!   the id, so a leaked store dump holds no live id. Logs name a session
//!   by a short hash of its id only.
//! - **Fixation.** Unknown ids are never adopted (a fresh session gets a
//!   fresh id). [`Session::login`] cycles the id (and restarts the absolute
//!   timeout), and starts from empty data when another user was logged in;
//!   [`Session::cycle_id`] does the rotation alone, for privilege changes.
//!   The cookie an attacker planted before the login then loads nothing.
//!   When a request carries several cookies with the session name (one
//!   planted from a sibling domain), the one that loads is used, and if
//!   several load none is trusted. A `__Host-` cookie name
//!   ([`SessionConfig::with_cookie_name`]) keeps sibling domains from
//!   planting cookies at all; [`SessionConfig::validate`] checks its rules.
//! - **Logout that sticks.** [`Session::logout`] deletes the record, sends
//!   a removal cookie with the same attributes (and `Clear-Site-Data` with
//!   [`SessionConfig::with_clear_site_data`]), and ignores later writes. A
//!   session that existed when a request loaded it and is gone when it
//!   saves (a logout, a revocation) is never re-created by any store: that
//!   response removes the cookie too. [`SessionStore::delete_user_sessions`]
//!   logs a user out everywhere. Client-side sessions ([`CookieStore`])
//!   cannot be revoked before the expiry sealed in them: keep their
//!   timeouts short, or use a server-side store.
//! - **Timeouts, enforced by the server.** Idle timeout (two weeks by
//!   default, [`SessionConfig::with_idle_timeout`]) and absolute timeout
//!   (30 days after creation or login, [`SessionConfig::with_absolute_timeout`]);
//!   a client that ignores `Max-Age` gains nothing. An unchanged session's
//!   expiry is written, and the cookie sent again, at most once per renewal
//!   interval (five minutes, [`SessionConfig::with_renewal_interval`]).
//!   [`SessionConfig::with_browser_session`] drops `Max-Age` from the cookie.
//! - **Cookie attributes.** `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`,
//!   no `Domain` by default. [`SessionLayer::with_config`] refuses (panics
//!   at startup) a configuration browsers would not honour: a name that is
//!   not a token, `__Host-` without `Secure`/`Path=/` or with a `Domain`,
//!   `__Secure-` without `Secure`, `SameSite=None` without `Secure`,
//!   timeouts out of range; [`SessionLayer::try_with_config`] returns the
//!   [`ConfigError`].
//! - **No shared caching of session pages.** Every response to a request
//!   that loaded the session says `Vary: Cookie`, and every response that
//!   sets or removes the cookie says `Cache-Control: no-store` (unless the
//!   handler set `Cache-Control`), so no shared cache (covet's own
//!   `HttpCacheLayer` included) serves one user's page to another.
//! - **Size limits.** A session's stored form is limited to 64 KiB
//!   ([`SessionConfig::with_max_size`]): an insert past it is
//!   [`Error::TooLarge`] and changes nothing. [`MemoryStore`] is bounded by
//!   sessions or bytes (`max_capacity_bytes`); evictions are counted and
//!   logged. [`CookieStore`] values are limited to 4096 bytes.
//! - **Reserved keys.** Keys starting with `__covet` (the user id, the
//!   timeouts, flash messages) are [`Error::ReservedKey`] for `insert` and
//!   `remove`, so an app key can never corrupt its own record.
//! - **Corrupt records.** A stored record that does not decode is treated
//!   as absent: deleted, logged, and the request gets a fresh session
//!   rather than a 500 on every request.
//! - **Key space.** Server-side stores keep every key under the reserved
//!   root [`store::SESSION_KEY_ROOT`]; cache namespaces may not start with
//!   `__covet`, so no cache `clear()`, pattern delete or tag invalidation on
//!   a shared Redis ever touches a session.
//! - **CSRF.** [`CsrfLayer`], inside [`SessionLayer`], requires a valid
//!   token on every unsafe request (any method but `GET`, `HEAD`, `OPTIONS`,
//!   `TRACE`): in `X-CSRF-Token` or a `csrf_token` form field. Tokens
//!   ([`Session::csrf_token`], the [`CsrfToken`] extractor) are the
//!   session's secret masked afresh for every response (so compression side
//!   channels learn nothing) and are compared in constant time; anonymous
//!   sessions get a secret too, so login forms are protected; login and
//!   `cycle_id` rotate it. On top of the token, `Sec-Fetch-Site: cross-site`,
//!   `Origin: null`, and an `Origin` (or on HTTPS a `Referer`) that is not
//!   the request's own origin or a trusted one
//!   ([`CsrfLayer::with_trusted_origins`]) are refused. Form bodies are
//!   buffered up to 1 MiB ([`CsrfLayer::with_max_body`], `413` past it) and
//!   handed on unchanged. [`CsrfLayer::with_exempt`] skips webhooks. A
//!   refusal is a `403` with a [`CsrfRejection`] extension; never a 500.
//! - **Hijacking (client binding).** At creation and login a session
//!   records a hash of the client's `User-Agent` and address prefix (`/24`,
//!   `/64`; [`SessionConfig::with_binding_prefixes`]). A later mismatch is
//!   logged ([`Binding::Log`], the default: mobile clients move), or deletes
//!   the session and continues with a fresh one ([`Binding::Strict`]), or
//!   is not checked ([`Binding::Off`]); [`SessionConfig::with_binding`].
//!   The client address is the socket peer (axum's `ConnectInfo`), or behind
//!   [`SessionConfig::with_trusted_proxies`] the rightmost untrusted
//!   `X-Forwarded-For`/`Forwarded` entry, never the leftmost.
//! - **Security events.** `tracing` events under the target
//!   [`EVENT_TARGET`] (`covet::session`) with an `event` field: `created`,
//!   `rotated`, `logged_in`, `logged_out`, `expired`, `revoked`,
//!   `unknown_id`, `malformed_cookie`, `binding_mismatch`, `csrf_rejected`,
//!   `oversized`, `corrupt_record`, `ambiguous_cookies`, and `guessing`
//!   (one address presenting 20 distinct unknown ids within a minute).
//!   Sessions appear as a salted hash of the id (a random salt per process,
//!   or [`SessionConfig::with_event_salt`] to correlate processes), never as
//!   the id; tokens never appear.
//! - **Concurrent requests.** Stores merge changes key by key: concurrent
//!   requests that change different keys all keep their change; two that
//!   change the same key: the last save wins.

mod config;
pub mod csrf;
pub mod error;
#[cfg(feature = "axum")]
mod extract;
mod flash;
mod id;
pub mod manager;
#[cfg(feature = "metrics")]
pub mod metrics;
mod security;
mod session;
mod state;
mod stats;
pub mod store;
mod time;

pub use config::{
    DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_COOKIE_NAME, DEFAULT_MAX_SIZE, DEFAULT_RENEWAL_INTERVAL,
    MAX_TIMEOUT, SameSite, SessionConfig,
};
/// Derives [`SessionData`]; see `covet::SessionData`.
pub use covet_macros::SessionData;
pub use csrf::{CsrfLayer, CsrfRejection, CsrfToken};
pub use error::{BoxError, ConfigError, Error, Result};
pub use flash::{FLASH_KEY, Flash, Flashes, Level};
pub use id::{ID_BYTES, ID_LEN, SessionId};
pub use manager::{SessionLayer, SessionManager};
pub use security::{Binding, EVENT_TARGET, IpRange};
pub use session::{DEFAULT_IDLE_TIMEOUT, SaveOutcome, Session};
pub use state::{SessionData, SessionState};
pub use stats::SessionStats;
pub use store::cache::{CacheStore, CacheStoreBuilder, DEFAULT_CACHE_KEY_PREFIX};
pub use store::cookie::{CookieMode, CookieStore, CookieStoreBuilder, DEFAULT_MAX_COOKIE_SIZE};
#[cfg(feature = "memory")]
pub use store::memory::{DEFAULT_MAX_SESSIONS, MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder};
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
pub use store::sql::{CleanupTask, DEFAULT_TABLE_NAME, SqlStore, SqlStoreBuilder};
pub use store::{SessionInfo, SessionStore};

// Paths the code generated by covet's macros reaches: `#[session_state]`
// derives serde's traits through this re-export, so users need no serde
// dependency of their own; `#[derive(SessionData)]` checks for `Default`.
#[doc(hidden)]
pub mod __private {
    pub use crate::state::checks::*;
    pub use serde;
}
