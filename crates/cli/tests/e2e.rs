//! The gateway's life as an operator sees it: reloads, graceful shutdown
//! and its logs, through a real client tunnel -> server tunnel pair.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    ack_after_eof_backend, app, closed_by_peer, connect, field, free_port, have, hl7_message,
    profile, round_trip, run_bounded, show, Bench, Echo, Proc, WAIT,
};

/// Two sites: `eai` runs the client tunnel (plain in, mTLS out to
/// localhost), `dpi` the server tunnel (mTLS in, allowlist, plain out to
/// an echo backend). Each is its own `guichet run`.
struct Pair {
    bench: Bench,
    echo: Echo,
    server: Proc,
    client: Proc,
    server_port: u16,
    /// Where the plain application connects.
    port: u16,
}

/// `[gateway]` settings for both ends: no file watching unless a test
/// asks for it, so a reload happens only when the test causes one.
const NO_WATCH: &str = "[gateway]\nwatch_interval = \"0s\"\n\n";

/// How a [`Pair`] differs from the default.
struct Setup<'a> {
    /// First lines of each end's config file.
    server_head: &'a str,
    client_head: &'a str,
    /// Options before `run` for the server end (`--log-format json`).
    server_global: &'a [&'a str],
    /// `RUST_LOG` for both ends; unset by default.
    rust_log: Option<&'a str>,
    /// Where the server end forwards; the echo backend by default.
    backend: Option<String>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            server_head: NO_WATCH,
            client_head: NO_WATCH,
            server_global: &[],
            rust_log: None,
            backend: None,
        }
    }
}

/// The server end's config: `allow` lists `allowed`.
fn server_config(bench: &Bench, head: &str, allowed: &str, backend: &str) -> String {
    format!(
        "{head}{}{}{}[[route]]\nname = \"from-eai\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"dpi\"\nallow = [\"{allowed}\"]\nforward = \"{backend}\"\n",
        profile("dpi", bench, Some("dpi"), true),
        app("eai", "eai"),
        app("labo", "labo"),
    )
}

impl Pair {
    fn start() -> Pair {
        Self::start_with(Setup::default())
    }

    fn start_with(setup: Setup) -> Pair {
        let bench = Bench::new();
        bench.issue("dpi", &["--dns", "localhost", "--ip", "127.0.0.1"]);
        bench.issue("eai", &["--client-only"]);
        let echo = Echo::start();
        let backend = setup.backend.unwrap_or_else(|| echo.addr());
        let server = bench.run_logging(
            "dpi.toml",
            &server_config(&bench, setup.server_head, "eai", &backend),
            setup.server_global,
            setup.rust_log,
        );
        let server_port = route_port_any(&server, "from-eai");
        let client = bench.run_logging(
            "eai.toml",
            &format!(
                "{}{}[[route]]\nname = \"to-dpi\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{server_port}\"\nforward_tls = \"eai\"\nserver_name = \"localhost\"\n",
                setup.client_head,
                profile("eai", &bench, Some("eai"), true),
            ),
            &[],
            setup.rust_log,
        );
        let port = client.route_port("to-dpi");
        Pair {
            bench,
            echo,
            server,
            client,
            server_port,
            port,
        }
    }

    /// The SHA-256 fingerprint `guichet pki show` prints for `pki/NAME.pem`.
    fn fingerprint(&self, name: &str) -> String {
        let shown = self.bench.ok(&["pki", "show", &format!("pki/{name}.pem")]);
        shown
            .lines()
            .find_map(|l| l.strip_prefix("SHA-256:"))
            .map(|f| f.trim().to_string())
            .unwrap_or_else(|| panic!("no SHA-256 line:\n{shown}"))
    }

    /// The SHA-256 fingerprint of the certificate the server tunnel
    /// presents to a new connection, as openssl sees it.
    fn presented_fingerprint(&self) -> String {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{} -cert pki/eai.pem -key pki/eai.key \
                 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
                self.server_port
            ))
            .current_dir(self.bench.dir.path())
            .env("OPENSSL_CONF", "/dev/null");
        let out = run_bounded(cmd, WAIT);
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .rsplit_once('=')
            .map(|(_, f)| f.to_string())
            .unwrap_or_else(|| panic!("no fingerprint from openssl:\n{}", show(&out)))
    }
}

/// A route's port from its `route listening` line, text or JSON.
fn route_port_any(proc: &Proc, route: &str) -> u16 {
    let text = format!("route={route} ");
    let json = format!("\"route\":\"{route}\"");
    let line = proc.wait_line("`route listening`", |l| {
        l.contains("route listening") && (l.contains(&text) || l.contains(&json))
    });
    let start = line.find("127.0.0.1:").expect("listen address") + "127.0.0.1:".len();
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"))
}

/// The bytes of one HL7 message through the pair, then a clean close.
fn one_message(pair: &Pair, message: &[u8]) {
    let mut conn = connect(pair.port);
    round_trip(&mut conn, message);
    conn.shutdown(Shutdown::Write).expect("half-close");
    assert!(closed_by_peer(&mut conn));
}

#[test]
fn sighup_swaps_the_certificate_without_dropping_open_connections() {
    let pair = Pair::start();
    let mut open = connect(pair.port);
    round_trip(&mut open, &hl7_message("BEFORE", "1"));
    let old = pair.fingerprint("dpi");
    if have("openssl") {
        assert_eq!(pair.presented_fingerprint(), old);
    }

    pair.bench
        .issue("dpi", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    let new = pair.fingerprint("dpi");
    assert_ne!(old, new, "pki issue should have made a new certificate");
    let from = pair.server.line_count();
    pair.server.signal("HUP");
    let reloaded = pair
        .server
        .wait_line_after(from, "`reloaded`", |l| l.contains("reloaded"));
    assert!(reloaded.contains("cause=\"SIGHUP\""), "{reloaded}");

    // The connection accepted with the old certificate goes on.
    round_trip(&mut open, &hl7_message("DURING", "2"));
    // New connections get the new certificate, and still verify.
    one_message(&pair, &hl7_message("NEW", "3"));
    if have("openssl") {
        assert_eq!(pair.presented_fingerprint(), new);
    }
    round_trip(&mut open, &hl7_message("AFTER", "4"));
    open.shutdown(Shutdown::Write).expect("half-close");
    assert!(closed_by_peer(&mut open));
    assert!(
        !pair.server.lines().iter().any(|l| l.contains("ERROR")),
        "{}",
        pair.server.log()
    );
}

#[test]
fn broken_reload_is_logged_and_the_old_certificate_keeps_serving() {
    let pair = Pair::start();
    let mut open = connect(pair.port);
    round_trip(&mut open, &hl7_message("BEFORE", "1"));

    let cert = pair
        .bench
        .write("pki/dpi.pem", "this is not a certificate\n");
    let from = pair.server.line_count();
    pair.server.signal("HUP");
    let error = pair
        .server
        .wait_line_after(from, "a reload error", |l| l.contains("ERROR"));
    assert!(
        error.contains("reload refused, previous configuration kept"),
        "{error}"
    );
    assert!(
        error.contains(&cert.display().to_string()),
        "the error should name {}: {error}",
        cert.display()
    );
    assert!(error.contains("cause=\"SIGHUP\""), "{error}");

    round_trip(&mut open, &hl7_message("DURING", "2"));
    one_message(&pair, &hl7_message("NEW", "3"));
    assert!(
        !pair.server.lines()[from..]
            .iter()
            .any(|l| l.contains(" reloaded")),
        "{}",
        pair.server.log()
    );
}

/// `pki revoke` rewrites the CRL; the gateway notices the file change by
/// itself and refuses the revoked client from then on.
#[test]
fn revoking_a_client_takes_effect_without_a_signal() {
    let pair = Pair::start_with(Setup {
        server_head: "[gateway]\nwatch_interval = \"100ms\"\n\n",
        ..Setup::default()
    });
    one_message(&pair, &hl7_message("BEFORE", "1"));
    let from = pair.server.line_count();
    pair.bench
        .ok(&["pki", "revoke", "--ca", "pki", "--name", "eai"]);
    pair.server
        .wait_line_after(from, "a reload after the CRL changed", |l| {
            l.contains("reloaded") && l.contains("cause=\"file change\"")
        });
    let accepted = pair.echo.accepted();
    let mut conn = connect(pair.port);
    let _ = conn.write_all(b"refused");
    assert!(closed_by_peer(&mut conn));
    let refused = pair
        .server
        .wait_line_after(from, "a refusal", |l| l.contains("refused:"));
    assert_eq!(field(&refused, "reason="), Some("revoked"), "{refused}");
    assert_eq!(pair.echo.accepted(), accepted);
}

/// A plain route `r` to an echo backend; `gateway` goes in `[gateway]`,
/// `route` at the end of the route.
fn plain_gateway(gateway: &str, route: &str) -> (Bench, Echo, Proc, u16) {
    let bench = Bench::new();
    let echo = Echo::start();
    let proc = bench.run(
        "guichet.toml",
        &format!(
            "[gateway]\nwatch_interval = \"0s\"\n{gateway}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n{route}",
            echo.addr()
        ),
    );
    let port = proc.route_port("r");
    (bench, echo, proc, port)
}

#[test]
fn sigterm_stops_accepting_and_lets_open_connections_finish() {
    let (_bench, _echo, mut gateway, port) = plain_gateway("drain_timeout = \"20s\"", "");
    let mut open = connect(port);
    round_trip(&mut open, b"before\r");
    gateway.signal("TERM");
    let draining = gateway.wait_line("the drain start", |l| {
        l.contains("waiting for open connections to finish")
    });
    assert_eq!(field(&draining, "open="), Some("1"), "{draining}");

    let refused = TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "new connections must be refused while draining"
    );
    round_trip(&mut open, b"during the drain\r");
    assert!(!gateway.exited(), "must wait for the open connection");

    let closed_at = Instant::now();
    open.shutdown(Shutdown::Write).expect("half-close");
    assert!(closed_by_peer(&mut open));
    let status = gateway.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}\n{}", gateway.log());
    assert!(closed_at.elapsed() < Duration::from_secs(5));
    gateway.wait_line("`gateway stopped`", |l| l.contains("gateway stopped"));
    assert!(!gateway
        .lines()
        .iter()
        .any(|l| l.contains("drain timeout reached")));
}

#[test]
fn drain_timeout_cuts_idle_connections() {
    let (_bench, _echo, mut gateway, port) = plain_gateway("drain_timeout = \"1s\"", "");
    let mut open = connect(port);
    round_trip(&mut open, b"idle after this\r");
    let started = Instant::now();
    gateway.signal("TERM");
    let status = gateway.wait_exit(Duration::from_secs(5));
    let took = started.elapsed();
    assert!(status.success(), "{status}\n{}", gateway.log());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "exit after {took:?}, expected about 1 s\n{}",
        gateway.log()
    );
    assert!(closed_by_peer(&mut open), "the idle connection is cut");
    let log = gateway.log();
    assert!(log.contains("drain timeout reached"), "{log}");
    assert!(
        log.contains("closed at the end of the shutdown drain period"),
        "{log}"
    );
}

const MARKER: &str = "SECRET-PATIENT-4242";

/// No log line, at any level, carries message content: not the messages
/// that pass, not the bytes of a peer that speaks plain text to a TLS
/// listener.
#[test]
fn logs_never_carry_message_content() {
    let pair = Pair::start_with(Setup {
        rust_log: Some("trace"),
        ..Setup::default()
    });
    let message = hl7_message("MSG00001", &format!("PID|1||{MARKER}"));
    let mut conn = connect(pair.port);
    round_trip(&mut conn, &message);
    round_trip(&mut conn, format!("{MARKER}\n").as_bytes());
    conn.shutdown(Shutdown::Write).expect("half-close");
    assert!(closed_by_peer(&mut conn));

    // Plain text where a ClientHello is expected.
    let mut raw = connect(pair.server_port);
    raw.write_all(format!("PID|1||{MARKER}\r").as_bytes())
        .expect("write");
    assert!(closed_by_peer(&mut raw));

    let closed = pair
        .server
        .wait_line("connection closed", |l| l.contains("connection closed"));
    let sent = (message.len() + MARKER.len() + 1).to_string();
    assert_eq!(field(&closed, "bytes_up="), Some(sent.as_str()), "{closed}");
    pair.client
        .wait_line("connection closed", |l| l.contains("connection closed"));
    pair.server
        .wait_line("the refusal", |l| l.contains("refused:"));
    for proc in [&pair.server, &pair.client] {
        for line in proc.lines() {
            assert!(!line.contains(MARKER), "content in the log: {line}");
            assert!(!line.contains("MSG00001"), "content in the log: {line}");
        }
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let pair = Pair::start_with(Setup {
        server_global: &["--log-format", "json"],
        ..Setup::default()
    });
    one_message(&pair, &hl7_message("MSG1", "1"));
    let closed = pair
        .server
        .wait_line("connection closed", |l| l.contains("connection closed"));
    assert!(closed.contains("\"route\":\"from-eai\""), "{closed}");
    assert!(closed.contains("\"app\":\"eai\""), "{closed}");
    assert!(closed.contains("\"bytes_up\":"), "{closed}");
    let lines = pair.server.lines();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
        assert!(line.contains("\"level\":"), "{line}");
        assert!(line.contains("\"message\":"), "{line}");
    }
    let listening = lines
        .iter()
        .find(|l| l.contains("route listening"))
        .expect("route listening");
    assert!(listening.contains("\"route\":\"from-eai\""), "{listening}");
    assert!(
        listening.contains("\"listen_mode\":\"mtls\""),
        "{listening}"
    );
}

/// An HL7 receiver that answers only after the sender's half-close gets
/// its answer back through both TLS legs (close_notify, then FIN).
#[test]
fn half_close_lets_a_late_reply_through_the_tunnels() {
    let backend = ack_after_eof_backend();
    let pair = Pair::start_with(Setup {
        backend: Some(format!("127.0.0.1:{backend}")),
        ..Setup::default()
    });
    let message = hl7_message("LATE", "1");
    let mut conn = connect(pair.port);
    conn.write_all(&message).expect("send");
    conn.shutdown(Shutdown::Write).expect("half-close");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read the reply");
    assert_eq!(reply, format!("ACK {}", message.len()));
}

/// A config change (here the allowlist) is picked up by SIGHUP: new
/// connections follow it, the open one keeps what it was admitted with.
#[test]
fn sighup_applies_a_new_allowlist_to_new_connections() {
    let pair = Pair::start();
    let mut open = connect(pair.port);
    round_trip(&mut open, b"admitted\r");
    pair.bench.write(
        "dpi.toml",
        &server_config(&pair.bench, NO_WATCH, "labo", &pair.echo.addr()),
    );
    let from = pair.server.line_count();
    pair.server.signal("HUP");
    pair.server
        .wait_line_after(from, "`reloaded`", |l| l.contains("reloaded"));
    let mut refused = connect(pair.port);
    let _ = refused.write_all(b"no longer admitted");
    assert!(closed_by_peer(&mut refused));
    let refusal = pair
        .server
        .wait_line_after(from, "a refusal", |l| l.contains("refused:"));
    assert_eq!(field(&refusal, "reason="), Some("not_allowed"), "{refusal}");
    round_trip(&mut open, b"still admitted\r");
}

#[test]
fn idle_connections_are_closed_after_idle_timeout() {
    let (_bench, _echo, gateway, port) = plain_gateway("", "idle_timeout = \"300ms\"\n");
    let mut conn = connect(port);
    round_trip(&mut conn, b"then silence\r");
    let started = Instant::now();
    assert!(closed_by_peer(&mut conn));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    let line = gateway.wait_line("the idle timeout", |l| l.contains("idle timeout"));
    assert!(line.contains("idle=300ms"), "{line}");
}

#[test]
fn connections_over_max_connections_are_closed_at_once() {
    let (_bench, echo, gateway, port) = plain_gateway("", "max_connections = 1\n");
    let mut first = connect(port);
    round_trip(&mut first, b"first\r");
    let mut second = connect(port);
    let _ = second.write_all(b"second");
    assert!(closed_by_peer(&mut second));
    let line = gateway.wait_line("the refusal", |l| l.contains("refused:"));
    assert_eq!(field(&line, "reason="), Some("max_connections"), "{line}");
    assert_eq!(echo.accepted(), 1);
    round_trip(&mut first, b"first still works\r");
    first.shutdown(Shutdown::Write).expect("half-close");
    assert!(closed_by_peer(&mut first));
    gateway.wait_line("the first connection's end", |l| {
        l.contains("connection closed")
    });
    // The permit is given back just after the line is logged: a third
    // connection in between is still over the limit, so try for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut third = connect(port);
        let payload = b"third, after the first left\r";
        let mut back = vec![0u8; payload.len()];
        let echoed = third
            .write_all(payload)
            .and_then(|()| std::io::Read::read_exact(&mut third, &mut back));
        if echoed.is_ok() {
            assert_eq!(&back[..], &payload[..]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a connection after the first left is still refused: {echoed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_unreachable_backend_closes_the_client_connection() {
    let bench = Bench::new();
    let dead = free_port();
    let gateway = bench.run(
        "guichet.toml",
        &format!(
            "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{dead}\"\n"
        ),
    );
    let mut conn = connect(gateway.route_port("r"));
    let _ = conn.write_all(b"nobody home");
    assert!(closed_by_peer(&mut conn));
    let line = gateway.wait_line("the forward failure", |l| {
        l.contains("forward target unavailable")
    });
    assert!(line.contains(&format!("127.0.0.1:{dead}")), "{line}");
}

/// Several routes in one file may all ask for an ephemeral port.
#[test]
fn two_routes_may_both_listen_on_port_0() {
    let bench = Bench::new();
    let echo = Echo::start();
    let route = |name: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n",
            echo.addr()
        )
    };
    let gateway = bench.run("guichet.toml", &format!("{}{}", route("a"), route("b")));
    let (a, b) = (gateway.route_port("a"), gateway.route_port("b"));
    assert_ne!(a, b);
    round_trip(&mut connect(a), b"via a\r");
    round_trip(&mut connect(b), b"via b\r");
}
