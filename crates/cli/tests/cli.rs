//! `guichet check` and `guichet pki`, run as a user would, in a temporary
//! directory.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use crate::common::{app, have, profile, run_bounded, show, Bench, WAIT};

/// A valid two-route config (client and server tunnel) using `srv` and the
/// test CA; `extra` is appended.
fn config(bench: &Bench, extra: &str) -> String {
    format!(
        "{}{}\
[[route]]
name = \"to-dpi\"
listen = \"127.0.0.1:21010\"
forward = \"localhost:32100\"
forward_tls = \"srv\"
server_name = \"localhost\"

[[route]]
name = \"from-dpi\"
listen = \"127.0.0.1:32200\"
listen_tls = \"srv\"
allow = [\"partner\"]
forward = \"127.0.0.1:22011\"
{extra}",
        profile("srv", bench, Some("srv"), true),
        app("partner", "partner"),
    )
}

/// A bench with the certificates [`config`] uses.
fn bench() -> Bench {
    let bench = Bench::new();
    bench.issue("srv", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    bench.issue("partner", &["--client-only"]);
    bench
}

fn check(bench: &Bench, text: &str) -> Output {
    let path = bench.write("guichet.toml", text);
    bench.guichet(&["check", "-c", path.to_str().expect("utf-8 path")])
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config refused before any file is opened: non-zero exit, nothing on
/// stdout, exactly one `error:` on stderr naming the file, containing all
/// of `expected`.
#[track_caller]
fn assert_refused(bench: &Bench, text: &str, expected: &[&str]) {
    let out = check(bench, text);
    let err = stderr(&out);
    assert!(!out.status.success(), "should fail:\n{}", show(&out));
    assert_eq!(stdout(&out), "", "{}", show(&out));
    assert_eq!(err.matches("error:").count(), 1, "{}", show(&out));
    assert!(
        err.starts_with(&format!("error: {}: ", bench.p("guichet.toml"))),
        "the error names the config file:\n{}",
        show(&out)
    );
    for e in expected {
        assert!(
            err.contains(e),
            "stderr should contain {e:?}:\n{}",
            show(&out)
        );
    }
}

/// A config that parses but whose files are wrong: exit 1, one `ERROR`
/// finding containing all of `expected`, and the summary says 1 error.
#[track_caller]
fn assert_one_finding(bench: &Bench, text: &str, expected: &[&str]) {
    let out = check(bench, text);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "exactly one ERROR line:\n{}", show(&out));
    for e in expected {
        assert!(
            errors[0].contains(e),
            "{:?} should contain {e:?}",
            errors[0]
        );
    }
    assert!(report.contains("1 error(s)"), "{}", show(&out));
}

#[test]
fn check_accepts_a_valid_config_and_reports_each_part() {
    let bench = bench();
    let out = check(&bench, &config(&bench, ""));
    assert!(out.status.success(), "{}", show(&out));
    let report = stdout(&out);
    for expected in [
        "2 route(s), 1 TLS profile(s), 1 application(s)",
        "ok      [tls.srv] cert: CN=srv expires in",
        "ok      [tls.srv] key: private key matches the certificate, permissions are tight",
        "ok      [tls.srv] cert: chains to the profile's CA, valid as server (listen_tls)",
        "ok      [tls.srv] cert: chains to the profile's CA, valid as client (forward_tls)",
        "[tls.srv] crl: ",
        "ca.crl: 0 revoked certificate(s)",
        "ok      route \"to-dpi\": plain 127.0.0.1:21010 -> tls localhost:32100",
        "ok      route \"from-dpi\": mtls 127.0.0.1:32200 -> plain 127.0.0.1:22011",
    ] {
        assert!(report.contains(expected), "missing {expected:?}:\n{report}");
    }
    assert!(
        report.trim_end().ends_with("0 error(s), 0 warning(s)"),
        "{report}"
    );
    assert!(!report.contains("ERROR") && !report.contains("WARNING"));
}

#[test]
fn check_names_the_line_of_a_toml_syntax_error() {
    let bench = bench();
    // Line 3 has an unterminated string.
    let text = "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\nforward = \"h:2\"\n";
    assert_refused(&bench, text, &["line 3"]);
}

#[test]
fn check_names_an_unknown_key() {
    let bench = bench();
    let text = config(&bench, "").replace("forward = \"127.0.0.1", "forwrd = \"127.0.0.1");
    assert_refused(&bench, &text, &["unknown field `forwrd`", "line "]);
}

#[test]
fn check_names_an_unknown_app_in_allow() {
    let bench = bench();
    let text = config(&bench, "").replace("[\"partner\"]", "[\"ghost\"]");
    assert_refused(
        &bench,
        &text,
        &[
            "route \"from-dpi\"",
            "allow: no [[app]] named \"ghost\"",
            "guichet apps add",
        ],
    );
}

#[test]
fn check_names_a_missing_certificate_file() {
    let bench = bench();
    let text = config(&bench, "").replace("pki/srv.pem", "pki/nope.pem");
    assert_one_finding(
        &bench,
        &text,
        &[
            "[tls.srv]",
            &format!("cannot read {}", bench.p("pki/nope.pem")),
        ],
    );
}

#[test]
fn check_refuses_a_private_key_readable_by_others() {
    let bench = bench();
    let key = bench.path("pki/srv.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let key = key.display().to_string();
    assert_one_finding(
        &bench,
        &config(&bench, ""),
        &[
            &format!("private key {key} is accessible to other users (mode 0644)"),
            &format!("run `chmod 600 {key}`"),
        ],
    );
}

#[test]
fn check_refuses_a_key_that_does_not_match_the_certificate() {
    let bench = bench();
    bench.issue("other", &[]);
    let text = config(&bench, "").replace("pki/srv.key", "pki/other.key");
    assert_one_finding(
        &bench,
        &text,
        &[&format!(
            "private key {} does not belong to certificate {}",
            bench.p("pki/other.key"),
            bench.p("pki/srv.pem")
        )],
    );
}

#[test]
fn check_warns_of_a_certificate_expiring_within_30_days() {
    let bench = bench();
    bench.issue("srv", &["--days", "10", "--dns", "localhost"]);
    let out = check(&bench, &config(&bench, ""));
    assert!(
        out.status.success(),
        "a warning is not an error:\n{}",
        show(&out)
    );
    let report = stdout(&out);
    let warning = report
        .lines()
        .find(|l| l.starts_with("WARNING [tls.srv] cert: CN=srv expires in"))
        .unwrap_or_else(|| panic!("no expiry warning:\n{report}"));
    assert!(warning.contains("renew it"), "{warning}");
    let days: i64 = warning
        .split("expires in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no day count in {warning:?}"));
    assert!((9..=10).contains(&days), "{warning}");
    assert!(report.contains("0 error(s), 1 warning(s)"), "{report}");
}

/// `check` on a PostgreSQL journal: the transport's line for `store`,
/// and whether it is a finding.
fn journal_transport(bench: &Bench, store: &str) -> (String, std::process::ExitStatus) {
    let out = check(
        bench,
        &config(bench, &format!("\n[journal]\nstore = \"{store}\"\n")),
    );
    let report = stdout(&out);
    assert!(!report.contains("s3cret"), "the password leaked:\n{report}");
    let line = report
        .lines()
        .find(|l| l.contains("[journal] store:"))
        .unwrap_or_else(|| panic!("no [journal] store line:\n{}", show(&out)))
        .to_string();
    (line, out.status)
}

#[test]
fn check_reports_how_the_journal_reaches_postgresql() {
    let bench = bench();
    let url = "postgres://guichet:s3cret@";
    let ca = "sslrootcert=pki/ca.pem";
    let client = "sslcert=pki/partner.pem&sslkey=pki/partner.key";
    let cases = [
        (format!("{url}db.example/j"), "WARNING [journal] store: plain TCP to db.example: message bodies (unless sealed with body_key) and the password cross the network in clear"),
        (format!("{url}127.0.0.1:5432/j"), "ok      [journal] store: plain TCP on this machine"),
        (format!("{url}db.example/j?sslmode=require"), "WARNING [journal] store: sslmode=require encrypts but does not authenticate the database"),
        (format!("{url}db.example/j?sslmode=verify-ca&{ca}"), "ok      [journal] store: TLS, certificate chain checked against"),
        (format!("{url}db.example/j?sslmode=verify-full&{ca}&{client}"), "ok      [journal] store: TLS, certificate and name checked against"),
        (format!("{url}db.example/j?sslmode=prefer"), "ERROR   [journal] store: journal postgres://guichet@db.example:5432/j: sslmode=prefer would fall back to plain TCP"),
        (format!("{url}db.example/j?sslmode=verify-full&sslrootcert=pki/none.pem"), "ERROR   [journal] store: journal postgres://guichet@db.example:5432/j: cannot read"),
    ];
    for (store, expected) in &cases {
        let (line, status) = journal_transport(&bench, store);
        assert!(line.starts_with(expected), "{store}: {line}");
        assert_eq!(
            status.success(),
            !expected.starts_with("ERROR"),
            "{store}: {line}"
        );
    }
    let (line, _) = journal_transport(&bench, &cases[3].0);
    assert!(
        line.contains(&format!(
            "against {} (sslmode=verify-ca); note: the database's name is not checked",
            bench.p("pki/ca.pem")
        )),
        "{line}"
    );
    let (line, _) = journal_transport(&bench, &cases[4].0);
    assert!(
        line.ends_with(&format!(
            "(sslmode=verify-full); client certificate {}",
            bench.p("pki/partner.pem")
        )),
        "{line}"
    );
}

#[test]
fn pki_init_writes_the_ca_key_0600_and_an_empty_crl() {
    let bench = Bench::new();
    for file in ["ca.pem", "ca.key", "ca.crl"] {
        assert!(bench.path(&format!("pki/{file}")).is_file(), "{file}");
    }
    let mode = |f: &str| {
        std::fs::metadata(bench.path(f))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("pki/ca.key"), 0o600);
    let pem = std::fs::read_to_string(bench.path("pki/ca.pem")).expect("ca.pem");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let crl = std::fs::read_to_string(bench.path("pki/ca.crl")).expect("ca.crl");
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
    let shown = bench.ok(&["pki", "show", "pki/ca.pem"]);
    assert!(
        shown.contains("Subject:      CN=guichet test CA"),
        "{shown}"
    );
    assert!(shown.contains("CA:           yes"), "{shown}");
    if have("openssl") {
        let out = openssl(&bench, &["crl", "-in", "pki/ca.crl", "-noout", "-text"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", show(&out));
        assert!(text.contains("No Revoked Certificates"), "{text}");
    }
}

#[test]
fn pki_init_refuses_to_overwrite_a_ca() {
    let bench = Bench::new();
    let before = std::fs::read(bench.path("pki/ca.pem")).expect("ca.pem");
    let key_before = std::fs::read(bench.path("pki/ca.key")).expect("ca.key");
    let out = bench.guichet(&["pki", "init", "--out", "pki"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pki/ca.key already exists: refusing to overwrite"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read(bench.path("pki/ca.pem")).expect("ca.pem"),
        before
    );
    assert_eq!(
        std::fs::read(bench.path("pki/ca.key")).expect("ca.key"),
        key_before
    );
}

#[test]
fn pki_issue_and_show_cover_names_usage_and_fingerprints() {
    let bench = Bench::new();
    let out = bench.ok(&[
        "pki",
        "issue",
        "--ca",
        "pki",
        "--name",
        "labo",
        "--dns",
        "labo.example",
        "--ip",
        "127.0.0.1",
        "--client-only",
        "--ou",
        "1750000001",
        "--o",
        "CHU Test",
    ]);
    assert!(
        out.contains("pki/labo.pem") && out.contains("pki/labo.key"),
        "{out}"
    );
    let mode = std::fs::metadata(bench.path("pki/labo.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let shown = bench.ok(&["pki", "show", "pki/labo.pem"]);
    let line = |label: &str| -> String {
        shown
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label:?} line:\n{shown}"))
    };
    assert_eq!(line("Subject:"), "O=CHU Test, OU=1750000001, CN=labo");
    assert_eq!(line("Issuer:"), "CN=guichet test CA");
    assert_eq!(line("DNS names:"), "labo, labo.example");
    assert_eq!(line("IP addresses:"), "127.0.0.1");
    assert_eq!(line("Key usage:"), "clientAuth");
    assert_eq!(line("CA:"), "no");
    let sha256 = line("SHA-256:");
    assert_eq!(sha256.len(), 32 * 3 - 1, "{sha256}");
    let spki = line("SPKI pin:");
    assert!(spki.starts_with("sha256//"), "{spki}");

    // The default usage is both, and a server-only certificate says so.
    bench.issue("gw", &["--server-only"]);
    let gw = bench.ok(&["pki", "show", "pki/gw.pem"]);
    assert!(gw.contains("Key usage:    serverAuth\n"), "{gw}");
    bench.issue("both", &[]);
    let both = bench.ok(&["pki", "show", "pki/both.pem"]);
    assert!(
        both.contains("Key usage:    serverAuth, clientAuth\n"),
        "{both}"
    );

    // An outside tool computes the same fingerprint and SPKI pin.
    if !have("openssl") {
        return;
    }
    let out = openssl(
        &bench,
        &[
            "x509",
            "-in",
            "pki/labo.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim().ends_with(&format!("={sha256}")),
        "openssl says {text:?}, guichet {sha256:?}"
    );
    let mut pin = Command::new("sh");
    pin.arg("-c")
        .arg(
            "openssl x509 -in pki/labo.pem -noout -pubkey \
             | openssl pkey -pubin -outform DER \
             | openssl dgst -sha256 -binary | openssl base64 -A",
        )
        .current_dir(bench.dir.path())
        .env("OPENSSL_CONF", "/dev/null");
    let out = run_bounded(pin, WAIT);
    let pin = String::from_utf8_lossy(&out.stdout);
    assert_eq!(format!("sha256//{}", pin.trim()), spki, "{}", show(&out));
}

#[test]
fn pki_revoke_lists_the_serial_in_the_crl() {
    let bench = Bench::new();
    bench.issue("gone", &[]);
    let serial = bench
        .ok(&["pki", "show", "pki/gone.pem"])
        .lines()
        .find_map(|l| l.strip_prefix("Serial:").map(|s| s.trim().to_string()))
        .expect("serial line");
    let out = bench.ok(&["pki", "revoke", "--ca", "pki", "--name", "gone"]);
    assert!(out.contains("revoked gone"), "{out}");
    if !have("openssl") {
        return;
    }
    let out = openssl(&bench, &["crl", "-in", "pki/ca.crl", "-noout", "-text"]);
    let text = String::from_utf8_lossy(&out.stdout).to_uppercase();
    assert!(
        text.contains(&format!("SERIAL NUMBER: {serial}")),
        "serial {serial} not in the CRL:\n{text}"
    );
}

fn openssl(bench: &Bench, args: &[&str]) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(args)
        .current_dir(bench.dir.path())
        .env("OPENSSL_CONF", "/dev/null");
    run_bounded(cmd, WAIT)
}

/// `guichet run` with a config whose files are wrong, bounded.
fn run_once(bench: &Bench, text: &str) -> Output {
    let path = bench.write("guichet.toml", text);
    bench.guichet(&["run", "-c", path.to_str().expect("utf-8 path")])
}

/// A gateway that cannot start says why once, naming the file.
#[test]
fn run_reports_a_missing_certificate_once() {
    let bench = bench();
    let text = config(&bench, "").replace("pki/srv.pem", "pki/nope.pem");
    let out = run_once(&bench, &text);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    let path = bench.p("pki/nope.pem");
    assert!(err.starts_with("error: [tls.srv]: "), "{err}");
    assert_eq!(
        err.matches(&format!("cannot read {path}")).count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// A busy listen address names the route as written in the config.
#[test]
fn run_reports_a_busy_listen_address_once() {
    let bench = Bench::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("address").port();
    let text = format!(
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:{port}\"\nforward = \"127.0.0.1:9\"\n"
    );
    let out = run_once(&bench, &text);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: route \"r\": cannot listen on 127.0.0.1:{port}: "
        )),
        "{err}"
    );
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
}

// ------------------------------------------------------------ [admin]

/// One route that never carries traffic in these tests, and `[admin]`
/// with `lines`.
fn with_admin(bench: &Bench, lines: &str) -> String {
    format!(
        "{}{}[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n\n[admin]\n{lines}\n",
        profile("srv", bench, Some("srv"), true),
        app("monitoring", "monitoring"),
    )
}

/// An admin listener off loopback with neither TLS nor
/// authentication shows partners' subjects, fingerprints and addresses to
/// anyone: `guichet run` refuses to start (before any listener binds),
/// and `guichet check` says so as an error; `insecure = true` makes it a
/// warning, and protection (tls + allow, or tls + token) makes it fine.
#[test]
fn f9_admin_off_loopback_unprotected_is_refused_by_run_and_flagged_by_check() {
    let bench = bench();
    let port = crate::common::free_port();
    let exposed = with_admin(&bench, &format!("listen = \"0.0.0.0:{port}\""));
    let out = run_once(&bench, &exposed);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "[admin] listen = \"0.0.0.0:{port}\": plain HTTP off loopback"
        )) && err.contains("insecure = true"),
        "{err}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the refused admin listener was bound"
    );
    assert_one_finding(
        &bench,
        &exposed,
        &[
            "[admin]",
            "plain HTTP off loopback",
            "`guichet run` refuses to start",
        ],
    );

    // Explicitly insecure: a warning, not an error.
    let insecure = with_admin(
        &bench,
        &format!("listen = \"0.0.0.0:{port}\"\ninsecure = true"),
    );
    let out = check(&bench, &insecure);
    let report = stdout(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        report.contains("WARNING [admin]: insecure = true: plain HTTP off loopback"),
        "{report}"
    );

    // TLS without client certificates or a token is still open to all.
    let tls_only = with_admin(
        &bench,
        &format!("listen = \"0.0.0.0:{port}\"\ntls = \"srv\""),
    );
    assert_one_finding(
        &bench,
        &tls_only,
        &["[admin]", "HTTPS off loopback without client certificates"],
    );

    // Protected: no finding about exposure.
    for protection in [
        "tls = \"srv\"\nallow = [\"monitoring\"]".to_string(),
        format!("tls = \"srv\"\ntoken_file = \"{}\"", token_file(&bench)),
    ] {
        let text = with_admin(
            &bench,
            &format!("listen = \"0.0.0.0:{port}\"\n{protection}"),
        );
        let out = check(&bench, &text);
        let report = stdout(&out);
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            report.contains("ok      [admin]: https://0.0.0.0:"),
            "{report}"
        );
        assert!(!report.contains("WARNING [admin]"), "{report}");
    }
}

/// A private token file of 32 hex characters.
fn token_file(bench: &Bench) -> String {
    let path = bench.write("admin.token", "00112233445566778899aabbccddeeff\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.display().to_string()
}

/// `check` reports how the admin listener is protected and refuses a
/// token file others can read or a guessable token; `allow` without
/// `tls` and unknown applications are config errors.
#[test]
fn check_reports_the_admin_listeners_protection() {
    let bench = bench();
    let loopback = with_admin(&bench, "listen = \"127.0.0.1:9010\"");
    let report = stdout(&check(&bench, &loopback));
    assert!(
        report.contains("ok      [admin]: http://127.0.0.1:9010: reading it takes nothing")
            && report.contains("any local user or process can read partners' details"),
        "{report}"
    );
    let token = token_file(&bench);
    let both = with_admin(
        &bench,
        &format!("listen = \"127.0.0.1:9010\"\ntls = \"srv\"\nallow = [\"monitoring\"]\ntoken_file = \"{token}\""),
    );
    let out = check(&bench, &both);
    let report = stdout(&out);
    assert!(
        report.contains("https://127.0.0.1:9010: reading it takes an admitted client certificate and the bearer token"),
        "{report}"
    );
    assert!(report.ends_with("0 error(s), 0 warning(s)\n"), "{report}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_one_finding(&bench, &both, &["token_file", "chmod 600"]);
    std::fs::write(&token, "guessable\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_one_finding(&bench, &both, &["token_file", "at least 16"]);
    assert_refused(
        &bench,
        &with_admin(
            &bench,
            "listen = \"127.0.0.1:9010\"\nallow = [\"monitoring\"]",
        ),
        &["[admin] allow: client certificates need `tls"],
    );
    assert_refused(
        &bench,
        &with_admin(
            &bench,
            "listen = \"127.0.0.1:9010\"\ntls = \"srv\"\nallow = [\"nobody\"]",
        ),
        &["[admin] allow: no [[app]] named \"nobody\""],
    );
}

/// `-c FILE` goes before or after a journal command; reading a journal
/// that does not exist is an error naming the file and the setting, and
/// creates nothing.
#[test]
fn journal_takes_c_after_its_command_and_never_creates_a_database_to_read_it() {
    let bench = bench();
    bench.write(
        "guichet.toml",
        &config(&bench, "\n[journal]\nstore = \"journal.db\"\n"),
    );
    let db = bench.path("journal.db");
    for args in [
        ["journal", "stats", "-c", "guichet.toml"],
        ["journal", "-c", "guichet.toml", "stats"],
        ["journal", "list", "--config", "guichet.toml"],
    ] {
        let out = bench.guichet(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", show(&out));
        assert_eq!(
            stderr(&out),
            "error: no journal at ./journal.db: the [journal] store setting of guichet.toml \
             names it, and `guichet run` creates it when it starts; check the setting, or start \
             the gateway once\n",
            "{args:?}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }

    // Once the gateway made it, every form reads it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(guichet_journal::open(
            &guichet_journal::StoreSpec::Sqlite(db.clone()),
            guichet_journal::OpenOptions::default(),
        ))
        .expect("a new journal");
    for args in [
        ["journal", "stats", "-c", "guichet.toml"],
        ["journal", "-c", "guichet.toml", "stats"],
    ] {
        let listed = bench.ok(&args);
        assert!(listed.starts_with("ROUTE "), "{args:?}: {listed}");
    }
    let listed = bench.ok(&["journal", "list", "--json", "-c", "guichet.toml"]);
    assert_eq!(listed, "");
}

/// `guichet --help` names every capability, and each option of every
/// command has its own help (see the unit test in src/cli.rs).
#[test]
fn top_level_help_names_every_capability() {
    let out = Command::new(crate::common::guichet_bin())
        .arg("--help")
        .output()
        .expect("guichet --help");
    assert!(out.status.success(), "{}", show(&out));
    let help = stdout(&out);
    for capability in [
        "Tunnels",
        "HL7 events",
        "Store-and-forward journal",
        "HTTPS gateway, the \"guichet unique\"",
        "Bed-availability validation and a ROR simulator",
        "Test books",
        "The map of the information system",
        "starter config (init)",
        "(import stunnel)",
    ] {
        assert!(help.contains(capability), "{capability:?} missing:\n{help}");
    }
    for command in [
        "run", "check", "pki", "apps", "send", "listen", "journal", "demo", "validate", "sim",
        "test", "map", "init", "import", "convert",
    ] {
        assert!(
            help.lines()
                .any(|l| l.starts_with(&format!("  {command} "))),
            "{command} missing:\n{help}"
        );
    }
}
