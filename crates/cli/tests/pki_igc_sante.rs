//! IGC Santé material from the command line: `guichet pki show` on a
//! PKCS#12 file made by the real `openssl pkcs12 -export`, and
//! `guichet pki csr` checked by `openssl req -verify`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use std::io::Write;

use crate::common::{app, have, run_bounded, show, Bench, Echo, Proc, WAIT};

const PASSWORD: &str = "s3cret-IGC";

/// openssl is the outside peer here: missing, these tests skip on a
/// developer's machine and fail under CI.
fn openssl_present() -> bool {
    if have("openssl") {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "openssl (Debian package openssl) is required under CI"
    );
    false
}

/// `openssl ARGS` in the bench directory; returns stdout, or fails.
fn openssl(bench: &Bench, args: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(bench.dir.path());
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "openssl {args:?}:\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The value of `Label:` in `pki show` output, once per certificate.
fn field<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .collect()
}

#[test]
fn pki_show_reads_an_openssl_pkcs12_with_its_chain() {
    if !openssl_present() {
        return;
    }
    let bench = Bench::new();
    bench.issue("gw", &["--o", "CH EXAMPLE", "--finess", "750000001"]);
    let pem_view = bench.ok(&["pki", "show", "pki/gw.pem"]);
    let ca_view = bench.ok(&["pki", "show", "pki/ca.pem"]);
    let pass = format!("pass:{PASSWORD}");
    for (file, extra) in [("gw.p12", None), ("gw-legacy.pfx", Some("-legacy"))] {
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            "pki/gw.pem",
            "-inkey",
            "pki/gw.key",
            "-certfile",
            "pki/ca.pem",
            "-passout",
            &pass,
            "-out",
            file,
        ];
        args.extend(extra);
        openssl(&bench, &args);
        std::fs::set_permissions(bench.path(file), std::fs::Permissions::from_mode(0o600)).unwrap();
        bench.write("pw", &format!("{PASSWORD}\n"));
        std::fs::set_permissions(bench.path("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();

        let text = bench.ok(&["pki", "show", file, "--password-file", "pw"]);
        assert!(
            text.starts_with(&format!("PKCS#12:      {file}\n")),
            "{text}"
        );
        assert!(
            text.contains("\nPrivate key:  matches certificate 1 (ECDSA P-256)\nCertificates: 2 (guichet presents certificate 1)\n"),
            "{text}"
        );
        let legacy = extra.is_some();
        assert_eq!(
            field(&text, "Protection:")[0].ends_with(
                "(LEGACY: re-export with OpenSSL 3 defaults, AES-256-CBC and HMAC-SHA256)"
            ),
            legacy,
            "{text}"
        );
        assert!(
            text.contains("\nCertificate 1 of 2: the key's certificate\n"),
            "{text}"
        );
        assert!(
            text.contains("\nCertificate 2 of 2: issuer of certificate 1\n"),
            "{text}"
        );
        for label in [
            "Subject:",
            "SHA-256:",
            "SPKI pin:",
            "Key usage:",
            "DNS names:",
        ] {
            let from_p12 = field(&text, label);
            assert_eq!(from_p12.len(), 2, "{label} {text}");
            assert_eq!(from_p12[0], field(&pem_view, label)[0], "{label}");
            assert_eq!(from_p12[1], field(&ca_view, label)[0], "{label}");
        }
        assert_eq!(
            field(&text, "Subject:")[0],
            "O=CH EXAMPLE, OU=1750000001, CN=gw"
        );

        let out = bench.guichet(&["pki", "show", file]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{file} is protected by a password; give it with --password-file"
            )),
            "{stderr}"
        );

        bench.write("bad", "nope\n");
        std::fs::set_permissions(bench.path("bad"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let out = bench.guichet(&["pki", "show", file, "--password-file", "bad"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("wrong password"),
            "{stderr}"
        );
        assert!(!stderr.contains("nope"), "{stderr}");
    }

    let mut cmd = Command::new(crate::common::guichet_bin());
    cmd.args(["pki", "show", "gw.p12", "--password-env", "GW_P12_PASSWORD"])
        .env("GW_P12_PASSWORD", PASSWORD)
        .current_dir(bench.dir.path());
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn pki_csr_writes_a_private_key_and_a_request_openssl_verifies() {
    if !openssl_present() {
        return;
    }
    let bench = Bench::new();
    let out = bench.ok(&[
        "pki",
        "csr",
        "--o",
        "CH EXAMPLE",
        "--finess",
        "750000001",
        "--cn",
        "hl7.ch-example.fr",
        "--dns",
        "hl7.ch-example.fr",
        "--dns",
        "hl7-b.ch-example.fr",
        "--key-type",
        "rsa2048",
        "--out",
        ".",
    ]);
    assert!(
        out.contains("private key (0600): ./hl7.ch-example.fr.key"),
        "{out}"
    );
    assert!(
        out.contains("Order the certificate with this request from the ANS"),
        "{out}"
    );
    let (key, csr) = ("hl7.ch-example.fr.key", "hl7.ch-example.fr.csr");
    assert_eq!(mode(&bench.path(key)), 0o600);

    let text = openssl(&bench, &["req", "-in", csr, "-noout", "-verify", "-text"]);
    assert!(
        text.contains("Subject: C = FR, O = CH EXAMPLE, OU = 1750000001, CN = hl7.ch-example.fr\n"),
        "{text}"
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(
        text.contains("DNS:hl7.ch-example.fr, DNS:hl7-b.ch-example.fr"),
        "{text}"
    );
    let from_key = openssl(&bench, &["pkey", "-in", key, "-pubout"]);
    let from_csr = openssl(&bench, &["req", "-in", csr, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_csr, "the request is for the key written");

    // A second run never overwrites the key.
    let before = std::fs::read(bench.path(key)).unwrap();
    let again = bench.guichet(&[
        "pki",
        "csr",
        "--o",
        "CH EXAMPLE",
        "--finess",
        "750000001",
        "--cn",
        "hl7.ch-example.fr",
        "--out",
        ".",
    ]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("hl7.ch-example.fr.key already exists: refusing to overwrite it"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(bench.path(key)).unwrap(), before);

    // SIRET, ECDSA by default, explicit paths, the CN as the only SAN.
    bench.ok(&[
        "pki",
        "csr",
        "--o",
        "EDITEUR SAS",
        "--siret",
        "12345678900012",
        "--cn",
        "api.editeur.fr",
        "--key",
        "e.key",
        "--csr",
        "e.csr",
    ]);
    assert_eq!(mode(&bench.path("e.key")), 0o600);
    let text = openssl(
        &bench,
        &["req", "-in", "e.csr", "-noout", "-verify", "-text"],
    );
    assert!(
        text.contains(
            "Subject: C = FR, O = EDITEUR SAS, OU = 312345678900012, CN = api.editeur.fr\n"
        ),
        "{text}"
    );
    assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    assert!(text.contains("DNS:api.editeur.fr\n"), "{text}");

    // The structure's number has the shape IGC Santé expects.
    let bad = bench.guichet(&[
        "pki", "csr", "--o", "X", "--finess", "75000001", "--cn", "x", "--out", ".",
    ]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("FINESS number \"75000001\" is not 9 digits"),
        "{stderr}"
    );
    assert!(!bench.path("x.key").exists());
}

/// `guichet check` and `guichet run` from a profile whose `cert` is an
/// openssl-made PKCS#12 file; `openssl s_client` verifies the gateway's
/// certificate by name and reaches the backend.
#[test]
fn a_gateway_serves_openssl_s_client_from_a_pkcs12_profile() {
    if !openssl_present() {
        return;
    }
    let bench = Bench::new();
    bench.issue("gw", &["--dns", "localhost", "--server-only"]);
    bench.issue("partner", &["--client-only"]);
    let pass = format!("pass:{PASSWORD}");
    openssl(
        &bench,
        &[
            "pkcs12",
            "-export",
            "-in",
            "pki/gw.pem",
            "-inkey",
            "pki/gw.key",
            "-certfile",
            "pki/ca.pem",
            "-passout",
            &pass,
            "-out",
            "gw.p12",
        ],
    );
    bench.write("gw.pass", &format!("{PASSWORD}\n"));
    for file in ["gw.p12", "gw.pass"] {
        std::fs::set_permissions(bench.path(file), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let echo = Echo::start();
    let config = format!(
        "[tls.gw]\ncert = \"gw.p12\"\npassword_file = \"gw.pass\"\nca = \"pki/ca.pem\"\ncrl = [\"pki/ca.crl\"]\n\n{}[[route]]\nname = \"in\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"partner\"]\nforward = \"{}\"\n",
        app("partner", "partner"),
        echo.addr()
    );
    bench.write("guichet.toml", &config);
    let report = bench.ok(&["check", "-c", "guichet.toml"]);
    assert!(
        report.contains("ok      [tls.gw] cert: PKCS#12: password accepted"),
        "{report}"
    );

    let gateway = bench.run("guichet.toml", &config);
    let port = gateway.route_port("in");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            "pki/ca.pem",
            "-cert",
            "pki/partner.pem",
            "-key",
            "pki/partner.key",
        ])
        .args([
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-quiet",
        ])
        .current_dir(bench.dir.path());
    let (client, mut stdin) = Proc::spawn_with_stdin("openssl s_client", cmd);
    let line = "MSH|^~\\&|LABO|CHU|DPI|CHU|20250101||ORU^R01|4711|P|2.5";
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .expect("write to s_client");
    client.wait_line("echoed by the backend", |l| l == line);
    assert_eq!(echo.accepted(), 1);
}
