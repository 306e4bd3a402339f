//! `kind = "mllp"` routes: frames forwarded byte for byte both ways, one
//! message event per message with its ACK's code and MSA-2 check, framing
//! errors counted, and no patient data in events, metrics or logs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use guichet_gateway::{MessageEvent, MessageOutcome};
use guichet_hl7::{frame, AckCode, AckSummary, Header, Message};
use guichet_pki::Usage;
use guichet_testsupport::samples::Hl7;
use guichet_testsupport::wait::let_pass;
use guichet_tls::AppName;
use tokio::io::AsyncWriteExt;

const ROUTE: &str = "hl7";

/// A message from `app`, of type `kind` (MSH-9) and version MSH-12.
fn message(app: &str, kind: &str, id: &str, version: &str) -> Vec<u8> {
    let msg = Hl7::adt(id).from(app).kind(kind).version(version);
    msg.visit().bytes()
}

fn adt(id: &str) -> Vec<u8> {
    message("EAI", "ADT^A01^ADT_A01", id, "2.5")
}

/// An ORU whose OBX carries `len` bytes of report (a PDF, say).
fn report(id: &str, len: usize) -> Vec<u8> {
    let mut msg = message("LAB", "ORU^R01^ORU_R01", id, "2.5");
    msg.extend_from_slice(b"OBX|1|ED|PDF^Report||^AP^PDF^Base64^");
    msg.extend_from_slice(&payload(len));
    msg.push(b'\r');
    msg
}

/// One `mllp` route to `forward`, with `extra` lines.
fn mllp_route(name: &str, forward: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nforward = \"{forward}\"\n{extra}"
    )
}

/// A gateway with one plain `mllp` route, [`ROUTE`], to `backend`.
async fn plain_gateway(pki: &Pki, backend: &MllpBackend, extra: &str) -> Running {
    let text = gateway_section("1s", "0s") + &mllp_route(ROUTE, &backend.target(), extra);
    Running::start(&pki.config_path(), &text).await
}

/// MSA-1 and MSA-2 of an ACK.
fn summary(ack: &[u8]) -> AckSummary {
    AckSummary::read(&Message::parse(ack).unwrap()).expect("an MSA segment")
}

fn header(event: &MessageEvent) -> &Header {
    event.header.as_ref().expect("a header in the event")
}

/// Checks an `Acknowledged` outcome and returns its latency.
fn acknowledged(event: &MessageEvent, want_code: AckCode, want_match: bool) -> Duration {
    match &event.outcome {
        MessageOutcome::Acknowledged {
            code,
            id_matches,
            latency,
        } => {
            assert_eq!(*code, Some(want_code), "{event:?}");
            assert_eq!(*id_matches, want_match, "{event:?}");
            *latency
        }
        other => panic!("expected Acknowledged, got {other:?}"),
    }
}

#[tokio::test]
async fn pipelined_messages_are_relayed_untouched_with_one_event_each() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let sent = [
        message("EAI", "ADT^A01^ADT_A01", "MSG-1", "2.5"),
        message("LAB", "ORU^R01^ORU_R01", "MSG-2", "2.3.1"),
        message("RAD", "ADT^A08", "MSG-3", "2.6"),
    ];
    let expected = [
        ("MSG-1", "ADT^A01^ADT_A01", "EAI", "2.5"),
        ("MSG-2", "ORU^R01^ORU_R01", "LAB", "2.3.1"),
        ("MSG-3", "ADT^A08", "RAD", "2.6"),
    ];

    let before = SystemTime::now();
    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let local = stream.local_addr().unwrap();
    send_frames(&mut stream, &[&sent[0], &sent[1], &sent[2]]).await;
    let mut acks = FrameReader::default();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(acks.frame(&mut stream).await);
    }

    assert_eq!(got, backend.sent(), "ACKs altered on the way back");
    assert_eq!(backend.received(), sent, "messages altered on the way");
    for (ack, (id, ..)) in got.iter().zip(expected) {
        assert_eq!(summary(ack).acknowledged_id, id);
    }
    for (msg, (id, kind, app, version)) in sent.iter().zip(expected) {
        let event = next_event(&mut events).await;
        assert_eq!(event.route.as_str(), ROUTE);
        assert_eq!(event.remote, local);
        assert_eq!(event.peer_app, None);
        assert_eq!(event.size, msg.len());
        assert!(event.at >= before && event.at <= SystemTime::now());
        let h = header(&event);
        assert_eq!(h.control_id, id);
        assert_eq!(h.message_type, kind);
        assert_eq!(h.sending_application, app);
        assert_eq!(h.version, version);
        assert_eq!(h.receiving_application, "DPI");
        let latency = acknowledged(&event, AckCode::AA, true);
        assert!(latency > Duration::ZERO);
    }
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, "AA"), 3);
    assert_eq!(gateway.all_messages(ROUTE), 3);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
    assert_eq!(gateway.acks_overdue(ROUTE), 0);
    assert_eq!(gateway.all_frame_errors(ROUTE), 0);
    let roundtrips = gateway.value(
        "guichet_message_roundtrip_seconds_count",
        &[("route", ROUTE)],
    );
    assert_eq!(roundtrips, 3);

    stream.shutdown().await.unwrap();
    assert_eq!(acks.until_end(&mut stream).await, Vec::<Vec<u8>>::new());
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    // Nothing was left waiting: no Unacknowledged at the end.
    no_more_events(&mut events);
    assert_eq!(
        backend.raw(),
        [&sent[0], &sent[1], &sent[2]].map(|m| frame(m)).concat()
    );
}

#[tokio::test]
async fn event_names_the_application_admitted_by_mtls() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let text = gateway_section("1s", "0s")
        + &profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl()))
        + &app("eai-app", "eai")
        + &mllp_route(
            ROUTE,
            &backend.target(),
            "listen_tls = \"gw\"\nallow = [\"eai-app\"]\n",
        );
    let gateway = Running::start(&pki.config_path(), &text).await;
    let mut events = gateway.events.subscribe();

    let mut stream = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    let local = stream.get_ref().0.local_addr().unwrap();
    let msg = adt("TLS-1");
    send_frames(&mut stream, &[&msg]).await;
    let ack = FrameReader::default().frame(&mut stream).await;

    assert_eq!(vec![ack], backend.sent());
    assert_eq!(backend.received(), vec![msg]);
    let event = next_event(&mut events).await;
    assert_eq!(event.peer_app, Some(AppName::new("eai-app")));
    assert_eq!(event.remote, local);
    assert_eq!(header(&event).control_id, "TLS-1");
    acknowledged(&event, AckCode::AA, true);
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, "AA"), 1);
}

#[tokio::test]
async fn ack_with_another_msa2_is_forwarded_and_reported_as_a_mismatch() {
    let pki = Pki::new();
    let plan = AckPlan {
        wrong_id: true,
        ..AckPlan::accept()
    };
    let backend = MllpBackend::start(plan).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    send_frames(&mut stream, &[&adt("MSG-7")]).await;
    let ack = FrameReader::default().frame(&mut stream).await;

    assert_eq!(vec![ack.clone()], backend.sent(), "ACK altered");
    assert_eq!(summary(&ack).acknowledged_id, "MSG-7-OTHER");
    let event = next_event(&mut events).await;
    assert_eq!(header(&event).control_id, "MSG-7");
    acknowledged(&event, AckCode::AA, false);
    no_more_events(&mut events);
    assert_eq!(gateway.ack_mismatches(ROUTE), 1);
    assert_eq!(gateway.messages(ROUTE, "AA"), 1);
    assert_eq!(gateway.all_messages(ROUTE), 1);
}

#[tokio::test]
async fn application_error_is_reported_as_ae() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::code(AckCode::AE)).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    send_frames(&mut stream, &[&adt("MSG-8")]).await;
    let ack = FrameReader::default().frame(&mut stream).await;

    assert_eq!(vec![ack.clone()], backend.sent());
    assert_eq!(summary(&ack).code, Some(AckCode::AE));
    let event = next_event(&mut events).await;
    assert_eq!(header(&event).control_id, "MSG-8");
    acknowledged(&event, AckCode::AE, true);
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, "AE"), 1);
    assert_eq!(gateway.messages(ROUTE, "AA"), 0);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
}

#[tokio::test]
async fn frame_without_msh_is_answered_ar_and_not_forwarded_by_default() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let not_hl7: &[u8] = b"HELLO|this is not HL7\r";
    let msg = adt("MSG-9");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut acks = FrameReader::default();
    send_frames(&mut stream, &[not_hl7]).await;
    let ar = acks.frame(&mut stream).await;
    // The connection goes on: the next message is relayed as usual.
    send_frames(&mut stream, &[&msg]).await;
    let ack = acks.frame(&mut stream).await;

    let parsed = Message::parse(&ar).unwrap();
    let ar_summary = AckSummary::read(&parsed).unwrap();
    assert_eq!(ar_summary.code, Some(AckCode::AR));
    assert_eq!(ar_summary.acknowledged_id, "");
    assert_eq!(Header::read(&parsed).message_type, "ACK");
    let err = parsed.segment("ERR").expect("an ERR segment in the AR");
    assert_eq!(err.field(3).component(1).raw(), b"100");
    assert_eq!(err.field(4).raw(), b"E");
    assert_eq!(vec![ack], backend.sent());

    let rejected = next_event(&mut events).await;
    assert_eq!(rejected.outcome, MessageOutcome::RejectedNotHl7);
    assert_eq!(rejected.header, None);
    assert_eq!(rejected.size, not_hl7.len());
    let relayed = next_event(&mut events).await;
    assert_eq!(header(&relayed).control_id, "MSG-9");
    acknowledged(&relayed, AckCode::AA, true);
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, mllp_label::REJECTED_NOT_HL7), 1);
    assert_eq!(gateway.messages(ROUTE, "AA"), 1);
    assert_eq!(gateway.all_messages(ROUTE), 2);

    stream.shutdown().await.unwrap();
    assert_eq!(acks.until_end(&mut stream).await, Vec::<Vec<u8>>::new());
    backend.wait_ended(1).await;
    assert_eq!(
        backend.raw(),
        frame(&msg),
        "only the HL7 message reaches the backend"
    );
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    no_more_events(&mut events);
}

#[tokio::test]
async fn frame_without_msh_is_forwarded_untouched_when_policy_is_pass() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "non_hl7 = \"pass\"\n").await;
    let mut events = gateway.events.subscribe();
    let not_hl7: &[u8] = b"HELLO|this is not HL7\r\x1cwith a stray end block\r";

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    send_frames(&mut stream, &[not_hl7]).await;
    let passed = next_event(&mut events).await;
    assert_eq!(passed.outcome, MessageOutcome::PassedNotHl7);
    assert_eq!(passed.header, None);
    assert_eq!(passed.size, not_hl7.len());
    assert_eq!(gateway.messages(ROUTE, mllp_label::PASSED_NOT_HL7), 1);

    // The receiver does not answer frames that are not HL7.
    stream.shutdown().await.unwrap();
    let mut acks = FrameReader::default();
    assert_eq!(acks.until_end(&mut stream).await, Vec::<Vec<u8>>::new());
    backend.wait_ended(1).await;
    assert_eq!(backend.received(), vec![not_hl7.to_vec()]);
    assert_eq!(backend.raw(), frame(not_hl7));
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    no_more_events(&mut events);
    assert_eq!(gateway.all_messages(ROUTE), 1);
}

#[tokio::test]
async fn frame_over_max_frame_bytes_closes_the_connection() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "max_frame_bytes = 1024\n").await;
    let mut events = gateway.events.subscribe();
    let base = report("FIT-1", 0).len();
    let fits = report("FIT-1", 1024 - base);
    let big = report("BIG-1", 5000 - base);
    assert_eq!((fits.len(), big.len()), (1024, 5000));

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    // At the limit: relayed.
    send_frames(&mut stream, &[&fits]).await;
    let ack = FrameReader::default().frame(&mut stream).await;
    assert_eq!(vec![ack], backend.sent());
    acknowledged(&*next_event(&mut events).await, AckCode::AA, true);
    // Over it: the connection is closed and nothing is forwarded. The
    // write may or may not be complete when the gateway closes.
    let _ = stream.write_all(&frame(&big)).await;
    let _ = expect_closed(&mut stream).await;

    gateway
        .wait_connections(ROUTE, outcome::FRAME_ERROR, 1)
        .await;
    backend.wait_ended(1).await;
    assert_eq!(backend.received(), vec![fits.clone()]);
    assert_eq!(backend.raw(), frame(&fits));
    assert_eq!(gateway.frame_errors(ROUTE, mllp_label::TOO_LARGE), 1);
    assert_eq!(gateway.all_frame_errors(ROUTE), 1);
    no_more_events(&mut events);
    assert_eq!(gateway.all_messages(ROUTE), 1);
}

#[tokio::test]
async fn partial_frame_at_sender_close_is_never_forwarded() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let whole = adt("WHOLE-1");
    let cut = adt("CUT-1");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    send_frames(&mut stream, &[&whole]).await;
    let ack = FrameReader::default().frame(&mut stream).await;
    assert_eq!(vec![ack], backend.sent());
    // A start block and half a message, then the end of the stream.
    let partial = &frame(&cut)[..cut.len() / 2];
    stream.write_all(partial).await.unwrap();
    stream.shutdown().await.unwrap();
    let _ = expect_closed(&mut stream).await;

    gateway
        .wait_connections(ROUTE, outcome::FRAME_ERROR, 1)
        .await;
    backend.wait_ended(1).await;
    assert_eq!(backend.received(), vec![whole.clone()]);
    assert_eq!(backend.raw(), frame(&whole));
    assert_eq!(gateway.frame_errors(ROUTE, mllp_label::TRUNCATED), 1);
    assert_eq!(gateway.all_frame_errors(ROUTE), 1);
    let event = next_event(&mut events).await;
    assert_eq!(header(&event).control_id, "WHOLE-1");
    acknowledged(&event, AckCode::AA, true);
    no_more_events(&mut events);
    assert_eq!(gateway.all_messages(ROUTE), 1);
}

#[tokio::test]
async fn bytes_before_a_frame_are_discarded_and_counted() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let msg = adt("AFTER-NOISE");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut bytes = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    bytes.extend_from_slice(&frame(&msg));
    stream.write_all(&bytes).await.unwrap();
    let ack = FrameReader::default().frame(&mut stream).await;

    assert_eq!(vec![ack], backend.sent());
    assert_eq!(backend.raw(), frame(&msg), "noise forwarded");
    assert_eq!(gateway.frame_errors(ROUTE, mllp_label::DISCARDED_BYTES), 1);
    assert_eq!(gateway.all_frame_errors(ROUTE), 1);
    let event = next_event(&mut events).await;
    assert_eq!(header(&event).control_id, "AFTER-NOISE");
    assert_eq!(event.size, msg.len());
    acknowledged(&event, AckCode::AA, true);
    no_more_events(&mut events);
    stream.shutdown().await.unwrap();
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
}

/// A sender that ends its last frame with a stray CR LF and then closes its
/// write side still gets the ACK: noise at the end of the stream is
/// counted like noise before a frame, not a reason to cut the connection.
#[tokio::test]
async fn bytes_after_the_last_frame_do_not_cut_the_ack() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let msg = adt("CRLF-1");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut bytes = frame(&msg);
    bytes.extend_from_slice(b"\r\n");
    stream.write_all(&bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let acks = FrameReader::default().until_end(&mut stream).await;

    assert_eq!(acks, backend.sent());
    assert_eq!(acks.len(), 1);
    assert_eq!(backend.raw(), frame(&msg));
    acknowledged(&*next_event(&mut events).await, AckCode::AA, true);
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    no_more_events(&mut events);
    assert_eq!(gateway.frame_errors(ROUTE, mllp_label::DISCARDED_BYTES), 1);
    assert_eq!(gateway.all_frame_errors(ROUTE), 1);
}

#[tokio::test]
async fn silent_receiver_is_reported_overdue_then_unacknowledged() {
    let pki = Pki::new();
    let plan = AckPlan {
        silent: true,
        ..AckPlan::accept()
    };
    let backend = MllpBackend::start(plan).await;
    let gateway = plain_gateway(&pki, &backend, "ack_timeout = \"200ms\"\n").await;
    let mut events = gateway.events.subscribe();
    let msg = adt("LOST-1");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let sent_at = Instant::now();
    send_frames(&mut stream, &[&msg]).await;
    gateway
        .wait_value("guichet_acks_overdue_total", &[("route", ROUTE)], 1)
        .await;
    assert!(sent_at.elapsed() >= Duration::from_millis(200));
    assert_eq!(backend.received(), vec![msg.clone()]);
    // Overdue is reported once, and is not an outcome yet.
    let_pass(Duration::from_millis(300)).await;
    assert_eq!(gateway.acks_overdue(ROUTE), 1);
    no_more_events(&mut events);

    stream.shutdown().await.unwrap();
    assert_eq!(
        FrameReader::default().until_end(&mut stream).await,
        Vec::<Vec<u8>>::new()
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.outcome, MessageOutcome::Unacknowledged);
    assert_eq!(header(&event).control_id, "LOST-1");
    assert_eq!(event.size, msg.len());
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, mllp_label::UNACKNOWLEDGED), 1);
    assert_eq!(gateway.all_messages(ROUTE), 1);
    assert_eq!(gateway.acks_overdue(ROUTE), 1);
}

#[tokio::test]
async fn ack_with_no_message_waiting_is_reported_unsolicited() {
    let pki = Pki::new();
    let old = message("EAI", "ADT^A01^ADT_A01", "OLD-7", "2.5");
    let stray = ack_for(&Message::parse(&old).unwrap(), AckCode::AR, "STRAY-1");
    let plan = AckPlan {
        unsolicited: Some(stray.clone()),
        ..AckPlan::accept()
    };
    let backend = MllpBackend::start(plan).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut acks = FrameReader::default();
    assert_eq!(acks.frame(&mut stream).await, stray, "stray ACK altered");
    let event = next_event(&mut events).await;
    assert_eq!(
        event.outcome,
        MessageOutcome::UnsolicitedAck {
            code: Some(AckCode::AR)
        }
    );
    assert_eq!(header(&event).control_id, "STRAY-1");
    assert_eq!(header(&event).message_type, "ACK^A01^ACK");
    assert_eq!(event.size, stray.len());
    assert_eq!(gateway.messages(ROUTE, mllp_label::UNSOLICITED_ACK), 1);

    // The stray ACK did not take the place of the next message's.
    send_frames(&mut stream, &[&adt("NEXT-1")]).await;
    let ack = acks.frame(&mut stream).await;
    assert_eq!(summary(&ack).acknowledged_id, "NEXT-1");
    let event = next_event(&mut events).await;
    assert_eq!(header(&event).control_id, "NEXT-1");
    acknowledged(&event, AckCode::AA, true);
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, "AA"), 1);
    assert_eq!(gateway.all_messages(ROUTE), 2);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
}

const MARKER: &str = "SECRET-PATIENT-4242";

#[tokio::test]
async fn patient_data_never_reaches_events_metrics_or_logs() {
    let logs = global_capture();
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let phi = |id: &str| {
        format!(
            "MSH|^~\\&|LAB|CHU|DPI|CHU|20240101120000||ORU^R01^ORU_R01|{id}|P|2.5\r\
             PID|1||{MARKER}^^^CHU^PI||{MARKER}^JOHN\r\
             OBX|1|TX|NOTE||{MARKER}||||||F\r"
        )
        .into_bytes()
    };
    let not_hl7 = format!("PID|1||{MARKER}\r").into_bytes();

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut acks = FrameReader::default();
    send_frames(&mut stream, &[&phi("PHI-1")]).await;
    acks.frame(&mut stream).await;
    send_frames(&mut stream, &[&not_hl7]).await;
    acks.frame(&mut stream).await;
    stream.shutdown().await.unwrap();
    acks.until_end(&mut stream).await;
    // Half a message, then the end of the stream.
    let mut cut = tcp(gateway.addr(ROUTE)).await;
    cut.write_all(&frame(&phi("PHI-2"))[..80]).await.unwrap();
    cut.shutdown().await.unwrap();
    let _ = expect_closed(&mut cut).await;
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    gateway
        .wait_connections(ROUTE, outcome::FRAME_ERROR, 1)
        .await;

    assert_eq!(
        backend.received(),
        vec![phi("PHI-1")],
        "the test needs PHI through"
    );
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(format!("{event:?}"));
    }
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen[0].contains("PHI-1") && seen[1].contains("RejectedNotHl7"));
    for event in &seen {
        assert!(!event.contains(MARKER), "patient data in an event: {event}");
    }
    let metrics = gateway.metrics.render();
    assert!(!metrics.contains(MARKER), "patient data in metrics");
    let log = logs.text();
    assert!(log.contains("message acknowledged"), "{log}");
    assert!(log.contains("control_id=PHI-1"), "{log}");
    assert!(log.contains("middle of an MLLP frame"), "{log}");
    assert!(!log.contains(MARKER), "patient data in the log:\n{log}");
}

#[tokio::test]
async fn large_message_crosses_a_tls_pair_with_acks_in_flight() {
    let pki = Pki::new();
    let dpi = pki.issue("dpi", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let limit = "max_frame_bytes = 16777216\n";
    let server = Running::start(
        &pki.tmp.path().join("server.toml"),
        &(gateway_section("1s", "0s")
            + &profile("dpi", Some(&dpi), &pki.ca_cert(), Some(&pki.crl()))
            + &app("eai", "eai")
            + &mllp_route(
                "from-eai",
                &backend.target(),
                &format!("listen_tls = \"dpi\"\nallow = [\"eai\"]\n{limit}"),
            )),
    )
    .await;
    let client = Running::start(
        &pki.config_path(),
        &(gateway_section("1s", "0s")
            + &profile("eai", Some(&eai), &pki.ca_cert(), Some(&pki.crl()))
            + &mllp_route(
                "to-dpi",
                &server.addr("from-eai").to_string(),
                &format!("forward_tls = \"eai\"\nserver_name = \"dpi\"\n{limit}"),
            )),
    )
    .await;
    let mut client_events = client.events.subscribe();
    let mut server_events = server.events.subscribe();
    let sent = [
        adt("SMALL-1"),
        report("BIG-1", 2 * 1024 * 1024),
        adt("SMALL-2"),
    ];

    let mut stream = tcp(client.addr("to-dpi")).await;
    let (mut rd, mut wr) = stream.split();
    let mut acks = FrameReader::default();
    // Written while the first ACK is on its way back, read concurrently.
    let all: [&[u8]; 3] = [&sent[0], &sent[1], &sent[2]];
    let ((), got) = tokio::join!(send_frames(&mut wr, &all), async {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(acks.frame(&mut rd).await);
        }
        got
    });

    assert_eq!(got, backend.sent(), "ACKs altered");
    let received = backend.received();
    let lengths: Vec<usize> = received.iter().map(Vec::len).collect();
    assert!(received == sent, "messages altered: lengths {lengths:?}");
    for (gw, events, app) in [
        (&client, &mut client_events, None),
        (&server, &mut server_events, Some(AppName::new("eai"))),
    ] {
        for msg in &sent {
            let event = next_event(events).await;
            let id = Header::read(&Message::parse(msg).unwrap()).control_id;
            assert_eq!(header(&event).control_id, id);
            assert_eq!(event.size, msg.len());
            assert_eq!(event.peer_app, app);
            acknowledged(&event, AckCode::AA, true);
        }
        no_more_events(events);
        let route = event_route(gw);
        assert_eq!(gw.messages(route, "AA"), 3, "{route}");
        assert_eq!(gw.all_frame_errors(route), 0, "{route}");
    }

    stream.shutdown().await.unwrap();
    assert_eq!(acks.until_end(&mut stream).await, Vec::<Vec<u8>>::new());
    client.wait_connections("to-dpi", outcome::CLOSED, 1).await;
    server
        .wait_connections("from-eai", outcome::CLOSED, 1)
        .await;
}

/// The one route of a gateway of the TLS pair test.
fn event_route(gw: &Running) -> &'static str {
    if gw.value(
        "guichet_messages_total",
        &[("route", "to-dpi"), ("outcome", "AA")],
    ) > 0
    {
        "to-dpi"
    } else {
        "from-eai"
    }
}

#[tokio::test]
async fn ack_written_after_the_senders_end_of_stream_still_arrives() {
    let pki = Pki::new();
    let plan = AckPlan {
        after_eof: true,
        ..AckPlan::accept()
    };
    let backend = MllpBackend::start(plan).await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let msg = adt("HALF-1");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    send_frames(&mut stream, &[&msg]).await;
    stream.shutdown().await.unwrap();
    let acks = FrameReader::default().until_end(&mut stream).await;

    assert_eq!(acks.len(), 1);
    assert_eq!(acks, backend.sent());
    assert_eq!(summary(&acks[0]).acknowledged_id, "HALF-1");
    assert_eq!(backend.received(), vec![msg]);
    let event = next_event(&mut events).await;
    assert_eq!(header(&event).control_id, "HALF-1");
    acknowledged(&event, AckCode::AA, true);
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, "AA"), 1);
    assert_eq!(gateway.all_messages(ROUTE), 1);
}

// ------------------------------------------------------------- logs

/// The log capture, installed once as this test binary's global subscriber:
/// a thread-local one (`set_default`) races with the callsite interest
/// cache when tests run side by side and may miss lines.
fn global_capture() -> Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            tracing::subscriber::set_global_default(capture.clone())
                .expect("no other global subscriber");
            capture
        })
        .clone()
}

/// A `tracing` subscriber keeping every event and span field as text (see
/// [`global_capture`]).
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Capture {
    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    fn line(&self, record: impl FnOnce(&mut Fields<'_>)) {
        let mut text = self.text.lock().unwrap();
        record(&mut Fields(&mut text));
        text.push('\n');
    }
}

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.line(|f| {
            let _ = write!(f.0, " span_id={id}");
            span.record(f);
        });
        tracing::span::Id::from_u64(id)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.line(|f| values.record(f));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let in_span = ENTERED.with(|entered| entered.borrow().last().copied());
        self.line(|f| {
            event.record(f);
            if let Some(id) = in_span {
                let _ = write!(f.0, " in_span={id}");
            }
        });
    }

    fn enter(&self, id: &tracing::span::Id) {
        ENTERED.with(|entered| entered.borrow_mut().push(id.into_u64()));
    }

    fn exit(&self, _: &tracing::span::Id) {
        ENTERED.with(|entered| entered.borrow_mut().pop());
    }
}

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The relay is polled outside its connection's span and enters it to
/// log: a warning it writes must still be under `conn{route remote}`.
#[tokio::test]
async fn a_relay_warning_is_logged_in_its_connection_span() {
    let logs = global_capture();
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let gateway = plain_gateway(&pki, &backend, "").await;

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let local = stream.local_addr().unwrap();
    let mut acks = FrameReader::default();
    stream.write_all(b"NOISE").await.unwrap();
    send_frames(&mut stream, &[&adt("SPAN-1")]).await;
    acks.frame(&mut stream).await;

    let text = logs.text();
    let span_line = text
        .lines()
        .find(|l| l.contains(&format!("remote={local}")) && l.contains("span_id="))
        .expect("the connection's span");
    let id = span_line
        .split(' ')
        .find_map(|w| w.strip_prefix("span_id="))
        .unwrap();
    assert!(span_line.contains(&format!("route={ROUTE}")), "{span_line}");
    let warned = text
        .lines()
        .filter(|l| l.contains("bytes outside any MLLP frame discarded"))
        .filter(|l| l.contains("bytes=5"))
        .any(|l| l.ends_with(&format!(" in_span={id}")));
    assert!(warned, "no warning in span {id}:\n{text}");
}

/// A pipelining sender pairs answers with messages by position: guichet's
/// own AR for a frame without MSH must not overtake the ACK of a message
/// sent before it.
#[tokio::test]
async fn own_reject_waits_for_the_acks_owed_before_it() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan {
        delay: Duration::from_millis(150),
        ..AckPlan::accept()
    })
    .await;
    let gateway = plain_gateway(&pki, &backend, "").await;
    let first = adt("MSG-1");
    let last = adt("MSG-3");
    let not_hl7: &[u8] = b"HELLO|not HL7\r";

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut answers = FrameReader::default();
    send_frames(&mut stream, &[&first, not_hl7, &last]).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let answer = answers.frame(&mut stream).await;
        let parsed = Message::parse(&answer).unwrap();
        let summary = AckSummary::read(&parsed).unwrap();
        got.push((summary.code, summary.acknowledged_id));
    }
    assert_eq!(
        got,
        vec![
            (Some(AckCode::AA), "MSG-1".to_string()),
            (Some(AckCode::AR), String::new()),
            (Some(AckCode::AA), "MSG-3".to_string()),
        ]
    );
}

/// With `non_hl7 = "pass"`, the receiver's answer to a passed frame is
/// forwarded and is not mistaken for an unsolicited ACK or for the answer
/// to the next message.
#[tokio::test]
async fn answer_to_a_passed_frame_keeps_its_place() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan {
        answer_not_hl7: true,
        ..AckPlan::accept()
    })
    .await;
    let gateway = plain_gateway(&pki, &backend, "non_hl7 = \"pass\"\n").await;
    let mut events = gateway.events.subscribe();
    let not_hl7: &[u8] = b"HELLO|not HL7\r";
    let msg = adt("MSG-2");

    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut answers = FrameReader::default();
    send_frames(&mut stream, &[not_hl7, &msg]).await;
    assert_eq!(answers.frame(&mut stream).await, NOT_HL7_ANSWER);
    let ack = answers.frame(&mut stream).await;
    assert_eq!(backend.sent(), vec![NOT_HL7_ANSWER.to_vec(), ack]);

    assert_eq!(
        next_event(&mut events).await.outcome,
        MessageOutcome::PassedNotHl7
    );
    let relayed = next_event(&mut events).await;
    assert_eq!(header(&relayed).control_id, "MSG-2");
    acknowledged(&relayed, AckCode::AA, true);
    no_more_events(&mut events);
    assert_eq!(gateway.messages(ROUTE, mllp_label::UNSOLICITED_ACK), 0);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
}
