//! Arbitrary bytes through the HL7 v2 message view, strict and lenient:
//! parse, visit every segment, field, repetition, component and
//! subcomponent (unescaped and decoded), read the header and MSA, and answer
//! with an ACK. Invariants: no panic; `raw()` is the input untouched; every
//! non-empty piece borrows from the input (zero copy); the ACK we would send
//! back parses and carries an MSA.
#![no_main]

use guichet_hl7::{
    build_ack, AckCode, AckRequest, AckSummary, Charset, Field, Header, Message, ParseOptions,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for opts in [ParseOptions::default(), ParseOptions::lenient()] {
        if let Ok(msg) = Message::parse_with(data, opts) {
            assert_eq!(msg.raw(), data, "parse must not alter the bytes");
            walk(&msg);
            answer(&msg);
        }
    }
});

/// What the gateway does with a message from a peer: metadata and an ACK.
fn answer(msg: &Message<'_>) {
    let header = Header::read(msg);
    let _ = (header.code(), header.trigger(), header.is_ack());
    let _ = header.is_enhanced_mode();
    let _ = AckSummary::read(msg);
    let request = AckRequest {
        code: AckCode::AE,
        control_id: "GUICHET1",
        timestamp: "20240101120000",
        text: Some("refused | ^~\\& by the fuzzer"),
        error: None,
    };
    let ack = build_ack(msg, &request);
    let parsed = Message::parse(&ack).expect("our own ACK must parse");
    assert!(parsed.segment("MSA").is_some(), "our own ACK has no MSA");
}

fn walk(msg: &Message<'_>) {
    let input = msg.raw();
    let delimiters = msg.delimiters();
    let charset = msg.charset();
    let _ = msg.is_batch();
    within(input, msg.header().raw());
    for segment in msg.segments() {
        within(input, segment.raw());
        if let Ok(id) = std::str::from_utf8(segment.id()) {
            assert!(
                msg.segment(id).is_some(),
                "segment {id} listed but not found"
            );
        }
        // One past the last field too: absent fields must be empty, not panic.
        for n in 0..=segment.field_count() + 1 {
            let field = segment.field(n);
            visit(input, field, charset);
            let mut repetitions = 0;
            for repetition in field.repetitions() {
                repetitions += 1;
                visit(input, repetition, charset);
                let components = count(repetition.raw(), delimiters.component);
                for c in 1..=components + 1 {
                    let component = repetition.component(c);
                    visit(input, component, charset);
                    let subcomponents = count(component.raw(), delimiters.subcomponent);
                    for s in 1..=subcomponents + 1 {
                        visit(input, component.subcomponent(s), charset);
                    }
                }
            }
            visit(input, field.repetition(repetitions + 1), charset);
        }
    }
}

fn visit(input: &[u8], field: Field<'_>, charset: Charset) {
    within(input, field.raw());
    let _ = field.is_empty();
    let _ = field.unescaped();
    let _ = field.text(charset);
}

/// Pieces of the message may be slices of the input only.
fn within(input: &[u8], piece: &[u8]) {
    if piece.is_empty() {
        return;
    }
    let outer = input.as_ptr_range();
    let inner = piece.as_ptr_range();
    assert!(
        outer.start <= inner.start && inner.end <= outer.end,
        "a piece of the message was copied out of the input"
    );
}

/// Number of `delimiter` bytes in `raw`: pieces are one more than that.
fn count(raw: &[u8], delimiter: u8) -> usize {
    raw.iter().filter(|&&b| b == delimiter).count()
}
