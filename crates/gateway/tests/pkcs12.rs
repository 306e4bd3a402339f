//! A TLS profile whose `cert` is a PKCS#12 file, as IGC Santé delivers
//! software certificates: files made by the real `openssl pkcs12 -export`
//! (OpenSSL 3 defaults and `-legacy`), served on a route, reloaded, and
//! refused with clear errors when the password or the permissions are wrong.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use guichet_gateway::check::{check, Level, Report};
use guichet_gateway::Config;
use guichet_pki::{IssuedFiles, Usage};
use guichet_testsupport::peers::run_ok;
use guichet_tls::identity::Identity;
use guichet_tls::pkcs12::{decode, protection, Password};
use guichet_tls::{Material, MaterialError, PasswordSource, Pkcs12Error, ProfileFiles};

const ROUTE: &str = "from-eai";
const PASSWORD: &str = "Sécu-2026 pass";

/// `openssl ARGS`, which must succeed. openssl is a peer these tests
/// need: without it they fail (also under CI), never skip.
fn openssl(args: &[&str]) {
    run_ok(Command::new("openssl").args(args));
}

/// `openssl pkcs12 -export` of `own` with the CA certificate in the bag,
/// written to `out` (mode 0600); `extra` adds options such as `-legacy`.
fn export(pki: &Pki, own: &IssuedFiles, out: &Path, extra: &[&str]) {
    let pass = format!("pass:{PASSWORD}");
    let mut args = vec!["pkcs12", "-export", "-name", "gw", "-passout", &pass];
    let paths = [&own.cert, &own.key, &pki.ca_cert(), &out.to_path_buf()]
        .map(|p| p.to_str().unwrap().to_string());
    args.extend([
        "-in",
        &paths[0],
        "-inkey",
        &paths[1],
        "-certfile",
        &paths[2],
        "-out",
        &paths[3],
    ]);
    args.extend(extra);
    openssl(&args);
    chmod(out, 0o600);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A password file holding `text` and a newline, mode 0600.
fn password_file(pki: &Pki, text: &str) -> PathBuf {
    let path = pki.tmp.path().join("gw.pass");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    chmod(&path, 0o600);
    path
}

fn p12_profile(pki: &Pki, p12: &Path, password: &Path) -> String {
    format!(
        "[tls.gw]\ncert = {}\npassword_file = {}\nca = {}\ncrl = [{}]\n\n",
        toml_path(p12),
        toml_path(password),
        toml_path(&pki.ca_cert()),
        toml_path(&pki.crl())
    )
}

fn route_config(pki: &Pki, p12: &Path, password: &Path, backend: &Backend, watch: &str) -> String {
    format!(
        "{}{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\n",
        gateway_section("1s", watch),
        p12_profile(pki, p12, password),
        app("eai", "eai"),
        backend.target(),
    )
}

fn files(p12: &Path, password: Option<PasswordSource>) -> ProfileFiles {
    ProfileFiles {
        cert: Some(p12.to_path_buf()),
        password,
        ..ProfileFiles::default()
    }
}

fn load_error(p12: &Path, password: Option<PasswordSource>) -> String {
    match Material::load(&files(p12, password)) {
        Ok(_) => panic!("{} should have been refused", p12.display()),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_route_presents_the_certificate_of_an_openssl_pkcs12_and_reloads_it() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let p12 = pki.tmp.path().join("gw.p12");
    export(&pki, &gw, &p12, &[]);
    let password = password_file(&pki, PASSWORD);
    let backend = echo_backend().await;
    let text = route_config(&pki, &p12, &password, &backend, "100ms");
    let gateway = Running::start(&pki.config_path(), &text).await;

    let mut stream = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    assert_eq!(server_cert(&stream), cert_der(&gw.cert));
    assert_eq!(
        stream.get_ref().1.peer_certificates().unwrap().len(),
        1,
        "the self-signed root of the bag is not sent"
    );
    echo_once(&mut stream, b"through a PKCS#12 profile\r").await;

    // The watcher follows the .p12 itself: a renewed export is picked up.
    let renewed = pki.issue("gw", Usage::ServerOnly);
    let next = pki.tmp.path().join("gw-next.p12");
    export(&pki, &renewed, &next, &[]);
    std::fs::rename(&next, &p12).unwrap();
    gateway
        .wait_value(
            "guichet_reloads_total",
            &[("outcome", outcome::RELOAD_OK)],
            1,
        )
        .await;
    let mut again = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    assert_eq!(server_cert(&again), cert_der(&renewed.cert));
    echo_once(&mut again, b"renewed\r").await;
    echo_once(&mut stream, b"first connection still open\r").await;

    // A changed password file is watched too: a wrong one fails the
    // reload and keeps the certificate in service.
    let wrong = pki.tmp.path().join("wrong.pass");
    std::fs::write(&wrong, "not it\n").unwrap();
    chmod(&wrong, 0o600);
    std::fs::rename(&wrong, &password).unwrap();
    gateway
        .wait_value(
            "guichet_reloads_total",
            &[("outcome", outcome::RELOAD_ERROR)],
            1,
        )
        .await;
    let mut still = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    assert_eq!(server_cert(&still), cert_der(&renewed.cert));
    echo_once(&mut still, b"still served\r").await;
}

#[test]
fn default_and_legacy_exports_hold_the_leaf_its_key_and_the_chain() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::Both);
    let password = Password::new(PASSWORD);
    let aes = "PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC)";
    let des3 = "pbeWithSHA1And3-KeyTripleDES-CBC (3DES)";
    let sha256_mac = "HMAC-SHA256, 2048 iterations";
    for (extra, key, certs, mac, legacy) in [
        (&[][..], aes, aes, sha256_mac, false),
        (
            &["-legacy"][..],
            des3,
            "pbeWithSHA1And40BitRC2-CBC",
            "HMAC-SHA1, 2048 iterations",
            true,
        ),
        (&["-descert"][..], aes, des3, sha256_mac, false),
        (
            &["-keypbe", "NONE"][..],
            "none (in clear)",
            aes,
            sha256_mac,
            true,
        ),
    ] {
        let p12 = pki.tmp.path().join("gw.p12");
        export(&pki, &gw, &p12, extra);
        let bytes = std::fs::read(&p12).unwrap();
        let found = protection(&bytes).unwrap();
        assert_eq!(
            (found.key, found.certificates, found.mac, found.legacy),
            (
                vec![key.to_string()],
                vec![certs.to_string()],
                Some(mac.to_string()),
                legacy
            ),
            "{extra:?}"
        );
        let bundle = decode(&p12, &bytes, &password).unwrap();
        assert_eq!(
            bundle.chain.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
            [cert_der(&gw.cert), cert_der(&pki.ca_cert())],
            "{extra:?}: leaf first, then its issuer"
        );
        assert!(bundle.others.is_empty());
        assert_eq!(bundle.tls_chain().len(), 1);

        let source = PasswordSource::File(password_file(&pki, PASSWORD));
        let material = Material::load(&files(&p12, Some(source))).unwrap();
        let own = material.own.unwrap();
        assert_eq!(own.chain[0].to_vec(), cert_der(&gw.cert), "{extra:?}");
        assert_eq!(
            own.identity,
            Identity::from_der(&cert_der(&gw.cert)).unwrap()
        );
    }
}

#[test]
fn wrong_missing_and_exposed_passwords_are_clear_errors() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let p12 = pki.tmp.path().join("gw.p12");
    export(&pki, &gw, &p12, &[]);
    let p12_name = p12.display().to_string();

    let wrong = PasswordSource::File(password_file(&pki, "guess"));
    let text = load_error(&p12, Some(wrong));
    assert!(text.starts_with(&p12_name), "{text}");
    assert!(text.contains("wrong password"), "{text}");
    assert!(
        !text.contains("guess") && !text.contains(PASSWORD),
        "{text}"
    );

    // Right password, cipher guichet cannot read: said so, not "wrong password".
    let camellia = pki.tmp.path().join("camellia.p12");
    export(&pki, &gw, &camellia, &["-keypbe", "camellia-256-cbc"]);
    let source = PasswordSource::File(password_file(&pki, PASSWORD));
    let text = load_error(&camellia, Some(source));
    assert!(
        text.contains("uses a protection guichet cannot read"),
        "{text}"
    );

    let text = load_error(&p12, None);
    assert!(text.contains("password_file"), "{text}");
    assert!(text.contains(&p12_name), "{text}");

    let var = "GUICHET_TEST_P12_PASSWORD_UNSET";
    let text = load_error(&p12, Some(PasswordSource::Env(var.into())));
    assert!(text.contains(var) && text.contains("not set"), "{text}");

    let var = "GUICHET_TEST_P12_PASSWORD";
    std::env::set_var(var, PASSWORD);
    Material::load(&files(&p12, Some(PasswordSource::Env(var.into())))).unwrap();

    let good = password_file(&pki, PASSWORD);
    for mode in [0o644, 0o604, 0o660] {
        chmod(&good, mode);
        let err = Material::load(&files(&p12, Some(PasswordSource::File(good.clone()))));
        assert!(
            matches!(
                err,
                Err(MaterialError::Pkcs12(
                    Pkcs12Error::PasswordPermissions { .. }
                ))
            ),
            "{mode:o}: {err:?}"
        );
        let text = err.unwrap_err().to_string();
        assert!(
            text.contains(&format!("chmod 600 {}", good.display())),
            "{text}"
        );
    }
    chmod(&good, 0o640);
    for mode in [0o644, 0o660] {
        chmod(&p12, mode);
        let text = load_error(&p12, Some(PasswordSource::File(good.clone())));
        assert_eq!(
            text,
            format!("private key {p12_name} is accessible to other users (mode {mode:04o}); run `chmod 600 {p12_name}`")
        );
    }
}

#[test]
fn config_keys_of_a_pkcs12_profile_go_together() {
    let pki = Pki::new();
    const ROUTE_TEXT: &str =
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n";
    let parse = |profile: &str| {
        Config::parse(
            &pki.config_path(),
            &format!("[tls.gw]\n{profile}\n\n{ROUTE_TEXT}"),
        )
        .map_err(|e| e.to_string())
    };
    for (profile, expected) in [
        (
            "cert = \"gw.p12\"\nkey = \"gw.key\"\npassword_file = \"p\"",
            "[tls.gw] key: \"gw.p12\" is a PKCS#12 file, which holds the private key; remove `key`",
        ),
        (
            "cert = \"gw.PFX\"",
            "[tls.gw] cert: \"gw.PFX\" is a PKCS#12 file: give its password",
        ),
        (
            "cert = \"gw.p12\"\npassword_file = \"p\"\npassword_env = \"P\"",
            "give `password_file` or `password_env`, not both",
        ),
        (
            "cert = \"gw.pem\"\nkey = \"gw.key\"\npassword_env = \"P\"",
            "a password is only for a PKCS#12 `cert`",
        ),
        (
            "password_file = \"p\"",
            "a password without a PKCS#12 `cert`",
        ),
        ("cert = \"gw.pem\"", "`cert` and `key` go together"),
    ] {
        let err = parse(profile).unwrap_err();
        assert!(err.contains(expected), "{profile:?}: {err}");
    }
    parse("cert = \"gw.p12\"\npassword_env = \"P\"").unwrap();
    parse("cert = \"gw.crt\"\npassword_file = \"p\"").unwrap();

    let config = parse("cert = \"gw.p12\"\npassword_file = \"gw.pass\"").unwrap();
    let watched = config.watched_files();
    let dir = pki.config_path().parent().unwrap().to_path_buf();
    assert!(watched.contains(&dir.join("gw.p12")), "{watched:?}");
    assert!(watched.contains(&dir.join("gw.pass")), "{watched:?}");
}

fn finding(report: &Report, subject: &str, level: Level) -> Option<String> {
    report
        .findings
        .iter()
        .find(|f| f.subject == subject && f.level == level)
        .map(|f| f.message.clone())
}

#[test]
fn check_accepts_a_pkcs12_profile_and_flags_how_its_key_is_weakly_kept() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let p12 = pki.tmp.path().join("gw.p12");
    export(&pki, &gw, &p12, &[]);
    let var = "GUICHET_TEST_CHECK_P12_PASSWORD";
    std::env::set_var(var, PASSWORD);
    let text = format!(
        "{}[tls.gw]\ncert = {}\npassword_env = \"{var}\"\nca = {}\n\n{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:9\"\n",
        gateway_section("1s", "0s"),
        toml_path(&p12),
        toml_path(&pki.ca_cert()),
        app("eai", "eai"),
    );
    std::fs::write(pki.config_path(), text).unwrap();
    let report = check(&pki.config_path()).unwrap();
    assert!(!report.has_errors(), "{report}");
    let ok = finding(&report, "[tls.gw] cert", Level::Ok).unwrap_or_default();
    assert!(
        report.to_string().contains("PKCS#12: password accepted"),
        "{report}"
    );
    assert!(!ok.is_empty(), "{report}");
    let warning =
        finding(&report, "[tls.gw] password_env", Level::Warning).expect("password_env warning");
    assert!(
        warning.contains(var) && warning.contains("password_file"),
        "{warning}"
    );
    assert_eq!(
        finding(&report, "[tls.gw] cert", Level::Warning),
        None,
        "{report}"
    );

    // An empty password is accepted, and flagged.
    std::env::set_var(var, "");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        gw.cert.to_str().unwrap(),
        "-inkey",
        gw.key.to_str().unwrap(),
        "-passout",
        "pass:",
        "-out",
        p12.to_str().unwrap(),
    ]);
    let report = check(&pki.config_path()).unwrap();
    assert!(!report.has_errors(), "{report}");
    assert_eq!(
        finding(&report, "[tls.gw] cert", Level::Warning).as_deref(),
        Some("the PKCS#12 password is empty: the key in the file is as good as unencrypted; re-export it with a strong password"),
        "{report}"
    );

    std::env::set_var(var, PASSWORD);
    export(&pki, &gw, &p12, &["-legacy"]);
    let report = check(&pki.config_path()).unwrap();
    let warning = report
        .findings
        .iter()
        .find(|f| f.subject == "[tls.gw] cert" && f.level == Level::Warning)
        .map(|f| f.message.clone())
        .unwrap_or_default();
    assert!(
        warning.starts_with("PKCS#12 protected with legacy algorithms (key pbeWithSHA1And3-KeyTripleDES-CBC (3DES);"),
        "{report}"
    );
}

/// `openssl` in `dir`.
fn openssl_in(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl) is needed by the PKCS#12 tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NAME.key` and `NAME.pem` in `dir`, signed by `issuer` (or
/// self-signed), with the extensions `ext`.
fn openssl_cert(dir: &Path, name: &str, issuer: Option<&str>, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={name}");
    openssl_in(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    let mut args = vec![
        "x509", "-req", "-in", &csr, "-out", &pem, "-days", "30", "-extfile", &extfile,
    ];
    let (ca_pem, ca_key);
    match issuer {
        Some(issuer) => {
            ca_pem = format!("{issuer}.pem");
            ca_key = format!("{issuer}.key");
            args.extend(["-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial"]);
        }
        None => args.extend(["-key", &key]),
    }
    openssl_in(dir, &args);
}

#[tokio::test]
async fn intermediates_of_the_bag_follow_the_leaf_in_chain_order() {
    let pki = Pki::new();
    let dir = pki.tmp.path();
    let ca = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    openssl_cert(dir, "root", None, ca);
    openssl_cert(dir, "intermediate", Some("root"), ca);
    openssl_cert(
        dir,
        "gw",
        Some("intermediate"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:gw\n",
    );
    // The bag lists the root first and holds an unrelated CA: the chain
    // follows issuers, not file order.
    let mut bag = std::fs::read(dir.join("root.pem")).unwrap();
    bag.extend(std::fs::read(pki.ca_cert()).unwrap());
    bag.extend(std::fs::read(dir.join("intermediate.pem")).unwrap());
    std::fs::write(dir.join("bag.pem"), bag).unwrap();
    let pass = format!("pass:{PASSWORD}");
    openssl_in(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "gw.pem",
            "-inkey",
            "gw.key",
            "-certfile",
            "bag.pem",
            "-passout",
            &pass,
            "-out",
            "gw.p12",
        ],
    );
    let p12 = dir.join("gw.p12");
    chmod(&p12, 0o600);

    let der = |name: &str| cert_der(&dir.join(format!("{name}.pem")));
    let bytes = std::fs::read(&p12).unwrap();
    let bundle = decode(&p12, &bytes, &Password::new(PASSWORD)).unwrap();
    let ders = |certs: &[rustls::pki_types::CertificateDer<'_>]| {
        certs.iter().map(|c| c.to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(
        ders(&bundle.chain),
        [der("gw"), der("intermediate"), der("root")]
    );
    assert_eq!(ders(&bundle.others), [cert_der(&pki.ca_cert())]);
    assert_eq!(ders(&bundle.tls_chain()), [der("gw"), der("intermediate")]);

    // A client that trusts only the root completes the handshake: the
    // intermediate is sent.
    let eai = pki.issue("eai", Usage::ClientOnly);
    let password = password_file(&pki, PASSWORD);
    let backend = echo_backend().await;
    let text = route_config(&pki, &p12, &password, &backend, "0s");
    let gateway = Running::start(&pki.config_path(), &text).await;
    let client = client_tls(Some(&eai), &dir.join("root.pem"));
    let mut stream = tls(&client, gateway.addr(ROUTE), "gw").await.unwrap();
    let presented = stream.get_ref().1.peer_certificates().unwrap();
    assert_eq!(ders(presented), [der("gw"), der("intermediate")]);
    echo_once(&mut stream, b"via the intermediate\r").await;
}
