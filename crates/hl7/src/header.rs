//! The metadata of a message and of an ACK: what events and logs may carry.
//!
//! Only MSH (or FHS/BHS) and MSA fields are read here, never PID, PV1, OBX
//! or any other segment that holds patient data. Values are kept "as
//! written" (escape sequences and component separators included, decoded
//! with the message's character set), so a log shows what was on the wire.

use compact_str::CompactString;

use crate::charset::Charset;

/// A header field's text: kept inline up to 24 bytes (every field guichet
/// reads from MSH in practice), so reading a header allocates nothing.
pub type Text = CompactString;
use crate::message::{Field, Message};

/// The PHI-free identity of a message, read from its header.
///
/// For a batch (FHS/BHS first) the applications and facilities come from
/// the batch header, `message_type` is its id ("FHS" or "BHS"),
/// `control_id` is FHS-11/BHS-11, and the rest comes from the first MSH
/// inside the batch (empty when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// MSH-3, the whole HD as written (e.g. "EAI^1.2.3^ISO").
    pub sending_application: Text,
    /// MSH-4.
    pub sending_facility: Text,
    /// MSH-5.
    pub receiving_application: Text,
    /// MSH-6.
    pub receiving_facility: Text,
    /// MSH-9 as written, e.g. "ADT^A01^ADT_A01".
    pub message_type: Text,
    /// MSH-10, what the ACK's MSA-2 must repeat.
    pub control_id: Text,
    /// MSH-11 (P, T, D...).
    pub processing_id: Text,
    /// MSH-12 as written, e.g. "2.5^FRA^2.11".
    pub version: Text,
    /// MSH-15; `None` when empty or unknown.
    pub accept_ack: Option<AckMode>,
    /// MSH-16; `None` when empty or unknown.
    pub application_ack: Option<AckMode>,
    /// MSH-18 (first repetition).
    pub charset: Charset,
}

/// The header fields that identify a message to people: what events,
/// listings and the journal keep. Nothing here is patient data.
///
/// A subset of [`Header`] (see [`Header::meta`]): the fields that decide
/// how to acknowledge (processing id, ACK modes, character set) are left
/// out, as they mean nothing once the message is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// MSH-3, the whole HD as written.
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// MSH-9 as written, e.g. "ADT^A01^ADT_A01".
    pub message_type: String,
    /// MSH-10: what the receiver's MSA-2 must repeat.
    pub control_id: String,
    /// MSH-12 as written.
    pub version: String,
}

/// When an acknowledgment is wanted (HL7 table 0155, MSH-15/MSH-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// AL: always.
    Always,
    /// NE: never.
    Never,
    /// ER: only on error or reject.
    Error,
    /// SU: only on success.
    Success,
}

/// MSA-1 (HL7 table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Application accept (original mode, or application ACK in enhanced).
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept (enhanced mode accept ACK).
    CA,
    /// Commit error.
    CE,
    /// Commit reject.
    CR,
}

/// The PHI-free content of an ACK: its code and the id it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSummary {
    /// MSA-1; `None` when absent or not in table 0008.
    pub code: Option<AckCode>,
    /// MSA-2, the MSH-10 of the acknowledged message, as written.
    pub acknowledged_id: String,
}

/// The header fields a message's metadata and its ACK are built from, as
/// views of the original bytes (shared by [`Header::read`] and the ACK
/// builder, which copies them without decoding).
pub(crate) struct HeaderFields<'a> {
    pub sending_application: Field<'a>,
    pub sending_facility: Field<'a>,
    pub receiving_application: Field<'a>,
    pub receiving_facility: Field<'a>,
    pub message_type: Field<'a>,
    pub control_id: Field<'a>,
    pub processing_id: Field<'a>,
    pub version: Field<'a>,
    pub accept_ack: Field<'a>,
    pub application_ack: Field<'a>,
    pub charset: Field<'a>,
}

impl<'a> HeaderFields<'a> {
    /// Finds the fields in MSH, or in FHS/BHS and the first MSH of a batch.
    pub(crate) fn locate(msg: &Message<'a>) -> Self {
        // One pass over each segment; the header is the first MSH unless
        // the message is a batch (FHS/BHS first).
        let header = msg.header();
        let head: [Field<'a>; 19] = header.first_fields();
        let batch = header.id() != b"MSH";
        let msh = if batch {
            msg.segment("MSH")
                .map_or([Field::empty(msg.delimiters()); 19], |msh| {
                    msh.first_fields()
                })
        } else {
            head
        };
        let (message_type, control_id) = if batch {
            // The segment id and FHS-11/BHS-11.
            (head[0], head[11])
        } else {
            (head[9], head[10])
        };
        HeaderFields {
            sending_application: head[3],
            sending_facility: head[4],
            receiving_application: head[5],
            receiving_facility: head[6],
            message_type,
            control_id,
            processing_id: msh[11],
            version: msh[12],
            accept_ack: msh[15],
            application_ack: msh[16],
            charset: msh[18],
        }
    }
}

impl Header {
    /// Reads the header fields of `msg`, and nothing else.
    pub fn read(msg: &Message<'_>) -> Header {
        Header::read_some(msg, true)
    }

    /// Reads what a relayed message's event and its ACK check use: MSH-3,
    /// 5, 9, 10, 12 (the log line and the status page), MSH-15 and 16 (the
    /// answer owed) and MSH-18 (to decode them). The facilities (MSH-4,
    /// MSH-6) and the processing id (MSH-11) are left empty: a relay that
    /// neither journals nor observes flows never looks at them, and a
    /// header is read for every message it forwards.
    pub fn read_relayed(msg: &Message<'_>) -> Header {
        Header::read_some(msg, false)
    }

    fn read_some(msg: &Message<'_>, all: bool) -> Header {
        let f = HeaderFields::locate(msg);
        let charset = Charset::from_msh18(f.charset.repetition(1).raw());
        let text = |field: Field<'_>| Text::from(charset.decode(field.raw()));
        let other = |field: Field<'_>| if all { text(field) } else { Text::default() };
        Header {
            sending_application: text(f.sending_application),
            sending_facility: other(f.sending_facility),
            receiving_application: text(f.receiving_application),
            receiving_facility: other(f.receiving_facility),
            message_type: text(f.message_type),
            control_id: text(f.control_id),
            processing_id: other(f.processing_id),
            version: text(f.version),
            accept_ack: AckMode::from_code(f.accept_ack.raw()),
            application_ack: AckMode::from_code(f.application_ack.raw()),
            charset,
        }
    }

    /// The fields that identify the message, copied out for keeping.
    pub fn meta(&self) -> Meta {
        Meta {
            sending_application: self.sending_application.as_str().to_owned(),
            sending_facility: self.sending_facility.as_str().to_owned(),
            receiving_application: self.receiving_application.as_str().to_owned(),
            receiving_facility: self.receiving_facility.as_str().to_owned(),
            message_type: self.message_type.as_str().to_owned(),
            control_id: self.control_id.as_str().to_owned(),
            version: self.version.as_str().to_owned(),
        }
    }

    /// MSH-9.1, the message code ("ADT", "ORU", "ACK").
    pub fn code(&self) -> &str {
        split_message_type(&self.message_type).0
    }

    /// MSH-9.2, the trigger event ("A01"); empty when absent.
    pub fn trigger(&self) -> &str {
        split_message_type(&self.message_type).1
    }

    /// Whether this message is itself an acknowledgment (MSH-9.1 "ACK").
    pub fn is_ack(&self) -> bool {
        self.code() == "ACK"
    }

    /// Enhanced acknowledgment mode: MSH-15 or MSH-16 holds a known value.
    /// Both empty (or unknown) means original mode, where every message gets
    /// one application ACK.
    pub fn is_enhanced_mode(&self) -> bool {
        self.accept_ack.is_some() || self.application_ack.is_some()
    }
}

/// Splits MSH-9 into code and trigger without knowing the component
/// separator: a message code is alphanumeric (table 0076) and delimiters
/// never are, so the first other character is the separator.
fn split_message_type(message_type: &str) -> (&str, &str) {
    let Some(sep_at) = message_type.find(|c: char| !c.is_ascii_alphanumeric()) else {
        return (message_type, "");
    };
    let (code, rest) = message_type.split_at(sep_at);
    let mut rest = rest.chars();
    let sep = rest.next().unwrap_or('^');
    let trigger = rest.as_str().split(sep).next().unwrap_or_default();
    (code, trigger)
}

impl AckMode {
    /// Reads MSH-15/MSH-16 (case and surrounding spaces ignored).
    pub fn from_code(code: &[u8]) -> Option<AckMode> {
        let code = code.trim_ascii();
        let modes = [
            AckMode::Always,
            AckMode::Never,
            AckMode::Error,
            AckMode::Success,
        ];
        modes
            .into_iter()
            .find(|m| code.eq_ignore_ascii_case(m.code().as_bytes()))
    }

    /// The table 0155 code.
    pub fn code(&self) -> &'static str {
        match self {
            AckMode::Always => "AL",
            AckMode::Never => "NE",
            AckMode::Error => "ER",
            AckMode::Success => "SU",
        }
    }
}

impl AckCode {
    /// Reads MSA-1 (case and surrounding spaces ignored).
    pub fn from_code(code: &[u8]) -> Option<AckCode> {
        let code = code.trim_ascii();
        let all = [
            AckCode::AA,
            AckCode::AE,
            AckCode::AR,
            AckCode::CA,
            AckCode::CE,
            AckCode::CR,
        ];
        all.into_iter()
            .find(|c| code.eq_ignore_ascii_case(c.as_str().as_bytes()))
    }

    /// The table 0008 code.
    pub fn as_str(&self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// A positive outcome (AA or CA).
    pub fn is_accept(&self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }

    /// A commit (accept) ACK of enhanced mode: CA, CE or CR.
    pub fn is_commit(&self) -> bool {
        matches!(self, AckCode::CA | AckCode::CE | AckCode::CR)
    }
}

impl AckSummary {
    /// Reads MSA-1 and MSA-2; `None` when the message has no MSA.
    pub fn read(msg: &Message<'_>) -> Option<AckSummary> {
        let [_, code, id] = msg.segment("MSA")?.first_fields();
        let id = id.raw();
        // ASCII reads the same in every character set HL7 names here:
        // MSH-18 is looked up only for an id that is not.
        let charset = if id.is_ascii() {
            Charset::Ascii
        } else {
            msg.charset()
        };
        Some(AckSummary {
            code: AckCode::from_code(code.raw()),
            acknowledged_id: charset.decode(id).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_header_reads_all_but_the_facilities_and_processing_id() {
        let raw = b"MSH|^~\\&|EAI^1.2.3^ISO|CHU|DPI|CHU|20240101120000||ADT^A01^ADT_A01|MSG42|P|2.5^FRA^2.11|||AL|NE||8859/1\rPID|1\r";
        let Ok(msg) = Message::parse(raw) else {
            panic!("the sample must parse");
        };
        let full = Header::read(&msg);
        let relayed = Header::read_relayed(&msg);
        assert_eq!(
            relayed,
            Header {
                sending_facility: Text::default(),
                receiving_facility: Text::default(),
                processing_id: Text::default(),
                ..full.clone()
            }
        );
        assert_eq!(full.sending_facility, "CHU");
        assert_eq!(full.processing_id, "P");
        assert_eq!(relayed.accept_ack, Some(AckMode::Always));
        assert_eq!(relayed.application_ack, Some(AckMode::Never));
        assert_eq!(relayed.charset, Charset::Latin1);
    }

    #[test]
    fn meta_copies_the_identifying_fields_of_the_header() {
        let raw = b"MSH|^~\\&|EAI^1.2.3^ISO|CHU|DPI|CHU|20240101120000||ADT^A01^ADT_A01|MSG42|P|2.5^FRA^2.11\rPID|1\r";
        let Ok(msg) = Message::parse(raw) else {
            panic!("the sample must parse");
        };
        let meta = Header::read(&msg).meta();
        assert_eq!(
            meta,
            Meta {
                sending_application: "EAI^1.2.3^ISO".into(),
                sending_facility: "CHU".into(),
                receiving_application: "DPI".into(),
                receiving_facility: "CHU".into(),
                message_type: "ADT^A01^ADT_A01".into(),
                control_id: "MSG42".into(),
                version: "2.5^FRA^2.11".into(),
            }
        );
    }
}
