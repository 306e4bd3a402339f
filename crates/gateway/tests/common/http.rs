//! Pieces of the `http` route tests: upstream servers (plain, or TLS that
//! requires a client certificate) reporting exactly what reached them,
//! curl as the outside client, and a keep-alive client (hyper over rustls)
//! for tests that need to hold one connection across requests.
//!
//! Every upstream and client task lives in the test's runtime and ends
//! with it; every wait is bounded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use guichet_pki::IssuedFiles;
use guichet_tls::{
    Allowlist, AppName, AppRule, ClientAuth, ClientTls, Material, ProfileFiles, ServerName,
    ServerTls, TlsSettings,
};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{bounded, header_values, tcp, WAIT};
use guichet_testsupport::http::drain;

/// How long an upstream takes to answer a request whose path holds
/// `/slow`: far beyond the `response_timeout` tests set, and finite.
pub const SLOW: Duration = Duration::from_secs(4);

/// ALPN protocols as guichet's listener and https upstreams offer them.
pub const H2_AND_H1: [&[u8]; 2] = [b"h2", b"http/1.1"];

// ---------------------------------------------------------- upstream

/// One request as an upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as received.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// Body bytes read, and the error that cut the body if one did.
    pub body_bytes: u64,
    pub body_error: Option<String>,
    /// TLS upstreams: the application whose certificate the client
    /// (guichet) presented.
    pub peer: Option<String>,
}

impl Seen {
    /// Every value of header `name` (lower case).
    pub fn all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name).collect()
    }

    /// The value of a header that must be there exactly once.
    pub fn one(&self, name: &str) -> &str {
        match self.all(name).as_slice() {
            [one] => one,
            other => panic!("header {name}: expected one value, got {other:?} in {self:#?}"),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "version": self.version,
            "headers": self.headers,
            "body_bytes": self.body_bytes,
            "body_error": self.body_error,
            "peer": self.peer,
        })
    }
}

/// An HTTP upstream on 127.0.0.1 (HTTP/1.1 and HTTP/2) that reads each
/// request's body to its end and answers 200 with a JSON report of what
/// it received (see [`Seen`]); paths holding `/slow` wait [`SLOW`] first.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TLS upstreams: handshakes that failed (e.g. no client certificate).
    refused: Arc<AtomicUsize>,
}

impl Upstream {
    /// A plain `http://` upstream.
    pub async fn plain() -> Upstream {
        Self::start(None).await
    }

    /// An `https://` upstream with this server end (ALPN and client
    /// certificate policy are the caller's).
    pub async fn tls(tls: ServerTls) -> Upstream {
        Self::start(Some(tls)).await
    }

    async fn start(tls: Option<ServerTls>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            refused: Arc::default(),
        };
        let this = upstream.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(this.clone().connection(tcp, tls.clone()));
            }
        });
        upstream
    }

    async fn connection(self, tcp: tokio::net::TcpStream, tls: Option<ServerTls>) {
        match tls {
            None => self.serve(tcp, None).await,
            Some(tls) => match tls.accept(tcp, WAIT).await {
                Ok((stream, peer)) => {
                    let peer = peer.map(|p| p.app.to_string());
                    self.serve(stream, peer).await;
                }
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            },
        }
    }

    async fn serve<S>(self, io: S, peer: Option<String>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| {
            let (seen, peer) = (self.seen.clone(), peer.clone());
            async move { Ok::<_, Infallible>(answer(request, seen, peer).await) }
        });
        let _ = auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), service)
            .await;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order of completion.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The only request received so far.
    pub fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:#?}");
        seen[0].clone()
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn answer(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    peer: Option<String>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    if path.contains("/slow") {
        tokio::time::sleep(SLOW).await;
    }
    let (body_bytes, body_error) = drain(body, |_| {}).await;
    let report = Seen {
        method: parts.method.to_string(),
        path,
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), value)
            })
            .collect(),
        body_bytes,
        body_error,
        peer,
    };
    let json = report.to_json().to_string();
    seen.lock().unwrap().push(report);
    Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", "echo")
        .body(Full::new(Bytes::from(json)))
        .unwrap()
}

/// The server end of an https upstream: `cert`, ALPN h2 and http/1.1, and
/// a client certificate required from `ca` with CN `client_cn` (admitted
/// as the application `guichet`).
pub fn upstream_mtls(cert: &IssuedFiles, ca: &Path, client_cn: &str) -> ServerTls {
    upstream_mtls_alpn(cert, ca, client_cn, &H2_AND_H1)
}

/// [`upstream_mtls`] offering only the protocols of `alpn`.
pub fn upstream_mtls_alpn(
    cert: &IssuedFiles,
    ca: &Path,
    client_cn: &str,
    alpn: &[&[u8]],
) -> ServerTls {
    let files = ProfileFiles {
        cert: Some(cert.cert.clone()),
        key: Some(cert.key.clone()),
        ca: Some(ca.to_path_buf()),
        ..ProfileFiles::default()
    };
    let rule = AppRule {
        cn: Some(client_cn.to_string()),
        ..AppRule::named(AppName::new("guichet"))
    };
    let auth = ClientAuth::Required(Allowlist::new(vec![Arc::new(rule)]));
    let settings = TlsSettings {
        revocation: guichet_tls::RevocationPolicy {
            allow_unknown: true,
            ..guichet_tls::RevocationPolicy::default()
        },
        ..TlsSettings::default()
    };
    ServerTls::with_alpn(&Material::load(&files).unwrap(), auth, settings, alpn).unwrap()
}

// -------------------------------------------------------------- curl

/// curl pointed at a gateway listener: the name the gateway's certificate
/// carries, resolved to the listener's address; the CA that issued it,
/// and the client certificate to present.
#[derive(Clone)]
pub struct Curl {
    pub addr: SocketAddr,
    /// Host name in the URL (and the certificate).
    pub name: String,
    pub ca: PathBuf,
    pub cert: Option<IssuedFiles>,
    /// Where response heads and bodies are written.
    pub dir: PathBuf,
}

/// What curl reported.
pub struct CurlOut {
    /// curl's exit code (0: a response was received, whatever its status).
    pub exit: i32,
    /// 0 when no response came.
    pub status: u16,
    /// `1.1` or `2`; `0` when no response came.
    pub version: String,
    /// The last response head's headers, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl std::fmt::Debug for CurlOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut body = self.text();
        if body.len() > 600 {
            let cut = (600..=body.len()).find(|&i| body.is_char_boundary(i));
            body.truncate(cut.unwrap_or(body.len()));
            body += "...";
        }
        f.debug_struct("CurlOut")
            .field("exit", &self.exit)
            .field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &body)
            .field("stderr", &self.stderr)
            .finish()
    }
}

impl CurlOut {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values(&self.headers, name).next()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// What the echo upstream reported (the response must be its 200).
    pub fn echoed(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?} / {}", self.text());
        assert_eq!(self.header("x-upstream"), Some("echo"), "{self:?}");
        self.json()
    }

    /// See [`problem`].
    #[track_caller]
    pub fn problem(&self, status: u16, rule: Option<&str>) -> Value {
        assert_eq!(self.status, status, "{self:?} / {}", self.text());
        problem(
            self.header("content-type"),
            self.header("x-upstream"),
            &self.body,
            status,
            rule,
        )
    }
}

/// Checks a problem answer of guichet's own: problem+json with `status`,
/// the matched rule named (or no `rule` member), no application name
/// (the allowlist stays private). Returns the problem.
#[track_caller]
pub fn problem(
    content_type: Option<&str>,
    from_upstream: Option<&str>,
    body: &[u8],
    status: u16,
    rule: Option<&str>,
) -> Value {
    let text = String::from_utf8_lossy(body);
    assert_eq!(content_type, Some("application/problem+json"), "{text}");
    assert_eq!(from_upstream, None, "the upstream answered: {text}");
    let problem: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("problem is not JSON ({e}): {text}"));
    assert_eq!(problem["type"], "about:blank", "{problem}");
    assert_eq!(problem["status"], status, "{problem}");
    assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(problem["detail"].as_str().is_some(), "{problem}");
    match rule {
        Some(rule) => {
            assert_eq!(problem["rule"], rule, "{problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(rule), "{problem}");
        }
        None => assert!(problem.get("rule").is_none(), "{problem}"),
    }
    assert!(!text.contains("partner"), "an app name leaked: {text}");
    assert!(!text.contains("allow"), "the allowlist leaked: {text}");
    problem
}

static CURL_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Curl {
    /// The URL of `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", self.name, self.addr.port())
    }

    /// The same gateway with another client certificate.
    pub fn with_cert(&self, cert: Option<&IssuedFiles>) -> Curl {
        Curl {
            cert: cert.cloned(),
            ..self.clone()
        }
    }

    /// The base arguments: quiet but errors shown, bounded, the name
    /// resolved to the listener, the CA, the client certificate.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            "20".into(),
            "--resolve".into(),
            format!("{}:{}:{}", self.name, self.addr.port(), self.addr.ip()),
            "--cacert".into(),
            self.ca.display().to_string(),
        ];
        if let Some(cert) = &self.cert {
            args.extend([
                "--cert".into(),
                cert.cert.display().to_string(),
                "--key".into(),
                cert.key.display().to_string(),
            ]);
        }
        args
    }

    /// `curl [base args] EXTRA URL(path)`.
    pub async fn run(&self, path: &str, extra: &[&str]) -> CurlOut {
        self.run_with_stdin(path, extra, None).await
    }

    /// Like [`Curl::run`], with `stdin` as curl's standard input (for
    /// `-T -`, a body of unknown length).
    pub async fn run_with_stdin(
        &self,
        path: &str,
        extra: &[&str],
        stdin: Option<PathBuf>,
    ) -> CurlOut {
        let n = CURL_RUNS.fetch_add(1, Ordering::SeqCst);
        let head = self.dir.join(format!("curl-{n}.head"));
        let body = self.dir.join(format!("curl-{n}.body"));
        let mut args = self.args();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend([
            "-D".into(),
            head.display().to_string(),
            "-o".into(),
            body.display().to_string(),
            "-w".into(),
            "%{json}".into(),
            self.url(path),
        ]);
        let output = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("curl");
            cmd.args(&args);
            match stdin {
                Some(file) => cmd.stdin(std::fs::File::open(file).unwrap()),
                None => cmd.stdin(Stdio::null()),
            };
            cmd.output()
                .unwrap_or_else(|e| panic!("cannot run curl {args:?}: {e}"))
        });
        let output = tokio::time::timeout(Duration::from_secs(30), output)
            .await
            .expect("curl within its --max-time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let info: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("curl -w %{{json}} not JSON ({e}): {stdout}"));
        let headers = std::fs::read_to_string(&head)
            .map(|text| last_head(&text))
            .unwrap_or_default();
        CurlOut {
            exit: output.status.code().unwrap_or(-1),
            status: info["response_code"].as_u64().unwrap_or(0) as u16,
            version: info["http_version"].as_str().unwrap_or("0").to_string(),
            headers,
            body: std::fs::read(&body).unwrap_or_default(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The headers of the last response head in a `curl -D` dump (an interim
/// `100 Continue` comes first).
fn last_head(text: &str) -> Vec<(String, String)> {
    let head = text
        .split("\r\n\r\n")
        .filter(|block| !block.trim().is_empty())
        .last()
        .unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

// ------------------------------------------------------- keep-alive

/// A client end with `cert`, trusting `ca`, offering `alpn`.
pub fn alpn_client(cert: Option<&IssuedFiles>, ca: &Path, alpn: &[&[u8]]) -> ClientTls {
    let files = ProfileFiles {
        cert: cert.map(|c| c.cert.clone()),
        key: cert.map(|c| c.key.clone()),
        ca: Some(ca.to_path_buf()),
        ..ProfileFiles::default()
    };
    ClientTls::with_alpn(
        &Material::load(&files).unwrap(),
        super::peer_settings(),
        alpn,
    )
    .unwrap()
}

/// A request body of [`KeepAlive`].
pub type ClientBody = BoxBody<Bytes, Infallible>;

/// A body of known length (`Content-Length`).
pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

/// A body of unknown length, in 64 KiB frames: chunked on HTTP/1.1, no
/// `content-length` on HTTP/2.
pub fn unsized_body(bytes: Bytes) -> ClientBody {
    let frames: Vec<Result<hyper::body::Frame<Bytes>, Infallible>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<ClientBody>),
    H2(hyper::client::conn::http2::SendRequest<ClientBody>),
}

/// One client connection to the gateway, kept open across requests:
/// HTTP/1.1 keep-alive or HTTP/2. A request fails rather than reconnect,
/// so a success proves the connection is still the same.
pub struct KeepAlive {
    sender: Sender,
    name: String,
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// See [`problem`].
    #[track_caller]
    pub fn problem(&self, status: u16, rule: Option<&str>) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        problem(
            self.header("content-type"),
            self.header("x-upstream"),
            &self.body,
            status,
            rule,
        )
    }
}

impl KeepAlive {
    /// Connects with `tls` to `addr` (certificate name `name`); HTTP/2 if
    /// `h2`, else HTTP/1.1 (the ALPN the client end offers must agree).
    pub async fn connect(tls: &ClientTls, addr: SocketAddr, name: &str, h2: bool) -> KeepAlive {
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let stream = tls
            .connect(server_name, tcp(addr).await, WAIT)
            .await
            .unwrap_or_else(|e| panic!("TLS to the gateway: {e:?}"));
        let io = TokioIo::new(stream);
        let sender = if h2 {
            let (sender, conn) = bounded(
                "HTTP/2 handshake",
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = bounded(
                "HTTP/1.1 handshake",
                hyper::client::conn::http1::handshake(io),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        KeepAlive {
            sender,
            name: name.to_string(),
        }
    }

    /// A request for `path` with the right URI form for the protocol.
    pub fn request(&self, method: &str, path: &str) -> ::http::request::Builder {
        let builder = Request::builder().method(method);
        match self.sender {
            Sender::H1(_) => builder.uri(path).header("host", self.name.as_str()),
            Sender::H2(_) => builder.uri(format!("https://{}{path}", self.name)),
        }
    }

    /// Sends `request` on this connection and reads the whole response,
    /// within [`WAIT`].
    pub async fn send(&mut self, request: Request<ClientBody>) -> Result<Answer, String> {
        let sent = async {
            let response = match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                    s.send_request(request).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                    s.send_request(request).await
                }
            }
            .map_err(|e| format!("request: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(WAIT, sent).await {
            Ok(result) => result,
            Err(_) => Err(format!("no response within {WAIT:?}")),
        }
    }

    /// `GET path` with no body.
    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        let request = self.request("GET", path).body(full("")).unwrap();
        self.send(request).await
    }
}
