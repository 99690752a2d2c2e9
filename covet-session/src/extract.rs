//! axum extractors (feature `axum`).

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::error::Error;
use crate::flash::Flashes;
use crate::session::Session;

/// Takes the session the `SessionLayer` attached and loads it; a missing
/// layer or a store failure is an opaque 500.
///
/// ```
/// use axum::{Router, routing::get};
/// use covet_session::{MemoryStore, Session, SessionLayer};
///
/// async fn visit(session: Session) -> Result<String, covet_session::Error> {
///     let n: u64 = session.get("visits")?.unwrap_or(0);
///     session.insert("visits", n + 1)?;
///     Ok(format!("visit {n}"))
/// }
/// let app: Router = Router::new().route("/", get(visit)).layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(Error::MissingLayer)?;
        session.ensure_loaded().await?;
        Ok(session)
    }
}

/// Takes the flash messages queued for this visitor (they are shown once).
/// A missing layer or a store failure is an opaque 500.
///
/// ```
/// use axum::{Router, routing::get};
/// use covet_session::{Flashes, MemoryStore, SessionLayer};
///
/// async fn messages(flashes: Flashes) -> String {
///     flashes.iter().map(|f| format!("{}: {}\n", f.level, f.message)).collect()
/// }
/// let app: Router = Router::new().route("/messages", get(messages)).layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Flashes {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        Ok(Flashes::take(&session))
    }
}

/// A masked CSRF token for this response (see
/// [`Session::csrf_token`]); creating the session's secret if it has
/// none. A missing layer or a store failure is an opaque 500.
///
/// ```
/// use axum::{Router, routing::get};
/// use covet_session::{CsrfLayer, CsrfToken, MemoryStore, SessionLayer};
///
/// async fn form(token: CsrfToken) -> String {
///     format!(r#"<input type="hidden" name="csrf_token" value="{token}">"#)
/// }
/// let app: Router = Router::new()
///     .route("/form", get(form))
///     .layer(CsrfLayer::new())
///     .layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// ```
impl<S: Send + Sync> FromRequestParts<S> for crate::csrf::CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        Ok(crate::csrf::CsrfToken(session.csrf_token()?))
    }
}
