//! Sample HL7 v2 messages, built the way the tests need them, and small
//! encoders the tests print or compare with.
//!
//! The patient in these messages is made up; tests that check that
//! patient data never leaks put a marker of their own in PID.

use std::time::{SystemTime, UNIX_EPOCH};

use guichet_hl7::{Header, Message, ParseOptions};

/// The visit segment most samples carry.
pub const VISIT: &str = "PV1|1|I|CARDIO";

/// An HL7 v2 message, from MSH fields and the segments after MSH.
///
/// [`Hl7::adt`] is an ADT^A01 from the EAI to the DPI of `CHU-NORD`; each
/// setter changes one field, so a test says only what matters to it.
#[derive(Debug, Clone)]
pub struct Hl7 {
    sender: String,
    facility: String,
    receiver: String,
    at: String,
    kind: String,
    control_id: String,
    version: String,
    msh_tail: String,
    segments: Vec<String>,
}

impl Hl7 {
    /// `ADT^A01^ADT_A01` with MSH-10 `control_id`, version 2.5, original
    /// acknowledgment mode, an EVN and a PID (patient 123456, male).
    pub fn adt(control_id: &str) -> Hl7 {
        Hl7 {
            sender: "EAI".into(),
            facility: "CHU-NORD".into(),
            receiver: "DPI".into(),
            at: "20240101120000".into(),
            kind: "ADT^A01^ADT_A01".into(),
            control_id: control_id.into(),
            version: "2.5".into(),
            msh_tail: String::new(),
            segments: vec!["EVN||20240101120000".into(), pid("123456", "DOE^JOHN", "M")],
        }
    }

    /// MSH-3, the sending application.
    pub fn from(mut self, app: &str) -> Hl7 {
        self.sender = app.into();
        self
    }

    /// MSH-4 and MSH-6, the sending and receiving facility.
    pub fn facility(mut self, facility: &str) -> Hl7 {
        self.facility = facility.into();
        self
    }

    /// MSH-7, the message's time.
    pub fn at(mut self, timestamp: &str) -> Hl7 {
        self.at = timestamp.into();
        self
    }

    /// MSH-9, the message type (`ORU^R01^ORU_R01`...).
    pub fn kind(mut self, kind: &str) -> Hl7 {
        self.kind = kind.into();
        self
    }

    /// MSH-12.
    pub fn version(mut self, version: &str) -> Hl7 {
        self.version = version.into();
        self
    }

    /// What follows MSH-12 (`|||AL|NE` asks for enhanced mode).
    pub fn msh_tail(mut self, tail: &str) -> Hl7 {
        self.msh_tail = tail.into();
        self
    }

    /// The PID: identifier (PID-3, in the `^^^CHU^PI` authority), name
    /// (PID-5) and sex (PID-8).
    pub fn patient(mut self, id: &str, name: &str, sex: &str) -> Hl7 {
        let at = self.segments.iter().position(|s| s.starts_with("PID|"));
        let segment = pid(id, name, sex);
        match at {
            Some(i) => self.segments[i] = segment,
            None => self.segments.push(segment),
        }
        self
    }

    /// Without the segments named `name` (`EVN`...).
    pub fn without(mut self, name: &str) -> Hl7 {
        let prefix = format!("{name}|");
        self.segments.retain(|s| !s.starts_with(&prefix));
        self
    }

    /// With `segment` (without its CR) after the others.
    pub fn with(mut self, segment: &str) -> Hl7 {
        self.segments.push(segment.into());
        self
    }

    /// With [`VISIT`].
    pub fn visit(self) -> Hl7 {
        self.with(VISIT)
    }

    /// Only `segments` after MSH.
    pub fn segments(mut self, segments: &[&str]) -> Hl7 {
        self.segments = segments.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The message, each segment ended by CR.
    pub fn bytes(&self) -> Vec<u8> {
        let Hl7 {
            sender,
            facility,
            receiver,
            at,
            kind,
            control_id,
            version,
            msh_tail,
            segments,
        } = self;
        let mut text = format!(
            "MSH|^~\\&|{sender}|{facility}|{receiver}|{facility}|{at}||{kind}|{control_id}|P|{version}{msh_tail}\r"
        );
        for segment in segments {
            text.push_str(segment);
            text.push('\r');
        }
        text.into_bytes()
    }

    /// The message in an MLLP frame.
    pub fn framed(&self) -> Vec<u8> {
        guichet_hl7::frame(&self.bytes())
    }
}

fn pid(id: &str, name: &str, sex: &str) -> String {
    format!("PID|1||{id}^^^CHU^PI||{name}||19700101|{sex}")
}

/// MSH-10 of a message.
///
/// # Panics
/// When `message` is not HL7 v2.
pub fn control_id(message: &[u8]) -> String {
    let parsed = Message::parse_with(message, ParseOptions::lenient()).expect("an HL7 message");
    Header::read(&parsed).control_id.into()
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch, as the journal stamps records.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
