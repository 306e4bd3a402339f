//! Half-close: a client that sends its request and shuts down its write
//! side still receives the whole reply, which the backend only writes
//! after it has read the request to its end.

use crate::common::*;
use guichet_pki::Usage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUEST: &[u8] = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20240101||QRY^A19|9|P|2.5\rQRD|1\r";

/// Sends the request, shuts down the write side, reads to the end.
async fn exchange(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut stream = tcp(addr).await;
    bounded("write", stream.write_all(REQUEST)).await.unwrap();
    bounded("shutdown", stream.shutdown()).await.unwrap();
    let mut reply = Vec::new();
    bounded("reply", stream.read_to_end(&mut reply))
        .await
        .unwrap();
    reply
}

/// A gateway with one plain `tcp` route, `plain`, to `target`.
async fn plain_route(pki: &Pki, target: &str) -> Running {
    Running::start(
        &pki.config_path(),
        &format!(
            "{}[[route]]\nname = \"plain\"\nlisten = \"127.0.0.1:0\"\nforward = \"{target}\"\n",
            gateway_section("1s", "0s"),
        ),
    )
    .await
}

/// Two gateways joined by mutual TLS: the client side's `to-dpi` route
/// forwards to the server side's `from-eai`, which admits `eai` and
/// forwards to `target`.
async fn tls_pair(pki: &Pki, target: &str) -> (Running, Running) {
    let dpi = pki.issue("dpi", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let server = Running::start(
        &pki.tmp.path().join("server.toml"),
        &format!(
            "{}{}{}[[route]]\nname = \"from-eai\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"dpi\"\nallow = [\"eai\"]\nforward = \"{target}\"\n",
            gateway_section("1s", "0s"),
            profile("dpi", Some(&dpi), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
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
    (client, server)
}

#[tokio::test]
async fn reply_after_request_end_through_a_plain_route() {
    let pki = Pki::new();
    // Several TLS records' worth, so the tail cannot be lost unnoticed.
    let reply = payload(300_000);
    let backend = reply_after_eof_backend(reply.clone()).await;
    let gateway = plain_route(&pki, &backend.target()).await;

    let got = exchange(gateway.addr("plain")).await;
    assert_eq!(got.len(), reply.len());
    assert!(got == reply, "reply differs");
    assert_eq!(backend.received(), REQUEST);
    gateway.wait_connections("plain", outcome::CLOSED, 1).await;
    assert_eq!(gateway.bytes("plain", UPSTREAM), REQUEST.len() as u64);
    assert_eq!(gateway.bytes("plain", DOWNSTREAM), reply.len() as u64);
}

#[tokio::test]
async fn reply_after_request_end_through_a_tls_pair() {
    let pki = Pki::new();
    let reply = payload(300_000);
    let backend = reply_after_eof_backend(reply.clone()).await;
    let (client, server) = tls_pair(&pki, &backend.target()).await;

    let got = exchange(client.addr("to-dpi")).await;
    assert_eq!(got.len(), reply.len());
    assert!(got == reply, "reply differs");
    assert_eq!(backend.received(), REQUEST);
    client.wait_connections("to-dpi", outcome::CLOSED, 1).await;
    server
        .wait_connections("from-eai", outcome::CLOSED, 1)
        .await;
    assert_eq!(client.connections("to-dpi", outcome::ERROR), 0);
    assert_eq!(server.connections("from-eai", outcome::ERROR), 0);
}

#[tokio::test]
async fn reply_after_request_end_from_a_tls_client() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let reply = payload(100_000);
    let backend = reply_after_eof_backend(reply.clone()).await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}{}{}[[route]]\nname = \"from-eai\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\n",
            gateway_section("1s", "0s"),
            profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
            backend.target(),
        ),
    )
    .await;

    let mut stream = tls(&pki.client(Some(&eai)), gateway.addr("from-eai"), "gw")
        .await
        .unwrap();
    bounded("write", stream.write_all(REQUEST)).await.unwrap();
    // close_notify, then FIN: the TLS way to say "request complete".
    bounded("shutdown", stream.shutdown()).await.unwrap();
    let mut got = Vec::new();
    bounded("reply", stream.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(got == reply, "reply differs ({} bytes)", got.len());
    assert_eq!(backend.received(), REQUEST);
    gateway
        .wait_connections("from-eai", outcome::CLOSED, 1)
        .await;
}

/// Sends `data` while reading its echo, shuts down the write side once all
/// is sent, and reads the echo to its end: both directions carry many
/// TLS records at once, and the reply still flows after the request ends.
async fn echo_while_sending(addr: std::net::SocketAddr, data: &[u8]) -> Vec<u8> {
    let (mut read, mut write) = tcp(addr).await.into_split();
    let sent = data.to_vec();
    let sending = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    bounded("echo", read.read_to_end(&mut echoed))
        .await
        .unwrap();
    bounded("send", sending).await.unwrap();
    echoed
}

#[tokio::test]
async fn large_transfer_both_ways_then_half_close_through_a_plain_route() {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let gateway = plain_route(&pki, &backend.target()).await;

    let data = payload(4_000_000);
    let got = echo_while_sending(gateway.addr("plain"), &data).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echo differs");
    gateway.wait_connections("plain", outcome::CLOSED, 1).await;
    assert_eq!(gateway.bytes("plain", UPSTREAM), data.len() as u64);
    assert_eq!(gateway.bytes("plain", DOWNSTREAM), data.len() as u64);
}

#[tokio::test]
async fn large_transfer_both_ways_then_half_close_through_a_tls_pair() {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let (client, server) = tls_pair(&pki, &backend.target()).await;

    let data = payload(2_000_000);
    let got = echo_while_sending(client.addr("to-dpi"), &data).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echo differs");
    client.wait_connections("to-dpi", outcome::CLOSED, 1).await;
    server
        .wait_connections("from-eai", outcome::CLOSED, 1)
        .await;
    for (gw, route) in [(&client, "to-dpi"), (&server, "from-eai")] {
        assert_eq!(gw.bytes(route, UPSTREAM), data.len() as u64, "{route}");
        assert_eq!(gw.bytes(route, DOWNSTREAM), data.len() as u64, "{route}");
        assert_eq!(gw.connections(route, outcome::ERROR), 0, "{route}");
    }
}
