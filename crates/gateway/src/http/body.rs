//! Bodies streamed through the proxy, frame by frame, never gathered: the
//! request's is counted and cut at the route's limit, the response's is
//! counted and reports the request once it ends or is dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::clock::HeadClock;
use crate::upstream::BoxError;

/// The request body went over the route's `max_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("request body over {0} bytes")]
pub struct TooLarge(pub u64);

/// The client's request body could not be read (malformed chunked
/// encoding, a connection cut mid-body): marks the failure as the
/// client's, so it is answered 400 and never counted against the upstream.
#[derive(Debug, thiserror::Error)]
#[error("request body from the client: {0}")]
pub struct ClientBody(#[source] pub hyper::Error);

/// A request body that counts its bytes and fails past `limit`. Past it,
/// the rest of the client's body is drained (within bounds) so the client
/// can read the 413 guichet answers.
pub struct Capped {
    inner: Option<Incoming>,
    limit: u64,
    seen: Arc<AtomicU64>,
    heads: Arc<HeadClock>,
    /// Told once the body has been read whole (or failed).
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Completes once a request's body has been read whole (or failed); at
/// once for an empty body.
pub struct Sent(Option<tokio::sync::oneshot::Receiver<()>>);

impl Sent {
    pub async fn wait(self) {
        if let Some(rx) = self.0 {
            let _ = rx.await;
        }
    }
}

/// The request body as the upstream gets it: none for an empty one (no
/// allocation, nothing to count, sent already), else counted and capped
/// at `limit` (see [`Capped`]), its bytes added to `seen`.
pub fn forwarded(
    inner: Incoming,
    limit: u64,
    seen: impl FnOnce() -> Arc<AtomicU64>,
    heads: &Arc<HeadClock>,
) -> (crate::upstream::Body, Sent) {
    if inner.is_end_stream() {
        // A zero-sized body: boxing it allocates nothing.
        let empty = http_body_util::Empty::new().map_err(|never| match never {});
        return (empty.boxed_unsync(), Sent(None));
    }
    let (capped, sent) = Capped::new(inner, limit, seen(), heads.clone());
    (capped.boxed_unsync(), sent)
}

impl Capped {
    pub fn new(
        inner: Incoming,
        limit: u64,
        seen: Arc<AtomicU64>,
        heads: Arc<HeadClock>,
    ) -> (Self, Sent) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // An empty body may never be polled: it is sent already.
        let sent = (!inner.is_end_stream()).then_some(tx);
        let capped = Capped {
            inner: Some(inner),
            limit,
            seen,
            heads,
            sent,
        };
        (capped, Sent(Some(rx)))
    }

    fn sent(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl Body for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(TooLarge(this.limit)))));
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    let total = this.seen.fetch_add(n, Ordering::Relaxed) + n;
                    if total > this.limit {
                        if let Some(rest) = this.inner.take() {
                            drain(rest, Some(&this.heads));
                        }
                        this.sent();
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.limit)))));
                    }
                }
                if this.inner.as_ref().is_none_or(Body::is_end_stream) {
                    this.sent();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.sent();
                Poll::Ready(Some(Err(Box::new(ClientBody(e)))))
            }
            Poll::Ready(None) => {
                this.sent();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(SizeHint::default, Body::size_hint)
    }
}

/// Called once with the response body's byte count and whether it was
/// sent whole.
pub trait OnEnd: Send + 'static {
    fn ended(self, bytes: u64, complete: bool);
}

/// A response body that counts its bytes and calls `on_end` when it ends,
/// fails, or is dropped by a client that went away.
pub struct Tracked<B, E: OnEnd> {
    inner: B,
    bytes: u64,
    /// A body empty from the start may never be polled: dropping it is
    /// its normal end.
    empty: bool,
    on_end: Option<E>,
}

impl<B: Body, E: OnEnd> Tracked<B, E> {
    pub fn new(inner: B, on_end: E) -> Self {
        Tracked {
            empty: inner.is_end_stream(),
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }
}

impl<B, E: OnEnd> Tracked<B, E> {
    fn finish(&mut self, complete: bool) {
        if let Some(on_end) = self.on_end.take() {
            on_end.ended(self.bytes, complete);
        }
    }
}

impl<B, E: OnEnd> Drop for Tracked<B, E> {
    fn drop(&mut self) {
        self.finish(self.empty);
    }
}

impl<B, E> Body for Tracked<B, E>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    E: OnEnd + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads and discards what is left of a refused request's body, within
/// bounds, so the client can finish sending and read the answer: without
/// it HTTP/2 resets the stream and HTTP/1.1 closes the connection under a
/// client still uploading.
pub(crate) fn drain(mut body: Incoming, heads: Option<&Arc<HeadClock>>) {
    use http_body::Body as _;
    if body.is_end_stream() {
        return;
    }
    // The connection is still busy with this request while its body comes
    // in: its bytes are no new request head.
    let busy = heads.map(|h| {
        h.hold();
        h.clone()
    });
    tokio::spawn(async move {
        let mut left: u64 = DRAIN_BYTES;
        let reading = async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                match left.checked_sub(n) {
                    Some(rest) => left = rest,
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
        if let Some(heads) = busy {
            heads.response();
        }
    });
}

/// At most this much of a refused body is read before giving up on it.
const DRAIN_BYTES: u64 = 4 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);
