//! Peers the gateway must refuse, each with its exact reason in the
//! metrics, and not one byte passed on to the forward target.

use crate::common::*;
use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use guichet_tls::ClientAuth;
use time::{Duration, OffsetDateTime};

const ROUTE: &str = "from-partners";

/// A server-mode route admitting only the app "eai", in front of an echo
/// backend, with the CA's CRL.
struct Listener {
    pki: Pki,
    gateway: Running,
    backend: Backend,
}

impl Listener {
    async fn start() -> Listener {
        let pki = Pki::new();
        let gw = pki.issue("gw", Usage::ServerOnly);
        let backend = echo_backend().await;
        let gateway = Running::start(
            &pki.config_path(),
            &format!(
                "{}{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\n",
                gateway_section("1s", "0s"),
                profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
                app("eai", "eai"),
                backend.target(),
            ),
        )
        .await;
        Listener {
            pki,
            gateway,
            backend,
        }
    }

    /// Connects with `cert` (trusting the gateway's CA) and checks the
    /// refusal is counted once with `reason`, and nothing else happened.
    async fn refuses(&self, cert: Option<&IssuedFiles>, reason: &str) {
        let client = self.pki.client(cert);
        expect_refused(&client, self.gateway.addr(ROUTE), "gw").await;
        self.gateway.wait_refusals(ROUTE, LISTEN, reason, 1).await;
        self.gateway
            .wait_connections(ROUTE, outcome::REFUSED_TLS, 1)
            .await;
        assert_eq!(
            self.gateway.all_refusals(),
            1,
            "{}",
            self.gateway.metrics.render()
        );
        assert_eq!(self.backend.accepted(), 0, "the backend was reached");
        assert_eq!(self.gateway.bytes(ROUTE, UPSTREAM), 0);
        assert_eq!(
            self.gateway.value(
                "guichet_tls_handshake_seconds_count",
                &[("route", ROUTE), ("side", LISTEN)]
            ),
            0
        );
    }

    fn issue_eai(&self, req: IssueRequest) -> IssuedFiles {
        self.pki.issue_with(&IssueRequest {
            usage: Usage::ClientOnly,
            ..req
        })
    }
}

#[tokio::test]
async fn admitted_client_is_the_control() {
    let l = Listener::start().await;
    let eai = l.issue_eai(IssueRequest::new("eai"));
    let mut stream = tls(&l.pki.client(Some(&eai)), l.gateway.addr(ROUTE), "gw")
        .await
        .unwrap();
    echo_once(&mut stream, b"MSH|admitted\r").await;
    assert_eq!(l.backend.received(), b"MSH|admitted\r");
    assert_eq!(l.gateway.all_refusals(), 0);
}

#[tokio::test]
async fn certificate_from_another_ca_is_unknown_ca() {
    let l = Listener::start().await;
    let other = l.pki.other_ca("other-ca");
    // Same CN as the admitted app: only the issuer differs.
    let eai = guichet_pki::issue(
        &other,
        &IssueRequest {
            usage: Usage::ClientOnly,
            ..IssueRequest::new("eai")
        },
    )
    .unwrap();
    l.refuses(Some(&eai), "unknown_ca").await;
}

#[tokio::test]
async fn expired_certificate_is_expired() {
    let l = Listener::start().await;
    let eai = l.issue_eai(IssueRequest {
        not_before: Some(OffsetDateTime::now_utc() - Duration::days(10)),
        days: 2,
        ..IssueRequest::new("eai")
    });
    l.refuses(Some(&eai), "expired").await;
}

#[tokio::test]
async fn future_certificate_is_not_yet_valid() {
    let l = Listener::start().await;
    let eai = l.issue_eai(IssueRequest {
        not_before: Some(OffsetDateTime::now_utc() + Duration::days(2)),
        days: 30,
        ..IssueRequest::new("eai")
    });
    l.refuses(Some(&eai), "not_yet_valid").await;
}

#[tokio::test]
async fn revoked_certificate_is_revoked() {
    let pki = Pki::new();
    let eai = pki.issue("eai", Usage::ClientOnly);
    guichet_pki::revoke(&pki.ca, "eai").unwrap();
    // The gateway starts with the CRL that lists it.
    let gw = pki.issue("gw", Usage::ServerOnly);
    let backend = echo_backend().await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\n",
            gateway_section("1s", "0s"),
            profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            app("eai", "eai"),
            backend.target(),
        ),
    )
    .await;
    let l = Listener {
        pki,
        gateway,
        backend,
    };
    l.refuses(Some(&eai), "revoked").await;
}

#[tokio::test]
async fn valid_certificate_not_on_the_allowlist_is_not_allowed() {
    let l = Listener::start().await;
    let lab = l.issue_eai(IssueRequest::new("lab"));
    l.refuses(Some(&lab), "not_allowed").await;
}

#[tokio::test]
async fn client_without_certificate_is_no_certificate() {
    let l = Listener::start().await;
    l.refuses(None, "no_certificate").await;
}

#[tokio::test]
async fn server_only_certificate_as_client_is_wrong_usage() {
    let l = Listener::start().await;
    let eai = l.pki.issue("eai", Usage::ServerOnly);
    l.refuses(Some(&eai), "wrong_usage").await;
}

#[tokio::test]
async fn forward_server_with_another_name_is_name_mismatch() {
    let pki = Pki::new();
    let eai = pki.issue("eai", Usage::ClientOnly);
    // A valid server certificate of the right CA, for another name.
    let impostor = pki.issue("not-dpi", Usage::ServerOnly);
    let backend = tls_echo_backend(server_tls(&impostor, None, ClientAuth::Disabled)).await;
    let gateway = Running::start(
        &pki.config_path(),
        &format!(
            "{}{}[[route]]\nname = \"to-dpi\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nforward_tls = \"eai\"\nserver_name = \"dpi\"\n",
            gateway_section("1s", "0s"),
            profile("eai", Some(&eai), &pki.ca_cert(), Some(&pki.crl())),
            backend.target(),
        ),
    )
    .await;

    let mut stream = tcp(gateway.addr("to-dpi")).await;
    // A clean end of stream: nothing was forwarded, nothing is owed.
    expect_closed(&mut stream).await.unwrap();
    gateway
        .wait_refusals("to-dpi", FORWARD, "name_mismatch", 1)
        .await;
    gateway
        .wait_connections("to-dpi", outcome::UPSTREAM_TLS, 1)
        .await;
    assert_eq!(gateway.all_refusals(), 1, "{}", gateway.metrics.render());
    assert_eq!(backend.accepted(), 0, "the impostor completed a handshake");
    assert!(backend.received().is_empty());
}
