//! OCSP against a real `openssl ocsp` responder: peers' certificates are
//! checked with the responder their certificate names, answers are cached
//! until nextUpdate, `hard` refuses what cannot be established and `soft`
//! admits it, and our own certificate's status is stapled for
//! `openssl s_client -status`.
//!
//! `openssl ocsp -port` listens on every interface, so the responder here is
//! an HTTP front on 127.0.0.1 that hands each request to a one-shot
//! `openssl ocsp -reqin … -respout …` (same index, same signing), and counts
//! the requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use bytes::Bytes;
use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const ROUTE: &str = "from-eai";

/// The serial number of a certificate as `openssl ocsp`'s index spells it.
fn serial(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

/// An `openssl ca`-style index: every certificate valid, except `revoked`.
fn write_index(path: &Path, good: &[&IssuedFiles], revoked: &[&IssuedFiles]) {
    let mut text = String::new();
    for (cert, state) in good.iter().map(|c| (c, "V\t300101000000Z\t")).chain(
        revoked
            .iter()
            .map(|c| (c, "R\t300101000000Z\t240101000000Z")),
    ) {
        let serial = serial(&cert.cert);
        text += &format!("{state}\t{serial}\tunknown\t/CN={serial}\n");
    }
    std::fs::write(path, text).unwrap();
}

/// An OCSP responder on 127.0.0.1 answering with `openssl ocsp`.
struct Responder {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `openssl ocsp` needs to answer: the index, the CA, the signer.
#[derive(Clone)]
struct Signing {
    dir: PathBuf,
    index: PathBuf,
    ca: PathBuf,
    signer: IssuedFiles,
}

impl Responder {
    async fn start(signing: Signing) -> Responder {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), signing)
    }

    fn serve(listener: TcpListener, signing: Signing) -> Responder {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (signing, counted) = (signing.clone(), counted.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (signing, counted) = (signing.clone(), counted.clone());
                        async move {
                            let n = counted.fetch_add(1, Ordering::SeqCst);
                            let body = req.into_body().collect().await?.to_bytes();
                            let answer =
                                tokio::task::spawn_blocking(move || answer(&signing, n, &body))
                                    .await
                                    .unwrap();
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                answer,
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Responder {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/ocsp", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// One `openssl ocsp` run: request in, signed response out.
fn answer(signing: &Signing, n: usize, request: &[u8]) -> Vec<u8> {
    let reqin = signing.dir.join(format!("req-{n}.der"));
    let respout = signing.dir.join(format!("resp-{n}.der"));
    std::fs::write(&reqin, request).unwrap();
    let out = Command::new("openssl")
        .arg("ocsp")
        .arg("-index")
        .arg(&signing.index)
        .arg("-CA")
        .arg(&signing.ca)
        .arg("-rsigner")
        .arg(&signing.signer.cert)
        .arg("-rkey")
        .arg(&signing.signer.key)
        .args(["-rmd", "sha256", "-nmin", "10", "-reqin"])
        .arg(&reqin)
        .arg("-respout")
        .arg(&respout)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl ocsp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&respout).unwrap()
}

/// The test PKI, a delegated responder certificate, and peers whose
/// certificates name `url` as their OCSP responder.
struct Bench {
    pki: Pki,
    gw: IssuedFiles,
    eai: IssuedFiles,
    revoked: IssuedFiles,
    /// A revoked server certificate, for forward sides.
    server_revoked: IssuedFiles,
    signing: Signing,
}

impl Bench {
    fn new(url: &str) -> Bench {
        let pki = Pki::new();
        let with_ocsp = |name: &str, usage: Usage| {
            pki.issue_with(&IssueRequest {
                usage,
                ocsp_url: Some(url.to_string()),
                ..IssueRequest::new(name)
            })
        };
        let gw = with_ocsp("gw", Usage::Both);
        let eai = with_ocsp("eai", Usage::ClientOnly);
        let revoked = with_ocsp("eai-revoked", Usage::ClientOnly);
        let server_revoked = with_ocsp("upstream", Usage::ServerOnly);
        let signer = pki.issue_with(&IssueRequest {
            usage: Usage::ClientOnly,
            ocsp_signing: true,
            ..IssueRequest::new("ocsp-responder")
        });
        let index = pki.tmp.path().join("index.txt");
        write_index(&index, &[&gw, &eai], &[&revoked, &server_revoked]);
        let signing = Signing {
            dir: pki.tmp.path().to_path_buf(),
            index,
            ca: pki.ca_cert(),
            signer,
        };
        Bench {
            pki,
            gw,
            eai,
            revoked,
            server_revoked,
            signing,
        }
    }

    /// A TLS listener route admitting `eai*` peers, with `ocsp` (and
    /// `ocsp_url` when given) on its profile.
    async fn gateway(&self, mode: &str, ocsp_url: Option<&str>, backend: &Backend) -> Running {
        let text = self.config(mode, ocsp_url, &backend.target());
        Running::start(&self.pki.config_path(), &text).await
    }

    fn config(&self, mode: &str, ocsp_url: Option<&str>, target: &str) -> String {
        let mut profile = profile(
            "gw",
            Some(&self.gw),
            &self.pki.ca_cert(),
            Some(&self.pki.crl()),
        );
        profile = profile.trim_end().to_string() + &format!("\nocsp = \"{mode}\"\n");
        if let Some(url) = ocsp_url {
            profile += &format!("ocsp_url = \"{url}\"\n");
        }
        format!(
            "{}{profile}\n{}{}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\", \"eai-revoked\"]\nforward = \"{target}\"\n",
            gateway_section("1s", "0s"),
            app("eai", "eai"),
            app("eai-revoked", "eai-revoked"),
        )
    }
}

fn checks(gateway: &Running, result: &str, source: &str) -> u64 {
    gateway.value(
        "guichet_ocsp_checks_total",
        &[("profile", "gw"), ("result", result), ("source", source)],
    )
}

/// Binds first, so the certificates can name the responder's address.
async fn responder_and_bench() -> (Responder, Bench) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    let bench = Bench::new(&url);
    let responder = Responder::serve(listener, bench.signing.clone());
    (responder, bench)
}

#[tokio::test]
async fn ocsp_good_peer_is_admitted_then_answered_from_the_cache() {
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    let backend = echo_backend().await;
    let gateway = bench.gateway("hard", None, &backend).await;
    wait_stapled(&gateway).await;
    let before = responder.requests();
    let client = bench.pki.client(Some(&bench.eai));
    for round in 0..2 {
        let mut stream = tls(&client, gateway.addr(ROUTE), "gw").await.unwrap();
        echo_once(&mut stream, format!("MSH|round {round}\r").as_bytes()).await;
    }
    assert_eq!(
        responder.requests() - before,
        1,
        "the second connection is answered from the cache"
    );
    assert_eq!(checks(&gateway, "good", "responder"), 1);
    assert_eq!(checks(&gateway, "good", "cache"), 1);
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn ocsp_revoked_peer_is_refused_as_revoked() {
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    let backend = echo_backend().await;
    let gateway = bench.gateway("soft", None, &backend).await;
    wait_stapled(&gateway).await;
    let before = responder.requests();
    let client = bench.pki.client(Some(&bench.revoked));
    // First: the responder is asked after the handshake; then the cached
    // answer refuses inside the handshake.
    expect_refused(&client, gateway.addr(ROUTE), "gw").await;
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 1).await;
    expect_refused(&client, gateway.addr(ROUTE), "gw").await;
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 2).await;
    assert_eq!(responder.requests() - before, 1);
    assert_eq!(checks(&gateway, "revoked", "responder"), 1);
    assert_eq!(checks(&gateway, "revoked", "cache"), 1);
    assert_eq!(backend.accepted(), 0, "nothing reaches the backend");
}

/// OCSP is a revocation source of its own: a profile without any CRL
/// admits a good peer and refuses a revoked one, instead of refusing every
/// peer for want of a CRL.
#[tokio::test]
async fn ocsp_alone_is_a_revocation_source_without_any_crl() {
    if !have("openssl") {
        return;
    }
    let (_responder, bench) = responder_and_bench().await;
    let backend = echo_backend().await;
    let with_crl = bench.config("hard", None, &backend.target());
    let crl_line = format!("crl = [{}]\n", toml_path(&bench.pki.crl()));
    assert!(with_crl.contains(&crl_line), "{with_crl}");
    let text = with_crl.replace(&crl_line, "");
    let gateway = Running::start(&bench.pki.config_path(), &text).await;

    let good = bench.pki.client(Some(&bench.eai));
    let mut stream = tls(&good, gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut stream, b"MSH|ocsp only\r").await;
    let revoked = bench.pki.client(Some(&bench.revoked));
    expect_refused(&revoked, gateway.addr(ROUTE), "gw").await;
    gateway.wait_refusals(ROUTE, LISTEN, "revoked", 1).await;
    assert_eq!(gateway.refusals(ROUTE, LISTEN, "revocation_unknown"), 0);
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn ocsp_responder_down_hard_refuses_the_peer() {
    if !have("openssl") {
        return;
    }
    let down = closed_port().await;
    let bench = Bench::new(&format!("http://{down}/ocsp"));
    let backend = echo_backend().await;
    let gateway = bench.gateway("hard", None, &backend).await;
    let client = bench.pki.client(Some(&bench.eai));
    expect_refused(&client, gateway.addr(ROUTE), "gw").await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    assert_eq!(checks(&gateway, "error", "responder"), 1);
    assert_eq!(backend.accepted(), 0);
}

#[tokio::test]
async fn ocsp_responder_down_soft_admits_the_peer_and_counts_it() {
    if !have("openssl") {
        return;
    }
    let down = closed_port().await;
    let bench = Bench::new(&format!("http://{down}/ocsp"));
    let backend = echo_backend().await;
    let gateway = bench.gateway("soft", None, &backend).await;
    let client = bench.pki.client(Some(&bench.eai));
    let mut stream = tls(&client, gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut stream, b"MSH|soft\r").await;
    assert_eq!(checks(&gateway, "error", "responder"), 1);
    assert_eq!(gateway.refusals(ROUTE, LISTEN, "revocation_unknown"), 0);
}

#[tokio::test]
async fn ocsp_url_overrides_the_responder_the_certificate_names() {
    if !have("openssl") {
        return;
    }
    // The certificates name a dead responder; the profile's ocsp_url works.
    let down = closed_port().await;
    let bench = Bench::new(&format!("http://{down}/ocsp"));
    let responder = Responder::start(bench.signing.clone()).await;
    let backend = echo_backend().await;
    let gateway = bench
        .gateway("hard", Some(&responder.url()), &backend)
        .await;
    wait_stapled(&gateway).await;
    let before = responder.requests();
    let client = bench.pki.client(Some(&bench.eai));
    let mut stream = tls(&client, gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut stream, b"MSH|override\r").await;
    assert_eq!(responder.requests() - before, 1);
    assert_eq!(checks(&gateway, "good", "responder"), 1);
}

/// Waits until the gateway staples (its first fetch runs in the background).
async fn wait_stapled(gateway: &Running) {
    bounded("staple", async {
        while !gateway
            .metrics
            .render()
            .contains("guichet_ocsp_staple_next_update_seconds{profile=\"gw\"}")
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn ocsp_staple_is_seen_by_openssl_s_client() {
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    let backend = echo_backend().await;
    let gateway = bench.gateway("hard", None, &backend).await;
    wait_stapled(&gateway).await;
    let addr = gateway.addr(ROUTE);
    let out = tokio::task::spawn_blocking({
        let (eai, ca) = (bench.eai.clone(), bench.pki.ca_cert());
        move || s_client_status(addr, &eai, &ca)
    })
    .await
    .unwrap();
    assert!(
        out.contains("OCSP Response Status: successful"),
        "no staple in:\n{out}"
    );
    assert!(out.contains("Cert Status: good"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // One request for the staple, one for the client's own certificate.
    assert_eq!(responder.requests(), 2);
}

/// `openssl s_client -status` as the `eai` partner; its whole output.
fn s_client_status(addr: SocketAddr, eai: &IssuedFiles, ca: &Path) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-status", "-connect", &addr.to_string()])
        .args(["-servername", "gw", "-verify_return_error", "-CAfile"])
        .arg(ca)
        .arg("-cert")
        .arg(&eai.cert)
        .arg("-key")
        .arg(&eai.key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // End of input ends the session once the handshake is done.
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn ocsp_check_reports_the_mode_and_warns_on_soft() {
    if !have("openssl") {
        return;
    }
    let bench = Bench::new("http://127.0.0.1:9/ocsp");
    let text = bench.config("soft", None, "127.0.0.1:9");
    std::fs::write(bench.pki.config_path(), text).unwrap();
    let report = guichet_gateway::check::check(&bench.pki.config_path()).unwrap();
    let text = report.to_string();
    assert!(
        text.contains(
            "WARNING [tls.gw] ocsp: soft: a peer whose OCSP status cannot be established"
        ),
        "{text}"
    );
    assert!(
        text.contains("ok      [tls.gw] ocsp: our certificate's OCSP response is stapled"),
        "{text}"
    );
}

#[tokio::test]
async fn ocsp_forward_side_refuses_a_revoked_server() {
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    // A TLS backend presenting a revoked certificate, with no staple.
    let upstream_cert = &bench.server_revoked;
    let upstream = tls_echo_backend(server_tls(
        upstream_cert,
        None,
        guichet_tls::ClientAuth::Disabled,
    ))
    .await;
    let mut profile = profile("up", None, &bench.pki.ca_cert(), Some(&bench.pki.crl()));
    profile = profile.trim_end().to_string() + "\nocsp = \"hard\"\n\n";
    let text = format!(
        "{}{profile}[[route]]\nname = \"{ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nforward_tls = \"up\"\nserver_name = \"upstream\"\n",
        gateway_section("1s", "0s"),
        upstream.target(),
    );
    let gateway = Running::start(&bench.pki.config_path(), &text).await;
    let mut client = tcp(gateway.addr(ROUTE)).await;
    client
        .write_all(b"MSH|to a revoked server\r")
        .await
        .unwrap();
    let _ = expect_closed(&mut client).await;
    gateway.wait_refusals(ROUTE, FORWARD, "revoked", 1).await;
    assert_eq!(responder.requests(), 1);
    assert_eq!(
        gateway.value(
            "guichet_ocsp_checks_total",
            &[
                ("profile", "up"),
                ("result", "revoked"),
                ("source", "responder")
            ],
        ),
        1
    );
    assert!(
        upstream.received().is_empty(),
        "no byte reaches a revoked server"
    );
}

#[tokio::test]
async fn ocsp_forward_side_uses_the_staple_the_server_sends() {
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    let backend = echo_backend().await;
    // "front" staples its own status; "via" dials it with ocsp = "hard".
    let front = bench.gateway("hard", None, &backend).await;
    wait_stapled(&front).await;
    let mut up = profile(
        "up",
        Some(&bench.eai),
        &bench.pki.ca_cert(),
        Some(&bench.pki.crl()),
    );
    up = up.trim_end().to_string() + "\nocsp = \"hard\"\n\n";
    let via_text = format!(
        "{}{up}[[route]]\nname = \"via\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nforward_tls = \"up\"\nserver_name = \"gw\"\n",
        gateway_section("1s", "0s"),
        front.addr(ROUTE),
    );
    let dir = tempfile::tempdir().unwrap();
    let via = Running::start(&dir.path().join("via.toml"), &via_text).await;
    let before = responder.requests();
    let mut client = tcp(via.addr("via")).await;
    echo_once(&mut client, b"MSH|through two gateways\r").await;
    assert_eq!(
        via.value(
            "guichet_ocsp_checks_total",
            &[("profile", "up"), ("result", "good"), ("source", "staple")],
        ),
        1
    );
    // Only "front" asked the responder (about the eai client certificate).
    assert_eq!(responder.requests() - before, 1);
}

#[tokio::test]
async fn ocsp_response_from_an_unauthorised_signer_is_not_believed() {
    if !have("openssl") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    let mut bench = Bench::new(&url);
    // Same CA, but no OCSPSigning usage: it may not speak for the CA.
    bench.signing.signer = bench.pki.issue("impostor", Usage::ClientOnly);
    let responder = Responder::serve(listener, bench.signing.clone());
    let backend = echo_backend().await;
    let gateway = bench.gateway("hard", None, &backend).await;
    let client = bench.pki.client(Some(&bench.eai));
    expect_refused(&client, gateway.addr(ROUTE), "gw").await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    assert!(responder.requests() >= 1);
    assert_eq!(checks(&gateway, "error", "responder"), 1);
    assert_eq!(checks(&gateway, "good", "responder"), 0);
    assert_eq!(backend.accepted(), 0);
}

#[tokio::test]
async fn ocsp_response_signed_by_the_ca_itself_is_believed() {
    if !have("openssl") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    let mut bench = Bench::new(&url);
    bench.signing.signer = IssuedFiles {
        cert: bench.pki.ca_cert(),
        key: bench.pki.ca.join("ca.key"),
    };
    let responder = Responder::serve(listener, bench.signing.clone());
    let backend = echo_backend().await;
    let gateway = bench.gateway("hard", None, &backend).await;
    let client = bench.pki.client(Some(&bench.eai));
    let mut stream = tls(&client, gateway.addr(ROUTE), "gw").await.unwrap();
    echo_once(&mut stream, b"MSH|signed by the CA\r").await;
    assert!(responder.requests() >= 1);
    assert_eq!(checks(&gateway, "good", "responder"), 1);
}

/// A responder that accepts connections and never answers: its URL, and
/// the task holding the connections.
async fn silent_responder() -> (String, tokio::task::JoinHandle<()>) {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    (url, holder)
}

#[tokio::test]
async fn ocsp_silent_responder_hard_refuses_within_the_handshake_deadline() {
    if !have("openssl") {
        return;
    }
    let (url, holder) = silent_responder().await;
    let bench = Bench::new(&url);
    let backend = echo_backend().await;
    let text = bench.config("hard", None, &backend.target()) + "handshake_timeout = \"1s\"\n";
    let gateway = Running::start(&bench.pki.config_path(), &text).await;
    let client = bench.pki.client(Some(&bench.eai));
    let started = std::time::Instant::now();
    expect_refused(&client, gateway.addr(ROUTE), "gw").await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(3),
        "refused after {took:?}, expected about the 1s handshake_timeout"
    );
    assert_eq!(checks(&gateway, "error", "responder"), 1);
    assert_eq!(backend.accepted(), 0);
    holder.abort();
}

#[tokio::test]
async fn ocsp_staple_survives_a_failed_refresh() {
    use guichet_gateway::ocsp::OcspMetrics;
    use guichet_tls::{Material, OcspMode, OcspPolicy, ProfileFiles, Stapler};
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    let material = Material::load(&ProfileFiles {
        cert: Some(bench.gw.cert.clone()),
        key: Some(bench.gw.key.clone()),
        ca: Some(bench.pki.ca_cert()),
        ..ProfileFiles::default()
    })
    .unwrap();
    let policy = OcspPolicy {
        mode: OcspMode::Hard,
        url: None,
    };
    let metrics = OcspMetrics::default();
    let stapler = Stapler::new("gw", &policy, &material, Arc::new(metrics.clone()))
        .unwrap()
        .expect("the certificate names a responder");
    assert_eq!(stapler.staple(), None);
    stapler.refresh().await;
    let good = stapler.staple().expect("stapled after a good fetch");
    drop(responder);
    // Let the runtime drop the aborted responder task and its listener.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    stapler.refresh().await;
    assert_eq!(
        stapler.staple(),
        Some(good),
        "the last good response is kept"
    );
    let text = {
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    };
    assert!(
        text.contains("ocsp_staple_failures_total{profile=\"gw\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ocsp_staple_next_update_seconds{profile=\"gw\"} "),
        "{text}"
    );
}

#[tokio::test]
async fn ocsp_http_upstream_tls_refuses_a_revoked_upstream() {
    use crate::common::http::{alpn_client, KeepAlive, Upstream};
    if !have("openssl") {
        return;
    }
    let (responder, bench) = responder_and_bench().await;
    let upstream = Upstream::tls(server_tls(
        &bench.server_revoked,
        None,
        guichet_tls::ClientAuth::Disabled,
    ))
    .await;
    let up = profile("up", None, &bench.pki.ca_cert(), Some(&bench.pki.crl()));
    let text = format!(
        "{}{}{}\nocsp = \"hard\"\n\n{}[[route]]\nname = \"{ROUTE}\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\naccess_log = {}\n\n[[route.rule]]\nname = \"beds\"\npath = \"/\"\nupstream = \"https://{}\"\nupstream_tls = \"up\"\nserver_name = \"upstream\"\nallow = [\"eai\"]\n",
        gateway_section("1s", "0s"),
        profile("gw", Some(&bench.gw), &bench.pki.ca_cert(), Some(&bench.pki.crl())),
        up.trim_end(),
        app("eai", "eai"),
        toml_path(&bench.pki.tmp.path().join("access.log")),
        upstream.addr,
    );
    let gateway = Running::start(&bench.pki.config_path(), &text).await;
    let client = alpn_client(Some(&bench.eai), &bench.pki.ca_cert(), &[b"http/1.1"]);
    let mut conn = KeepAlive::connect(&client, gateway.addr(ROUTE), "gw", false).await;
    let answer = conn.get("/beds").await.unwrap();
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(
        gateway.value(
            "guichet_http_refusals_total",
            &[("route", ROUTE), ("reason", "upstream_tls")],
        ),
        1
    );
    assert_eq!(
        gateway.value(
            "guichet_ocsp_checks_total",
            &[
                ("profile", "up"),
                ("result", "revoked"),
                ("source", "responder")
            ],
        ),
        1
    );
    assert_eq!(responder.requests(), 1);
    assert!(
        upstream.seen().is_empty(),
        "no request reaches a revoked upstream"
    );
}

#[tokio::test]
async fn ocsp_responder_that_timed_out_is_not_waited_for_again_at_once() {
    if !have("openssl") {
        return;
    }
    let (url, holder) = silent_responder().await;
    let bench = Bench::new(&url);
    let backend = echo_backend().await;
    let text = bench.config("soft", None, &backend.target()) + "handshake_timeout = \"1s\"\n";
    let gateway = Running::start(&bench.pki.config_path(), &text).await;
    let client = bench.pki.client(Some(&bench.eai));
    let mut waited = Vec::new();
    for round in 0..2 {
        let started = std::time::Instant::now();
        let mut stream = tls(&client, gateway.addr(ROUTE), "gw").await.unwrap();
        echo_once(&mut stream, format!("MSH|{round}\r").as_bytes()).await;
        waited.push(started.elapsed());
    }
    assert!(
        waited[0] >= std::time::Duration::from_millis(900),
        "{waited:?}"
    );
    assert!(
        waited[1] < std::time::Duration::from_millis(500),
        "{waited:?}"
    );
    assert_eq!(checks(&gateway, "error", "responder"), 2);
    holder.abort();
}

#[tokio::test]
async fn ocsp_hard_refuses_a_certificate_that_names_no_responder() {
    if !have("openssl") {
        return;
    }
    let (responder, mut bench) = responder_and_bench().await;
    // Reissued without an AIA entry, and no ocsp_url in the profile.
    bench.eai = bench.pki.issue("eai", Usage::ClientOnly);
    let backend = echo_backend().await;
    let gateway = bench.gateway("hard", None, &backend).await;
    wait_stapled(&gateway).await;
    let before = responder.requests();
    let client = bench.pki.client(Some(&bench.eai));
    expect_refused(&client, gateway.addr(ROUTE), "gw").await;
    gateway
        .wait_refusals(ROUTE, LISTEN, "revocation_unknown", 1)
        .await;
    assert_eq!(responder.requests(), before, "nobody to ask");
    assert_eq!(checks(&gateway, "error", "responder"), 1);
    assert_eq!(backend.accepted(), 0);
}
