//! `delivery = "store-and-forward"` routes under faults, at the library
//! level: a gateway bound from a config file in a temporary folder, the
//! journal beside it, real senders and receivers on 127.0.0.1.
//!
//! What every test holds guichet to: a sender gets an accept (AA, or CA in
//! enhanced mode) only for a message the journal has stored, and every
//! stored message reaches the receiver, in order, once (more than once
//! only when the journal flags it as a possible redelivery).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{closed_port, toml_path, AckPlan, MllpBackend, Running, WithAdmin, WAIT};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::{AckCode, AckSummary, Header, Message, MllpCodec};
use guichet_journal::{Filter, MessageRecord, OpenOptions, State, StoreSpec};
use guichet_testsupport::mllp::{Reply, Rule};
use guichet_testsupport::peers::{have, run_ok};
use guichet_testsupport::samples::{control_id, Hl7};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

const ROUTE: &str = "adt";

/// PID-5 of every test message: patient data, delivered byte for byte.
const PATIENT: &str = "DUPONT^MARIE";

/// How long a delivery or a queue figure may take to show (queue figures
/// are refreshed every 2 s).
const SETTLE: Duration = Duration::from_secs(15);

// ------------------------------------------------------------ messages

/// An ADT^A01 from `app` with control id `id`, in original mode.
fn adt(app: &str, id: &str) -> Vec<u8> {
    adt_with(app, id, "")
}

/// An ADT^A01 whose MSH goes on after MSH-12 with `tail` (e.g. `|||AL|NE`
/// for enhanced mode).
fn adt_with(app: &str, id: &str, tail: &str) -> Vec<u8> {
    let msg = Hl7::adt(id).from(app).msh_tail(tail);
    msg.patient("123456", PATIENT, "F").visit().bytes()
}

/// An ORU^R01 with `len` bytes of report in OBX-5: fills a disk fast.
fn report(id: &str, len: usize) -> Vec<u8> {
    let mut msg = format!(
        "MSH|^~\\&|LAB|CHU-NORD|DPI|CHU-NORD|20240101120000||ORU^R01^ORU_R01|{id}|P|2.5\r\
         PID|1||123456^^^CHU^PI||{PATIENT}||19700101|F\r\
         OBX|1|ED|PDF^Report||^AP^PDF^Base64^"
    )
    .into_bytes();
    msg.extend((0..len).map(|i| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[i % 32]));
    msg.push(b'\r');
    msg
}

// -------------------------------------------------------------- config

/// One store-and-forward route, [`ROUTE`], to `forward`, its journal in
/// `dir`; short retries so that a test never waits long. `extra` adds
/// lines to the route.
fn config(dir: &Path, forward: &str, extra: &str) -> String {
    config_with_store(&dir.join("journal.db"), forward, extra)
}

fn config_with_store(store: &Path, forward: &str, extra: &str) -> String {
    format!(
        "[gateway]\ndrain_timeout = \"1s\"\nwatch_interval = \"0s\"\n\n\
         [journal]\nstore = {}\nnode = \"test\"\nlease_timeout = \"3s\"\n\n\
         [[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\ndelivery = \"store-and-forward\"\n\
         listen = \"127.0.0.1:0\"\nforward = \"{forward}\"\nack_timeout = \"2s\"\n\
         retry_initial = \"50ms\"\nretry_max = \"200ms\"\n{extra}",
        toml_path(store)
    )
}

async fn start(dir: &Path, text: &str) -> Running {
    Running::start(&dir.join("guichet.toml"), text).await
}

// ------------------------------------------------------------- journal

/// Every record of [`ROUTE`] in the SQLite journal at `path`, oldest
/// first. Only once the gateway has stopped: see [`sqlite_states`].
async fn records_at(path: &Path) -> Vec<MessageRecord> {
    let journal = guichet_journal::open(
        &StoreSpec::Sqlite(path.to_path_buf()),
        OpenOptions::default(),
    )
    .await
    .expect("open the journal");
    let mut records = journal
        .list(Filter {
            route: Some(ROUTE.into()),
            limit: 1_000_000,
            ..Filter::default()
        })
        .await
        .expect("list the journal");
    records.sort_by_key(|r| r.id);
    records
}

async fn records(dir: &Path) -> Vec<MessageRecord> {
    records_at(&dir.join("journal.db")).await
}

fn ids(records: &[MessageRecord]) -> Vec<&str> {
    records.iter().map(|r| r.meta.control_id.as_str()).collect()
}

fn record<'a>(records: &'a [MessageRecord], id: &str) -> &'a MessageRecord {
    let mut found = records.iter().filter(|r| r.meta.control_id == id);
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no record of {id}: {records:#?}"));
    assert!(found.next().is_none(), "{id} stored twice: {records:#?}");
    first
}

// -------------------------------------------------------------- sender

/// A sender application: one message at a time, then its ACK.
struct Sender {
    framed: Framed<TcpStream, MllpCodec>,
}

impl Sender {
    async fn connect(addr: SocketAddr) -> Sender {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect within WAIT")
            .expect("connect to the gateway");
        Sender {
            framed: Framed::new(tcp, MllpCodec::new(64 * 1024 * 1024)),
        }
    }

    /// Sends `msg` and returns the gateway's ACK, waiting at most `limit`.
    async fn send_within(&mut self, msg: &[u8], limit: Duration) -> AckSummary {
        let frame = self
            .answer_within(msg, limit)
            .await
            .expect("an ACK, got end of stream");
        AckSummary::read(&Message::parse(&frame).expect("an HL7 ACK")).expect("an MSA segment")
    }

    async fn send(&mut self, msg: &[u8]) -> AckSummary {
        self.send_within(msg, WAIT).await
    }

    /// Sends `msg` and expects an accept of it (`code`, MSA-2 = MSH-10).
    async fn accepted(&mut self, msg: &[u8], code: AckCode) {
        let ack = self.send(msg).await;
        assert_eq!(ack.code, Some(code), "ACK of {}", control_id(msg));
        assert_eq!(ack.acknowledged_id, control_id(msg));
    }

    /// The next frame after sending `msg`; `None` at end of stream.
    async fn answer_within(&mut self, msg: &[u8], limit: Duration) -> Option<Vec<u8>> {
        let exchange = async {
            self.framed
                .send(Bytes::copy_from_slice(msg))
                .await
                .expect("send to the gateway");
            match self.framed.next().await {
                None => None,
                Some(Ok(frame)) => Some(frame.payload.to_vec()),
                Some(Err(e)) => panic!("reading the ACK failed: {e}"),
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| panic!("no answer to {} within {limit:?}", control_id(msg)))
    }
}

// ------------------------------------------------------------ receiver

// -------------------------------------------------------------- tests

/// 200 messages sent while nothing listens on the forward address are
/// each acknowledged at once by guichet (AA, MSA-2 = MSH-10); once a
/// receiver starts, all 200 arrive byte for byte, in order, exactly once,
/// and the queue drains to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_a_while_gets_every_acked_message_in_order_exactly_once() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let down = closed_port().await;
    let mut gateway = start(dir.path(), &config(dir.path(), &down.to_string(), "")).await;
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    let sent: Vec<Vec<u8>> = (0..N).map(|i| adt("EAI", &format!("MSG-{i:04}"))).collect();

    let started = Instant::now();
    for msg in &sent {
        sender.accepted(msg, AckCode::AA).await;
    }
    let acked_in = started.elapsed();
    assert_eq!(gateway.messages(ROUTE, "stored"), N as u64);
    gateway
        .wait_value("guichet_queue_depth", &[("route", ROUTE)], N as u64)
        .await;
    let delivered = [("route", ROUTE), ("result", "delivered")];
    assert_eq!(
        gateway.value("guichet_delivery_attempts_total", &delivered),
        0
    );

    let receiver = MllpBackend::start_on(down, AckPlan::accept()).await;
    receiver.wait_count(N, SETTLE).await;
    gateway
        .wait_value("guichet_queue_depth", &[("route", ROUTE)], 0)
        .await;
    drop(sender);
    gateway.stop().await;

    assert_eq!(
        receiver.received(),
        sent,
        "not every message, or not in order, or not exactly once"
    );
    assert_eq!(
        gateway.value("guichet_delivery_attempts_total", &delivered),
        N as u64
    );
    let records = records(dir.path()).await;
    assert_eq!(records.len(), N);
    for (record, msg) in records.iter().zip(&sent) {
        assert_eq!(record.meta.control_id, control_id(msg));
        assert_eq!(record.state, State::Delivered, "{record:?}");
        assert_eq!(record.ack_code.as_deref(), Some("AA"));
        assert!(!record.redelivered, "{record:?}");
    }
    eprintln!("{N} messages acknowledged in {acked_in:?} with the receiver down, then delivered");
}

/// The same (sender, MSH-10) twice within the duplicate window, even on
/// another connection: both AA, one record, one delivery. The same MSH-10
/// from another sender is another message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_within_the_window_is_acked_twice_stored_and_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = start(
        dir.path(),
        &config(
            dir.path(),
            &receiver.target(),
            "duplicate_window = \"1h\"\n",
        ),
    )
    .await;
    let mut first = Sender::connect(gateway.addr(ROUTE)).await;
    first.accepted(&adt("EAI", "DUP-1"), AckCode::AA).await;
    first.accepted(&adt("EAI", "DUP-1"), AckCode::AA).await;
    let mut second = Sender::connect(gateway.addr(ROUTE)).await;
    second.accepted(&adt("EAI", "DUP-1"), AckCode::AA).await;
    second.accepted(&adt("LAB", "DUP-1"), AckCode::AA).await;
    second.accepted(&adt("EAI", "NEXT-2"), AckCode::AA).await;

    // Delivery is in order: once NEXT-2 is in, a second DUP-1 would be too.
    receiver.wait_for("NEXT-2", 1, SETTLE).await;
    drop((first, second));
    gateway.stop().await;

    let apps: Vec<(String, String)> = receiver
        .received()
        .iter()
        .map(|p| {
            let h = Header::read(&Message::parse(p).unwrap());
            (h.sending_application.into(), h.control_id.into())
        })
        .collect();
    let want = [("EAI", "DUP-1"), ("LAB", "DUP-1"), ("EAI", "NEXT-2")];
    assert_eq!(apps, want.map(|(a, i)| (a.to_string(), i.to_string())));
    assert_eq!(gateway.messages(ROUTE, "stored"), 3);
    assert_eq!(gateway.messages(ROUTE, "duplicate"), 2);
    let records = records(dir.path()).await;
    assert_eq!(ids(&records), ["DUP-1", "DUP-1", "NEXT-2"]);
    assert_eq!(records[0].meta.sending_application, "EAI");
    assert_eq!(records[1].meta.sending_application, "LAB");
    assert!(
        records.iter().all(|r| r.state == State::Delivered),
        "{records:#?}"
    );
}

/// A receiver that answers AE: the message is given up after
/// `ae_retries` + 1 attempts and the queue moves on to the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ae_beyond_ae_retries_makes_the_message_dead_and_the_queue_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let rule: Rule = Arc::new(|id, _| {
        Reply::Ack(if id.starts_with("AE-") {
            AckCode::AE
        } else {
            AckCode::AA
        })
    });
    let receiver = MllpBackend::answering(rule).await;
    let mut gateway = start(
        dir.path(),
        &config(dir.path(), &receiver.target(), "ae_retries = 2\n"),
    )
    .await;
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    sender.accepted(&adt("EAI", "AE-1"), AckCode::AA).await;
    sender.accepted(&adt("EAI", "OK-2"), AckCode::AA).await;

    receiver.wait_for("OK-2", 1, SETTLE).await;
    gateway
        .wait_value("guichet_dead_messages", &[("route", ROUTE)], 1)
        .await;
    drop(sender);
    gateway.stop().await;

    assert_eq!(receiver.ids(), ["AE-1", "AE-1", "AE-1", "OK-2"]);
    let attempts = |result| {
        gateway.value(
            "guichet_delivery_attempts_total",
            &[("route", ROUTE), ("result", result)],
        )
    };
    assert_eq!(
        (attempts("retry"), attempts("dead"), attempts("delivered")),
        (2, 1, 1)
    );
    let records = records(dir.path()).await;
    let dead = record(&records, "AE-1");
    assert_eq!(dead.state, State::Dead, "{dead:?}");
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.ack_code.as_deref(), Some("AE"));
    assert!(
        dead.last_error.as_deref().is_some_and(|e| e.contains("AE")),
        "{dead:?}"
    );
    let next = record(&records, "OK-2");
    assert_eq!((next.state, next.attempts), (State::Delivered, 1));
}

/// AR is not AE: it is retried, with no limit, until the receiver accepts;
/// nothing behind it is sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ar_is_retried_until_the_receiver_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let rule: Rule = Arc::new(|id, seen| {
        Reply::Ack(if id == "AR-1" && seen < 3 {
            AckCode::AR
        } else {
            AckCode::AA
        })
    });
    let receiver = MllpBackend::answering(rule).await;
    let mut gateway = start(
        dir.path(),
        &config(dir.path(), &receiver.target(), "ae_retries = 0\n"),
    )
    .await;
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    sender.accepted(&adt("EAI", "AR-1"), AckCode::AA).await;
    sender.accepted(&adt("EAI", "OK-2"), AckCode::AA).await;

    receiver.wait_for("OK-2", 1, SETTLE).await;
    drop(sender);
    gateway.stop().await;

    assert_eq!(receiver.ids(), ["AR-1", "AR-1", "AR-1", "AR-1", "OK-2"]);
    let attempts = |result| {
        gateway.value(
            "guichet_delivery_attempts_total",
            &[("route", ROUTE), ("result", result)],
        )
    };
    assert_eq!(
        (attempts("retry"), attempts("dead"), attempts("delivered")),
        (3, 0, 2)
    );
    let records = records(dir.path()).await;
    let retried = record(&records, "AR-1");
    assert_eq!(
        (retried.state, retried.attempts),
        (State::Delivered, 4),
        "{retried:?}"
    );
    assert_eq!(retried.ack_code.as_deref(), Some("AA"));
}

/// An ACK whose MSA-2 is not the message's MSH-10 acknowledges something
/// else: the attempt fails and the message is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_msa2_fails_the_attempt_and_the_message_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let rule: Rule = Arc::new(|id, seen| {
        if id == "W-1" && seen == 0 {
            Reply::WrongId(AckCode::AA)
        } else {
            Reply::Ack(AckCode::AA)
        }
    });
    let receiver = MllpBackend::answering(rule).await;
    let mut gateway = start(dir.path(), &config(dir.path(), &receiver.target(), "")).await;
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    sender.accepted(&adt("EAI", "W-1"), AckCode::AA).await;
    sender.accepted(&adt("EAI", "OK-2"), AckCode::AA).await;

    receiver.wait_for("OK-2", 1, SETTLE).await;
    drop(sender);
    gateway.stop().await;

    assert_eq!(receiver.ids(), ["W-1", "W-1", "OK-2"]);
    // The stream is not trusted after a stray ACK: a new connection.
    assert_eq!(receiver.accepted(), 2);
    let attempts = |result| {
        gateway.value(
            "guichet_delivery_attempts_total",
            &[("route", ROUTE), ("result", result)],
        )
    };
    assert_eq!((attempts("retry"), attempts("delivered")), (1, 2));
    let records = records(dir.path()).await;
    let retried = record(&records, "W-1");
    assert_eq!(
        (retried.state, retried.attempts),
        (State::Delivered, 2),
        "{retried:?}"
    );
}

/// Enhanced mode (MSH-15 = AL): guichet's accept is a commit accept, CA,
/// not AA; original mode on the same connection still gets AA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_mode_message_gets_ca_from_guichet_not_aa() {
    let dir = tempfile::tempdir().unwrap();
    let rule: Rule = Arc::new(|id, _| {
        Reply::Ack(if id.starts_with("ENH-") {
            AckCode::CA
        } else {
            AckCode::AA
        })
    });
    let receiver = MllpBackend::answering(rule).await;
    let mut gateway = start(dir.path(), &config(dir.path(), &receiver.target(), "")).await;
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    sender
        .accepted(&adt_with("EAI", "ENH-1", "|||AL|NE"), AckCode::CA)
        .await;
    sender.accepted(&adt("EAI", "ORIG-2"), AckCode::AA).await;

    receiver.wait_for("ORIG-2", 1, SETTLE).await;
    drop(sender);
    gateway.stop().await;

    assert_eq!(receiver.ids(), ["ENH-1", "ORIG-2"]);
    let records = records(dir.path()).await;
    let enhanced = record(&records, "ENH-1");
    assert_eq!(enhanced.state, State::Delivered);
    assert_eq!(enhanced.ack_code.as_deref(), Some("CA"));
}

/// `/api/status` says how each `mllp` route delivers and, for a
/// store-and-forward route, how deep its queue is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_api_shows_the_delivery_mode_and_the_queue_depth() {
    let dir = tempfile::tempdir().unwrap();
    let down = closed_port().await;
    let text = config(dir.path(), &down.to_string(), "")
        + "\n[[route]]\nname = \"passing\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n";
    let mut gateway = WithAdmin::start(&dir.path().join("guichet.toml"), &text).await;
    let mut sender = Sender::connect(gateway.running.addr(ROUTE)).await;
    for i in 0..3 {
        sender
            .accepted(&adt("EAI", &format!("Q-{i}")), AckCode::AA)
            .await;
    }

    let route = wait_route_status(&gateway, "the queue at 3", |r| r["queue"]["depth"] == 3).await;
    assert_eq!(route["delivery"], "store-and-forward");
    assert_eq!(route["queue"]["dead"], 0);
    assert_eq!(route["queue"]["delivering_here"], true);
    assert!(
        route["queue"]["oldest_pending_age_seconds"]
            .as_i64()
            .is_some(),
        "{route}"
    );
    let status = gateway.api_status().await;
    let passing = status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "passing")
        .unwrap();
    assert_eq!(passing["delivery"], "passthrough");
    assert!(passing["queue"].is_null(), "{passing}");

    let receiver = MllpBackend::start_on(down, AckPlan::accept()).await;
    let route =
        wait_route_status(&gateway, "the queue drained", |r| r["queue"]["depth"] == 0).await;
    assert_eq!(route["queue"]["in_flight"], 0);
    assert_eq!(route["queue"]["failed"], 0);
    assert!(
        route["queue"]["oldest_pending_age_seconds"].is_null(),
        "{route}"
    );
    assert_eq!(receiver.ids(), ["Q-0", "Q-1", "Q-2"]);
    drop(sender);
    gateway.running.stop().await;
}

/// Polls `/api/status` until [`ROUTE`]'s entry satisfies `done`.
async fn wait_route_status(
    gateway: &WithAdmin,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let status = gateway.api_status().await;
        let route = status["routes"]
            .as_array()
            .and_then(|routes| routes.iter().find(|r| r["name"] == ROUTE))
            .cloned()
            .unwrap_or_else(|| panic!("no route {ROUTE} in {status}"));
        if done(&route) {
            return route;
        }
        if Instant::now() >= deadline {
            panic!("/api/status: no {what} within {SETTLE:?}: {route}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------ journal cannot write

/// Another process holds the journal's write lock (an `sqlite3` shell, a
/// backup tool): while it does, senders get AE (CE in enhanced mode, the
/// connection closed when they asked for no error ACK), never an accept;
/// once it lets go, AA again, and everything accepted is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_locked_by_another_process_answers_errors_never_aa_and_resumes_when_released() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = start(dir.path(), &config(dir.path(), &receiver.target(), "")).await;
    let journal = dir.path().join("journal.db");
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    sender.accepted(&adt("EAI", "BEFORE-1"), AckCode::AA).await;
    // Delivered and recorded: the lock must not catch an outcome in flight.
    // Read from another process: see `sqlite_states`.
    let deadline = Instant::now() + SETTLE;
    while sqlite_states(&journal) != "BEFORE-1 delivered" {
        assert!(
            Instant::now() < deadline,
            "BEFORE-1 never recorded as delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let lock = WriteLock::take(&journal);
    let started = Instant::now();
    // Up to the journal's busy timeout before it gives up.
    let limit = Duration::from_secs(40);
    let ack = sender.send_within(&adt("EAI", "DURING-1"), limit).await;
    let refused_in = started.elapsed();
    assert_eq!(ack.code, Some(AckCode::AE), "while the journal is locked");
    assert_eq!(ack.acknowledged_id, "DURING-1");
    let ack = sender
        .send_within(&adt_with("EAI", "DURING-2", "|||AL|AL"), limit)
        .await;
    assert_eq!(
        ack.code,
        Some(AckCode::CE),
        "enhanced mode while the journal is locked"
    );
    assert_eq!(ack.acknowledged_id, "DURING-2");
    // Asked for a commit ACK on success only: no ACK can say "not taken",
    // so the connection ends.
    let mut quiet = Sender::connect(gateway.addr(ROUTE)).await;
    let answer = quiet
        .answer_within(&adt_with("EAI", "DURING-3", "|||SU|AL"), limit)
        .await;
    assert_eq!(answer, None, "the connection must close, with no ACK");
    assert_eq!(gateway.messages(ROUTE, "not_stored"), 3);
    assert_eq!(
        gateway.value("guichet_journal_failures_total", &[("route", ROUTE)]),
        3
    );
    lock.release();

    sender.accepted(&adt("EAI", "AFTER-1"), AckCode::AA).await;
    receiver.wait_for("AFTER-1", 1, SETTLE).await;
    drop(sender);
    gateway.stop().await;

    assert_eq!(receiver.ids(), ["BEFORE-1", "AFTER-1"]);
    let records = records(dir.path()).await;
    assert_eq!(ids(&records), ["BEFORE-1", "AFTER-1"]);
    assert!(
        records
            .iter()
            .all(|r| r.state == State::Delivered && !r.redelivered),
        "{records:#?}"
    );
    eprintln!("journal locked: AE after {refused_in:?}");
}

/// The journal's folder is full: messages that cannot be stored get AE;
/// once space is freed, AA again. Every message acknowledged with AA,
/// before, during or after, is delivered; none answered AE is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_on_a_full_disk_answers_ae_and_resumes_when_space_is_freed() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = disk.path().join("journal.db");
    let receiver = MllpBackend::start(AckPlan::accept()).await;
    let mut gateway = start(
        dir.path(),
        &config_with_store(&store, &receiver.target(), ""),
    )
    .await;
    let mut sender = Sender::connect(gateway.addr(ROUTE)).await;
    sender.accepted(&adt("EAI", "BEFORE-1"), AckCode::AA).await;
    receiver.wait_for("BEFORE-1", 1, SETTLE).await;

    let filler = disk.fill();
    let (mut accepted, mut refused) = (vec!["BEFORE-1".to_string()], Vec::new());
    // Small messages may still fit in pages the journal already has;
    // large ones cannot.
    for i in 0..200 {
        let small = (
            format!("SMALL-{i:03}"),
            adt("EAI", &format!("SMALL-{i:03}")),
        );
        let large = (
            format!("LARGE-{i:03}"),
            report(&format!("LARGE-{i:03}"), 64 * 1024),
        );
        for (id, msg) in [small, large] {
            let ack = sender.send_within(&msg, Duration::from_secs(30)).await;
            assert_eq!(ack.acknowledged_id, id);
            match ack.code {
                Some(AckCode::AA) => accepted.push(id),
                Some(AckCode::AE) => refused.push(id),
                other => panic!("{id}: {other:?}"),
            }
        }
        if refused.len() >= 3 {
            break;
        }
    }
    assert!(refused.len() >= 3, "a full disk never refused a message");
    assert!(gateway.value("guichet_journal_failures_total", &[("route", ROUTE)]) >= 3);
    std::fs::remove_file(&filler).unwrap();

    sender.accepted(&adt("EAI", "AFTER-1"), AckCode::AA).await;
    accepted.push("AFTER-1".into());
    receiver.wait_for("AFTER-1", 1, SETTLE).await;
    drop(sender);
    gateway.stop().await;

    let got = receiver.ids();
    for id in &accepted {
        assert!(
            got.contains(id),
            "{id} was acknowledged but never delivered"
        );
    }
    for id in &refused {
        assert!(!got.contains(id), "{id} was refused (AE) yet delivered");
    }
    let records = records_at(&store).await;
    let stored: Vec<&str> = ids(&records);
    assert_eq!(
        stored,
        accepted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for record in &records {
        assert_eq!(record.state, State::Delivered, "{record:?}");
        let times = got
            .iter()
            .filter(|id| **id == record.meta.control_id)
            .count();
        assert!(
            times == 1 || record.redelivered,
            "{record:?} delivered {times} times"
        );
    }
    eprintln!(
        "full disk: {} accepted, {} refused with AE, all accepted delivered",
        accepted.len(),
        refused.len()
    );
}

// ------------------------------------------------------ outside helpers

/// `control_id state` of each message, one per line, read by Python's
/// sqlite3 (read-only). Read from another process on purpose: opening a
/// second journal in this process reads the file's header through a file
/// descriptor of its own, and closing it drops every POSIX lock this
/// process holds on the file, the gateway's included; python3 closing
/// later then takes itself for the last user and deletes the live WAL.
fn sqlite_states(path: &Path) -> String {
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=10)\n\
        rows = db.execute('SELECT control_id, state FROM messages ORDER BY id').fetchall()\n\
        print('\\n'.join(c + ' ' + s for c, s in rows))\n";
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(path));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Python's sqlite3 holding `BEGIN EXCLUSIVE` on a journal until
/// [`WriteLock::release`] (or drop) closes its standard input.
struct WriteLock {
    child: Child,
}

const HOLD_LOCK: &str = "
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute('BEGIN EXCLUSIVE')
print('locked', flush=True)
sys.stdin.read()
db.execute('ROLLBACK')
db.close()
";

impl WriteLock {
    fn take(path: &Path) -> WriteLock {
        let mut child = Command::new("python3")
            .args(["-c", HOLD_LOCK])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(35))
            .expect("python3 took the lock");
        assert_eq!(line.trim(), "locked");
        WriteLock { child }
    }

    /// Lets go of the lock and waits for the process to end.
    fn release(mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "python3 kept the lock"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small tmpfs mounted on a temporary folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a SKIPPED line) where mounting is not permitted.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte with one file; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
