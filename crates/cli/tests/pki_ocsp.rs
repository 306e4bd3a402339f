//! OCSP from the command line: `pki issue --ocsp-url/--ocsp-signing` as
//! openssl reads the result, and `guichet check` reporting a profile's
//! OCSP mode.

use std::process::Command;

use crate::common::{app, have, profile, Bench};

#[test]
fn pki_issue_writes_the_ocsp_responder_and_usage_openssl_reads() {
    if !have("openssl") {
        return;
    }
    let bench = Bench::new();
    bench.issue(
        "responder",
        &["--ocsp-url", "http://127.0.0.1:8080/ocsp", "--ocsp-signing"],
    );
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(bench.path("pki/responder.pem"))
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("OCSP - URI:http://127.0.0.1:8080/ocsp"),
        "{text}"
    );
    assert!(text.contains("OCSP Signing"), "{text}");

    let refused = bench.guichet(&[
        "pki",
        "issue",
        "--ca",
        "pki",
        "--name",
        "bad",
        "--ocsp-url",
        "https://ocsp.example.org/",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("give an http:// URL"));
}

#[test]
fn check_reports_the_ocsp_mode_and_warns_on_soft() {
    let bench = Bench::new();
    bench.issue("srv", &[]);
    bench.issue("partner", &["--client-only"]);
    let text = format!(
        "{}\nocsp = \"soft\"\n\n{}[[route]]\nname = \"from-partner\"\nlisten = \"127.0.0.1:32200\"\nlisten_tls = \"srv\"\nallow = [\"partner\"]\nforward = \"127.0.0.1:22011\"\n",
        profile("srv", &bench, Some("srv"), true).trim_end(),
        app("partner", "partner"),
    );
    bench.write("guichet.toml", &text);
    let out = bench.guichet(&["check", "-c", "guichet.toml"]);
    let stdout =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(
            "WARNING [tls.srv] ocsp: soft: a peer whose OCSP status cannot be established"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARNING [tls.srv] ocsp: our certificate names no OCSP responder"),
        "{stdout}"
    );
}
