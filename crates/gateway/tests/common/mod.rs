//! Shared pieces of the gateway's integration tests: a test PKI in a
//! temporary directory, a gateway started from a config file, peers on
//! 127.0.0.1:0, and reading counters back from the Prometheus text.
//!
//! Every wait that faces the network is bounded by [`WAIT`], so a broken
//! gateway fails a test instead of hanging it.

// Each module of the test binary uses its own part of this module.
#![allow(dead_code)]

pub mod http;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use guichet_gateway::{Config, EventBus, Gateway, MessageEvent, Metrics, Reloader};
use guichet_hl7::{
    accept_ack_due, application_ack_due, build_ack, frame, AckCode, AckRequest, Header, Message,
    MllpCodec, ParseOptions,
};
use guichet_pki::{CaOptions, IssueRequest, IssuedFiles, Usage};
use guichet_tls::{
    ClientAuth, ClientTls, Material, ProfileFiles, Refusal, ServerName, ServerTls, TlsSettings,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// The longest any single network step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// The issuer CN every certificate of [`Pki::new`] carries.
pub const CA_CN: &str = "guichet test CA";

/// Label values as `Metrics::render` writes them (snake_case, fixed
/// sets defined in `guichet_gateway::metrics`).
pub const LISTEN: &str = "listen";
pub const FORWARD: &str = "forward";
pub const UPSTREAM: &str = "upstream";
pub const DOWNSTREAM: &str = "downstream";
pub mod outcome {
    pub const CLOSED: &str = "closed";
    pub const REFUSED_TLS: &str = "refused_tls";
    pub const REFUSED_LIMIT: &str = "refused_limit";
    pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
    pub const UPSTREAM_TLS: &str = "upstream_tls";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    pub const DRAINED: &str = "drained";
    pub const ERROR: &str = "error";
    pub const FRAME_ERROR: &str = "frame_error";
    pub const FRAME_TIMEOUT: &str = "frame_timeout";
    pub const PEER_CLOSED: &str = "peer_closed";
    pub const RELOAD_OK: &str = "ok";
    pub const RELOAD_ERROR: &str = "error";
}

/// Bounds `fut` by [`WAIT`], naming `what` when it runs out.
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing within {WAIT:?}"),
    }
}

// ---------------------------------------------------------------- PKI

/// A temporary directory holding one test CA (`ca/`) and the gateway's
/// config file.
pub struct Pki {
    pub tmp: tempfile::TempDir,
    pub ca: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let ca = tmp.path().join("ca");
        guichet_pki::init(&ca, &CaOptions::default()).unwrap();
        Pki { tmp, ca }
    }

    /// A second, independent CA in the same temporary directory.
    pub fn other_ca(&self, dir: &str) -> PathBuf {
        let path = self.tmp.path().join(dir);
        let opts = CaOptions {
            common_name: "another test CA".into(),
            ..CaOptions::default()
        };
        guichet_pki::init(&path, &opts).unwrap();
        path
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.ca.join("ca.pem")
    }

    pub fn crl(&self) -> PathBuf {
        self.ca.join("ca.crl")
    }

    pub fn config_path(&self) -> PathBuf {
        self.tmp.path().join("guichet.toml")
    }

    /// A certificate for `name` (CN and DNS SAN) with `usage`.
    pub fn issue(&self, name: &str, usage: Usage) -> IssuedFiles {
        self.issue_with(&IssueRequest {
            usage,
            ..IssueRequest::new(name)
        })
    }

    pub fn issue_with(&self, req: &IssueRequest) -> IssuedFiles {
        guichet_pki::issue(&self.ca, req).unwrap()
    }

    /// What a client holding `cert` uses to reach a server of this CA.
    pub fn client(&self, cert: Option<&IssuedFiles>) -> ClientTls {
        client_tls(cert, &self.ca_cert())
    }
}

/// A fresh client end (no session to resume) trusting `ca`.
pub fn client_tls(cert: Option<&IssuedFiles>, ca: &Path) -> ClientTls {
    let files = ProfileFiles {
        cert: cert.map(|c| c.cert.clone()),
        key: cert.map(|c| c.key.clone()),
        ca: Some(ca.to_path_buf()),
        ..ProfileFiles::default()
    };
    ClientTls::new(&Material::load(&files).unwrap(), peer_settings()).unwrap()
}

/// Test peers hold no CRL: revocation is the gateway's side of each test.
pub fn peer_settings() -> TlsSettings {
    TlsSettings {
        revocation: guichet_tls::RevocationPolicy {
            allow_unknown: true,
            ..guichet_tls::RevocationPolicy::default()
        },
        ..TlsSettings::default()
    }
}

/// A server end presenting `cert`, for TLS peers behind the gateway.
pub fn server_tls(cert: &IssuedFiles, ca: Option<&Path>, auth: ClientAuth) -> ServerTls {
    let files = ProfileFiles {
        cert: Some(cert.cert.clone()),
        key: Some(cert.key.clone()),
        ca: ca.map(Path::to_path_buf),
        ..ProfileFiles::default()
    };
    let settings = TlsSettings {
        revocation: guichet_tls::RevocationPolicy {
            allow_unknown: true,
            ..guichet_tls::RevocationPolicy::default()
        },
        ..TlsSettings::default()
    };
    ServerTls::new(&Material::load(&files).unwrap(), auth, settings).unwrap()
}

/// The DER of the first certificate in a PEM file.
pub fn cert_der(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

// ------------------------------------------------------------- config

/// A path as a TOML string.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().unwrap())
}

/// `[gateway]` with the file watcher off unless `watch` is given.
pub fn gateway_section(drain: &str, watch: &str) -> String {
    format!("[gateway]\ndrain_timeout = \"{drain}\"\nwatch_interval = \"{watch}\"\n\n")
}

/// `[tls.NAME]` with our certificate, the CA bundle and, if given, the CRL.
pub fn profile(name: &str, own: Option<&IssuedFiles>, ca: &Path, crl: Option<&Path>) -> String {
    let mut text = format!("[tls.{name}]\nca = {}\n", toml_path(ca));
    if let Some(own) = own {
        text += &format!(
            "cert = {}\nkey = {}\n",
            toml_path(&own.cert),
            toml_path(&own.key)
        );
    }
    if let Some(crl) = crl {
        text += &format!("crl = [{}]\n", toml_path(crl));
    }
    text + "\n"
}

/// An `[[app]]` recognised by CN and by the test CA as issuer.
pub fn app(name: &str, cn: &str) -> String {
    format!("[[app]]\nname = \"{name}\"\ncn = \"{cn}\"\nissuer_cn = \"{CA_CN}\"\n\n")
}

// ------------------------------------------------------------ gateway

/// A gateway running from a config file, with everything a test reads.
pub struct Running {
    pub metrics: Metrics,
    /// The gateway's message events (`mllp` routes); subscribe before
    /// sending to see every event.
    pub events: EventBus,
    pub reloader: Reloader,
    pub shutdown: CancellationToken,
    addrs: BTreeMap<String, SocketAddr>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Writes `text` to `path`, binds every route and runs the gateway.
    pub async fn start(path: &Path, text: &str) -> Running {
        std::fs::write(path, text).unwrap();
        let config = Config::load(path).unwrap();
        let names: Vec<String> = config
            .routes
            .iter()
            .map(|r| r.name.as_str().to_string())
            .collect();
        let metrics = Metrics::default();
        let gateway = Gateway::bind(config, metrics.clone()).await.unwrap();
        let addrs = names
            .into_iter()
            .map(|name| {
                let addr = gateway.local_addr(&name).unwrap();
                (name, addr)
            })
            .collect();
        let reloader = gateway.reloader();
        let events = gateway.events();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(gateway.run(shutdown.clone()));
        Running {
            metrics,
            events,
            reloader,
            shutdown,
            addrs,
            task: Some(task),
        }
    }

    pub fn addr(&self, route: &str) -> SocketAddr {
        self.addrs[route]
    }

    /// The value of one counter or gauge; 0 when it was never touched.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        metric_value(&self.metrics.render(), name, labels)
    }

    /// Polls until the metric equals `want`, or fails with the full text.
    pub async fn wait_value(&self, name: &str, labels: &[(&str, &str)], want: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.metrics.render();
            if metric_value(&text, name, labels) == want {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{name}{labels:?} never reached {want} within {WAIT:?}:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn refusals(&self, route: &str, side: &str, reason: &str) -> u64 {
        self.value(
            "guichet_refusals_total",
            &[("route", route), ("side", side), ("reason", reason)],
        )
    }

    pub async fn wait_refusals(&self, route: &str, side: &str, reason: &str, want: u64) {
        self.wait_value(
            "guichet_refusals_total",
            &[("route", route), ("side", side), ("reason", reason)],
            want,
        )
        .await;
    }

    pub fn connections(&self, route: &str, outcome: &str) -> u64 {
        self.value(
            "guichet_connections_total",
            &[("route", route), ("outcome", outcome)],
        )
    }

    pub async fn wait_connections(&self, route: &str, outcome: &str, want: u64) {
        self.wait_value(
            "guichet_connections_total",
            &[("route", route), ("outcome", outcome)],
            want,
        )
        .await;
    }

    pub async fn wait_open(&self, route: &str, want: u64) {
        self.wait_value("guichet_connections_open", &[("route", route)], want)
            .await;
    }

    pub fn reloads(&self, outcome: &str) -> u64 {
        self.value("guichet_reloads_total", &[("outcome", outcome)])
    }

    pub fn bytes(&self, route: &str, direction: &str) -> u64 {
        self.value(
            "guichet_bytes_total",
            &[("route", route), ("direction", direction)],
        )
    }

    /// `guichet_messages_total`: messages on an `mllp` route by outcome.
    pub fn messages(&self, route: &str, outcome: &str) -> u64 {
        self.value(
            "guichet_messages_total",
            &[("route", route), ("outcome", outcome)],
        )
    }

    /// `guichet_frame_errors_total` of one route and kind.
    pub fn frame_errors(&self, route: &str, kind: &str) -> u64 {
        self.value(
            "guichet_frame_errors_total",
            &[("route", route), ("kind", kind)],
        )
    }

    pub fn ack_mismatches(&self, route: &str) -> u64 {
        self.value("guichet_ack_mismatches_total", &[("route", route)])
    }

    pub fn acks_overdue(&self, route: &str) -> u64 {
        self.value("guichet_acks_overdue_total", &[("route", route)])
    }

    /// Messages counted on `route` under any outcome.
    pub fn all_messages(&self, route: &str) -> u64 {
        sum_family_where(&self.metrics.render(), "guichet_messages_total", route)
    }

    /// Frame errors counted on `route` under any kind.
    pub fn all_frame_errors(&self, route: &str) -> u64 {
        sum_family_where(&self.metrics.render(), "guichet_frame_errors_total", route)
    }

    /// Every refusal counted on any route, side and reason.
    pub fn all_refusals(&self) -> u64 {
        sum_family(&self.metrics.render(), "guichet_refusals_total")
    }

    /// Cancels the shutdown token and waits for `run` to return.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            bounded("gateway run() after shutdown", task).await.unwrap();
        }
    }

    /// The `run` task, for tests that watch it end themselves.
    pub fn take_task(&mut self) -> JoinHandle<()> {
        self.task.take().unwrap()
    }
}

/// One sample line: name, labels, value.
fn parse_sample(line: &str) -> Option<(&str, BTreeMap<&str, &str>, f64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k, v.trim_matches('"')))
        })
        .collect();
    Some((name, labels, value.parse().ok()?))
}

/// The sample of `name` whose label set is exactly `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter_map(parse_sample)
        .find(|(n, l, _)| *n == name && *l == want)
        .map_or(0, |(_, _, v)| v as u64)
}

fn sum_family(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(n, _, _)| *n == name)
        .map(|(_, _, v)| v as u64)
        .sum()
}

/// The sum of `name` over the samples of one route.
fn sum_family_where(text: &str, name: &str, route: &str) -> u64 {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(n, l, _)| *n == name && l.get("route") == Some(&route))
        .map(|(_, _, v)| v as u64)
        .sum()
}

// -------------------------------------------------------------- peers

/// A peer behind the gateway, with what it saw.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    /// Application admitted by a TLS backend, per connection.
    peers: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    async fn bind() -> (Backend, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            received: Arc::default(),
            peers: Arc::default(),
        };
        (backend, listener)
    }

    /// TCP connections accepted (for TLS backends: handshakes completed).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every byte received, over all connections.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    pub fn peers(&self) -> Vec<String> {
        self.peers.lock().unwrap().clone()
    }

    /// The `forward = "..."` value that reaches this backend.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

/// Echoes every byte back until the client's end of stream, then closes.
pub async fn echo_backend() -> Backend {
    let (backend, listener) = Backend::bind().await;
    let seen = backend.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(echo(tcp, seen.received.clone()));
        }
    });
    backend
}

/// Reads the whole request to end of stream, and only then sends `reply`
/// and closes: the shape of a half-closed exchange.
pub async fn reply_after_eof_backend(reply: Vec<u8>) -> Backend {
    let (backend, listener) = Backend::bind().await;
    let seen = backend.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            seen.accepted.fetch_add(1, Ordering::SeqCst);
            let (received, reply) = (seen.received.clone(), reply.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                if tcp.read_to_end(&mut request).await.is_err() {
                    return;
                }
                received.lock().unwrap().extend_from_slice(&request);
                let _ = tcp.write_all(&reply).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    backend
}

/// A TLS echo server; with client certificates required it records the
/// admitted application of each connection.
pub async fn tls_echo_backend(tls: ServerTls) -> Backend {
    let (backend, listener) = Backend::bind().await;
    let seen = backend.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, seen) = (tls.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok((stream, peer)) = tls.accept(tcp, WAIT).await else {
                    return;
                };
                seen.accepted.fetch_add(1, Ordering::SeqCst);
                if let Some(peer) = peer {
                    seen.peers.lock().unwrap().push(peer.app.to_string());
                }
                echo(stream, seen.received.clone()).await;
            });
        }
    });
    backend
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, received: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                received.lock().unwrap().extend_from_slice(&buf[..n]);
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// An address on which nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ------------------------------------------------------------ clients

pub async fn tcp(addr: SocketAddr) -> TcpStream {
    bounded("TCP connect", TcpStream::connect(addr))
        .await
        .unwrap()
}

/// Connects and runs the TLS handshake; the server's certificate must
/// carry `name`.
pub async fn tls(
    client: &ClientTls,
    addr: SocketAddr,
    name: &str,
) -> Result<TlsStream<TcpStream>, Refusal> {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    client.connect(server_name, tcp(addr).await, WAIT).await
}

/// The DER of the certificate the server presented.
pub fn server_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends `msg` and checks the exact same bytes come back.
pub async fn echo_once<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, msg: &[u8]) {
    bounded("write", stream.write_all(msg)).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    bounded("echo", stream.read_exact(&mut back)).await.unwrap();
    assert_eq!(back, msg, "echo differs");
}

/// Reads until the peer closes; fails if any byte arrives. `Ok` is a
/// clean end of stream (FIN, or close_notify under TLS); `Err` a reset,
/// an alert or a truncated TLS stream.
pub async fn expect_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(), std::io::Error> {
    let mut buf = [0u8; 1024];
    match bounded("close", stream.read(&mut buf)).await {
        Ok(0) => Ok(()),
        Ok(n) => panic!(
            "expected the connection to be closed, got {n} byte(s): {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => Err(e),
    }
}

/// A client the gateway refuses: the handshake fails, or (TLS 1.3) the
/// first read after it does. Never a byte of data.
pub async fn expect_refused(client: &ClientTls, addr: SocketAddr, name: &str) {
    let Ok(mut stream) = tls(client, addr, name).await else {
        return;
    };
    // The request may or may not be written before the alert arrives.
    let _ = bounded("write", stream.write_all(b"MSH|request\r")).await;
    let _ = expect_closed(&mut stream).await;
}

/// A recognisable payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"0123456789abcdefghij"[i % 20]).collect()
}

// -------------------------------------------------------- MLLP peers

/// Label values of `guichet_messages_total` and `guichet_frame_errors_total`
/// (`MessageOutcome::label` and the relay's fixed kinds).
pub mod mllp_label {
    pub const UNACKNOWLEDGED: &str = "unacknowledged";
    pub const REJECTED_NOT_HL7: &str = "rejected_not_hl7";
    pub const PASSED_NOT_HL7: &str = "passed_not_hl7";
    pub const UNSOLICITED_ACK: &str = "unsolicited_ack";
    pub const TOO_LARGE: &str = "too_large";
    pub const TRUNCATED: &str = "truncated";
    pub const DISCARDED_BYTES: &str = "discarded_bytes";
}

/// How an MLLP receiver behind the gateway answers each message.
#[derive(Debug, Clone)]
pub struct AckPlan {
    /// MSA-1 of every ACK.
    pub code: AckCode,
    /// MSA-2 differs from the message's MSH-10.
    pub wrong_id: bool,
    /// Waited before each ACK.
    pub delay: Duration,
    /// Never answer.
    pub silent: bool,
    /// Answer only after reading the sender's end of stream.
    pub after_eof: bool,
    /// An ACK payload sent right after accept, before anything is read.
    pub unsolicited: Option<Vec<u8>>,
    /// Answer frames that are not HL7 with an AR (as some engines do).
    pub answer_not_hl7: bool,
    /// Enhanced mode as a receiver follows it: one answer per message at
    /// most, the accept ACK (CA) when MSH-15 asks for it, else `code` when
    /// MSH-16 asks for it, else none.
    pub honour_ack_modes: bool,
}

impl AckPlan {
    /// AA to every message, at once.
    pub fn accept() -> AckPlan {
        AckPlan {
            code: AckCode::AA,
            wrong_id: false,
            delay: Duration::ZERO,
            silent: false,
            after_eof: false,
            unsolicited: None,
            answer_not_hl7: false,
            honour_ack_modes: false,
        }
    }

    pub fn code(code: AckCode) -> AckPlan {
        AckPlan {
            code,
            ..AckPlan::accept()
        }
    }
}

/// An MLLP receiver (tokio + `MllpCodec`) answering per its [`AckPlan`],
/// with what it saw and sent. Frames that are not HL7 get no answer.
#[derive(Clone)]
pub struct MllpBackend {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections whose end of stream was read (then closed).
    ended: Arc<AtomicUsize>,
    /// Every byte read, over all connections.
    raw: Arc<Mutex<Vec<u8>>>,
    /// Payloads of the frames read, in order.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Payloads of the frames sent (ACKs), in order.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl MllpBackend {
    pub async fn start(plan: AckPlan) -> MllpBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = MllpBackend {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            ended: Arc::default(),
            raw: Arc::default(),
            received: Arc::default(),
            sent: Arc::default(),
        };
        let seen = backend.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                seen.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(seen.clone().serve(tcp, plan.clone()));
            }
        });
        backend
    }

    /// The `forward = "..."` value that reaches this receiver.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.sent.lock().unwrap().clone()
    }

    /// Waits until `n` connections have reached their end of stream, so
    /// everything the gateway forwarded on them has been read.
    pub async fn wait_ended(&self, n: usize) {
        bounded("backend connections ended", async {
            while self.ended.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(self.ended.load(Ordering::SeqCst), n, "connections ended");
    }

    async fn serve(self, tcp: TcpStream, plan: AckPlan) {
        let (mut rd, mut wr) = tcp.into_split();
        if let Some(ack) = &plan.unsolicited {
            self.sent.lock().unwrap().push(ack.clone());
            let _ = wr.write_all(&frame(ack)).await;
        }
        let mut codec = MllpCodec::new(64 * 1024 * 1024);
        let mut buf = BytesMut::new();
        let mut later = Vec::new();
        loop {
            buf.reserve(64 * 1024);
            let before = buf.len();
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => self.raw.lock().unwrap().extend_from_slice(&buf[before..]),
            }
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                let n = {
                    let mut received = self.received.lock().unwrap();
                    received.push(frame.payload.to_vec());
                    received.len()
                };
                let Some(ack) = answer(&frame.payload, &plan, n) else {
                    continue;
                };
                if plan.after_eof {
                    later.push(ack);
                } else if self.send(&mut wr, ack, plan.delay).await.is_err() {
                    return;
                }
            }
        }
        for ack in later {
            let _ = self.send(&mut wr, ack, Duration::ZERO).await;
        }
        let _ = wr.shutdown().await;
        self.ended.fetch_add(1, Ordering::SeqCst);
    }

    async fn send<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        ack: Vec<u8>,
        delay: Duration,
    ) -> std::io::Result<()> {
        tokio::time::sleep(delay).await;
        // Recorded first: once the sender reads it, it is in `sent`.
        self.sent.lock().unwrap().push(ack.clone());
        wr.write_all(&frame(&ack)).await
    }
}

/// The ACK of the `n`th message, per `plan`; `None` for silence or for a
/// frame that is not HL7.
fn answer(payload: &[u8], plan: &AckPlan, n: usize) -> Option<Vec<u8>> {
    if plan.silent {
        return None;
    }
    // Lenient like real receivers: a BOM or LF segment ends are accepted.
    let Ok(message) = Message::parse_with(payload, ParseOptions::lenient()) else {
        return plan.answer_not_hl7.then(|| NOT_HL7_ANSWER.to_vec());
    };
    let code = match plan.honour_ack_modes {
        true => enhanced_answer(&Header::read(&message), plan.code)?,
        false => plan.code,
    };
    let ack = ack_for(&message, code, &format!("ACK{n}"));
    if !plan.wrong_id {
        return Some(ack);
    }
    let id = Header::read(&message).control_id;
    let msa = format!("\rMSA|{}|{id}", plan.code.as_str());
    let text = String::from_utf8(ack).unwrap();
    assert!(text.contains(&msa), "{text:?}");
    Some(text.replace(&msa, &format!("{msa}-OTHER")).into_bytes())
}

/// The one answer an enhanced-mode receiver gives, if any.
fn enhanced_answer(header: &Header, application: AckCode) -> Option<AckCode> {
    if accept_ack_due(header, AckCode::CA) {
        Some(AckCode::CA)
    } else if application_ack_due(header, application) {
        Some(application)
    } else {
        None
    }
}

/// What a backend with `answer_not_hl7` answers to a frame without MSH.
pub const NOT_HL7_ANSWER: &[u8] =
    b"MSH|^~\\&|DPI|CHU|||20250101000000||ACK|BACKEND1|P|2.5\rMSA|AR|\r";

/// `build_ack` with a fixed timestamp.
pub fn ack_for(message: &Message<'_>, code: AckCode, control_id: &str) -> Vec<u8> {
    build_ack(
        message,
        &AckRequest {
            code,
            control_id,
            timestamp: "20240101120000",
            text: None,
            error: None,
        },
    )
}

/// Frames read from one stream, one at a time, each read bounded by [`WAIT`].
pub struct FrameReader {
    codec: MllpCodec,
    buf: BytesMut,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            codec: MllpCodec::new(64 * 1024 * 1024),
            buf: BytesMut::new(),
        }
    }
}

impl FrameReader {
    /// The next frame's payload; `None` at a clean end of stream.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Option<Vec<u8>> {
        bounded("MLLP frame", async {
            loop {
                if let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                    assert_eq!(frame.discarded, 0, "bytes outside any frame");
                    return Some(frame.payload.to_vec());
                }
                self.buf.reserve(64 * 1024);
                if rd.read_buf(&mut self.buf).await.unwrap() == 0 {
                    let last = self.codec.decode_eof(&mut self.buf).unwrap();
                    return last.map(|f| f.payload.to_vec());
                }
            }
        })
        .await
    }

    /// The next frame, which must come.
    pub async fn frame<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Vec<u8> {
        self.next(rd).await.expect("a frame, got end of stream")
    }

    /// Every frame up to the end of stream.
    pub async fn until_end<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next(rd).await {
            frames.push(frame);
        }
        frames
    }
}

/// Writes `payloads`, each framed, in one write.
pub async fn send_frames<W: AsyncWrite + Unpin>(wr: &mut W, payloads: &[&[u8]]) {
    let bytes: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    bounded("write frames", wr.write_all(&bytes)).await.unwrap();
}

/// The next message event, bounded by [`WAIT`].
pub async fn next_event(rx: &mut broadcast::Receiver<Arc<MessageEvent>>) -> Arc<MessageEvent> {
    bounded("message event", rx.recv()).await.unwrap()
}

/// Fails if an event is waiting.
pub fn no_more_events(rx: &mut broadcast::Receiver<Arc<MessageEvent>>) {
    match rx.try_recv() {
        Err(broadcast::error::TryRecvError::Empty) => {}
        other => panic!("expected no more message events, got {other:?}"),
    }
}

// -------------------------------------------------------------- admin

/// A gateway bound from a config file but not yet running, with its admin
/// server on 127.0.0.1:0 already answering: the order `guichet run` uses.
pub struct Bound {
    pub gateway: Gateway,
    pub admin: guichet_gateway::AdminServer,
    pub metrics: Metrics,
    names: Vec<String>,
}

impl Bound {
    /// Writes `text` to `path`, binds every route and starts the admin
    /// server on the gateway's status board.
    pub async fn new(path: &Path, text: &str) -> Bound {
        std::fs::write(path, text).unwrap();
        let config = Config::load(path).unwrap();
        let names = config
            .routes
            .iter()
            .map(|r| r.name.as_str().to_string())
            .collect();
        let metrics = Metrics::default();
        let gateway = Gateway::bind(config, metrics.clone()).await.unwrap();
        let admin =
            guichet_gateway::AdminServer::start("127.0.0.1:0".parse().unwrap(), gateway.status())
                .unwrap();
        Bound {
            gateway,
            admin,
            metrics,
            names,
        }
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Starts `run`; the admin server keeps serving.
    pub fn run(self) -> WithAdmin {
        let Bound {
            gateway,
            admin,
            metrics,
            names,
        } = self;
        let addrs = names
            .into_iter()
            .map(|name| {
                let addr = gateway.local_addr(&name).unwrap();
                (name, addr)
            })
            .collect();
        let reloader = gateway.reloader();
        let events = gateway.events();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(gateway.run(shutdown.clone()));
        let running = Running {
            metrics,
            events,
            reloader,
            shutdown,
            addrs,
            task: Some(task),
        };
        WithAdmin { running, admin }
    }
}

/// A running gateway and its admin server.
pub struct WithAdmin {
    pub running: Running,
    pub admin: guichet_gateway::AdminServer,
}

impl WithAdmin {
    /// [`Bound::new`] then [`Bound::run`].
    pub async fn start(path: &Path, text: &str) -> WithAdmin {
        Bound::new(path, text).await.run()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// `GET path` on the admin server.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http(self.admin_addr(), "GET", path).await
    }

    /// `/api/status`, which must be a 200 with JSON.
    pub async fn api_status(&self) -> serde_json::Value {
        let response = self.get("/api/status").await;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("/api/status is not JSON ({e}):\n{}", response.body))
    }
}

/// The values of header `name` (lower case), in order, among `headers`
/// as received (names in lower case).
pub fn header_values<'a: 'n, 'n>(
    headers: &'a [(String, String)],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + 'n {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// One HTTP/1.1 response, read to the end of the connection.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values(&self.headers, name).next()
    }

    /// Parses a whole response; the body must be exactly Content-Length
    /// bytes (none for `HEAD`).
    fn parse(raw: &[u8], method: &str) -> HttpResponse {
        let text = String::from_utf8(raw.to_vec()).expect("a UTF-8 response");
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {line:?}"));
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        let response = HttpResponse {
            status,
            headers,
            body: body.to_string(),
        };
        assert_eq!(response.header("transfer-encoding"), None, "{text:?}");
        let length: usize = response
            .header("content-length")
            .unwrap_or_else(|| panic!("no content-length in {text:?}"))
            .parse()
            .unwrap();
        let want = if method == "HEAD" { 0 } else { length };
        assert_eq!(response.body.len(), want, "body length of {text:?}");
        response
    }
}

fn http_request(addr: SocketAddr, method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

/// `METHOD path` on a fresh connection (`Connection: close`), every step
/// bounded by [`WAIT`].
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
    let mut stream = tcp(addr).await;
    let request = http_request(addr, method, path);
    bounded("HTTP request", stream.write_all(request.as_bytes()))
        .await
        .unwrap();
    let mut raw = Vec::new();
    bounded("HTTP response", stream.read_to_end(&mut raw))
        .await
        .unwrap();
    HttpResponse::parse(&raw, method)
}

/// `GET path` with blocking std sockets, from any thread (no runtime).
pub fn http_blocking(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    stream.write_all(http_request(addr, "GET", path).as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(HttpResponse::parse(&raw, "GET"))
}

/// Polls `path` until it answers `want`, or fails with the last answer.
pub async fn wait_status(addr: SocketAddr, path: &str, want: u16) -> HttpResponse {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = http(addr, "GET", path).await;
        if response.status == want {
            return response;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{path} never answered {want} within {WAIT:?}: {response:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
