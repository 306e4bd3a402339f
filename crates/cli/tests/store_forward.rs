//! Store-and-forward with the real `guichet` binary: SIGKILL in the middle
//! of traffic, a damaged journal at start-up, two nodes sharing a
//! PostgreSQL journal, and what an operator does with `guichet journal`.
//!
//! Senders and the receiver are plain MLLP peers on 127.0.0.1 written
//! here (threads, blocking sockets, every read bounded); the journal is
//! read back through `guichet journal ... --json`, in its own process as
//! an operator would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    free_port, guichet_bin, http_get, postgres_database, run_bounded, show, Bench, Proc, WAIT,
};
use guichet_hl7::{frame, AckCode, AckSummary, Message};
use guichet_testsupport::mllp::{by_id, AckPlan, MllpBackend, Reply};
use guichet_testsupport::samples::{control_id, Hl7};

const ROUTE: &str = "adt";

/// PID content of every test message: it must never show in a listing.
const PATIENT: &str = "DUPONT^MARIE";
const PATIENT_ID: &str = "IPP778899";

/// How long a drain, a takeover or a delivery may take before the test
/// fails.
const SETTLE: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ messages

/// An ADT^A01 from `app` with control id `id`.
fn adt(app: &str, id: &str) -> Vec<u8> {
    let msg = Hl7::adt(id).from(app).patient(PATIENT_ID, PATIENT, "F");
    msg.visit().bytes()
}

/// Reads MLLP frames from a blocking stream.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// The next frame's payload; `None` at end of stream, an error on a
    /// read error or timeout.
    fn next(&mut self, stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(start) = self.buf.iter().position(|&b| b == 0x0b) {
                if let Some(end) = self.buf[start..].windows(2).position(|w| w == [0x1c, 0x0d]) {
                    let payload = self.buf[start + 1..start + end].to_vec();
                    self.buf.drain(..start + end + 2);
                    return Ok(Some(payload));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk)? {
                0 => return Ok(None),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

// ------------------------------------------------------------ receiver

// -------------------------------------------------------------- sender

/// One exchange on a blocking connection: send, then read the ACK.
fn exchange(
    stream: &mut TcpStream,
    frames: &mut Frames,
    msg: &[u8],
) -> std::io::Result<AckSummary> {
    stream.write_all(&frame(msg))?;
    let payload = frames.next(stream)?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the ACK")
    })?;
    Message::parse(&payload)
        .ok()
        .and_then(|m| AckSummary::read(&m))
        .ok_or_else(|| std::io::Error::other("an answer that is not an ACK"))
}

fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    Ok(stream)
}

/// Sends each message on one connection; each must get AA with its MSH-10.
fn send_all(port: u16, messages: &[Vec<u8>]) {
    let mut stream = connect(port, WAIT).expect("connect to guichet");
    let mut frames = Frames::default();
    for msg in messages {
        let ack = exchange(&mut stream, &mut frames, msg).expect("an ACK from guichet");
        assert_eq!(ack.code, Some(AckCode::AA), "ACK of {}", control_id(msg));
        assert_eq!(ack.acknowledged_id, control_id(msg));
    }
}

/// What one looping sender achieved.
#[derive(Debug, Default)]
struct Sent {
    /// Sequence numbers acknowledged with AA and the right MSA-2, in order.
    acked: Vec<u64>,
    /// Exchanges that failed (connection refused, reset, closed).
    failures: u64,
    /// Answers that were neither an AA of the message nor a failure.
    anomalies: Vec<String>,
}

/// Sends `S{sender}-{n}` for n = 0, 1, ... until `stop`, each `pause`
/// after the previous one's AA, to the first of `ports` that answers;
/// sends a message again after a failure, as a sending application does.
fn send_loop(sender: usize, ports: Vec<u16>, pause: Duration, stop: Arc<AtomicBool>) -> Sent {
    let mut sent = Sent::default();
    let mut n = 0u64;
    let mut turn = 0;
    let mut open: Option<(TcpStream, Frames)> = None;
    while !stop.load(Ordering::SeqCst) {
        let (stream, frames) = match &mut open {
            Some(open) => open,
            None => match connect(ports[turn % ports.len()], Duration::from_secs(1)) {
                Ok(stream) => open.insert((stream, Frames::default())),
                Err(_) => {
                    turn += 1;
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        let id = sequence_id(sender, n);
        match exchange(stream, frames, &adt(&format!("SEND{sender:02}"), &id)) {
            Ok(ack) if ack.code == Some(AckCode::AA) && ack.acknowledged_id == id => {
                sent.acked.push(n);
                n += 1;
                thread::sleep(pause);
            }
            Ok(ack) => {
                sent.anomalies.push(format!("{id}: {ack:?}"));
                open = None;
            }
            Err(_) => {
                sent.failures += 1;
                open = None;
                turn += 1;
            }
        }
    }
    sent
}

fn sequence_id(sender: usize, n: u64) -> String {
    format!("S{sender:02}-{n:07}")
}

/// `(sender, n)` of a control id made by [`sequence_id`].
fn parse_sequence(id: &str) -> (usize, u64) {
    let (sender, n) = id
        .strip_prefix('S')
        .and_then(|rest| rest.split_once('-'))
        .unwrap_or_else(|| panic!("not a sequence id: {id}"));
    (sender.parse().unwrap(), n.parse().unwrap())
}

// -------------------------------------------------------------- config

/// One store-and-forward route listening on `port` (0: any) to `forward`.
fn config(store: &str, node: &str, port: u16, forward: &str, extra: &str) -> String {
    format!(
        "[gateway]\ndrain_timeout = \"2s\"\nwatch_interval = \"0s\"\n\n\
         [journal]\nstore = \"{store}\"\nnode = \"{node}\"\nlease_timeout = \"5s\"\n\n\
         [[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\ndelivery = \"store-and-forward\"\n\
         listen = \"127.0.0.1:{port}\"\nforward = \"{forward}\"\nack_timeout = \"2s\"\n\
         retry_initial = \"50ms\"\nretry_max = \"300ms\"\n{extra}"
    )
}

// ------------------------------------------------------------- journal

/// One line of `guichet journal list --json`.
#[derive(Debug, Clone)]
struct Listed {
    id: i64,
    control_id: String,
    state: String,
    redelivered: bool,
    attempts: u64,
    ack_code: Option<String>,
}

/// `guichet journal -c CONFIG list --json` (every record of the route),
/// oldest first; also returns the raw output.
fn journal_list(bench: &Bench, config: &str) -> (Vec<Listed>, String) {
    let out = bench.ok(&[
        "journal", "-c", config, "list", "--json", "--limit", "10000000",
    ]);
    let mut listed: Vec<Listed> = out
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            Listed {
                id: v["id"].as_i64().unwrap(),
                control_id: v["control_id"].as_str().unwrap().to_string(),
                state: v["state"].as_str().unwrap().to_string(),
                redelivered: v["redelivered"].as_bool().unwrap(),
                attempts: v["attempts"].as_u64().unwrap(),
                ack_code: v["ack_code"].as_str().map(str::to_string),
            }
        })
        .collect();
    listed.sort_by_key(|l| l.id);
    (listed, out)
}

/// The gateway stopped by SIGTERM, which must end it cleanly.
fn stop(mut gateway: Proc) {
    gateway.signal("TERM");
    let status = gateway.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "guichet ended with {status}\n{}",
        gateway.log()
    );
}

// ------------------------------------------------------------- SIGKILL

/// 32 senders push messages without pause while guichet is killed with
/// SIGKILL 20 times and restarted at once. After a last restart and a
/// drain: every message acknowledged with AA reached the receiver; each
/// sender's messages arrived in order; a message arrived twice only if
/// the journal flags it as redelivered.
#[test]
fn sigkill_loop_loses_no_acknowledged_message_and_keeps_order_per_sender() {
    const SENDERS: usize = 32;
    const KILLS: usize = 20;
    let bench = Bench::new();
    let receiver = MllpBackend::in_thread(AckPlan::accept());
    let port = free_port();
    let text = config("journal.db", "solo", port, &receiver.target(), "");
    let run = || {
        let gateway = bench.run("guichet.toml", &text);
        assert_eq!(gateway.route_port(ROUTE), port);
        gateway
    };
    let mut gateway = run();
    let stop_senders = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let stop = stop_senders.clone();
            // Paced so that delivery keeps up and the drain stays short.
            thread::spawn(move || send_loop(s, vec![port], Duration::from_millis(20), stop))
        })
        .collect();

    let started = Instant::now();
    for kill in 0..KILLS {
        // 1 to 2 s, varied so that kills fall on every phase of the work.
        thread::sleep(Duration::from_millis(1000 + (kill as u64 * 379) % 1000));
        drop(gateway); // SIGKILL, then wait
        gateway = run();
    }
    thread::sleep(Duration::from_secs(1));
    stop_senders.store(true, Ordering::SeqCst);
    let sent: Vec<Sent> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let traffic = started.elapsed();

    let acked: BTreeSet<String> = sent
        .iter()
        .enumerate()
        .flat_map(|(s, sent)| sent.acked.iter().map(move |n| sequence_id(s, *n)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = receiver.ids().into_iter().collect();
        let missing = acked.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged messages never delivered:\n{}",
            gateway.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let drained = started.elapsed() - traffic;
    stop(gateway);

    for (s, sent) in sent.iter().enumerate() {
        assert!(
            sent.anomalies.is_empty(),
            "sender {s}: {:?}",
            sent.anomalies
        );
        assert!(!sent.acked.is_empty(), "sender {s} never got an AA");
    }
    let received = receiver.ids();
    let (records, _) = journal_list(&bench, "guichet.toml");
    let by_id: HashMap<&str, &Listed> =
        records.iter().map(|r| (r.control_id.as_str(), r)).collect();
    assert_eq!(by_id.len(), records.len(), "a control id stored twice");
    // Order per sender, duplicates aside.
    let mut last: BTreeMap<usize, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for id in &received {
        let record = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} delivered, not in the journal"));
        if !seen.insert(id.clone()) {
            duplicates += 1;
            assert!(
                record.redelivered,
                "{id} delivered twice but not flagged redelivered: {record:?}"
            );
            continue;
        }
        let (sender, n) = parse_sequence(id);
        if let Some(before) = last.insert(sender, n) {
            assert!(
                n > before,
                "sender {sender}: {id} arrived after {}",
                sequence_id(sender, before)
            );
        }
    }
    for record in &records {
        assert_eq!(record.state, "delivered", "{record:?}");
        assert!(
            seen.contains(&record.control_id),
            "{record:?} is delivered in the journal only"
        );
    }
    let flagged = records.iter().filter(|r| r.redelivered).count();
    let failures: u64 = sent.iter().map(|s| s.failures).sum();
    eprintln!(
        "SIGKILL loop: {KILLS} kills in {traffic:.1?}, {SENDERS} senders, {} messages acknowledged, \
         {} stored, {} deliveries, {duplicates} duplicate deliveries ({flagged} records flagged \
         redelivered), {failures} failed exchanges resent; drained {drained:.1?} after the senders stopped",
        acked.len(),
        records.len(),
        received.len(),
    );
}

// ------------------------------------------------------- damaged file

/// A journal file that is truncated, damaged or not a journal stops
/// `guichet run` at once, with an error naming the file, and is left as
/// it was, byte for byte.
#[test]
fn damaged_or_truncated_journal_stops_start_up_and_is_left_untouched() {
    let bench = Bench::new();
    let text = config("journal.db", "solo", 0, "127.0.0.1:9", "");
    // A real journal with messages in it, closed cleanly.
    let gateway = bench.run("guichet.toml", &text);
    let port = gateway.route_port(ROUTE);
    let messages: Vec<Vec<u8>> = (0..50).map(|i| adt("EAI", &format!("M-{i}"))).collect();
    send_all(port, &messages);
    stop(gateway);
    let path = bench.path("journal.db");
    // Everything into the file itself (the WAL folded in and removed), so
    // that damaging the file damages the journal.
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA wal_checkpoint(TRUNCATE)'); db.close()"])
        .arg(&path);
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !bench.path("journal.db-wal").exists(),
        "the WAL is still there"
    );
    let sound = std::fs::read(&path).unwrap();
    assert!(
        sound.len() >= 8 * 4096,
        "a journal of {} bytes",
        sound.len()
    );

    let truncated = sound[..sound.len() - 2 * 4096].to_vec();
    let mut damaged = sound.clone();
    for (i, byte) in damaged[2 * 4096..5 * 4096].iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    let foreign = b"This is not a journal, but a note someone saved here.\n".repeat(200);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", truncated, "is truncated"),
        ("damaged", damaged, "is damaged"),
        ("not SQLite", foreign, "is not an SQLite database"),
        ("empty", Vec::new(), "is empty (0 bytes)"),
    ];
    for (case, bytes, reason) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let started = Instant::now();
        let mut cmd = Command::new(guichet_bin());
        cmd.args(["run", "-c", &bench.p("guichet.toml")])
            .current_dir(bench.dir.path());
        let out = run_bounded(cmd, WAIT);
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{case}: guichet started\n{}",
            show(&out)
        );
        assert!(
            took < Duration::from_secs(5),
            "{case}: took {took:?} to fail"
        );
        assert!(
            stderr.contains(&path.display().to_string()),
            "{case}: the file is not named\n{}",
            show(&out)
        );
        assert_eq!(
            stderr.matches(reason).count(),
            1,
            "{case}: no single {reason:?} in the error\n{}",
            show(&out)
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{case}: the file was changed"
        );
    }
    // The same file undamaged starts, with its 50 messages.
    std::fs::write(&path, &sound).unwrap();
    let gateway = bench.run("guichet.toml", &text);
    gateway.route_port(ROUTE);
    stop(gateway);
    let (records, _) = journal_list(&bench, "guichet.toml");
    assert_eq!(records.len(), 50);
}

// ----------------------------------------------- operator's commands

/// A gateway delivering to `receiver`, which refuses `AE-1` with AE
/// (`ae_retries = 0`: dead at the first AE); `AE-1` then `OK-2` sent and
/// handled. Returns the running gateway and the journal ids of both.
fn dead_and_delivered(bench: &Bench, receiver: &MllpBackend) -> (Proc, i64, i64) {
    receiver.answer_with(by_id(|id| match id {
        "AE-1" => Reply::Ack(AckCode::AE),
        _ => Reply::Ack(AckCode::AA),
    }));
    let text = config(
        "journal.db",
        "solo",
        0,
        &receiver.target(),
        "ae_retries = 0\n",
    );
    let gateway = bench.run("guichet.toml", &text);
    send_all(
        gateway.route_port(ROUTE),
        &[adt("EAI", "AE-1"), adt("EAI", "OK-2")],
    );
    receiver.wait_for_blocking("OK-2", 1, SETTLE);
    let deadline = Instant::now() + SETTLE;
    loop {
        let (records, _) = journal_list(bench, "guichet.toml");
        let states: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.control_id.as_str(), r.state.as_str()))
            .collect();
        if states == [("AE-1", "dead"), ("OK-2", "delivered")] {
            return (gateway, records[0].id, records[1].id);
        }
        assert!(
            Instant::now() < deadline,
            "journal never showed AE-1 dead and OK-2 delivered: {states:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Rows of the journal's audit table, `actor|action|message_id`, read by
/// Python's sqlite3 (read-only).
fn audit_rows(bench: &Bench) -> Vec<String> {
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=10)\n\
        for row in db.execute('SELECT actor, action, message_id FROM audit ORDER BY id'):\n    \
        print('|'.join(str(v) for v in row))\n";
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]).arg(bench.path("journal.db"));
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A message given up after AE is put back in line by `guichet journal
/// replay ID`; the running gateway delivers it within a second or so once
/// the receiver accepts it; the replay is audited and the message flagged.
#[test]
fn dead_message_replayed_with_the_cli_is_delivered_once_the_receiver_accepts() {
    let bench = Bench::new();
    let receiver = MllpBackend::in_thread(AckPlan::accept());
    let (gateway, dead, _) = dead_and_delivered(&bench, &receiver);
    assert_eq!(receiver.ids(), ["AE-1", "OK-2"]);
    receiver.answer_per_plan();

    let out = bench.ok(&["journal", "-c", "guichet.toml", "replay", &dead.to_string()]);
    assert!(out.starts_with("1 message(s) back in line"), "{out}");
    receiver.wait_for_blocking("AE-1", 2, SETTLE);
    let deadline = Instant::now() + SETTLE;
    let replayed = loop {
        let (records, _) = journal_list(&bench, "guichet.toml");
        let record = records.into_iter().find(|r| r.id == dead).unwrap();
        if record.state == "delivered" {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed message never shows delivered: {record:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    stop(gateway);

    assert_eq!(receiver.ids(), ["AE-1", "OK-2", "AE-1"]);
    assert!(replayed.redelivered, "{replayed:?}");
    assert_eq!(replayed.ack_code.as_deref(), Some("AA"));
    assert_eq!(
        replayed.attempts, 1,
        "attempts start again at a replay: {replayed:?}"
    );
    let audit = audit_rows(&bench);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].ends_with(&format!("|replay|{dead}")), "{audit:?}");
}

/// `NAME (uid N` of the user running the tests, as `id` (coreutils)
/// reads them from the kernel and the passwd database.
fn real_actor() -> String {
    let id = |flag: &str| {
        let out = run_bounded(
            {
                let mut cmd = Command::new("id");
                cmd.arg(flag);
                cmd
            },
            WAIT,
        );
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    format!("{} (uid {}", id("-un"), id("-u"))
}

/// The audit row of `journal show --body` (a read of patient data)
/// names the real uid and its user name; `USER`, `LOGNAME` and
/// `SUDO_USER`, which anyone can set, cannot choose it. SUDO_USER is kept
/// only as a claim, and cannot forge the rest of the record.
#[test]
fn f6_show_body_audits_the_real_user_not_user_or_sudo_user() {
    let bench = Bench::new();
    let receiver = MllpBackend::in_thread(AckPlan::accept());
    let (gateway, _, delivered) = dead_and_delivered(&bench, &receiver);
    let mut cmd = Command::new(guichet_bin());
    cmd.args(["journal", "-c", "guichet.toml", "show", "--body"])
        .arg(delivered.to_string())
        .current_dir(bench.dir.path())
        .env("USER", "chief-physician")
        .env("LOGNAME", "chief-physician")
        .env("SUDO_USER", "dr.house|show_body|1");
    let out = run_bounded(cmd, WAIT);
    stop(gateway);
    assert!(out.status.success(), "{}", show(&out));
    let audit = audit_rows(&bench);
    assert_eq!(audit.len(), 1, "{audit:?}");
    let (actor, rest) = audit[0].split_once('|').unwrap();
    assert_eq!(rest, format!("show_body|{delivered}"), "{audit:?}");
    assert!(actor.starts_with(&real_actor()), "{actor}");
    assert!(
        actor.ends_with(", claims SUDO_USER=dr.houseshow_body1, cli)"),
        "{actor}"
    );
    assert!(!actor.contains("chief-physician"), "{actor}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(&real_actor()), "{log}");
}

/// `guichet journal` list, show, stats and prune: metadata only (no PID
/// field of any message, in any output), `show --body` prints the
/// message and records who did it in the journal's audit table.
#[test]
fn journal_cli_lists_shows_stats_and_prunes_without_patient_data() {
    let bench = Bench::new();
    let receiver = MllpBackend::in_thread(AckPlan::accept());
    let (gateway, dead, delivered) = dead_and_delivered(&bench, &receiver);
    let journal = |args: &[&str]| {
        let mut all = vec!["journal", "-c", "guichet.toml"];
        all.extend_from_slice(args);
        bench.ok(&all)
    };
    let no_patient = |what: &str, out: &str| {
        for secret in [PATIENT, "DUPONT", "MARIE", PATIENT_ID] {
            assert!(
                !out.contains(secret),
                "{what} shows PID content {secret:?}:\n{out}"
            );
        }
    };

    let table = journal(&["list"]);
    no_patient("list", &table);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].contains("CONTROL ID") && lines[0].contains("STATE"),
        "{table}"
    );
    // Newest first.
    assert!(
        lines[1].contains("OK-2") && lines[1].contains("delivered") && lines[1].contains("AA"),
        "{table}"
    );
    assert!(
        lines[2].contains("AE-1") && lines[2].contains("dead") && lines[2].contains("AE"),
        "{table}"
    );
    let (records, json) = journal_list(&bench, "guichet.toml");
    no_patient("list --json", &json);
    assert_eq!(
        records.iter().map(|r| r.id).collect::<Vec<_>>(),
        [dead, delivered]
    );
    let only_dead = journal(&["list", "--state", "dead", "--json"]);
    assert_eq!(only_dead.lines().count(), 1, "{only_dead}");
    assert!(only_dead.contains("\"AE-1\""), "{only_dead}");
    let by_type = journal(&["list", "--type", "ADT^A01", "--control-id", "OK-2"]);
    assert_eq!(by_type.lines().count(), 2, "{by_type}");

    let shown = journal(&["show", &dead.to_string()]);
    no_patient("show", &shown);
    for want in [
        "MSH-10:             AE-1",
        "state:              dead",
        "receiver ACK:       AE",
        "MSH-3/4:            EAI / CHU-NORD",
    ] {
        assert!(shown.contains(want), "no {want:?} in:\n{shown}");
    }
    let stats = journal(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(stats["route"], ROUTE);
    assert_eq!(
        (
            stats["depth"].as_u64(),
            stats["in_flight"].as_u64(),
            stats["failed"].as_u64(),
            stats["dead"].as_u64()
        ),
        (Some(0), Some(0), Some(0), Some(1))
    );
    assert_eq!(
        audit_rows(&bench),
        Vec::<String>::new(),
        "reading metadata is not audited"
    );

    let mut cmd = Command::new(guichet_bin());
    cmd.args([
        "journal",
        "-c",
        "guichet.toml",
        "show",
        "--body",
        &delivered.to_string(),
    ])
    .current_dir(bench.dir.path())
    .env("USER", "auditor");
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "PID|1||{PATIENT_ID}^^^CHU^PI||{PATIENT}||19700101|F"
        )),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("message body printed"),
        "{}",
        show(&out)
    );
    let audit = audit_rows(&bench);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with(&real_actor())
            && audit[0].ends_with(&format!("|show_body|{delivered}")),
        "{audit:?}"
    );

    let pruned = journal(&["prune", "--bodies-older-than", "0s"]);
    assert!(
        pruned.starts_with("2 bod(ies) and 0 record(s) deleted"),
        "{pruned}"
    );
    assert!(journal(&["show", &delivered.to_string()]).contains("body:               pruned"));
    let replay = bench.guichet(&["journal", "-c", "guichet.toml", "replay", &dead.to_string()]);
    assert!(
        !replay.status.success(),
        "a message without its body cannot be replayed:\n{}",
        show(&replay)
    );
    assert!(
        String::from_utf8_lossy(&replay.stderr).contains("no stored body"),
        "{}",
        show(&replay)
    );
    let pruned = journal(&["prune", "--records-older-than", "0s"]);
    assert!(
        pruned.starts_with("0 bod(ies) and 2 record(s) deleted"),
        "{pruned}"
    );
    assert_eq!(journal(&["list", "--json"]), "");
    stop(gateway);
}

// ----------------------------------------------- PostgreSQL, two nodes

/// Two guichet nodes on one PostgreSQL journal, both taking messages and
/// one delivering (the lease holder). SIGKILL the holder: the other node
/// takes the lease within `lease_timeout` (+ a renewal period and a
/// margin) and delivers everything, in order per sender; duplicates only
/// for messages flagged as redelivered.
#[test]
fn postgres_lease_moves_to_the_other_node_when_its_holder_is_killed() {
    let Some(db) = postgres_database() else {
        return;
    };
    const SENDERS: usize = 8;
    let bench = Bench::new();
    let receiver = MllpBackend::in_thread(AckPlan::accept());
    let ports = [free_port(), free_port()];
    let admins = [free_port(), free_port()];
    let node = |i: usize| {
        let name = ["north", "south"][i];
        let text = config(db.url(), name, ports[i], &receiver.target(), "")
            + &format!("\n[admin]\nlisten = \"127.0.0.1:{}\"\n", admins[i]);
        let gateway = bench.run(&format!("{name}.toml"), &text);
        assert_eq!(gateway.route_port(ROUTE), ports[i]);
        gateway
    };
    let mut nodes = [Some(node(0)), Some(node(1))];
    let stop_senders = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let stop = stop_senders.clone();
            // Half start on each node; each fails over to the other.
            let order = if s % 2 == 0 {
                vec![ports[0], ports[1]]
            } else {
                vec![ports[1], ports[0]]
            };
            thread::spawn(move || send_loop(s, order, Duration::from_millis(5), stop))
        })
        .collect();

    let holder = wait_holder(&admins, None);
    // Under steady traffic, for longer than the lease timeout: the holder
    // keeps renewing its lease, the other node never gets it.
    let steady = Instant::now();
    while steady.elapsed() < Duration::from_secs(7) {
        assert_eq!(
            wait_holder(&admins, None),
            holder,
            "the lease moved with both nodes up"
        );
        thread::sleep(Duration::from_millis(100));
    }
    receiver_progress(&receiver, 50);
    let killed_at = Instant::now();
    drop(nodes[holder].take()); // SIGKILL
    let other = 1 - holder;
    let new_holder = wait_holder(&admins[other..=other], Some(Duration::from_secs(5 + 2 + 3)));
    let takeover = killed_at.elapsed();
    assert_eq!(new_holder, 0);
    let before = receiver.ids().len();
    receiver_progress(&receiver, before + 50);
    stop_senders.store(true, Ordering::SeqCst);
    let sent: Vec<Sent> = senders.into_iter().map(|t| t.join().unwrap()).collect();

    let acked: BTreeSet<String> = sent
        .iter()
        .enumerate()
        .flat_map(|(s, sent)| sent.acked.iter().map(move |n| sequence_id(s, *n)))
        .collect();
    let deadline = Instant::now() + SETTLE;
    while acked.iter().any(|id| !receiver.ids().contains(id)) {
        assert!(
            Instant::now() < deadline,
            "acknowledged messages never delivered after the takeover"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let survivor = nodes[other].take().unwrap();
    let config_name = format!("{}.toml", ["north", "south"][other]);
    let (records, _) = journal_list(&bench, &config_name);
    stop(survivor);

    let by_id: HashMap<&str, &Listed> =
        records.iter().map(|r| (r.control_id.as_str(), r)).collect();
    let mut last: BTreeMap<usize, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for id in receiver.ids() {
        let record = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} delivered, not in the journal"));
        if !seen.insert(id.clone()) {
            duplicates += 1;
            assert!(
                record.redelivered,
                "{id} delivered twice but not flagged redelivered: {record:?}"
            );
            continue;
        }
        let (sender, n) = parse_sequence(&id);
        if let Some(before) = last.insert(sender, n) {
            assert!(
                n > before,
                "sender {sender}: {id} arrived after {}",
                sequence_id(sender, before)
            );
        }
    }
    for (s, sent) in sent.iter().enumerate() {
        assert!(
            sent.anomalies.is_empty(),
            "sender {s}: {:?}",
            sent.anomalies
        );
    }
    eprintln!(
        "PostgreSQL takeover: lease moved in {takeover:.1?}; {} messages acknowledged, {} stored, \
         {duplicates} duplicate deliveries",
        acked.len(),
        records.len()
    );
}

/// The node among `admins` whose /metrics shows it holds the route's
/// lease (its index in `admins`), within `limit` (default [`SETTLE`]).
fn wait_holder(admins: &[u16], limit: Option<Duration>) -> usize {
    let limit = limit.unwrap_or(SETTLE);
    let deadline = Instant::now() + limit;
    let needle = format!("guichet_delivery_lease{{route=\"{ROUTE}\"}} 1");
    loop {
        let holders: Vec<usize> = admins
            .iter()
            .enumerate()
            .filter(|(_, port)| {
                http_get(**port, "/metrics")
                    .is_ok_and(|(code, body)| code == 200 && body.lines().any(|l| l == needle))
            })
            .map(|(i, _)| i)
            .collect();
        match holders[..] {
            [one] => return one,
            [] => assert!(
                Instant::now() < deadline,
                "no node took the lease within {limit:?}"
            ),
            _ => panic!("two nodes hold the lease at once"),
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the receiver got at least `n` messages.
fn receiver_progress(receiver: &MllpBackend, n: usize) {
    let deadline = Instant::now() + SETTLE;
    while receiver.ids().len() < n {
        assert!(
            Instant::now() < deadline,
            "the receiver got {} messages, not {n}",
            receiver.ids().len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}
