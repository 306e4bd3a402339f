//! Connection slots taken without authenticating.
//!
//! The finding: 260 TCP connections that never send a ClientHello filled
//! an mTLS listener's 256 slots for `handshake_timeout`, and the real EAI
//! was refused; on a plain mllp route, connections trickling a frame held
//! every slot. With the default budgets (`max_handshakes`,
//! `max_connections_per_source`) a certified partner connecting from
//! another address gets through at once while the flood holds on, and
//! every refusal is counted with its reason. The reproductions set the
//! budgets as high as `max_connections`, which is the old behaviour, and
//! show the partner refused: the tests can fail.
//!
//! The flood comes from 127.0.0.1 (and other 127.0.0.x addresses where a
//! test needs several sources); the partner binds 127.0.0.2, or the
//! per-source limit would count it with the flood.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::common::*;
use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use guichet_testsupport::samples::Hl7;
use guichet_tls::ClientTls;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

const ROUTE: &str = "from-eai";

/// How long the partner may take to be served, flood or not: far below
/// `handshake_timeout` (10 s), which is what a queued partner would wait.
const AT_ONCE: Duration = Duration::from_secs(2);

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to `addr` from `source` (any port).
async fn tcp_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    bounded("TCP connect", socket.connect(addr)).await.unwrap()
}

/// `n` connections from `source` that send nothing and stay open.
async fn silent(source: IpAddr, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(tcp_from(source, addr).await);
    }
    held
}

fn adt(id: &str) -> Vec<u8> {
    Hl7::adt(id).bytes()
}

/// Sends one ADT and checks its AA comes back.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, id: &str) {
    send_frames(stream, &[&adt(id)]).await;
    let ack = FrameReader::default().frame(stream).await;
    let ack = String::from_utf8_lossy(&ack);
    assert!(ack.contains(&format!("\rMSA|AA|{id}")), "{ack:?}");
}

/// An mTLS mllp route admitting "eai", with `budgets` (extra route keys).
struct Mtls {
    pki: Pki,
    gateway: Running,
    eai: IssuedFiles,
}

impl Mtls {
    async fn start(budgets: &str) -> Mtls {
        let pki = Pki::new();
        let gw = pki.issue("gw", Usage::ServerOnly);
        let eai = pki.issue_with(&IssueRequest {
            usage: Usage::ClientOnly,
            ..IssueRequest::new("eai")
        });
        let backend = MllpBackend::start(AckPlan::accept()).await;
        let gateway = Running::start(
            &pki.config_path(),
            &format!(
                "{}{}{}[[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\nmax_connections = 256\n{budgets}\n",
                gateway_section("1s", "0s"),
                profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
                app("eai", "eai"),
                backend.target(),
            ),
        )
        .await;
        Mtls { pki, gateway, eai }
    }

    fn addr(&self) -> SocketAddr {
        self.gateway.addr(ROUTE)
    }

    fn client(&self) -> ClientTls {
        self.pki.client(Some(&self.eai))
    }

    /// The partner's handshake from 127.0.0.2.
    async fn partner(
        &self,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, guichet_tls::Refusal> {
        let tcp = tcp_from(loopback(2), self.addr()).await;
        let name = guichet_tls::ServerName::try_from("gw").unwrap();
        self.client().connect(name, tcp, WAIT).await
    }

    /// Waits for `guichet_handshakes_in_progress` to read `n`.
    async fn wait_handshakes(&self, n: u64) {
        self.gateway
            .wait_value("guichet_handshakes_in_progress", &[("route", ROUTE)], n)
            .await;
    }

    fn refusals(&self, reason: &str) -> u64 {
        self.gateway.refusals(ROUTE, LISTEN, reason)
    }
}

#[tokio::test]
async fn f4_silent_connections_cannot_keep_a_certified_partner_out() {
    let site = Mtls::start("").await;
    // 300 connections that never send a ClientHello, from one address:
    // the first 32 (max_connections_per_source) are held in their
    // handshake, the rest closed at once.
    let _flood = silent(loopback(1), site.addr(), 300).await;
    site.gateway
        .wait_refusals(ROUTE, LISTEN, "per_source_limit", 268)
        .await;
    site.gateway.wait_open(ROUTE, 32).await;
    site.wait_handshakes(32).await;

    let started = Instant::now();
    let mut partner = site.partner().await.expect("the partner is admitted");
    exchange(&mut partner, "F4-1").await;
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());

    // More silent sources fill max_handshakes (64); each connection over
    // it closes the oldest handshake in progress, never a slot of an
    // authenticated connection.
    let _more = silent(loopback(3), site.addr(), 32).await;
    site.gateway.wait_open(ROUTE, 1 + 64).await;
    let _over = silent(loopback(4), site.addr(), 10).await;
    site.gateway
        .wait_refusals(ROUTE, LISTEN, "handshake_budget", 10)
        .await;
    site.gateway.wait_open(ROUTE, 1 + 64).await;
    site.wait_handshakes(64).await;
    // The admitted partner's connection counts against no handshake, and
    // a new one still gets in.
    exchange(&mut partner, "F4-2").await;
    let mut again = site.partner().await.expect("a new partner connection");
    exchange(&mut again, "F4-3").await;
    site.gateway
        .wait_refusals(ROUTE, LISTEN, "handshake_budget", 11)
        .await;

    assert_eq!(site.refusals("per_source_limit"), 268);
    assert_eq!(site.refusals("max_connections"), 0);
    assert_eq!(
        site.gateway.all_refusals(),
        268 + 11,
        "{}",
        site.gateway.metrics.render()
    );
    site.gateway
        .wait_connections(ROUTE, outcome::REFUSED_LIMIT, 268 + 11)
        .await;
    assert_eq!(site.gateway.messages(ROUTE, "AA"), 3);
}

/// 300 silent connections from ten addresses, each under the per-source
/// limit: the handshakes in progress never exceed max_handshakes (the
/// oldest make room), so the slots stay free and the partner gets in.
#[tokio::test]
async fn f4_silent_connections_from_many_addresses_cannot_keep_a_partner_out() {
    let site = Mtls::start("").await;
    let mut flood = Vec::new();
    for last in 10..20 {
        flood.push(silent(loopback(last), site.addr(), 30).await);
    }
    site.gateway
        .wait_refusals(ROUTE, LISTEN, "handshake_budget", 300 - 64)
        .await;
    site.gateway.wait_open(ROUTE, 64).await;
    site.wait_handshakes(64).await;

    let started = Instant::now();
    let mut partner = site.partner().await.expect("the partner is admitted");
    exchange(&mut partner, "F4-5").await;
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert_eq!(site.refusals("per_source_limit"), 0);
    assert_eq!(site.refusals("max_connections"), 0);
}

/// The finding as reported, with the budgets as large as the route (the
/// behaviour before them): 260 silent connections take the 256 slots and
/// the partner is refused. Proves the test above can fail.
#[tokio::test]
async fn f4_reproduction_without_budgets_silent_connections_take_every_slot() {
    let site = Mtls::start("max_handshakes = 256\nmax_connections_per_source = 256").await;
    let _flood = silent(loopback(1), site.addr(), 260).await;
    site.gateway
        .wait_refusals(ROUTE, LISTEN, "max_connections", 4)
        .await;
    let refused = site.partner().await;
    // TLS 1.3 or not, no byte of the handshake is answered.
    assert!(refused.is_err(), "the partner got in");
    site.gateway
        .wait_refusals(ROUTE, LISTEN, "max_connections", 5)
        .await;
}

/// A plain mllp route of 64 slots with `budgets` (extra route keys).
async fn plain_route(pki: &Pki, budgets: &str) -> Running {
    let backend = MllpBackend::start(AckPlan::accept()).await;
    Running::start(
        &pki.config_path(),
        &format!(
            "{}[[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nmax_connections = 64\n{budgets}\n",
            gateway_section("1s", "0s"),
            backend.target(),
        ),
    )
    .await
}

/// `n` connections from `source` that start a frame and then send one
/// more byte every 200 ms, never finishing it, until the test ends.
async fn tricklers(source: IpAddr, addr: SocketAddr, n: usize) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let mut tcp = tcp_from(source, addr).await;
        set.spawn(async move {
            if tcp.write_all(b"\x0bMSH|^~\\&|").await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if tcp.write_all(b"X").await.is_err() {
                    return;
                }
            }
        });
    }
    set
}

#[tokio::test]
async fn f4_tricklers_cannot_fill_a_plain_mllp_route() {
    let pki = Pki::new();
    let gateway = plain_route(&pki, "").await;
    let addr = gateway.addr(ROUTE);
    // max_connections_per_source defaults to 32 here: 38 of 70 closed.
    let _trickling = tricklers(loopback(1), addr, 70).await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "per_source_limit", 38)
        .await;
    gateway.wait_open(ROUTE, 32).await;

    let started = Instant::now();
    let mut partner = tcp_from(loopback(2), addr).await;
    exchange(&mut partner, "F4-3").await;
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert_eq!(gateway.all_refusals(), 38, "{}", gateway.metrics.render());
    // Plain routes have no handshake to budget.
    assert_eq!(gateway.refusals(ROUTE, LISTEN, "handshake_budget"), 0);
}

/// Without a per-source limit, 64 tricklers take every slot and the
/// partner is closed at accept: the reproduction of the plain-route half.
#[tokio::test]
async fn f4_reproduction_without_a_per_source_limit_tricklers_take_every_slot() {
    let pki = Pki::new();
    let gateway = plain_route(&pki, "max_connections_per_source = 64").await;
    let addr = gateway.addr(ROUTE);
    let _trickling = tricklers(loopback(1), addr, 70).await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "max_connections", 6)
        .await;
    let mut partner = tcp_from(loopback(2), addr).await;
    let _ = partner.write_all(&frame_of(&adt("F4-4"))).await;
    let _ = expect_closed(&mut partner).await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "max_connections", 7)
        .await;
    assert_eq!(gateway.messages(ROUTE, "AA"), 0);
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    guichet_hl7::frame(payload)
}

/// What `guichet check` says of a config's budgets.
fn check_report(pki: &Pki, text: &str) -> String {
    std::fs::write(pki.config_path(), text).unwrap();
    let report = guichet_gateway::check::check(&pki.config_path()).unwrap();
    report.to_string()
}

#[test]
fn f4_check_shows_the_budgets_and_warns_where_one_source_or_silent_peers_take_every_slot() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let tls_route = |extra: &str| {
        format!(
            "{}{}[[route]]\nname = \"r\"\nlisten = \"0.0.0.0:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:9\"\n{extra}\n",
            profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
        )
    };

    let report = check_report(&pki, &tls_route(""));
    assert!(
        report.contains("ok      route \"r\": budgets: 512 connection(s), 64 per source address, 128 in TLS handshake"),
        "{report}"
    );
    assert!(!report.contains("max_handshakes ="), "{report}");
    assert!(!report.contains("max_connections_per_source ="), "{report}");

    let report = check_report(
        &pki,
        &tls_route("max_connections = 100\nmax_handshakes = 100\nmax_connections_per_source = 100\nhandshake_timeout = \"2m\""),
    );
    for expected in [
        "WARNING route \"r\": max_handshakes = 100: connections that never finish their TLS handshake can take every slot",
        "WARNING route \"r\": max_connections_per_source = 100: one address can take every slot",
        "WARNING route \"r\": handshake_timeout = 120s: a connection that sends nothing holds a handshake slot that long",
    ] {
        assert!(report.contains(expected), "missing {expected:?}:\n{report}");
    }
}
