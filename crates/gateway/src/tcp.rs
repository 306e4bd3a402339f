//! Moving bytes both ways between two streams, with an idle deadline.
//!
//! Half-close is preserved: when one side finishes sending, the other
//! side's write half is shut down (TCP FIN, or TLS close_notify then FIN)
//! and the opposite direction keeps flowing until it ends too, so a reply
//! sent after the request's end is never cut off.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Time of the last byte seen in either direction.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Completes once no byte has moved for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that counts the bytes read from it and marks activity.
pub struct Metered<S> {
    inner: S,
    activity: Arc<Activity>,
    read_bytes: Counter,
    /// Bytes read from this stream over the connection's life.
    pub total: u64,
}

impl<S> Metered<S> {
    pub fn new(inner: S, activity: Arc<Activity>, read_bytes: Counter) -> Self {
        Metered {
            inner,
            activity,
            read_bytes,
            total: 0,
        }
    }
}

impl<S> Metered<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.read_bytes.inc_by(n as u64);
            this.total += n as u64;
            this.activity.touch();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            // A peer that only downloads is not idle.
            this.activity.touch();
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How a pumped connection ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// Both directions reached end of stream.
    Closed,
    Idle,
    /// An `mllp` route's framing went wrong: `reason` is the fixed log
    /// label (`frame_too_large`, `truncated`, `frame_timeout`...), `detail`
    /// what happened, in words.
    Frame {
        reason: &'static str,
        detail: String,
    },
    Error(io::Error),
}

/// Copies both ways until both directions end, an error, or `idle` passes
/// with no byte in either direction.
pub async fn pump<A, B>(a: &mut Metered<A>, b: &mut Metered<B>, idle: Duration) -> PumpEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = a.activity.clone();
    tokio::select! {
        result = tokio::io::copy_bidirectional_with_sizes(a, b, BUFFER, BUFFER) => match result {
            Ok(_) => PumpEnd::Closed,
            Err(e) => PumpEnd::Error(e),
        },
        () = activity.idle_for(idle) => PumpEnd::Idle,
    }
}

/// Per-direction buffer: a TLS record's worth, so one read fills one record.
const BUFFER: usize = 16 * 1024;
