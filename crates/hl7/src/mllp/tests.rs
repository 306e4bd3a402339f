use super::*;
use proptest::prelude::*;

/// What a reader of the stream sees, comparable across chunkings.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Frame {
        payload: Vec<u8>,
        discarded: usize,
        interrupted: (usize, usize),
    },
    TooLarge(usize),
    Truncated(usize),
    Garbage(usize),
    Io,
}

impl From<Frame> for Event {
    fn from(frame: Frame) -> Self {
        Event::Frame {
            payload: frame.payload.to_vec(),
            discarded: frame.discarded,
            interrupted: (frame.interrupted, frame.interrupted_bytes),
        }
    }
}

impl From<MllpError> for Event {
    fn from(err: MllpError) -> Self {
        match err {
            MllpError::TooLarge { limit } => Event::TooLarge(limit),
            MllpError::Truncated { buffered } => Event::Truncated(buffered),
            MllpError::TrailingGarbage { bytes } => Event::Garbage(bytes),
            MllpError::Io(_) => Event::Io,
        }
    }
}

fn frame_event(payload: &[u8], discarded: usize) -> Event {
    Event::Frame {
        payload: payload.to_vec(),
        discarded,
        interrupted: (0, 0),
    }
}

/// Feeds `chunks` the way `FramedRead` does: decode until nothing comes out
/// after each read, `decode_eof` at the end, stop at the first error. Checks
/// the memory bound after every call.
fn drive<'a>(codec: &mut MllpCodec, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Event> {
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => events.push(frame.into()),
                Ok(None) => break,
                Err(err) => {
                    events.push(err.into());
                    return events;
                }
            }
        }
        assert_bounded(codec, &buf);
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => events.push(frame.into()),
            Ok(None) => return events,
            Err(err) => {
                events.push(err.into());
                return events;
            }
        }
    }
}

/// Between reads the buffer holds at most one unfinished frame: its start
/// block, `max_frame` bytes of content and an end block awaiting its CR.
fn assert_bounded(codec: &MllpCodec, buf: &BytesMut) {
    assert!(
        buf.len() <= codec.max_frame() + 2,
        "{} bytes buffered, limit {}",
        buf.len(),
        codec.max_frame()
    );
}

fn chunked(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    bytes.chunks(size).collect()
}

fn two_frames() -> (Vec<u8>, Vec<Event>) {
    let first = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240101||ADT^A01|1|P|2.5\r";
    let second = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240101||ADT^A08|2|P|2.5\r";
    let mut stream = b"\r\n".to_vec();
    stream.extend(frame(first));
    stream.extend(frame(second));
    let expected = vec![frame_event(first, 2), frame_event(second, 0)];
    (stream, expected)
}

#[test]
fn two_pipelined_frames_split_at_every_boundary() {
    let (stream, expected) = two_frames();
    for cut in 0..=stream.len() {
        let (head, tail) = stream.split_at(cut);
        let events = drive(&mut MllpCodec::default(), [head, tail]);
        assert_eq!(events, expected, "split at {cut}");
    }
}

#[test]
fn two_pipelined_frames_split_at_every_pair_of_boundaries() {
    let (stream, expected) = two_frames();
    for first in 0..=stream.len() {
        for second in first..=stream.len() {
            let pieces = [&stream[..first], &stream[first..second], &stream[second..]];
            let events = drive(&mut MllpCodec::default(), pieces);
            assert_eq!(events, expected, "splits at {first} and {second}");
        }
    }
}

#[test]
fn two_pipelined_frames_one_byte_at_a_time() {
    let (stream, expected) = two_frames();
    let events = drive(&mut MllpCodec::default(), chunked(&stream, 1));
    assert_eq!(events, expected);
}

#[test]
fn pipelined_frames_in_one_buffer_come_out_one_by_one() {
    let mut buf = BytesMut::new();
    buf.extend(frame(b"one"));
    buf.extend(frame(b"two"));
    buf.extend(frame(b"three"));
    let mut codec = MllpCodec::default();
    for expected in [&b"one"[..], b"two", b"three"] {
        let got = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(got.payload, expected);
        assert_eq!(got.discarded, 0);
    }
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.is_empty());
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
}

#[test]
fn payload_shares_the_read_buffer() {
    let mut buf = BytesMut::from(&frame(b"MSH|zero copy")[..]);
    let start = buf.as_ptr();
    let got = MllpCodec::default().decode(&mut buf).unwrap().unwrap();
    assert_eq!(got.payload.as_ptr(), start.wrapping_add(1));
}

#[test]
fn garbage_before_a_frame_is_dropped_and_counted_exactly() {
    let mut codec = MllpCodec::default();
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.is_empty(), "garbage must not accumulate");
    buf.extend_from_slice(b"\x1c\x0d\n");
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.is_empty());
    buf.extend(frame(b"MSH|x"));
    let got = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(got.payload, &b"MSH|x"[..]);
    assert_eq!(got.discarded, 16 + 3);
}

#[test]
fn garbage_between_frames_is_charged_to_the_next_frame() {
    let mut stream = frame(b"first");
    stream.extend_from_slice(b"\r\n\0\0");
    stream.extend(frame(b"second"));
    stream.extend(frame(b"third"));
    let events = drive(&mut MllpCodec::default(), chunked(&stream, 3));
    let expected = vec![
        frame_event(b"first", 0),
        frame_event(b"second", 4),
        frame_event(b"third", 0),
    ];
    assert_eq!(events, expected);
}

#[test]
fn frame_of_exactly_the_limit_is_accepted() {
    let payload = [b'x'; 10];
    let stream = frame(&payload);
    let events = drive(&mut MllpCodec::new(10), chunked(&stream, 1));
    assert_eq!(events, vec![frame_event(&payload, 0)]);
}

#[test]
fn oversized_frame_without_end_fails_as_soon_as_it_passes_the_limit() {
    let mut codec = MllpCodec::new(10);
    let mut buf = BytesMut::from(&[START_BLOCK][..]);
    for _ in 0..10 {
        buf.put_u8(b'x');
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }
    // An end block could still be the end: wait for the next byte.
    buf.put_u8(END_BLOCK);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.put_u8(b'y');
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(err, MllpError::TooLarge { limit: 10 }), "{err:?}");
    assert!(buf.is_empty(), "the oversized frame is dropped");
}

#[test]
fn oversized_frame_whose_end_comes_in_the_same_read_fails() {
    let stream = frame(&[b'x'; 11]);
    let events = drive(&mut MllpCodec::new(10), [&stream[..]]);
    assert_eq!(events, vec![Event::TooLarge(10)]);
}

#[test]
fn oversized_frame_fails_before_its_end_arrives() {
    let mut stream = frame(b"ok");
    stream.extend(frame(&[b'x'; 1000]));
    stream.extend(frame(b"never read"));
    let mut codec = MllpCodec::new(100);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut events = Vec::new();
    'read: for chunk in stream.chunks(32) {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        assert!(buf.len() <= 100 + 2 + 32);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => events.push(Event::from(frame)),
                Ok(None) => break,
                Err(err) => {
                    events.push(err.into());
                    break 'read;
                }
            }
        }
    }
    assert_eq!(events, vec![frame_event(b"ok", 0), Event::TooLarge(100)]);
    // "ok" takes 5 bytes, then SB + 101 bytes of content is the first sure
    // overflow: the error comes with the chunk holding byte 107, long before
    // the frame's 1003 bytes have arrived.
    assert_eq!(fed, 128);
}

#[test]
fn memory_stays_bounded_on_an_endless_oversized_frame() {
    let max = 1000;
    let read = 4096;
    let mut codec = MllpCodec::new(max);
    let mut buf = BytesMut::new();
    let noise: Vec<u8> = (0..read).map(|i| (i % 251) as u8 | 0x80).collect();
    for round in 0..100 {
        assert!(codec.decode(&mut buf).unwrap().is_none(), "round {round}");
        assert!(buf.is_empty());
        buf.extend_from_slice(&noise);
    }
    // A start block, then content that never ends.
    buf.put_u8(START_BLOCK);
    let mut result = codec.decode(&mut buf);
    while let Ok(None) = result {
        assert!(buf.len() <= max + 2);
        buf.extend_from_slice(&noise);
        assert!(buf.len() <= max + 2 + read);
        result = codec.decode(&mut buf);
    }
    assert!(matches!(result, Err(MllpError::TooLarge { limit: 1000 })));
}

#[test]
fn eof_in_the_middle_of_a_frame_is_truncated() {
    let cases: [(&[u8], usize); 4] = [
        (b"\x0b", 0),
        (b"\x0bMSH|partial", 11),
        (b"\x0bMSH|partial\x1c", 12),
        (b"noise\x0bMSH", 3),
    ];
    for (stream, buffered) in cases {
        let events = drive(&mut MllpCodec::default(), [stream]);
        assert_eq!(events, vec![Event::Truncated(buffered)], "{stream:?}");
    }
}

#[test]
fn eof_after_a_complete_frame_and_a_partial_one() {
    let mut stream = frame(b"whole");
    stream.extend_from_slice(b"\x0bhal");
    let events = drive(&mut MllpCodec::default(), chunked(&stream, 4));
    assert_eq!(events, vec![frame_event(b"whole", 0), Event::Truncated(3)]);
}

#[test]
fn eof_with_garbage_only() {
    let events = drive(&mut MllpCodec::default(), chunked(b"hello\r\n\x1c\x0d", 2));
    assert_eq!(events, vec![Event::Garbage(9)]);
}

#[test]
fn eof_with_garbage_after_the_last_frame() {
    let mut stream = frame(b"msg");
    stream.extend_from_slice(b"\r\n");
    let events = drive(&mut MllpCodec::default(), [&stream[..]]);
    assert_eq!(events, vec![frame_event(b"msg", 0), Event::Garbage(2)]);
}

#[test]
fn eof_on_a_clean_boundary_is_the_end() {
    let mut codec = MllpCodec::default();
    let mut buf = BytesMut::from(&frame(b"msg")[..]);
    assert!(codec.decode_eof(&mut buf).unwrap().is_some());
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
}

#[test]
fn eof_error_is_reported_once() {
    let mut codec = MllpCodec::default();
    let mut buf = BytesMut::from(&b"\x0bpartial"[..]);
    assert!(codec.decode_eof(&mut buf).is_err());
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
}

#[test]
fn empty_frame_has_an_empty_payload() {
    let events = drive(&mut MllpCodec::default(), [&b"\x0b\x1c\x0d"[..]]);
    assert_eq!(events, vec![frame_event(b"", 0)]);
    let events = drive(
        &mut MllpCodec::new(0),
        chunked(b"\x0b\x1c\x0d\x0b\x1c\x0d", 1),
    );
    assert_eq!(events, vec![frame_event(b"", 0), frame_event(b"", 0)]);
}

#[test]
fn end_block_without_cr_is_content() {
    let payload = b"OBX|1|ED|\x1c|\x1c\x1c|\x1c";
    let stream = frame(payload);
    for size in 1..=stream.len() {
        let events = drive(&mut MllpCodec::default(), chunked(&stream, size));
        assert_eq!(events, vec![frame_event(payload, 0)], "chunks of {size}");
    }
}

/// A start block before the end block interrupts the frame: the
/// partial frame is reported with the next one, never delivered as (part
/// of) a message, and decoding goes on from the new start block.
#[test]
fn f10_start_block_inside_a_frame_interrupts_it() {
    let mut stream = b"\x0bMSH|first|cut".to_vec();
    stream.extend(frame(b"MSH|second"));
    stream.extend(frame(b"MSH|third"));
    for size in 1..=stream.len() {
        let events = drive(&mut MllpCodec::default(), chunked(&stream, size));
        let second = Event::Frame {
            payload: b"MSH|second".to_vec(),
            discarded: 0,
            interrupted: (1, 14),
        };
        assert_eq!(
            events,
            vec![second, frame_event(b"MSH|third", 0)],
            "chunks of {size}"
        );
    }
}

#[test]
fn f10_an_interrupted_frame_over_the_limit_is_too_large() {
    let mut stream = b"\x0b0123456789".to_vec();
    stream.extend(frame(b"MSH|ok"));
    for size in 1..=stream.len() {
        let events = drive(&mut MllpCodec::new(8), chunked(&stream, size));
        assert_eq!(events, vec![Event::TooLarge(8)], "chunks of {size}");
    }
}

#[test]
fn a_large_frame_arriving_byte_by_byte_is_scanned_once() {
    let payload = vec![b'x'; 1 << 20];
    let stream = frame(&payload);
    let mut codec = MllpCodec::default();
    let mut buf = BytesMut::with_capacity(stream.len());
    let (body, end) = stream.split_at(stream.len() - 1);
    for &byte in body {
        buf.put_u8(byte);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        // The next search starts at the last byte, never back at the start.
        assert_eq!(codec.scan, (buf.len() - 1).max(1));
    }
    buf.extend_from_slice(end);
    let got = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(got.payload.len(), payload.len());
    assert_eq!(codec.scan, 0);
}

#[test]
fn frame_wraps_the_payload() {
    assert_eq!(frame(b"MSH|"), b"\x0bMSH|\x1c\x0d");
    assert_eq!(frame(b""), b"\x0b\x1c\x0d");
}

#[test]
fn encode_writes_the_same_bytes_as_frame() {
    let mut codec = MllpCodec::default();
    let mut dst = BytesMut::new();
    codec.encode(&b"MSH|a"[..], &mut dst).unwrap();
    codec
        .encode(Bytes::from_static(b"MSH|b"), &mut dst)
        .unwrap();
    let mut expected = frame(b"MSH|a");
    expected.extend(frame(b"MSH|b"));
    assert_eq!(dst, expected);
}

#[test]
fn encode_then_decode_round_trips() {
    let payloads: [&[u8]; 4] = [b"MSH|1\rPID|1\r", b"", b"\x1c\x1c", b"\xe9\xe8 latin-1"];
    let mut codec = MllpCodec::default();
    let mut wire = BytesMut::new();
    for payload in payloads {
        codec.encode(payload, &mut wire).unwrap();
    }
    let events = drive(&mut codec, [&wire[..]]);
    let expected: Vec<Event> = payloads.iter().map(|p| frame_event(p, 0)).collect();
    assert_eq!(events, expected);
}

#[test]
fn encode_refuses_what_the_peer_could_not_read_as_one_frame() {
    let mut codec = MllpCodec::new(4);
    let mut dst = BytesMut::new();
    let err = codec.encode(&b"12345"[..], &mut dst).unwrap_err();
    assert!(matches!(err, MllpError::TooLarge { limit: 4 }), "{err:?}");
    let err = codec.encode(&b"a\x1c\x0db"[..], &mut dst).unwrap_err();
    let MllpError::Io(io) = err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    assert!(io.to_string().contains("at byte 1"), "{io}");
    let err = codec.encode(&b"ab\x0b"[..], &mut dst).unwrap_err();
    let MllpError::Io(io) = err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert!(
        io.to_string().contains("start block 0x0B at byte 2"),
        "{io}"
    );
    assert!(dst.is_empty(), "nothing written on refusal");
}

#[test]
fn errors_say_what_happened() {
    let too_large = MllpError::TooLarge { limit: 16 }.to_string();
    assert!(too_large.contains("16 bytes"), "{too_large}");
    let truncated = MllpError::Truncated { buffered: 7 }.to_string();
    assert!(truncated.contains("7 bytes"), "{truncated}");
    let garbage = MllpError::TrailingGarbage { bytes: 3 }.to_string();
    assert!(garbage.starts_with("3 bytes"), "{garbage}");
}

/// Bytes weighted toward the three framing bytes, so edge cases are common.
fn wire_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => any::<u8>(),
        1 => Just(START_BLOCK),
        1 => Just(END_BLOCK),
        1 => Just(CARRIAGE_RETURN),
    ]
}

/// Any payload that can be framed: no end sequence or start block inside.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(wire_byte(), 0..200).prop_map(|bytes| {
        let mut clean: Vec<u8> = Vec::with_capacity(bytes.len());
        for byte in bytes {
            let ends = byte == CARRIAGE_RETURN && clean.last() == Some(&END_BLOCK);
            if !ends && byte != START_BLOCK {
                clean.push(byte);
            }
        }
        clean
    })
}

/// Noise a peer might send between frames: anything but a start block.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(wire_byte(), 0..20)
        .prop_map(|bytes| bytes.into_iter().filter(|&b| b != START_BLOCK).collect())
}

/// Cuts `stream` into pieces whose sizes cycle through `sizes`.
fn cut<'a>(stream: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

proptest! {
    #[test]
    fn encoded_payloads_decode_in_order_whatever_the_chunking(
        payloads in prop::collection::vec(payload(), 0..8),
        sizes in prop::collection::vec(1..64usize, 1..16),
    ) {
        let mut codec = MllpCodec::default();
        let mut wire = BytesMut::new();
        for payload in &payloads {
            codec.encode(payload.as_slice(), &mut wire).unwrap();
        }
        let events = drive(&mut codec, cut(&wire, &sizes));
        let expected: Vec<Event> = payloads.iter().map(|p| frame_event(p, 0)).collect();
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn garbage_between_frames_is_counted_whatever_the_chunking(
        frames in prop::collection::vec((garbage(), payload()), 0..8),
        trailing in garbage(),
        sizes in prop::collection::vec(1..64usize, 1..16),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (noise, payload) in &frames {
            wire.extend_from_slice(noise);
            wire.extend(frame(payload));
            expected.push(frame_event(payload, noise.len()));
        }
        wire.extend_from_slice(&trailing);
        if !trailing.is_empty() {
            expected.push(Event::Garbage(trailing.len()));
        }
        let events = drive(&mut MllpCodec::default(), cut(&wire, &sizes));
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn any_stream_decodes_the_same_in_one_read_or_in_pieces(
        stream in prop::collection::vec(wire_byte(), 0..400),
        sizes in prop::collection::vec(1..64usize, 1..16),
        max in 0..64usize,
    ) {
        let whole = drive(&mut MllpCodec::new(max), [stream.as_slice()]);
        let pieces = drive(&mut MllpCodec::new(max), cut(&stream, &sizes));
        for event in &pieces {
            if let Event::Frame { payload, .. } = event {
                prop_assert!(payload.len() <= max);
                prop_assert!(find_boundary(payload, 0).is_none());
            }
        }
        prop_assert_eq!(whole, pieces);
    }
}

#[test]
fn an_io_error_converts_back_unchanged() {
    let original = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
    let converted = std::io::Error::from(MllpError::Io(original));
    assert_eq!(converted.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(converted.to_string(), "reset by peer");
}

#[test]
fn a_framing_error_converts_to_other_with_its_message() {
    let framing = MllpError::TooLarge { limit: 10 };
    let message = framing.to_string();
    let converted = std::io::Error::from(framing);
    assert_eq!(converted.kind(), std::io::ErrorKind::Other);
    assert_eq!(converted.to_string(), message);
    let inner = converted
        .get_ref()
        .and_then(|e| e.downcast_ref::<MllpError>());
    assert!(matches!(inner, Some(MllpError::TooLarge { limit: 10 })));
}
