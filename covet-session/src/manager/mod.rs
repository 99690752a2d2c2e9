//! [`SessionLayer`]: tower middleware that gives every request a lazily
//! loaded [`Session`](crate::Session) and saves it after the response.
//!
//! - The cookie (see [`SessionConfig`](crate::SessionConfig)) is read, and an
//!   unloaded handle goes into the request extensions; the store is hit only
//!   if something loads it (the axum extractor, or
//!   [`Session::ensure_loaded`](crate::Session::ensure_loaded)).
//! - After the response, the session is saved only if it changed (or its
//!   expiry is due a refresh), never after a 5xx response. The cookie is
//!   sent only for a new session, a new id or an expiry refresh; a cleared
//!   session gets a removal cookie with the same attributes.
//! - A store failure becomes an opaque `500` and a `tracing` error.
//! - A malformed or unknown cookie starts a fresh session.
//!
//! ```
//! use std::convert::Infallible;
//! use covet_session::{MemoryStore, Session, SessionLayer};
//! use http::{Request, Response, header};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let svc = ServiceBuilder::new()
//!     .layer(SessionLayer::new(MemoryStore::new()))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let session = req.extensions().get::<Session>().unwrap().clone();
//!         session.ensure_loaded().await.unwrap();
//!         session.insert("seen", true).unwrap();
//!         Ok::<_, Infallible>(Response::new(String::from("hi")))
//!     }));
//! let resp = svc.oneshot(Request::new(String::new())).await.unwrap();
//! let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap();
//! assert!(cookie.starts_with("id=") && cookie.contains("HttpOnly"));
//! # });
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub use service::SessionManager;

#[cfg(all(test, feature = "memory"))]
mod tests;
