//! The stunnel seed's own simulators as outside peers: its `eai/client.py`
//! sends its `eai/message.hl7` (LF and CR segment ends mixed, PID
//! repeated) through a guichet tunnel pair to its `dpi/server.py`, and gets
//! the ACK, as they did through stunnel. The scripts run unchanged from the
//! fixtures folder: both take their host and port as arguments.

use std::process::Command;

use guichet_testsupport::fixtures::safetunnel_dir;

use crate::common::{
    field, free_port, have, http_get, profile, run_bounded, show, wait_http, Bench, Proc, WAIT,
};

/// What the seed's message holds that must never reach a log or the
/// status API: patient identity and result text.
const PATIENT_DATA: [&str; 4] = [
    "Doe^John",
    "DOE^JOHN",
    "123456^^^HOSP",
    "Everything looks good",
];

#[test]
fn seed_client_reaches_seed_server_through_a_guichet_tunnel_pair() {
    if !have("python3") {
        return;
    }
    let Some(seed) = safetunnel_dir() else {
        return;
    };
    let bench = Bench::new();
    bench.issue("eai", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    bench.issue("dpi", &["--dns", "localhost", "--ip", "127.0.0.1"]);

    // The DPI application: the seed's server, on a port of ours.
    let dpi_app = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(seed.join("dpi/server.py"))
        .arg(dpi_app.to_string())
        .current_dir(bench.dir.path());
    let server = Proc::spawn("dpi/server.py", cmd);
    server.wait_line("`Listening on`", |l| l.contains("Listening on"));

    // DPI side: mutual TLS in, admitting only the EAI side, plain to the app.
    let dpi_side = bench.run(
        "dpi.toml",
        &format!(
            "{}[[app]]\nname = \"eai\"\ncn = \"eai\"\nissuer_cn = \"guichet test CA\"\n\n\
             [[route]]\nname = \"from-eai\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"dpi\"\n\
             allow = [\"eai\"]\nforward = \"127.0.0.1:{dpi_app}\"\n",
            profile("dpi", &bench, Some("dpi"), true)
        ),
    );
    let dpi_port = dpi_side.route_port("from-eai");

    // EAI side: plain MLLP in, mutual TLS out, the DPI side's name checked.
    let admin = free_port();
    let eai_side = bench.run(
        "eai.toml",
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{}\
             [[route]]\nname = \"to-dpi\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
             forward = \"127.0.0.1:{dpi_port}\"\nforward_tls = \"eai\"\nserver_name = \"dpi\"\n",
            profile("eai", &bench, Some("eai"), true)
        ),
    );
    let eai_port = eai_side.route_port("to-dpi");

    // The EAI application: the seed's client with the seed's message.
    let mut cmd = Command::new("python3");
    cmd.arg(seed.join("eai/client.py"))
        .arg("127.0.0.1")
        .arg(eai_port.to_string())
        .arg(seed.join("eai/message.hl7"))
        .current_dir(bench.dir.path());
    let client = run_bounded(cmd, WAIT);
    assert!(client.status.success(), "{}", show(&client));
    let said = String::from_utf8_lossy(&client.stdout);
    assert!(said.contains("Received ACK:"), "{}", show(&client));
    assert!(said.contains("||ACK^MDM^T02|MSGID1234|P|2.3"), "{said}");
    assert!(said.contains("MSA|AA|MSGID1234"), "{said}");
    server.wait_line("the message at the DPI app", |l| l.contains("Sent ACK"));

    // Each gateway saw the message and its ACK: type, control id, code.
    for (side, route) in [(&eai_side, "to-dpi"), (&dpi_side, "from-eai")] {
        let line = side.wait_line(&format!("`message acknowledged` on {route}"), |l| {
            l.contains("message acknowledged") && l.contains(&format!("route={route}"))
        });
        assert_eq!(field(&line, "message_type="), Some("MDM^T02"), "{line}");
        assert_eq!(field(&line, "control_id="), Some("MSGID1234"), "{line}");
        assert_eq!(field(&line, "ack="), Some("AA"), "{line}");
        assert_eq!(field(&line, "sender="), Some("EAI"), "{line}");
    }
    // The DPI side knows the EAI side by its certificate.
    dpi_side.wait_line("the admitted app on from-eai", |l| {
        l.contains("route=from-eai") && l.contains("app=\"eai\"")
    });
    let status = wait_http(
        admin,
        "/api/status",
        "the message in /api/status",
        |_, body| body.contains("MSGID1234"),
    );
    assert!(status.contains("MDM^T02"), "{status}");
    let (_, metrics) = http_get(admin, "/metrics").expect("metrics");
    assert!(
        metrics.contains("guichet_messages_total{route=\"to-dpi\",outcome=\"AA\"} 1\n"),
        "{metrics}"
    );
    for text in [eai_side.log(), dpi_side.log(), status] {
        for secret in PATIENT_DATA {
            assert!(!text.contains(secret), "{secret:?} leaked:\n{text}");
        }
    }
}
