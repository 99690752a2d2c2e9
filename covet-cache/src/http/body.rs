//! The response body of the HTTP cache layer, and the task that reads an
//! origin body being stored.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{Notify, mpsc};

/// Called with the whole body once a stored response has been read to the
/// end within the size limit.
pub(crate) type OnComplete = Box<dyn FnOnce(Bytes) + Send>;

/// Once the response is no longer being stored, the reading task stays at
/// most this many bytes ahead of the client.
const AHEAD: usize = 64 * 1024;

pin_project! {
    /// The body of a response that passed through
    /// [`HttpCache`](super::HttpCache): a stored body served from the
    /// cache, the origin's body streamed through, or the origin's body
    /// being stored: read by the cache at the origin's pace (so a slow or
    /// vanished client never holds back the store, nor the requests
    /// waiting for it) and handed to the client as it arrives.
    pub struct HttpCacheBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Full { data: Option<Bytes> },
        Stream { #[pin] inner: B },
        Driven { rx: mpsc::UnboundedReceiver<Result<Frame<Bytes>, B::Error>>, flow: Arc<Flow>, hint: SizeHint, done: bool },
    }
}

/// How far the reading task is ahead of the client.
#[derive(Debug, Default)]
struct Flow {
    queued: AtomicUsize,
    read: Notify,
}

impl<B: Body> HttpCacheBody<B> {
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
}

impl<B> HttpCacheBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
    /// Spawns the task that reads `inner` to its end on `runtime`, calls
    /// `done` with the whole body if it stayed within `limit` bytes and
    /// had no trailers, and streams every frame to the returned body. The
    /// task goes on when the client leaves, while the body is still being
    /// stored.
    pub(crate) fn driven(
        inner: B,
        limit: usize,
        done: OnComplete,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let hint = inner.size_hint();
        let (tx, rx) = mpsc::unbounded_channel();
        let flow = Arc::new(Flow::default());
        runtime.spawn(drive(inner, limit, done, tx, flow.clone()));
        HttpCacheBody {
            kind: Kind::Driven {
                rx,
                flow,
                hint,
                done: false,
            },
        }
    }
}

async fn drive<B>(
    inner: B,
    limit: usize,
    done: OnComplete,
    tx: mpsc::UnboundedSender<Result<Frame<Bytes>, B::Error>>,
    flow: Arc<Flow>,
) where
    B: Body,
{
    let mut inner = std::pin::pin!(inner);
    let mut stored: Option<(BytesMut, OnComplete)> = Some((BytesMut::new(), done));
    loop {
        let frame = poll_fn(|cx| inner.as_mut().poll_frame(cx)).await;
        let frame = match frame {
            None => break,
            Some(Err(e)) => {
                // A broken body is never stored.
                let _ = tx.send(Err(e));
                return;
            }
            Some(Ok(frame)) => frame.map_data(|mut d| d.copy_to_bytes(d.remaining())),
        };
        let len = frame.data_ref().map_or(0, Bytes::len);
        match (&mut stored, frame.data_ref()) {
            (Some((buf, _)), Some(data)) => {
                if buf.len() + data.len() > limit {
                    stored = None;
                } else {
                    buf.extend_from_slice(data);
                }
            }
            // Trailers are not stored: neither is the response.
            (Some(_), None) => stored = None,
            (None, _) => {}
        }
        flow.queued.fetch_add(len, Ordering::AcqRel);
        if tx.send(Ok(frame)).is_err() && stored.is_none() {
            // Nobody reads it and nothing stores it.
            return;
        }
        if stored.is_none() {
            // Streaming through: keep pace with the client.
            loop {
                let read = flow.read.notified();
                if flow.queued.load(Ordering::Acquire) <= AHEAD {
                    break;
                }
                tokio::select! {
                    () = read => {}
                    () = tx.closed() => return,
                }
            }
        }
    }
    if let Some((buf, done)) = stored {
        done(buf.freeze());
    }
}

impl<B: Body> fmt::Debug for HttpCacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "cached",
            Kind::Stream { .. } => "stream",
            Kind::Driven { .. } => "stream (storing)",
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
            KindProj::Driven { rx, flow, done, .. } => {
                let item = ready!(rx.poll_recv(cx));
                match &item {
                    Some(Ok(frame)) => {
                        let len = frame.data_ref().map_or(0, Bytes::len);
                        flow.queued.fetch_sub(len, Ordering::AcqRel);
                        flow.read.notify_one();
                    }
                    Some(Err(_)) | None => *done = true,
                }
                Poll::Ready(item)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Stream { inner } => inner.is_end_stream(),
            Kind::Driven { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Stream { inner } => inner.size_hint(),
            Kind::Driven { hint, .. } => *hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    type Chunks = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
    >;

    fn chunks(n: usize, size: usize) -> Chunks {
        let frames: Vec<_> = (0..n)
            .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; size]))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn the_store_completes_without_the_client_reading() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let body = HttpCacheBody::driven(
            chunks(4, 1000),
            1 << 20,
            Box::new(move |b| {
                let _ = tx.send(b.len());
            }),
            &tokio::runtime::Handle::current(),
        );
        // Never read, then dropped: the store still gets everything.
        assert_eq!(rx.await.unwrap(), 4000);
        drop(body);
    }

    #[tokio::test]
    async fn the_client_gets_every_frame_and_a_large_body_is_not_stored() {
        let stored = Arc::new(AtomicUsize::new(0));
        let s = stored.clone();
        let body = HttpCacheBody::driven(
            chunks(100, 4096),
            64 * 1024,
            Box::new(move |b| {
                s.store(b.len() + 1, Ordering::SeqCst);
            }),
            &tokio::runtime::Handle::current(),
        );
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 100 * 4096);
        assert_eq!(&all[..1], b"a");
        assert_eq!(
            stored.load(Ordering::SeqCst),
            0,
            "over the limit: not stored"
        );
    }

    #[tokio::test]
    async fn streaming_through_stops_when_the_client_leaves() {
        let body = HttpCacheBody::driven(
            chunks(10_000, 4096),
            1024,
            Box::new(|_| panic!("too large to store")),
            &tokio::runtime::Handle::current(),
        );
        drop(body);
        tokio::task::yield_now().await;
    }
}
