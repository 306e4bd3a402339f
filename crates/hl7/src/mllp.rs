//! MLLP framing: `0x0B <message> 0x1C 0x0D`, as a `tokio_util` codec.
//!
//! The codec never holds more than one frame's worth of bytes: noise before a
//! start block is dropped as it arrives (and counted), and a frame that grows
//! past the limit is refused at once, without waiting for its end. Pipelined
//! frames come out one at a time. No I/O here: the caller owns the socket.
//!
//! A start block inside a frame (before its end block) means the sender
//! gave that frame up and began another: what came before it is an
//! interrupted frame, never a message. The codec drops it, reports it with
//! the next frame ([`Frame::interrupted`]) and carries on from the new
//! start block, as MLLP receivers commonly do; the connection stays up.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Opens a frame.
pub const START_BLOCK: u8 = 0x0B;
/// First byte of the end sequence; alone, it is message content.
pub const END_BLOCK: u8 = 0x1C;
/// Second byte of the end sequence.
pub const CARRIAGE_RETURN: u8 = 0x0D;
/// Largest message accepted unless configured otherwise: big enough for
/// reports with embedded PDFs, small enough to bound memory per connection.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The bytes a frame adds around its payload: start block, end block, CR.
const FRAMING: usize = 3;

/// One complete MLLP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message bytes between the start block and the end block, untouched.
    pub payload: Bytes,
    /// Bytes discarded before this frame's start block (noise, keep-alives, a
    /// peer speaking another protocol). Reported, never forwarded.
    pub discarded: usize,
    /// Frames cut short by a start block (0x0B) before their end block, since
    /// the previous frame: a frame error to report; never forwarded.
    pub interrupted: usize,
    /// The bytes of those interrupted frames, start blocks included.
    pub interrupted_bytes: usize,
}

/// Why a stream of MLLP frames cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    /// The frame grew past the limit: the connection must be closed.
    #[error("MLLP frame larger than the limit of {limit} bytes (max frame size); close the connection or raise the limit")]
    TooLarge {
        /// The payload limit in force, in bytes.
        limit: usize,
    },
    /// The peer closed the connection in the middle of a frame: that partial
    /// message must never be acknowledged or forwarded.
    #[error("peer closed the connection in the middle of an MLLP frame ({buffered} bytes after the start block, no end block); the partial message is dropped")]
    Truncated {
        /// Bytes received after the start block.
        buffered: usize,
    },
    /// Bytes without any start block before end of stream.
    #[error("{bytes} bytes without an MLLP start block (0x0B) before the end of the stream; is the peer speaking MLLP?")]
    TrailingGarbage {
        /// How many bytes were dropped since the last frame.
        bytes: usize,
    },
    /// Reading or writing the stream failed, or a payload cannot be framed.
    #[error("MLLP stream")]
    Io(#[from] std::io::Error),
}

/// For callers whose streams speak `io::Error` (a `Framed` driven by hand,
/// a relay): an I/O failure comes back as it was, and a framing error
/// becomes an `Other` error that carries the [`MllpError`] and its message,
/// so it can still be told apart with `get_ref().downcast_ref()`.
impl From<MllpError> for std::io::Error {
    fn from(error: MllpError) -> Self {
        match error {
            MllpError::Io(io) => io,
            framing => std::io::Error::other(framing),
        }
    }
}

/// Decoder and encoder of MLLP frames, with a bound on the frame size.
#[derive(Debug, Clone)]
pub struct MllpCodec {
    /// Largest payload accepted, in bytes (framing bytes not counted).
    max_frame: usize,
    /// Where the search for the end sequence resumes, as an index into the
    /// buffer, so a frame arriving in small pieces is scanned once in all.
    /// Zero while looking for a start block; once one is found the frame
    /// always begins at index 0.
    scan: usize,
    /// Bytes dropped since the last frame, reported with the next one.
    discarded: usize,
    /// Frames interrupted by a start block since the last frame.
    interrupted: usize,
    /// Their bytes.
    interrupted_bytes: usize,
}

impl MllpCodec {
    /// A codec refusing payloads longer than `max_frame` bytes. Between
    /// reads the buffer then holds at most `max_frame + 2` bytes: a start
    /// block, the content so far and an end block waiting for its CR.
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            scan: 0,
            discarded: 0,
            interrupted: 0,
            interrupted_bytes: 0,
        }
    }

    /// The largest payload accepted, in bytes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether a frame has begun (its start block was read) and has not
    /// ended: the caller bounds how long that may last.
    pub fn in_frame(&self) -> bool {
        self.scan > 0
    }

    /// Drops everything before the first start block. Returns whether a frame
    /// has begun (then it starts at `buf[0]`).
    fn hunt_start(&mut self, buf: &mut BytesMut) -> bool {
        let start = buf.iter().position(|&b| b == START_BLOCK);
        let garbage = start.unwrap_or(buf.len());
        buf.advance(garbage);
        self.discarded = self.discarded.saturating_add(garbage);
        if start.is_some() {
            self.scan = 1;
        }
        start.is_some()
    }

    /// Cuts the frame whose end block is at `buf[end]` off the buffer.
    fn take_frame(&mut self, buf: &mut BytesMut, end: usize) -> Result<Frame, MllpError> {
        if end - 1 > self.max_frame {
            return Err(self.too_large(buf));
        }
        let mut framed = buf.split_to(end + 2);
        framed.advance(1);
        framed.truncate(end - 1);
        self.scan = 0;
        Ok(Frame {
            payload: framed.freeze(),
            discarded: std::mem::take(&mut self.discarded),
            interrupted: std::mem::take(&mut self.interrupted),
            interrupted_bytes: std::mem::take(&mut self.interrupted_bytes),
        })
    }

    /// Drops the unfinished frame before the start block at `buf[at]`: the
    /// new frame begins there. An interrupted frame already over the limit
    /// is refused as too large, as it would have been had it arrived in
    /// pieces.
    fn interrupt(&mut self, buf: &mut BytesMut, at: usize) -> Result<(), MllpError> {
        if at - 1 > self.max_frame {
            return Err(self.too_large(buf));
        }
        buf.advance(at);
        self.interrupted = self.interrupted.saturating_add(1);
        self.interrupted_bytes = self.interrupted_bytes.saturating_add(at);
        self.scan = 1;
        Ok(())
    }

    /// Remembers how far an unfinished frame was searched, or refuses it when
    /// it is already certain to exceed the limit.
    fn wait_for_end(&mut self, buf: &mut BytesMut) -> Result<(), MllpError> {
        // A trailing end block may still be completed by a CR: not content yet.
        let pending_end = usize::from(buf.last() == Some(&END_BLOCK));
        if buf.len() - 1 - pending_end > self.max_frame {
            return Err(self.too_large(buf));
        }
        self.scan = (buf.len() - 1).max(1);
        Ok(())
    }

    /// The rest of an oversized frame cannot be told from a new one: drop it
    /// all, and the caller closes the connection.
    fn too_large(&mut self, buf: &mut BytesMut) -> MllpError {
        self.reset(buf);
        MllpError::TooLarge {
            limit: self.max_frame,
        }
    }

    fn reset(&mut self, buf: &mut BytesMut) {
        buf.clear();
        self.scan = 0;
        self.discarded = 0;
        self.interrupted = 0;
        self.interrupted_bytes = 0;
    }
}

impl Default for MllpCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for MllpCodec {
    type Item = Frame;
    type Error = MllpError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, MllpError> {
        if buf.first() != Some(&START_BLOCK) {
            // Only a caller that emptied the buffer under us gets here mid-frame.
            self.scan = 0;
        }
        if self.scan == 0 && !self.hunt_start(buf) {
            return Ok(None);
        }
        loop {
            match find_boundary(buf, self.scan) {
                Some(Boundary::End(end)) => return self.take_frame(buf, end).map(Some),
                Some(Boundary::Start(at)) => self.interrupt(buf, at)?,
                None => return self.wait_for_end(buf).map(|()| None),
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, MllpError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if self.scan > 0 {
            let buffered = buf.len().saturating_sub(1);
            self.reset(buf);
            return Err(MllpError::Truncated { buffered });
        }
        match std::mem::take(&mut self.discarded) {
            0 => Ok(None),
            bytes => Err(MllpError::TrailingGarbage { bytes }),
        }
    }
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = MllpError;

    /// Refuses what our own decoder would refuse: a payload over the limit,
    /// or one holding the end sequence or a start block, which the peer
    /// would read as two frames or as an interrupted one.
    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        if payload.len() > self.max_frame {
            return Err(MllpError::TooLarge {
                limit: self.max_frame,
            });
        }
        if let Some(boundary) = find_boundary(payload, 0) {
            return Err(boundary_in_payload(boundary));
        }
        dst.reserve(payload.len() + FRAMING);
        dst.put_u8(START_BLOCK);
        dst.put_slice(payload);
        dst.put_slice(&[END_BLOCK, CARRIAGE_RETURN]);
        Ok(())
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), MllpError> {
        self.encode(payload.as_ref(), dst)
    }
}

/// SB + payload + EB CR in a new buffer (simulators, tests). Unlike the
/// encoder it checks nothing, so tests can build malformed streams.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(payload.len() + FRAMING);
    framed.push(START_BLOCK);
    framed.extend_from_slice(payload);
    framed.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
    framed
}

/// What ends the content of a frame being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// The end sequence 0x1C 0x0D starts here: the frame is complete.
    End(usize),
    /// A start block: the frame so far was given up, a new one begins here.
    Start(usize),
}

/// The first end sequence or start block from `from` on. `memchr2` keeps
/// the scan as fast as looking for the end block alone.
fn find_boundary(bytes: &[u8], from: usize) -> Option<Boundary> {
    let rest = bytes.get(from..)?;
    memchr::memchr2_iter(END_BLOCK, START_BLOCK, rest).find_map(|at| match rest[at] {
        START_BLOCK => Some(Boundary::Start(from + at)),
        _ if rest.get(at + 1) == Some(&CARRIAGE_RETURN) => Some(Boundary::End(from + at)),
        _ => None,
    })
}

fn boundary_in_payload(boundary: Boundary) -> MllpError {
    let message = match boundary {
        Boundary::End(at) => format!(
            "payload holds the MLLP end sequence 0x1C 0x0D at byte {at}: the peer would split it into two frames"
        ),
        Boundary::Start(at) => format!(
            "payload holds an MLLP start block 0x0B at byte {at}: the peer would drop what comes before it"
        ),
    };
    MllpError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        message,
    ))
}

#[cfg(test)]
mod tests;
