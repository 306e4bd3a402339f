//! `guichet send`, `guichet listen` and `guichet demo` as a user runs them:
//! the real binary, real sockets on 127.0.0.1, certificates from
//! `guichet pki`, guichet tunnels in between, and python-hl7's `mllp_send`
//! as an outside sender.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{app, field, guichet_bin, profile, run_bounded, show, Bench, Proc, WAIT};

/// One result line of `guichet send`:
/// `#0     conn 0   ID   ADT^A01^ADT_A01   ACK AA   0.69 ms  ok`.
#[derive(Debug)]
struct Sent {
    conn: String,
    id: String,
    kind: String,
    ack: String,
    /// `ok`, or the verdict and its detail (`REJECTED (...)`).
    verdict: String,
}

/// What `guichet send` printed: a line per message, then the summary.
#[derive(Debug)]
struct SendOutput {
    code: Option<i32>,
    sent: Vec<Sent>,
    summary: String,
    /// Everything, for assertion messages.
    shown: String,
}

/// One message line of `guichet listen`:
/// `conn 1 ID   ADT^A01^ADT_A01   from EAI/CHU v2.5 627 bytes -> ACK AA`.
#[derive(Debug)]
struct Heard {
    conn: String,
    id: String,
    /// What follows `->`: `ACK AA`, `ACK none`.
    answer: String,
}

/// Two gateways joined by an mTLS mllp tunnel in front of a `guichet
/// listen`: `client` (plain in, mTLS out) -> `server` (mTLS in, allow list
/// `eai`, plain out) -> `receiver`.
struct Tunnel {
    bench: Bench,
    receiver: Proc,
    server: Proc,
    client: Proc,
    /// Where a sending application connects (the client gateway's route).
    port: u16,
}

/// Ports `guichet demo` listens on (examples/tunnel/*.toml). Only
/// [`demo_runs_both_ways_headless_and_keeps_its_files_when_asked`] may use
/// them; every other test listens on port 0.
const DEMO_PORTS: [u16; 8] = [21010, 21011, 22010, 22011, 32100, 32200, 9010, 9020];

/// Marker placed in PID-5 of tunnelled messages: it must reach the
/// receiver and never a gateway log.
const SECRET: &str = "SECRET-PATIENT-4242";

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs of spaces made one, for lines padded into columns.
fn squeeze(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Sent {
    fn parse(line: &str) -> Option<Sent> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with('#') || words.len() < 10 || words[1] != "conn" || words[5] != "ACK" {
            return None;
        }
        Some(Sent {
            conn: words[2].into(),
            id: words[3].into(),
            kind: words[4].into(),
            ack: words[6].into(),
            verdict: words[9..].join(" "),
        })
    }
}

impl SendOutput {
    fn read(out: &Output) -> SendOutput {
        let stdout = text(&out.stdout);
        let sent = stdout.lines().filter_map(Sent::parse).collect();
        let summaries: Vec<&str> = stdout.lines().filter(|l| l.starts_with("sent ")).collect();
        assert_eq!(summaries.len(), 1, "one summary line:\n{}", show(out));
        SendOutput {
            code: out.status.code(),
            sent,
            summary: summaries[0].to_string(),
            shown: show(out),
        }
    }

    fn ids(&self) -> Vec<&str> {
        self.sent.iter().map(|s| s.id.as_str()).collect()
    }

    /// Exit status 0 and every message answered AA on connection 0.
    #[track_caller]
    fn assert_all_accepted(&self, kinds: &[&str]) {
        assert_eq!(self.code, Some(0), "{}", self.shown);
        let got: Vec<(&str, &str, &str, &str)> = self
            .sent
            .iter()
            .map(|s| {
                (
                    s.conn.as_str(),
                    s.kind.as_str(),
                    s.ack.as_str(),
                    s.verdict.as_str(),
                )
            })
            .collect();
        let want: Vec<(&str, &str, &str, &str)> =
            kinds.iter().map(|k| ("0", *k, "AA", "ok")).collect();
        assert_eq!(got, want, "{}", self.shown);
        let n = kinds.len();
        self.assert_summary(&format!(
            "sent {n}, accepted {n}, errors 0, no ACK 0, mismatched 0, not sent 0, connections 1, p50 "
        ));
    }

    #[track_caller]
    fn assert_summary(&self, start: &str) {
        assert!(
            self.summary.starts_with(start),
            "summary should start with {start:?}:\n{}",
            self.shown
        );
    }
}

impl Heard {
    /// A message line; connection lines (`conn 1 from ...`) are not.
    fn parse(line: &str) -> Option<Heard> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 4 || words[0] != "conn" || words[2] == "from" {
            return None;
        }
        let (_, answer) = line.rsplit_once(" -> ")?;
        Some(Heard {
            conn: words[1].into(),
            id: words[2].into(),
            answer: answer.into(),
        })
    }
}

/// The messages `listen` reported, once the connection `conn` (1-based)
/// has closed after `messages` of them.
fn heard(listen: &Proc, conn: u64, messages: usize) -> Vec<Heard> {
    let closed = format!("closed after {messages} message(s)");
    listen.wait_line(&format!("`{closed}` on conn {conn}"), |l| {
        l.starts_with(&format!("conn {conn} from ")) && l.ends_with(&closed)
    });
    listen
        .lines()
        .iter()
        .filter_map(|l| Heard::parse(l))
        .collect()
}

/// `guichet send --to 127.0.0.1:PORT ARGS...` in the bench directory.
fn send(bench: &Bench, port: u16, args: &[&str]) -> SendOutput {
    let to = addr(port);
    let mut all = vec!["send", "--to", to.as_str()];
    all.extend_from_slice(args);
    SendOutput::read(&bench.guichet(&all))
}

/// Field `n` of the MSH (first line) of `message`, segments split by `\n`:
/// 9 is the type, 10 the control id.
fn msh(message: &str, n: usize) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.split('|')
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no MSH-{n} in {line:?}"))
        .to_string()
}

/// An ADT^A08 with LF line ends, `id` in MSH-10 and `name` in PID-5.
fn inline_message(id: &str, name: &str) -> String {
    format!(
        "MSH|^~\\&|LABO|CHU|DPI|CHU|20250101120000||ADT^A08^ADT_A01|{id}|P|2.5\n\
EVN|A08|20250101120000\n\
PID|1||123456^^^CHU^PI||{name}^MARIE||19800101|F\n\
PV1|1|I\n"
    )
}

/// A real sample from the shared fixtures, with LF line ends, when present.
fn fixture_sample() -> Option<String> {
    let sample = guichet_testsupport::fixtures::hl7_sample("ADT-A01-01.hl7")?;
    let sample = String::from_utf8(sample).expect("a UTF-8 sample");
    Some(sample.replace("\r\n", "\n").replace('\r', "\n"))
}

impl Tunnel {
    /// `receiver_args` are given to `guichet listen`; `rust_log` to both
    /// gateways.
    fn start(receiver_args: &[&str], rust_log: &str) -> Tunnel {
        let bench = Bench::new();
        bench.issue("dpi", &["--dns", "localhost", "--ip", "127.0.0.1"]);
        bench.issue("eai", &["--client-only"]);
        let (receiver, receiver_port) = bench.listen(receiver_args);
        let no_watch = "[gateway]\nwatch_interval = \"0s\"\n\n";
        let server = bench.run_logging(
            "dpi.toml",
            &format!(
                "{no_watch}{}{}[[route]]\nname = \"from-eai\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
listen_tls = \"dpi\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:{receiver_port}\"\n",
                profile("dpi", &bench, Some("dpi"), true),
                app("eai", "eai"),
            ),
            &[],
            Some(rust_log),
        );
        let server_port = server.route_port("from-eai");
        let client = bench.run_logging(
            "eai.toml",
            &format!(
                "{no_watch}{}[[route]]\nname = \"to-dpi\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
forward = \"127.0.0.1:{server_port}\"\nforward_tls = \"eai\"\nserver_name = \"localhost\"\n",
                profile("eai", &bench, Some("eai"), true),
            ),
            &[],
            Some(rust_log),
        );
        let port = client.route_port("to-dpi");
        Tunnel {
            bench,
            receiver,
            server,
            client,
            port,
        }
    }

    /// Once each gateway has logged the end of the sender's connection
    /// (after the events of its messages), checks there is exactly one
    /// `message acknowledged` line per id, with `AA`.
    fn assert_acknowledged(&self, ids: &[&str]) {
        for gateway in [&self.client, &self.server] {
            gateway.wait_line("`connection closed`", |l| l.contains("connection closed"));
            for id in ids {
                let lines: Vec<String> = gateway
                    .lines()
                    .into_iter()
                    .filter(|l| acknowledges(l, id))
                    .collect();
                assert_eq!(lines.len(), 1, "{id}: {lines:#?}\n{}", gateway.log());
                assert_eq!(field(&lines[0], "ack="), Some("AA"), "{}", lines[0]);
            }
        }
    }
}

/// A `message acknowledged` line for control id `id`.
fn acknowledges(line: &str, id: &str) -> bool {
    line.contains("message acknowledged") && field(line, "control_id=") == Some(id)
}

#[test]
fn send_three_templates_to_listen_on_one_connection() {
    let bench = Bench::new();
    let (listen, port) = bench.listen(&[]);
    let out = send(&bench, port, &["--template", "adt-a01", "--count", "3"]);
    out.assert_all_accepted(&["ADT^A01^ADT_A01"; 3]);
    let ids = out.ids();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "fresh control ids: {ids:?}"
    );

    let heard = heard(&listen, 1, 3);
    let got: Vec<(&str, &str, &str)> = heard
        .iter()
        .map(|h| (h.conn.as_str(), h.id.as_str(), h.answer.as_str()))
        .collect();
    let want: Vec<(&str, &str, &str)> = ids.iter().map(|id| ("1", *id, "ACK AA")).collect();
    assert_eq!(got, want, "{}", listen.log());
    let connected = listen
        .lines()
        .iter()
        .filter(|l| l.ends_with(": connected"))
        .count();
    assert_eq!(connected, 1, "{}", listen.log());
}

/// `listen --record` writes one JSON line per message, with its MSH
/// fields, the ACK and the whole message, and prints no body unless
/// `--show`.
#[test]
fn listen_records_every_message_it_receives() {
    let bench = Bench::new();
    let (listen, port) = bench.listen(&["--record", "received.jsonl", "--ack", "ae"]);
    let out = send(&bench, port, &["--template", "adt-a08", "--count", "2"]);
    let ids = out.ids();
    heard(&listen, 1, 2);
    let text = std::fs::read_to_string(bench.path("received.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, id) in lines.iter().zip(&ids) {
        assert_eq!(line["control_id"], *id);
        assert_eq!(line["message_type"], "ADT^A08^ADT_A01");
        assert_eq!(line["ack"], "AE");
        let body = line["body"].as_str().unwrap();
        assert!(body.starts_with("MSH|^~\\&|"), "{body}");
        assert!(body.contains(&format!("|{id}|")), "{body}");
        assert!(body.contains("\rPID|"), "{body}");
    }
    assert!(
        !listen.log().contains("PID|"),
        "a body was printed without --show"
    );
}

#[test]
fn an_application_error_ack_fails_the_send() {
    let bench = Bench::new();
    let (listen, port) = bench.listen(&["--ack", "ae"]);
    let out = send(&bench, port, &["--template", "adt-a04", "--count", "3"]);
    assert_eq!(out.code, Some(1), "{}", out.shown);
    assert_eq!(out.sent.len(), 3, "{}", out.shown);
    for s in &out.sent {
        assert_eq!(
            (s.ack.as_str(), s.verdict.as_str()),
            ("AE", "REJECTED (simulated by guichet listen)"),
            "{}",
            out.shown
        );
    }
    out.assert_summary(
        "sent 3, accepted 0, errors 3, no ACK 0, mismatched 0, not sent 0, connections 1, p50 ",
    );
    let answers: Vec<String> = heard(&listen, 1, 3).into_iter().map(|h| h.answer).collect();
    assert_eq!(answers, ["ACK AE"; 3], "{}", listen.log());
}

#[test]
fn a_listener_that_never_acks_times_the_send_out() {
    let bench = Bench::new();
    let (listen, port) = bench.listen(&["--ack", "none"]);
    let started = Instant::now();
    let out = send(
        &bench,
        port,
        &["--template", "adt-a01", "--ack-timeout", "300ms"],
    );
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.shown);
    assert_eq!(out.sent.len(), 1, "{}", out.shown);
    assert_eq!(
        (out.sent[0].ack.as_str(), out.sent[0].verdict.as_str()),
        ("-", "NO ACK (no ACK within 300ms)"),
        "{}",
        out.shown
    );
    assert_eq!(
        out.summary,
        "sent 1, accepted 0, errors 0, no ACK 1, mismatched 0, not sent 0, connections 1",
        "{}",
        out.shown
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    let heard = heard(&listen, 1, 1);
    assert_eq!(heard.len(), 1, "{}", listen.log());
    assert_eq!(heard[0].id, out.sent[0].id);
    assert_eq!(heard[0].answer, "ACK none");
}

#[test]
fn a_file_of_two_lf_messages_is_sent_and_accepted() {
    let bench = Bench::new();
    let first = fixture_sample().unwrap_or_else(|| inline_message("INLINE-0001", "MARTIN"));
    let second = inline_message("INLINE-0002", "DUPONT");
    let ids = [msh(&first, 10), msh(&second, 10)];
    let kinds = [msh(&first, 9), msh(&second, 9)];
    // A blank line between messages, as editors leave them.
    let file = bench.write("two.hl7", &format!("{first}\n{second}"));
    assert!(!std::fs::read(&file).expect("read back").contains(&b'\r'));
    let (listen, port) = bench.listen(&[]);

    let out = send(&bench, port, &["two.hl7"]);
    out.assert_all_accepted(&[kinds[0].as_str(), kinds[1].as_str()]);
    assert_eq!(out.ids(), ids, "{}", out.shown);
    let heard: Vec<String> = heard(&listen, 1, 2).into_iter().map(|h| h.id).collect();
    assert_eq!(heard, ids, "{}", listen.log());
}

#[test]
fn send_through_an_mtls_mllp_tunnel_logs_each_ack_and_no_body() {
    // The receiver prints whole messages (--show): the marker must reach it,
    // which proves the check on the gateways' logs could fail.
    let tunnel = Tunnel::start(
        &["--show"],
        "info,guichet=trace,guichet_gateway=trace,guichet_tls=trace,guichet_hl7=trace",
    );
    let body = format!(
        "{}{}",
        inline_message("TUN-0001", SECRET),
        inline_message("TUN-0002", SECRET)
    );
    tunnel.bench.write("secret.hl7", &body);

    let out = send(&tunnel.bench, tunnel.port, &["secret.hl7"]);
    out.assert_all_accepted(&["ADT^A08^ADT_A01"; 2]);
    assert_eq!(out.ids(), ["TUN-0001", "TUN-0002"], "{}", out.shown);
    assert!(!out.shown.contains(SECRET), "{}", out.shown);

    let heard: Vec<String> = heard(&tunnel.receiver, 1, 2)
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(heard, ["TUN-0001", "TUN-0002"], "{}", tunnel.receiver.log());
    assert!(
        tunnel.receiver.lines().iter().any(|l| l.contains(SECRET)),
        "the message should have reached the receiver whole:\n{}",
        tunnel.receiver.log()
    );
    tunnel.assert_acknowledged(&["TUN-0001", "TUN-0002"]);
    // The server gateway admitted the client gateway as app "eai".
    let admitted = tunnel
        .server
        .lines()
        .into_iter()
        .filter(|l| l.contains("message acknowledged") && l.contains(" app=\"eai\"}"))
        .count();
    assert_eq!(admitted, 2, "{}", tunnel.server.log());
    for gateway in [&tunnel.client, &tunnel.server] {
        let leaked: Vec<String> = gateway
            .lines()
            .into_iter()
            .filter(|l| l.contains(SECRET))
            .collect();
        assert!(
            leaked.is_empty(),
            "a message body reached a log: {leaked:#?}"
        );
    }
}

#[test]
fn python_hl7_mllp_send_through_a_tunnel_gets_an_aa() {
    let mllp_send = "/usr/bin/mllp_send";
    if !Path::new(mllp_send).is_file() {
        eprintln!("SKIPPED: python3-hl7 not installed");
        return;
    }
    let tunnel = Tunnel::start(&[], "info");
    let file = tunnel
        .bench
        .write("one.hl7", &inline_message("PY-0001", "DURAND"));
    let mut cmd = Command::new(mllp_send);
    cmd.arg("--loose")
        .arg("-f")
        .arg(&file)
        .arg("-p")
        .arg(tunnel.port.to_string())
        .arg("127.0.0.1");
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "{}", show(&out));
    let ack = text(&out.stdout);
    assert!(ack.starts_with("\x0bMSH|"), "{}", show(&out));
    assert!(ack.contains("\rMSA|AA|PY-0001\r"), "{}", show(&out));

    let heard = heard(&tunnel.receiver, 1, 1);
    assert_eq!(
        (heard[0].id.as_str(), heard[0].answer.as_str()),
        ("PY-0001", "ACK AA"),
        "{}",
        tunnel.receiver.log()
    );
    tunnel.assert_acknowledged(&["PY-0001"]);
}

#[test]
fn send_and_listen_speak_mutual_tls_with_pki_certificates() {
    let bench = Bench::new();
    bench.issue("receiver", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    bench.issue("sender", &["--client-only"]);
    let (listen, port) = bench.listen(&[
        "--tls-cert",
        "pki/receiver.pem",
        "--tls-key",
        "pki/receiver.key",
        "--tls-ca",
        "pki/ca.pem",
    ]);

    let out = send(
        &bench,
        port,
        &[
            "--template",
            "oru-r01",
            "--tls-ca",
            "pki/ca.pem",
            "--tls-cert",
            "pki/sender.pem",
            "--tls-key",
            "pki/sender.key",
            "--server-name",
            "localhost",
        ],
    );
    out.assert_all_accepted(&["ORU^R01^ORU_R01"]);
    let connected = listen.wait_line("`connected, certificate`", |l| {
        l.starts_with("conn 1 from ") && l.contains(": connected, certificate ")
    });
    assert!(connected.contains("CN=sender"), "{connected}");
    assert_eq!(heard(&listen, 1, 1)[0].id, out.sent[0].id);

    // No client certificate: the listener refuses the handshake.
    let out = send(
        &bench,
        port,
        &[
            "--template",
            "oru-r01",
            "--tls-ca",
            "pki/ca.pem",
            "--server-name",
            "localhost",
        ],
    );
    // TLS 1.3: the client learns of the refusal when it reads the ACK.
    assert_eq!(out.code, Some(1), "{}", out.shown);
    assert_eq!(out.sent.len(), 1, "{}", out.shown);
    assert_eq!(
        (out.sent[0].ack.as_str(), out.sent[0].verdict.as_str()),
        (
            "-",
            "NO ACK (cannot read the ACK: MLLP stream: received fatal alert: CertificateRequired)"
        ),
        "{}",
        out.shown
    );
    assert_eq!(
        out.summary,
        "sent 1, accepted 0, errors 0, no ACK 1, mismatched 0, not sent 0, connections 1",
        "{}",
        out.shown
    );
    let refused = listen.wait_line("`refused`", |l| l.starts_with("refused 127.0.0.1:"));
    assert!(
        refused.ends_with(": no client certificate presented (peer sent no certificates)"),
        "{refused}"
    );
    assert!(
        !listen.lines().iter().any(|l| l.starts_with("conn 2 ")),
        "{}",
        listen.log()
    );
}

/// Fails with a clear message when a port the demo needs is taken.
fn assert_demo_ports_free() {
    for port in DEMO_PORTS {
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            panic!(
                "127.0.0.1:{port} is busy ({e}); `guichet demo` needs the fixed ports \
                 {DEMO_PORTS:?}: stop what holds it (another demo?) and run the test again"
            );
        }
    }
}

fn run_demo(bench: &Bench, args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(guichet_bin());
    cmd.arg("demo")
        .args(args)
        .current_dir(bench.dir.path())
        .env_remove("RUST_LOG");
    run_bounded(cmd, limit)
}

/// Lines of `stdout` (spaces squeezed) containing every one of `parts`.
fn lines_with(stdout: &str, parts: &[&str]) -> Vec<String> {
    stdout
        .lines()
        .map(squeeze)
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// Once per run: an application error answered and counted by both
/// gateways, and an application not on the allowlist refused with its
/// reason.
#[track_caller]
fn assert_told_once(stdout: &str) {
    let sent = lines_with(stdout, &["[EAI app] sent ADT^A01", " ACK AE in "]);
    assert_eq!(sent.len(), 1, "{stdout}");
    assert_eq!(lines_with(stdout, &["answered AE"]).len(), 1, "{stdout}");
    assert_eq!(
        lines_with(stdout, &["[DPI gw ] route from-eai", " ACK AE "]).len(),
        1,
        "{stdout}"
    );
    assert_eq!(
        lines_with(
            stdout,
            &["counted: AE 1 on EAI gw route to-dpi, AE 1 on DPI gw route from-eai"]
        )
        .len(),
        1,
        "{stdout}"
    );
    let refused = lines_with(
        stdout,
        &["[DPI gw ] route from-eai refused CN=intruder: not_allowed (certificate not on this route's allowlist"],
    );
    assert_eq!(refused.len(), 1, "{stdout}");
}

/// Each message's four lines (received, far gateway, near gateway, sent)
/// print together, in that order, never interleaved with another's.
#[track_caller]
fn assert_grouped(stdout: &str) {
    let lines: Vec<String> = stdout.lines().map(squeeze).collect();
    // `TIME [WHO] received KIND ID ...`, `TIME [WHO] sent KIND ID ...`,
    // `TIME [WHO] route ROUTE KIND ID ...`.
    let id_of = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        if !words.get(1).is_some_and(|w| w.starts_with('[')) {
            return None;
        }
        let at = words.iter().position(|w| w.ends_with(']'))?;
        match words.get(at + 1..at + 5)? {
            ["received" | "sent", _, id, _] => Some(id.to_string()),
            ["route", _, kind, id] if *kind != "refused" => Some(id.to_string()),
            _ => None,
        }
    };
    let mut i = 0;
    let mut groups = 0;
    while i < lines.len() {
        let Some(id) = id_of(&lines[i]) else {
            i += 1;
            continue;
        };
        let group = &lines[i..(i + 4).min(lines.len())];
        assert_eq!(group.len(), 4, "{id} cut short:\n{stdout}");
        for (line, step) in
            group
                .iter()
                .zip(["] received ", "] route from-", "] route to-", "] sent "])
        {
            assert_eq!(
                id_of(line).as_deref(),
                Some(id.as_str()),
                "{id} interleaved:\n{stdout}"
            );
            assert!(
                line.contains(step),
                "{id}: {step:?} expected in {line:?}:\n{stdout}"
            );
        }
        groups += 1;
        i += 4;
    }
    assert_eq!(groups, 5, "one AE and four AA messages:\n{stdout}");
}

/// Each message one application sent went through the gateway of the
/// other side (admitting the first by certificate) to the other
/// application, and came back with AA.
#[track_caller]
fn assert_crossed(stdout: &str, who: &str, kind: &str, gw: &str, route: &str, peer: &str) {
    let sent = lines_with(
        stdout,
        &[&format!("[{who} app] sent {kind}"), " ACK AA in "],
    );
    assert_eq!(sent.len(), 2, "{stdout}");
    for line in &sent {
        assert!(line.contains(" ACK AA in "), "{line}");
        let id = line
            .split(' ')
            .nth(5)
            .unwrap_or_else(|| panic!("no id in {line:?}"));
        let through = lines_with(
            stdout,
            &[
                &format!("[{gw} gw ] route {route} {kind}"),
                &format!(" {id} ACK AA "),
            ],
        );
        assert_eq!(through.len(), 1, "{id} through {gw} gw:\n{stdout}");
        assert!(
            through[0].ends_with(&format!(" from app \"{peer}\"")),
            "{}",
            through[0]
        );
        let received = lines_with(stdout, &[&format!("] received {kind} {id} from {who},")]);
        assert_eq!(received.len(), 1, "{id} received:\n{stdout}");
        assert!(received[0].ends_with(", answered AA"), "{}", received[0]);
    }
    let gw_lines = lines_with(
        stdout,
        &[
            &format!("[{gw} gw ]"),
            " ACK AA ",
            &format!("from app \"{peer}\""),
        ],
    );
    assert_eq!(gw_lines.len(), 2, "{stdout}");
}

#[test]
fn demo_runs_both_ways_headless_and_keeps_its_files_when_asked() {
    let bench = Bench::new();
    assert_demo_ports_free();
    let started = Instant::now();
    let out = run_demo(
        &bench,
        &["--count", "2", "--every", "1s"],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    let stdout = text(&out.stdout);
    // The gateway's log says the refusal shown below, and nothing else.
    for line in text(&out.stderr).lines() {
        assert!(
            line.contains(" WARN ")
                && line.contains("refused: certificate not on this route's allowlist")
                && line.contains("CN=intruder"),
            "{}",
            show(&out)
        );
    }
    assert_crossed(&stdout, "EAI", "ADT^A01^ADT_A01", "DPI", "from-eai", "eai");
    assert_crossed(&stdout, "DPI", "MDM^T02^MDM_T02", "EAI", "from-dpi", "dpi");
    assert_eq!(
        lines_with(&stdout, &["sent ADT^A01", "ACK AA in"]).len(),
        2,
        "{stdout}"
    );
    assert_eq!(
        lines_with(&stdout, &["sent MDM^T02", "ACK AA in"]).len(),
        2,
        "{stdout}"
    );
    assert_told_once(&stdout);
    assert_grouped(&stdout);
    for app in ["EAI", "DPI"] {
        let summary = format!(
            "{app} app: sent 2, accepted 2, errors 0, no ACK 0, mismatched 0, not sent 0, connections 1, p50 "
        );
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with(&summary)).count(),
            1,
            "{stdout}"
        );
    }
    // Its throwaway directory is gone.
    let files_in = stdout
        .lines()
        .next()
        .and_then(|l| l.split_once(", files in "))
        .map(|(_, dir)| PathBuf::from(dir))
        .unwrap_or_else(|| panic!("no `files in` in the banner:\n{stdout}"));
    assert!(!files_in.exists(), "{} left behind", files_in.display());

    // The ports are released, and with --dir the files stay.
    assert_demo_ports_free();
    let out = run_demo(
        &bench,
        &["--dir", "kept", "--count", "1", "--every", "100ms"],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", show(&out));
    for file in ["kept/pki/ca.pem", "kept/eai.toml", "kept/dpi.toml"] {
        assert!(bench.path(file).is_file(), "{file} missing");
    }
    let kept = bench.p("kept/eai.toml");
    let check = bench.guichet(&["check", "-c", &kept]);
    assert_eq!(check.status.code(), Some(0), "{}", show(&check));
    let report = text(&check.stdout);
    assert!(
        report.ends_with("0 error(s), 0 warning(s)\n"),
        "{}",
        show(&check)
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let bench = Bench::new();
    // Nothing may reach this port: every command below fails first.
    let quiet = TcpListener::bind("127.0.0.1:0").expect("bind");
    quiet.set_nonblocking(true).expect("non-blocking");
    let port = quiet.local_addr().expect("address").port();

    let out = bench.guichet(&["send", "--to", "nohostport", "--template", "adt-a01"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(text(&out.stdout), "", "{}", show(&out));
    assert_eq!(
        text(&out.stderr),
        "error: `nohostport` is not HOST:PORT (for example 127.0.0.1:2575 or dpi.chu.example:2575)\n"
    );

    let out = bench.guichet(&["send", "--to", &addr(port), "missing-file.hl7"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).starts_with("error: cannot read missing-file.hl7: No such file"),
        "{}",
        show(&out)
    );

    let out = bench.guichet(&["send", "--to", &addr(port), "--template", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("'nope'"), "{err}");
    assert!(
        err.contains("[possible values: adt-a01, adt-a04, adt-a08, adt-a03, mdm-t02, oru-r01]"),
        "{err}"
    );
    assert!(
        matches!(quiet.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a refused command connected anyway"
    );

    let out = bench.guichet(&["listen", "--on", &addr(port)]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(text(&out.stdout), "", "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("error: cannot listen on 127.0.0.1:{port}: ")),
        "{err}"
    );
    assert!(err.contains("Address already in use"), "{err}");
}
