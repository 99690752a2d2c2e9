//! [`ResponseFuture`] of [`HttpCache`](super::HttpCache).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use http_body::Body;

use super::body::HttpCacheBody;

type Inner<B, E> = Pin<Box<dyn Future<Output = Result<Response<HttpCacheBody<B>>, E>> + Send>>;

/// The response future of [`HttpCache`](super::HttpCache): a cache lookup,
/// then the stored response or the origin's.
pub struct ResponseFuture<B: Body, E> {
    inner: Inner<B, E>,
}

impl<B: Body, E> ResponseFuture<B, E> {
    pub(crate) fn new(
        fut: impl Future<Output = Result<Response<HttpCacheBody<B>>, E>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Box::pin(fut),
        }
    }
}

impl<B: Body, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B: Body, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<HttpCacheBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
