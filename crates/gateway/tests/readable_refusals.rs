//! A refused partner must read why: guichet's TLS alert, not a reset.
//!
//! The finding: with curl on Debian 12 over TLS 1.3, a refused partner
//! saw `getpeername() failed ... Transport endpoint is not connected` in
//! 4 tries out of 5, because guichet closed the socket with the rest of
//! the client's flight unread and the kernel's reset destroyed the alert.
//! These tests run the real curl twenty times per case against an `http`
//! route (ALPN offered: the case where the race showed) and require the
//! alert every time.

use crate::common::http::{Curl, Upstream};
use crate::common::*;
use guichet_pki::{IssueRequest, IssuedFiles, Usage};

const ROUTE: &str = "from-partners";
const TRIES: usize = 20;

/// An `http` route admitting only "eai", in front of an echo upstream.
struct Site {
    pki: Pki,
    gateway: Running,
    upstream: Upstream,
}

impl Site {
    async fn start() -> Site {
        let pki = Pki::new();
        let gw = pki.issue("gw", Usage::ServerOnly);
        let upstream = Upstream::plain().await;
        let gateway = Running::start(
            &pki.config_path(),
            &format!(
                "{}{}{}[[route]]\nname = \"{ROUTE}\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\naccess_log = {}\n\n[[route.rule]]\nname = \"all\"\npath = \"/\"\nupstream = \"{}\"\nallow = [\"eai\"]\n",
                gateway_section("1s", "0s"),
                profile("gw", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
                app("eai", "eai"),
                toml_path(&pki.tmp.path().join("access.jsonl")),
                upstream.url(),
            ),
        )
        .await;
        Site {
            pki,
            gateway,
            upstream,
        }
    }

    fn curl(&self, cert: Option<&IssuedFiles>) -> Curl {
        Curl {
            addr: self.gateway.addr(ROUTE),
            name: "gw".into(),
            ca: self.pki.ca_cert(),
            cert: cert.cloned(),
            dir: self.pki.tmp.path().to_path_buf(),
        }
    }

    /// A client certificate of this CA that no route admits.
    fn stranger(&self) -> IssuedFiles {
        self.pki.issue("stranger", Usage::ClientOnly)
    }

    /// A certificate named like the admitted app, from another CA.
    fn forged(&self) -> IssuedFiles {
        let other = self.pki.other_ca("other-ca");
        guichet_pki::issue(
            &other,
            &IssueRequest {
                usage: Usage::ClientOnly,
                ..IssueRequest::new("eai")
            },
        )
        .unwrap()
    }

    /// Runs curl `TRIES` times with `cert` and `version` arguments; every
    /// run must fail with `alert` and `words` (the alert's name, as
    /// docs/partner-onboarding.md quotes it) in curl's error text. Then
    /// the refusals must be counted with `reason`, and nothing forwarded.
    async fn every_try_reads_the_alert(
        &self,
        cert: Option<&IssuedFiles>,
        version: &[&str],
        reason: &str,
        words: &str,
    ) {
        let curl = self.curl(cert);
        let before = self.gateway.refusals(ROUTE, LISTEN, reason);
        let mut unreadable = Vec::new();
        for _ in 0..TRIES {
            let out = curl.run("/", version).await;
            assert_ne!(out.exit, 0, "curl got an answer: {out:?}");
            assert_eq!(out.status, 0, "an HTTP answer came: {out:?}");
            if !(out.stderr.contains("alert") && out.stderr.contains(words)) {
                unreadable.push(out.stderr);
            }
        }
        assert!(
            unreadable.is_empty(),
            "{} of {TRIES} tries did not read the alert ({version:?}, {reason}): {unreadable:#?}",
            unreadable.len()
        );
        self.gateway
            .wait_refusals(ROUTE, LISTEN, reason, before + TRIES as u64)
            .await;
        assert!(self.upstream.seen().is_empty(), "the upstream was reached");
    }
}

const TLS13: &[&str] = &["--tlsv1.3"];
const TLS12: &[&str] = &["--tlsv1.2", "--tls-max", "1.2"];

#[tokio::test]
async fn refused_partner_not_on_the_allowlist_reads_the_alert_over_tls13() {
    let site = Site::start().await;
    let stranger = site.stranger();
    site.every_try_reads_the_alert(Some(&stranger), TLS13, "not_allowed", "access denied")
        .await;
}

#[tokio::test]
async fn refused_partner_not_on_the_allowlist_reads_the_alert_over_tls12() {
    let site = Site::start().await;
    let stranger = site.stranger();
    site.every_try_reads_the_alert(Some(&stranger), TLS12, "not_allowed", "access denied")
        .await;
}

#[tokio::test]
async fn refused_partner_from_another_ca_reads_the_alert_over_tls13() {
    let site = Site::start().await;
    let forged = site.forged();
    site.every_try_reads_the_alert(Some(&forged), TLS13, "unknown_ca", "unknown ca")
        .await;
}

#[tokio::test]
async fn refused_partner_from_another_ca_reads_the_alert_over_tls12() {
    let site = Site::start().await;
    let forged = site.forged();
    site.every_try_reads_the_alert(Some(&forged), TLS12, "unknown_ca", "unknown ca")
        .await;
}

#[tokio::test]
async fn refused_partner_without_a_certificate_reads_the_alert_over_tls13() {
    let site = Site::start().await;
    site.every_try_reads_the_alert(None, TLS13, "no_certificate", "certificate required")
        .await;
}

#[tokio::test]
async fn refused_partner_without_a_certificate_reads_the_alert_over_tls12() {
    let site = Site::start().await;
    // rustls sends certificate_required under TLS 1.2 too (OpenSSL names
    // it "tlsv13 alert certificate required" whatever the version).
    site.every_try_reads_the_alert(None, TLS12, "no_certificate", "certificate required")
        .await;
}

/// The control: the admitted partner gets its answer over both versions.
#[tokio::test]
async fn admitted_partner_gets_its_answer() {
    let site = Site::start().await;
    let eai = site.pki.issue_with(&IssueRequest {
        usage: Usage::ClientOnly,
        ..IssueRequest::new("eai")
    });
    for version in [TLS13, TLS12] {
        site.curl(Some(&eai)).run("/beds", version).await.echoed();
    }
    assert_eq!(site.gateway.all_refusals(), 0);
    assert_eq!(site.upstream.seen().len(), 2);
}
