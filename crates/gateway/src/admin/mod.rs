//! The admin server: `/metrics`, `/healthz`, `/readyz`, `/status` and
//! `/api/status`.
//!
//! It runs on a thread and a single-threaded runtime of its own, so it
//! answers while the data plane is saturated (linkerd's admin thread).
//! Nothing it serves contains message content.

mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::status::StatusBoard;

/// Admin connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;

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
}

impl AdminServer {
    /// Binds `addr` now (so a busy port is reported at start-up) and
    /// serves on a thread of its own.
    pub fn start(addr: SocketAddr, status: Arc<StatusBoard>) -> Result<AdminServer, AdminError> {
        let bind_err = |error| AdminError::Bind { addr, error };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("guichet-admin".into())
            .spawn(move || serve_on_own_runtime(listener, status, stop))
            .map_err(AdminError::Thread)?;
        info!(%addr, "admin server listening: /metrics /healthz /readyz /status /api/status");
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
    status: Arc<StatusBoard>,
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
            let Ok((tcp, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let status = status.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let status = status.clone();
                    async move { Ok::<_, Infallible>(route(&req, &status)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(tcp), service);
                let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
                drop(permit);
            });
        }
    });
}

fn route(req: &Request<Incoming>, status: &StatusBoard) -> Response<Full<Bytes>> {
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
            page::render(&status.snapshot()),
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

fn respond(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
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
