//! The response body the layer hands back, and bounded reading of bodies it must look at.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response returned by [`LongRunning`](crate::LongRunning).
    ///
    /// A response the layer did not need to read (a pass-through response, a `Location` target,
    /// a final GET) streams the inner body untouched. A response it had to read to decide (a
    /// status-monitor body that is final, a resource whose `provisioningState` it checked) yields
    /// the same bytes and trailers from memory. Its error type is the inner body's.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Streaming { #[pin] body: B },
        // Trailers are rare on the bodies the layer reads: boxed, to keep every move small.
        Buffered { data: Option<Bytes>, trailers: Option<Box<HeaderMap>> },
        // A body read partway that turned out not to be a status: what was read, then the rest.
        Resumed { prefix: Option<Bytes>, body: Pin<Box<B>> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn streaming(body: B) -> Self {
        ResponseBody {
            inner: Inner::Streaming { body },
        }
    }

    pub(crate) fn buffered(data: Bytes, trailers: Option<Box<HeaderMap>>) -> Self {
        let data = (!data.is_empty()).then_some(data);
        ResponseBody {
            inner: Inner::Buffered { data, trailers },
        }
    }

    pub(crate) fn resumed(prefix: Bytes, body: Pin<Box<B>>) -> Self {
        let prefix = (!prefix.is_empty()).then_some(prefix);
        ResponseBody {
            inner: Inner::Resumed { prefix, body },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Streaming { body } => body.poll_frame(cx),
            InnerProj::Buffered { data, trailers } => {
                if let Some(data) = data.take() {
                    Poll::Ready(Some(Ok(Frame::data(data))))
                } else {
                    Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
                }
            }
            InnerProj::Resumed { prefix, body } => match prefix.take() {
                Some(prefix) => Poll::Ready(Some(Ok(Frame::data(prefix)))),
                None => body.as_mut().poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Streaming { body } => body.is_end_stream(),
            Inner::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Inner::Resumed { prefix, body } => prefix.is_none() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Streaming { body } => body.size_hint(),
            Inner::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Inner::Resumed { prefix, body } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let hint = body.size_hint();
                let mut sum = SizeHint::new();
                sum.set_lower(hint.lower().saturating_add(extra));
                if let Some(upper) = hint.upper() {
                    sum.set_upper(upper.saturating_add(extra));
                }
                sum
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repr = match &self.inner {
            Inner::Streaming { .. } => "Streaming",
            Inner::Buffered { .. } => "Buffered",
            Inner::Resumed { .. } => "Resumed",
        };
        f.debug_tuple("ResponseBody").field(&repr).finish()
    }
}

/// Frames read in one `poll` before yielding, so a body that is always ready (many tiny chunks,
/// empty frames) cannot monopolise the executor thread.
const FRAMES_PER_POLL: usize = 64;

/// How a bounded read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Complete,
    /// More than the limit arrived; everything read so far is kept.
    TooLarge,
}

/// Accumulates a body up to a limit. Keeps the first chunk as is, so the common single-chunk
/// body is never copied.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    first: Option<Bytes>,
    more: Option<BytesMut>,
    len: usize,
    trailers: Option<Box<HeaderMap>>,
}

impl Collector {
    pub(crate) fn poll_read<B>(
        &mut self,
        mut body: Pin<&mut B>,
        limit: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Read, B::Error>>
    where
        B: Body<Data = Bytes> + ?Sized,
    {
        for _ in 0..FRAMES_PER_POLL {
            if body.is_end_stream() {
                return Poll::Ready(Ok(Read::Complete));
            }
            let Some(frame) = ready!(body.as_mut().poll_frame(cx)) else {
                return Poll::Ready(Ok(Read::Complete));
            };
            match frame?.into_data() {
                Ok(data) => {
                    self.push(data);
                    if self.len > limit {
                        return Poll::Ready(Ok(Read::TooLarge));
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.trailers.get_or_insert_default().extend(trailers);
                    }
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.len = self.len.saturating_add(data.len());
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(_), Some(more)) => more.extend_from_slice(&data),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity(first.len() + data.len());
                more.extend_from_slice(first);
                more.extend_from_slice(&data);
                self.more = Some(more);
            }
        }
    }

    /// The bytes read and the trailers seen.
    pub(crate) fn finish(self) -> (Bytes, Option<Box<HeaderMap>>) {
        let bytes = match (self.more, self.first) {
            (Some(more), _) => more.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        };
        (bytes, self.trailers)
    }
}

/// Reads and discards a body we do not need so the connection can be reused, up to `budget`
/// bytes. Ready when the body ended, failed or went over budget (then it is simply dropped).
pub(crate) fn poll_drain<B>(
    mut body: Pin<&mut B>,
    budget: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    B: Body<Data = Bytes>,
{
    for _ in 0..FRAMES_PER_POLL {
        if body.is_end_stream() {
            return Poll::Ready(());
        }
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                match budget.checked_sub(len) {
                    Some(left) => *budget = left,
                    None => return Poll::Ready(()),
                }
            }
            None | Some(Err(_)) => return Poll::Ready(()),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::future::poll_fn;

    /// A body of the given chunks, one frame each, then trailers.
    struct Chunks(Vec<Frame<Bytes>>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(self.0.remove(0)))
            })
        }
    }

    fn chunks(parts: &[&'static str], trailers: bool) -> Chunks {
        let mut frames: Vec<_> = parts
            .iter()
            .map(|p| Frame::data(Bytes::from_static(p.as_bytes())))
            .collect();
        if trailers {
            let mut t = HeaderMap::new();
            t.insert("x-trailer", http::HeaderValue::from_static("1"));
            frames.push(Frame::trailers(t));
        }
        Chunks(frames)
    }

    async fn collect<B: Body<Data = Bytes> + Unpin>(mut body: B) -> Result<Bytes, B::Error> {
        let mut out = BytesMut::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    }

    #[tokio::test]
    async fn collects_within_the_limit_and_keeps_everything_past_it() {
        let mut body = chunks(&["{\"status\":", "\"Running\"}"], true);
        let mut collector = Collector::default();
        let read = poll_fn(|cx| collector.poll_read(Pin::new(&mut body), 100, cx)).await;
        assert_eq!(read, Ok(Read::Complete));
        let (bytes, trailers) = collector.finish();
        assert_eq!(bytes, "{\"status\":\"Running\"}");
        assert!(trailers.unwrap().contains_key("x-trailer"));

        let mut body = chunks(&["abc", "def", "ghi"], false);
        let mut collector = Collector::default();
        let read = poll_fn(|cx| collector.poll_read(Pin::new(&mut body), 4, cx)).await;
        assert_eq!(read, Ok(Read::TooLarge));
        let (prefix, _) = collector.finish();
        assert_eq!(prefix, "abcdef");
        // Nothing is lost when the rest is handed back behind the prefix.
        let resumed = ResponseBody::resumed(prefix, Box::pin(body));
        assert_eq!(resumed.size_hint().lower(), 6);
        assert_eq!(collect(resumed).await.unwrap(), "abcdefghi");
    }

    #[tokio::test]
    async fn a_single_chunk_is_not_copied() {
        let data = Bytes::from_static(b"{\"status\":\"Succeeded\"}");
        let mut body = Chunks(vec![Frame::data(data.clone())]);
        let mut collector = Collector::default();
        poll_fn(|cx| collector.poll_read(Pin::new(&mut body), 100, cx))
            .await
            .unwrap();
        let (bytes, _) = collector.finish();
        assert_eq!(bytes.as_ptr(), data.as_ptr());
    }

    #[tokio::test]
    async fn buffered_bodies_replay_bytes_and_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", http::HeaderValue::from_static("v"));
        let mut body = ResponseBody::<Chunks>::buffered(
            Bytes::from_static(b"hello"),
            Some(Box::new(trailers)),
        );
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let first = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.into_data().unwrap(), "hello");
        let second = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap();
        assert!(second.into_trailers().unwrap().contains_key("x-t"));
        assert!(body.is_end_stream());
        assert!(poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .is_none());
        let empty = ResponseBody::<Chunks>::buffered(Bytes::new(), None);
        assert!(empty.is_end_stream());
    }

    #[tokio::test]
    async fn drains_within_budget() {
        let mut body = chunks(&["abc", "def"], true);
        let mut budget = 10;
        poll_fn(|cx| poll_drain(Pin::new(&mut body), &mut budget, cx)).await;
        assert_eq!(budget, 4);
        assert!(body.0.is_empty());
        let mut body = chunks(&["abc", "def", "ghi"], false);
        let mut budget = 4;
        poll_fn(|cx| poll_drain(Pin::new(&mut body), &mut budget, cx)).await;
        assert_eq!(body.0.len(), 1, "stops reading once over budget");
    }

    #[tokio::test]
    async fn an_endless_ready_body_yields() {
        struct Endless;
        impl Body for Endless {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
            }
        }
        let mut collector = Collector::default();
        let mut body = Endless;
        let waker = futures_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(collector
            .poll_read(Pin::new(&mut body), 10, &mut cx)
            .is_pending());
        let mut budget = 10;
        assert!(poll_drain(Pin::new(&mut body), &mut budget, &mut cx).is_pending());
    }

    fn futures_waker() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }
}
