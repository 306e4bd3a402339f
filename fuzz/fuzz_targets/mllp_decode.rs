//! Arbitrary bytes, cut into arbitrary reads, through the MLLP decoder.
//!
//! Input layout: one knob byte (bit 7: default frame limit, else bits 3..6
//! pick a small limit so `TooLarge` is reached; bits 0..2: how many of the
//! next bytes are read sizes), the read sizes, then the stream itself.
//! Invariants: no panic; the buffer never holds more than one frame's worth
//! between reads; payloads respect the limit and never hold 0x1C 0x0D nor a
//! start block 0x0B (a start block inside a frame interrupts it); every
//! input byte is accounted for; cutting the stream differently changes
//! nothing.
#![no_main]

use bytes::BytesMut;
use guichet_hl7::{MllpCodec, MllpError, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// Start block, end block and CR around each payload.
const FRAMING: usize = 3;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Frame {
        payload: Vec<u8>,
        discarded: usize,
        interrupted: usize,
        interrupted_bytes: usize,
    },
    TooLarge,
    Truncated(usize),
    Garbage(usize),
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let max = if knobs & 0x80 != 0 {
        DEFAULT_MAX_FRAME
    } else {
        usize::from((knobs >> 3) & 0x0F) * 8
    };
    let (sizes, stream) = rest.split_at(rest.len().min(usize::from(knobs & 0x07) + 1));
    let whole = decode_all(max, &[stream], stream.len());
    let pieces = decode_all(max, &cut(stream, sizes), stream.len());
    assert_eq!(
        whole, pieces,
        "the way the stream was cut changed the frames"
    );
});

/// Decodes like `FramedRead`: drain after each read, `decode_eof` at the end,
/// stop at the first error.
fn decode_all(max: usize, reads: &[&[u8]], total: usize) -> Vec<Outcome> {
    let mut codec = MllpCodec::new(max);
    let mut buf = BytesMut::new();
    let mut outcomes = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => outcomes.push(checked(max, frame)),
                Ok(None) => break,
                Err(err) => return ended(outcomes, err, total),
            }
        }
        assert!(
            buf.len() <= max + 2,
            "{} bytes buffered, limit {max}",
            buf.len()
        );
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => outcomes.push(checked(max, frame)),
            Ok(None) => {
                assert_eq!(accounted(&outcomes), total, "bytes lost");
                return outcomes;
            }
            Err(err) => return ended(outcomes, err, total),
        }
    }
}

fn checked(max: usize, frame: guichet_hl7::Frame) -> Outcome {
    let payload = frame.payload.to_vec();
    assert!(
        payload.len() <= max,
        "payload of {} over {max}",
        payload.len()
    );
    assert!(
        !payload.windows(2).any(|pair| pair == [0x1C, 0x0D]),
        "payload holds an end sequence"
    );
    assert!(!payload.contains(&0x0B), "payload holds a start block");
    assert!(
        frame.interrupted_bytes >= frame.interrupted,
        "each interrupted frame has at least its start block"
    );
    Outcome::Frame {
        payload,
        discarded: frame.discarded,
        interrupted: frame.interrupted,
        interrupted_bytes: frame.interrupted_bytes,
    }
}

fn ended(mut outcomes: Vec<Outcome>, err: MllpError, total: usize) -> Vec<Outcome> {
    let last = match err {
        MllpError::TooLarge { .. } => Outcome::TooLarge,
        MllpError::Truncated { buffered } => Outcome::Truncated(buffered),
        MllpError::TrailingGarbage { bytes } => Outcome::Garbage(bytes),
        MllpError::Io(err) => panic!("decoding does no I/O, yet: {err}"),
    };
    outcomes.push(last);
    match outcomes.last() {
        // Garbage before a truncated frame is not reported: at most `total`.
        Some(Outcome::Truncated(_)) | Some(Outcome::TooLarge) => {
            assert!(accounted(&outcomes) <= total, "more bytes out than in")
        }
        _ => assert_eq!(accounted(&outcomes), total, "bytes lost"),
    }
    outcomes
}

/// How many input bytes the outcomes account for.
fn accounted(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Frame {
                payload,
                discarded,
                interrupted_bytes,
                ..
            } => discarded + interrupted_bytes + payload.len() + FRAMING,
            Outcome::TooLarge => 0,
            Outcome::Truncated(buffered) => buffered + 1,
            Outcome::Garbage(bytes) => *bytes,
        })
        .sum()
}

/// Cuts `stream` into reads whose sizes (1 to 256) cycle through `sizes`.
fn cut<'a>(stream: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut reads = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(rest.len().min(usize::from(size) + 1));
        reads.push(read);
        rest = tail;
    }
    reads
}
