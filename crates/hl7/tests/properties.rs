//! Properties over arbitrary input: escaping round-trips, and no byte
//! sequence makes the view, the metadata readers or the ACK builder panic.

use guichet_hl7::{
    build_ack, escape, unescape, AckCode, AckRequest, AckSummary, Charset, Delimiters, ErrorCode,
    ErrorDetail, Header, Message, ParseOptions, Segment, Severity,
};
use proptest::prelude::*;

/// Characters HL7 allows as delimiters (printable, not alphanumeric).
const POOL: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn delimiters() -> impl Strategy<Value = Delimiters> {
    (
        proptest::sample::subsequence(POOL, 6).prop_shuffle(),
        any::<bool>(),
    )
        .prop_map(|(c, trunc)| Delimiters {
            field: c[0],
            component: c[1],
            repetition: c[2],
            escape: Some(c[3]),
            subcomponent: c[4],
            truncation: trunc.then_some(c[5]),
        })
}

/// Bytes that often look like a message: a header, then delimiters,
/// escapes, line ends and arbitrary bytes.
fn message_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"|".to_vec()),
        Just(b"^".to_vec()),
        Just(b"~".to_vec()),
        Just(b"&".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\\X41\\".to_vec()),
        Just(b"\\.br\\".to_vec()),
        Just(b"\rMSA|AA|1".to_vec()),
        Just(b"\rMSH|^~\\&|".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    let header = prop_oneof![
        Just(b"MSH|^~\\&|".to_vec()),
        Just(b"FHS|^~\\&#|".to_vec()),
        Just(b"\xEF\xBB\xBFBHS|^~|".to_vec()),
        Just(b"MSH#$*!@#".to_vec()),
        Just(Vec::new()),
    ];
    (header, proptest::collection::vec(pieces, 0..40)).prop_map(|(h, p)| [h, p.concat()].concat())
}

/// Reads everything the crate can read from a message.
fn exercise(msg: &Message<'_>) {
    let header = Header::read(msg);
    let _ = (
        header.code(),
        header.trigger(),
        header.is_ack(),
        header.is_enhanced_mode(),
    );
    let _ = AckSummary::read(msg);
    let _ = (
        msg.is_batch(),
        msg.charset(),
        msg.first_msh(),
        msg.delimiters().encoding_characters(),
    );
    for seg in msg.segments() {
        exercise_segment(seg, msg.charset());
    }
    let error = ErrorDetail {
        code: ErrorCode::DataTypeError,
        severity: Severity::Error,
        location: Some("PID^1"),
    };
    let req = AckRequest {
        code: AckCode::AE,
        control_id: "1",
        timestamp: "2024",
        text: Some("x|y"),
        error: Some(error),
    };
    let ack = build_ack(msg, &req);
    let parsed = Message::parse(&ack).expect("an ACK always parses");
    assert_eq!(
        AckSummary::read(&parsed).map(|s| s.code),
        Some(Some(AckCode::AE))
    );
}

fn exercise_segment(seg: Segment<'_>, charset: Charset) {
    let firsts: [_; 24] = seg.first_fields();
    for (n, first) in firsts.iter().enumerate() {
        let field = seg.field(n);
        assert_eq!(first.raw(), field.raw(), "field {n}");
        assert_eq!(
            first.repetition(2).raw(),
            field.repetition(2).raw(),
            "field {n}"
        );
        assert_eq!(
            first.repetition(1).component(2).raw(),
            field.repetition(1).component(2).raw(),
            "field {n}"
        );
    }
    for n in 0..=seg.field_count() + 1 {
        let field = seg.field(n);
        for rep in field.repetitions() {
            for c in 1..4 {
                let comp = rep.component(c);
                let _ = (
                    comp.subcomponent(1).text(charset),
                    comp.subcomponent(2).unescaped(),
                );
            }
        }
        let _ = (
            field.text(charset),
            field.is_null(),
            field.repetition(2).raw(),
        );
    }
}

proptest! {
    #[test]
    fn unescape_reverses_escape(text in proptest::collection::vec(any::<u8>(), 0..200), d in delimiters()) {
        let escaped = escape(&text, &d);
        let structural = [Some(d.field), Some(d.component), Some(d.repetition), Some(d.subcomponent), d.truncation];
        for b in escaped.iter() {
            prop_assert!(!structural.contains(&Some(*b)) && *b != b'\r' && *b != b'\n');
        }
        let back = unescape(&escaped, &d);
        prop_assert_eq!(back.as_ref(), &text[..]);
    }

    #[test]
    fn unescape_reverses_escape_on_text(text in "\\PC{0,60}", d in delimiters()) {
        let escaped = escape(text.as_bytes(), &d);
        let back = unescape(&escaped, &d);
        prop_assert_eq!(back.as_ref(), text.as_bytes());
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for opts in [ParseOptions::default(), ParseOptions::lenient()] {
            if let Ok(msg) = Message::parse_with(&bytes, opts) {
                exercise(&msg);
            }
        }
    }

    #[test]
    fn parsing_message_like_bytes_never_panics(bytes in message_like()) {
        for opts in [ParseOptions::default(), ParseOptions::lenient()] {
            if let Ok(msg) = Message::parse_with(&bytes, opts) {
                prop_assert_eq!(msg.raw(), &bytes[..]);
                exercise(&msg);
            }
        }
    }

    #[test]
    fn unescape_and_decode_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), d in delimiters()) {
        let raw = unescape(&bytes, &d);
        for cs in [Charset::Ascii, Charset::Latin1, Charset::Latin9, Charset::Utf8, Charset::Other] {
            let text = cs.decode(&raw);
            let _ = cs.encode_lossy(&text);
        }
    }
}
