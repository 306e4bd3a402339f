//! Key types other than the default ECDSA P-256: an RSA-2048 key brought
//! from `openssl genpkey`, and generated ECDSA P-384 keys, on either side,
//! over TLS 1.3 and TLS 1.2.

use std::sync::Arc;

use crate::common::*;
use guichet_pki::{IssueRequest, IssuedFiles, KeySource, KeyType, Usage};
use guichet_testsupport::pki::openssl_rsa_key;
use guichet_tls::identity::Identity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tokio_rustls::TlsConnector;

const ROUTE: &str = "from-eai";

fn issue(pki: &Pki, name: &str, usage: Usage, key: KeySource) -> IssuedFiles {
    pki.issue_with(&IssueRequest {
        usage,
        key,
        ..IssueRequest::new(name)
    })
}

async fn listener(pki: &Pki, gw: &IssuedFiles, backend: &Backend) -> Running {
    Running::start(
        &pki.config_path(),
        &format!(
            "{}{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\n",
            gateway_section("1s", "0s"),
            profile("gw", Some(gw), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
            backend.target(),
        ),
    )
    .await
}

/// A client limited to TLS 1.2, with the same suites as guichet.
fn tls12_client(pki: &Pki, cert: &IssuedFiles) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca_cert()).unwrap())
        .unwrap();
    let chain = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let config = ClientConfig::builder_with_provider(guichet_tls::policy::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    TlsConnector::from(Arc::new(config))
}

async fn tls12(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let name = ServerName::try_from("gw").unwrap();
    bounded(
        "TLS 1.2 handshake",
        connector.connect(name, tcp(addr).await),
    )
    .await
    .unwrap()
}

fn suite(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let conn = stream.get_ref().1;
    format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite())
}

fn key_algorithm(der: &[u8]) -> String {
    Identity::from_der(der).unwrap().key_algorithm
}

#[tokio::test]
async fn rsa_2048_server_certificate_over_tls13_and_tls12() {
    let pki = Pki::new();
    let gw = issue(
        &pki,
        "gw",
        Usage::ServerOnly,
        KeySource::Existing(openssl_rsa_key(&pki.tmp.path().join("gw-rsa.key"))),
    );
    let eai = issue(
        &pki,
        "eai",
        Usage::ClientOnly,
        KeySource::Generate(KeyType::EcdsaP384),
    );
    let backend = echo_backend().await;
    let gateway = listener(&pki, &gw, &backend).await;

    let mut v13 = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    assert_eq!(key_algorithm(&server_cert(&v13)), "RSA 2048");
    assert_eq!(
        v13.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    echo_once(&mut v13, b"over TLS 1.3\r").await;

    let mut v12 = tls12(&tls12_client(&pki, &eai), gateway.addr(ROUTE)).await;
    assert_eq!(
        v12.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(suite(&v12), "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
    echo_once(&mut v12, b"over TLS 1.2\r").await;

    assert_eq!(backend.received(), b"over TLS 1.3\rover TLS 1.2\r");
    assert_eq!(gateway.all_refusals(), 0);
}

#[tokio::test]
async fn rsa_2048_client_certificate_is_admitted() {
    let pki = Pki::new();
    let gw = issue(
        &pki,
        "gw",
        Usage::ServerOnly,
        KeySource::Generate(KeyType::EcdsaP384),
    );
    let eai = issue(
        &pki,
        "eai",
        Usage::ClientOnly,
        KeySource::Existing(openssl_rsa_key(&pki.tmp.path().join("eai-rsa.key"))),
    );
    let backend = echo_backend().await;
    let gateway = listener(&pki, &gw, &backend).await;

    let mut v13 = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    echo_once(&mut v13, b"RSA client, TLS 1.3\r").await;
    let mut v12 = tls12(&tls12_client(&pki, &eai), gateway.addr(ROUTE)).await;
    echo_once(&mut v12, b"RSA client, TLS 1.2\r").await;
    assert_eq!(backend.accepted(), 2);
    assert_eq!(gateway.all_refusals(), 0);
}

#[tokio::test]
async fn ecdsa_p384_certificates_on_both_sides() {
    let pki = Pki::new();
    let gw = issue(
        &pki,
        "gw",
        Usage::ServerOnly,
        KeySource::Generate(KeyType::EcdsaP384),
    );
    let eai = issue(
        &pki,
        "eai",
        Usage::ClientOnly,
        KeySource::Generate(KeyType::EcdsaP384),
    );
    assert_eq!(key_algorithm(&cert_der(&eai.cert)), "ECDSA P-384");
    let backend = echo_backend().await;
    let gateway = listener(&pki, &gw, &backend).await;

    let mut v13 = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    assert_eq!(key_algorithm(&server_cert(&v13)), "ECDSA P-384");
    echo_once(&mut v13, b"P-384, TLS 1.3\r").await;

    let mut v12 = tls12(&tls12_client(&pki, &eai), gateway.addr(ROUTE)).await;
    assert_eq!(suite(&v12), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    echo_once(&mut v12, b"P-384, TLS 1.2\r").await;
    assert_eq!(gateway.all_refusals(), 0);
}
