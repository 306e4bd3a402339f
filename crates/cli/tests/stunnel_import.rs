//! Moving from stunnel: `guichet import stunnel` on the seed project's own
//! configs, and the version-1, extension-less certificates its PKI script
//! makes, diagnosed by `check` and `pki show` and refused at a real
//! handshake with their own reason.

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command};

use guichet_testsupport::fixtures::safetunnel_dir;
use guichet_testsupport::peers::run_ok;

use crate::common::{
    connect, field, free_port, have, http_get, run_bounded, show, wait_http, Bench, Proc, WAIT,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The seed's two configs as they are: its certificates live in /certs on
/// its containers, unreadable here, so the allowlists are empty and the
/// import says how to fill them.
#[test]
fn seed_configs_import_as_they_are() {
    let Some(seed) = safetunnel_dir() else {
        return;
    };
    let bench = Bench::new();
    let eai = seed.join("eai/stunnel.conf");
    let dpi = seed.join("dpi/stunnel.conf");
    let out = bench.guichet(&[
        "import",
        "stunnel",
        &eai.display().to_string(),
        &dpi.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let config = text(&out.stdout);
    let notes = text(&out.stderr);
    // Two profiles, one per certificate, absolute paths (no --out).
    for expected in [
        "[tls.eai]\ncert = \"/certs/eai.crt\"\nkey = \"/certs/eai.key\"\nca = \"/certs/ca.crt\"\n",
        "[tls.dpi]\ncert = \"/certs/dpi.crt\"\nkey = \"/certs/dpi.key\"\nca = \"/certs/ca.crt\"\n",
        // client = yes: plain in, TLS out, to the other file's listener.
        "name = \"hl7_to_dpi\"\nkind = \"tcp\"\nlisten = \"0.0.0.0:21010\"\nforward = \"127.0.0.1:32100\"\nforward_tls = \"eai\"\nserver_name = \"dpi\"\n",
        "name = \"hl7_to_eai\"\nkind = \"tcp\"\nlisten = \"0.0.0.0:22010\"\nforward = \"127.0.0.1:32200\"\nforward_tls = \"dpi\"\nserver_name = \"eai\"\n",
        // Server sections: TLS in, plain out, nobody readable to admit.
        "name = \"hl7_from_dpi\"\nkind = \"tcp\"\nlisten = \"0.0.0.0:32200\"\nlisten_tls = \"eai\"\nallow = []\nforward = \"127.0.0.1:22010\"\n",
        "name = \"hl7_from_eai\"\nkind = \"tcp\"\nlisten = \"0.0.0.0:32100\"\nlisten_tls = \"dpi\"\nallow = []\nforward = \"127.0.0.1:21010\"\n",
    ] {
        assert!(config.contains(expected), "missing:\n{expected}\nin:\n{config}");
    }
    assert!(!config.contains("\n[[app]]\n"), "{config}");
    assert_eq!(config.matches("[[route]]").count(), 4, "{config}");
    for expected in [
        "[hl7_to_dpi] in ",
        "TLS 1.2 is no longer pinned (sslVersion = TLSv1.2, line 11)",
        "the server's name is now checked: stunnel did not check it (no checkHost), guichet checks that the server's certificate carries \"dpi\"",
        "stunnel admitted any certificate issued by its CAfile (verify = 2); guichet admits only listed applications, and none could be read",
        "the allowlist is EMPTY",
        "guichet apps add -c <config> --name NAME --cert PARTNER.pem --allow-on hl7_from_dpi",
        "cannot read /certs/dpi.crt",
        "forwards to 127.0.0.1:21010, where route \"hl7_to_dpi\" of this config listens: on one host that goes round in a loop",
        "not carried over: foreground = yes (line 1)",
        "routes are kind \"tcp\"",
        "--mllp",
        "the config is not valid yet",
    ] {
        assert!(notes.contains(expected), "missing note {expected:?} in:\n{notes}");
    }
    assert_eq!(
        notes.matches("TLS 1.2 is no longer pinned").count(),
        4,
        "{notes}"
    );
}

/// A temporary copy of the seed: its PKI made afresh by its own script
/// (version 1 certificates with keys) in `stunnel/certs`, and its two
/// configs with `/certs/` pointing there.
fn seed_copy(bench: &Bench, seed: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(bench.path("stunnel")).unwrap();
    std::fs::create_dir_all(bench.path("eai")).unwrap();
    std::fs::create_dir_all(bench.path("dpi")).unwrap();
    std::fs::copy(
        seed.join("stunnel/gen-certs.sh"),
        bench.path("stunnel/gen-certs.sh"),
    )
    .unwrap();
    run_ok(
        Command::new("sh")
            .arg(bench.path("stunnel/gen-certs.sh"))
            .current_dir(bench.dir.path()),
    );
    let certs = format!("{}/", bench.p("stunnel/certs"));
    let mut files = Vec::new();
    for side in ["eai", "dpi"] {
        let conf = std::fs::read_to_string(seed.join(side).join("stunnel.conf")).unwrap();
        files.push(bench.write(
            &format!("{side}/stunnel.conf"),
            &conf.replace("/certs/", &certs),
        ));
    }
    (files[0].clone(), files[1].clone())
}

/// Both seed configs merged into one config where the certificates can be
/// read: the partners become applications, paths are relative to the
/// config; `check` diagnoses the version-1 certificates, and accepts the
/// config once `guichet pki` made version-3 ones at the same paths.
#[test]
fn seed_configs_merge_into_one_config_that_check_accepts_with_v3_certificates() {
    if !have("openssl") {
        return;
    }
    let Some(seed) = safetunnel_dir() else {
        return;
    };
    let bench = Bench::new();
    seed_copy(&bench, &seed);
    let import = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "stunnel",
            "eai/stunnel.conf",
            "dpi/stunnel.conf",
            "--out",
            "guichet.toml",
            "--mllp",
        ];
        args.extend_from_slice(extra);
        bench.guichet(&args)
    };
    let out = import(&[]);
    assert!(out.status.success(), "{}", show(&out));
    let notes = text(&out.stderr);
    let config = std::fs::read_to_string(bench.path("guichet.toml")).unwrap();
    for expected in [
        "[tls.eai]\ncert = \"stunnel/certs/eai.crt\"\nkey = \"stunnel/certs/eai.key\"\nca = \"stunnel/certs/ca.crt\"\n",
        "[[app]]\nname = \"dpi\"\ncn = \"dpi\"\nissuer_dn = \"CN=MLLP-CA\"\n",
        "[[app]]\nname = \"eai\"\ncn = \"eai\"\nissuer_dn = \"CN=MLLP-CA\"\n",
        "name = \"hl7_from_dpi\"\nkind = \"mllp\"\nlisten = \"0.0.0.0:32200\"\nlisten_tls = \"eai\"\nallow = [\"dpi\"]\n",
        "name = \"hl7_from_eai\"\nkind = \"mllp\"\nlisten = \"0.0.0.0:32100\"\nlisten_tls = \"dpi\"\nallow = [\"eai\"]\n",
        "name = \"hl7_to_dpi\"\nkind = \"mllp\"\nlisten = \"0.0.0.0:21010\"\nforward = \"127.0.0.1:32100\"\nforward_tls = \"eai\"\nserver_name = \"dpi\"\n",
    ] {
        assert!(config.contains(expected), "missing:\n{expected}\nin:\n{config}");
    }
    for expected in [
        "stunnel admitted any certificate issued by CN=MLLP-CA (verify = 2); guichet admits only listed applications: dpi (CN=dpi, from ",
        "stunnel admitted any certificate issued by CN=MLLP-CA (verify = 2); guichet admits only listed applications: eai (CN=eai, from ",
        "(the server's certificate) does not carry \"dpi\" in a subjectAltName (it has none): this name cannot be matched",
        "routes are kind \"mllp\" (--mllp)",
        "wrote guichet.toml (4 route(s), 2 TLS profile(s), 2 application(s))",
    ] {
        assert!(notes.contains(expected), "missing note {expected:?} in:\n{notes}");
    }
    assert!(!notes.contains("not valid yet"), "{notes}");

    // The seed's version-1 certificates, in plain words.
    let check = bench.guichet(&["check", "-c", "guichet.toml"]);
    assert_eq!(check.status.code(), Some(1), "{}", show(&check));
    let report = text(&check.stdout);
    for side in ["eai", "dpi"] {
        let line = report
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "ERROR   [tls.{side}] cert: CN={side} is an X.509 version 1 certificate"
                ))
            })
            .unwrap_or_else(|| panic!("no version-1 error for {side}:\n{report}"));
        assert!(line.contains("rustls refuses it"), "{line}");
        assert!(
            line.contains(&format!("guichet pki issue --ca DIR --name {side}")),
            "{line}"
        );
        assert!(
            line.contains("-extfile <(printf 'subjectAltName=DNS:"),
            "{line}"
        );
    }
    assert!(!report.contains("UnsupportedCertVersion"), "{report}");
    // `run` refuses to start, in the same words.
    let run = bench.guichet(&["run", "-c", "guichet.toml"]);
    assert_eq!(run.status.code(), Some(1), "{}", show(&run));
    assert!(
        text(&run.stderr).contains("is X.509 version 1 (no extensions): rustls refuses it"),
        "{}",
        show(&run)
    );
    let shown = bench.ok(&["pki", "show", "stunnel/certs/eai.crt"]);
    assert!(
        shown.contains("WARNING:      X.509 version 1 (no extensions): rustls refuses it"),
        "{shown}"
    );
    assert!(
        shown.contains("guichet pki issue --ca DIR --name eai"),
        "{shown}"
    );

    // Version 3 certificates from guichet's PKI at the same paths.
    bench.ok(&["pki", "init", "--out", "v3", "--cn", "MLLP-CA"]);
    for name in ["eai", "dpi"] {
        bench.ok(&["pki", "issue", "--ca", "v3", "--name", name]);
        for (from, to) in [("pem", "crt"), ("key", "key")] {
            std::fs::copy(
                bench.path(&format!("v3/{name}.{from}")),
                bench.path(&format!("stunnel/certs/{name}.{to}")),
            )
            .unwrap();
        }
    }
    std::fs::copy(bench.path("v3/ca.pem"), bench.path("stunnel/certs/ca.crt")).unwrap();
    let check = bench.guichet(&["check", "-c", "guichet.toml"]);
    assert!(check.status.success(), "{}", show(&check));
    assert!(
        text(&check.stdout).contains("\n0 error(s)") || text(&check.stdout).contains("0 error(s)")
    );
    let shown = bench.ok(&["pki", "show", "stunnel/certs/eai.crt"]);
    assert!(!shown.contains("WARNING"), "{shown}");

    // An existing --out is kept unless --force.
    let again = import(&[]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    assert!(text(&again.stderr).contains("guichet.toml exists; pass --force"));
    let forced = import(&["--force"]);
    assert!(forced.status.success(), "{}", show(&forced));
}

/// Bad input: clear messages, exit 1; nothing written.
#[test]
fn bad_stunnel_input_is_named() {
    let bench = Bench::new();
    let fail = |files: &[&str], needle: &str| {
        let mut args = vec!["import", "stunnel", "--out", "out.toml"];
        args.extend_from_slice(files);
        let out = bench.guichet(&args);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        let err = text(&out.stderr);
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        assert!(!bench.path("out.toml").exists());
    };
    fail(&["missing.conf"], "cannot read missing.conf");
    bench.write("syntax.conf", "[a]\naccept = 1\nconnect 2\n");
    fail(
        &["syntax.conf"],
        "syntax.conf:3: \"connect 2\" is neither `option = value` nor a [section]",
    );
    bench.write("noconnect.conf", "[lonely]\naccept = 1234\n");
    fail(
        &["noconnect.conf"],
        "noconnect.conf: [lonely] (line 1): no `connect`",
    );
    bench.write(
        "a.conf",
        "[one]\naccept = 0.0.0.0:21010\nconnect = 127.0.0.1:1\n",
    );
    bench.write(
        "b.conf",
        "[two]\naccept = 10.0.0.1:21010\nconnect = 127.0.0.1:2\n",
    );
    fail(&["a.conf", "b.conf"], "listen address collision");
    fail(
        &["a.conf", "b.conf"],
        "[one] in a.conf (accept 0.0.0.0:21010) and [two] in b.conf (accept 10.0.0.1:21010)",
    );

    // An unknown option is a warning; the rest is imported.
    bench.write(
        "odd.conf",
        "[odd]\naccept = 127.0.0.1:4000\nconnect = 127.0.0.1:4001\nfrobnicate = 3\nciphers = HIGH\n",
    );
    let out = bench.guichet(&["import", "stunnel", "odd.conf"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown stunnel option frobnicate = 3 (line 4): not carried over"),
        "{err}"
    );
    assert!(
        err.contains(
            "not carried over: ciphers = HIGH (line 5): guichet's cipher suites are fixed"
        ),
        "{err}"
    );
    // Usage errors are clap's: exit 2.
    let out = bench.guichet(&["import", "stunnel"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// `openssl s_server` on a free port with `cert`, answering until killed
/// (it stops at the end of its stdin, so the pipe is kept open).
fn s_server(bench: &Bench, cert: &str, key: &str) -> (Proc, ChildStdin, u16) {
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_server",
        "-accept",
        &port.to_string(),
        "-cert",
        cert,
        "-key",
        key,
    ])
    .current_dir(bench.dir.path())
    .env("OPENSSL_CONF", "/dev/null");
    let (proc, stdin) = Proc::spawn_with_stdin("openssl s_server", cmd);
    proc.wait_line("ACCEPT", |l| l.contains("ACCEPT"));
    (proc, stdin, port)
}

/// The seed's version-1 certificates at real handshakes, both ways, and a
/// version-3 server certificate without subjectAltName: each refusal is
/// logged and counted with its own reason, not a generic one.
#[test]
fn v1_and_san_less_certificates_are_refused_with_their_reason() {
    if !have("openssl") {
        return;
    }
    let Some(seed) = safetunnel_dir() else {
        return;
    };
    let bench = Bench::new();
    seed_copy(&bench, &seed);
    bench.issue("gw", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    // A version 3 certificate of the seed's CA, with extensions but no SAN.
    bench.write(
        "nosan.ext",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    run_ok(Command::new("openssl").current_dir(bench.dir.path()).args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "nosan.key",
        "-out",
        "nosan.csr",
        "-subj",
        "/CN=dpi",
    ]));
    run_ok(Command::new("openssl").current_dir(bench.dir.path()).args([
        "x509",
        "-req",
        "-in",
        "nosan.csr",
        "-CA",
        "stunnel/certs/ca.crt",
        "-CAkey",
        "stunnel/certs/ca.key",
        "-CAcreateserial",
        "-out",
        "nosan.crt",
        "-days",
        "30",
        "-extfile",
        "nosan.ext",
    ]));
    // check and pki show on the SAN-less server certificate.
    std::fs::set_permissions(
        bench.path("nosan.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    bench.write(
        "nosan.toml",
        "[tls.srv]\ncert = \"nosan.crt\"\nkey = \"nosan.key\"\nca = \"stunnel/certs/ca.crt\"\ncrl_unknown = \"allow\"\n\n\
         [[app]]\nname = \"eai\"\ncn = \"eai\"\n\n\
         [[route]]\nname = \"in\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"srv\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:9\"\n",
    );
    let check = bench.guichet(&["check", "-c", "nosan.toml"]);
    let report = text(&check.stdout);
    assert!(
        report.contains("WARNING [tls.srv] cert: CN=dpi has no subjectAltName: clients that check the server's name"),
        "{}",
        show(&check)
    );
    assert!(
        report.contains("guichet pki issue --ca DIR --name dpi"),
        "{report}"
    );
    let shown = bench.ok(&["pki", "show", "nosan.crt"]);
    assert!(
        shown.contains("WARNING:      no subjectAltName: as a server certificate, the name clients dial cannot be matched"),
        "{shown}"
    );

    let (_v1_server, _v1_stdin, v1_port) =
        s_server(&bench, "stunnel/certs/dpi.crt", "stunnel/certs/dpi.key");
    let (_nosan_server, _nosan_stdin, nosan_port) = s_server(&bench, "nosan.crt", "nosan.key");
    let admin = free_port();
    let seed_ca = "ca = \"stunnel/certs/ca.crt\"\ncrl_unknown = \"allow\"\n";
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [tls.gw]\ncert = \"pki/gw.pem\"\nkey = \"pki/gw.key\"\n{seed_ca}\n\
         [tls.seed]\n{seed_ca}\n\
         [[app]]\nname = \"eai\"\ncn = \"eai\"\n\n\
         [[route]]\nname = \"in\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:9\"\n\n\
         [[route]]\nname = \"to-v1\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{v1_port}\"\nforward_tls = \"seed\"\nserver_name = \"dpi\"\n\n\
         [[route]]\nname = \"to-nosan\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{nosan_port}\"\nforward_tls = \"seed\"\nserver_name = \"dpi\"\n"
    );
    let gateway = bench.run("guichet.toml", &config);
    let in_port = gateway.route_port("in");

    // A client presenting the seed's version-1 certificate.
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{in_port}")])
        .args([
            "-cert",
            "stunnel/certs/eai.crt",
            "-key",
            "stunnel/certs/eai.key",
        ])
        .current_dir(bench.dir.path())
        .env("OPENSSL_CONF", "/dev/null");
    let client = run_bounded(cmd, WAIT);
    let refused = gateway.wait_line("`refused:` on route in", |l| {
        l.contains("refused:") && l.contains("route=in")
    });
    assert_eq!(
        field(&refused, "reason="),
        Some("x509_v1"),
        "{refused}\n{}",
        show(&client)
    );
    assert!(refused.contains("X.509 version 1 certificate"), "{refused}");
    assert!(
        refused.contains("presented subject \"CN=eai\""),
        "{refused}"
    );

    // Servers presenting a version-1 certificate, and one without SAN.
    for (route, reason, words) in [
        ("to-v1", "x509_v1", "X.509 version 1 certificate"),
        (
            "to-nosan",
            "no_san",
            "server certificate has no subjectAltName",
        ),
    ] {
        let port = gateway.route_port(route);
        let mut stream = connect(port);
        let _ = std::io::Write::write_all(&mut stream, b"hello");
        let line = gateway.wait_line(&format!("forward failure on {route}"), |l| {
            l.contains("forward TLS handshake failed") && l.contains(&format!("route={route}"))
        });
        assert_eq!(field(&line, "reason="), Some(reason), "{line}");
        assert!(line.contains(words), "{line}");
    }

    let metrics = wait_http(admin, "/metrics", "the three refusals", |_, text| {
        text.contains("guichet_refusals_total{route=\"in\",side=\"listen\",reason=\"x509_v1\"} 1\n")
            && text.contains(
                "guichet_refusals_total{route=\"to-v1\",side=\"forward\",reason=\"x509_v1\"} 1\n",
            )
            && text.contains(
                "guichet_refusals_total{route=\"to-nosan\",side=\"forward\",reason=\"no_san\"} 1\n",
            )
    });
    assert!(
        !metrics.contains("reason=\"bad_certificate\"} 1"),
        "a generic reason was counted:\n{metrics}"
    );
    let (code, _) = http_get(admin, "/healthz").expect("admin");
    assert_eq!(code, 200);
}
