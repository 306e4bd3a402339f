//! Where a case goes and how its answer comes back: an MLLP peer (plain or
//! TLS), an HTTP(S) service (over keep-alive connections, taken again by
//! the next case), or a drop folder (written under a temporary name,
//! renamed, then the report read from `done/` or `rejected/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::MllpCodec;
use guichet_testkit::TlsClientOptions;
use guichet_tls::{ClientTls, ServerName};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use serde_json::Value as Json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use crate::book::{Case, TargetSpec};
use crate::expect::Answer;

/// The most of an HTTP answer that is read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// A target, ready to send to.
pub struct Target {
    pub name: String,
    pub url: String,
    kind: Kind,
}

enum Kind {
    Mllp(Dial),
    Http {
        dial: Dial,
        https: bool,
        path: String,
        method: http::Method,
        headers: Vec<(String, String)>,
        idle: Idle,
    },
    Folder {
        inbox: PathBuf,
        done: PathBuf,
        rejected: PathBuf,
    },
}

/// How a connection is opened: where, and with which TLS.
struct Dial {
    host: String,
    port: u16,
    tls: Option<(ClientTls, ServerName<'static>)>,
}

/// A stream a request goes over, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Target {
    /// The target `spec` names (its files read as they are written: see
    /// [`TargetSpec::within`]).
    pub fn new(name: &str, spec: &TargetSpec) -> Result<Target, String> {
        let url = spec.url.as_str();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url:?} is not a URL (mllp://, mllps://, http://, https://, folder:///)")
        })?;
        let kind = match scheme {
            "mllp" | "mllps" => Kind::Mllp(dial(rest, scheme == "mllps", spec)?),
            "http" | "https" => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let method = spec.method.as_deref().unwrap_or("POST");
                Kind::Http {
                    dial: dial(authority, scheme == "https", spec)?,
                    https: scheme == "https",
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.to_string()
                    },
                    method: method
                        .parse()
                        .map_err(|_| format!("{method:?} is not an HTTP method"))?,
                    headers: spec
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    idle: Idle::default(),
                }
            }
            "folder" => folder(rest),
            other => {
                return Err(format!(
                    "{url:?}: unknown scheme {other:?} (mllp, mllps, http, https, folder)"
                ))
            }
        };
        Ok(Target {
            name: name.to_string(),
            url: url.to_string(),
            kind,
        })
    }

    /// Closes the connections kept open for the next cases.
    pub fn close_idle(&self) {
        if let Kind::Http { idle, .. } = &self.kind {
            idle.clear();
        }
    }

    /// Sends `case` and reads the answer, within `timeout`; `tag` names
    /// the case's file in a drop folder (unique within the run).
    pub async fn send(&self, case: &Case, tag: &str, timeout: Duration) -> Result<Answer, String> {
        let deadline = Instant::now() + timeout;
        let exchange = async {
            match &self.kind {
                Kind::Mllp(dial) => mllp(dial, &case.body, deadline).await,
                Kind::Http {
                    dial,
                    https,
                    path,
                    method,
                    headers,
                    idle,
                } => {
                    let request = HttpRequest {
                        https: *https,
                        path,
                        method,
                        headers,
                        case,
                    };
                    http_exchange(dial, idle, &request, deadline).await
                }
                Kind::Folder {
                    inbox,
                    done,
                    rejected,
                } => drop_file(inbox, [done, rejected], case, tag).await,
            }
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                ))
            })
    }
}

fn dial(authority: &str, tls: bool, spec: &TargetSpec) -> Result<Dial, String> {
    let (host, port) = authority
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse().ok()?,
            ))
        })
        .ok_or_else(|| format!("{authority:?}: give host:port"))?;
    let tls = match (tls, &spec.ca) {
        (false, _) => None,
        (true, None) => {
            return Err(format!(
                "{authority}: TLS needs a ca (the CA that issued the server's certificate)"
            ))
        }
        (true, Some(ca)) => {
            let options = TlsClientOptions {
                ca: ca.clone(),
                cert: spec.cert.clone(),
                key: spec.key.clone(),
                server_name: spec.server_name.clone(),
            };
            Some(options.build(host).map_err(|e| e.to_string())?)
        }
    };
    Ok(Dial {
        host: host.to_string(),
        port,
        tls,
    })
}

fn folder(path: &str) -> Kind {
    let inbox = PathBuf::from(path);
    let parent = inbox.parent().unwrap_or(&inbox).to_path_buf();
    Kind::Folder {
        done: parent.join("done"),
        rejected: parent.join("rejected"),
        inbox,
    }
}

impl Dial {
    async fn open(&self, deadline: Instant) -> Result<Box<dyn Io>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        let Some((tls, name)) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = tls
            .connect(name.clone(), tcp, left)
            .await
            .map_err(|refusal| format!("TLS refused: {}", refusal.summary()))?;
        Ok(Box::new(stream))
    }
}

/// Sends one MLLP frame and reads the ACK.
async fn mllp(dial: &Dial, body: &[u8], deadline: Instant) -> Result<Answer, String> {
    let stream = dial.open(deadline).await?;
    let mut framed = Framed::new(stream, MllpCodec::new(guichet_hl7::DEFAULT_MAX_FRAME));
    framed
        .send(Bytes::copy_from_slice(body))
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    match framed.next().await {
        Some(Ok(frame)) => Ok(Answer::Ack(
            String::from_utf8_lossy(&frame.payload).into_owned(),
        )),
        Some(Err(e)) => Err(format!("no ACK: {e}")),
        None => Err("the connection closed without an ACK".into()),
    }
}

struct HttpRequest<'a> {
    https: bool,
    path: &'a str,
    method: &'a http::Method,
    headers: &'a [(String, String)],
    case: &'a Case,
}

/// A connection's sending half: HTTP/1.1, one request at a time.
type Sender = SendRequest<Full<Bytes>>;

/// A target's idle keep-alive connections, for the next cases: a TLS
/// handshake (and its allocations) per connection rather than per case.
/// Each was in use once, so there are never more than cases were sent at
/// once: the book's concurrency.
#[derive(Default)]
struct Idle(std::sync::Mutex<Vec<Sender>>);

impl Idle {
    /// An idle connection the peer has not closed, ready for a request.
    async fn take(&self) -> Option<Sender> {
        loop {
            let mut sender = self.0.lock().ok()?.pop()?;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put(&self, sender: Sender) {
        if let Ok(mut idle) = self.0.lock() {
            idle.push(sender);
        }
    }

    fn clear(&self) {
        if let Ok(mut idle) = self.0.lock() {
            idle.clear();
        }
    }
}

impl HttpRequest<'_> {
    fn build(&self, dial: &Dial) -> Result<http::Request<Full<Bytes>>, String> {
        let scheme = if self.https { "https" } else { "http" };
        let content_type = self
            .case
            .content_type
            .clone()
            .unwrap_or_else(|| guess(&self.case.body).into());
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(format!(
                "{scheme}://{}:{}{}",
                dial.host, dial.port, self.path
            ))
            .header(http::header::HOST, format!("{}:{}", dial.host, dial.port))
            .header(http::header::CONTENT_TYPE, content_type);
        for (name, value) in self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(self.case.body.clone()))
            .map_err(|e| format!("HTTP: {e}"))
    }
}

/// One HTTP/1.1 request, on an idle connection of the target's when one
/// is left open, else on a new one; the connection is kept once the
/// answer is read.
async fn http_exchange(
    dial: &Dial,
    idle: &Idle,
    request: &HttpRequest<'_>,
    deadline: Instant,
) -> Result<Answer, String> {
    let mut http_request = request.build(dial)?;
    if let Some(mut sender) = idle.take().await {
        match sender.try_send_request(http_request).await {
            Ok(response) => return read_answer(sender, response, idle).await,
            // Closed before the request went out: it goes on a new one.
            Err(mut refused) => match refused.take_message() {
                Some(unsent) => http_request = unsent,
                None => return Err(format!("HTTP: {}", refused.into_error())),
            },
        }
    }
    let stream = dial.open(deadline).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    let response = sender
        .send_request(http_request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    read_answer(sender, response, idle).await
}

/// The status and the whole body; the connection goes back to `idle`.
async fn read_answer(
    sender: Sender,
    response: http::Response<Incoming>,
    idle: &Idle,
) -> Result<Answer, String> {
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("the answer could not be read: {e}"))?
        .to_bytes();
    idle.put(sender);
    Ok(Answer::Http {
        status,
        body: body.to_vec(),
    })
}

/// The content type of a body by its first byte.
fn guess(body: &[u8]) -> &'static str {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => "application/xml",
        Some(b'{') if body.windows(14).any(|w| w == b"\"resourceType\"") => "application/fhir+json",
        Some(b'{') | Some(b'[') => "application/json",
        Some(b'M') if body.starts_with(b"MSH") => "x-application/hl7-v2+er7",
        _ => "application/octet-stream",
    }
}

/// Drops the case's file (written under a hidden name, then renamed) and
/// waits for its report in `done/` or `rejected/`.
async fn drop_file(
    inbox: &Path,
    finished: [&PathBuf; 2],
    case: &Case,
    tag: &str,
) -> Result<Answer, String> {
    let hidden = inbox.join(format!(".{tag}.tmp"));
    std::fs::write(&hidden, &case.body)
        .map_err(|e| format!("cannot write {}: {e}", hidden.display()))?;
    std::fs::rename(&hidden, inbox.join(tag)).map_err(|e| format!("cannot drop {tag}: {e}"))?;
    let suffix = format!("-{tag}.report.json");
    loop {
        for (folder, outcome) in finished.iter().zip(["done", "rejected"]) {
            if let Some(report) = find_report(folder, &suffix) {
                return Ok(Answer::Folder {
                    outcome: outcome.to_string(),
                    report,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The report in `folder` whose name ends with `suffix`.
fn find_report(folder: &Path, suffix: &str) -> Option<Json> {
    let entry = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(suffix))?;
    serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
}
