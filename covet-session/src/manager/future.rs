use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response, StatusCode, header};
use pin_project_lite::pin_project;

use crate::config::SessionConfig;
use crate::error::Result;
use crate::session::{SaveOutcome, Session};

type SaveFuture = Pin<Box<dyn Future<Output = Result<SaveOutcome>> + Send>>;

pin_project! {
    /// Response future of [`SessionManager`](crate::manager::SessionManager):
    /// runs the inner service, then saves the session and sets the cookie.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        config: Arc<SessionConfig>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] fut: F, session: Option<Session> },
        Saving { save: SaveFuture, response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(fut: F, session: Session, config: Arc<SessionConfig>) -> Self {
        ResponseFuture {
            state: State::Inner {
                fut,
                session: Some(session),
            },
            config,
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
                    let response = ready!(fut.poll(cx))?;
                    let session = session.take().expect("polled after completion");
                    // Unused sessions cost nothing; never save after a 5xx.
                    if !session.is_loaded() || response.status().is_server_error() {
                        return Poll::Ready(Ok(response));
                    }
                    let save: SaveFuture = Box::pin(async move { session.save().await });
                    this.state.set(State::Saving {
                        save,
                        response: Some(response),
                    });
                }
                StateProj::Saving { save, response } => {
                    let outcome = ready!(save.as_mut().poll(cx));
                    let mut response = response.take().expect("polled after completion");
                    let cookie = match outcome {
                        Err(e) => {
                            e.log("session store failed; answering 500");
                            return Poll::Ready(Ok(internal_error()));
                        }
                        Ok(SaveOutcome::Created { id } | SaveOutcome::Refreshed { id }) => {
                            Some(this.config.set_cookie_value(id.expose()))
                        }
                        Ok(SaveOutcome::Deleted) => Some(this.config.removal_cookie().to_string()),
                        Ok(_) => None,
                    };
                    if let Some(cookie) = cookie {
                        match HeaderValue::try_from(cookie) {
                            Ok(v) => {
                                response.headers_mut().append(header::SET_COOKIE, v);
                            }
                            Err(_) => {
                                tracing::error!(
                                    cookie = this.config.cookie_name(),
                                    "session cookie is not a valid header value; answering 500"
                                );
                                return Poll::Ready(Ok(internal_error()));
                            }
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

fn internal_error<B: Default>() -> Response<B> {
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}
