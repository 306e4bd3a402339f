//! The message view, escapes, character sets and header metadata, on
//! hand-written messages that each exercise one rule.

use std::borrow::Cow;

use guichet_hl7::{
    escape, unescape, AckCode, AckMode, AckSummary, Charset, Delimiters, Header, Leading, Message,
    ParseError, ParseOptions, Unrepresentable,
};

const ADT: &[u8] = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240102030405||ADT^A01^ADT_A01|MSG1|P|2.5\r\
EVN|A01|20240102030405\r\
PID|1||12345^^^CHU^PI~67890^^^INS^NH||DUPONT^JEAN||19700101|M\r";

fn lenient(raw: &[u8]) -> Message<'_> {
    Message::parse_with(raw, ParseOptions::lenient()).unwrap()
}

// ---- structure ----

#[test]
fn msh_numbering_counts_the_field_separator_as_field_1() {
    let msg = Message::parse(ADT).unwrap();
    let msh = msg.header();
    assert_eq!(msh.id(), b"MSH");
    assert_eq!(msh.field(0).raw(), b"MSH");
    assert_eq!(msh.field(1).raw(), b"|");
    assert_eq!(msh.field(2).raw(), b"^~\\&");
    assert_eq!(msh.field(3).raw(), b"EAI");
    assert_eq!(msh.field(9).raw(), b"ADT^A01^ADT_A01");
    assert_eq!(msh.field(10).raw(), b"MSG1");
    assert_eq!(msh.field(12).raw(), b"2.5");
    assert_eq!(msh.field_count(), 12);
}

#[test]
fn msh_2_is_not_split_on_the_delimiters_it_declares() {
    let msg = Message::parse(ADT).unwrap();
    let msh2 = msg.header().field(2);
    assert_eq!(msh2.component(1).raw(), b"^~\\&");
    assert!(msh2.component(2).is_empty());
    assert_eq!(msh2.repetitions().count(), 1);
    assert_eq!(msh2.unescaped(), Cow::Borrowed(&b"^~\\&"[..]));
}

#[test]
fn other_segments_count_fields_after_the_id() {
    let msg = Message::parse(ADT).unwrap();
    let pid = msg.segment("PID").unwrap();
    assert_eq!(pid.field(0).raw(), b"PID");
    assert_eq!(pid.field(1).raw(), b"1");
    assert_eq!(pid.field(5).component(1).raw(), b"DUPONT");
    assert_eq!(pid.field(5).component(2).raw(), b"JEAN");
    assert_eq!(pid.field_count(), 8);
}

#[test]
fn repetitions_components_and_subcomponents() {
    let raw = b"MSH|^~\\&|A\rPID|1||12345^^^CHU&1.2.250&ISO^PI~67890^^^INS^NH\r";
    let pid3 = Message::parse(raw)
        .unwrap()
        .segment("PID")
        .unwrap()
        .field(3);
    let reps: Vec<&[u8]> = pid3.repetitions().map(|r| r.raw()).collect();
    assert_eq!(
        reps,
        [&b"12345^^^CHU&1.2.250&ISO^PI"[..], b"67890^^^INS^NH"]
    );
    assert_eq!(
        pid3.component(1).raw(),
        b"12345",
        "component of the first repetition"
    );
    assert_eq!(pid3.repetition(2).component(4).raw(), b"INS");
    assert_eq!(pid3.component(4).subcomponent(2).raw(), b"1.2.250");
    assert_eq!(pid3.component(4).subcomponent(3).raw(), b"ISO");
    assert_eq!(pid3.subcomponent(1).raw(), b"12345");
    assert!(pid3.repetition(3).is_empty());
    assert!(pid3.repetition(0).is_empty());
    assert!(pid3.component(0).is_empty());
    // A leaf is its own first part.
    let leaf = pid3.component(1).subcomponent(1);
    assert_eq!(leaf.component(1).raw(), b"12345");
    assert!(leaf.subcomponent(2).is_empty());
}

#[test]
fn empty_field_has_no_repetitions_and_null_is_not_empty() {
    let raw = b"MSH|^~\\&|A\rPID|1||\"\"\r";
    let pid = Message::parse(raw).unwrap().segment("PID").unwrap();
    assert_eq!(pid.field(2).repetitions().count(), 0);
    assert!(pid.field(3).is_null());
    assert!(!pid.field(3).is_empty());
}

#[test]
fn missing_trailing_fields_are_empty_not_errors() {
    let msg = Message::parse(b"MSH|^~\\&|EAI\rPID|1").unwrap();
    let msh = msg.header();
    assert_eq!(msh.field_count(), 3);
    assert!(msh.field(9).is_empty());
    assert!(msh.field(200).component(3).subcomponent(2).is_empty());
    let header = Header::read(&msg);
    assert_eq!(header.sending_application, "EAI");
    assert_eq!(header.message_type, "");
    assert_eq!(header.control_id, "");
    assert_eq!(header.version, "");
    assert_eq!(header.charset, Charset::Ascii);
    assert_eq!(header.accept_ack, None);
    let pid = msg.segment("PID").unwrap();
    assert_eq!(pid.raw(), b"PID|1", "a final segment may lack its \\r");
    assert!(pid.field(2).is_empty());
}

#[test]
fn z_segments_are_ordinary_segments() {
    let raw = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r\
ZBE|MVT123^CHU|20240101120000||INSERT|N\rZFU|1|CHIRURGIE^UF42\r";
    let msg = Message::parse(raw).unwrap();
    let zbe = msg.segment("ZBE").unwrap();
    assert_eq!(zbe.field(1).component(2).raw(), b"CHU");
    assert_eq!(zbe.field(4).raw(), b"INSERT");
    assert_eq!(
        msg.segment("ZFU").unwrap().field(2).component(2).raw(),
        b"UF42"
    );
    let ids: Vec<&[u8]> = msg.segments().map(|s| s.id()).collect();
    assert_eq!(ids, [&b"MSH"[..], b"ZBE", b"ZFU"]);
}

// ---- segment endings ----

#[test]
fn lf_endings_are_not_segment_ends_in_strict_mode() {
    let raw = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\nPID|1||123\n";
    let strict = Message::parse(raw).unwrap();
    assert_eq!(
        strict.segments().count(),
        1,
        "one segment: LF is data on the wire"
    );
    assert!(strict.segment("PID").is_none());
    let lenient = lenient(raw);
    assert_eq!(lenient.segments().count(), 2);
    assert_eq!(lenient.segment("PID").unwrap().raw(), b"PID|1||123");
}

#[test]
fn lenient_mode_takes_crlf_and_skips_empty_lines() {
    let raw = b"MSH|^~\\&|A\r\n\r\nPID|1\r\n\nOBX|1\r\n";
    let msg = lenient(raw);
    let segs: Vec<&[u8]> = msg.segments().map(|s| s.raw()).collect();
    assert_eq!(segs, [&b"MSH|^~\\&|A"[..], b"PID|1", b"OBX|1"]);
}

#[test]
fn bom_is_skipped_only_in_lenient_mode_and_kept_in_raw() {
    let raw = b"\xEF\xBB\xBFMSH|^~\\&|A\nPID|1\n";
    assert_eq!(Message::parse(raw).unwrap_err(), ParseError::NoHeader);
    let msg = lenient(raw);
    assert_eq!(msg.raw(), raw);
    assert_eq!(msg.header().raw(), b"MSH|^~\\&|A");
}

/// On the wire, a BOM and whitespace before MSH are skipped, reported
/// by `Leading`, and kept in `raw`.
#[test]
fn f1_bom_and_whitespace_before_msh_are_skipped_on_the_wire() {
    let cases: [(&[u8], Leading); 4] = [
        (b"MSH|^~\\&|A|F\rPID|1\r", Leading::default()),
        (
            b"\xEF\xBB\xBFMSH|^~\\&|A|F\rPID|1\r",
            Leading {
                bom: true,
                whitespace: 0,
            },
        ),
        (
            b" \r\n\tMSH|^~\\&|A|F\rPID|1\r",
            Leading {
                bom: false,
                whitespace: 4,
            },
        ),
        (
            b"\xEF\xBB\xBF\n\nMSH|^~\\&|A|F\rPID|1\r",
            Leading {
                bom: true,
                whitespace: 2,
            },
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(Leading::of(raw), want, "{raw:?}");
        assert_eq!(Leading::of(raw).is_empty(), want == Leading::default());
        let msg = Message::parse_with(raw, ParseOptions::wire()).unwrap();
        assert_eq!(msg.raw(), raw);
        assert_eq!(msg.header().raw(), b"MSH|^~\\&|A|F");
        assert_eq!(msg.header().field(4).raw(), b"F");
        assert_eq!(msg.segments().count(), 2);
    }
    // LF-ended segments (files) end MSH too; a BOM after whitespace is data.
    let lf = Message::parse_with(b"\nMSH|^~\\&|A\nPID|1", ParseOptions::wire()).unwrap();
    assert_eq!(lf.segments().count(), 2);
    assert_eq!(lf.header().raw(), b"MSH|^~\\&|A");
    let late_bom = b" \xEF\xBB\xBFMSH|^~\\&|A\r";
    assert_eq!(
        Message::parse_with(late_bom, ParseOptions::wire()).unwrap_err(),
        ParseError::NoHeader
    );
}

#[test]
fn strict_mode_ignores_empty_segments() {
    let msg = Message::parse(b"\rMSH|^~\\&|A\r\rPID|1\r\r").unwrap();
    assert_eq!(msg.segments().count(), 2);
}

// ---- delimiters ----

#[test]
fn bad_headers_are_refused() {
    let cases: [(&[u8], ParseError); 10] = [
        (b"", ParseError::NoHeader),
        (b"\r\r", ParseError::NoHeader),
        (b"PID|1\rMSH|^~\\&|A\r", ParseError::NoHeader),
        (b"MS", ParseError::NoHeader),
        (b"MSH", ParseError::BadDelimiters),
        (b"MSH|", ParseError::BadDelimiters),
        (b"MSH|^|A", ParseError::BadDelimiters),
        (b"MSH|^~\\&^|A", ParseError::BadDelimiters),
        (b"MSH|^~a&|A", ParseError::BadDelimiters),
        (b"MSHX^~\\&X", ParseError::BadDelimiters),
    ];
    for (raw, want) in cases {
        assert_eq!(
            Message::parse(raw).unwrap_err(),
            want,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(
        Message::parse(b"MSH|^~\\&|^")
            .unwrap()
            .header()
            .field(3)
            .raw(),
        b"^"
    );
    assert_eq!(
        Message::parse(b"MSH|^~ &|A").unwrap_err(),
        ParseError::BadDelimiters
    );
    assert_eq!(
        Message::parse(b"MSH|^~\\\x01|A").unwrap_err(),
        ParseError::BadDelimiters
    );
    assert_eq!(
        Message::parse(b"MSH|^~\\&|\xFF")
            .unwrap()
            .header()
            .field(3)
            .raw(),
        b"\xFF"
    );
    assert_eq!(
        Message::parse(b"MSH|^~\\&|A|||||||\xFF")
            .unwrap()
            .header()
            .field(3)
            .raw(),
        b"A"
    );
}

#[test]
fn default_delimiters_are_the_recommended_ones() {
    let d = Delimiters::default();
    assert_eq!(d.encoding_characters(), b"^~\\&");
    assert_eq!(Message::parse(ADT).unwrap().delimiters(), d);
}

#[test]
fn v27_msh2_with_truncation_character() {
    let raw =
        b"MSH|^~\\&#|EAI|CHU|DPI|CHU|20240101||ADT^A01^ADT_A01|1|P|2.7\rNTE|1||Texte tronqu\\P\\\r";
    let msg = Message::parse(raw).unwrap();
    let d = msg.delimiters();
    assert_eq!(d.truncation, Some(b'#'));
    assert_eq!(d.subcomponent, b'&');
    assert_eq!(d.encoding_characters(), b"^~\\&#");
    assert_eq!(msg.header().field(2).raw(), b"^~\\&#");
    assert_eq!(msg.header().field(3).raw(), b"EAI");
    assert_eq!(Header::read(&msg).version, "2.7");
    let nte = msg.segment("NTE").unwrap().field(3);
    assert_eq!(nte.unescaped().as_ref(), b"Texte tronqu#");
    assert_eq!(escape(b"a#b", &d).as_ref(), b"a\\P\\b");
}

#[test]
fn short_msh2_without_subcomponent_or_escape() {
    let three = Message::parse(b"MSH|^~\\|A&B\rPID|1|x&y^z\\F\\\r").unwrap();
    let d = three.delimiters();
    assert_eq!((d.escape, d.subcomponent), (Some(b'\\'), b'^'));
    assert_eq!(d.encoding_characters(), b"^~\\");
    let f = three.segment("PID").unwrap().field(2);
    assert_eq!(
        f.component(1).subcomponent(1).raw(),
        b"x&y",
        "& is data here"
    );
    assert_eq!(f.component(2).unescaped().as_ref(), b"z|");

    let two = Message::parse(b"MSH|^~|A\rPID|1|a\\F\\\r").unwrap();
    assert_eq!(two.delimiters().escape, None);
    assert_eq!(two.delimiters().encoding_characters(), b"^~");
    let f = two.segment("PID").unwrap().field(2);
    assert_eq!(
        f.unescaped().as_ref(),
        b"a\\F\\",
        "no escape character declared"
    );
}

#[test]
fn alternative_delimiters() {
    let raw = b"MSH#$*!@#EAI$1.2.3$ISO#CHU\rPID#1##123$$$CHU*456$$$INS##A!S!B@C\r";
    let msg = Message::parse(raw).unwrap();
    let d = msg.delimiters();
    assert_eq!(
        (d.field, d.component, d.repetition, d.escape, d.subcomponent),
        (b'#', b'$', b'*', Some(b'!'), b'@')
    );
    assert_eq!(msg.header().field(3).component(2).raw(), b"1.2.3");
    let pid = msg.segment("PID").unwrap();
    assert_eq!(pid.field(3).repetition(2).component(4).raw(), b"INS");
    assert_eq!(pid.field(5).unescaped().as_ref(), b"A$B@C");
    assert_eq!(pid.field(5).subcomponent(2).raw(), b"C");
}

// ---- batches ----

const BATCH: &[u8] = b"FHS|^~\\&|EAI|CHU|DPI|CHU|20240101||fichier.hl7||FIC42\r\
BHS|^~\\&|EAI|CHU|DPI|CHU|20240101||||LOT7\r\
MSH|^~\\&|EAI|CHU|DPI|CHU|20240101||ADT^A08^ADT_A01|M1|P|2.5|||AL|NE||8859/15\r\
PID|1||1\r\
MSH|^~\\&|EAI|CHU|DPI|CHU|20240101||ADT^A08^ADT_A01|M2|P|2.5|||AL|NE||8859/15\r\
PID|1||2\r\
BTS|2\r\
FTS|1\r";

#[test]
fn batch_file_is_recognised_with_its_header() {
    let msg = Message::parse(BATCH).unwrap();
    assert!(msg.is_batch());
    assert_eq!(msg.header().id(), b"FHS");
    assert_eq!(msg.header().field(2).raw(), b"^~\\&");
    assert_eq!(msg.first_msh().unwrap().field(10).raw(), b"M1");
    assert_eq!(msg.segments().filter(|s| s.id() == b"MSH").count(), 2);
    assert_eq!(msg.segments().last().unwrap().id(), b"FTS");
    assert_eq!(msg.charset(), Charset::Latin9);
    let header = Header::read(&msg);
    assert_eq!(header.message_type, "FHS");
    assert_eq!(header.control_id, "FIC42");
    assert_eq!(header.sending_application, "EAI");
    assert_eq!(header.version, "2.5");
    assert_eq!(header.accept_ack, Some(AckMode::Always));
    assert_eq!(header.trigger(), "");
}

#[test]
fn batch_may_start_with_bhs() {
    let raw = b"BHS|^~\\&|EAI|CHU|DPI|CHU|20240101||||LOT7\rMSH|^~\\&|A\rBTS|1\r";
    let msg = Message::parse(raw).unwrap();
    assert!(msg.is_batch());
    assert_eq!(Header::read(&msg).control_id, "LOT7");
    assert!(!Message::parse(ADT).unwrap().is_batch());
    let empty = Message::parse(b"FHS|^~\\&|A\rFTS|0\r").unwrap();
    assert!(empty.first_msh().is_none());
    assert_eq!(empty.charset(), Charset::Ascii);
}

// ---- escapes ----

fn unesc(raw: &[u8]) -> Vec<u8> {
    unescape(raw, &Delimiters::default()).into_owned()
}

#[test]
fn each_escape_sequence_decodes() {
    assert_eq!(unesc(b"a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"), b"a|b^c&d~e\\f");
    assert_eq!(unesc(b"\\X0D0A\\"), b"\r\n");
    assert_eq!(unesc(b"x\\Xc3a9\\y"), "xéy".as_bytes());
    assert_eq!(unesc(b"ligne 1\\.br\\ligne 2"), b"ligne 1\nligne 2");
}

#[test]
fn unknown_and_malformed_sequences_pass_through() {
    for raw in [
        &b"\\H\\gras\\N\\"[..],
        b"\\.sp2\\",
        b"\\C2842\\",
        b"\\Zlocal\\",
        b"\\X\\",
        b"\\X4\\",
        b"\\XZZ\\",
        b"\\\\",
        b"C:\\dossier",
        b"fin\\",
        b"\\F",
        b"\\P\\",
    ] {
        assert_eq!(unesc(raw), raw, "{:?}", String::from_utf8_lossy(raw));
    }
    assert_eq!(
        unesc(b"\\Q\\F\\"),
        b"\\Q\\F\\",
        "a sequence closes at the next escape"
    );
    assert_eq!(unesc(b"\\Q\\\\F\\"), b"\\Q\\|");
    assert!(matches!(
        unescape(b"plain", &Delimiters::default()),
        Cow::Borrowed(_)
    ));
}

#[test]
fn non_ascii_next_to_escapes_survives_latin9() {
    let raw = b"MSH|^~\\&|A|||||||1|P|2.5||||||8859/15\rPID|1||||H\xF4pital\\T\\Clinique^S\xBDur\\F\\\xA4\r";
    let msg = Message::parse(raw).unwrap();
    assert_eq!(msg.charset(), Charset::Latin9);
    let name = msg.segment("PID").unwrap().field(5);
    assert_eq!(
        name.component(1).unescaped().as_ref(),
        b"H\xF4pital&Clinique"
    );
    assert_eq!(name.component(1).text(msg.charset()), "Hôpital&Clinique");
    assert_eq!(name.component(2).text(msg.charset()), "Sœur|€");
}

#[test]
fn non_ascii_next_to_escapes_survives_utf8() {
    let raw = "MSH|^~\\&|A|||||||1|P|2.5||||||UNICODE UTF-8\rPID|1||||Hôpital\\T\\Clinique^Œuvre\\S\\é\\XC3A8\\ü\r";
    let msg = Message::parse(raw.as_bytes()).unwrap();
    assert_eq!(msg.charset(), Charset::Utf8);
    let name = msg.segment("PID").unwrap().field(5);
    assert_eq!(
        name.component(1).unescaped().as_ref(),
        "Hôpital&Clinique".as_bytes()
    );
    assert_eq!(name.component(1).text(Charset::Utf8), "Hôpital&Clinique");
    assert_eq!(name.component(2).text(Charset::Utf8), "Œuvre^éèü");
}

#[test]
fn escape_encodes_delimiters_and_line_breaks() {
    let d = Delimiters::default();
    assert_eq!(
        escape(b"a|b^c&d~e\\f", &d).as_ref(),
        b"a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    );
    assert_eq!(
        escape(b"1\r2\n3\x0b4\x1c", &d).as_ref(),
        b"1\\X0D\\2\\X0A\\3\\X0B\\4\\X1C\\"
    );
    assert_eq!(
        escape("Hôpital & Clinique".as_bytes(), &d).as_ref(),
        "Hôpital \\T\\ Clinique".as_bytes()
    );
    assert!(matches!(escape(b"rien", &d), Cow::Borrowed(_)));
    let no_escape = Delimiters { escape: None, ..d };
    assert_eq!(escape(b"a|b^c\rd", &no_escape).as_ref(), b"a b c d");
}

// ---- character sets ----

/// The 8 places where 8859-15 and 8859-1 differ.
const LATIN9_DIFFS: [(u8, char, char); 8] = [
    (0xA4, '€', '¤'),
    (0xA6, 'Š', '¦'),
    (0xA8, 'š', '¨'),
    (0xB4, 'Ž', '´'),
    (0xB8, 'ž', '¸'),
    (0xBC, 'Œ', '¼'),
    (0xBD, 'œ', '½'),
    (0xBE, 'Ÿ', '¾'),
];

#[test]
fn latin9_and_latin1_differ_exactly_at_eight_bytes() {
    for (byte, latin9, latin1) in LATIN9_DIFFS {
        assert_eq!(Charset::Latin9.decode(&[byte]), latin9.to_string());
        assert_eq!(Charset::Latin1.decode(&[byte]), latin1.to_string());
        assert_eq!(Charset::Latin9.encode(&latin9.to_string()).unwrap(), [byte]);
        assert_eq!(Charset::Latin1.encode(&latin1.to_string()).unwrap(), [byte]);
        let err = Charset::Latin9.encode(&latin1.to_string()).unwrap_err();
        assert_eq!(
            err,
            Unrepresentable {
                character: latin1,
                charset: Charset::Latin9
            }
        );
        assert!(Charset::Latin1.encode(&latin9.to_string()).is_err());
    }
    let same =
        (0..=255u8).filter(|b| Charset::Latin9.decode(&[*b]) == Charset::Latin1.decode(&[*b]));
    assert_eq!(same.count(), 248);
}

#[test]
fn single_byte_sets_round_trip_every_byte() {
    let all: Vec<u8> = (0..=255).collect();
    for cs in [Charset::Latin1, Charset::Latin9] {
        let text = cs.decode(&all);
        assert_eq!(text.chars().count(), 256);
        assert_eq!(cs.encode(&text).unwrap(), all, "{cs:?}");
    }
    assert_eq!(
        Charset::Latin1.decode(&[0x80, 0xE9]),
        "\u{80}é",
        "ISO, not Windows-1252"
    );
}

#[test]
fn msh18_names() {
    let cases: [(&[u8], Charset); 10] = [
        (b"", Charset::Ascii),
        (b"ASCII", Charset::Ascii),
        (b"8859/1", Charset::Latin1),
        (b"8859/15", Charset::Latin9),
        (b" 8859/15 ", Charset::Latin9),
        (b"UNICODE UTF-8", Charset::Utf8),
        (b"unicode utf-8", Charset::Utf8),
        (b"UTF-8", Charset::Utf8),
        (b"8859/2", Charset::Other),
        (b"UNICODE", Charset::Other),
    ];
    for (name, want) in cases {
        assert_eq!(
            Charset::from_msh18(name),
            want,
            "{:?}",
            String::from_utf8_lossy(name)
        );
    }
    for cs in [
        Charset::Ascii,
        Charset::Latin1,
        Charset::Latin9,
        Charset::Utf8,
    ] {
        assert_eq!(Charset::from_msh18(cs.name().as_bytes()), cs);
    }
    assert_eq!(Charset::Other.name(), "");
}

#[test]
fn empty_msh18_decodes_leniently() {
    assert!(matches!(
        Charset::Ascii.decode(b"DUPONT"),
        Cow::Borrowed("DUPONT")
    ));
    assert_eq!(
        Charset::Ascii.decode("Hélène".as_bytes()),
        "Hélène",
        "valid UTF-8 is UTF-8"
    );
    assert_eq!(
        Charset::Ascii.decode(b"H\xE9l\xE8ne c\xBDur"),
        "Hélène cœur",
        "else 8859-15"
    );
    assert_eq!(
        Charset::Other.decode(b"\xBD"),
        "½",
        "unknown names read as 8859-1"
    );
    assert_eq!(Charset::Utf8.decode(b"a\xFFb"), "a\u{FFFD}b");
    assert!(Charset::Ascii.encode("é").is_err());
    assert_eq!(Charset::Ascii.encode_lossy("é€"), b"??");
    assert_eq!(Charset::Utf8.encode("é€").unwrap(), "é€".as_bytes());
}

// ---- header and ACK summary ----

#[test]
fn header_reads_msh_metadata() {
    let raw = b"MSH|^~\\&|EAI^1.2.3^ISO|CHU|DPI|CHU^4.5^ISO|20240101||ADT^A01^ADT_A01|ID\\F\\1|P^T|2.5^FRA^2.11|||AL|ER|FRA|8859/15~UNICODE UTF-8\rPID|1||||DUPONT^JEAN\r";
    let msg = Message::parse(raw).unwrap();
    let h = Header::read(&msg);
    assert_eq!(h.sending_application, "EAI^1.2.3^ISO");
    assert_eq!(h.sending_facility, "CHU");
    assert_eq!(h.receiving_application, "DPI");
    assert_eq!(h.receiving_facility, "CHU^4.5^ISO");
    assert_eq!(h.message_type, "ADT^A01^ADT_A01");
    assert_eq!((h.code(), h.trigger()), ("ADT", "A01"));
    assert_eq!(h.control_id, "ID\\F\\1", "as written");
    assert_eq!(h.processing_id, "P^T");
    assert_eq!(h.version, "2.5^FRA^2.11");
    assert_eq!(
        (h.accept_ack, h.application_ack),
        (Some(AckMode::Always), Some(AckMode::Error))
    );
    assert_eq!(h.charset, Charset::Latin9, "first repetition of MSH-18");
    assert!(h.is_enhanced_mode());
    assert!(!h.is_ack());
    assert!(!format!("{h:?}").contains("DUPONT"));
}

#[test]
fn message_type_parts_with_other_separators() {
    let msg = Message::parse(b"MSH#$*!@#A######ACK$R01#1\r").unwrap();
    let h = Header::read(&msg);
    assert_eq!((h.code(), h.trigger()), ("ACK", "R01"));
    assert!(h.is_ack());
    let bare = Header::read(&Message::parse(b"MSH|^~\\&|||||||ACK|1\r").unwrap());
    assert_eq!((bare.code(), bare.trigger()), ("ACK", ""));
}

#[test]
fn ack_modes_and_codes() {
    assert_eq!(AckMode::from_code(b"AL"), Some(AckMode::Always));
    assert_eq!(AckMode::from_code(b" ne "), Some(AckMode::Never));
    assert_eq!(AckMode::from_code(b"ER"), Some(AckMode::Error));
    assert_eq!(AckMode::from_code(b"SU"), Some(AckMode::Success));
    assert_eq!(AckMode::from_code(b" "), None);
    assert_eq!(AckMode::from_code(b"XX"), None);
    for code in ["AA", "AE", "AR", "CA", "CE", "CR"] {
        assert_eq!(AckCode::from_code(code.as_bytes()).unwrap().as_str(), code);
    }
    assert_eq!(AckCode::from_code(b"OK"), None);
    assert!(AckCode::AA.is_accept() && AckCode::CA.is_accept() && !AckCode::AE.is_accept());
    assert!(AckCode::CE.is_commit() && !AckCode::AR.is_commit());
}

#[test]
fn ack_summary_reads_msa() {
    let raw = b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240101||ACK^A01^ACK|A1|P|2.5\rMSA|AE|MSG1|Erreur\r";
    let summary = AckSummary::read(&Message::parse(raw).unwrap()).unwrap();
    assert_eq!(
        summary,
        AckSummary {
            code: Some(AckCode::AE),
            acknowledged_id: "MSG1".into()
        }
    );
    let odd = b"MSH|^~\\&|A\rMSA|ZZ\r";
    let summary = AckSummary::read(&Message::parse(odd).unwrap()).unwrap();
    assert_eq!((summary.code, summary.acknowledged_id.as_str()), (None, ""));
    assert!(AckSummary::read(&Message::parse(ADT).unwrap()).is_none());
}

#[test]
fn debug_output_carries_no_content() {
    let msg = Message::parse(ADT).unwrap();
    let pid = msg.segment("PID").unwrap();
    let shown = format!("{msg:?} {pid:?} {:?}", pid.field(5));
    assert!(!shown.contains("DUPONT"), "{shown}");
    assert!(shown.contains("PID"));
}
