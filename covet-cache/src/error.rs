//! Error types of the cache runtime.

use std::error::Error as StdError;
use std::time::Duration;

/// A boxed error from a backend's client library, kept as the `source`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Errors returned by cache operations.
///
/// Variants keep the underlying error as their [`source`](std::error::Error::source),
/// so `tracing` and error reporters show the whole chain.
///
/// ```
/// use covet_cache::{Cache, Error};
/// # tokio_test_block(async {
/// let cache = Cache::memory();
/// let err = cache.set("", &1u32, None).await.unwrap_err();
/// assert!(matches!(err, Error::InvalidKey { .. }));
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend failed (connection refused, timeout, protocol error...).
    #[error("cache backend `{backend}` failed: {message}")]
    Backend {
        /// Name of the backend (`memory`, `redis`, ...).
        backend: &'static str,
        /// What the backend was doing.
        message: String,
        /// The client library's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A value could not be encoded.
    #[error("could not encode a value for key `{key}`")]
    Encode {
        /// The user key.
        key: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// A key was empty, too long or held control characters.
    #[error("invalid cache key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key (truncated to 64 characters).
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A glob pattern was malformed (for example an unclosed `[`).
    #[error("invalid key pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A value is larger than the backend can hold (see
    /// [`Capabilities::max_value_len`](crate::backend::Capabilities::max_value_len));
    /// nothing was stored.
    #[error("value for `{key}` is {size} bytes; the backend holds at most {limit}")]
    ValueTooLarge {
        /// The key (truncated to 64 characters).
        key: String,
        /// The value's size in bytes.
        size: usize,
        /// The backend's limit in bytes.
        limit: usize,
    },
    /// The backend cannot do this operation (see
    /// [`CacheBackend::capabilities`](crate::CacheBackend::capabilities));
    /// nothing was changed.
    #[error("cache backend `{backend}` does not support {operation}")]
    Unsupported {
        /// Name of the backend.
        backend: &'static str,
        /// What was asked, with the reason it cannot be done.
        operation: &'static str,
    },
    /// A backend's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `incr` was called on a value that is not a decimal integer, or it overflowed.
    #[error("value at `{key}` is not an integer counter or the increment overflowed")]
    NotAnInteger {
        /// The user key.
        key: String,
    },
}

impl Error {
    /// [`Error::ValueTooLarge`] for `size` bytes at `key` when they pass
    /// `limit` (`None`: no limit): the one check `Cache` and the backends
    /// share.
    pub(crate) fn check_value_size(key: &str, size: usize, limit: Option<usize>) -> Result<()> {
        match limit {
            Some(limit) if size > limit => Err(Error::ValueTooLarge {
                key: key.chars().take(64).collect(),
                size,
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// Builds [`Error::Backend`] from a client error.
    pub fn backend(
        backend: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Whether the operation that failed may still have been applied: a
    /// backend error other than a refusal before anything was sent (the
    /// open circuit breaker, a refused connection). A timeout, in
    /// particular, may come after the server applied the write. The
    /// [`Tiered`](crate::Tiered) cache publishes the invalidation of such a
    /// write all the same.
    ///
    /// ```
    /// use covet_cache::Error;
    /// let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
    /// assert!(Error::backend("redis", "SET failed", timeout).may_have_applied());
    /// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// assert!(!Error::backend("redis", "SET failed", refused).may_have_applied());
    /// assert!(!Error::InvalidKey { key: String::new(), reason: "empty" }.may_have_applied());
    /// ```
    pub fn may_have_applied(&self) -> bool {
        let Error::Backend { source, .. } = self else {
            return false;
        };
        let Some(source) = source else {
            return true;
        };
        let mut cause: Option<&(dyn StdError + 'static)> = Some(&**source);
        while let Some(err) = cause {
            if err.is::<crate::backend::remote::CircuitOpen>() {
                return false;
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return io.kind() != std::io::ErrorKind::ConnectionRefused;
            }
            #[cfg(feature = "redis")]
            if let Some(redis) = err.downcast_ref::<redis::RedisError>() {
                return !redis.is_connection_refusal();
            }
            cause = err.source();
        }
        true
    }
}

/// Encoding or decoding failed in a [`Codec`](crate::Codec).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// postcard failed.
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
    /// serde_json failed.
    #[cfg(feature = "json")]
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// bincode failed to encode.
    #[cfg(feature = "bincode")]
    #[error("bincode: {0}")]
    BincodeEncode(#[from] bincode::error::EncodeError),
    /// bincode failed to decode.
    #[cfg(feature = "bincode")]
    #[error("bincode: {0}")]
    BincodeDecode(#[from] bincode::error::DecodeError),
    /// The stored bytes are not a covet envelope, or are truncated.
    #[error("stored value is not a valid envelope: {0}")]
    Envelope(&'static str),
    /// The stored value was written for another type (schema fingerprint mismatch).
    #[error("stored value was written for another type")]
    SchemaMismatch,
    /// The stored value was written with a codec this build does not have.
    #[error("stored value uses codec id {0}, which this build does not support")]
    UnknownCodec(u8),
    /// Bytes left over after decoding the payload.
    #[error("trailing bytes after the payload")]
    TrailingBytes,
}

/// A mistake in a builder's configuration, returned by `build()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The namespace is empty, too long or holds characters that keys may not hold.
    #[error(
        "invalid namespace {0:?}: namespaces are 1 to 64 characters without whitespace, control characters or glob metacharacters"
    )]
    InvalidNamespace(String),
    /// Namespaces starting with `__covet` are reserved (sessions live
    /// under `__covet_session:`, out of reach of every cache's `clear()`).
    #[error("the namespace {0:?} is reserved: namespaces starting with `__covet` belong to covet")]
    ReservedNamespace(String),
    /// A TTL of zero was given.
    #[error("`{0}` must be greater than zero")]
    ZeroDuration(&'static str),
    /// No backend was given and the `memory` feature is off.
    #[error("no backend configured (enable the `memory` feature or call `.backend(...)`)")]
    MissingBackend,
    /// A capacity of zero was given.
    #[error("`{0}` must be greater than zero")]
    ZeroCapacity(&'static str),
    /// `lease_wait` is shorter than `lease_ttl`: when a lease holder dies,
    /// every waiter would give up before its lease expires and compute at
    /// once.
    #[error(
        "lease_wait ({wait:?}) is shorter than lease_ttl ({ttl:?}): waiters would give up before a dead holder's lease expires"
    )]
    LeaseWaitTooShort {
        /// The configured wait.
        wait: Duration,
        /// The configured lease lifetime.
        ttl: Duration,
    },
    /// A table name is not 1 to 48 ASCII letters, digits or `_` (not
    /// starting with a digit).
    #[error(
        "invalid table name {table:?}: use 1 to 48 ASCII letters, digits or `_`, not starting with a digit"
    )]
    InvalidTable {
        /// The name given (truncated to 64 characters).
        table: String,
    },
    /// A connection URL cannot be used.
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: &'static str,
    },
}

/// Shorthand for `Result<T, covet_cache::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
