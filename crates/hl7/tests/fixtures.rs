//! The view against an outside corpus: the 139 HL7 v2 samples of
//! microsoft/FHIR-Converter (LF line ends, some with a UTF-8 BOM).
//!
//! For each file: lenient parsing succeeds, the header agrees with a naive
//! split, every field can be walked, and the segments put back together give
//! the input (modulo line ends) from slices of the original bytes.

use std::path::Path;

use guichet_hl7::{
    build_ack, AckCode, AckRequest, AckSummary, Field, Header, Message, ParseOptions,
};
use guichet_testsupport::fixtures::hl7_samples;

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn parse(bytes: &[u8]) -> Message<'_> {
    Message::parse_with(bytes, ParseOptions::lenient()).unwrap()
}

/// The input's non-empty lines, without BOM or line ends: what the
/// segments must reproduce.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect()
}

/// MSH-`n` the naive way: split the first line on '|'.
fn naive_msh(bytes: &[u8], n: usize) -> String {
    let first = lines(bytes)[0];
    let field = first.split(|&b| b == b'|').nth(n - 1).unwrap_or_default();
    String::from_utf8(field.to_vec()).unwrap()
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn corpus_is_all_there() {
    let Some(files) = hl7_samples() else { return };
    assert_eq!(files.len(), 139);
    let with_bom = files.iter().filter(|(_, b)| b.starts_with(BOM)).count();
    assert_eq!(with_bom, 27);
}

#[test]
fn every_sample_parses_leniently_and_not_strictly() {
    let Some(files) = hl7_samples() else { return };
    for (path, bytes) in &files {
        let msg = Message::parse_with(bytes, ParseOptions::lenient())
            .unwrap_or_else(|e| panic!("{}: {e}", name(path)));
        assert_eq!(msg.raw(), &bytes[..]);
        if let Ok(strict) = Message::parse(bytes) {
            assert_eq!(
                strict.segments().count(),
                1,
                "{}: LF is not a segment end on the wire",
                name(path)
            );
        }
    }
}

#[test]
fn header_matches_a_naive_split() {
    let Some(files) = hl7_samples() else { return };
    for (path, bytes) in &files {
        let header = Header::read(&parse(bytes));
        let file = name(path);
        assert!(!header.message_type.is_empty(), "{file}");
        assert!(!header.code().is_empty(), "{file}");
        assert!(!header.control_id.is_empty(), "{file}");
        assert_eq!(header.message_type, naive_msh(bytes, 9), "{file}");
        assert_eq!(header.control_id, naive_msh(bytes, 10), "{file}");
        assert_eq!(header.version, naive_msh(bytes, 12), "{file}");
        assert_eq!(header.sending_application, naive_msh(bytes, 3), "{file}");
    }
}

#[test]
fn segments_rejoined_are_the_input() {
    let Some(files) = hl7_samples() else { return };
    for (path, bytes) in &files {
        let msg = parse(bytes);
        let segments: Vec<&[u8]> = msg.segments().map(|s| s.raw()).collect();
        assert_eq!(segments, lines(bytes), "{}", name(path));
        for seg in &segments {
            assert!(
                is_inside(seg, bytes),
                "{}: a segment is not a slice of the input",
                name(path)
            );
        }
    }
}

#[test]
fn every_field_walks_back_to_its_bytes() {
    let Some(files) = hl7_samples() else { return };
    let mut leaves = 0usize;
    for (path, bytes) in &files {
        let msg = parse(bytes);
        let file = name(path);
        for seg in msg.segments() {
            let first = if seg.id() == b"MSH" { 3 } else { 0 };
            for n in first..=seg.field_count() {
                leaves += walk(seg.field(n), bytes, &file);
                let _ = seg.field(n).text(msg.charset());
            }
        }
        let msh = msg.header();
        assert_eq!(
            (msh.field(1).raw(), msh.field(2).raw()),
            (&b"|"[..], &b"^~\\&"[..]),
            "{file}"
        );
    }
    assert!(leaves > 10_000, "walked {leaves} values");
}

/// Splits a field down to subcomponents, checking that each level joins
/// back to its parent (the corpus uses the default delimiters); returns
/// how many subcomponents were visited.
fn walk(field: Field<'_>, bytes: &[u8], file: &str) -> usize {
    assert!(field.is_empty() || is_inside(field.raw(), bytes), "{file}");
    let reps: Vec<Field<'_>> = field.repetitions().collect();
    if !field.is_empty() {
        assert_eq!(join(&reps, b'~'), field.raw(), "{file}");
    }
    let mut leaves = 0;
    for rep in reps {
        for comp in parts(|i| rep.component(i), rep.raw(), b'^', file) {
            leaves += parts(|i| comp.subcomponent(i), comp.raw(), b'&', file).len();
        }
    }
    leaves
}

/// Parts 1..=k of a value split on `sep`, checked to rejoin to it, with
/// nothing after part k.
fn parts<'a>(part: impl Fn(usize) -> Field<'a>, raw: &[u8], sep: u8, file: &str) -> Vec<Field<'a>> {
    let count = raw.iter().filter(|&&b| b == sep).count() + 1;
    let found: Vec<Field<'a>> = (1..=count).map(&part).collect();
    assert_eq!(join(&found, sep), raw, "{file}");
    assert!(part(count + 1).is_empty(), "{file}");
    found
}

fn join(values: &[Field<'_>], sep: u8) -> Vec<u8> {
    values
        .iter()
        .map(|f| f.raw())
        .collect::<Vec<_>>()
        .join(&sep)
}

fn is_inside(slice: &[u8], whole: &[u8]) -> bool {
    let range = whole.as_ptr_range();
    range.contains(&slice.as_ptr()) && slice.as_ptr_range().end <= range.end
}

#[test]
fn each_file_holds_one_message() {
    let Some(files) = hl7_samples() else { return };
    for (path, bytes) in &files {
        let msg = parse(bytes);
        let headers = msg.segments().filter(|s| s.id() == b"MSH").count();
        assert_eq!(headers, 1, "{}", name(path));
        assert!(!msg.is_batch());
    }
}

/// ADT04-23.hl7 has "MSH" as a field value (PID-17 religion and PV1-39): a naive
/// search for "MSH|" sees three messages, the segment view sees one.
#[test]
fn msh_as_a_field_value_is_not_a_segment() {
    let Some(files) = hl7_samples() else { return };
    let (_, bytes) = files
        .iter()
        .find(|(p, _)| name(p) == "ADT04-23.hl7")
        .unwrap();
    let naive = bytes.windows(4).filter(|w| w == b"MSH|").count();
    assert_eq!(naive, 3);
    let msg = parse(bytes);
    let as_value: Vec<(String, usize)> = msg
        .segments()
        .flat_map(|s| {
            (1..=s.field_count())
                .filter(move |&n| s.field(n).raw() == b"MSH")
                .map(move |n| (String::from_utf8_lossy(s.id()).into_owned(), n))
        })
        .collect();
    assert_eq!(as_value, [("PID".to_string(), 17), ("PV1".to_string(), 39)]);
    assert_eq!(msg.segments().filter(|s| s.id() == b"MSH").count(), 1);
}

#[test]
fn every_sample_can_be_acknowledged() {
    let Some(files) = hl7_samples() else { return };
    for (path, bytes) in &files {
        let msg = parse(bytes);
        let req = AckRequest {
            code: AckCode::AA,
            control_id: "G1",
            timestamp: "20240101000000",
            text: None,
            error: None,
        };
        let ack = build_ack(&msg, &req);
        let parsed = Message::parse(&ack).unwrap_or_else(|e| panic!("{}: {e}", name(path)));
        let summary = AckSummary::read(&parsed).unwrap();
        let original = Header::read(&msg);
        let answer = Header::read(&parsed);
        assert_eq!(
            summary.acknowledged_id,
            original.control_id,
            "{}",
            name(path)
        );
        assert_eq!(answer.receiving_application, original.sending_application);
        assert_eq!(answer.sending_facility, original.receiving_facility);
        assert_eq!(answer.version, original.version);
        assert_eq!(answer.trigger(), original.trigger());
        assert!(answer.is_ack());
    }
}
