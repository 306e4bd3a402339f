//! Shared pieces of the gateway's integration tests: a test PKI in a
//! temporary directory, a gateway started from a config file, peers on
//! 127.0.0.1:0, and reading counters back from the Prometheus text.
//!
//! Every wait that faces the network is bounded by [`WAIT`], so a broken
//! gateway fails a test instead of hanging it.

// Each module of the test binary uses its own part of this module.
#![allow(dead_code)]

pub mod http;

use guichet_testsupport::config::TlsProfile;
pub use guichet_testsupport::config::{app, toml_path};
pub use guichet_testsupport::mllp::{
    ack_for, send_frames, AckPlan, FrameReader, MllpBackend, NOT_HL7_ANSWER,
};
pub use guichet_testsupport::peers::have;
pub use guichet_testsupport::pki::{TestPki as Pki, CA_CN};
use guichet_testsupport::wait::within;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guichet_gateway::{Config, EventBus, Gateway, MessageEvent, Metrics, Reloader};
use guichet_pki::IssuedFiles;
use guichet_tls::{
    ClientAuth, ClientTls, Material, ProfileFiles, Refusal, ServerName, ServerTls, TlsSettings,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

/// The longest any single network step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

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
    within(WAIT, what, fut).await
}

// ---------------------------------------------------------------- PKI

/// What a client holding a certificate of the test CA uses.
pub trait PkiClient {
    fn client(&self, cert: Option<&IssuedFiles>) -> ClientTls;
}

impl PkiClient for Pki {
    fn client(&self, cert: Option<&IssuedFiles>) -> ClientTls {
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

/// `[gateway]` with the file watcher off unless `watch` is given.
pub fn gateway_section(drain: &str, watch: &str) -> String {
    format!("[gateway]\ndrain_timeout = \"{drain}\"\nwatch_interval = \"{watch}\"\n\n")
}

/// `[tls.NAME]` with our certificate, the CA bundle and, if given, the CRL.
pub fn profile(name: &str, own: Option<&IssuedFiles>, ca: &Path, crl: Option<&Path>) -> String {
    let mut profile = TlsProfile::new(name).ca(ca);
    if let Some(own) = own {
        profile = profile.cert(&own.cert, &own.key);
    }
    if let Some(crl) = crl {
        profile = profile.crl(crl);
    }
    profile.to_string()
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
