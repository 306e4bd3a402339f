//! A forward target that is down: the client's connection is closed
//! cleanly and promptly, and counted as such.

use std::time::{Duration, Instant};

use crate::common::*;
use guichet_pki::Usage;

const ROUTE: &str = "to-nowhere";

#[tokio::test]
async fn plain_client_reads_eof_when_the_target_is_down() {
    let pki = Pki::new();
    let down = closed_port().await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{down}\"\nconnect_timeout = \"2s\"\n",
            gateway_section("1s", "0s"),
        ),
    )
    .await;

    let started = Instant::now();
    let mut stream = tcp(gateway.addr(ROUTE)).await;
    expect_closed(&mut stream).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A client that already sent its request is closed as promptly (the
    // kernel may turn the close into a reset: its bytes were never read).
    let started = Instant::now();
    let mut eager = tcp(gateway.addr(ROUTE)).await;
    let _ = eager.try_write(b"MSH|lost\r");
    let _ = expect_closed(&mut eager).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    gateway
        .wait_connections(ROUTE, outcome::UPSTREAM_UNAVAILABLE, 2)
        .await;
    assert_eq!(gateway.connections(ROUTE, outcome::ERROR), 0);
    assert_eq!(gateway.all_refusals(), 0);
    gateway.wait_open(ROUTE, 0).await;
}

#[tokio::test]
async fn tls_client_reads_close_notify_when_the_target_is_down() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let eai = pki.issue("eai", Usage::ClientOnly);
    let down = closed_port().await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{down}\"\n",
            gateway_section("1s", "0s"),
            profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
        ),
    )
    .await;

    let started = Instant::now();
    let mut stream = tls(&pki.client(Some(&eai)), gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    // Ok(0): a close_notify, not a truncated stream.
    expect_closed(&mut stream).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    gateway
        .wait_connections(ROUTE, outcome::UPSTREAM_UNAVAILABLE, 1)
        .await;
    assert_eq!(gateway.all_refusals(), 0);
}
