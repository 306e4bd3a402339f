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
    (0..n)
        .map(|i| {
            format!(
                "MSH|^~\\&|LABO^1.2.250^ISO|CHU|DPI|HOSP|20250101120000||ADT^A01^ADT_A01|OBS{i}|P|2.5\n\
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

/// The journal's observed flows, as `guichet map observed --json` gives
/// them (`extra`: more options).
fn observed(bench: &Bench, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["map", "observed", "--journal", "journal.db", "--json"];
    args.extend_from_slice(extra);
    let out = bench.ok(&args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Waits until the flows of `route` add up to `total` (and keep it).
fn wait_for_count(bench: &Bench, gateway: &Proc, route: &str, total: u64) -> Vec<Value> {
    let deadline = Instant::now() + FLUSHED;
    loop {
        let flows: Vec<Value> = observed(bench, &[])
            .into_iter()
            .filter(|f| f["route"] == route)
            .collect();
        let sum: u64 = flows.iter().filter_map(|f| f["count"].as_u64()).sum();
        if sum >= total {
            return flows;
        }
        assert!(
            Instant::now() < deadline,
            "route {route}: {sum} observed of {total}; flows {flows:?}\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `guichet send` of `n` messages to `port`, with the `eai` certificate
/// when `tls`.
fn send(bench: &Bench, port: u16, n: usize, tls: bool) {
    bench.write("messages.hl7", &messages(n));
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
    format!(
        "{OBSERVE}[journal]\nstore = \"journal.db\"\n\n{}{}{routes}",
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
}
