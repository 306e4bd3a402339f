//! Shutdown: the listener stops at once, open connections get the drain
//! period to finish, and are cut when it ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::net::TcpStream;

const ROUTE: &str = "drained";

async fn start(drain: &str) -> (Pki, Running, Backend) {
    let pki = Pki::new();
    let backend = echo_backend().await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n",
            gateway_section(drain, "0s"),
            backend.target(),
        ),
    )
    .await;
    (pki, gateway, backend)
}

/// Polls until a new connection to `addr` is refused.
async fn wait_until_refused(addr: SocketAddr) {
    // Let the accept loop see the cancellation first: a probe that is
    // already queued when it does could be accepted (and then counted).
    tokio::time::sleep(Duration::from_millis(20)).await;
    bounded("listener to close", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn open_connection_works_during_drain_then_is_cut() {
    let (_pki, mut gateway, _backend) = start("700ms").await;
    let addr = gateway.addr(ROUTE);
    let mut open = tcp(addr).await;
    echo_once(&mut open, b"before shutdown\r").await;

    let cancelled = Instant::now();
    gateway.shutdown.cancel();
    let run = gateway.take_task();
    wait_until_refused(addr).await;
    echo_once(&mut open, b"during drain\r").await;
    assert!(!run.is_finished());

    // Cut at the end of the drain period; run() returns right after.
    let _ = expect_closed(&mut open).await;
    let cut_after = cancelled.elapsed();
    bounded("run() to return", run).await.unwrap();
    assert!(
        cut_after >= Duration::from_millis(650) && cut_after < Duration::from_secs(3),
        "cut after {cut_after:?}"
    );
    assert_eq!(gateway.connections(ROUTE, outcome::DRAINED), 1);
    assert_eq!(gateway.connections(ROUTE, outcome::CLOSED), 0);
    assert_eq!(
        gateway.value("guichet_connections_open", &[("route", ROUTE)]),
        0
    );
}

#[tokio::test]
async fn run_returns_as_soon_as_the_last_connection_ends() {
    let (_pki, mut gateway, _backend) = start("30s").await;
    let addr = gateway.addr(ROUTE);
    let mut open = tcp(addr).await;
    echo_once(&mut open, b"before shutdown\r").await;

    gateway.shutdown.cancel();
    let run = gateway.take_task();
    wait_until_refused(addr).await;
    echo_once(&mut open, b"during drain\r").await;
    let closed = Instant::now();
    drop(open);
    bounded("run() to return", run).await.unwrap();
    assert!(
        closed.elapsed() < Duration::from_secs(2),
        "{:?}",
        closed.elapsed()
    );
    assert_eq!(gateway.connections(ROUTE, outcome::CLOSED), 1);
    assert_eq!(gateway.connections(ROUTE, outcome::DRAINED), 0);
}
