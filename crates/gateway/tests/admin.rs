//! The admin server, as Prometheus, a load balancer and a person see it:
//! exact counts in `/metrics` after known traffic, health and readiness
//! through start-up and drain, `/api/status` and `/status` contents, no
//! message content anywhere, and an admin thread of its own.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use guichet_hl7::{frame, AckCode};
use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use guichet_testsupport::mllp::{by_id, Reply};
use guichet_testsupport::samples::Hl7;
use guichet_tls::{ClientAuth, Identity};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const ROUTE: &str = "r";

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Patient data placed in PID: it must reach the receiver and nothing the
/// admin server serves.
const SECRET: &str = "SECRET-PATIENT-4242";

/// A message of type `kind` (MSH-9) with control id `id` (MSH-10).
fn message(kind: &str, id: &str, patient: &str) -> Vec<u8> {
    let msg = Hl7::adt(id).kind(kind).without("EVN");
    msg.patient(patient, "DOE^JOHN", "M").visit().bytes()
}

fn adt(id: &str) -> Vec<u8> {
    message("ADT^A01^ADT_A01", id, "123456")
}

/// An MLLP receiver that answers AE to a message whose MSH-10 starts with
/// `AE`, AA to any other, so one connection yields known counts of both.
async fn receiver() -> SocketAddr {
    let backend = MllpBackend::start(AckPlan::accept()).await;
    backend.answer_with(by_id(|id| {
        Reply::Ack(match id.starts_with("AE") {
            true => AckCode::AE,
            false => AckCode::AA,
        })
    }));
    backend.addr
}

/// Our CA, the gateway's server certificate `gw` and the client `eai`.
struct Certs {
    pki: Pki,
    gw: IssuedFiles,
    eai: IssuedFiles,
}

impl Certs {
    fn new() -> Certs {
        let pki = Pki::new();
        let gw = pki.issue("gw", Usage::ServerOnly);
        let eai = pki.issue("eai", Usage::ClientOnly);
        Certs { pki, gw, eai }
    }

    /// Profile `gw`, app `eai`, and the mTLS mllp route [`ROUTE`]
    /// admitting only `eai`, to `forward`, with `extra` lines.
    fn config(&self, forward: SocketAddr, extra: &str) -> String {
        self.config_with(&self.gw, forward, extra)
    }

    /// [`Certs::config`] with `gw` as the gateway's certificate.
    fn config_with(&self, gw: &IssuedFiles, forward: SocketAddr, extra: &str) -> String {
        format!(
            "{}{}{}[[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
             listen_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{forward}\"\n{extra}",
            gateway_section("1s", "0s"),
            profile("gw", Some(gw), &self.pki.ca_cert(), Some(&self.pki.crl())),
            app("eai", "eai"),
        )
    }

    async fn start(&self, extra: &str) -> WithAdmin {
        let text = self.config(receiver().await, extra);
        WithAdmin::start(&self.pki.config_path(), &text).await
    }

    fn client(&self, cert: Option<&IssuedFiles>) -> guichet_tls::ClientTls {
        self.pki.client(cert)
    }
}

/// Sends `messages` on one connection and reads as many ACKs back.
async fn exchange<S>(stream: &mut S, messages: &[Vec<u8>]) -> Vec<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let payloads: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    send_frames(stream, &payloads).await;
    let mut reader = FrameReader::default();
    let mut acks = Vec::new();
    for _ in messages {
        acks.push(reader.frame(stream).await);
    }
    acks
}

/// Fails unless `text` has `line` as a whole line.
#[track_caller]
fn assert_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

/// The value of the one sample line starting with `series` (name and
/// labels, exactly as rendered).
#[track_caller]
fn sample(text: &str, series: &str) -> i64 {
    let values: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .collect();
    assert_eq!(values.len(), 1, "{series} in:\n{text}");
    values[0].parse().unwrap()
}

/// The sum of every sample of `name`.
fn sum_of(text: &str, name: &str) -> i64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<i64>().ok())
        .sum()
}

fn framed_len(payloads: &[Vec<u8>]) -> usize {
    payloads.iter().map(|p| frame(p).len()).sum()
}

/// The certificate entry of `profile` and `role` in `/api/status`.
#[track_caller]
fn cert_entry<'a>(status: &'a Value, profile: &str, role: &str) -> &'a Value {
    let found: Vec<&Value> = status["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["profile"] == profile && c["role"] == role)
        .collect();
    assert_eq!(found.len(), 1, "{profile}/{role} in {status:#}");
    found[0]
}

#[track_caller]
fn route_entry<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no route {name} in {status:#}"))
}

fn identity(cert: &IssuedFiles) -> Identity {
    Identity::from_der(&cert_der(&cert.cert)).unwrap()
}

#[tokio::test]
async fn metrics_show_exact_counts_after_known_traffic() {
    let c = Certs::new();
    let lab = c.pki.issue("lab", Usage::ClientOnly);
    let g = c.start("max_connections = 1\n").await;
    let gw = &g.running;
    let addr = gw.addr(ROUTE);

    // Two refused TLS clients, one after the other.
    expect_refused(&c.client(Some(&lab)), addr, "gw").await;
    gw.wait_refusals(ROUTE, LISTEN, "not_allowed", 1).await;
    expect_refused(&c.client(None), addr, "gw").await;
    gw.wait_refusals(ROUTE, LISTEN, "no_certificate", 1).await;
    gw.wait_connections(ROUTE, outcome::REFUSED_TLS, 2).await;
    // Their slot is free again once the gauge is back to 0.
    gw.wait_open(ROUTE, 0).await;

    // 3 AA and 1 AE on one admitted connection, which keeps the only slot.
    let mut stream = tls(&c.client(Some(&c.eai)), addr, "gw").await.unwrap();
    let sent = [adt("AA-1"), adt("AE-2"), adt("AA-3"), adt("AA-4")];
    let acks = exchange(&mut stream, &sent).await;
    let aa = [("route", ROUTE), ("outcome", "AA")];
    gw.wait_value("guichet_messages_total", &aa, 3).await;

    // One connection over max_connections.
    let mut over = tcp(addr).await;
    let _ = expect_closed(&mut over).await;
    gw.wait_connections(ROUTE, outcome::REFUSED_LIMIT, 1).await;

    let m = g.get("/metrics").await;
    assert_eq!(m.status, 200, "{m:?}");
    assert_eq!(m.header("content-type"), Some(OPENMETRICS));
    assert_eq!(m.header("cache-control"), Some("no-store"));
    assert!(m.body.ends_with("# EOF\n"), "{}", m.body);
    let text = &m.body;
    for line in [
        "guichet_messages_total{route=\"r\",outcome=\"AA\"} 3",
        "guichet_messages_total{route=\"r\",outcome=\"AE\"} 1",
        "guichet_refusals_total{route=\"r\",side=\"listen\",reason=\"not_allowed\"} 1",
        "guichet_refusals_total{route=\"r\",side=\"listen\",reason=\"no_certificate\"} 1",
        "guichet_refusals_total{route=\"r\",side=\"listen\",reason=\"max_connections\"} 1",
        "guichet_connections_total{route=\"r\",outcome=\"refused_tls\"} 2",
        "guichet_connections_total{route=\"r\",outcome=\"refused_limit\"} 1",
        "guichet_connections_open{route=\"r\"} 1",
        "guichet_message_roundtrip_seconds_count{route=\"r\"} 4",
        "guichet_tls_handshake_seconds_count{route=\"r\",side=\"listen\"} 1",
        "# TYPE guichet_messages counter",
        "# TYPE guichet_connections_open gauge",
    ] {
        assert_line(text, line);
    }
    // Every refusal and every ended connection is one of the above.
    assert_eq!(sum_of(text, "guichet_refusals_total"), 3, "{text}");
    assert_eq!(sum_of(text, "guichet_connections_total"), 3, "{text}");
    assert_eq!(sum_of(text, "guichet_messages_total"), 4, "{text}");
    // Application bytes, MLLP framing included, both ways.
    let upstream = sample(
        text,
        "guichet_bytes_total{route=\"r\",direction=\"upstream\"}",
    );
    let downstream = sample(
        text,
        "guichet_bytes_total{route=\"r\",direction=\"downstream\"}",
    );
    assert_eq!(upstream, framed_len(&sent) as i64);
    assert_eq!(downstream, framed_len(&acks) as i64);

    // Within a day of the validity each certificate was issued with.
    let day = 86_400;
    let ours = sample(
        text,
        &format!(
            "guichet_certificate_expiry_seconds{{profile=\"gw\",role=\"certificate\",file=\"{}\"}}",
            c.gw.cert.display()
        ),
    );
    let leaf = i64::from(guichet_pki::DEFAULT_LEAF_DAYS) * day;
    assert!((leaf - day..=leaf).contains(&ours), "{ours} s");
    let ca = sample(
        text,
        &format!(
            "guichet_certificate_expiry_seconds{{profile=\"gw\",role=\"ca\",file=\"{}\"}}",
            c.pki.ca_cert().display()
        ),
    );
    let ca_days = i64::from(guichet_pki::CaOptions::default().days) * day;
    assert!((ca_days - day..=ca_days).contains(&ca), "{ca} s");

    // The admitted connection ends: closed 1, nothing open.
    stream.shutdown().await.unwrap();
    assert_eq!(
        FrameReader::default().until_end(&mut stream).await,
        Vec::<Vec<u8>>::new()
    );
    gw.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    gw.wait_open(ROUTE, 0).await;
    let text = g.get("/metrics").await.body;
    assert_line(
        &text,
        "guichet_connections_total{route=\"r\",outcome=\"closed\"} 1",
    );
    assert_line(&text, "guichet_connections_open{route=\"r\"} 0");
    assert_eq!(sum_of(&text, "guichet_connections_total"), 4, "{text}");
}

#[tokio::test]
async fn no_message_content_in_metrics_status_or_api() {
    let c = Certs::new();
    let g = c.start("").await;
    // Characters that mean something to Prometheus, JSON and HTML.
    let kind = "ADT^A01^<i>\"x\"</i>";
    let id = "ID{route=\"evil\"},<script>'";
    let msg = message(kind, id, &format!("{SECRET}^{SECRET}"));
    let mut stream = tls(&c.client(Some(&c.eai)), g.running.addr(ROUTE), "gw")
        .await
        .unwrap();
    let acks = exchange(&mut stream, std::slice::from_ref(&msg)).await;
    assert!(String::from_utf8_lossy(&acks[0]).contains(&format!("MSA|AA|{id}")));
    let aa = [("route", ROUTE), ("outcome", "AA")];
    g.running.wait_value("guichet_messages_total", &aa, 1).await;

    let metrics = g.get("/metrics").await.body;
    let api = g.get("/api/status").await.body;
    let page = g.get("/status").await.body;
    for (what, text) in [
        ("/metrics", &metrics),
        ("/api/status", &api),
        ("/status", &page),
    ] {
        assert!(!text.contains(SECRET), "{what} has patient data:\n{text}");
        assert!(!text.contains("DOE"), "{what} has patient data:\n{text}");
    }
    // JSON carries the raw value (below); HTML and labels never do.
    assert!(!page.contains("<script>"), "raw markup in /status:\n{page}");
    // Labels come from the configuration and fixed sets only.
    for word in ["evil", "ADT", "script", "EAI"] {
        assert!(!metrics.contains(word), "{word:?} in /metrics:\n{metrics}");
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let labels = line
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map_or("", |(labels, _)| labels);
        for label in labels.split("\",").filter(|l| !l.is_empty()) {
            let (name, value) = label.split_once("=\"").unwrap();
            let value = value.trim_end_matches('"');
            let allowed = match name {
                "route" => value == ROUTE,
                "file" => value.starts_with(c.pki.tmp.path().to_str().unwrap()),
                "profile" => value == "gw",
                // CRL freshness: the issuer of a CRL of the profile.
                "issuer" => value == format!("CN={CA_CN}"),
                "outcome" | "side" | "reason" | "direction" | "role" | "kind" | "result" => value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "le" => true,
                _ => false,
            };
            assert!(allowed, "label {name}={value:?} in {line:?}");
        }
    }

    // MSH metadata is shown, escaped for its medium.
    let api: Value = serde_json::from_str(&api).unwrap();
    let seen = &api["recent_messages"][0];
    assert_eq!(seen["control_id"], id, "{api:#}");
    assert_eq!(seen["message_type"], kind, "{api:#}");
    assert_eq!(seen["outcome"], "AA");
    assert!(
        page.contains("ID{route=&quot;evil&quot;},&lt;script&gt;&#39;"),
        "{page}"
    );
    assert!(
        page.contains("ADT^A01^&lt;i&gt;&quot;x&quot;&lt;/i&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn health_and_readiness_through_start_and_drain() {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let text = format!(
        "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n",
        gateway_section("30s", "0s"),
        backend.target(),
    );
    let bound = Bound::new(&pki.config_path(), &text).await;
    let admin = bound.admin_addr();

    // Bound and loaded, not yet accepting: alive but not ready.
    let health = http(admin, "GET", "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http(admin, "GET", "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (503, "not ready\n"));

    let mut g = bound.run();
    let ready = wait_status(admin, "/readyz", 200).await;
    assert_eq!(ready.body, "ready\n");
    assert_eq!(g.api_status().await["ready"], true);

    let mut open = tcp(g.running.addr(ROUTE)).await;
    echo_once(&mut open, b"before shutdown\r").await;
    g.running.shutdown.cancel();
    let run = g.running.take_task();
    // Draining: no longer ready, still alive, the open connection served.
    let ready = wait_status(admin, "/readyz", 503).await;
    assert_eq!(ready.body, "not ready\n");
    assert!(!run.is_finished(), "run() returned with a connection open");
    echo_once(&mut open, b"during drain\r").await;
    assert_eq!(http(admin, "GET", "/healthz").await.status, 200);
    assert_eq!(g.api_status().await["ready"], false);
    assert_eq!(
        route_entry(&g.api_status().await, ROUTE)["open_connections"],
        1
    );

    drop(open);
    bounded("run() to return", run).await.unwrap();
    assert_eq!(http(admin, "GET", "/readyz").await.status, 503);
    assert_eq!(http(admin, "GET", "/healthz").await.status, 200);
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let text = format!(
        "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n",
        gateway_section("1s", "0s"),
        backend.target(),
    );
    let g = WithAdmin::start(&pki.config_path(), &text).await;
    let admin = g.admin_addr();

    for path in ["/nope", "/metrics/", "/status.html", "/api"] {
        let r = http(admin, "GET", path).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert_eq!(
            r.body,
            "not found: try /status, /metrics, /healthz, /readyz\n"
        );
    }
    for (method, path) in [
        ("POST", "/metrics"),
        ("POST", "/healthz"),
        ("PUT", "/api/status"),
        ("DELETE", "/status"),
        ("POST", "/nope"),
    ] {
        let r = http(admin, method, path).await;
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert_eq!(r.body, "only GET and HEAD\n");
    }
    let r = http(admin, "HEAD", "/healthz").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = http(admin, "GET", "/").await;
    assert_eq!((r.status, r.header("location")), (302, Some("/status")));
    let r = http(admin, "GET", "/status").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
}

#[tokio::test]
async fn api_status_describes_routes_messages_refusals_and_certificates() {
    let c = Certs::new();
    let pki = &c.pki;
    let visitor = pki.issue("visitor", Usage::ClientOnly);
    // The forward side's client certificate expires in 10 days.
    let short = pki.issue_with(&IssueRequest {
        usage: Usage::ClientOnly,
        days: 10,
        ..IssueRequest::new("gw-client")
    });
    let dpi = pki.issue("dpi", Usage::ServerOnly);
    let dpi_backend = tls_echo_backend(server_tls(&dpi, None, ClientAuth::Disabled)).await;
    let forward = receiver().await;
    let text = c.config(forward, "")
        + &format!(
            "\n{}[[route]]\nname = \"out\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n\
             forward_tls = \"short\"\nserver_name = \"dpi\"\n",
            profile("short", Some(&short), &pki.ca_cert(), Some(&pki.crl())),
            dpi_backend.target(),
        );
    let g = WithAdmin::start(&pki.config_path(), &text).await;
    let gw = &g.running;

    // Refusals: a certificate not on the allow list, then none at all.
    expect_refused(&c.client(Some(&visitor)), gw.addr(ROUTE), "gw").await;
    gw.wait_refusals(ROUTE, LISTEN, "not_allowed", 1).await;
    expect_refused(&c.client(None), gw.addr(ROUTE), "gw").await;
    gw.wait_refusals(ROUTE, LISTEN, "no_certificate", 1).await;
    gw.wait_connections(ROUTE, outcome::REFUSED_TLS, 2).await;

    // Two messages on a connection left open, and one open on "out".
    let mut stream = tls(&c.client(Some(&c.eai)), gw.addr(ROUTE), "gw")
        .await
        .unwrap();
    exchange(&mut stream, &[adt("IN-1"), adt("AE-2")]).await;
    let ae = [("route", ROUTE), ("outcome", "AE")];
    gw.wait_value("guichet_messages_total", &ae, 1).await;
    let mut out = tcp(gw.addr("out")).await;
    echo_once(&mut out, b"through\r").await;
    gw.wait_open("out", 1).await;

    let s = g.api_status().await;
    assert_eq!(s["ready"], true);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        s["config"],
        pki.config_path().display().to_string(),
        "{s:#}"
    );
    assert_eq!(s["last_reload"], Value::Null);
    assert_eq!(s["routes"].as_array().unwrap().len(), 2, "{s:#}");
    // Port 0 in the config: the status shows the port actually bound.
    assert_eq!(
        route_entry(&s, ROUTE),
        &json!({
            "name": ROUTE,
            "kind": "mllp",
            "listen": gw.addr(ROUTE).to_string(),
            "listen_mode": "mtls",
            "allow": ["eai"],
            "forward": forward.to_string(),
            "forward_mode": "plain",
            "server_name": null,
            "open_connections": 1,
            "connections": {"refused_tls": 2},
            "refusals": 2,
            "messages": {"AA": 1, "AE": 1},
            "delivery": "passthrough",
            "queue": null,
        })
    );
    assert_eq!(
        route_entry(&s, "out"),
        &json!({
            "name": "out",
            "kind": "tcp",
            "listen": gw.addr("out").to_string(),
            "listen_mode": "plain",
            "allow": [],
            "forward": dpi_backend.target(),
            "forward_mode": "tls",
            "server_name": "dpi",
            "open_connections": 1,
            "connections": {},
            "refusals": 0,
            "messages": {},
            "delivery": null,
            "queue": null,
        })
    );

    // Newest first, metadata only.
    let messages = s["recent_messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{s:#}");
    for (m, (id, code)) in messages.iter().zip([("AE-2", "AE"), ("IN-1", "AA")]) {
        assert_eq!(m["control_id"], id, "{m:#}");
        assert_eq!(m["outcome"], code, "{m:#}");
        assert_eq!(m["id_matches"], true, "{m:#}");
        assert_eq!(m["route"], ROUTE);
        assert_eq!(m["peer_app"], "eai");
        assert_eq!(m["sender"], "EAI");
        assert_eq!(m["receiver"], "DPI");
        assert_eq!(m["message_type"], "ADT^A01^ADT_A01");
        assert_eq!(m["version"], "2.5");
        assert_eq!(m["size"], adt(id).len());
        assert!(m["latency_ms"].as_f64().unwrap() > 0.0, "{m:#}");
    }

    let refusals = s["recent_refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 2, "{s:#}");
    let (none, not_allowed) = (&refusals[0], &refusals[1]);
    let presented = identity(&visitor);
    assert_eq!(not_allowed["reason"], "not_allowed", "{s:#}");
    assert_eq!(not_allowed["route"], ROUTE);
    assert_eq!(not_allowed["side"], "listen");
    assert_eq!(not_allowed["subject"], presented.subject.to_string());
    assert_eq!(
        not_allowed["fingerprint"],
        presented.fingerprint.to_string()
    );
    assert!(not_allowed["description"]
        .as_str()
        .unwrap()
        .starts_with("certificate not on this route's allowlist"));
    assert_eq!(none["reason"], "no_certificate", "{s:#}");
    assert_eq!(none["subject"], Value::Null);
    assert_eq!(none["fingerprint"], Value::Null);
    assert!(none["description"]
        .as_str()
        .unwrap()
        .starts_with("no client certificate presented"));
    assert!(none["remote"]
        .as_str()
        .unwrap()
        .parse::<SocketAddr>()
        .is_ok());

    // Our certificates: the default validity, and one issued for 10 days.
    let gw_cert = cert_entry(&s, "gw", "certificate");
    let id = identity(&c.gw);
    assert_eq!(gw_cert["subject"], id.subject.to_string());
    assert_eq!(gw_cert["issuer"], id.issuer.to_string());
    assert_eq!(gw_cert["fingerprint"], id.fingerprint.to_string());
    assert_eq!(gw_cert["file"], c.gw.cert.display().to_string());
    assert_eq!(
        gw_cert["days_left"],
        i64::from(guichet_pki::DEFAULT_LEAF_DAYS) - 1
    );
    assert_eq!(gw_cert["warning"], false);
    let short_cert = cert_entry(&s, "short", "certificate");
    assert_eq!(
        short_cert["fingerprint"],
        identity(&short).fingerprint.to_string()
    );
    assert_eq!(short_cert["days_left"], 9, "{short_cert:#}");
    assert_eq!(short_cert["warning"], true);
    for profile in ["gw", "short"] {
        let ca = cert_entry(&s, profile, "ca");
        assert_eq!(ca["file"], pki.ca_cert().display().to_string());
        assert_eq!(ca["warning"], false);
    }
    assert_eq!(s["certificates"].as_array().unwrap().len(), 4, "{s:#}");
}

#[tokio::test]
async fn reloads_show_in_last_reload() {
    let c = Certs::new();
    let forward = receiver().await;
    let g = WithAdmin::start(&c.pki.config_path(), &c.config(forward, "")).await;
    assert_eq!(g.api_status().await["last_reload"], Value::Null);
    assert!(g.get("/status").await.body.contains("no reload yet"));

    // A good reload, which also swaps in a certificate for 10 days.
    let short = c.pki.issue_with(&IssueRequest {
        usage: Usage::ServerOnly,
        days: 10,
        ..IssueRequest::new("gw-renewed")
    });
    std::fs::write(c.pki.config_path(), c.config_with(&short, forward, "")).unwrap();
    g.running.reloader.reload("test").await.unwrap();
    let s = g.api_status().await;
    assert_eq!(
        s["last_reload"],
        json!({"at": s["last_reload"]["at"], "cause": "test", "ok": true, "error": null})
    );
    let cert = cert_entry(&s, "gw", "certificate");
    assert_eq!(
        cert["fingerprint"],
        identity(&short).fingerprint.to_string()
    );
    assert_eq!(cert["days_left"], 9);
    assert_eq!(cert["warning"], true);
    assert!(g
        .get("/status")
        .await
        .body
        .contains("(test) <span class=ok>ok</span>"));

    // A broken file: refused, the error shown, the previous state kept.
    std::fs::write(c.pki.config_path(), "[[route]\nname = ").unwrap();
    let err = g.running.reloader.reload("SIGHUP").await.unwrap_err();
    let s = g.api_status().await;
    let last = &s["last_reload"];
    assert_eq!(
        (&last["ok"], &last["cause"]),
        (&json!(false), &json!("SIGHUP"))
    );
    assert_eq!(last["error"], err.to_string(), "{s:#}");
    assert!(
        err.to_string()
            .contains(&c.pki.config_path().display().to_string()),
        "{err}"
    );
    assert_eq!(
        cert_entry(&s, "gw", "certificate")["fingerprint"],
        identity(&short).fingerprint.to_string()
    );
    let page = g.get("/status").await.body;
    assert!(
        page.contains("(SIGHUP) <span class=bad>refused</span>"),
        "{page}"
    );
    let metrics = g.get("/metrics").await.body;
    // Expiry of the certificate in force only, not of the one replaced.
    let expiry = |file: &std::path::Path| {
        format!(
            "guichet_certificate_expiry_seconds{{profile=\"gw\",role=\"certificate\",file=\"{}\"}}",
            file.display()
        )
    };
    let left = sample(&metrics, &expiry(&short.cert));
    assert!((9 * 86_400..=10 * 86_400).contains(&left), "{left} s");
    assert!(!metrics.contains(&expiry(&c.gw.cert)), "{metrics}");
    assert_line(&metrics, "guichet_reloads_total{outcome=\"ok\"} 1");
    assert_line(&metrics, "guichet_reloads_total{outcome=\"error\"} 1");
}

/// The admin server answers while the runtime that started it is blocked:
/// it serves from a thread and a runtime of its own.
#[test]
fn admin_answers_while_the_starting_runtime_is_blocked() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pki = Pki::new();
        let text = format!(
            "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n",
            gateway_section("1s", "0s"),
        );
        let bound = Bound::new(&pki.config_path(), &text).await;
        let admin = bound.admin_addr();
        // Joining blocks this runtime's only thread: nothing of it runs
        // until the fetches are done.
        let fetched = std::thread::spawn(move || {
            let health = http_blocking(admin, "/healthz");
            std::thread::sleep(Duration::from_millis(50));
            let metrics = http_blocking(admin, "/metrics");
            (health, metrics)
        })
        .join()
        .unwrap();
        let health = fetched.0.expect("/healthz while the runtime is blocked");
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        let metrics = fetched.1.expect("/metrics while the runtime is blocked");
        assert_eq!(metrics.status, 200);
        assert!(metrics.body.ends_with("# EOF\n"));
        drop(bound);
        // Dropping the server stops it: its port no longer answers.
        assert!(http_blocking(admin, "/healthz").is_err());
    });
}
