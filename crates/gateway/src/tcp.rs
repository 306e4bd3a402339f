//! Moving bytes both ways between two streams, with an idle deadline.
//!
//! Half-close is preserved: when one side finishes sending, the other
//! side's write half is shut down (TCP FIN, or TLS close_notify then FIN)
//! and the opposite direction keeps flowing until it ends too, so a reply
//! sent after the request's end is never cut off.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
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
///
/// An idle connection holds no copy buffer: each read lands in a buffer on
/// the stack of the poll, a TLS record's worth, and only what the other side
/// does not take at once is kept on the heap until written, then given back
/// when the reader has nothing more to give (`tokio::io::copy_bidirectional`
/// keeps two 16 KiB buffers for the connection's whole life).
pub async fn pump<A, B>(a: &mut Metered<A>, b: &mut Metered<B>, idle: Duration) -> PumpEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = a.activity.clone();
    let (mut a_to_b, mut b_to_a) = (Half::default(), Half::default());
    let copying = std::future::poll_fn(|cx| {
        let up = a_to_b.poll_copy(cx, &mut *a, &mut *b)?;
        let down = b_to_a.poll_copy(cx, &mut *b, &mut *a)?;
        if up.is_ready() && down.is_ready() {
            Poll::Ready(Ok::<(), io::Error>(()))
        } else {
            Poll::Pending
        }
    });
    tokio::select! {
        result = copying => match result {
            Ok(()) => PumpEnd::Closed,
            Err(e) => PumpEnd::Error(e),
        },
        () = activity.idle_for(idle) => PumpEnd::Idle,
    }
}

/// Largest read: a TLS record's worth, so one read fills one record.
const CHUNK: usize = 16 * 1024;

/// One direction of a pump: read from one side, written to the other, and
/// the writer shut down (FIN, or close_notify then FIN) after the reader's
/// end of stream.
#[derive(Default)]
struct Half {
    /// Bytes read that the writer has not taken yet; no capacity while the
    /// reader is quiet.
    pending: Vec<u8>,
    /// How much of `pending` is written.
    written: usize,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// The reader reached its end of stream.
    read_done: bool,
    /// The writer is shut down: this direction is over.
    done: bool,
}

impl Half {
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        while !self.done {
            if self.written < self.pending.len() {
                let n =
                    ready!(Pin::new(&mut *writer).poll_write(cx, &self.pending[self.written..]))?;
                self.wrote(n)?;
                continue;
            }
            if self.read_done {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.done = true;
                break;
            }
            ready!(self.poll_read_write(cx, reader, writer))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads once into a stack buffer and offers it to the writer at once;
    /// what the writer does not take is kept in `pending`.
    fn poll_read_write<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut chunk = [MaybeUninit::<u8>::uninit(); CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        if Pin::new(&mut *reader).poll_read(cx, &mut buf)?.is_pending() {
            // Nothing more to read for now: send what was written, and
            // hold no buffer while waiting.
            if self.unflushed {
                ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                self.unflushed = false;
            }
            self.pending = Vec::new();
            return Poll::Pending;
        }
        let read = buf.filled();
        if read.is_empty() {
            self.read_done = true;
            return Poll::Ready(Ok(()));
        }
        self.unflushed = true;
        let taken = match Pin::new(&mut *writer).poll_write(cx, read)? {
            Poll::Ready(0) => return Poll::Ready(Err(write_zero())),
            Poll::Ready(n) => n,
            Poll::Pending => 0,
        };
        self.pending.clear();
        self.written = 0;
        self.pending.extend_from_slice(&read[taken..]);
        Poll::Ready(Ok(()))
    }

    /// Records `n` bytes of `pending` written.
    fn wrote(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Err(write_zero());
        }
        self.written += n;
        if self.written == self.pending.len() {
            self.pending.clear();
            self.written = 0;
        }
        Ok(())
    }
}

fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "write zero bytes into the peer")
}
