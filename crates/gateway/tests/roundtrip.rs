//! Bytes through the gateway and back: a client-mode route (plain in, TLS
//! out) chained to a server-mode route (mTLS in, plain out), and a route
//! with TLS on both sides.

use crate::common::*;
use guichet_pki::Usage;
use guichet_tls::{Allowlist, AppName, AppRule, ClientAuth};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn client_mode_route_chained_to_server_mode_route() {
    let pki = Pki::new();
    let dpi = pki.issue("dpi", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let backend = echo_backend().await;

    let server_config = pki.tmp.path().join("server.toml");
    let server = Running::start(
        &server_config,
        &format!(
            "{}{}{}[[route]]\nname = \"from-eai\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"dpi\"\nallow = [\"eai\"]\nforward = \"{}\"\n",
            gateway_section("1s", "0s"),
            profile("dpi", Some(&dpi), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
            backend.target(),
        ),
    )
    .await;
    let client = Running::start(
        &pki.config_path(),
        &format!(
            "{}{}[[route]]\nname = \"to-dpi\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nforward_tls = \"eai\"\nserver_name = \"dpi\"\n",
            gateway_section("1s", "0s"),
            profile("eai", Some(&eai), &pki.ca_cert(), Some(&pki.crl())),
            server.addr("from-eai"),
        ),
    )
    .await;

    let mut stream = tcp(client.addr("to-dpi")).await;
    let first = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240101||ADT^A01|1|P|2.5\r";
    echo_once(&mut stream, first).await;
    // Larger than one TLS record, so it crosses in several.
    let big = payload(200_000);
    echo_once(&mut stream, &big).await;
    stream.shutdown().await.unwrap();
    expect_closed(&mut stream).await.unwrap();

    let total = (first.len() + big.len()) as u64;
    client.wait_connections("to-dpi", outcome::CLOSED, 1).await;
    server
        .wait_connections("from-eai", outcome::CLOSED, 1)
        .await;
    assert_eq!(backend.received().len() as u64, total);
    assert_eq!(backend.accepted(), 1);
    for (gw, route) in [(&client, "to-dpi"), (&server, "from-eai")] {
        assert_eq!(gw.bytes(route, UPSTREAM), total, "{route} upstream");
        assert_eq!(gw.bytes(route, DOWNSTREAM), total, "{route} downstream");
        assert_eq!(gw.all_refusals(), 0, "{route}");
    }
    let side = |gw: &Running, route: &str, side: &str| {
        gw.value(
            "guichet_tls_handshake_seconds_count",
            &[("route", route), ("side", side)],
        )
    };
    assert_eq!(side(&client, "to-dpi", FORWARD), 1);
    assert_eq!(side(&server, "from-eai", LISTEN), 1);
    client.wait_open("to-dpi", 0).await;
    server.wait_open("from-eai", 0).await;
}

#[tokio::test]
async fn tls_in_tls_out_route() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::Both);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let far = pki.issue("far-end", Usage::ServerOnly);
    // The far end admits only the gateway's certificate.
    let mut rule = AppRule::named(AppName::new("the-gateway"));
    rule.cn = Some("gw".into());
    let far_tls = server_tls(
        &far,
        Some(&pki.ca_cert()),
        ClientAuth::Required(Allowlist::new(vec![Arc::new(rule)])),
    );
    let backend = tls_echo_backend(far_tls).await;

    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}{}{}{}[[route]]\nname = \"relay\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"front\"\nallow = [\"eai\"]\nforward = \"{}\"\nforward_tls = \"back\"\nserver_name = \"far-end\"\n",
            gateway_section("1s", "0s"),
            profile("front", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            profile("back", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
            backend.target(),
        ),
    )
    .await;

    let mut stream = tls(&pki.client(Some(&eai)), gateway.addr("relay"), "gw")
        .await
        .unwrap();
    assert_eq!(server_cert(&stream), cert_der(&gw.cert));
    let msg = b"MSH|^~\\&|LAB|CHU|EAI|CHU|20240101||ORU^R01|77|P|2.5\r";
    echo_once(&mut stream, msg).await;
    echo_once(&mut stream, &payload(50_000)).await;
    stream.shutdown().await.unwrap();
    expect_closed(&mut stream).await.unwrap();

    gateway.wait_connections("relay", outcome::CLOSED, 1).await;
    assert_eq!(backend.peers(), vec!["the-gateway".to_string()]);
    assert_eq!(backend.received().len(), msg.len() + 50_000);
    assert_eq!(
        gateway.bytes("relay", UPSTREAM),
        (msg.len() + 50_000) as u64
    );
    assert_eq!(gateway.all_refusals(), 0);
}
