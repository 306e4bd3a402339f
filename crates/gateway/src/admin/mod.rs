//! The admin server: `/metrics`, `/healthz`, `/readyz`, `/status`,
//! `/api/status`, and `/map` when `[map]` is configured.
//!
//! It runs on a thread and a single-threaded runtime of its own, so it
//! answers while the data plane is saturated (linkerd's admin thread).
//! Nothing it serves contains message content, but `/status` shows
//! partners' certificate subjects, fingerprints and addresses: the
//! listener may require a client certificate (`tls` + `allow`) and a
//! bearer token (`token_file`), and off loopback it must have one of them
//! over TLS unless `insecure = true` says otherwise.

mod auth;
mod map;
mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use guichet_journal::Journal;
use guichet_tls::Refusal;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use auth::{read_token, MIN_TOKEN_BYTES};
use auth::{AdminTls, Denied, TokenFile};
use map::{LiveMap, MapAnswer};
pub use map::{MapSite, REFRESH as MAP_REFRESH};

use crate::config::Config;
use crate::metrics::AdminRefusalLabels;
use crate::route::LogThrottle;
use crate::status::StatusBoard;

/// Admin connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;

/// A TLS handshake on the admin listener must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Paths served without a token: load balancers and systemd probe them,
/// and they tell nothing but "alive" and "ready".
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// A running admin server; stops when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("[admin] cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot start the admin thread: {0}")]
    Thread(std::io::Error),
    #[error("[admin] listen = \"{addr}\": {why}. Protect it (tls = \"PROFILE\" with allow = [\"APP\"], or with token_file), keep it on 127.0.0.1, or set insecure = true to serve it anyway")]
    Exposed { addr: SocketAddr, why: &'static str },
    #[error("[admin] token_file {}: {why}", path.display())]
    Token { path: PathBuf, why: String },
    #[error("[admin] tls: {0}")]
    Tls(String),
}

/// How the admin listener admits connections and requests.
#[derive(Default)]
struct Protection {
    tls: Option<AdminTls>,
    token: Option<TokenFile>,
}

/// What every admin connection shares.
struct Shared {
    status: Arc<StatusBoard>,
    token: Option<TokenFile>,
    refusals_log: LogThrottle,
    /// `/map`, when `[map]` is configured.
    map: Option<LiveMap>,
}

/// What one request gets: an answer now, or the live map's page.
enum Answer {
    Now(Response<Full<Bytes>>),
    Map,
}

impl AdminServer {
    /// Plain HTTP without authentication (tests, and listeners on
    /// loopback configured so). Binds `addr` now (so a busy port is
    /// reported at start-up) and serves on a thread of its own.
    pub fn start(addr: SocketAddr, status: Arc<StatusBoard>) -> Result<AdminServer, AdminError> {
        Self::launch(bind(addr)?, Protection::default(), status, None)
    }

    /// The admin listener of `config`, if it has one, bound and protected
    /// as its `[admin]` section says, ready to start once the gateway's
    /// status exists. Called before the routes bind: a listener off
    /// loopback without TLS and authentication is refused (unless
    /// `insecure = true`), as are an unusable token file or certificate.
    pub fn prepare(config: &Config) -> Result<Option<AdminListener>, AdminError> {
        let Some(spec) = &config.admin else {
            return Ok(None);
        };
        if let Some(why) = spec.exposure() {
            if !spec.insecure {
                return Err(AdminError::Exposed {
                    addr: spec.listen,
                    why,
                });
            }
            warn!(addr = %spec.listen, "[admin] insecure = true: {why}");
        }
        let protection = Protection {
            tls: spec
                .tls
                .as_ref()
                .map(|tls| AdminTls::new(config, tls))
                .transpose()?,
            token: spec
                .token_file
                .as_deref()
                .map(TokenFile::load)
                .transpose()?,
        };
        let listener = bind(spec.listen)?;
        Ok(Some(AdminListener {
            listener,
            protection,
            map: None,
        }))
    }

    fn launch(
        listener: std::net::TcpListener,
        protection: Protection,
        status: Arc<StatusBoard>,
        map: Option<LiveMap>,
    ) -> Result<AdminServer, AdminError> {
        let addr = listener.local_addr().map_err(|error| AdminError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            error,
        })?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let scheme = if protection.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let token = if protection.token.is_some() {
            "bearer token required but on /healthz and /readyz"
        } else {
            "no token"
        };
        let Protection { tls, token: file } = protection;
        let paths = if map.is_some() {
            "/metrics /healthz /readyz /status /api/status /map"
        } else {
            "/metrics /healthz /readyz /status /api/status"
        };
        let shared = Arc::new(Shared {
            status,
            token: file,
            refusals_log: LogThrottle::default(),
            map,
        });
        let thread = std::thread::Builder::new()
            .name("guichet-admin".into())
            .spawn(move || serve_on_own_runtime(listener, tls, shared, stop))
            .map_err(AdminError::Thread)?;
        info!(%addr, scheme, token, "admin server listening: {paths}");
        Ok(AdminServer {
            addr,
            shutdown,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// An admin listener bound and protected, not serving yet.
pub struct AdminListener {
    listener: std::net::TcpListener,
    protection: Protection,
    map: Option<LiveMap>,
}

impl AdminListener {
    /// Serves the map `site` renders at `/map`, behind the same
    /// protection as `/status`, with the observed flows of `journal`.
    pub fn serve_map(mut self, site: Arc<dyn MapSite>, journal: Option<Journal>) -> Self {
        self.map = Some(LiveMap::new(site, journal));
        self
    }

    /// Serves on a thread of its own from now on.
    pub fn start(self, status: Arc<StatusBoard>) -> Result<AdminServer, AdminError> {
        AdminServer::launch(self.listener, self.protection, status, self.map)
    }
}

/// Binds now, so a busy port is reported at start-up.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, AdminError> {
    let bind_err = |error| AdminError::Bind { addr, error };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(listener)
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_on_own_runtime(
    listener: std::net::TcpListener,
    mut tls: Option<AdminTls>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return warn!("admin server cannot start its runtime: {e}"),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return warn!("admin server cannot use its socket: {e}"),
        };
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((tcp, remote)) = accepted else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let shared = shared.clone();
            let server_tls = tls.as_mut().map(AdminTls::current);
            tokio::spawn(async move {
                match server_tls {
                    None => serve_http(tcp, remote, shared).await,
                    Some(server_tls) => match server_tls.accept(tcp, HANDSHAKE_TIMEOUT).await {
                        Ok((stream, _peer)) => serve_http(stream, remote, shared).await,
                        Err(refusal) => shared.refused_tls(remote, &refusal),
                    },
                }
                drop(permit);
            });
        }
    });
}

/// Serves HTTP/1.1 on one admin connection, for at most a minute.
async fn serve_http<IO>(io: IO, remote: SocketAddr, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        // Decided before the request is dropped: only the map waits.
        let answer = shared.answer(&req, remote);
        async move {
            Ok::<_, Infallible>(match answer {
                Answer::Now(response) => response,
                Answer::Map => shared.map_page().await,
            })
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), service);
    let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
}

impl Shared {
    /// The answer to one request: refused without the token where one is
    /// required, served otherwise.
    fn answer(&self, req: &Request<Incoming>, remote: SocketAddr) -> Answer {
        let path = req.uri().path();
        if let Some(token) = &self.token {
            if !OPEN_PATHS.contains(&path) {
                if let Err(denied) = token.admit(req.headers()) {
                    self.count_refusal(denied.as_str());
                    if let Some(suppressed) = self.refusals_log.allow() {
                        warn!(%remote, path, reason = denied.as_str(), suppressed, "admin request refused");
                    }
                    return Answer::Now(unauthorized(denied));
                }
            }
        }
        let read = req.method() == Method::GET || req.method() == Method::HEAD;
        if read && path == "/map" && self.map.is_some() {
            return Answer::Map;
        }
        Answer::Now(route(req, &self.status, self.map.is_some()))
    }

    /// `/map`: the page, or 503 with the reason it cannot be rendered.
    async fn map_page(&self) -> Response<Full<Bytes>> {
        let Some(map) = &self.map else {
            return text(StatusCode::NOT_FOUND, "no [map] configured\n");
        };
        match map.answer(self.status.metrics()).await {
            MapAnswer::Page(page) => respond(StatusCode::OK, "text/html; charset=utf-8", page),
            MapAnswer::Unavailable(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the map cannot be shown: {why}\n"),
            ),
        }
    }

    /// A TLS handshake on the admin listener failed: counted by reason,
    /// logged with the presented certificate.
    fn refused_tls(&self, remote: SocketAddr, refusal: &Refusal) {
        let reason = refusal.reason.as_str();
        self.count_refusal(reason);
        if let Some(suppressed) = self.refusals_log.allow() {
            let subject = refusal.presented.as_ref().map(|p| p.subject.as_str());
            warn!(
                %remote,
                reason,
                subject = subject.unwrap_or("-"),
                suppressed,
                "admin connection refused: {}",
                refusal.summary()
            );
        }
    }

    fn count_refusal(&self, reason: &'static str) {
        self.status
            .metrics()
            .admin_refusals
            .get_or_create(&AdminRefusalLabels { reason })
            .inc();
    }
}

/// 401 with the scheme to use (RFC 6750 §3).
fn unauthorized(denied: Denied) -> Response<Full<Bytes>> {
    let (body, challenge) = match denied {
        Denied::NoToken => (
            "a bearer token is required: Authorization: Bearer <the token in [admin] token_file>\n",
            "Bearer realm=\"guichet admin\"",
        ),
        Denied::BadToken => (
            "the bearer token is not the one in [admin] token_file\n",
            "Bearer realm=\"guichet admin\", error=\"invalid_token\"",
        ),
    };
    let mut response = text(StatusCode::UNAUTHORIZED, body);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

fn route(req: &Request<Incoming>, status: &StatusBoard, map: bool) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match req.uri().path() {
        "/metrics" => metrics(status),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if status.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/status" => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::render(&status.snapshot(), map),
        ),
        "/api/status" => match serde_json::to_string_pretty(&status.snapshot()) {
            Ok(json) => respond(StatusCode::OK, "application/json", json),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        },
        "/" => {
            let mut r = text(StatusCode::FOUND, "see /status\n");
            r.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/status"));
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /status, /metrics, /healthz, /readyz\n",
        ),
    }
}

fn metrics(status: &StatusBoard) -> Response<Full<Bytes>> {
    let metrics = status.metrics();
    metrics.certificate_expiry.clear();
    for (labels, seconds) in status.certificate_expiry() {
        metrics
            .certificate_expiry
            .get_or_create(&labels)
            .set(seconds);
    }
    respond(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        metrics.render(),
    )
}

fn text(code: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(code, "text/plain; charset=utf-8", body.to_string())
}

fn respond(
    code: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
