//! The message the load generator sends, and the check of every ACK.
//!
//! One 1 KiB ADT^A01 (the testkit's IHE PAM FR template, padded with a Z
//! segment) is framed once; each send only writes a fresh control id into
//! it, so the generator spends its CPU on the network, not on rendering.

use guichet_hl7::{frame, AckCode, AckSummary, Message};
use guichet_testkit::{Template, TemplateContext};

/// Payload size of the benchmark message, MLLP framing not counted.
pub const MESSAGE_BYTES: usize = 1024;
/// Length of every control id the generator writes (HL7 allows 20).
pub const ID_LEN: usize = 16;
/// Stands for the control id in the rendered template.
const PLACEHOLDER: &[u8; ID_LEN] = b"QQQQQQQQQQQQQQQQ";

/// A framed message whose control id changes in place.
#[derive(Debug, Clone)]
pub struct LoadMessage {
    framed: Vec<u8>,
    /// Where the control id is written: MSH-10, and the ids the template
    /// derives from it (movement number).
    id_at: Vec<usize>,
}

/// A control id: `B`, the connection number and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlId([u8; ID_LEN]);

/// What an ACK said about the message it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckCheck {
    /// AA, and MSA-2 is the message's MSH-10.
    Accepted,
    /// MSA-2 names another message.
    WrongId,
    /// MSA-1 is not AA.
    NotAccepted,
    /// No MSH or no MSA.
    Unreadable,
}

impl LoadMessage {
    /// The ADT^A01 of the testkit, padded to exactly `MESSAGE_BYTES`.
    pub fn adt_a01() -> LoadMessage {
        let ctx = TemplateContext {
            control_id: String::from_utf8_lossy(PLACEHOLDER).into_owned(),
            ..TemplateContext::default()
        };
        let mut payload = Template::AdtA01.render(&ctx);
        pad(&mut payload, MESSAGE_BYTES);
        let framed = frame(&payload);
        let id_at = framed
            .windows(ID_LEN)
            .enumerate()
            .filter(|(_, w)| *w == PLACEHOLDER)
            .map(|(at, _)| at)
            .collect();
        LoadMessage { framed, id_at }
    }

    /// The framed message carrying `id`.
    pub fn with_id(&mut self, id: ControlId) -> &[u8] {
        for &at in &self.id_at {
            self.framed[at..at + ID_LEN].copy_from_slice(&id.0);
        }
        &self.framed
    }

    /// The payload length, without framing.
    #[cfg(test)]
    pub fn payload_len(&self) -> usize {
        self.framed.len() - 3
    }
}

/// Appends a `ZPA` segment of filler so the message is `size` bytes long
/// (left as is when it is already longer).
fn pad(payload: &mut Vec<u8>, size: usize) {
    const HEAD: &[u8] = b"ZPA|1|";
    let room = size.saturating_sub(payload.len() + HEAD.len() + 1);
    if room == 0 {
        return;
    }
    payload.extend_from_slice(HEAD);
    let filler = b"PADDING-FOR-A-ONE-KIBIBYTE-BENCHMARK-MESSAGE-";
    payload.extend(filler.iter().cycle().take(room));
    payload.push(b'\r');
}

impl ControlId {
    /// `B`, four digits of connection, eleven of sequence (both wrap).
    pub fn new(conn: u32, seq: u64) -> ControlId {
        let mut id = [b'B'; ID_LEN];
        write_digits(&mut id[1..5], u64::from(conn));
        write_digits(&mut id[5..], seq);
        ControlId(id)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes the low decimal digits of `n` into `out`, zero-padded.
fn write_digits(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Checks an ACK payload against the control id of the message sent.
pub fn check_ack(payload: &[u8], sent: ControlId) -> AckCheck {
    let Some(summary) = Message::parse(payload)
        .ok()
        .as_ref()
        .and_then(AckSummary::read)
    else {
        return AckCheck::Unreadable;
    };
    if summary.acknowledged_id.as_bytes() != sent.as_bytes() {
        AckCheck::WrongId
    } else if summary.code != Some(AckCode::AA) {
        AckCheck::NotAccepted
    } else {
        AckCheck::Accepted
    }
}

#[cfg(test)]
mod tests {
    use guichet_hl7::{AckRequest, Header};

    use super::*;

    fn ack_of(framed: &[u8], code: AckCode) -> Vec<u8> {
        let payload = &framed[1..framed.len() - 2];
        let message = Message::parse(payload).unwrap();
        guichet_hl7::build_ack(
            &message,
            &AckRequest {
                code,
                control_id: "ACK1",
                timestamp: "20250101000000+0000",
                text: None,
                error: None,
            },
        )
    }

    #[test]
    fn the_message_is_one_kibibyte_of_adt_a01_with_the_id_in_msh_10() {
        let mut message = LoadMessage::adt_a01();
        assert_eq!(message.payload_len(), MESSAGE_BYTES);
        let id = ControlId::new(7, 42);
        assert_eq!(id.as_bytes(), b"B000700000000042");
        let framed = message.with_id(id).to_vec();
        assert_eq!(framed.len(), MESSAGE_BYTES + 3);
        let header = Header::read(&Message::parse(&framed[1..framed.len() - 2]).unwrap());
        assert_eq!(header.message_type, "ADT^A01^ADT_A01");
        assert_eq!(header.control_id, "B000700000000042");
    }

    #[test]
    fn an_ack_is_accepted_only_with_aa_and_the_id_sent() {
        let mut message = LoadMessage::adt_a01();
        let sent = ControlId::new(1, 1);
        let aa = ack_of(message.with_id(sent), AckCode::AA);
        let ae = ack_of(message.with_id(sent), AckCode::AE);
        assert_eq!(check_ack(&aa, sent), AckCheck::Accepted);
        assert_eq!(check_ack(&aa, ControlId::new(1, 2)), AckCheck::WrongId);
        assert_eq!(check_ack(&ae, sent), AckCheck::NotAccepted);
        assert_eq!(check_ack(b"not hl7", sent), AckCheck::Unreadable);
    }
}
