//! `idle_timeout`: a connection with no byte in either direction for that
//! long is closed; one with regular traffic is not.

use std::time::{Duration, Instant};

use crate::common::*;

const ROUTE: &str = "idle";

#[tokio::test]
async fn idle_connection_is_closed_and_busy_one_is_not() {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nidle_timeout = \"300ms\"\n",
            gateway_section("1s", "0s"),
            backend.target(),
        ),
    )
    .await;

    let mut idle = tcp(gateway.addr(ROUTE)).await;
    let mut busy = tcp(gateway.addr(ROUTE)).await;
    echo_once(&mut idle, b"then silence\r").await;
    let last_byte = Instant::now();

    // Traffic every 100 ms for 900 ms: three idle periods' worth.
    let busy_side = async {
        for i in 0..9 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            echo_once(&mut busy, format!("tick {i}\r").as_bytes()).await;
        }
    };
    let idle_side = async {
        expect_closed(&mut idle).await.unwrap();
        last_byte.elapsed()
    };
    let ((), closed_after) = tokio::join!(busy_side, idle_side);
    assert!(
        closed_after >= Duration::from_millis(280) && closed_after < Duration::from_millis(900),
        "idle connection closed after {closed_after:?}"
    );
    gateway
        .wait_connections(ROUTE, outcome::IDLE_TIMEOUT, 1)
        .await;

    echo_once(&mut busy, b"still open\r").await;
    drop(busy);
    gateway.wait_connections(ROUTE, outcome::CLOSED, 1).await;
    assert_eq!(gateway.connections(ROUTE, outcome::IDLE_TIMEOUT), 1);
}
