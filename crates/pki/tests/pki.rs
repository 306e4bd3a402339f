//! The test PKI end to end, in temporary directories, checked with our own
//! parser and with the `openssl` command line as an outside peer.
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use guichet_pki::{
    init, issue, revoke, show, show_file, write_crl, CaOptions, IssueRequest, KeySource, KeyType,
    PkiError, Usage,
};
use guichet_testsupport::pki::openssl_rsa_key;
use guichet_testsupport::samples::hex;
use guichet_tls::identity::Identity;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::pem::Pem;

const DAY: i64 = 86_400;

fn new_ca() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    init(&dir, &CaOptions::default()).unwrap();
    (tmp, dir)
}

fn first_der(path: &Path) -> Vec<u8> {
    let pem = fs::read(path).unwrap();
    Pem::iter_from_buffer(&pem)
        .next()
        .unwrap()
        .unwrap()
        .contents
}

fn identity(path: &Path) -> Identity {
    Identity::from_der(&first_der(path)).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap()
}

fn openssl_verify(ca_dir: &Path, leaf: &Path, check_crl: bool) -> (bool, String) {
    let ca = ca_dir.join("ca.pem");
    let crl = ca_dir.join("ca.crl");
    let mut args = vec!["verify", "-x509_strict", "-CAfile", ca.to_str().unwrap()];
    if check_crl {
        args.extend(["-crl_check", "-CRLfile", crl.to_str().unwrap()]);
    }
    args.push(leaf.to_str().unwrap());
    let out = openssl(&args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The parts of `ca.crl` the tests compare: CRL number, revoked serials
/// (upper-case hex), authority key identifier, lifetime in seconds.
struct CrlView {
    number: String,
    serials: Vec<String>,
    authority_key_id: Vec<u8>,
    lifetime: i64,
}

fn read_crl(ca_dir: &Path) -> CrlView {
    let der = first_der(&ca_dir.join("ca.crl"));
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let authority_key_id = crl
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .map(|id| id.0.to_vec())
        .unwrap();
    CrlView {
        number: crl.crl_number().unwrap().to_string(),
        serials: crl
            .iter_revoked_certificates()
            .map(|r| hex(r.raw_serial()).to_uppercase())
            .collect(),
        authority_key_id,
        lifetime: crl.next_update().unwrap().timestamp() - crl.last_update().timestamp(),
    }
}

fn subject_key_id(cert: &Path) -> Vec<u8> {
    let der = first_der(cert);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let id = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .unwrap();
    id
}

#[test]
fn init_writes_a_ca_a_private_key_and_an_empty_crl() {
    let (_tmp, dir) = new_ca();
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    let ca = identity(&dir.join("ca.pem"));
    assert_eq!(ca.subject.to_string(), "CN=guichet test CA");
    assert!(ca.issuer.same_as(&ca.subject));
    assert!(ca.is_ca);
    assert_eq!(ca.key_algorithm, "ECDSA P-256");
    assert_eq!(ca.not_after - ca.not_before, 3650 * DAY);
    let crl = read_crl(&dir);
    assert_eq!(crl.number, "1");
    assert!(crl.serials.is_empty());
    assert_eq!(crl.authority_key_id, subject_key_id(&dir.join("ca.pem")));
}

#[test]
fn init_refuses_to_overwrite_a_ca_key() {
    let (_tmp, dir) = new_ca();
    let key_before = fs::read(dir.join("ca.key")).unwrap();
    let cert_before = fs::read(dir.join("ca.pem")).unwrap();
    let err = init(&dir, &CaOptions::default()).unwrap_err();
    assert!(
        matches!(&err, PkiError::CaKeyExists { path } if *path == dir.join("ca.key")),
        "{err}"
    );
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(dir.join("ca.key")).unwrap(), key_before);
    assert_eq!(fs::read(dir.join("ca.pem")).unwrap(), cert_before);
}

#[test]
fn issue_and_show_round_trip() {
    let (_tmp, dir) = new_ca();
    let mut req = IssueRequest::new("lab-01");
    req.dns = vec!["lab-01.chu.example".into(), "LAB-01".into()];
    req.ips = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    req.o = Some("CHU Nord".into());
    req.ou = Some("Laboratoire".into());
    let files = issue(&dir, &req).unwrap();
    assert_eq!(files.cert, dir.join("lab-01.pem"));
    assert_eq!(files.key, dir.join("lab-01.key"));
    assert_eq!(mode(&files.key), 0o600);

    let leaf = identity(&files.cert);
    assert_eq!(
        leaf.subject.to_string(),
        "O=CHU Nord, OU=Laboratoire, CN=lab-01"
    );
    assert_eq!(leaf.subject.common_name(), Some("lab-01"));
    assert_eq!(leaf.issuer.to_string(), "CN=guichet test CA");
    assert_eq!(leaf.san_dns, ["lab-01", "lab-01.chu.example"]);
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(leaf.san_ip, ips);
    assert_eq!(
        leaf.extended_key_usage.as_deref(),
        Some(&["serverAuth".to_string(), "clientAuth".to_string()][..])
    );
    assert!(!leaf.is_ca);
    assert_eq!(leaf.key_algorithm, "ECDSA P-256");
    assert_eq!(leaf.serial.len(), 32, "16-byte serial: {}", leaf.serial);
    assert_eq!(leaf.not_after - leaf.not_before, 825 * DAY);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - 120..=now).contains(&leaf.not_before),
        "not_before {}",
        leaf.not_before
    );

    let text = show(&fs::read(&files.cert).unwrap()).unwrap();
    for line in [
        "Subject:      O=CHU Nord, OU=Laboratoire, CN=lab-01".to_string(),
        "Issuer:       CN=guichet test CA".to_string(),
        format!("Serial:       {}", leaf.serial),
        "Key:          ECDSA P-256".to_string(),
        "CA:           no".to_string(),
        "DNS names:    lab-01, lab-01.chu.example".to_string(),
        "IP addresses: 127.0.0.1, ::1".to_string(),
        "Key usage:    serverAuth, clientAuth".to_string(),
        format!("SHA-256:      {}", leaf.fingerprint),
        format!("SPKI pin:     sha256//{}", leaf.spki),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("(824 days left)"), "{text}");
    assert_eq!(show_file(&files.cert).unwrap(), text);
}

#[test]
fn leaf_extensions_are_what_peers_expect() {
    let (_tmp, dir) = new_ca();
    let files = issue(&dir, &IssueRequest::new("gw")).unwrap();
    let der = first_der(&files.cert);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let constraints = cert.basic_constraints().unwrap().unwrap();
    assert!(constraints.critical && !constraints.value.ca);
    let usage = cert.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && !usage.key_encipherment() && !usage.key_cert_sign());
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .unwrap();
    assert_eq!(aki.0, subject_key_id(&dir.join("ca.pem")));
}

#[test]
fn usage_restricts_extended_key_usage() {
    let (_tmp, dir) = new_ca();
    for (name, usage, expected) in [
        ("client", Usage::ClientOnly, vec!["clientAuth"]),
        ("server", Usage::ServerOnly, vec!["serverAuth"]),
    ] {
        let mut req = IssueRequest::new(name);
        req.usage = usage;
        let files = issue(&dir, &req).unwrap();
        assert_eq!(
            identity(&files.cert).extended_key_usage,
            Some(expected.iter().map(|s| s.to_string()).collect())
        );
    }
}

#[test]
fn issue_refuses_bad_names_before_touching_files() {
    let (_tmp, dir) = new_ca();
    for name in ["../evil", ".hidden", "a b", "", "ca"] {
        let err = issue(&dir, &IssueRequest::new(name)).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidName { .. }),
            "{name:?}: {err}"
        );
    }
    let mut req = IssueRequest::new("ok");
    req.dns = vec!["bad host".into()];
    let err = issue(&dir, &req).unwrap_err();
    assert!(matches!(err, PkiError::InvalidDnsName { .. }), "{err}");
    assert!(!dir.join("ok.pem").exists() && !dir.join("ok.key").exists());
}

#[test]
fn issue_without_a_ca_says_to_run_init() {
    let tmp = tempfile::tempdir().unwrap();
    let err = issue(tmp.path(), &IssueRequest::new("x")).unwrap_err();
    assert!(matches!(err, PkiError::NoCa { .. }), "{err}");
    assert!(err.to_string().contains("guichet pki init"), "{err}");
}

#[test]
fn openssl_verifies_a_leaf_then_sees_it_revoked() {
    let (_tmp, dir) = new_ca();
    let kept = issue(&dir, &IssueRequest::new("kept")).unwrap();
    let gone = issue(&dir, &IssueRequest::new("gone")).unwrap();
    for leaf in [&kept.cert, &gone.cert] {
        let (ok, text) = openssl_verify(&dir, leaf, true);
        assert!(ok, "{text}");
    }

    revoke(&dir, "gone").unwrap();
    let (ok, text) = openssl_verify(&dir, &gone.cert, true);
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = openssl_verify(&dir, &kept.cert, true);
    assert!(ok, "{text}");
    let (ok, text) = openssl_verify(&dir, &gone.cert, false);
    assert!(ok, "without -crl_check the signature alone is fine: {text}");
}

#[test]
fn revoking_twice_is_idempotent_and_numbers_each_crl() {
    let (_tmp, dir) = new_ca();
    let files = issue(&dir, &IssueRequest::new("lab-01")).unwrap();
    let serial = identity(&files.cert).serial;

    let crl_path = revoke(&dir, "lab-01").unwrap();
    assert_eq!(crl_path, dir.join("ca.crl"));
    let first = read_crl(&dir);
    let state = fs::read_to_string(dir.join("revoked.txt")).unwrap();

    revoke(&dir, "lab-01").unwrap();
    let second = read_crl(&dir);
    assert_eq!(fs::read_to_string(dir.join("revoked.txt")).unwrap(), state);
    assert_eq!(first.serials, std::slice::from_ref(&serial));
    assert_eq!(second.serials, std::slice::from_ref(&serial));
    assert_eq!((first.number.as_str(), second.number.as_str()), ("2", "3"));
    assert_eq!(fs::read_to_string(dir.join("crlnumber")).unwrap(), "3\n");
    assert_eq!(second.lifetime, 30 * DAY);
    assert_eq!(second.authority_key_id, subject_key_id(&dir.join("ca.pem")));

    let fields: Vec<&str> = state.split_whitespace().collect();
    assert_eq!(state.lines().count(), 1, "{state}");
    assert_eq!((fields[0], fields[2]), (serial.as_str(), "lab-01"));
    let at: i64 = fields[1].parse().unwrap();
    assert!((OffsetDateTime::now_utc().unix_timestamp() - at).abs() < 60);

    write_crl(&dir).unwrap();
    let third = read_crl(&dir);
    assert_eq!((third.number.as_str(), third.serials.len()), ("4", 1));
}

#[test]
fn reissuing_a_revoked_name_gives_a_valid_new_certificate() {
    let (_tmp, dir) = new_ca();
    issue(&dir, &IssueRequest::new("lab-01")).unwrap();
    revoke(&dir, "lab-01").unwrap();
    let files = issue(&dir, &IssueRequest::new("lab-01")).unwrap();
    let (ok, text) = openssl_verify(&dir, &files.cert, true);
    assert!(ok, "{text}");
    revoke(&dir, "lab-01").unwrap();
    assert_eq!(read_crl(&dir).serials.len(), 2);
}

#[test]
fn an_existing_rsa_key_is_certified_in_place() {
    let (tmp, dir) = new_ca();
    let key = openssl_rsa_key(&tmp.path().join("k.pem"));
    let key_before = fs::read(&key).unwrap();

    let mut req = IssueRequest::new("legacy");
    req.key = KeySource::Existing(key.clone());
    let files = issue(&dir, &req).unwrap();
    assert_eq!(files.key, key);
    assert!(!dir.join("legacy.key").exists());
    assert_eq!(fs::read(&key).unwrap(), key_before);

    let text = show_file(&files.cert).unwrap();
    assert!(
        text.lines().any(|l| l == "Key:          RSA 2048"),
        "{text}"
    );
    let der = first_der(&files.cert);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let usage = cert.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment());
    let (ok, text) = openssl_verify(&dir, &files.cert, false);
    assert!(ok, "{text}");

    let modulus = |args: &[&str]| String::from_utf8(openssl(args).stdout).unwrap();
    assert_eq!(
        modulus(&[
            "x509",
            "-noout",
            "-modulus",
            "-in",
            files.cert.to_str().unwrap()
        ]),
        modulus(&["rsa", "-noout", "-modulus", "-in", key.to_str().unwrap()]),
    );
}

#[test]
fn a_key_that_is_not_pkcs8_is_refused_with_its_path() {
    let (tmp, dir) = new_ca();
    let key = tmp.path().join("junk.key");
    fs::write(&key, "not a key").unwrap();
    let mut req = IssueRequest::new("x");
    req.key = KeySource::Existing(key.clone());
    let err = issue(&dir, &req).unwrap_err();
    assert!(
        matches!(&err, PkiError::BadKey { path, .. } if *path == key),
        "{err}"
    );
}

#[test]
fn two_independent_cas_do_not_trust_each_other() {
    let (_tmp_a, ca_a) = new_ca();
    let (_tmp_b, ca_b) = new_ca();
    let leaf = issue(&ca_b, &IssueRequest::new("partner")).unwrap();
    assert!(openssl_verify(&ca_b, &leaf.cert, true).0);
    let (ok, text) = openssl_verify(&ca_a, &leaf.cert, false);
    assert!(!ok, "{text}");

    fs::copy(&leaf.cert, ca_a.join("partner.pem")).unwrap();
    let err = revoke(&ca_a, "partner").unwrap_err();
    assert!(matches!(err, PkiError::NotIssuedByCa { .. }), "{err}");
    assert!(!ca_a.join("revoked.txt").exists());
}

#[test]
fn validity_can_be_entirely_past_or_future() {
    let (_tmp, dir) = new_ca();
    // An extra hour keeps whole-day counts away from their boundaries.
    let now = OffsetDateTime::now_utc();

    let mut expired = IssueRequest::new("expired");
    expired.not_before = Some(now - Duration::days(10) - Duration::hours(1));
    expired.days = 2;
    let expired = issue(&dir, &expired).unwrap();
    let (ok, text) = openssl_verify(&dir, &expired.cert, false);
    assert!(!ok && text.contains("certificate has expired"), "{text}");
    let shown = show_file(&expired.cert).unwrap();
    assert!(shown.contains("(EXPIRED 8 days ago)"), "{shown}");

    let mut future = IssueRequest::new("future");
    future.not_before = Some(now + Duration::days(10) + Duration::hours(1));
    future.days = 2;
    let future = issue(&dir, &future).unwrap();
    let (ok, text) = openssl_verify(&dir, &future.cert, false);
    assert!(
        !ok && text.contains("certificate is not yet valid"),
        "{text}"
    );
    let shown = show_file(&future.cert).unwrap();
    assert!(
        shown.contains("(not yet valid, starts in 10 days)"),
        "{shown}"
    );
}

#[test]
fn p384_keys_for_the_ca_and_the_leaf() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = CaOptions {
        common_name: "P-384 CA".into(),
        organization: Some("CHU".into()),
        days: 30,
        key_type: KeyType::EcdsaP384,
    };
    let ca = init(tmp.path(), &opts).unwrap();
    assert_eq!(identity(&ca.cert).subject.to_string(), "O=CHU, CN=P-384 CA");
    let mut req = IssueRequest::new("strong");
    req.key = KeySource::Generate(KeyType::EcdsaP384);
    let files = issue(tmp.path(), &req).unwrap();
    assert_eq!(identity(&files.cert).key_algorithm, "ECDSA P-384");
    assert_eq!(identity(&ca.cert).key_algorithm, "ECDSA P-384");
    assert!(openssl_verify(tmp.path(), &files.cert, true).0);
}

#[test]
fn show_lists_every_certificate_of_a_chain() {
    let (_tmp, dir) = new_ca();
    let files = issue(&dir, &IssueRequest::new("leaf")).unwrap();
    let mut chain = fs::read(&files.cert).unwrap();
    chain.extend(fs::read(files.key).unwrap());
    chain.extend(fs::read(dir.join("ca.pem")).unwrap());
    let text = show(&chain).unwrap();
    assert!(
        text.starts_with("Certificate 1 of 2\nSubject:      CN=leaf\n"),
        "{text}"
    );
    assert!(
        text.contains("\nCertificate 2 of 2\nSubject:      CN=guichet test CA\n"),
        "{text}"
    );
    assert!(text.contains("CA:           yes"), "{text}");
    assert!(show(b"nothing here").is_err());
}
