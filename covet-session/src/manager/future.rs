use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use pin_project_lite::pin_project;

use crate::error::Result;
use crate::session::{CookieAction, SaveOutcome, Session};

type SaveFuture = Pin<Box<dyn Future<Output = Result<SaveOutcome>> + Send>>;

pin_project! {
    /// Response future of [`SessionManager`](crate::manager::SessionManager):
    /// runs the inner service, then saves the session and sets the cookie.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] fut: F, session: Option<Session> },
        Saving { save: SaveFuture, response: Option<Response<B>>, session: Session },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(fut: F, session: Session) -> Self {
        ResponseFuture {
            state: State::Inner {
                fut,
                session: Some(session),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { fut, session } => {
                    let mut response = ready!(fut.poll(cx))?;
                    let session = session.take().expect("polled after completion");
                    // Unused sessions cost nothing.
                    if !session.is_loaded() {
                        return Poll::Ready(Ok(response));
                    }
                    // The response depends on the cookie: no shared cache
                    // may give it to another client.
                    add_vary_cookie(response.headers_mut());
                    if response.status().is_server_error() {
                        // Never save after a 5xx; a save the handler did
                        // itself still gets its cookie.
                        let action = session.take_cookie_action();
                        return Poll::Ready(Ok(finish(response, action, &session)));
                    }
                    let saving = session.clone();
                    let save: SaveFuture = Box::pin(async move { saving.save().await });
                    this.state.set(State::Saving {
                        save,
                        response: Some(response),
                        session,
                    });
                }
                StateProj::Saving {
                    save,
                    response,
                    session,
                } => {
                    let outcome = ready!(save.as_mut().poll(cx));
                    let response = response.take().expect("polled after completion");
                    if let Err(e) = outcome {
                        e.log("session store failed; answering 500");
                        return Poll::Ready(Ok(internal_error()));
                    }
                    let action = session.take_cookie_action();
                    return Poll::Ready(Ok(finish(response, action, session)));
                }
            }
        }
    }
}

/// Sets or removes the cookie as the saves called for; a response that
/// carries the session cookie is never stored by a cache.
fn finish<B: Default>(
    mut response: Response<B>,
    action: Option<CookieAction>,
    session: &Session,
) -> Response<B> {
    let config = session.config();
    let cookie = match action {
        None => return response,
        Some(CookieAction::Set(id)) => config.set_cookie_value(id.expose()),
        Some(CookieAction::Remove) => config.removal_cookie().to_string(),
    };
    let Ok(value) = HeaderValue::try_from(cookie) else {
        tracing::error!(
            cookie = config.cookie_name(),
            "session cookie is not a valid header value; answering 500"
        );
        return internal_error();
    };
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, value);
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if session.logged_out() && config.clear_site_data() {
        headers.insert(
            HeaderName::from_static("clear-site-data"),
            HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
        );
    }
    response
}

/// Adds `Cookie` to `Vary`, merged with what is there.
fn add_vary_cookie(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|n| n.trim() == "*" || n.trim().eq_ignore_ascii_case("cookie"))
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
}

fn internal_error<B: Default>() -> Response<B> {
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
