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
        let config = SessionConfig::default();
        store.use_cookie_name(config.cookie_name());
        SessionManager {
            inner,
            store: Arc::new(store),
            config: Arc::new(config),
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

/// Every cookie named `name` whose value `store` accepts as an id (a
/// request may carry several: one may have been planted from a sibling
/// domain; the session decides which, if any, to trust).
fn presented_ids<B>(
    req: &Request<B>,
    config: &SessionConfig,
    store: &dyn SessionStore,
) -> Vec<SessionId> {
    let name = config.cookie_name();
    let mut ids = Vec::new();
    for line in req.headers().get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else {
            config.counters.record(crate::stats::Event::MalformedCookie);
            crate::security::security_event!(
                info,
                "malformed_cookie",
                "a Cookie header that is not visible ASCII; ignored"
            );
            continue;
        };
        for c in cookie::Cookie::split_parse(line).filter_map(Result::ok) {
            if c.name() != name {
                continue;
            }
            match store.parse_id(c.value()) {
                Some(id) => ids.push(id),
                None => {
                    config.counters.record(crate::stats::Event::MalformedCookie);
                    crate::security::security_event!(
                        info,
                        "malformed_cookie",
                        length = c.value().len(),
                        "a session cookie that is no id this store issues; a fresh session starts"
                    );
                }
            }
        }
    }
    ids
}

/// The socket peer: axum's `ConnectInfo<SocketAddr>`, or a `SocketAddr`
/// request extension set by another server.
fn peer_ip<B>(req: &Request<B>) -> Option<std::net::IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(addr.ip());
    }
    req.extensions()
        .get::<std::net::SocketAddr>()
        .map(std::net::SocketAddr::ip)
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
        let presented = presented_ids(&req, &self.config, &*self.store);
        let user_agent = req.headers().get(header::USER_AGENT).cloned();
        let client =
            crate::security::client_ip(peer_ip(&req), req.headers(), self.config.trusted_proxies());
        let session = Session::lazy(
            self.store.clone(),
            presented,
            self.config.clone(),
            user_agent,
            client,
        );
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session)
    }
}
