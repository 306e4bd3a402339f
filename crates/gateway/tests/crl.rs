//! Revocation that fails closed and stays fresh: expired and future-dated
//! CRLs, profiles without a revocation source, and CRLs fetched over HTTP
//! from a server on 127.0.0.1 (refreshed, kept when the server is gone,
//! refused when another CA signed them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use guichet_gateway::check::{check, Level};
use guichet_gateway::{Config, Gateway, Metrics};
use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ROUTE: &str = "from-partners";
const DAY: i64 = 86_400;

/// Longest wait for a CRL refresh to reach the handshakes (refresh 1s).
const REFRESH_WAIT: Duration = Duration::from_secs(15);

/// A server-mode route admitting "eai" and "lab", whose profile "gw" is
/// `profile` (our certificate, the CA, then `extra` lines).
async fn start(pki: &Pki, crl: Option<&Path>, extra: &str) -> (Running, Backend) {
    let gw = pki.issue("gw", Usage::ServerOnly);
    let backend = echo_backend().await;
    let text = format!(
        "{}{}\n{extra}\n{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\", \"lab\"]\nforward = \"{}\"\n",
        gateway_section("1s", "0s"),
        profile("gw", Some(&gw), &pki.ca_cert(), crl).trim_end(),
        app("eai", "eai"),
        app("lab", "lab"),
        backend.target(),
    );
    (Running::start(&pki.config_path(), &text).await, backend)
}

fn client(pki: &Pki, name: &str) -> IssuedFiles {
    pki.issue(name, Usage::ClientOnly)
}

/// Whether `cert` gets one message echoed through the route.
async fn admitted(pki: &Pki, gateway: &Running, cert: &IssuedFiles) -> bool {
    let Ok(mut stream) = tls(&pki.client(Some(cert)), gateway.addr(ROUTE), "gw").await else {
        return false;
    };
    if stream.write_all(b"MSH|crl\r").await.is_err() {
        return false;
    }
    let mut back = [0u8; 8];
    matches!(
        tokio::time::timeout(WAIT, stream.read_exact(&mut back)).await,
        Ok(Ok(_))
    )
}

/// The value of `guichet_crl_next_update_seconds` for the profile "gw"
/// (a gauge that goes negative, which `metric_value` cannot read).
fn next_update_seconds(gateway: &Running) -> Option<i64> {
    gateway
        .metrics
        .render()
        .lines()
        .find(|l| l.starts_with("guichet_crl_next_update_seconds{") && l.contains("profile=\"gw\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_next_update(gateway: &Running) -> i64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = next_update_seconds(gateway) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no guichet_crl_next_update_seconds:\n{}",
            gateway.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn days_from_now(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(days)
}

// -------------------------------------------------------------- expired CRL

#[tokio::test]
async fn f3a_a_crl_past_its_next_update_refuses_peers_and_the_gauge_goes_negative() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    guichet_pki::write_crl_dated(&pki.ca, days_from_now(-40), days_from_now(-10)).unwrap();
    let (gateway, backend) = start(&pki, Some(&pki.crl()), "").await;

    assert!(!admitted(&pki, &gateway, &eai).await);
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    assert_eq!(backend.accepted(), 0);
    assert_eq!(
        gateway.value("guichet_crl_stale_admissions_total", &[("profile", "gw")]),
        0
    );
    let left = wait_next_update(&gateway).await;
    assert!(
        (-11 * DAY..-9 * DAY).contains(&left),
        "nextUpdate was 10 days ago, the gauge says {left}s"
    );
}

#[tokio::test]
async fn f3a_crl_expired_warn_keeps_the_stale_crl_in_force() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let lab = client(&pki, "lab");
    guichet_pki::revoke(&pki.ca, "lab").unwrap();
    guichet_pki::write_crl_dated(&pki.ca, days_from_now(-40), days_from_now(-10)).unwrap();
    let (gateway, _backend) = start(&pki, Some(&pki.crl()), "crl_expired = \"warn\"\n").await;

    assert!(admitted(&pki, &gateway, &eai).await, "warn admits");
    let stale = [("profile", "gw")];
    gateway
        .wait_value("guichet_crl_stale_admissions_total", &stale, 1)
        .await;
    // What the stale CRL lists is still refused.
    assert!(!admitted(&pki, &gateway, &lab).await);
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 1).await;
    assert!(wait_next_update(&gateway).await < -9 * DAY);
}

// ----------------------------------------------------- no revocation source

#[tokio::test]
async fn f3b_a_profile_without_revocation_source_refuses_peers() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let (gateway, backend) = start(&pki, None, "").await;

    assert!(!admitted(&pki, &gateway, &eai).await);
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    assert_eq!(backend.accepted(), 0);
}

#[tokio::test]
async fn f3b_crl_unknown_allow_is_the_explicit_opt_out() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let (gateway, _backend) = start(&pki, None, "crl_unknown = \"allow\"\n").await;

    assert!(admitted(&pki, &gateway, &eai).await);
    assert_eq!(gateway.all_refusals(), 0);
}

#[test]
fn f3b_check_warns_about_every_weak_revocation_setting() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    let profiles = [
        ("none", ""),
        ("allow", "crl_unknown = \"allow\"\n"),
        (
            "stale",
            &format!(
                "crl = [{}]\ncrl_expired = \"warn\"\n",
                toml_path(&pki.crl())
            ),
        ),
        (
            "slow",
            "crl_urls = [\"http://127.0.0.1:9/ca.crl\"]\ncrl_refresh = \"3d\"\n",
        ),
    ];
    let mut text = gateway_section("1s", "0s") + &app("eai", "eai");
    for (i, (name, extra)) in profiles.iter().enumerate() {
        text += &profile(name, Some(&gw), &pki.ca_cert(), None);
        text += extra;
        text += &format!(
            "\n[[route]]\nname = \"r-{name}\"\nlisten = \"127.0.0.1:{}\"\nlisten_tls = \"{name}\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:9\"\n\n",
            41000 + i
        );
    }
    let path = pki.config_path();
    std::fs::write(&path, text).unwrap();
    let report = check(&path).unwrap();
    let warning = |subject: &str, words: &str| {
        assert!(
            report.findings.iter().any(|f| f.level == Level::Warning
                && f.subject == subject
                && f.message.contains(words)),
            "no warning on {subject} containing {words:?}:\n{report}"
        );
    };
    warning("[tls.none]", "no revocation source");
    warning("[tls.none]", "every peer is refused (revocation_unknown)");
    warning(
        "[tls.allow] crl_unknown",
        "a revoked certificate is admitted",
    );
    warning("[tls.stale] crl_expired", "stays in force");
    warning("[tls.slow] crl_refresh", "longer than a day");
    assert!(!report.has_errors(), "{report}");
}

// -------------------------------------------------- CRL dated in the future

#[tokio::test]
async fn f3c_a_crl_dated_in_the_future_is_refused_at_load() {
    let pki = Pki::new();
    let gw = pki.issue("gw", Usage::ServerOnly);
    guichet_pki::write_crl_dated(&pki.ca, days_from_now(1), days_from_now(31)).unwrap();
    let text = format!(
        "{}{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:9\"\n",
        gateway_section("1s", "0s"),
        profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
        app("eai", "eai"),
    );
    std::fs::write(pki.config_path(), text).unwrap();
    let config = Config::load(&pki.config_path()).unwrap();
    let Err(e) = Gateway::bind(config, Metrics::default()).await else {
        panic!("a CRL dated tomorrow was accepted");
    };
    let e = e.to_string();
    assert!(e.contains(&pki.crl().display().to_string()), "{e}");
    assert!(e.contains("in the future"), "{e}");
}

#[tokio::test]
async fn f3c_a_reload_with_a_future_dated_crl_keeps_the_previous_one() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let (gateway, _backend) = start(&pki, Some(&pki.crl()), "").await;
    assert!(admitted(&pki, &gateway, &eai).await);

    guichet_pki::write_crl_dated(&pki.ca, days_from_now(1), days_from_now(31)).unwrap();
    let e = gateway
        .reloader
        .reload("test")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("in the future"), "{e}");
    assert!(admitted(&pki, &gateway, &eai).await, "previous CRL kept");
    assert_eq!(gateway.reloads(outcome::RELOAD_ERROR), 1);
}

// ------------------------------------------------- fetched CRLs

/// An HTTP/1.1 server on 127.0.0.1 answering every GET with the current
/// bytes of one file; it stops when dropped.
struct CrlServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CrlServer {
    async fn serve(file: PathBuf) -> CrlServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let file = file.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let body = std::fs::read(&file).unwrap_or_default();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        CrlServer {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/ca.crl", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fetch_from(url: &str) -> String {
    format!("crl_urls = [\"{url}\"]\ncrl_refresh = \"1s\"\n")
}

/// Polls until `cert` is refused, within [`REFRESH_WAIT`].
async fn wait_refused(pki: &Pki, gateway: &Running, cert: &IssuedFiles) {
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    while admitted(pki, gateway, cert).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still admitted after {REFRESH_WAIT:?}:\n{}",
            gateway.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn crl_urls_a_peer_revoked_on_the_server_is_refused_after_the_next_refresh() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let lab = client(&pki, "lab");
    let server = CrlServer::serve(pki.crl()).await;
    let (gateway, _backend) = start(&pki, None, &fetch_from(&server.url())).await;
    assert!(server.requests() >= 1, "fetched at start");
    assert!(admitted(&pki, &gateway, &eai).await);
    assert!(wait_next_update(&gateway).await > 29 * DAY);

    // Only the CRL on the server changes: no file of the config does.
    guichet_pki::revoke(&pki.ca, "eai").unwrap();
    wait_refused(&pki, &gateway, &eai).await;
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 1).await;
    assert!(admitted(&pki, &gateway, &lab).await);
    assert_eq!(gateway.reloads(outcome::RELOAD_OK), 1, "one swap");
}

#[tokio::test]
async fn crl_urls_server_stopped_keeps_the_last_good_crl_and_counts_failures() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let lab = client(&pki, "lab");
    guichet_pki::revoke(&pki.ca, "eai").unwrap();
    let server = CrlServer::serve(pki.crl()).await;
    let (gateway, _backend) = start(&pki, None, &fetch_from(&server.url())).await;
    assert!(!admitted(&pki, &gateway, &eai).await);
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 1).await;

    drop(server);
    let failures = [("profile", "gw"), ("reason", "connect")];
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    while gateway.value("guichet_crl_fetch_failures_total", &failures) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fetch failure counted:\n{}",
            gateway.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!admitted(&pki, &gateway, &eai).await, "last good CRL kept");
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 2).await;
    assert!(admitted(&pki, &gateway, &lab).await);
    assert!(wait_next_update(&gateway).await > 29 * DAY);
}

#[tokio::test]
async fn crl_urls_a_crl_signed_by_another_ca_is_not_used() {
    let pki = Pki::new();
    let eai = client(&pki, "eai");
    let other = pki.other_ca("other-ca");
    let server = CrlServer::serve(other.join("ca.crl")).await;
    let (gateway, _backend) = start(&pki, None, &fetch_from(&server.url())).await;

    let failures = [("profile", "gw"), ("reason", "signature")];
    assert!(gateway.value("guichet_crl_fetch_failures_total", &failures) >= 1);
    assert!(!admitted(&pki, &gateway, &eai).await);
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
}

#[tokio::test]
async fn crl_from_certificates_a_peer_distribution_point_is_fetched_after_first_sight() {
    let pki = Pki::new();
    let server = CrlServer::serve(pki.crl()).await;
    let eai = pki.issue_with(&IssueRequest {
        usage: Usage::ClientOnly,
        crl_urls: vec![server.url()],
        ..IssueRequest::new("eai")
    });
    let (gateway, _backend) = start(&pki, None, "crl_from_certificates = true\n").await;
    assert_eq!(
        server.requests(),
        0,
        "the test CA names no distribution point"
    );

    // First sight: no CRL for its issuer yet.
    assert!(!admitted(&pki, &gateway, &eai).await);
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    while !admitted(&pki, &gateway, &eai).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the distribution point was never fetched:\n{}",
            gateway.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.requests() >= 1);
}
