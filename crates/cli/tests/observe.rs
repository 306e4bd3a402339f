//! Observed flows, end to end: known traffic through each route kind,
//! then `guichet map observed --journal ... --json` shows the counts, the
//! parties and the TLS sides, and never a byte of message content.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{app, profile, show, Bench, Proc};

/// PID content of every message sent: it must never be observed.
const PATIENT_ID: &str = "IPP-OBS-4711";
const PATIENT_NAME: &str = "MARTINEZ^SOPHIA";

/// Flushes every second, so a test waits about that long.
const OBSERVE: &str = "[gateway]\nwatch_interval = \"0s\"\n\n[observe]\nflush = \"1s\"\n\n";

/// How long the counts may take to reach the journal.
const FLUSHED: Duration = Duration::from_secs(20);

/// `n` ADT^A01 from LABO^CHU to DPI^HOSP, one per line group, the patient
/// in PID-3 and PID-5.
fn messages(n: usize) -> String {
    messages_of(n, "LABO^1.2.250^ISO", "ADT^A01^ADT_A01", "OBS")
}

/// `n` messages of type `msh9` from `sender` (MSH-3) of CHU to DPI^HOSP,
/// their control ids `<prefix><i>`, the patient in PID-3 and PID-5.
fn messages_of(n: usize, sender: &str, msh9: &str, prefix: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "MSH|^~\\&|{sender}|CHU|DPI|HOSP|20250101120000||{msh9}|{prefix}{i}|P|2.5\n\
                 EVN|A01|20250101120000\n\
                 PID|1||{PATIENT_ID}^^^CHU^PI||{PATIENT_NAME}||19800101|F\n\
                 PV1|1|I\n\n"
            )
        })
        .collect()
}

/// A bench with a gateway certificate and a client certificate `eai`.
fn bench() -> Bench {
    let bench = Bench::new();
    bench.issue("gw", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    bench.issue("eai", &["--client-only"]);
    bench
}

/// The SQLite journal the tests' gateways write, as `map` commands name it.
const SQLITE: &[&str] = &["--journal", "journal.db"];

/// The journal's observed flows, as `guichet map observed --json` gives
/// them (`extra`: more options).
fn observed(bench: &Bench, extra: &[&str]) -> Vec<Value> {
    observed_from(bench, SQLITE, extra)
}

/// The observed flows of the journal `source` names (`--journal X` or
/// `-c CONFIG`), as `guichet map observed --json` gives them.
fn observed_from(bench: &Bench, source: &[&str], extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["map", "observed", "--json"];
    args.extend_from_slice(source);
    args.extend_from_slice(extra);
    let out = bench.ok(&args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Waits until the flows of `route` add up to `total` (and keep it).
fn wait_for_count(bench: &Bench, gateway: &Proc, route: &str, total: u64) -> Vec<Value> {
    wait_for_count_in(bench, SQLITE, gateway, route, total)
}

/// Waits until the flows of `route` in the journal `source` names add up
/// to `total`.
fn wait_for_count_in(
    bench: &Bench,
    source: &[&str],
    gateway: &Proc,
    route: &str,
    total: u64,
) -> Vec<Value> {
    let sum = |flows: &[Value]| -> u64 { flows.iter().filter_map(|f| f["count"].as_u64()).sum() };
    poll(
        gateway,
        Duration::from_millis(200),
        || {
            // A SQLite journal is created once the gateway has opened it.
            let all = if source != SQLITE || bench.path("journal.db").exists() {
                observed_from(bench, source, &[])
            } else {
                Vec::new()
            };
            all.into_iter().filter(|f| f["route"] == route).collect()
        },
        |flows| sum(flows) >= total,
        |flows| {
            format!(
                "route {route}: {} observed of {total}; flows {flows:?}",
                sum(flows)
            )
        },
    )
}

/// Reads with `read` every `every` until `done` holds of what was read,
/// and returns it; fails the test after [`FLUSHED`], saying `why` of the
/// last reading, with the gateway's log.
fn poll(
    gateway: &Proc,
    every: Duration,
    read: impl Fn() -> Vec<Value>,
    done: impl Fn(&[Value]) -> bool,
    why: impl Fn(&[Value]) -> String,
) -> Vec<Value> {
    let deadline = Instant::now() + FLUSHED;
    loop {
        let read = read();
        if done(&read) {
            return read;
        }
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            why(&read),
            gateway.log()
        );
        std::thread::sleep(every);
    }
}

/// `guichet send` of `n` messages to `port`, with the `eai` certificate
/// when `tls`.
fn send(bench: &Bench, port: u16, n: usize, tls: bool) {
    send_text(bench, port, &messages(n), tls);
}

/// `guichet send` of the messages of `text` to `port`, with the `eai`
/// certificate when `tls`.
fn send_text(bench: &Bench, port: u16, text: &str, tls: bool) {
    bench.write("messages.hl7", text);
    let to = format!("127.0.0.1:{port}");
    let mut args = vec!["send", "--to", &to, "messages.hl7"];
    if tls {
        args.extend_from_slice(&[
            "--tls-ca",
            "pki/ca.pem",
            "--tls-cert",
            "pki/eai.pem",
            "--tls-key",
            "pki/eai.key",
            "--server-name",
            "localhost",
        ]);
    }
    let out = bench.guichet(&args);
    assert!(out.status.success(), "{}", show(&out));
}

/// Every byte of the journal's files.
fn journal_bytes(bench: &Bench) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["journal.db", "journal.db-wal"] {
        all.extend(std::fs::read(bench.path(name)).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_no_content(what: &str, bytes: &[u8]) {
    for secret in [PATIENT_ID, PATIENT_NAME, "MARTINEZ"] {
        assert!(!contains(bytes, secret), "{secret} found in {what}");
    }
}

/// The gateway's config: `[observe]`, the journal, the apps, the
/// gateway's TLS profile, then `routes`.
fn config(bench: &Bench, routes: &str) -> String {
    config_on(bench, "journal.db", routes)
}

/// [`config`] with its journal at `store` (a SQLite file or a
/// `postgres://` URL).
fn config_on(bench: &Bench, store: &str, routes: &str) -> String {
    format!(
        "{OBSERVE}[journal]\nstore = \"{store}\"\n\n{}{}{routes}",
        app("eai", "eai"),
        profile("gw", bench, Some("gw"), true),
    )
}

#[test]
fn mllp_relay_counts_messages_by_parties_and_type_and_keeps_no_content() {
    let bench = bench();
    let (listen, listen_port) = bench.listen(&[]);
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[[route]]\nname = \"labo\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
                 listen_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:{listen_port}\"\n"
            ),
        ),
    );
    let port = gateway.route_port("labo");
    send(&bench, port, 7, true);

    let flows = wait_for_count(&bench, &gateway, "labo", 7);
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!(f["kind"], "mllp");
    assert_eq!(f["direction"], "relay");
    assert_eq!(f["application"], "eai");
    assert_eq!(f["source"], "LABO^CHU");
    assert_eq!(f["target"], "DPI^HOSP");
    assert_eq!(f["message_type"], "ADT^A01");
    assert_eq!(
        (f["tls_in"].as_bool(), f["tls_out"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(f["count"], 7);
    assert_eq!(f["outcomes"], serde_json::json!({"AA": 7}));
    assert_eq!(f["source_trigramme"], Value::Null);

    bench.write(
        "mapping.toml",
        "[parties]\n\"LABO^CHU\" = \"LAB\"\n\n[routes]\n\"labo\" = \"DPI\"\n",
    );
    let mapped = observed(&bench, &["--mapping", "mapping.toml"]);
    assert_eq!(mapped[0]["source_trigramme"], "LAB");
    assert_eq!(mapped[0]["target_trigramme"], "DPI");
    let table = bench.ok(&["map", "observed", "--journal", "journal.db"]);
    assert!(table.contains("LABO^CHU"), "{table}");

    assert_no_content("the listing", table.as_bytes());
    assert_no_content(
        "the JSON",
        serde_json::to_string(&mapped).unwrap().as_bytes(),
    );
    assert_no_content("the journal's files", &journal_bytes(&bench));
    drop(listen);
}

/// The parties, message type and count of each flow of `map observed`,
/// sorted.
/// The demo cartography's folder, with `mapping.toml` naming the
/// laboratory LABO^CHU (SIL) and the admissions DPI^HOSP (GAP): no flow
/// the demo declares joins them. `None` when the fixture is absent
/// (outside CI; under CI that is a failure).
fn demo_mapped(bench: &Bench) -> Option<String> {
    let demo = guichet_testsupport::fixtures::lanscape_dir()?;
    bench.write(
        "mapping.toml",
        "[parties]\n\"LABO^CHU\" = \"SIL\"\n\"DPI^HOSP\" = \"GAP\"\n",
    );
    Some(demo.display().to_string())
}

/// `map kpis DEMO --format json`, the observed flows read from `source`
/// and named by `mapping.toml`.
fn kpis(bench: &Bench, demo: &str, source: &[&str]) -> Value {
    let mut args = vec!["map", "kpis", demo, "--format", "json"];
    args.extend_from_slice(source);
    args.extend_from_slice(&["--mapping", "mapping.toml"]);
    serde_json::from_str(&bench.ok(&args)).unwrap()
}

fn by_parties(flows: &[Value]) -> Vec<(String, String, String, u64)> {
    parties_and(flows, "message_type")
}

/// The parties, message type and count of each shadow flow of `map
/// kpis`, sorted.
fn shadows(kpis: &Value) -> Vec<(String, String, String, u64)> {
    let flows = kpis["shadowFlows"].as_array().expect("shadow flows");
    parties_and(flows, "messageType")
}

fn parties_and(flows: &[Value], type_key: &str) -> Vec<(String, String, String, u64)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut rows: Vec<_> = flows
        .iter()
        .map(|f| {
            let count = f["count"].as_u64().unwrap_or_default();
            (
                text(&f["source"]),
                text(&f["target"]),
                text(&f[type_key]),
                count,
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(
    source: &str,
    target: &str,
    message_type: &str,
    count: u64,
) -> (String, String, String, u64) {
    (source.into(), target.into(), message_type.into(), count)
}

/// Observation with the journal on PostgreSQL: known traffic through an
/// mllp route, then `map observed` gives the counts by parties and
/// message type, whether given the URL or the gateway's config (the
/// password then stays off the command line), and `map kpis` and `map
/// build` over the same journal show the flows.
#[test]
fn mllp_relay_observed_into_a_postgres_journal_is_read_by_the_map_commands() {
    let Some(db) = crate::common::postgres_database() else {
        return;
    };
    let bench = bench();
    let (listen, listen_port) = bench.listen(&[]);
    let url = db.url().to_string();
    let gateway = bench.run(
        "guichet.toml",
        &config_on(
            &bench,
            &url,
            &format!(
                "[[route]]\nname = \"labo\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
                 listen_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:{listen_port}\"\n"
            ),
        ),
    );
    let port = gateway.route_port("labo");
    let traffic = messages_of(3, "LABO", "ADT^A01^ADT_A01", "A")
        + &messages_of(2, "LABO", "ORU^R01^ORU_R01", "R")
        + &messages_of(1, "RADIO", "ADT^A08^ADT_A01", "X");
    send_text(&bench, port, &traffic, true);

    let by_url = ["--journal", url.as_str()];
    let flows = wait_for_count_in(&bench, &by_url, &gateway, "labo", 6);
    assert_eq!(
        by_parties(&flows),
        vec![
            row("LABO^CHU", "DPI^HOSP", "ADT^A01", 3),
            row("LABO^CHU", "DPI^HOSP", "ORU^R01", 2),
            row("RADIO^CHU", "DPI^HOSP", "ADT^A08", 1),
        ]
    );
    for f in &flows {
        assert_eq!(f["kind"], "mllp");
        assert_eq!(f["direction"], "relay");
        assert_eq!(f["application"], "eai");
        assert_eq!(f["outcomes"], serde_json::json!({"AA": f["count"]}));
        assert_eq!(
            (f["tls_in"].as_bool(), f["tls_out"].as_bool()),
            (Some(true), Some(false))
        );
    }
    let by_config = ["-c", "guichet.toml"];
    assert_eq!(observed_from(&bench, &by_config, &[]), flows);
    let table = bench.ok(&["map", "observed", "-c", "guichet.toml"]);
    assert!(
        table.contains("RADIO^CHU") && table.contains("ORU^R01"),
        "{table}"
    );
    assert_no_content("the listing", table.as_bytes());

    let Some(demo) = demo_mapped(&bench) else {
        return;
    };
    let k = kpis(&bench, &demo, &by_config);
    assert_eq!(
        shadows(&k),
        vec![
            row("RADIO^CHU", "GAP", "ADT^A08", 1),
            row("SIL", "GAP", "ADT^A01", 3),
            row("SIL", "GAP", "ORU^R01", 2),
        ],
        "{k:#}"
    );

    let mut args = vec!["map", "build", demo.as_str(), "--out", "site"];
    args.extend_from_slice(&by_url);
    args.extend_from_slice(&["--mapping", "mapping.toml"]);
    bench.ok(&args);
    let page = String::from_utf8(std::fs::read(bench.path("site/index.html")).unwrap()).unwrap();
    assert_no_content("the site", page.as_bytes());
    assert!(!page.contains(&url), "the page names the journal");
    assert!(crate::common::page_names_route(&page, "labo"));

    // The page draws its matrix from the flows: read the cell it shows.
    let Some(browser) = crate::common::browser::Browser::new(bench.dir.path()) else {
        return;
    };
    let site = format!("file://{}#matrix", bench.path("site/index.html").display());
    let dom = browser.dom(&site);
    let at = dom
        .find("data-pair=\"SIL-GAP\"")
        .unwrap_or_else(|| panic!("no SIL → GAP cell in the page's matrix"));
    let cell = &dom[at..at + dom[at..].find('>').unwrap()];
    assert!(
        cell.contains("data-state=\"shadow\"") && cell.contains("· 5\""),
        "shadow, 5 messages observed: {cell}"
    );
    drop(listen);
}

#[test]
fn store_and_forward_counts_each_message_in_and_out() {
    let bench = bench();
    let (listen, listen_port) = bench.listen(&[]);
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[[route]]\nname = \"adt\"\nkind = \"mllp\"\ndelivery = \"store-and-forward\"\n\
                 listen = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{listen_port}\"\n"
            ),
        ),
    );
    let port = gateway.route_port("adt");
    send(&bench, port, 4, false);

    let flows = wait_for_count(&bench, &gateway, "adt", 8);
    let leg = |direction: &str| {
        flows
            .iter()
            .find(|f| f["direction"] == direction)
            .unwrap_or_else(|| panic!("no {direction} flow: {flows:?}"))
            .clone()
    };
    let (stored, delivered) = (leg("in"), leg("out"));
    assert_eq!(stored["count"], 4);
    assert_eq!(stored["outcomes"], serde_json::json!({"stored": 4}));
    assert_eq!(delivered["count"], 4);
    assert_eq!(delivered["outcomes"], serde_json::json!({"AA": 4}));
    for f in [&stored, &delivered] {
        assert_eq!(f["source"], "LABO^CHU");
        assert_eq!(f["target"], "DPI^HOSP");
        assert_eq!(f["message_type"], "ADT^A01");
        assert_eq!(
            (f["tls_in"].as_bool(), f["tls_out"].as_bool()),
            (Some(false), Some(false))
        );
    }
    drop(listen);
}

/// The route's stored messages as `guichet journal list --json` gives
/// them.
fn stored(bench: &Bench) -> Vec<Value> {
    let listed = bench.ok(&["journal", "-c", "guichet.toml", "list", "--json"]);
    listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until the journal's messages satisfy `done`.
fn wait_stored(
    bench: &Bench,
    gateway: &Proc,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    poll(
        gateway,
        Duration::from_millis(100),
        || stored(bench),
        done,
        |messages| format!("{what}: {messages:?}"),
    )
}

/// The receiver of a store-and-forward route is down, then refuses (AR),
/// then accepts: each message counts once under `out`, by the ACK that
/// delivered it, and every failed attempt counts under `retry`, by what
/// it got, never as a message: on the map the undeclared flow is one
/// shadow of the messages delivered.
#[test]
fn store_and_forward_counts_a_retried_message_once_and_its_failed_attempts_apart() {
    let bench = bench();
    let receiver = crate::common::free_port();
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[[route]]\nname = \"adt\"\nkind = \"mllp\"\ndelivery = \"store-and-forward\"\n\
                 listen = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{receiver}\"\n\
                 retry_initial = \"50ms\"\nretry_max = \"200ms\"\n"
            ),
        ),
    );
    let port = gateway.route_port("adt");
    send(&bench, port, 3, false);

    // Down: the head of the queue fails a few times.
    let head_tried = |n: u64| {
        move |messages: &[Value]| messages.iter().any(|m| m["attempts"].as_u64() >= Some(n))
    };
    wait_stored(&bench, &gateway, "the first message retried", head_tried(3));
    // Up, refusing.
    let on = format!("127.0.0.1:{receiver}");
    let (refusing, _) = bench.serve(&["listen", "--on", &on, "--ack", "ar"]);
    refusing.wait_line("a message refused", |l| l.contains("OBS0"));
    drop(refusing);
    // Up, accepting.
    let (accepting, _) = bench.serve(&["listen", "--on", &on]);
    let messages = wait_stored(&bench, &gateway, "every message delivered", |messages| {
        messages.len() == 3 && messages.iter().all(|m| m["state"] == "delivered")
    });
    let attempts: u64 = messages.iter().filter_map(|m| m["attempts"].as_u64()).sum();
    let failed = attempts - 3;
    assert!(failed >= 4, "{messages:?}");

    let flows = wait_for_count(&bench, &gateway, "adt", 3 + 3 + failed);
    let leg = |direction: &str| {
        flows
            .iter()
            .find(|f| f["direction"] == direction)
            .unwrap_or_else(|| panic!("no {direction} flow: {flows:?}"))
            .clone()
    };
    assert_eq!(flows.len(), 3, "{flows:?}");
    assert_eq!(leg("in")["count"], 3);
    let delivered = leg("out");
    assert_eq!(delivered["count"], 3, "each message once: {flows:?}");
    assert_eq!(delivered["outcomes"], serde_json::json!({"AA": 3}));
    let retried = leg("retry");
    assert_eq!(retried["count"], failed, "{flows:?}");
    let outcomes = retried["outcomes"].as_object().expect("outcomes");
    let by = |outcome: &str| outcomes.get(outcome).and_then(Value::as_u64).unwrap_or(0);
    assert!(by("unacknowledged") >= 3 && by("AR") >= 1, "{outcomes:?}");
    assert_eq!(by("unacknowledged") + by("AR"), failed, "{outcomes:?}");

    let Some(demo) = demo_mapped(&bench) else {
        return;
    };
    let k = kpis(&bench, &demo, SQLITE);
    assert_eq!(shadows(&k), vec![row("SIL", "GAP", "ADT^A01", 3)], "{k:#}");
    drop(accepting);
}

#[test]
fn tcp_tunnel_counts_connections_of_the_certificates_application() {
    let bench = bench();
    let (listen, listen_port) = bench.listen(&[]);
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[[route]]\nname = \"tunnel\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\n\
                 allow = [\"eai\"]\nforward = \"127.0.0.1:{listen_port}\"\n"
            ),
        ),
    );
    let port = gateway.route_port("tunnel");
    for _ in 0..3 {
        send(&bench, port, 2, true);
    }
    let flows = wait_for_count(&bench, &gateway, "tunnel", 3);
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!(f["kind"], "tcp");
    assert_eq!(f["application"], "eai");
    assert_eq!(f["source"], "eai");
    assert_eq!(f["target"], format!("127.0.0.1:{listen_port}"));
    assert_eq!(f["message_type"], "");
    assert_eq!(f["count"], 3, "one per connection, not per message");
    assert_eq!(
        (f["tls_in"].as_bool(), f["tls_out"].as_bool()),
        (Some(true), Some(false))
    );
    drop(listen);
}

#[test]
fn observation_asked_without_a_journal_is_refused_by_check() {
    let bench = bench();
    let path = bench.write(
        "guichet.toml",
        "[observe]\nenabled = true\n\n[[route]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n",
    );
    let out = bench.guichet(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains("[observe]") && text.contains("[journal]"),
        "{text}"
    );
    let plain = bench.write(
        "plain.toml",
        "[[route]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n",
    );
    let out = bench.guichet(&["map", "observed", "-c", plain.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        show(&out).contains("no [journal] section"),
        "{}",
        show(&out)
    );
}

/// An HTTP service on 127.0.0.1 answering 200 to every request (its body
/// read, the connection closed after the answer).
fn http_service() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_ok(stream));
        }
    });
    port
}

fn answer_ok(mut stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut seen = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while seen.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
    let body = b"{}";
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.write_all(body);
}

/// `curl` as `eai` to the gateway's `path`; the status code.
fn curl(bench: &Bench, port: u16, path: &str) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.current_dir(bench.dir.path())
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args([
            "--cacert",
            "pki/ca.pem",
            "--cert",
            "pki/eai.pem",
            "--key",
            "pki/eai.key",
        ])
        .arg(format!("https://localhost:{port}{path}"));
    let out = crate::common::run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn http_counts_requests_from_application_to_rule_by_status_class() {
    if !crate::common::have("curl") {
        return;
    }
    let bench = bench();
    let service = http_service();
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[[route]]\nname = \"api\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\n\n\
                 [[route.rule]]\nname = \"beds\"\npath = \"/beds/\"\nupstream = \"http://127.0.0.1:{service}\"\n\
                 allow = [\"eai\"]\n"
            ),
        ),
    );
    let port = gateway.route_port("api");
    for _ in 0..3 {
        assert_eq!(curl(&bench, port, "/beds/units"), "200");
    }
    assert_eq!(curl(&bench, port, "/elsewhere"), "404");

    let flows = wait_for_count(&bench, &gateway, "api", 4);
    let to = |target: &str| {
        flows
            .iter()
            .find(|f| f["target"] == target)
            .unwrap_or_else(|| panic!("no flow to {target:?}: {flows:?}"))
            .clone()
    };
    let beds = to("beds");
    assert_eq!(beds["kind"], "http");
    assert_eq!(beds["application"], "eai");
    assert_eq!(beds["source"], "eai");
    assert_eq!(beds["message_type"], "GET");
    assert_eq!(beds["count"], 3);
    assert_eq!(beds["outcomes"], serde_json::json!({"2xx": 3}));
    assert_eq!(
        (beds["tls_in"].as_bool(), beds["tls_out"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(to("")["outcomes"], serde_json::json!({"4xx": 1}));
}

#[test]
fn folder_counts_files_by_how_they_ended() {
    let bench = bench();
    let service = http_service();
    std::fs::create_dir_all(bench.path("drop/inbox")).unwrap();
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[[route]]\nname = \"beds\"\nkind = \"folder\"\ninbox = \"drop/inbox\"\n\
                 upstream = \"http://127.0.0.1:{service}/\"\npoll_interval = \"100ms\"\n\
                 settle_time = \"200ms\"\n"
            ),
        ),
    );
    gateway.wait_line("the folder route", |l| {
        l.contains("folder route watching its inbox")
    });
    for i in 0..3 {
        let file = bench.path(&format!("drop/inbox/beds-{i}.json"));
        std::fs::write(&file, format!("{{\"patient\": \"{PATIENT_NAME}\"}}")).unwrap();
    }
    let flows = wait_for_count(&bench, &gateway, "beds", 3);
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!(f["kind"], "folder");
    assert_eq!(f["direction"], "out");
    assert_eq!(f["target"], format!("http://127.0.0.1:{service}"));
    assert_eq!(f["count"], 3);
    assert_eq!(f["outcomes"], serde_json::json!({"delivered": 3}));
    assert_eq!(
        (f["tls_in"].as_bool(), f["tls_out"].as_bool()),
        (Some(false), Some(false))
    );
    assert_no_content(
        "the JSON",
        serde_json::to_string(&flows).unwrap().as_bytes(),
    );
}

/// `GET path` on the admin listener at `port`, with `token` as bearer
/// token when given: the status code and the body.
fn admin_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin listener");
    stream.set_read_timeout(Some(FLUSHED)).unwrap();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head[9..12].parse().expect("a status code");
    (code, body.to_string())
}

/// The page without the moment it was generated, which is all that may
/// differ between two renderings of the same sources.
fn without_generation_time(page: &str) -> String {
    let start = page.find("\"generated\":\"").expect("the generation time") + 13;
    let end = start + page[start..].find('"').expect("its end");
    format!("{}{}", &page[..start], &page[end..])
}

/// The admin listener's bearer token.
const TOKEN: &str = "5f0c2b8e9a41d7763e0c2b8e9a41d776";

/// A real message crosses a gateway route between two applications the
/// map declares no flow between: the map built from the journal shows the
/// pair as a shadow flow, in `map kpis` and in the site's matrix read in
/// headless Chromium, and the page holds no message content. The admin
/// listener's `/map` (`[map]`, behind its token) serves the same page,
/// live.
#[test]
fn the_map_shows_a_shadow_flow_once_a_message_crossed_an_undeclared_route() {
    let bench = bench();
    let Some(demo) = demo_mapped(&bench) else {
        return;
    };
    let (listen, listen_port) = bench.listen(&[]);
    let token = bench.write("admin.token", &format!("{TOKEN}\n"));
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let admin = crate::common::free_port();
    let gateway = bench.run(
        "guichet.toml",
        &config(
            &bench,
            &format!(
                "[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_file = \"admin.token\"\n\n\
                 [map]\ndata = \"{demo}\"\nmapping = \"mapping.toml\"\n\n\
                 [[route]]\nname = \"pharma\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
                 listen_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:{listen_port}\"\n"
            ),
        ),
    );
    let port = gateway.route_port("pharma");
    crate::common::wait_http(admin, "/readyz", "ready", |code, _| code == 200);
    let (code, refused) = admin_get(admin, "/map", None);
    assert_eq!(code, 401, "{refused}");
    assert!(!refused.contains("<html"), "{refused}");
    let (code, before) = admin_get(admin, "/map", Some(TOKEN));
    assert_eq!(code, 200, "{before}\n{}", gateway.log());
    assert!(before.contains("\"observed\":[]"), "nothing observed yet");

    send(&bench, port, 2, true);
    wait_for_count(&bench, &gateway, "pharma", 2);
    let source = ["--journal", "journal.db"];
    let k = kpis(&bench, &demo, &source);
    let shadows = &k["shadowFlows"];
    assert_eq!(shadows.as_array().map(Vec::len), Some(1), "{k:#}");
    assert_eq!(
        (shadows[0]["source"].as_str(), shadows[0]["target"].as_str()),
        (Some("SIL"), Some("GAP"))
    );
    assert_eq!(shadows[0]["count"], 2);

    let mut args = vec!["map", "build", demo.as_str(), "--out", "site"];
    args.extend_from_slice(&source);
    args.extend_from_slice(&["--mapping", "mapping.toml"]);
    bench.ok(&args);
    let page = std::fs::read(bench.path("site/index.html")).unwrap();
    assert_no_content("the site", &page);
    let built = without_generation_time(&String::from_utf8_lossy(&page));

    // Live: the same page once the cached one is renewed (every 5s).
    let deadline = Instant::now() + FLUSHED;
    let live = loop {
        let (code, live) = admin_get(admin, "/map", Some(TOKEN));
        assert_eq!(code, 200, "{live}");
        if without_generation_time(&live) == built {
            break live;
        }
        assert!(
            Instant::now() < deadline,
            "/map never became the page `map build --journal` writes\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(crate::common::page_names_route(&live, "pharma"));
    assert_no_content("the live map", live.as_bytes());
    let (_, status) = admin_get(admin, "/status", Some(TOKEN));
    assert!(status.contains("<a href=/map>/map</a>"), "{status}");
    let (_, metrics) = admin_get(admin, "/metrics", Some(TOKEN));
    let renders: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("guichet_map_renders_total{outcome=\"ok\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no renders counted:\n{metrics}"));
    assert!(
        renders >= 2,
        "rendered at the first request and once the flows came: {renders}"
    );
    assert!(!metrics.contains("outcome=\"data_error\""), "{metrics}");

    let Some(browser) = crate::common::browser::Browser::new(bench.dir.path()) else {
        return;
    };
    let url = format!("file://{}#matrix", bench.path("site/index.html").display());
    let dom = browser.dom(&url);
    assert!(
        dom.contains("data-pair=\"SIL-GAP\" data-state=\"shadow\""),
        "{dom}"
    );
    // A declared pair the gateway did not see.
    assert!(dom.contains("data-pair=\"GAP-ORB\" data-state=\"declared-not-observed\""));
    browser.screenshot(&url, "map-matrix-shadow.png");
    drop(listen);
}
