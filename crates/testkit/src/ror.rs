//! `guichet sim ror`: a stand-in for the national ROR's bed-availability
//! API, so flows can be tested end to end without it.
//!
//! `PATCH /ws-synchro-dispo-lits-fhir/Location?identifier=1<FINESS>/<unit>`
//! changes a unit's capacity records as the national API does (see
//! [`guichet_ror::store`]); `GET` on the same path searches by
//! `identifier` and `_lastUpdated=ge<time>`. Refusals are
//! `OperationOutcome` bodies. Every accepted operation can be recorded as
//! one JSON line. HTTP/1.1, plain or with (mutual) TLS.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use guichet_ror::referential::{Indicators, Referential};
use guichet_ror::store::{Patched, Refusal, Store};
use guichet_tls::{Identity, ServerTls};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::{TlsServerOptions, TlsSetupError};

/// The path of units' `Location`s.
pub const LOCATION_PATH: &str = "/ws-synchro-dispo-lits-fhir/Location";

/// Where a listed client gets an access token (OAuth2 client
/// credentials, the client authenticated by its certificate).
pub const TOKEN_PATH: &str = "/token";

/// A PATCH body larger than this is refused (413).
const MAX_BODY: usize = 1024 * 1024;
/// Bounds a client's TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What `guichet sim ror` is asked to do.
#[derive(Debug)]
pub struct RorOptions {
    pub on: SocketAddr,
    pub tls: Option<TlsServerOptions>,
    pub referential: Referential,
    pub indicators: Option<Indicators>,
    /// Where every accepted operation is appended, one JSON line each.
    pub record: Option<PathBuf>,
    /// The CNs of the client certificates that may get an access token at
    /// `POST /token`; when set, every request on `Location` needs a token
    /// bound to the certificate it came with (RFC 8705). Needs mutual TLS.
    pub token_clients: Vec<String>,
    /// How long a token is good for.
    pub token_lifetime: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RorError {
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("TLS for the ROR simulator: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("cannot open the record {path}: {error}")]
    Record {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("tokens are bound to client certificates: --token-client needs --tls-cert, --tls-key and --tls-ca")]
    TokensWithoutMutualTls,
}

/// A running simulator.
#[derive(Debug)]
pub struct RorHandle {
    local_addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    store: Arc<Mutex<Store>>,
    replays: Replays,
    record: Option<Mutex<std::fs::File>>,
    tls: Option<ServerTls>,
    tokens: Option<Tokens>,
}

/// Binds `opts.on` and serves until `shutdown` is cancelled.
pub async fn serve_ror(
    opts: RorOptions,
    shutdown: CancellationToken,
) -> Result<RorHandle, RorError> {
    let tls = opts.tls.as_ref().map(TlsServerOptions::build).transpose()?;
    let mutual = opts.tls.as_ref().is_some_and(|t| t.ca.is_some());
    if !opts.token_clients.is_empty() && !mutual {
        return Err(RorError::TokensWithoutMutualTls);
    }
    let tokens = (!opts.token_clients.is_empty())
        .then(|| Tokens::new(opts.token_clients.clone(), opts.token_lifetime));
    let record = match &opts.record {
        None => None,
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| RorError::Record {
                    path: path.clone(),
                    error,
                })?;
            Some(Mutex::new(file))
        }
    };
    let bind = |error| RorError::Bind {
        addr: opts.on,
        error,
    };
    let listener = TcpListener::bind(opts.on).await.map_err(bind)?;
    let local_addr = listener.local_addr().map_err(bind)?;
    let store = Arc::new(Mutex::new(Store::new(opts.referential, opts.indicators)));
    let shared = Arc::new(Shared {
        store: store.clone(),
        replays: Replays::default(),
        record,
        tls,
        tokens,
    });
    let shutdown = shutdown.child_token();
    let task = tokio::spawn(accept_loop(listener, shared, shutdown.clone()));
    Ok(RorHandle {
        local_addr,
        store,
        shutdown,
        task: Some(task),
    })
}

impl RorHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every unit with records, as JSON by identifier.
    pub fn dump(&self) -> Json {
        lock(&self.store).dump()
    }

    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the simulator has stopped and its requests ended.
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = connection(tcp, peer, shared) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
    drop(listener);
    tracker.close();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait()).await;
}

async fn connection(tcp: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let builder = hyper::server::conn::http1::Builder::new();
    let served = match &shared.tls {
        None => {
            builder
                .serve_connection(TokioIo::new(tcp), service(&shared, None))
                .await
        }
        Some(tls) => match tls.accept(tcp, HANDSHAKE_TIMEOUT).await {
            Ok((stream, client)) => {
                let client = client.map(|c| c.identity);
                let service = service(&shared, client);
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            Err(refusal) => {
                tracing::info!(%peer, reason = %refusal, "TLS handshake refused");
                return;
            }
        },
    };
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "connection ended");
    }
}

/// The requests of one connection, whose client certificate is `client`.
fn service(
    shared: &Arc<Shared>,
    client: Option<Arc<Identity>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> {
    let shared = shared.clone();
    hyper::service::service_fn(move |request| {
        let (shared, client) = (shared.clone(), client.clone());
        async move { Ok::<_, Infallible>(answer(request, &shared, client.as_deref()).await) }
    })
}

/// The answer to one request.
async fn answer(
    request: Request<Incoming>,
    shared: &Shared,
    client: Option<&Identity>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if let Some(tokens) = &shared.tokens {
        if parts.uri.path() == TOKEN_PATH && parts.method == Method::POST {
            return tokens.grant(body, client).await;
        }
        if !tokens.admits(&parts.headers, client) {
            return unauthorized();
        }
    }
    if parts.uri.path() != LOCATION_PATH {
        return not_supported(format!(
            "{} {} is not served here",
            parts.method,
            parts.uri.path()
        ));
    }
    let query = Query::parse(parts.uri.query().unwrap_or(""));
    match parts.method {
        Method::PATCH => {
            let Some(identifier) = query.identifier else {
                return refused(&Refusal {
                    status: 400,
                    code: "invalid",
                    expression: None,
                    diagnostics: "PATCH needs ?identifier=1<FINESS>/<unit>".into(),
                });
            };
            let bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    return refused(&Refusal {
                        status: 413,
                        code: "too-costly",
                        expression: None,
                        diagnostics: format!(
                            "the body could not be read within {MAX_BODY} bytes: {e}"
                        ),
                    })
                }
            };
            let key = parts.headers.get(IDEMPOTENCY_KEY).cloned();
            if let Some(replay) = key.as_ref().and_then(|k| shared.replays.answer(k)) {
                return replay;
            }
            let now = OffsetDateTime::now_utc();
            let result = lock(&shared.store).patch(&identifier, &bytes, now);
            let response = match result {
                Ok(patched) => {
                    shared.record(&patched);
                    patched_response(&patched)
                }
                Err(refusal) => refused(&refusal),
            };
            match key {
                Some(key) => shared.replays.keep(key, response).await,
                None => response,
            }
        }
        Method::GET => {
            let page = lock(&shared.store).search(query.identifier.as_deref(), query.since);
            json_response(StatusCode::OK, &page)
        }
        other => not_supported(format!("{other} is not served here")),
    }
}

impl Shared {
    /// Appends each operation of `patched` to the record.
    fn record(&self, patched: &Patched) {
        let Some(file) = &self.record else { return };
        let time = patched.updated.format(&Rfc3339).unwrap_or_default();
        let mut file = lock(file);
        for applied in &patched.applied {
            let line = json!({
                "time": time,
                "unit": applied.unit,
                "operation": applied.op.name(),
                "capacity": applied.capacity,
            });
            if let Err(error) = writeln!(file, "{line}") {
                tracing::error!(%error, "cannot write the record");
            }
        }
    }
}

/// The header a client sends so that a request it repeats (after a crash,
/// a lost answer) is applied once: the repeat gets the first answer.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Keys remembered; past this, the oldest half is forgotten.
const REPLAYS_KEPT: usize = 100_000;

/// The answers given to requests with an `Idempotency-Key`, by key.
#[derive(Default)]
struct Replays {
    answers: Mutex<std::collections::BTreeMap<Vec<u8>, (u64, StatusCode, Bytes)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Replays {
    /// The answer already given to `key`.
    fn answer(&self, key: &hyper::header::HeaderValue) -> Option<Response<Full<Bytes>>> {
        let answers = lock(&self.answers);
        let (_, status, body) = answers.get(key.as_bytes())?;
        let mut response = Response::new(Full::new(body.clone()));
        *response.status_mut() = *status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/fhir+json"),
        );
        Some(response)
    }

    /// Remembers `response` as the answer to `key`, and gives it.
    async fn keep(
        &self,
        key: hyper::header::HeaderValue,
        response: Response<Full<Bytes>>,
    ) -> Response<Full<Bytes>> {
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let order = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut answers = lock(&self.answers);
        if answers.len() >= REPLAYS_KEPT {
            let median = order - REPLAYS_KEPT as u64 / 2;
            answers.retain(|_, (n, _, _)| *n >= median);
        }
        answers.insert(key.as_bytes().to_vec(), (order, parts.status, body.clone()));
        Response::from_parts(parts, Full::new(body))
    }
}

/// The search parameters the simulator reads.
#[derive(Debug, Default)]
struct Query {
    identifier: Option<String>,
    since: Option<OffsetDateTime>,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut parsed = Query::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "identifier" => parsed.identifier = Some(value),
                "_lastUpdated" => {
                    let time = value.strip_prefix("ge").unwrap_or(&value);
                    parsed.since = OffsetDateTime::parse(time, &Rfc3339).ok();
                }
                _ => {}
            }
        }
        parsed
    }
}

/// `%XX` escapes decoded; a space read as the `+` it stood for (a `+` in
/// a time's offset arrives as `%2B` from careful clients, as `+` or a
/// space from others).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .replace(' ', "+")
}

fn patched_response(patched: &Patched) -> Response<Full<Bytes>> {
    let mut response = json_response(StatusCode::OK, &patched.location);
    let headers = response.headers_mut();
    if let Ok(etag) = format!("W/\"{}\"", patched.version).parse() {
        headers.insert(hyper::header::ETAG, etag);
    }
    if let Some(modified) = http_date(patched.updated).and_then(|t| t.parse().ok()) {
        headers.insert(hyper::header::LAST_MODIFIED, modified);
    }
    response
}

/// An HTTP date (RFC 9110): `Sat, 05 Dec 2026 09:58:00 GMT`.
fn http_date(when: OffsetDateTime) -> Option<String> {
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    when.to_offset(time::UtcOffset::UTC).format(&format).ok()
}

fn refused(refusal: &Refusal) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &refusal.outcome())
}

fn not_supported(diagnostics: String) -> Response<Full<Bytes>> {
    refused(&Refusal {
        status: 404,
        code: "not-supported",
        expression: None,
        diagnostics,
    })
}

fn json_response(status: StatusCode, body: &Json) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/fhir+json"),
    );
    response
}

/// Access tokens: granted to listed client certificates, each bound to
/// the certificate it was granted to (RFC 8705), for a lifetime.
struct Tokens {
    clients: Vec<String>,
    lifetime: Duration,
    granted: Mutex<std::collections::HashMap<String, (std::time::Instant, [u8; 32])>>,
    random: ring::rand::SystemRandom,
}

impl Tokens {
    fn new(clients: Vec<String>, lifetime: Duration) -> Tokens {
        Tokens {
            clients,
            lifetime,
            granted: Mutex::default(),
            random: ring::rand::SystemRandom::new(),
        }
    }

    /// `POST /token` with `grant_type=client_credentials`.
    async fn grant(&self, body: Incoming, client: Option<&Identity>) -> Response<Full<Bytes>> {
        let form = match Limited::new(body, 4096).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        };
        let form = String::from_utf8_lossy(&form);
        let grant = form
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "grant_type")
            .map(|(_, value)| value);
        if grant != Some("client_credentials") {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        let Some(client) = client.filter(|c| self.listed(c)) else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        };
        let mut bytes = [0u8; 32];
        if ring::rand::SecureRandom::fill(&self.random, &mut bytes).is_err() {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        }
        let token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        let expires = std::time::Instant::now() + self.lifetime;
        lock(&self.granted).insert(token.clone(), (expires, client.fingerprint.0));
        let answer = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime.as_secs(),
        });
        let mut response = json_response(StatusCode::OK, &answer);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        response
    }

    fn listed(&self, client: &Identity) -> bool {
        let cn = client.subject.common_name();
        cn.is_some_and(|cn| self.clients.iter().any(|listed| listed == cn))
    }

    /// Whether the request carries a live token granted to the
    /// certificate of this connection.
    fn admits(&self, headers: &hyper::HeaderMap, client: Option<&Identity>) -> bool {
        let token = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let granted = token.and_then(|t| lock(&self.granted).get(t).copied());
        granted.is_some_and(|(expires, bound)| {
            expires > std::time::Instant::now() && client.is_some_and(|c| c.fingerprint.0 == bound)
        })
    }
}

/// 401 to a request without a live token bound to its certificate.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = refused(&Refusal {
        status: 401,
        code: "login",
        expression: None,
        diagnostics: "a live access token granted to this client certificate is needed".into(),
    });
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

/// An OAuth2 error answer (RFC 6749 section 5.2).
fn oauth_error(status: StatusCode, error: &'static str) -> Response<Full<Bytes>> {
    let mut response = json_response(status, &json!({ "error": error }));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
