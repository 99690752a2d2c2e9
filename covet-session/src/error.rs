//! Error types of the session runtime.

use std::error::Error as StdError;

/// A boxed error from a store's client library, kept as the `source`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with the session [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by session operations.
///
/// Variants keep the underlying error as their
/// [`source`](std::error::Error::source). With the `axum` feature, `Error`
/// implements `IntoResponse` as an opaque `500 Internal Server Error` (the
/// details go to a `tracing` error event, never to the client).
///
/// ```
/// use covet_session::{Error, SessionId};
/// let err = "not-a-session-id".parse::<SessionId>().unwrap_err();
/// assert!(matches!(err, Error::InvalidId));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session store failed (connection refused, timeout, ...).
    #[error("session store `{store}` failed: {message}")]
    Store {
        /// Name of the store (`memory`, `redis`, ...).
        store: &'static str,
        /// What the store was doing.
        message: String,
        /// The client library's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A value could not be encoded to JSON.
    #[error("could not encode the session value for key `{key}`")]
    Encode {
        /// The session key.
        key: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value could not be decoded into the requested type.
    #[error("could not decode the session value for key `{key}`")]
    Decode {
        /// The session key.
        key: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A string was not a session id (43 characters of URL-safe base64).
    #[error("malformed session id")]
    InvalidId,
    /// The operating system's random generator failed.
    #[error("the OS random generator failed")]
    Random(#[source] getrandom::Error),
    /// The session was used before it was loaded from its store (call
    /// [`Session::ensure_loaded`](crate::Session::ensure_loaded) first; the
    /// axum extractor does it for you).
    #[error("the session was used before it was loaded")]
    NotLoaded,
    /// A `Session` was requested but no `SessionLayer` is installed.
    #[error("no session in the request extensions: is `SessionLayer` installed?")]
    MissingLayer,
    /// A SQL session store was given a table name that is not a plain
    /// identifier: 1 to 63 ASCII letters, digits or `_`, not starting with a
    /// digit.
    #[error(
        "invalid SQL table name {0:?}: expected 1 to 63 ASCII letters, digits or `_`, not starting with a digit"
    )]
    InvalidTableName(String),
    /// A `CookieStore` session does not fit in one cookie: the sealed value
    /// and the cookie name take `size` bytes, more than `limit`. Nothing is
    /// stored and no cookie is sent; keep less data in the session.
    #[error("the session cookie would be {size} bytes, more than the limit of {limit}")]
    CookieTooLarge {
        /// Bytes of `name=value` the session needs.
        size: usize,
        /// The configured limit (4096 by default).
        limit: usize,
    },
    /// A `CookieStore` key was derived from a secret shorter than `min`
    /// bytes.
    #[error("the cookie key secret is {len} bytes; at least {min} are needed")]
    SecretTooShort {
        /// Length of the secret given.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// A cookie name that is empty or holds characters outside the
    /// RFC 6265 token set.
    #[error("invalid cookie name {0:?}")]
    InvalidCookieName(String),
    /// An insert would make the session's stored form `size` bytes, more
    /// than the configured `limit`
    /// ([`SessionConfig::with_max_size`](crate::SessionConfig::with_max_size)).
    /// The session is unchanged.
    #[error("the session would be {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The size the session would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Keys starting with `__covet` belong to covet (the user id, timeouts,
    /// flash messages, the CSRF secret): `insert` and `remove` refuse them.
    #[error("session keys starting with `__covet` are reserved: {0:?}")]
    ReservedKey(String),
    /// A stored session could not be decoded. [`Session`](crate::Session)
    /// treats such a record as absent: it deletes it, logs it (with a hash
    /// of the id, never the id) and starts a fresh session.
    #[error("a stored session in `{store}` could not be decoded")]
    CorruptRecord {
        /// Name of the store.
        store: &'static str,
        /// What failed to decode.
        #[source]
        source: BoxError,
    },
    /// The store cannot do this (for example, a `CookieStore` cannot list
    /// or revoke the sessions of a user: each lives only in a browser).
    #[error("session store `{store}` does not support {operation}")]
    Unsupported {
        /// Name of the store.
        store: &'static str,
        /// The operation.
        operation: &'static str,
    },
}

/// A session configuration that browsers or the server would not honour;
/// returned by [`SessionConfig::validate`](crate::SessionConfig::validate)
/// and [`SessionLayer::try_with_config`](crate::SessionLayer::try_with_config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is not an RFC 6265 token.
    #[error("invalid cookie name {0:?}: expected an RFC 6265 token")]
    InvalidCookieName(String),
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`.
    #[error(
        "a `__Host-` cookie is refused by browsers unless Secure, Path=/ and without Domain: {reason}"
    )]
    HostPrefix {
        /// Which rule is broken.
        reason: &'static str,
    },
    /// A `__Secure-` cookie must be `Secure`.
    #[error("a `__Secure-` cookie is refused by browsers unless Secure")]
    SecurePrefix,
    /// `SameSite=None` cookies must be `Secure`.
    #[error("a SameSite=None cookie is refused by browsers unless Secure")]
    SameSiteNoneWithoutSecure,
    /// A `Path` or `Domain` value that would break the `Set-Cookie` line.
    #[error("invalid cookie {attribute} {value:?}")]
    InvalidAttribute {
        /// `Path` or `Domain`.
        attribute: &'static str,
        /// The value given.
        value: String,
    },
    /// A timeout outside one second to 400 days.
    #[error("{setting} of {value:?} is out of range (1 s to 400 days)")]
    TimeoutOutOfRange {
        /// Which timeout.
        setting: &'static str,
        /// The value given.
        value: std::time::Duration,
    },
    /// A size limit of zero.
    #[error("the session size limit must not be zero")]
    ZeroMaxSize,
}

impl Error {
    /// Builds [`Error::CorruptRecord`] from a decoding error.
    pub fn corrupt(store: &'static str, source: impl Into<BoxError>) -> Self {
        Error::CorruptRecord {
            store,
            source: source.into(),
        }
    }

    /// Builds [`Error::Store`] from a client error.
    pub fn store(
        store: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Store {
            store,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds [`Error::Store`] without an underlying error.
    pub fn store_msg(store: &'static str, message: impl Into<String>) -> Self {
        Error::Store {
            store,
            message: message.into(),
            source: None,
        }
    }

    /// Logs this error and its source chain as one `tracing` error event.
    pub(crate) fn log(&self, what: &str) {
        let mut chain = self.to_string();
        let mut src = StdError::source(self);
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(error = %chain, "{what}");
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        self.log("session error");
        http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_source() {
        let io = std::io::Error::other("connection refused");
        let err = Error::store("redis", "loading", io);
        assert_eq!(err.to_string(), "session store `redis` failed: loading");
        assert_eq!(
            StdError::source(&err).unwrap().to_string(),
            "connection refused"
        );
    }

    #[cfg(feature = "axum")]
    #[test]
    fn into_response_is_an_opaque_500() {
        use axum::response::IntoResponse;
        let resp = Error::store_msg("memory", "secret detail").into_response();
        assert_eq!(resp.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
