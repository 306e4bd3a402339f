//! `max_connections`: over the limit a connection is closed at once and
//! counted, never queued; a slot freed is a slot available again.

use std::time::{Duration, Instant};

use crate::common::*;

const ROUTE: &str = "limited";

#[tokio::test]
async fn third_connection_over_a_limit_of_two_is_closed_at_once() {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nmax_connections = 2\n",
            gateway_section("1s", "0s"),
            backend.target(),
        ),
    )
    .await;
    let addr = gateway.addr(ROUTE);

    let mut one = tcp(addr).await;
    let mut two = tcp(addr).await;
    // An echo proves each one holds a slot in the gateway.
    echo_once(&mut one, b"one\r").await;
    echo_once(&mut two, b"two\r").await;
    gateway.wait_open(ROUTE, 2).await;

    let started = Instant::now();
    let mut three = tcp(addr).await;
    let _ = three.try_write(b"three\r");
    let _ = expect_closed(&mut three).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed only after {:?}",
        started.elapsed()
    );
    gateway
        .wait_refusals(ROUTE, LISTEN, "max_connections", 1)
        .await;
    gateway
        .wait_connections(ROUTE, outcome::REFUSED_LIMIT, 1)
        .await;
    assert_eq!(gateway.all_refusals(), 1);

    echo_once(&mut one, b"one still\r").await;
    echo_once(&mut two, b"two still\r").await;
    assert_eq!(backend.accepted(), 2, "the refused one reached the backend");

    drop(one);
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    // The gauge drops after the slot is released.
    gateway.wait_open(ROUTE, 1).await;
    let mut four = tcp(addr).await;
    echo_once(&mut four, b"four\r").await;
    echo_once(&mut two, b"two again\r").await;
    assert_eq!(gateway.refusals(ROUTE, LISTEN, "max_connections"), 1);
    assert_eq!(backend.accepted(), 3);
    assert_eq!(
        backend.received(),
        b"one\rtwo\rone still\rtwo still\rfour\rtwo again\r"
    );
}
