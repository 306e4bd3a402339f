//! MLLP framing: `0x0B <message> 0x1C 0x0D`, as a `tokio_util` codec.
//!
//! The codec never holds more than one frame's worth of bytes: noise before a
//! start block is dropped as it arrives (and counted), and a frame that grows
//! past the limit is refused at once, without waiting for its end. Pipelined
//! frames come out one at a time. No I/O here: the caller owns the socket.

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
        }
    }

    /// The largest payload accepted, in bytes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
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
        })
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
        match find_end(buf, self.scan) {
            Some(end) => self.take_frame(buf, end).map(Some),
            None => self.wait_for_end(buf).map(|()| None),
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
    /// or one holding the end sequence, which the peer would read as two
    /// frames.
    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        if payload.len() > self.max_frame {
            return Err(MllpError::TooLarge {
                limit: self.max_frame,
            });
        }
        if let Some(at) = find_end(payload, 0) {
            return Err(end_in_payload(at));
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

/// Index of the first end block followed by a CR, searching from `from`.
/// Where the end sequence 0x1C 0x0D starts, from `from` on. `memchr`
/// finds the rare 0x1C with SIMD; a byte-pair scan cost a quarter of the
/// relay's instructions per message.
fn find_end(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    memchr::memchr_iter(END_BLOCK, rest)
        .find(|&at| rest.get(at + 1) == Some(&CARRIAGE_RETURN))
        .map(|at| from + at)
}

fn end_in_payload(at: usize) -> MllpError {
    let message = format!(
        "payload holds the MLLP end sequence 0x1C 0x0D at byte {at}: the peer would split it into two frames"
    );
    MllpError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        message,
    ))
}

#[cfg(test)]
mod tests;
