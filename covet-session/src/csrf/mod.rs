//! Cross-site request forgery protection bound to the session:
//! [`CsrfLayer`], [`Session::csrf_token`](crate::Session::csrf_token) and
//! (feature `axum`) the [`CsrfToken`] extractor.
//!
//! - Each session has a secret (32 random bytes under a reserved key),
//!   created the first time a token is asked for, so an anonymous session
//!   gets one and a login form is protected. `Session::login` and
//!   `Session::cycle_id` rotate it.
//! - A token is the secret masked with fresh randomness: it differs in
//!   every response (nothing for a compression side channel such as BREACH
//!   to learn) and still verifies. Comparisons are constant time.
//! - Requests with any method but `GET`, `HEAD`, `OPTIONS` and `TRACE` must
//!   carry a valid token in the `X-CSRF-Token` header or in a `csrf_token`
//!   field of an `application/x-www-form-urlencoded` or
//!   `multipart/form-data` body. The body is buffered up to
//!   [`CsrfLayer::with_max_body`] (1 MiB; past it, `413`) and handed to the
//!   handler unchanged.
//! - On top of the token: `Sec-Fetch-Site: cross-site` is refused, and an
//!   `Origin` (or, on HTTPS without `Origin`, a `Referer`) must be the
//!   request's own origin or one of [`CsrfLayer::with_trusted_origins`],
//!   matched exactly on scheme, host and port. `Origin: null` is refused.
//! - [`CsrfLayer::with_exempt`] skips requests (webhooks); the header and
//!   field names are configurable.
//! - A refused request gets `403 Forbidden` with a short plain-text reason,
//!   a [`CsrfRejection`] response extension, and a `csrf_rejected` event.
//!   Never a 500, never a panic, whatever the body.
//!
//! ```
//! use std::convert::Infallible;
//! use covet_session::{CsrfLayer, CsrfRejection, MemoryStore, Session, SessionConfig, SessionLayer};
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let svc = ServiceBuilder::new()
//!     .layer(SessionLayer::new(MemoryStore::new()).with_config(SessionConfig::default().with_secure(false)))
//!     .layer(CsrfLayer::new())
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let session = req.extensions().get::<Session>().unwrap().clone();
//!         session.ensure_loaded().await.unwrap();
//!         let token = session.csrf_token().unwrap();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(token))))
//!     }));
//! let form = svc.clone().oneshot(Request::get("http://app.test/form").body(Full::default()).unwrap()).await.unwrap();
//! let cookie = form.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
//!
//! // A POST without the token is refused...
//! let forged = Request::post("http://app.test/transfer").header(header::COOKIE, &cookie).body(Full::default()).unwrap();
//! let refused = svc.clone().oneshot(forged).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! assert_eq!(refused.extensions().get::<CsrfRejection>(), Some(&CsrfRejection::MissingToken));
//! # });
//! ```

mod layer;
mod service;
mod token;

pub use layer::{CsrfLayer, DEFAULT_FIELD_NAME, DEFAULT_HEADER_NAME, DEFAULT_MAX_BODY};
pub use service::{Csrf, CsrfRejection, ResponseFuture};

/// A CSRF token for this response (masked afresh for every extraction),
/// for a form field or a header: an axum extractor with the `axum`
/// feature, or [`Session::csrf_token`](crate::Session::csrf_token).
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use covet_session::CsrfToken;
/// async fn form(token: CsrfToken) -> String {
///     format!(r#"<form method="post"><input type="hidden" name="csrf_token" value="{token}">"#)
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub(crate) String);

impl CsrfToken {
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
