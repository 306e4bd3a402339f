//! Shared pieces of the gateway's integration tests: a test PKI in a
//! temporary directory, a gateway started from a config file, peers on
//! 127.0.0.1:0, and reading counters back from the Prometheus text.
//!
//! Every wait that faces the network is bounded by [`WAIT`], so a broken
//! gateway fails a test instead of hanging it.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guichet_gateway::{Config, Gateway, Metrics, Reloader};
use guichet_pki::{CaOptions, IssueRequest, IssuedFiles, Usage};
use guichet_tls::{
    ClientAuth, ClientTls, Material, ProfileFiles, Refusal, ServerName, ServerTls, TlsSettings,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
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
        crls: Vec::new(),
    };
    ClientTls::new(&Material::load(&files).unwrap(), TlsSettings::default()).unwrap()
}

/// A server end presenting `cert`, for TLS peers behind the gateway.
pub fn server_tls(cert: &IssuedFiles, ca: Option<&Path>, auth: ClientAuth) -> ServerTls {
    let files = ProfileFiles {
        cert: Some(cert.cert.clone()),
        key: Some(cert.key.clone()),
        ca: ca.map(Path::to_path_buf),
        crls: Vec::new(),
    };
    let settings = TlsSettings {
        revocation: guichet_tls::RevocationPolicy {
            whole_chain: false,
            allow_unknown: true,
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
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(gateway.run(shutdown.clone()));
        Running {
            metrics,
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
