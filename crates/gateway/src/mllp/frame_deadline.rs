//! A started MLLP frame must finish within `frame_timeout`.
//!
//! The idle timeout alone lets a peer hold a connection (and its slot)
//! forever by trickling one byte of a frame now and then: every byte is
//! activity. The deadline runs from the moment a frame's start block has
//! been read and the rest has not, whatever arrives meanwhile; it is
//! disarmed when the frame is complete.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use guichet_hl7::{Frame, MllpCodec, MllpError};
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::FramedRead;

/// A frame was started and not finished within the deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("an MLLP frame was started and not finished within frame_timeout ({}s); the peer is too slow or stalled mid-frame", .0.as_secs_f64())]
pub(crate) struct FrameTimedOut(pub Duration);

/// The deadline of the frame being read on one direction of a connection.
pub(crate) struct FrameDeadline {
    timeout: Duration,
    /// Armed while a frame is open; allocated once, at the first frame
    /// that does not arrive in one read.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

/// What one read of the next frame gives.
pub(crate) type NextFrame = Result<Option<Result<Frame, MllpError>>, FrameTimedOut>;

impl FrameDeadline {
    pub fn new(timeout: Duration) -> Self {
        FrameDeadline {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// The next frame (or end of stream, or framing error), unless the
    /// frame it belongs to was started more than `timeout` ago.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        frames: &mut FramedRead<R, MllpCodec>,
    ) -> NextFrame {
        std::future::poll_fn(|cx| self.poll_next(cx, frames)).await
    }

    fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut FramedRead<R, MllpCodec>,
    ) -> Poll<NextFrame> {
        if let Poll::Ready(next) = frames.poll_next_unpin(cx) {
            // A frame begun behind this one gets its own deadline.
            self.armed = false;
            return Poll::Ready(Ok(next));
        }
        if !frames.decoder().in_frame() {
            self.armed = false;
            return Poll::Pending;
        }
        self.arm();
        match self.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.armed = false;
                Poll::Ready(Err(FrameTimedOut(self.timeout)))
            }
            _ => Poll::Pending,
        }
    }

    /// Starts the clock when a frame has just opened.
    fn arm(&mut self) {
        if self.armed {
            return;
        }
        self.armed = true;
        let at = Instant::now() + self.timeout;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }
}
