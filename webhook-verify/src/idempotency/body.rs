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
