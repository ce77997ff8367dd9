//! Body types of the layer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};

/// The request body the inner service sees: the buffered body of a keyed
/// request, or the original body, untouched and unbuffered, of a request the
/// layer does not handle.
pub type RequestBody<B> = Either<Full<Bytes>, B>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body: the inner service's own body (passed through, or the
/// rest of a body too large to store after its first bytes), or a buffered
/// (stored or replayed) body.
pub struct IdempotencyBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Full(Full<Bytes>),
    Inner {
        head: Option<Bytes>,
        rest: Pin<Box<B>>,
    },
}

impl<B> std::fmt::Debug for IdempotencyBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Full(_) => "IdempotencyBody::Buffered",
            Kind::Inner { .. } => "IdempotencyBody::Inner",
        })
    }
}

impl<B> IdempotencyBody<B> {
    pub(crate) fn full(b: Bytes) -> Self {
        Self {
            kind: Kind::Full(Full::new(b)),
        }
    }

    pub(crate) fn inner(rest: B) -> Self {
        Self::prefixed(None, Box::pin(rest))
    }

    pub(crate) fn prefixed(head: Option<Bytes>, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Inner { head, rest },
        }
    }
}

impl<B> Body for IdempotencyBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Every field is `Unpin` (the inner body is boxed), so no projection.
        match &mut self.get_mut().kind {
            Kind::Full(f) => Pin::new(f).poll_frame(cx).map_err(|e| match e {}),
            Kind::Inner { head, rest } => {
                if let Some(h) = head.take() {
                    return Poll::Ready(Some(Ok(Frame::data(h))));
                }
                rest.as_mut().poll_frame(cx).map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(f) => f.is_end_stream(),
            Kind::Inner { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(f) => f.size_hint(),
            Kind::Inner { head, rest } => {
                let extra = head
                    .as_ref()
                    .map_or(0, |h| u64::try_from(h.len()).unwrap_or(u64::MAX));
                let inner = rest.size_hint();
                let mut s = SizeHint::new();
                s.set_lower(inner.lower().saturating_add(extra));
                if let Some(u) = inner.upper() {
                    s.set_upper(u.saturating_add(extra));
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn next_data<B: Body<Data = Bytes> + Unpin>(b: &mut B) -> Bytes
    where
        B::Error: std::fmt::Debug,
    {
        match b.frame().await {
            Some(Ok(f)) => f.into_data().unwrap_or_default(),
            other => panic!("no data frame: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }

    /// A buffered (stored or replayed) body reports its exact size and is
    /// at its end only once sent: a server trusting `is_end_stream` or the
    /// size hint must not cut the response short.
    #[tokio::test]
    async fn a_buffered_body_reports_its_size_and_its_end() {
        let mut b = IdempotencyBody::<Full<Bytes>>::full(Bytes::from_static(b"hello"));
        assert_eq!(format!("{b:?}"), "IdempotencyBody::Buffered");
        assert!(!b.is_end_stream());
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(next_data(&mut b).await, "hello");
        assert!(b.is_end_stream());
        assert!(IdempotencyBody::<Full<Bytes>>::full(Bytes::new()).is_end_stream());
    }

    /// A body sent on after its first bytes were read (too large to store)
    /// sends that head first, counts it in the size hint, and is not at its
    /// end while the head or the rest is still to come.
    #[tokio::test]
    async fn a_prefixed_body_sends_and_counts_its_head_first() {
        let rest = Box::pin(Full::new(Bytes::from_static(b"world")));
        let mut b = IdempotencyBody::prefixed(Some(Bytes::from_static(b"hello ")), rest);
        assert_eq!(format!("{b:?}"), "IdempotencyBody::Inner");
        assert!(!b.is_end_stream());
        assert_eq!(b.size_hint().exact(), Some(11));
        assert_eq!(next_data(&mut b).await, "hello ");
        assert!(!b.is_end_stream());
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(next_data(&mut b).await, "world");
        assert!(b.is_end_stream());
        // A head before a rest that is already finished.
        let done = Box::pin(Full::new(Bytes::new()));
        let mut h = IdempotencyBody::prefixed(Some(Bytes::from_static(b"x")), done);
        assert!(!h.is_end_stream());
        assert_eq!(h.size_hint().exact(), Some(1));
        assert_eq!(next_data(&mut h).await, "x");
        assert!(h.is_end_stream());
        // No head: the inner body as it is.
        let inner = IdempotencyBody::inner(Full::new(Bytes::from_static(b"abc")));
        assert!(!inner.is_end_stream());
        assert_eq!(inner.size_hint().exact(), Some(3));
    }
}
