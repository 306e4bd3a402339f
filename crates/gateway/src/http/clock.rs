//! The head clock: how long a client has been sending a request head,
//! so one that starts a request and stalls is cut at `header_timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::stream::Stream;
use crate::tcp::Metered;

/// When a request head started arriving and has not been read whole yet.
///
/// The clock runs from the connection's start until its first request,
/// and again from the first byte after each response until the next
/// request: a client idle between requests is `idle_timeout`'s business,
/// one that starts a request and stalls is cut at `header_timeout`, as
/// nginx's `client_header_timeout` does. On HTTP/2 it runs until the first
/// request only (PINGs and other frames are not request heads).
pub(crate) struct HeadClock {
    start: std::time::Instant,
    /// Milliseconds since `start` + 1 when a head is pending; 0 when none.
    pending: AtomicU64,
    inflight: AtomicU64,
    /// Set on HTTP/2 once the first request arrived: the clock stops.
    done: std::sync::atomic::AtomicBool,
    h2: bool,
}

impl HeadClock {
    pub(super) fn new(h2: bool) -> Self {
        HeadClock {
            start: std::time::Instant::now(),
            pending: AtomicU64::new(1),
            inflight: AtomicU64::new(0),
            done: std::sync::atomic::AtomicBool::new(false),
            h2,
        }
    }

    fn now_mark(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Bytes came from the client.
    pub(super) fn bytes(&self) {
        if self.inflight.load(Ordering::Relaxed) == 0
            && !self.done.load(Ordering::Relaxed)
            && self.pending.load(Ordering::Relaxed) == 0
        {
            let _ = self.pending.compare_exchange(
                0,
                self.now_mark(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// A request head was read whole.
    pub(super) fn request(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
        if self.h2 {
            self.done.store(true, Ordering::Relaxed);
        }
    }

    /// The connection is busy with a request's body a while longer: its
    /// bytes are no new request head.
    pub(super) fn hold(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    /// A response ended.
    pub(super) fn response(&self) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Completes once a pending head has waited `timeout`.
    pub(super) async fn overdue(&self, timeout: Duration) {
        loop {
            let pending = self.pending.load(Ordering::Relaxed);
            if pending == 0 || self.done.load(Ordering::Relaxed) {
                // Nothing pending: look again a timeout later.
                tokio::time::sleep(timeout).await;
                continue;
            }
            let since = Duration::from_millis(pending - 1);
            let deadline = self.start + since + timeout;
            if std::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The client side's I/O, telling the head clock when bytes arrive.
pub(super) struct HeadWatch {
    pub(super) inner: Metered<Stream>,
    pub(super) clock: Arc<HeadClock>,
}

impl tokio::io::AsyncRead for HeadWatch {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.bytes();
        }
        poll
    }
}

impl tokio::io::AsyncWrite for HeadWatch {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
