//! Reloads: new certificates, CRLs and allowlists reach new connections,
//! open connections keep going, and a broken reload changes nothing.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use guichet_pki::{IssuedFiles, Usage};
use tokio_rustls::rustls::HandshakeKind;

const ROUTE: &str = "from-eai";

/// A server-mode route admitting `allow`, with the CRL, in front of an
/// echo backend.
fn config(
    pki: &Pki,
    gw: &IssuedFiles,
    apps: &str,
    allow: &str,
    backend: &Backend,
    watch: &str,
) -> String {
    format!(
        "{}{}{apps}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [{allow}]\nforward = \"{}\"\n",
        gateway_section("1s", watch),
        profile("gw", Some(gw), &pki.ca_cert(), Some(&pki.crl())),
        backend.target(),
    )
}

struct Setup {
    pki: Pki,
    gw: IssuedFiles,
    eai: IssuedFiles,
    backend: Backend,
    gateway: Running,
}

async fn setup(watch: &str) -> Setup {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let backend = echo_backend().await;
    let text = config(&pki, &gw, &app("eai", "eai"), "\"eai\"", &backend, watch);
    let gateway = Running::start(&pki.config_path(), &text).await;
    Setup {
        pki,
        gw,
        eai,
        backend,
        gateway,
    }
}

impl Setup {
    async fn connect(
        &self,
        cert: &IssuedFiles,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        tls(&self.pki.client(Some(cert)), self.gateway.addr(ROUTE), "gw")
            .await
            .unwrap()
    }

    fn rewrite_config(&self, apps: &str, allow: &str) {
        let text = config(&self.pki, &self.gw, apps, allow, &self.backend, "0s");
        std::fs::write(self.pki.config_path(), text).unwrap();
    }
}

#[tokio::test]
async fn open_connection_survives_a_certificate_swap() {
    let s = setup("0s").await;
    let old_cert = cert_der(&s.gw.cert);
    let mut old = s.connect(&s.eai).await;
    assert_eq!(server_cert(&old), old_cert);
    echo_once(&mut old, b"before reload\r").await;

    let renewed = s.pki.issue("gw", Usage::ServerOnly);
    let new_cert = cert_der(&renewed.cert);
    assert_ne!(new_cert, old_cert);
    s.gateway.reloader.reload("test").await.unwrap();
    assert_eq!(s.gateway.reloads(outcome::RELOAD_OK), 1);

    echo_once(&mut old, b"after reload, same connection\r").await;
    let mut new = s.connect(&s.eai).await;
    assert_eq!(server_cert(&new), new_cert);
    echo_once(&mut new, b"new connection\r").await;
    echo_once(&mut old, b"old one still here\r").await;
    assert_eq!(s.gateway.all_refusals(), 0);
}

#[tokio::test]
async fn broken_reload_keeps_the_previous_material() {
    let s = setup("0s").await;
    let good_cert = cert_der(&s.gw.cert);
    let pem = std::fs::read(&s.gw.cert).unwrap();

    std::fs::write(
        &s.gw.cert,
        b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = s.gateway.reloader.reload("test").await.unwrap_err();
    assert!(err.to_string().contains("gw.pem"), "{err}");
    assert_eq!(s.gateway.reloads(outcome::RELOAD_ERROR), 1);
    let mut stream = s.connect(&s.eai).await;
    assert_eq!(server_cert(&stream), good_cert);
    echo_once(&mut stream, b"still served\r").await;

    std::fs::write(&s.gw.cert, pem).unwrap();
    let text = std::fs::read_to_string(s.pki.config_path()).unwrap();
    std::fs::write(s.pki.config_path(), format!("{text}\n[[route]\n")).unwrap();
    let err = s.gateway.reloader.reload("test").await.unwrap_err();
    assert!(err.to_string().contains("guichet.toml"), "{err}");
    assert_eq!(s.gateway.reloads(outcome::RELOAD_ERROR), 2);
    assert_eq!(s.gateway.reloads(outcome::RELOAD_OK), 0);
    let mut again = s.connect(&s.eai).await;
    echo_once(&mut again, b"and still\r").await;
    echo_once(&mut stream, b"first one too\r").await;
    assert_eq!(s.gateway.all_refusals(), 0);
}

#[tokio::test]
async fn allowlist_reload_admits_a_new_application() {
    let s = setup("0s").await;
    let lab = s.pki.issue("lab", Usage::ClientOnly);
    expect_refused(&s.pki.client(Some(&lab)), s.gateway.addr(ROUTE), "gw").await;
    s.gateway
        .wait_refusals(ROUTE, LISTEN, "not_allowed", 1)
        .await;

    let apps = app("eai", "eai") + &app("lab", "lab");
    s.rewrite_config(&apps, "\"eai\", \"lab\"");
    s.gateway.reloader.reload("test").await.unwrap();

    let mut stream = s.connect(&lab).await;
    echo_once(&mut stream, b"lab admitted\r").await;
    assert_eq!(s.gateway.refusals(ROUTE, LISTEN, "not_allowed"), 1);
    assert_eq!(s.backend.received(), b"lab admitted\r");
}

#[tokio::test]
async fn allowlist_reload_removing_an_application_refuses_it() {
    let s = setup("0s").await;
    let client = s.pki.client(Some(&s.eai));
    let mut open = tls(&client, s.gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut open, b"admitted\r").await;

    let apps = app("eai", "eai") + &app("lab", "lab");
    s.rewrite_config(&apps, "\"lab\"");
    s.gateway.reloader.reload("test").await.unwrap();

    // Even with a session from before the reload to resume.
    expect_refused(&client, s.gateway.addr(ROUTE), "gw").await;
    s.gateway
        .wait_refusals(ROUTE, LISTEN, "not_allowed", 1)
        .await;
    assert_eq!(s.gateway.all_refusals(), 1);
    assert_eq!(s.backend.received(), b"admitted\r");
}

#[tokio::test]
async fn revocation_reload_refuses_the_revoked_client() {
    let s = setup("0s").await;
    // The same client end throughout: it holds a session it would resume.
    let client = s.pki.client(Some(&s.eai));
    let mut open = tls(&client, s.gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut open, b"before revocation\r").await;

    guichet_pki::revoke(&s.pki.ca, "eai").unwrap();
    s.gateway.reloader.reload("test").await.unwrap();

    expect_refused(&client, s.gateway.addr(ROUTE), "gw").await;
    s.gateway.wait_refusals(ROUTE, LISTEN, "revoked", 1).await;
    assert_eq!(s.gateway.all_refusals(), 1);
    // Revocation applies to handshakes: the open session is not cut.
    echo_once(&mut open, b"open session\r").await;
    assert_eq!(s.backend.accepted(), 1);
}

#[tokio::test]
async fn resumed_session_is_admitted() {
    let s = setup("0s").await;
    // One client end, so its second connection can resume the first.
    let client = s.pki.client(Some(&s.eai));
    let mut first = tls(&client, s.gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut first, b"full handshake\r").await;
    let mut second = tls(&client, s.gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut second, b"resumed\r").await;
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    assert_eq!(s.backend.accepted(), 2);
    assert_eq!(s.gateway.all_refusals(), 0);
}

/// Replaces `path` in one step, as a deployment tool would.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn changed_config_file_is_reloaded_by_the_watcher() {
    let s = setup("100ms").await;
    let lab = s.pki.issue("lab", Usage::ClientOnly);
    expect_refused(&s.pki.client(Some(&lab)), s.gateway.addr(ROUTE), "gw").await;
    s.gateway
        .wait_refusals(ROUTE, LISTEN, "not_allowed", 1)
        .await;

    let apps = app("eai", "eai") + &app("lab", "lab");
    let text = config(
        &s.pki,
        &s.gw,
        &apps,
        "\"eai\", \"lab\"",
        &s.backend,
        "100ms",
    );
    replace_file(&s.pki.config_path(), &text);
    s.gateway
        .wait_value(
            "guichet_reloads_total",
            &[("outcome", outcome::RELOAD_OK)],
            1,
        )
        .await;

    let mut stream = s.connect(&lab).await;
    echo_once(&mut stream, b"lab admitted by the watcher\r").await;
    // Nothing changed since: no second reload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.gateway.reloads(outcome::RELOAD_OK), 1);
    assert_eq!(s.gateway.reloads(outcome::RELOAD_ERROR), 0);
}
