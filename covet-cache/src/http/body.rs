//! The response body of the HTTP cache layer.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Called with the whole body once a teed response has been read to the end
/// within the size limit.
pub(crate) type OnComplete = Box<dyn FnOnce(Bytes) + Send>;

pin_project! {
    /// The body of a response that passed through
    /// [`HttpCache`](super::HttpCache): a stored body served from the cache,
    /// or the origin's body streamed through (and, when the response is
    /// being stored, copied on the way up to the size limit; a body that
    /// grows past the limit is not stored and keeps streaming).
    pub struct HttpCacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { data: Option<Bytes> },
        Stream { #[pin] inner: B },
        Tee { #[pin] inner: B, tee: Option<Tee> },
    }
}

struct Tee {
    buf: BytesMut,
    limit: usize,
    done: OnComplete,
}

impl<B> HttpCacheBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        HttpCacheBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn stream(inner: B) -> Self {
        HttpCacheBody {
            kind: Kind::Stream { inner },
        }
    }

    pub(crate) fn tee(inner: B, limit: usize, done: OnComplete) -> Self {
        HttpCacheBody {
            kind: Kind::Tee {
                inner,
                tee: Some(Tee {
                    buf: BytesMut::new(),
                    limit,
                    done,
                }),
            },
        }
    }
}

impl<B> fmt::Debug for HttpCacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "cached",
            Kind::Stream { .. } => "stream",
            Kind::Tee { .. } => "stream (storing)",
        };
        f.debug_struct("HttpCacheBody")
            .field("kind", &kind)
            .finish()
    }
}

impl<B> Body for HttpCacheBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Stream { inner } => {
                let frame = ready!(inner.poll_frame(cx));
                Poll::Ready(
                    frame.map(|r| r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))),
                )
            }
            KindProj::Tee { mut inner, tee } => {
                let frame = ready!(inner.as_mut().poll_frame(cx));
                match frame {
                    None => {
                        if let Some(t) = tee.take() {
                            (t.done)(t.buf.freeze());
                        }
                        Poll::Ready(None)
                    }
                    Some(Err(e)) => {
                        // A broken body is never stored.
                        *tee = None;
                        Poll::Ready(Some(Err(e)))
                    }
                    Some(Ok(frame)) => {
                        let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                        if let Some(data) = frame.data_ref() {
                            if let Some(t) = tee.as_mut() {
                                if t.buf.len() + data.len() > t.limit {
                                    *tee = None;
                                } else {
                                    t.buf.extend_from_slice(data);
                                }
                            }
                            // A server that knows the length stops polling
                            // after the last byte: complete now.
                            if inner.is_end_stream()
                                && let Some(t) = tee.take()
                            {
                                (t.done)(t.buf.freeze());
                            }
                        } else {
                            // Trailers are not stored: neither is the response.
                            *tee = None;
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Stream { inner } => inner.is_end_stream(),
            Kind::Tee { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Stream { inner } | Kind::Tee { inner, .. } => inner.size_hint(),
        }
    }
}
