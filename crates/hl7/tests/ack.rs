//! Golden ACKs: the exact bytes for each mode, code and version rule, and
//! the enhanced-mode truth table.

use guichet_hl7::{
    accept_ack_due, application_ack_due, build_ack, build_reject_for_unparseable, AckCode, AckMode,
    AckRequest, AckSummary, ErrorCode, ErrorDetail, Header, Message, Severity,
};

const V231: &[u8] = b"MSH|^~\\&|EAI|CHU^1.2.250.1.71.4.2.2^ISO|DPI|HOPITAL|20240102030405||ADT^A01|MSG00001|P|2.3.1\r\
EVN|A01|20240102030405\r\
PID|1||12345^^^CHU^PI||DUPONT^JEAN\r";

const V25: &[u8] = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240102030405||ADT^A04^ADT_A01|MSG2|P|2.5\rPID|1\r";

const ENHANCED: &[u8] =
    b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240102030405||ADT^A08^ADT_A01|MSG4|P|2.5.1|||AL|NE\rPID|1\r";

fn request(code: AckCode) -> AckRequest<'static> {
    AckRequest {
        code,
        control_id: "ACK1",
        timestamp: "20240102030406",
        text: None,
        error: None,
    }
}

fn error(code: ErrorCode, severity: Severity, location: Option<&str>) -> Option<ErrorDetail<'_>> {
    Some(ErrorDetail {
        code,
        severity,
        location,
    })
}

/// The ACK for `original`, checked to parse back and to answer it.
fn ack(original: &[u8], req: &AckRequest<'_>) -> Vec<u8> {
    let msg = Message::parse(original).unwrap();
    let out = build_ack(&msg, req);
    let parsed = Message::parse(&out).unwrap();
    let summary = AckSummary::read(&parsed).unwrap();
    assert_eq!(summary.code, Some(req.code));
    assert_eq!(summary.acknowledged_id, Header::read(&msg).control_id);
    out
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "\\r\n")
}

fn assert_bytes(got: &[u8], want: &[u8]) {
    assert!(got == want, "got:\n{}\nwant:\n{}", show(got), show(want));
}

#[test]
fn aa_original_mode_v231_has_no_err() {
    let got = ack(V231, &request(AckCode::AA));
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|HOPITAL|EAI|CHU^1.2.250.1.71.4.2.2^ISO|20240102030406||ACK^A01^ACK|ACK1|P|2.3.1\r\
MSA|AA|MSG00001\r",
    );
}

#[test]
fn ae_v231_puts_the_text_in_msa3_only() {
    let req = AckRequest {
        text: Some("Champ obligatoire manquant"),
        error: error(
            ErrorCode::RequiredFieldMissing,
            Severity::Error,
            Some("PID^1^3"),
        ),
        ..request(AckCode::AE)
    };
    let got = ack(V231, &req);
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|HOPITAL|EAI|CHU^1.2.250.1.71.4.2.2^ISO|20240102030406||ACK^A01^ACK|ACK1|P|2.3.1\r\
MSA|AE|MSG00001|Champ obligatoire manquant\r",
    );
}

#[test]
fn ae_v25_has_err_with_table_0357_code() {
    let req = AckRequest {
        text: Some("PID-3 manquant"),
        error: error(
            ErrorCode::RequiredFieldMissing,
            Severity::Error,
            Some("PID^1^3"),
        ),
        ..request(AckCode::AE)
    };
    let got = ack(V25, &req);
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK^A04^ACK|ACK1|P|2.5\r\
MSA|AE|MSG2|PID-3 manquant\r\
ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 manquant\r",
    );
}

#[test]
fn ae_v25_without_error_detail_has_no_err() {
    let req = AckRequest {
        text: Some("Refus"),
        ..request(AckCode::AE)
    };
    let got = ack(V25, &req);
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK^A04^ACK|ACK1|P|2.5\rMSA|AE|MSG2|Refus\r",
    );
}

#[test]
fn ar_v251_fatal() {
    let original =
        b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240102030405||ORU^R01^ORU_R01|MSG3|T|2.5.1\rOBX|1\r";
    let req = AckRequest {
        error: error(ErrorCode::UnsupportedMessageType, Severity::Fatal, None),
        ..request(AckCode::AR)
    };
    let got = ack(original, &req);
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK^R01^ACK|ACK1|T|2.5.1\r\
MSA|AR|MSG3\r\
ERR|||200^Unsupported message type^HL70357|F\r",
    );
}

#[test]
fn enhanced_mode_commit_acks() {
    let head = b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK^A08^ACK|ACK1|P|2.5.1\r";
    let ca = ack(ENHANCED, &request(AckCode::CA));
    assert_bytes(&ca, &[&head[..], b"MSA|CA|MSG4\r"].concat());

    let ce = AckRequest {
        text: Some("File pleine"),
        error: error(ErrorCode::ApplicationInternalError, Severity::Error, None),
        ..request(AckCode::CE)
    };
    let want_ce =
        b"MSA|CE|MSG4|File pleine\rERR|||207^Application internal error^HL70357|E||||File pleine\r";
    assert_bytes(&ack(ENHANCED, &ce), &[&head[..], want_ce].concat());

    let cr = AckRequest {
        error: error(ErrorCode::UnsupportedProcessingId, Severity::Error, None),
        ..request(AckCode::CR)
    };
    let want_cr = b"MSA|CR|MSG4\rERR|||202^Unsupported processing id^HL70357|E\r";
    assert_bytes(&ack(ENHANCED, &cr), &[&head[..], want_cr].concat());
}

#[test]
fn french_message_echoes_version_and_charset_and_writes_latin9() {
    let original = b"MSH|^~\\&|ADT_EAI|CHU_X^1.2.250.1.71.4.2.2^ISO|DPI|CHU_X|20240102030405||ADT^A01^ADT_A01|123|P|2.5^FRA^2.11|||||FRA|8859/15\r\
PID|1||||M\xC9LENCHON^J\xC9R\xD4ME\r";
    let req = AckRequest {
        text: Some("Sœur Hélène : dossier verrouillé"),
        error: error(
            ErrorCode::ApplicationRecordLocked,
            Severity::Error,
            Some("PV1^1^19"),
        ),
        ..request(AckCode::AE)
    };
    let got = ack(original, &req);
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|CHU_X|ADT_EAI|CHU_X^1.2.250.1.71.4.2.2^ISO|20240102030406||ACK^A01^ACK|ACK1|P|2.5^FRA^2.11||||||8859/15\r\
MSA|AE|123|S\xBDur H\xE9l\xE8ne : dossier verrouill\xE9\r\
ERR||PV1^1^19|206^Application record locked^HL70357|E||||S\xBDur H\xE9l\xE8ne : dossier verrouill\xE9\r",
    );
}

#[test]
fn text_is_escaped_with_default_delimiters() {
    let req = AckRequest {
        text: Some("a|b^c&d~e\\f"),
        control_id: "A|1",
        ..request(AckCode::AE)
    };
    let got = ack(V25, &req);
    assert_bytes(
        &got,
        b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK^A04^ACK|A\\F\\1|P|2.5\r\
MSA|AE|MSG2|a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\r",
    );
}

#[test]
fn text_is_escaped_with_the_message_own_delimiters() {
    let original =
        b"MSH#$*!@#EAI$1.2.3$ISO#CHU#DPI#CHU#20240102030405##ADT$A01$ADT_A01#MSG5#P#2.5\rPID#1\r";
    let text = "a|b^c&d~e\\f#g$h*i!j@k";
    let req = AckRequest {
        text: Some(text),
        error: error(
            ErrorCode::ApplicationInternalError,
            Severity::Error,
            Some("PID^1^3"),
        ),
        ..request(AckCode::AE)
    };
    let got = ack(original, &req);
    assert_bytes(
        &got,
        b"MSH#$*!@#DPI#CHU#EAI$1.2.3$ISO#CHU#20240102030406##ACK$A01$ACK#ACK1#P#2.5\r\
MSA#AE#MSG5#a|b^c&d~e\\f!F!g!S!h!R!i!E!j!T!k\r\
ERR##PID$1$3#207$Application internal error$HL70357#E####a|b^c&d~e\\f!F!g!S!h!R!i!E!j!T!k\r",
    );
    let parsed = Message::parse(&got).unwrap();
    let back = parsed
        .segment("MSA")
        .unwrap()
        .field(3)
        .text(parsed.charset());
    assert_eq!(back, text);
}

#[test]
fn v27_truncation_character_is_kept_and_escaped() {
    let original = b"MSH|^~\\&#|EAI|CHU|DPI|CHU|20240102030405||ADT^A01^ADT_A01|MSG6|P|2.7\r";
    let req = AckRequest {
        text: Some("lot #1"),
        ..request(AckCode::AA)
    };
    assert_bytes(
        &ack(original, &req),
        b"MSH|^~\\&#|DPI|CHU|EAI|CHU|20240102030406||ACK^A01^ACK|ACK1|P|2.7\rMSA|AA|MSG6|lot \\P\\1\r",
    );
}

#[test]
fn no_trigger_gives_plain_ack_and_ascii_text_is_lossy() {
    let original = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240102030405||QRY|MSG7|P|2.3\r";
    let req = AckRequest {
        text: Some("Refusé"),
        ..request(AckCode::AR)
    };
    assert_bytes(
        &ack(original, &req),
        b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK|ACK1|P|2.3\rMSA|AR|MSG7|Refus?\r",
    );
}

#[test]
fn batch_is_answered_at_its_header() {
    let original = b"FHS|^~\\&|EAI|CHU|DPI|CHU|20240101||f.hl7||FIC42\rMSH|^~\\&|EAI|CHU|DPI|CHU|20240101||ADT^A08|M1|P|2.5\rFTS|1\r";
    assert_bytes(
        &ack(original, &request(AckCode::AA)),
        b"MSH|^~\\&|DPI|CHU|EAI|CHU|20240102030406||ACK|ACK1|P|2.5\rMSA|AA|FIC42\r",
    );
}

#[test]
fn reject_for_unparseable_frame() {
    let req = AckRequest {
        text: Some("Pas de segment MSH"),
        control_id: "ACK9",
        ..request(AckCode::AR)
    };
    assert_bytes(
        &build_reject_for_unparseable(&req),
        b"MSH|^~\\&|||||20240102030406||ACK|ACK9||2.5\r\
MSA|AR||Pas de segment MSH\r\
ERR|||100^Segment sequence error^HL70357|E||||Pas de segment MSH\r",
    );
    let detail = AckRequest {
        error: error(ErrorCode::UnsupportedVersionId, Severity::Fatal, None),
        ..request(AckCode::AR)
    };
    assert_bytes(
        &build_reject_for_unparseable(&detail),
        b"MSH|^~\\&|||||20240102030406||ACK|ACK1||2.5\rMSA|AR\rERR|||203^Unsupported version id^HL70357|F\r",
    );
}

#[test]
fn err_follows_the_numeric_version() {
    let with_version = |v: &str| {
        let raw = format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|{v}\r");
        let req = AckRequest {
            error: error(ErrorCode::ApplicationInternalError, Severity::Error, None),
            ..request(AckCode::AE)
        };
        let out = build_ack(&Message::parse(raw.as_bytes()).unwrap(), &req);
        Message::parse(&out).unwrap().segment("ERR").is_some()
    };
    for v in [
        "2.5",
        "2.5.1",
        "2.6",
        "2.7.1",
        "2.8",
        "2.10",
        "3",
        "2.5^FRA^2.11",
    ] {
        assert!(with_version(v), "{v} has ERR");
    }
    for v in ["2.1", "2.3", "2.3.1", "2.4", "", "x.y", "2.4^FRA"] {
        assert!(!with_version(v), "{v} has no ERR");
    }
}

// ---- when an ACK is due ----

fn header(msh15: &str, msh16: &str) -> Header {
    let raw = format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5|||{msh15}|{msh16}\r");
    Header::read(&Message::parse(raw.as_bytes()).unwrap())
}

const ALL: [AckCode; 6] = [
    AckCode::AA,
    AckCode::AE,
    AckCode::AR,
    AckCode::CA,
    AckCode::CE,
    AckCode::CR,
];

/// The codes for which an ACK is due under each table 0155 value.
fn expected(mode: &str, kind: [AckCode; 3]) -> Vec<AckCode> {
    let [ok, error, reject] = kind;
    match mode {
        "AL" | "" => vec![ok, error, reject],
        "NE" => vec![],
        "ER" => vec![error, reject],
        "SU" => vec![ok],
        other => panic!("no such mode {other}"),
    }
}

#[test]
fn original_mode_always_application_ack_never_accept_ack() {
    let h = header("", "");
    assert!(!h.is_enhanced_mode());
    for code in ALL {
        assert!(!accept_ack_due(&h, code), "{code:?}");
        assert_eq!(application_ack_due(&h, code), !code.is_commit(), "{code:?}");
    }
}

#[test]
fn enhanced_mode_truth_table() {
    let commit = [AckCode::CA, AckCode::CE, AckCode::CR];
    let application = [AckCode::AA, AckCode::AE, AckCode::AR];
    for m15 in ["AL", "NE", "ER", "SU", ""] {
        for m16 in ["AL", "NE", "ER", "SU", ""] {
            if m15.is_empty() && m16.is_empty() {
                continue;
            }
            let h = header(m15, m16);
            assert!(h.is_enhanced_mode());
            let accept = expected(m15, commit);
            let app = expected(m16, application);
            for code in ALL {
                assert_eq!(
                    accept_ack_due(&h, code),
                    accept.contains(&code),
                    "MSH-15 {m15} MSH-16 {m16} {code:?}"
                );
                assert_eq!(
                    application_ack_due(&h, code),
                    app.contains(&code),
                    "MSH-15 {m15} MSH-16 {m16} {code:?}"
                );
            }
        }
    }
}

#[test]
fn ack_modes_are_read_from_msh15_and_msh16() {
    let h = header("ER", "SU");
    assert_eq!(
        (h.accept_ack, h.application_ack),
        (Some(AckMode::Error), Some(AckMode::Success))
    );
    assert!(
        !header("XX", " ").is_enhanced_mode(),
        "unknown values: original mode"
    );
}
