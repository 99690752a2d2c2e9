use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use tower::Service;

use crate::config::SessionConfig;
use crate::id::SessionId;
use crate::manager::{ResponseFuture, SessionLayer};
use crate::session::Session;
use crate::store::SessionStore;

/// Middleware giving each request a [`Session`]; built by [`SessionLayer`].
#[derive(Clone)]
pub struct SessionManager<S> {
    pub(crate) inner: S,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: Arc<SessionConfig>,
}

impl<S> SessionManager<S> {
    /// Wraps `inner` with sessions in `store` and the default configuration.
    pub fn new(inner: S, store: impl SessionStore) -> Self {
        SessionManager {
            inner,
            store: Arc::new(store),
            config: Arc::new(SessionConfig::default()),
        }
    }

    /// A [`SessionLayer`] for `store`.
    pub fn layer(store: impl SessionStore) -> SessionLayer {
        SessionLayer::new(store)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

/// The first cookie named `name` whose value `store` accepts as an id.
fn presented_id<B>(req: &Request<B>, name: &str, store: &dyn SessionStore) -> Option<SessionId> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .find_map(|c| store.parse_id(c.value()))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionManager<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let presented = presented_id(&req, self.config.cookie_name(), &*self.store);
        let session = Session::lazy(self.store.clone(), presented, self.config.idle_timeout());
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session, self.config.clone())
    }
}
