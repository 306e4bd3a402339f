use guichet_hl7::{AckSummary, Charset};

use super::*;
use crate::templates::{Template, TemplateContext};

fn shared(ack: AckPolicy) -> Shared {
    let (events, _) = mpsc::channel(1);
    Shared {
        ack,
        delay: Duration::ZERO,
        show: false,
        idle_timeout: Duration::from_secs(1),
        tls: None,
        events,
        stats: Arc::default(),
        shutdown: CancellationToken::new(),
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn frame(payload: &[u8]) -> Frame {
    Frame {
        payload: Bytes::copy_from_slice(payload),
        discarded: 0,
        interrupted: 0,
        interrupted_bytes: 0,
    }
}

/// A minimal v2.5 message with MSH-15 and MSH-16 as given.
fn message(accept: &str, application: &str) -> Vec<u8> {
    format!("MSH|^~\\&|EAI|CHU|DPI|CHU|20250101||ADT^A01^ADT_A01|M1|P|2.5|||{accept}|{application}\rPID|1\r")
        .into_bytes()
}

fn answered(policy: AckPolicy, msg: &[u8]) -> (Received, Option<Vec<u8>>) {
    shared(policy).answer(7, peer(), frame(msg))
}

fn parsed(ack: &[u8]) -> (Header, AckSummary, String) {
    let msg = Message::parse(ack).unwrap();
    let msa3 = msg
        .segment("MSA")
        .unwrap()
        .field(3)
        .text(msg.charset())
        .into_owned();
    (Header::read(&msg), AckSummary::read(&msg).unwrap(), msa3)
}

#[test]
fn original_mode_answers_the_policy_code() {
    let bytes = Template::AdtA01.render(&TemplateContext::default());
    let sent = Header::read(&Message::parse(&bytes).unwrap());
    let (received, ack) = answered(AckPolicy::Aa, &bytes);
    assert_eq!(received.ack, Some(AckCode::AA));
    assert_eq!(received.size, bytes.len());
    assert!(received.body.is_none(), "headers only unless show");
    assert_eq!(received.header.as_ref(), Some(&sent));
    let (header, summary, msa3) = parsed(&ack.unwrap());
    assert_eq!(summary.code, Some(AckCode::AA));
    assert_eq!(summary.acknowledged_id, sent.control_id);
    assert_eq!(msa3, "");
    assert_eq!(header.message_type, "ACK^A01^ACK");
    assert_eq!(header.sending_application, "DPI");
    assert_eq!(header.receiving_application, "EAI");
    assert_eq!(header.version, "2.5^FRA^2.11");
    assert_eq!(header.charset, Charset::Latin9);
    assert_ne!(header.control_id, sent.control_id, "the ACK has its own id");

    for (policy, code) in [(AckPolicy::Ae, AckCode::AE), (AckPolicy::Ar, AckCode::AR)] {
        let (received, ack) = answered(policy, &bytes);
        assert_eq!(received.ack, Some(code));
        let ack = ack.unwrap();
        let (_, summary, msa3) = parsed(&ack);
        assert_eq!(summary.code, Some(code));
        assert_eq!(msa3, SIMULATED_ERROR);
        let msg = Message::parse(&ack).unwrap();
        let err = msg.segment("ERR").expect("v2.5 errors carry ERR");
        assert_eq!(err.field(3).component(1).raw(), b"207");
        assert_eq!(err.field(4).raw(), b"E");
    }

    let (received, ack) = answered(AckPolicy::None, &bytes);
    assert_eq!((received.ack, ack), (None, None));
    assert!(received.header.is_some(), "still reported");
}

#[test]
fn enhanced_mode_sends_one_answer_as_msh15_and_msh16_ask() {
    let cases = [
        (AckPolicy::Aa, "AL", "NE", Some(AckCode::CA)),
        (AckPolicy::Ae, "AL", "AL", Some(AckCode::CE)),
        (AckPolicy::Ar, "ER", "NE", Some(AckCode::CR)),
        (AckPolicy::Aa, "ER", "NE", None),
        (AckPolicy::Aa, "NE", "AL", Some(AckCode::AA)),
        (AckPolicy::Ae, "NE", "SU", None),
        (AckPolicy::Aa, "NE", "NE", None),
    ];
    for (policy, accept, application, want) in cases {
        let (received, ack) = answered(policy, &message(accept, application));
        assert_eq!(received.ack, want, "{policy} {accept}/{application}");
        assert_eq!(ack.is_some(), want.is_some());
        if want.is_none() {
            assert_eq!(
                received.note.as_deref(),
                Some("no ACK due per MSH-15/MSH-16")
            );
        }
        if let (Some(ack), Some(want)) = (ack, want) {
            assert_eq!(parsed(&ack).1.code, Some(want));
        }
    }
}

#[test]
fn acks_are_not_acknowledged() {
    let ack = b"MSH|^~\\&|DPI|CHU|EAI|CHU|20250101||ACK^A01^ACK|A1|P|2.5\rMSA|AA|M1\r";
    let (received, answer) = answered(AckPolicy::Aa, ack);
    assert_eq!((received.ack, answer), (None, None));
    assert_eq!(received.note.as_deref(), Some("an ACK is not acknowledged"));
}

#[test]
fn frames_that_are_not_hl7_are_rejected() {
    let (received, ack) = answered(AckPolicy::Aa, b"GET / HTTP/1.1\r\n\r\n");
    assert!(received.header.is_none());
    assert!(received.note.as_deref().unwrap().starts_with("not HL7: "));
    assert_eq!(received.ack, Some(AckCode::AR));
    let (_, summary, _) = parsed(&ack.unwrap());
    assert_eq!(summary.code, Some(AckCode::AR));
    assert_eq!(summary.acknowledged_id, "");

    let (received, ack) = answered(AckPolicy::None, b"garbage");
    assert_eq!((received.ack, ack), (None, None));
}

#[test]
fn show_keeps_the_body_and_lf_endings_are_tolerated() {
    let mut s = shared(AckPolicy::Aa);
    s.show = true;
    let msg = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20250101||ADT^A08|M9|P|2.5\nPID|1\n";
    let (received, ack) = s.answer(1, peer(), frame(msg));
    assert_eq!(received.body.as_deref(), Some(&msg[..]));
    assert_eq!(parsed(&ack.unwrap()).1.acknowledged_id, "M9");
}

#[test]
fn policy_names() {
    for name in AckPolicy::NAMES {
        assert_eq!(name.parse::<AckPolicy>().unwrap().to_string(), name);
    }
    assert_eq!(
        "ok".parse::<AckPolicy>().unwrap_err().to_string(),
        "`ok` is not an ACK policy; choose one of: aa, ae, ar, none"
    );
}
