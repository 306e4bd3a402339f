//! guichet against the peers a hospital already runs: `openssl s_client`
//! and stunnel, on real sockets with certificates from `guichet pki`.

use std::io::Write;
use std::net::Shutdown;
use std::process::{Command, Output};

use crate::common::{
    app, closed_by_peer, connect, field, free_port, have, hl7_message, profile, round_trip,
    run_bounded, show, Bench, Echo, Proc, WAIT,
};

/// A gateway with one mTLS listener admitting the app `partner`, in front
/// of an echo backend. The gateway's certificate is `gw` (localhost,
/// 127.0.0.1).
struct MtlsServer {
    bench: Bench,
    echo: Echo,
    gateway: Proc,
    port: u16,
}

impl MtlsServer {
    /// `prepare` runs after the PKI exists and before the gateway starts
    /// (to issue or revoke more certificates).
    fn start(prepare: impl FnOnce(&Bench)) -> MtlsServer {
        let bench = Bench::new();
        bench.issue("gw", &["--dns", "localhost", "--ip", "127.0.0.1"]);
        bench.issue("partner", &["--client-only"]);
        prepare(&bench);
        let echo = Echo::start();
        let config = format!(
            "{}{}[[route]]\nname = \"in\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"partner\"]\nforward = \"{}\"\n",
            profile("gw", &bench, Some("gw"), true),
            app("partner", "partner"),
            echo.addr()
        );
        let gateway = bench.run("guichet.toml", &config);
        let port = gateway.route_port("in");
        MtlsServer {
            bench,
            echo,
            gateway,
            port,
        }
    }

    /// `openssl s_client` to the gateway with `args`, stdin closed; the
    /// ClientHello is what the options ask for (no distribution policy).
    fn s_client(&self, args: &[&str]) -> Output {
        let mut cmd = s_client_cmd(&self.bench, self.port);
        cmd.args(args);
        run_bounded(cmd, WAIT)
    }

    /// Waits for the refusal line of the next connection, from line `from`.
    fn refusal(&self, from: usize) -> String {
        self.gateway.wait_line_after(from, "`refused:`", |l| {
            l.contains("refused:") && l.contains("route=in")
        })
    }
}

fn s_client_cmd(bench: &Bench, port: u16) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(bench.p("pki/ca.pem"))
        .current_dir(bench.dir.path())
        // Debian's openssl.cnf raises MinProtocol to TLS 1.2 and the
        // security level: without it `-tls1` would not be sent at all.
        .env("OPENSSL_CONF", "/dev/null");
    cmd
}

fn client_cert(bench: &Bench, name: &str) -> Vec<String> {
    vec![
        "-cert".into(),
        bench.p(&format!("pki/{name}.pem")),
        "-key".into(),
        bench.p(&format!("pki/{name}.key")),
    ]
}

#[test]
fn openssl_client_with_a_certificate_reaches_the_backend() {
    if !have("openssl") {
        return;
    }
    let server = MtlsServer::start(|_| {});
    let mut cmd = s_client_cmd(&server.bench, server.port);
    cmd.args(client_cert(&server.bench, "partner")).args([
        "-verify_return_error",
        "-verify_hostname",
        "localhost",
        "-quiet",
    ]);
    let (client, mut stdin) = Proc::spawn_with_stdin("openssl s_client", cmd);
    let line = "MSH|^~\\&|LABO|CHU|DPI|CHU|20250101||ORU^R01|4711|P|2.5";
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .expect("write to s_client");
    // -quiet implies -ign_eof: the echo comes back on s_client's stdout.
    client.wait_line("echoed by the backend", |l| l == line);
    assert_eq!(server.echo.accepted(), 1);
    drop(stdin);
    drop(client);
    // The connection's span carries the admitted application.
    let ended = server.gateway.wait_line("end of the connection", |l| {
        l.contains("route=in") && l.contains("app=\"partner\"")
    });
    assert!(!ended.contains("refused"), "{ended}");
}

/// `-tls1_1` and `-tls1` really send a TLS 1.1 / 1.0 ClientHello (the
/// session block echoes the version); guichet refuses them as a protocol
/// mismatch and nothing reaches the backend.
#[test]
fn openssl_tls_1_0_and_1_1_clients_are_refused() {
    if !have("openssl") {
        return;
    }
    let server = MtlsServer::start(|_| {});
    for (flag, version) in [("-tls1_1", "TLSv1.1"), ("-tls1", "TLSv1")] {
        let from = server.gateway.line_count();
        let mut args = vec![
            flag.to_string(),
            "-cipher".into(),
            "DEFAULT:@SECLEVEL=0".into(),
        ];
        args.extend(client_cert(&server.bench, "partner"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = server.s_client(&args);
        assert!(!out.status.success(), "{flag} must fail:\n{}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("Protocol  : {version}\n")),
            "openssl did not offer {version}:\n{}",
            show(&out)
        );
        assert!(
            stdout.contains("Cipher is (NONE)"),
            "no session may be set up:\n{}",
            show(&out)
        );
        let refusal = server.refusal(from);
        assert_eq!(
            field(&refusal, "reason="),
            Some("protocol_version"),
            "{flag}: {refusal}"
        );
        assert!(refusal.contains("below TLS 1.2"), "{refusal}");
    }
    assert_eq!(server.echo.accepted(), 0);
}

/// A TLS 1.2 client offering only a CBC suite finds nothing in common.
#[test]
fn openssl_cbc_only_client_is_refused() {
    if !have("openssl") {
        return;
    }
    let server = MtlsServer::start(|_| {});
    let from = server.gateway.line_count();
    let mut args = vec![
        "-tls1_2".to_string(),
        "-cipher".into(),
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384".into(),
    ];
    args.extend(client_cert(&server.bench, "partner"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = server.s_client(&args);
    assert!(!out.status.success(), "{}", show(&out));
    let refusal = server.refusal(from);
    assert_eq!(
        field(&refusal, "reason="),
        Some("incompatible_protocol"),
        "{refusal}"
    );
    assert_eq!(server.echo.accepted(), 0);
}

/// Every refused client certificate is logged with its reason, in TLS 1.2
/// and 1.3 alike, and never reaches the backend.
#[test]
fn openssl_refusals_name_the_reason() {
    if !have("openssl") {
        return;
    }
    let server = MtlsServer::start(|bench| {
        bench.issue("intruder", &["--client-only"]);
        bench.issue("gone", &["--client-only"]);
        bench.ok(&["pki", "revoke", "--ca", "pki", "--name", "gone"]);
        // Same CN and issuer CN as the admitted partner, from another CA
        // of the same name: an impersonation the signature check catches.
        bench.ok(&["pki", "init", "--out", "twin"]);
        copy_cert(bench, "twin", "partner", "fake");
        // A CA nobody here knows.
        bench.ok(&["pki", "init", "--out", "other", "--cn", "Other CA"]);
        copy_cert(bench, "other", "partner", "stranger");
    });
    let cases = [
        (None, "no_certificate"),
        (Some("intruder"), "not_allowed"),
        (Some("gone"), "revoked"),
        (Some("fake"), "bad_signature"),
        (Some("stranger"), "unknown_ca"),
    ];
    for version in ["-tls1_2", "-tls1_3"] {
        for (cert, reason) in cases {
            let from = server.gateway.line_count();
            let mut args = vec![version.to_string()];
            if let Some(cert) = cert {
                args.extend(client_cert(&server.bench, cert));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = server.s_client(&args);
            let refusal = server.refusal(from);
            assert_eq!(
                field(&refusal, "reason="),
                Some(reason),
                "{version} {cert:?}: {refusal}\n{}",
                show(&out)
            );
            if cert.is_some() && reason != "no_certificate" {
                assert!(refusal.contains("presented subject"), "{refusal}");
            }
        }
    }
    assert_eq!(server.echo.accepted(), 0, "{}", server.gateway.log());
}

/// Issues `name` from the CA in `ca_dir` and copies it to `pki/as_name.*`.
fn copy_cert(bench: &Bench, ca_dir: &str, name: &str, as_name: &str) {
    bench.ok(&[
        "pki",
        "issue",
        "--ca",
        ca_dir,
        "--name",
        name,
        "--client-only",
    ]);
    for ext in ["pem", "key"] {
        std::fs::copy(
            bench.path(&format!("{ca_dir}/{name}.{ext}")),
            bench.path(&format!("pki/{as_name}.{ext}")),
        )
        .expect("copy certificate");
    }
}

/// A stunnel started on a port of its own choosing; `service` is the body
/// of its only section, without `accept`.
fn stunnel(bench: &Bench, name: &str, service: &str) -> (Proc, u16) {
    for _attempt in 0..3 {
        let port = free_port();
        let conf = bench.write(
            &format!("{name}.conf"),
            &format!(
                "foreground = yes\npid =\ndebug = info\n\n[{name}]\naccept = 127.0.0.1:{port}\n{service}"
            ),
        );
        let mut cmd = Command::new("stunnel");
        cmd.arg(conf).current_dir(bench.dir.path());
        let proc = Proc::spawn(name, cmd);
        let line = proc.wait_line("`bound to` or a binding error", |l| {
            l.contains("bound to 127.0.0.1:") || l.contains("Error binding")
        });
        if line.contains("bound to") {
            return (proc, port);
        }
        // Someone took the port between our probe and stunnel's bind.
    }
    panic!("stunnel could not bind a port in 3 attempts");
}

/// guichet's client tunnel (plain in, mTLS out) to a stunnel server that
/// requires a client certificate, with the server name checked.
#[test]
fn guichet_client_tunnel_to_stunnel_server() {
    if !have("stunnel") {
        return;
    }
    let bench = Bench::new();
    bench.issue("dpi", &["--server-only"]);
    bench.issue("eai", &["--client-only"]);
    let echo = Echo::start();
    let (stunnel, stunnel_port) = stunnel(
        &bench,
        "dpi",
        &format!(
            "connect = {}\ncert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\n",
            echo.addr(),
            bench.p("pki/dpi.pem"),
            bench.p("pki/dpi.key"),
            bench.p("pki/ca.pem"),
        ),
    );
    let route = |name: &str, server_name: &str| {
        format!(
            "{}[[route]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{stunnel_port}\"\nforward_tls = \"eai\"\nserver_name = \"{server_name}\"\n",
            profile("eai", &bench, Some("eai"), true),
        )
    };
    let gateway = bench.run("to-dpi.toml", &route("to-dpi", "dpi"));
    let port = gateway.route_port("to-dpi");

    let mut conn = connect(port);
    for i in 0..3 {
        round_trip(&mut conn, &hl7_message(&format!("MSG{i}"), "123456789"));
    }
    // Larger than a TLS record and than guichet's buffers.
    let big: Vec<u8> = (0..300_000u32).map(|i| b'A' + (i % 26) as u8).collect();
    round_trip(&mut conn, &big);
    conn.shutdown(Shutdown::Write).expect("half-close");
    assert!(
        closed_by_peer(&mut conn),
        "the tunnel should close after the backend"
    );
    stunnel.wait_line("stunnel accepted guichet's certificate", |l| {
        l.contains("Certificate accepted at depth=0") && l.contains("CN=eai")
    });
    let closed = gateway.wait_line("connection closed", |l| l.contains("connection closed"));
    let sent = (0..3)
        .map(|i| hl7_message(&format!("MSG{i}"), "123456789").len())
        .sum::<usize>()
        + big.len();
    assert_eq!(
        field(&closed, "bytes_up="),
        Some(sent.to_string().as_str()),
        "{closed}"
    );
    assert_eq!(
        field(&closed, "bytes_down="),
        Some(sent.to_string().as_str()),
        "{closed}"
    );

    // The same tunnel dialling a name the certificate does not carry is
    // refused before any byte reaches the backend.
    let accepted = echo.accepted();
    let wrong = bench.run("wrong.toml", &route("wrong-name", "eai.example"));
    let mut conn = connect(wrong.route_port("wrong-name"));
    conn.write_all(b"must not pass").expect("write");
    assert!(closed_by_peer(&mut conn));
    let refused = wrong.wait_line("forward TLS failure", |l| {
        l.contains("forward TLS handshake failed")
    });
    assert_eq!(
        field(&refused, "reason="),
        Some("name_mismatch"),
        "{refused}"
    );
    assert_eq!(echo.accepted(), accepted);
}

/// A stunnel client (its own certificate, verifying guichet's chain and
/// host name) into guichet's mTLS server tunnel with an allowlist.
#[test]
fn stunnel_client_to_guichet_server_tunnel() {
    if !have("stunnel") {
        return;
    }
    let bench = Bench::new();
    bench.issue(
        "gw",
        &["--server-only", "--dns", "localhost", "--ip", "127.0.0.1"],
    );
    bench.issue("partner", &["--client-only", "--ou", "1750000001"]);
    let echo = Echo::start();
    let config = format!(
        "{}[[app]]\nname = \"partner\"\ncn = \"partner\"\nou = \"1750000001\"\nissuer_cn = \"guichet test CA\"\n\n\
         [[route]]\nname = \"from-partner\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"partner\"]\nforward = \"{}\"\n",
        profile("gw", &bench, Some("gw"), true),
        echo.addr()
    );
    let gateway = bench.run("guichet.toml", &config);
    let gateway_port = gateway.route_port("from-partner");
    let (stunnel, port) = stunnel(
        &bench,
        "partner",
        &format!(
            "client = yes\nconnect = 127.0.0.1:{gateway_port}\ncert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\ncheckHost = localhost\n",
            bench.p("pki/partner.pem"),
            bench.p("pki/partner.key"),
            bench.p("pki/ca.pem"),
        ),
    );

    let mut conn = connect(port);
    let message = hl7_message("A01-1", "987654321");
    round_trip(&mut conn, &message);
    round_trip(&mut conn, b"second write\r");
    conn.shutdown(Shutdown::Write).expect("half-close");
    assert!(closed_by_peer(&mut conn));
    stunnel.wait_line("stunnel accepted guichet's certificate", |l| {
        l.contains("Certificate accepted at depth=0") && l.contains("CN=gw")
    });
    let closed = gateway.wait_line("connection closed", |l| l.contains("connection closed"));
    assert!(closed.contains("app=\"partner\""), "{closed}");
    let sent = (message.len() + b"second write\r".len()).to_string();
    assert_eq!(field(&closed, "bytes_up="), Some(sent.as_str()), "{closed}");
    assert_eq!(
        field(&closed, "bytes_down="),
        Some(sent.as_str()),
        "{closed}"
    );
    assert_eq!(echo.accepted(), 1);
}
