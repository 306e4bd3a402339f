//! Building acknowledgments (HL7 chapter 2, original and enhanced modes).
//!
//! The gateway answers senders itself in store-and-forward mode and when a
//! frame must be refused, so the ACK has to be exactly what the sender's
//! engine expects: its own delimiters, version and character set echoed,
//! applications swapped, MSA-2 repeating its MSH-10. Values copied from the
//! original are copied as written (never decoded and re-encoded); texts the
//! caller gives are encoded in the message's character set and escaped
//! with its delimiters.

use crate::charset::Charset;
use crate::escape::escape;
use crate::header::{AckCode, AckMode, Header, HeaderFields};
use crate::message::{Delimiters, Message};

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRequest<'a> {
    /// MSA-1.
    pub code: AckCode,
    /// The ACK's own MSH-10 (new, unique on the sending side).
    pub control_id: &'a str,
    /// MSH-7, "YYYYMMDDHHMMSS" with an optional zone; given by the caller
    /// because this crate has no clock.
    pub timestamp: &'a str,
    /// MSA-3, and ERR-8 (user message) when an ERR segment is written.
    pub text: Option<&'a str>,
    /// The ERR segment, written for v2.5+ only (older versions have no
    /// ERR-3; MSA-3 carries the text there).
    pub error: Option<ErrorDetail<'a>>,
}

/// The content of an ERR segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorDetail<'a> {
    /// ERR-3, from HL7 table 0357.
    pub code: ErrorCode,
    /// ERR-4.
    pub severity: Severity,
    /// ERR-2, components separated by `^` whatever the message's
    /// delimiters (e.g. "PID^1^3"); written with the message's own.
    pub location: Option<&'a str>,
}

/// HL7 table 0357, message error condition codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0.
    MessageAccepted,
    /// 100.
    SegmentSequenceError,
    /// 101.
    RequiredFieldMissing,
    /// 102.
    DataTypeError,
    /// 103.
    TableValueNotFound,
    /// 200.
    UnsupportedMessageType,
    /// 201.
    UnsupportedEventCode,
    /// 202.
    UnsupportedProcessingId,
    /// 203.
    UnsupportedVersionId,
    /// 204.
    UnknownKeyIdentifier,
    /// 205.
    DuplicateKeyIdentifier,
    /// 206.
    ApplicationRecordLocked,
    /// 207.
    ApplicationInternalError,
}

/// HL7 table 0516, ERR-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// E: the message was not processed as intended.
    Error,
    /// W: processed, with a warning.
    Warning,
    /// I: information only.
    Information,
    /// F: fatal, the receiver cannot go on.
    Fatal,
}

/// The parts of the ACK that come from the original message, as bytes in
/// its encoding.
struct Origin<'a> {
    /// Original MSH-3, MSH-4, MSH-5, MSH-6.
    applications: [&'a [u8]; 4],
    /// Original MSH-9.2.
    trigger: &'a [u8],
    /// Original MSH-10, for MSA-2.
    control_id: &'a [u8],
    processing_id: &'a [u8],
    version: &'a [u8],
    charset_field: &'a [u8],
    /// Original MSH-12.1, which decides whether ERR exists.
    version_id: &'a [u8],
}

/// Writes segments with one message's delimiters and character set.
struct Writer {
    d: Delimiters,
    charset: Charset,
    out: Vec<u8>,
}

impl ErrorCode {
    /// The table 0357 number.
    pub fn code(&self) -> u16 {
        self.entry().0
    }

    /// The table 0357 description, as HL7 spells it.
    pub fn text(&self) -> &'static str {
        self.entry().1
    }

    fn entry(&self) -> (u16, &'static str) {
        match self {
            ErrorCode::MessageAccepted => (0, "Message accepted"),
            ErrorCode::SegmentSequenceError => (100, "Segment sequence error"),
            ErrorCode::RequiredFieldMissing => (101, "Required field missing"),
            ErrorCode::DataTypeError => (102, "Data type error"),
            ErrorCode::TableValueNotFound => (103, "Table value not found"),
            ErrorCode::UnsupportedMessageType => (200, "Unsupported message type"),
            ErrorCode::UnsupportedEventCode => (201, "Unsupported event code"),
            ErrorCode::UnsupportedProcessingId => (202, "Unsupported processing id"),
            ErrorCode::UnsupportedVersionId => (203, "Unsupported version id"),
            ErrorCode::UnknownKeyIdentifier => (204, "Unknown key identifier"),
            ErrorCode::DuplicateKeyIdentifier => (205, "Duplicate key identifier"),
            ErrorCode::ApplicationRecordLocked => (206, "Application record locked"),
            ErrorCode::ApplicationInternalError => (207, "Application internal error"),
        }
    }
}

impl Severity {
    /// The table 0516 code.
    pub fn code(&self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
            Severity::Fatal => "F",
        }
    }
}

/// The ACK for `original`: MSH with sending/receiving application and
/// facility swapped (whole HDs, as written), MSH-9 `ACK^<trigger>^ACK`
/// ("ACK" when the original has no trigger), MSH-10 from the request,
/// MSH-11, MSH-12 and MSH-18 echoed, the original's delimiters; MSA-1 the
/// code, MSA-2 the original MSH-10, MSA-3 the text; ERR for v2.5+ when an
/// error is given. Segments end with "\r"; trailing empty fields are not
/// written.
pub fn build_ack(original: &Message<'_>, req: &AckRequest<'_>) -> Vec<u8> {
    let f = HeaderFields::locate(original);
    let origin = Origin {
        applications: [
            f.sending_application.raw(),
            f.sending_facility.raw(),
            f.receiving_application.raw(),
            f.receiving_facility.raw(),
        ],
        trigger: f.message_type.component(2).raw(),
        control_id: f.control_id.raw(),
        processing_id: f.processing_id.raw(),
        version: f.version.raw(),
        charset_field: f.charset.raw(),
        version_id: f.version.component(1).raw(),
    };
    let writer = Writer::new(original.delimiters(), original.charset());
    writer.ack(&origin, req, req.error)
}

/// The reject for a frame that is not HL7 at all (no usable MSH): default
/// delimiters, version 2.5, ASCII, MSH-3..6 and MSA-2 empty (there is
/// nothing to echo), ERR with the given detail or 100 (segment sequence
/// error) / E.
pub fn build_reject_for_unparseable(req: &AckRequest<'_>) -> Vec<u8> {
    let origin = Origin {
        applications: [b""; 4],
        trigger: b"",
        control_id: b"",
        processing_id: b"",
        version: b"2.5",
        charset_field: b"",
        version_id: b"2.5",
    };
    let fallback = ErrorDetail {
        code: ErrorCode::SegmentSequenceError,
        severity: Severity::Error,
        location: None,
    };
    let writer = Writer::new(Delimiters::default(), Charset::Ascii);
    writer.ack(&origin, req, Some(req.error.unwrap_or(fallback)))
}

/// Enhanced mode: whether the accept (commit) ACK `code` is to be sent,
/// per MSH-15. Original mode has no accept ACK, and an application code
/// (AA/AE/AR) is never an accept ACK.
///
/// HL7 requires both MSH-15 and MSH-16 in enhanced mode; when only one is
/// given, the other is read as AL so that the sender is never left waiting.
pub fn accept_ack_due(header: &Header, code: AckCode) -> bool {
    header.is_enhanced_mode() && code.is_commit() && due(header.accept_ack, code)
}

/// Whether the application ACK `code` (AA/AE/AR) is to be sent. Original
/// mode: always. Enhanced mode: per MSH-16 (AL when empty, see
/// [`accept_ack_due`]). A commit code is never an application ACK.
pub fn application_ack_due(header: &Header, code: AckCode) -> bool {
    if code.is_commit() {
        return false;
    }
    !header.is_enhanced_mode() || due(header.application_ack, code)
}

/// Table 0155 applied to one outcome.
fn due(mode: Option<AckMode>, code: AckCode) -> bool {
    match mode.unwrap_or(AckMode::Always) {
        AckMode::Always => true,
        AckMode::Never => false,
        AckMode::Error => !code.is_accept(),
        AckMode::Success => code.is_accept(),
    }
}

/// Whether MSH-12.1 ("2.5", "2.5.1", "2.10"...) is at least `want`
/// (major, minor), compared as numbers. Unreadable means no.
fn version_at_least(version_id: &[u8], want: (u32, u32)) -> bool {
    let text = std::str::from_utf8(version_id).unwrap_or_default().trim();
    let mut numbers = text.split('.').map(|part| part.parse::<u32>().ok());
    let major = numbers.next().flatten();
    let minor = numbers.next().flatten().unwrap_or(0);
    major.is_some_and(|major| (major, minor) >= want)
}

impl Writer {
    fn new(d: Delimiters, charset: Charset) -> Self {
        Writer {
            d,
            charset,
            out: Vec::with_capacity(256),
        }
    }

    /// MSH, MSA and, when due, ERR.
    fn ack(
        mut self,
        origin: &Origin<'_>,
        req: &AckRequest<'_>,
        error: Option<ErrorDetail<'_>>,
    ) -> Vec<u8> {
        let msh = self.msh(origin, req);
        self.segment(&msh);
        let text = req.text.map(|t| self.text(t)).unwrap_or_default();
        self.segment(&[
            b"MSA".to_vec(),
            req.code.as_str().into(),
            origin.control_id.to_vec(),
            text,
        ]);
        if let Some(error) = error.filter(|_| version_at_least(origin.version_id, (2, 5))) {
            let err = self.err(&error, req.text);
            self.segment(&err);
        }
        self.out
    }

    /// The ACK's MSH fields, from "MSH" (index 0) to MSH-18 (index 17).
    fn msh(&self, origin: &Origin<'_>, req: &AckRequest<'_>) -> Vec<Vec<u8>> {
        let [send_app, send_fac, recv_app, recv_fac] = origin.applications;
        let mut fields = vec![Vec::new(); 18];
        fields[0] = b"MSH".to_vec();
        fields[1] = self.d.encoding_characters();
        fields[2] = recv_app.to_vec();
        fields[3] = recv_fac.to_vec();
        fields[4] = send_app.to_vec();
        fields[5] = send_fac.to_vec();
        fields[6] = self.text(req.timestamp);
        fields[8] = self.message_type(origin.trigger);
        fields[9] = self.text(req.control_id);
        fields[10] = origin.processing_id.to_vec();
        fields[11] = origin.version.to_vec();
        fields[17] = origin.charset_field.to_vec();
        fields
    }

    /// `ACK^<trigger>^ACK`, or `ACK` without a trigger.
    fn message_type(&self, trigger: &[u8]) -> Vec<u8> {
        if trigger.is_empty() {
            return b"ACK".to_vec();
        }
        self.components(&[b"ACK", trigger, b"ACK"])
    }

    /// ERR-2 location, ERR-3 CWE from table 0357, ERR-4 severity, ERR-8
    /// user message.
    fn err(&self, error: &ErrorDetail<'_>, text: Option<&str>) -> Vec<Vec<u8>> {
        let location = error.location.map(|l| self.location(l)).unwrap_or_default();
        let number = error.code.code().to_string();
        let cwe = self.components(&[number.as_bytes(), &self.text(error.code.text()), b"HL70357"]);
        let mut fields = vec![Vec::new(); 9];
        fields[0] = b"ERR".to_vec();
        fields[2] = location;
        fields[3] = cwe;
        fields[4] = error.severity.code().into();
        fields[8] = text.map(|t| self.text(t)).unwrap_or_default();
        fields
    }

    /// A caller's "PID^1^3" written with this message's component separator.
    fn location(&self, location: &str) -> Vec<u8> {
        let parts: Vec<Vec<u8>> = location.split('^').map(|p| self.text(p)).collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.components(&refs)
    }

    fn components(&self, parts: &[&[u8]]) -> Vec<u8> {
        parts.join(&self.d.component)
    }

    /// Caller text in the message's character set ('?' for what it cannot
    /// represent), escaped with its delimiters.
    fn text(&self, text: &str) -> Vec<u8> {
        escape(&self.charset.encode_lossy(text), &self.d).into_owned()
    }

    /// Appends one segment: fields joined by the field separator, trailing
    /// empty fields dropped, then "\r".
    fn segment(&mut self, fields: &[Vec<u8>]) {
        let used = fields
            .iter()
            .rposition(|f| !f.is_empty())
            .map_or(1, |last| last + 1);
        for (i, field) in fields.iter().take(used).enumerate() {
            if i > 0 {
                self.out.push(self.d.field);
            }
            self.out.extend_from_slice(field);
        }
        self.out.push(b'\r');
    }
}
