//! Hostile input on `mllp` routes: a BOM before MSH, enhanced-mode
//! messages that expect no accept ACK, a start block inside a frame,
//! connection-end reasons, one log line for messages lost in flight, and
//! `frame_timeout`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use guichet_gateway::MessageOutcome;
use guichet_hl7::{frame, AckCode, AckSummary, Message};
use guichet_pki::Usage;
use guichet_testsupport::fixtures::{self, hl7_sample, hl7_samples};
use guichet_testsupport::mllp::{by_id, Reply};
use guichet_testsupport::samples::Hl7;
use guichet_testsupport::wait::let_pass;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::fmt::MakeWriter;

const ROUTE: &str = "hl7";

// ------------------------------------------------------------ fixtures

/// MSH-10 the naive way: the first line, after any BOM, split on '|'.
fn naive_control_id(bytes: &[u8]) -> String {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = body.split(|&b| b == b'\n' || b == b'\r').next().unwrap();
    let field = first.split(|&b| b == b'|').nth(9).unwrap();
    String::from_utf8(field.to_vec()).unwrap()
}

// ------------------------------------------------------------ helpers

fn adt(id: &str) -> Vec<u8> {
    Hl7::adt(id).bytes()
}

fn mllp_route(forward: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nforward = \"{forward}\"\n{extra}"
    )
}

async fn plain_gateway(pki: &Pki, backend: &MllpBackend, extra: &str) -> Running {
    let text = gateway_section("1s", "0s") + &mllp_route(&backend.target(), extra);
    Running::start(&pki.config_path(), &text).await
}

/// A gateway with one store-and-forward `mllp` route to `backend`.
async fn stored_gateway(pki: &Pki, backend: &MllpBackend) -> Running {
    stored_gateway_with(pki, backend, "").await
}

async fn stored_gateway_with(pki: &Pki, backend: &MllpBackend, extra: &str) -> Running {
    let journal = pki.tmp.path().join("journal.db");
    let text = format!(
        "[gateway]\ndrain_timeout = \"1s\"\nwatch_interval = \"0s\"\n\n\
         [journal]\nstore = {}\nnode = \"test\"\nlease_timeout = \"3s\"\n\n",
        toml_path(&journal)
    ) + &mllp_route(
        &backend.target(),
        &format!("delivery = \"store-and-forward\"\nack_timeout = \"2s\"\nretry_initial = \"50ms\"\n{extra}"),
    );
    Running::start(&pki.config_path(), &text).await
}

/// Waits until `backend` has read `n` frames.
async fn received(backend: &MllpBackend, n: usize) -> Vec<Vec<u8>> {
    bounded("frames reach the receiver", async {
        while backend.received().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    backend.received()
}

fn summary(ack: &[u8]) -> AckSummary {
    AckSummary::read(&Message::parse(ack).unwrap()).expect("an MSA segment")
}

fn honouring() -> AckPlan {
    AckPlan {
        honour_ack_modes: true,
        ..AckPlan::accept()
    }
}

/// The gateway's log lines, captured for one test (a current-thread
/// runtime runs every task on the thread the subscriber is set on).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// Reads until the gateway closes the connection (end of stream or reset).
async fn closed_by_gateway(stream: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 1024];
    bounded("the gateway closes the connection", async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

// -------------------------------------------- BOM and whitespace before MSH

/// The 139 real samples, 27 of them with a BOM, LF segment ends:
/// all acknowledged AA through an mllp route, forwarded byte for byte,
/// the BOMs counted.
#[tokio::test]
async fn f1_bom_before_msh_is_accepted_and_counted() {
    let Some(files) = hl7_samples() else { return };
    assert_eq!(files.len(), 139);
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "").await;
    let (mut rd, mut wr) = tcp(gateway.addr(ROUTE)).await.into_split();
    let mut reader = FrameReader::default();

    for (path, bytes) in &files {
        let name = fixtures::name(path);
        send_frames(&mut wr, &[bytes]).await;
        let ack = summary(&reader.frame(&mut rd).await);
        assert_eq!(ack.code, Some(AckCode::AA), "{name}");
        assert_eq!(ack.acknowledged_id, naive_control_id(bytes), "{name}");
    }
    wr.shutdown().await.unwrap();
    assert!(reader.until_end(&mut rd).await.is_empty());
    backend.wait_ended(1).await;

    let sent: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(backend.received(), sent, "bytes altered on the way");
    gateway
        .wait_value(
            "guichet_messages_total",
            &[("route", ROUTE), ("outcome", "AA")],
            139,
        )
        .await;
    assert_eq!(gateway.all_messages(ROUTE), 139);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
    let leading = |kind| {
        gateway.value(
            "guichet_messages_with_leading_bytes_total",
            &[("route", ROUTE), ("kind", kind)],
        )
    };
    assert_eq!(leading("bom"), 27);
    assert_eq!(leading("whitespace"), 0);
    gateway.stop().await;
}

/// Whitespace (CR LF, spaces) before MSH is accepted and counted too.
#[tokio::test]
async fn f1_whitespace_before_msh_is_accepted_and_counted() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "").await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut reader = FrameReader::default();

    let msg = [&b"\r\n  "[..], &adt("WS-1")].concat();
    send_frames(&mut stream, &[&msg]).await;
    let ack = summary(&reader.frame(&mut stream).await);
    assert_eq!(
        (ack.code, ack.acknowledged_id.as_str()),
        (Some(AckCode::AA), "WS-1")
    );
    assert_eq!(backend.received(), vec![msg]);
    assert_eq!(
        gateway.value(
            "guichet_messages_with_leading_bytes_total",
            &[("route", ROUTE), ("kind", "whitespace")]
        ),
        1
    );
    assert_eq!(gateway.messages(ROUTE, "rejected_not_hl7"), 0);
    gateway.stop().await;
}

/// A BOM on a store-and-forward route: a message with a BOM is stored,
/// acknowledged AA by guichet, and delivered unchanged.
#[tokio::test]
async fn f1_bom_before_msh_is_stored_and_delivered() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = stored_gateway(&pki, &backend).await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;

    let msg = [&b"\xEF\xBB\xBF"[..], &adt("BOM-SF")].concat();
    send_frames(&mut stream, &[&msg]).await;
    let ack = summary(&FrameReader::default().frame(&mut stream).await);
    assert_eq!(
        (ack.code, ack.acknowledged_id.as_str()),
        (Some(AckCode::AA), "BOM-SF")
    );
    assert_eq!(received(&backend, 1).await, vec![msg]);
    assert_eq!(gateway.messages(ROUTE, "stored"), 1);
    assert_eq!(
        gateway.value(
            "guichet_messages_with_leading_bytes_total",
            &[("route", ROUTE), ("kind", "bom")]
        ),
        1
    );
    gateway.stop().await;
}

// ------------------------------------------------------------ enhanced mode

/// ADT-A40-01 (MSH-15/16 = NE) expects no ACK; the message after it
/// gets its own ACK, paired right: no mismatch, nothing unacknowledged.
#[tokio::test]
async fn f2_no_accept_ack_message_takes_no_place_in_the_ack_order() {
    let Some(a40) = hl7_sample("ADT-A40-01.hl7") else {
        return;
    };
    let (logs, _guard) = Logs::capture();
    let pki = Pki::new();
    let backend = MllpBackend::start(honouring()).await;
    let mut gateway = plain_gateway(&pki, &backend, "").await;
    let mut events = gateway.events.subscribe();
    let (mut rd, mut wr) = tcp(gateway.addr(ROUTE)).await.into_split();
    let mut reader = FrameReader::default();

    send_frames(&mut wr, &[&a40, &adt("N2")]).await;
    let ack = summary(&reader.frame(&mut rd).await);
    assert_eq!(
        (ack.code, ack.acknowledged_id.as_str()),
        (Some(AckCode::AA), "N2")
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.header.as_ref().unwrap().control_id, "N2");
    assert!(
        matches!(
            event.outcome,
            MessageOutcome::Acknowledged {
                code: Some(AckCode::AA),
                id_matches: true,
                ..
            }
        ),
        "{event:?}"
    );
    wr.shutdown().await.unwrap();
    assert!(reader.until_end(&mut rd).await.is_empty());
    backend.wait_ended(1).await;
    let event = next_event(&mut events).await;
    assert_eq!(event.header.as_ref().unwrap().control_id, "8919-40");
    assert_eq!(event.outcome, MessageOutcome::NoAckDue);

    assert_eq!(
        backend.sent().len(),
        1,
        "the receiver answered the NE message"
    );
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
    assert_eq!(gateway.messages(ROUTE, "AA"), 1);
    assert_eq!(gateway.messages(ROUTE, "no_ack_due"), 1);
    assert_eq!(gateway.messages(ROUTE, "unacknowledged"), 0);
    assert_eq!(gateway.messages(ROUTE, "unsolicited_ack"), 0);
    assert_eq!(gateway.acks_overdue(ROUTE), 0);
    assert!(logs.lines_with("not acknowledged").is_empty());
    assert!(logs.lines_with("MSA-2 differs").is_empty());
    gateway.stop().await;
}

/// A receiver that answers the NE message anyway (an application ACK)
/// has that answer paired by MSA-2, not with the next message.
#[tokio::test]
async fn f2_answer_to_a_no_ack_message_is_paired_by_its_msa2() {
    let Some(a40) = hl7_sample("ADT-A40-01.hl7") else {
        return;
    };
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "").await;
    let (mut rd, mut wr) = tcp(gateway.addr(ROUTE)).await.into_split();
    let mut reader = FrameReader::default();

    send_frames(&mut wr, &[&a40, &adt("N2")]).await;
    let first = summary(&reader.frame(&mut rd).await);
    let second = summary(&reader.frame(&mut rd).await);
    assert_eq!(first.acknowledged_id, "8919-40");
    assert_eq!(second.acknowledged_id, "N2");
    wr.shutdown().await.unwrap();
    assert!(reader.until_end(&mut rd).await.is_empty());
    gateway
        .wait_value(
            "guichet_messages_total",
            &[("route", ROUTE), ("outcome", "AA")],
            2,
        )
        .await;
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
    assert_eq!(gateway.all_messages(ROUTE), 2);
    gateway.stop().await;
}

/// Enhanced mode on a store-and-forward route: the NE message is delivered without
/// waiting for an ACK that will not come (no ack_timeout, no retry), and
/// the message after it is delivered and paired right.
#[tokio::test]
async fn f2_no_accept_ack_message_is_delivered_without_waiting() {
    let Some(a40) = hl7_sample("ADT-A40-01.hl7") else {
        return;
    };
    let pki = Pki::new();
    let backend = MllpBackend::start(honouring()).await;
    let mut gateway = stored_gateway(&pki, &backend).await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;

    send_frames(&mut stream, &[&a40, &adt("N2")]).await;
    // guichet answers N2 only: the NE message asked for no accept ACK.
    let ack = summary(&FrameReader::default().frame(&mut stream).await);
    assert_eq!(
        (ack.code, ack.acknowledged_id.as_str()),
        (Some(AckCode::AA), "N2")
    );
    assert_eq!(received(&backend, 2).await, vec![a40, adt("N2")]);
    let attempts = |result| {
        gateway.value(
            "guichet_delivery_attempts_total",
            &[("route", ROUTE), ("result", result)],
        )
    };
    gateway
        .wait_value(
            "guichet_delivery_attempts_total",
            &[("route", ROUTE), ("result", "delivered")],
            2,
        )
        .await;
    assert_eq!(attempts("retry"), 0);
    assert_eq!(gateway.messages(ROUTE, "no_ack_due"), 1);
    assert_eq!(gateway.messages(ROUTE, "unacknowledged"), 0);
    gateway.stop().await;
}

/// A receiver in enhanced mode that answers each message twice on the
/// same connection: the accept ACK (CA), then the application ACK (AA).
async fn commit_then_application_receiver() -> MllpBackend {
    let backend = MllpBackend::start(AckPlan::accept()).await;
    backend.answer_with(by_id(|_| Reply::Acks(vec![AckCode::CA, AckCode::AA])));
    backend
}

/// After an accept ACK, the application ACK of the same message on
/// the same connection is paired by MSA-2: no mismatch, no unsolicited
/// ACK, and the next message's accept ACK is still paired with it.
#[tokio::test]
async fn f2_application_ack_after_commit_is_paired_by_msa2() {
    let pki = Pki::new();
    let receiver = commit_then_application_receiver().await;
    let text = gateway_section("1s", "0s") + &mllp_route(&receiver.target(), "");
    let mut gateway = Running::start(&pki.config_path(), &text).await;
    let (mut rd, mut wr) = tcp(gateway.addr(ROUTE)).await.into_split();
    let mut reader = FrameReader::default();
    let enhanced = |id: &str| {
        let text = String::from_utf8(adt(id)).unwrap();
        text.replacen("|P|2.5\r", "|P|2.5|||AL|AL\r", 1)
            .into_bytes()
    };

    send_frames(&mut wr, &[&enhanced("E1"), &enhanced("E2")]).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let ack = summary(&reader.frame(&mut rd).await);
        answers.push((ack.code.unwrap(), ack.acknowledged_id));
    }
    let want = [
        (AckCode::CA, "E1"),
        (AckCode::AA, "E1"),
        (AckCode::CA, "E2"),
        (AckCode::AA, "E2"),
    ]
    .map(|(code, id)| (code, id.to_string()));
    assert_eq!(answers, want);
    gateway
        .wait_value(
            "guichet_messages_total",
            &[("route", ROUTE), ("outcome", "AA")],
            2,
        )
        .await;
    assert_eq!(gateway.messages(ROUTE, "CA"), 2);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
    assert_eq!(gateway.messages(ROUTE, "unsolicited_ack"), 0);
    gateway.stop().await;
}

/// guichet's own AR (a frame without MSH) after an NE message goes
/// back at once, not behind an ACK that will never come.
#[tokio::test]
async fn f2_own_reject_after_a_no_ack_message_is_answered_at_once() {
    let Some(a40) = hl7_sample("ADT-A40-01.hl7") else {
        return;
    };
    let pki = Pki::new();
    let backend = MllpBackend::start(honouring()).await;
    let mut gateway = plain_gateway(&pki, &backend, "").await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;

    send_frames(&mut stream, &[&a40, b"not an HL7 message"]).await;
    let reply = summary(&FrameReader::default().frame(&mut stream).await);
    assert_eq!(reply.code, Some(AckCode::AR));
    assert_eq!(gateway.messages(ROUTE, "rejected_not_hl7"), 1);
    assert_eq!(backend.received(), vec![a40]);
    gateway.stop().await;
}

// ----------------------------------------------- start block inside a frame

/// A second start block inside a frame makes the partial frame a
/// frame error: never forwarded, counted, logged; the connection goes on
/// with the frame the start block opened.
#[tokio::test]
async fn f10_start_block_inside_a_frame_is_a_frame_error() {
    let (logs, _guard) = Logs::capture();
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "").await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;
    let mut reader = FrameReader::default();

    let cut = adt("CUT");
    let mut bytes = vec![0x0B];
    bytes.extend_from_slice(&cut[..60]);
    bytes.extend(frame(&adt("M2")));
    bounded("write", stream.write_all(&bytes)).await.unwrap();
    assert_eq!(
        summary(&reader.frame(&mut stream).await).acknowledged_id,
        "M2"
    );
    send_frames(&mut stream, &[&adt("M3")]).await;
    assert_eq!(
        summary(&reader.frame(&mut stream).await).acknowledged_id,
        "M3"
    );

    assert_eq!(backend.received(), vec![adt("M2"), adt("M3")]);
    assert_eq!(gateway.frame_errors(ROUTE, "start_block_in_frame"), 1);
    assert_eq!(gateway.messages(ROUTE, "AA"), 2);
    assert_eq!(gateway.ack_mismatches(ROUTE), 0);
    let lines = logs.lines_with("reason=\"start_block_in_frame\"");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        !lines[0].contains("DOE"),
        "patient data in the log: {}",
        lines[0]
    );
    gateway.stop().await;
}

// --------------------------------------------------- connection-end reasons

/// Framing errors on a plain route end the connection with their own
/// reason and outcome; none is a refusal or a handshake failure.
#[tokio::test]
async fn f7_framing_errors_are_not_handshake_failures() {
    let (logs, _guard) = Logs::capture();
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "max_frame_bytes = 1024\n").await;

    let mut big = tcp(gateway.addr(ROUTE)).await;
    let _ = big.write_all(&frame(&payload(4096))).await;
    closed_by_gateway(&mut big).await;
    let mut cut = tcp(gateway.addr(ROUTE)).await;
    cut.write_all(b"\x0bMSH|^~\\&|EAI").await.unwrap();
    cut.shutdown().await.unwrap();
    closed_by_gateway(&mut cut).await;

    gateway
        .wait_connections(ROUTE, outcome::FRAME_ERROR, 2)
        .await;
    assert_eq!(gateway.frame_errors(ROUTE, "too_large"), 1);
    assert_eq!(gateway.frame_errors(ROUTE, "truncated"), 1);
    assert_eq!(gateway.connections(ROUTE, outcome::ERROR), 0);
    assert_eq!(gateway.all_refusals(), 0);
    assert_eq!(logs.lines_with("reason=\"frame_too_large\"").len(), 1);
    assert_eq!(logs.lines_with("reason=\"truncated\"").len(), 1);
    assert!(logs.lines_with("handshake_failed").is_empty());
    gateway.stop().await;
}

/// A TLS client that ends without close_notify is `peer_closed`: not
/// a refusal, not `handshake_failed`.
#[tokio::test]
async fn f7_end_without_close_notify_is_peer_closed() {
    let (logs, _guard) = Logs::capture();
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let text = gateway_section("1s", "0s")
        + &profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl()))
        + &app("eai-app", "eai")
        + &mllp_route(
            &backend.target(),
            "listen_tls = \"gw\"\nallow = [\"eai-app\"]\n",
        );
    let mut gateway = Running::start(&pki.config_path(), &text).await;

    let mut stream = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    send_frames(&mut stream, &[&adt("T1")]).await;
    let ack = FrameReader::default().frame(&mut stream).await;
    assert_eq!(summary(&ack).acknowledged_id, "T1");
    let (tcp, _) = stream.into_inner();
    drop(tcp);

    gateway
        .wait_connections(ROUTE, outcome::PEER_CLOSED, 1)
        .await;
    assert_eq!(gateway.connections(ROUTE, outcome::ERROR), 0);
    assert_eq!(gateway.all_refusals(), 0);
    assert_eq!(gateway.all_frame_errors(ROUTE), 0);
    assert_eq!(logs.lines_with("reason=\"peer_closed\"").len(), 1);
    assert!(logs.lines_with("handshake_failed").is_empty());
    gateway.stop().await;
}

// ------------------------------------------------------- lost in flight

/// A sender gone with 1000 messages in flight: one event each, one WARN
/// line for them all, with the count; their ACKs overdue before that are
/// reported in a few lines, not 1000.
#[tokio::test]
async fn lost_in_flight_messages_are_one_summary_line() {
    const N: usize = 1000;
    let (logs, _guard) = Logs::capture();
    let pki = Pki::new();
    let plan = AckPlan {
        silent: true,
        ..AckPlan::accept()
    };
    let backend = MllpBackend::start(plan).await;
    let mut gateway = plain_gateway(&pki, &backend, "ack_timeout = \"1s\"\n").await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;

    let messages: Vec<Vec<u8>> = (0..N).map(|i| adt(&format!("F{i}"))).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    send_frames(&mut stream, &refs).await;
    bounded("all forwarded", async {
        while backend.received().len() < N {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Overdue first: a few lines at most, not one per message.
    gateway
        .wait_value("guichet_acks_overdue_total", &[("route", ROUTE)], N as u64)
        .await;
    let overdue = logs.lines_with("no ACK yet");
    assert!((1..=3).contains(&overdue.len()), "{} lines", overdue.len());
    drop(stream);

    gateway
        .wait_value(
            "guichet_messages_total",
            &[("route", ROUTE), ("outcome", "unacknowledged")],
            N as u64,
        )
        .await;
    let lines = logs.lines_with("not acknowledged");
    assert_eq!(lines.len(), 1, "{} lines", lines.len());
    assert!(lines[0].contains("count=1000"), "{}", lines[0]);
    assert!(lines[0].contains("first_control_id=F0"), "{}", lines[0]);
    assert!(lines[0].contains("last_control_id=F999"), "{}", lines[0]);
    gateway.stop().await;
}

// -------------------------------------------------------- frame_timeout

/// A sender trickling a frame one byte at a time is cut at
/// `frame_timeout`, however active it looks; counted and logged.
#[tokio::test]
async fn frame_timeout_cuts_a_trickling_sender() {
    let (logs, _guard) = Logs::capture();
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "frame_timeout = \"1s\"\n").await;
    let stream = tcp(gateway.addr(ROUTE)).await;
    let (mut rd, mut wr) = stream.into_split();

    let started = std::time::Instant::now();
    let trickle = tokio::spawn(async move {
        let _ = wr.write_all(b"\x0bMSH|").await;
        for byte in adt("SLOW").into_iter().cycle() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 64];
    let read = bounded("cut at frame_timeout", rd.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(waited >= Duration::from_millis(900), "cut after {waited:?}");
    assert!(waited < Duration::from_secs(3), "cut after {waited:?}");
    trickle.abort();

    gateway
        .wait_connections(ROUTE, outcome::FRAME_TIMEOUT, 1)
        .await;
    assert_eq!(gateway.frame_errors(ROUTE, "frame_timeout"), 1);
    assert!(backend.received().is_empty());
    assert_eq!(logs.lines_with("reason=\"frame_timeout\"").len(), 1);
    gateway.stop().await;
}

/// A frame arriving in slow pieces that ends within `frame_timeout` is
/// relayed as usual.
#[tokio::test]
async fn frame_timeout_spares_a_slow_frame_that_ends_in_time() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = plain_gateway(&pki, &backend, "frame_timeout = \"2s\"\n").await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;

    let bytes = frame(&adt("SLOW-OK"));
    for piece in bytes.chunks(bytes.len() / 4 + 1) {
        stream.write_all(piece).await.unwrap();
        let_pass(Duration::from_millis(200)).await;
    }
    let ack = summary(&FrameReader::default().frame(&mut stream).await);
    assert_eq!(ack.acknowledged_id, "SLOW-OK");
    assert_eq!(gateway.frame_errors(ROUTE, "frame_timeout"), 0);
    gateway.stop().await;
}

// ---------------------------------------------------------------- check

/// `check` names the ways an mllp route is weaker than it could be.
#[test]
fn check_warns_of_weak_mllp_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.toml");
    let weak = "non_hl7 = \"pass\"\nframe_timeout = \"10m\"\nmax_frame_bytes = 1073741824\nmax_connections = 100\n";
    std::fs::write(&path, mllp_route("127.0.0.1:2575", weak)).unwrap();
    let report = guichet_gateway::check::check(&path).unwrap().to_string();
    for want in [
        "non_hl7 = \"pass\"",
        "frame_timeout = 600s",
        "102400 MiB of frame buffers",
    ] {
        assert!(report.contains(want), "{want:?} missing from:\n{report}");
    }
    std::fs::write(&path, mllp_route("127.0.0.1:2575", "")).unwrap();
    let report = guichet_gateway::check::check(&path).unwrap();
    assert_eq!(
        report.count(guichet_gateway::check::Level::Warning),
        0,
        "{report}"
    );
}

/// A start block inside a frame and `frame_timeout` on a store-and-forward route: the interrupted
/// frame is neither stored nor acknowledged, the next one is; a trickled
/// frame is cut at the deadline and nothing of it is stored.
#[tokio::test]
async fn f10_and_frame_timeout_on_a_store_and_forward_route() {
    let pki = Pki::new();
    let backend = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = stored_gateway_with(&pki, &backend, "frame_timeout = \"1s\"\n").await;
    let mut stream = tcp(gateway.addr(ROUTE)).await;

    let mut bytes = vec![0x0B];
    bytes.extend_from_slice(&adt("CUT")[..50]);
    bytes.extend(frame(&adt("S2")));
    bounded("write", stream.write_all(&bytes)).await.unwrap();
    let ack = summary(&FrameReader::default().frame(&mut stream).await);
    assert_eq!(
        (ack.code, ack.acknowledged_id.as_str()),
        (Some(AckCode::AA), "S2")
    );
    assert_eq!(received(&backend, 1).await, vec![adt("S2")]);
    assert_eq!(gateway.frame_errors(ROUTE, "start_block_in_frame"), 1);

    let started = std::time::Instant::now();
    bounded("write", stream.write_all(b"\x0bMSH|^~"))
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let trickle = tokio::spawn(async move {
        while wr.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 64];
    let read = bounded("cut at frame_timeout", rd.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    trickle.abort();
    gateway
        .wait_connections(ROUTE, outcome::FRAME_TIMEOUT, 1)
        .await;
    assert_eq!(gateway.frame_errors(ROUTE, "frame_timeout"), 1);
    assert_eq!(gateway.messages(ROUTE, "stored"), 1);
    gateway.stop().await;
}
