//! `http` routes: the HTTPS gateway in front of regional services.
//!
//! The TLS handshake proves which application is calling (its certificate
//! is verified against the CA and CRLs, and recognised by an `[[app]]`).
//! Each request is then matched to a rule by host and path prefix; the
//! rule admits the application or the request gets a 403. Admitted
//! requests go to the rule's upstream with the client's identity in
//! headers that only guichet can set. Rules are read from the route's
//! current state at every request: a reload that removes a partner applies
//! to its next request, even on an open keep-alive connection.

mod access;
mod body;
pub mod headers;
mod problem;
mod ratelimit;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use guichet_tls::{AppName, PeerApp};
use http::header::{HeaderValue, HOST};
use http::uri::PathAndQuery;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use crate::upstream::{UpstreamClient, ALPN};
pub use access::AccessLogger;
pub use ratelimit::RateLimiter;

use crate::config::{has_dot_segment, HttpRule, HttpSpec, RuleName};
use crate::metrics::{HttpLabels, HttpRefusalLabels, HttpRuleLabels};
use crate::route::{LogThrottle, RouteRuntime};
use crate::state::{HttpState, RouteState};
use crate::stream::Stream;
use crate::tcp::{Activity, Metered, PumpEnd};
use crate::upstream::{Body, ConnectError};
use access::AccessRecord;
use body::{Capped, ClientBody, OnEnd, TooLarge, Tracked};
use problem::{problem, Refused};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// What an `http` route keeps for its whole life, across reloads.
pub(crate) struct HttpRuntime {
    pub limiter: RateLimiter,
    pub access: AccessLogger,
    refusals_log: LogThrottle,
    /// One permit per request in flight to an upstream.
    upstream_slots: Arc<tokio::sync::Semaphore>,
}

impl HttpRuntime {
    pub fn new(access: AccessLogger, max_upstream_requests: usize) -> Self {
        HttpRuntime {
            limiter: RateLimiter::default(),
            access,
            refusals_log: LogThrottle::default(),
            upstream_slots: Arc::new(tokio::sync::Semaphore::new(max_upstream_requests)),
        }
    }
}

/// Why `admit` refused a request, the index of the rule that matched if
/// one did, and the `Retry-After` seconds for a rate limit.
type Denied = (Refused, Option<usize>, Option<u64>);

/// One client connection: who it is, for every request it sends.
struct Conn {
    route: Arc<RouteRuntime>,
    /// The route's rate buckets, access log and upstream slots.
    http: Arc<HttpRuntime>,
    remote: SocketAddr,
    peer: PeerApp,
    /// Formatted once per connection for the access log.
    subject: Arc<str>,
    fingerprint: Arc<str>,
    client: Arc<str>,
    /// Metric handles this connection has used, so a request touches
    /// atomics only, not the families' label maps.
    metric_handles: std::sync::Mutex<Vec<MetricHandles>>,
    requests: AtomicU64,
    heads: Arc<HeadClock>,
    /// The identity headers, built once.
    headers: headers::ClientHeaders,
}

/// Serves HTTP/1.1 or HTTP/2 (by ALPN) on an admitted TLS connection until
/// the client closes, it stays idle for `idle`, or shutdown asks it to
/// finish (in-flight requests complete; HTTP/2 gets a GOAWAY).
pub(crate) async fn serve(
    route: Arc<RouteRuntime>,
    http: Arc<HttpRuntime>,
    state: &RouteState,
    io: Metered<Stream>,
    activity: Arc<Activity>,
    remote: SocketAddr,
    peer: PeerApp,
    shutdown: CancellationToken,
) -> (PumpEnd, u64) {
    let idle = state.spec.limits.idle_timeout;
    let Some(spec) = state.spec.http() else {
        return (PumpEnd::Closed, 0);
    };
    let h2 = io.get_ref().alpn() == Some(b"h2".as_slice());
    let fingerprint = headers::hex_lower(&peer.identity.fingerprint.0);
    let client = remote.ip().to_string();
    let conn = Arc::new(Conn {
        requests: AtomicU64::new(0),
        heads: Arc::new(HeadClock::new(h2)),
        headers: headers::ClientHeaders::new(&peer.identity, &fingerprint, &client),
        subject: Arc::from(peer.identity.subject.to_string()),
        fingerprint: Arc::from(fingerprint),
        client: Arc::from(client),
        metric_handles: std::sync::Mutex::new(Vec::new()),
        route,
        http,
        remote,
        peer,
    });
    let counted = conn.clone();
    let service = service_fn(move |request| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(conn.handle(request).await) }
    });
    let heads = counted.heads.clone();
    let io = TokioIo::new(HeadWatch {
        inner: io,
        clock: heads.clone(),
    });
    let header_timeout = spec.header_timeout;
    let result = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            // Above the route's limit: heads between the two are refused
            // by `admit`, with a problem body, a count and a log line.
            .max_header_list_size(h2_header_list_limit(spec.max_header_bytes))
            .max_concurrent_streams(100);
        let served = builder.serve_connection(io, service);
        drive!(served, shutdown, activity, idle, heads, header_timeout)
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(spec.max_header_bytes);
        let served = builder.serve_connection(io, service);
        drive!(served, shutdown, activity, idle, heads, header_timeout)
    };
    let end = match result {
        Driven::Idle => PumpEnd::Idle,
        Driven::HeadTimeout => {
            counted.refused(Refused::HeaderTimeout);
            warn!(
                reason = Refused::HeaderTimeout.as_str(),
                timeout = ?header_timeout,
                "request head not received in time; connection closed"
            );
            PumpEnd::Closed
        }
        Driven::Ended(Ok(())) => PumpEnd::Closed,
        Driven::Ended(Err(e)) if e.is_parse_too_large() => {
            // hyper answered 431: refused like a request, and said once.
            counted.refused(Refused::HeaderTooLarge);
            warn!(
                reason = Refused::HeaderTooLarge.as_str(),
                "request head over max_header_bytes; connection closed"
            );
            PumpEnd::Closed
        }
        Driven::Ended(Err(e)) => PumpEnd::Error(std::io::Error::other(e)),
    };
    (end, counted.requests.load(Ordering::Relaxed))
}

/// How a served connection ended.
enum Driven {
    Ended(hyper::Result<()>),
    Idle,
    HeadTimeout,
}

/// Runs a hyper connection until it ends, stays idle, lets a request head
/// wait past `header_timeout`, or shutdown asks it to finish (in-flight
/// requests complete; HTTP/2 gets a GOAWAY).
macro_rules! drive {
    ($served:ident, $shutdown:ident, $activity:ident, $idle:ident, $heads:ident, $timeout:ident) => {{
        tokio::pin!($served);
        let mut draining = false;
        loop {
            tokio::select! {
                result = $served.as_mut() => break Driven::Ended(result),
                () = $shutdown.cancelled(), if !draining => {
                    draining = true;
                    $served.as_mut().graceful_shutdown();
                }
                () = $activity.idle_for($idle) => break Driven::Idle,
                () = $heads.overdue($timeout) => break Driven::HeadTimeout,
            }
        }
    }};
}
use drive;

/// The h2 header list limit: four times the route's, so heads in between
/// reach `admit` and get guichet's own 431 (counted, logged, problem
/// body); beyond, h2 refuses the stream itself before decoding it all.
fn h2_header_list_limit(max_header_bytes: usize) -> u32 {
    u32::try_from(max_header_bytes.saturating_mul(4)).unwrap_or(u32::MAX)
}

/// When a request head started arriving and has not been read whole yet.
///
/// The clock runs from the connection's start until its first request,
/// and again from the first byte after each response until the next
/// request: a client idle between requests is `idle_timeout`'s business,
/// one that starts a request and stalls is cut at `header_timeout`, as
/// nginx's `client_header_timeout` does. On HTTP/2 it runs until the first
/// request only (PINGs and other frames are not request heads).
pub(crate) struct HeadClock {
    start: std::time::Instant,
    /// Milliseconds since `start` + 1 when a head is pending; 0 when none.
    pending: AtomicU64,
    inflight: AtomicU64,
    /// Set on HTTP/2 once the first request arrived: the clock stops.
    done: std::sync::atomic::AtomicBool,
    h2: bool,
}

impl HeadClock {
    fn new(h2: bool) -> Self {
        HeadClock {
            start: std::time::Instant::now(),
            pending: AtomicU64::new(1),
            inflight: AtomicU64::new(0),
            done: std::sync::atomic::AtomicBool::new(false),
            h2,
        }
    }

    fn now_mark(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Bytes came from the client.
    fn bytes(&self) {
        if self.inflight.load(Ordering::Relaxed) == 0
            && !self.done.load(Ordering::Relaxed)
            && self.pending.load(Ordering::Relaxed) == 0
        {
            let _ = self.pending.compare_exchange(
                0,
                self.now_mark(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// A request head was read whole.
    fn request(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
        if self.h2 {
            self.done.store(true, Ordering::Relaxed);
        }
    }

    /// A response ended.
    fn response(&self) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Completes once a pending head has waited `timeout`.
    async fn overdue(&self, timeout: Duration) {
        loop {
            let pending = self.pending.load(Ordering::Relaxed);
            if pending == 0 || self.done.load(Ordering::Relaxed) {
                // Nothing pending: look again a timeout later.
                tokio::time::sleep(timeout).await;
                continue;
            }
            let since = Duration::from_millis(pending - 1);
            let deadline = self.start + since + timeout;
            if std::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The client side's I/O, telling the head clock when bytes arrive.
struct HeadWatch {
    inner: Metered<Stream>,
    clock: Arc<HeadClock>,
}

impl tokio::io::AsyncRead for HeadWatch {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.bytes();
        }
        poll
    }
}

impl tokio::io::AsyncWrite for HeadWatch {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What the access log and the metrics need once a response has ended.
struct Finish {
    conn: Arc<Conn>,
    /// The upstream slot this request holds, if it went upstream.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    record: AccessRecord,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
}

impl OnEnd for Finish {
    fn ended(mut self, bytes: u64, complete: bool) {
        self.conn.heads.response();
        let elapsed = self.started.elapsed();
        self.record.bytes_out = bytes;
        self.record.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.record.complete = complete;
        self.record.duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        let class = status_class(self.record.status);
        let (requests, seconds) =
            self.conn
                .metric_handles(self.record.rule.as_ref(), self.record.app.as_ref(), class);
        requests.inc();
        seconds.observe(elapsed.as_secs_f64());
        self.conn.http.access.log(self.record);
    }
}

/// A request waiting for its upstream; dropped with its request when the
/// client goes away, it logs and counts it as status 499.
struct Abandoned(Option<Finish>);

impl Abandoned {
    /// The request, answered: nothing to log on its behalf any more.
    fn disarm(mut self) -> Finish {
        // Built with `Some` and only emptied here or on drop.
        self.0.take().expect("an armed request")
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(mut finish) = self.0.take() {
            finish.record.status = 499;
            finish.record.reason = Some("client_closed");
            finish.ended(0, false);
        }
    }
}

/// At most this much of a path goes to the access log: a line stays a
/// line, and the log's queue stays bounded in bytes.
const LOGGED_PATH: usize = 2048;

/// The start of `path`, cut on a character boundary at `LOGGED_PATH`.
fn clip(path: &str) -> &str {
    if path.len() <= LOGGED_PATH {
        return path;
    }
    let mut end = LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// An error and its sources on one line, for the log (upstream errors
/// carry addresses and TLS reasons, never request content).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// One (rule, app, status class)'s metric handles.
struct MetricHandles {
    rule: Option<RuleName>,
    app: Option<AppName>,
    class: &'static str,
    requests: Counter,
    seconds: Histogram,
}

impl Conn {
    fn metric_handles(
        &self,
        rule: Option<&RuleName>,
        app: Option<&AppName>,
        class: &'static str,
    ) -> (Counter, Histogram) {
        let mut cache = match self.metric_handles.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        let found = cache
            .iter()
            .find(|h| h.rule.as_ref() == rule && h.app.as_ref() == app && h.class == class);
        if let Some(h) = found {
            return (h.requests.clone(), h.seconds.clone());
        }
        let metrics = &self.route.metrics;
        let rule_label = rule.map_or("-", RuleName::as_str).to_string();
        let requests = metrics
            .http_requests
            .get_or_create(&HttpLabels {
                route: self.route.name.to_string(),
                rule: rule_label.clone(),
                app: app.map_or("-", AppName::as_str).to_string(),
                class,
            })
            .clone();
        let seconds = metrics
            .http_request_seconds
            .get_or_create(&HttpRuleLabels {
                route: self.route.name.to_string(),
                rule: rule_label,
            })
            .clone();
        // Bounded by rules x apps x classes; a cap keeps it so whatever
        // the config.
        if cache.len() < 64 {
            cache.push(MetricHandles {
                rule: rule.cloned(),
                app: app.cloned(),
                class,
                requests: requests.clone(),
                seconds: seconds.clone(),
            });
        }
        (requests, seconds)
    }
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl Conn {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.heads.request();
        let state = self.route.current();
        let authority = request_authority(&request);
        let host = authority
            .as_ref()
            .ok()
            .and_then(|a| a.as_ref())
            .map(host_of);
        let path = request.uri().path();
        let logged_path = match request.uri().query() {
            Some(query) if state.spec.http().is_some_and(|h| h.query_in_log) => {
                clip(&format!("{path}?{query}")).to_string()
            }
            Some(_) => format!("{}?REDACTED", clip(path)),
            None => clip(path).to_string(),
        };
        let mut finish = Finish {
            record: AccessRecord {
                time: std::time::SystemTime::now(),
                route: self.route.name.clone(),
                rule: None,
                app: Some(self.peer.app.clone()),
                subject: self.subject.clone(),
                fingerprint: self.fingerprint.clone(),
                client: self.client.clone(),
                protocol: protocol(request.version()),
                method: request.method().clone(),
                host,
                path: logged_path,
                status: 0,
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 0.0,
                upstream: None,
                reason: None,
                complete: false,
            },
            conn: self.clone(),
            slot: None,
            started,
            bytes_in: Arc::new(AtomicU64::new(0)),
        };
        let Some((spec, upstreams)) = state.spec.http().zip(state.http.as_ref()) else {
            // The route's kind changed in the file; it applies at restart.
            return self.deny(
                request,
                finish,
                (Refused::UpstreamUnavailable, None, None),
                &[],
            );
        };
        let mut request = request;
        let (index, app) = match self.prepare(
            &mut request,
            authority,
            spec,
            upstreams,
            &mut finish,
            started,
        ) {
            Ok(admitted) => admitted,
            Err(denied) => return self.deny(request, finish, denied, &spec.rules),
        };
        let rule = &spec.rules[index];
        let upstream = &upstreams.upstreams[index];
        finish.record.upstream = Some(rule.upstream.origin.clone());
        let (forwarded, sent) =
            match self.upstream_request(request, spec, rule, &app, upstream, &finish) {
                Ok(pair) => pair,
                Err(()) => return self.refuse(finish, Refused::BadRequest, Some(rule), None),
            };
        // Should the client go away while the upstream works, the request
        // is still logged and counted (499, client_closed).
        let waiting = Abandoned(Some(finish));
        // `response_timeout` runs once the request's body is sent: a large
        // upload on a slow link is no slow upstream.
        let late = async {
            let _ = sent.await;
            tokio::time::sleep(spec.response_timeout).await;
        };
        let answer = tokio::select! {
            answer = upstream.request(forwarded) => Ok(answer),
            () = late => Err(()),
        };
        let mut finish = waiting.disarm();
        let response = match answer {
            Err(_) => return self.refuse(finish, Refused::UpstreamTimeout, Some(rule), None),
            Ok(Err(e)) => {
                let refused = classify(&e);
                if refused == Refused::BadRequestBody {
                    // The client's fault: `refuse` logs it as a refusal.
                    return self.refuse(finish, refused, Some(rule), None);
                }
                warn!(
                    route = %self.route.name,
                    rule = %rule.name,
                    upstream = %rule.upstream.origin,
                    reason = refused.as_str(),
                    "upstream exchange failed: {}",
                    error_chain(&e)
                );
                return self.refuse(finish, refused, Some(rule), None);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::default();
        finish.record.status = parts.status.as_u16();
        Response::from_parts(parts, Tracked::new(body, finish).boxed_unsync())
    }

    /// Everything before a request may go upstream: one authority, a path
    /// that can be matched safely, a certificate not revoked since its
    /// handshake, `admit`, and a free upstream slot (kept in `finish`
    /// until the response ends). The request's Host and path are
    /// rewritten to what was matched.
    fn prepare(
        &self,
        request: &mut Request<Incoming>,
        authority: Result<Option<http::uri::Authority>, ()>,
        spec: &HttpSpec,
        upstreams: &HttpState,
        finish: &mut Finish,
        now: Instant,
    ) -> Result<(usize, AppName), Denied> {
        let authority = authority.map_err(|()| (Refused::BadHost, None, None))?;
        // One authority from here on: the one the rule is chosen on, and
        // the one the upstream is told (without any userinfo).
        request.headers_mut().remove(HOST);
        if let Some(authority) = &authority {
            let text = match authority.port() {
                Some(port) => format!("{}:{port}", authority.host()),
                None => authority.host().to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&text) {
                request.headers_mut().insert(HOST, value);
            }
        }
        let bad_path = (Refused::BadPath, None, None);
        match normalize_path(request.uri().path()) {
            None => return Err(bad_path),
            Some(std::borrow::Cow::Owned(path)) => {
                set_path(request, &path).map_err(|()| bad_path)?;
            }
            Some(std::borrow::Cow::Borrowed(_)) => {}
        }
        if upstreams.revoked.contains(&self.peer.identity) {
            return Err((Refused::Revoked, None, None));
        }
        let (index, app) = self.admit(request, spec, finish, now)?;
        let slot = self.http.upstream_slots.clone().try_acquire_owned();
        finish.slot = Some(slot.map_err(|_| (Refused::UpstreamBusy, Some(index), Some(1)))?);
        Ok((index, app))
    }

    /// The checks before a request may go upstream: a rule and an
    /// application it admits, the rate (spent by refused requests too),
    /// the declared size. Gives the rule's index and the admitted
    /// application, or why not (with the rule's index once one matched).
    fn admit(
        &self,
        request: &Request<Incoming>,
        spec: &HttpSpec,
        finish: &mut Finish,
        now: Instant,
    ) -> Result<(usize, AppName), Denied> {
        let checked = self.match_rule(request, spec, finish);
        // Every request spends a token, refused ones too: a partner cannot
        // flood the gateway with 404s or 403s either. A refused one spends
        // the application its certificate was recognised as.
        if let Some(limit) = spec.rate {
            let (app, rule) = match &checked {
                Ok((index, app)) => (app, Some(*index)),
                Err((_, rule, _)) => (&self.peer.app, *rule),
            };
            if let Err(wait) = self.http.limiter.take(app, limit, now.into_std()) {
                let retry = wait.as_secs_f64().ceil().max(1.0) as u64;
                return Err((Refused::RateLimited, rule, Some(retry)));
            }
        }
        let (index, app) = checked?;
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > spec.max_body_bytes) {
            return Err((Refused::BodyTooLarge, Some(index), None));
        }
        Ok((index, app))
    }

    /// The request's rule and the application it admits, or why not.
    fn match_rule(
        &self,
        request: &Request<Incoming>,
        spec: &HttpSpec,
        finish: &mut Finish,
    ) -> Result<(usize, AppName), Denied> {
        if head_size(request) > spec.max_header_bytes {
            // HTTP/1.1 heads are held to the limit by hyper (431 before
            // this); HTTP/2 ones up to four times it reach here.
            return Err((Refused::HeaderTooLarge, None, None));
        }
        let path = request.uri().path();
        if !path.starts_with('/') {
            return Err((Refused::BadRequest, None, None));
        }
        let Some((index, rule)) = find_rule(spec, finish.record.host.as_deref(), path) else {
            return Err((Refused::NoRule, None, None));
        };
        finish.record.rule = Some(rule.name.clone());
        let Some(app) = rule.admit(&self.peer.identity).cloned() else {
            return Err((Refused::NotAdmitted, Some(index), None));
        };
        finish.record.app = Some(app.clone());
        Ok((index, app))
    }

    /// The request as the upstream gets it: its URI on the upstream, the
    /// client's headers without hop-by-hop and identity claims, guichet's
    /// identity headers, and the body capped at the route's limit.
    fn upstream_request(
        &self,
        request: Request<Incoming>,
        spec: &HttpSpec,
        rule: &HttpRule,
        app: &AppName,
        upstream: &UpstreamClient,
        finish: &Finish,
    ) -> Result<(Request<Body>, body::Sent), ()> {
        let (mut parts, body) = request.into_parts();
        let path_and_query = match (&rule.upstream.base_path, parts.uri.path_and_query()) {
            // Unchanged: the request's own, shared, not copied.
            (None, Some(pq)) => pq.clone(),
            _ => with_query(&rewrite_path(rule, parts.uri.path()), parts.uri.query())?,
        };
        // The authority the rule was chosen on (`handle` put it there).
        let original_host = parts.headers.remove(HOST);
        parts.uri = upstream.uri(path_and_query).map_err(|_| ())?;
        parts.version = Version::HTTP_11;
        headers::strip_hop_by_hop(&mut parts.headers);
        headers::strip_identity_claims(&mut parts.headers);
        headers::Forwarded {
            app,
            rule: rule.name.as_str(),
            client: &self.headers,
            host: original_host.as_ref(),
            forms: spec.identity_headers,
        }
        .apply(&mut parts.headers);
        let (body, sent) = Capped::new(
            body,
            spec.max_body_bytes,
            finish.bytes_in.clone(),
            self.heads.clone(),
        );
        Ok((Request::from_parts(parts, body.boxed_unsync()), sent))
    }

    fn refused(&self, refused: Refused) {
        let route = &self.route;
        route
            .metrics
            .http_refusals
            .get_or_create(&HttpRefusalLabels {
                route: route.name.to_string(),
                reason: refused.as_str(),
            })
            .inc();
    }

    /// Refuses a request that did not go upstream: what is left of its
    /// body is drained so the client can read the answer.
    fn deny(
        &self,
        request: Request<Incoming>,
        finish: Finish,
        (refused, rule, retry_after): Denied,
        rules: &[HttpRule],
    ) -> Response<Body> {
        drain(request.into_body(), Some(&self.heads));
        let rule = rule.and_then(|i| rules.get(i));
        self.refuse(finish, refused, rule, retry_after)
    }

    /// Answers with a problem body, logs the refusal and counts it.
    fn refuse(
        &self,
        mut finish: Finish,
        refused: Refused,
        rule: Option<&HttpRule>,
        retry_after: Option<u64>,
    ) -> Response<Body> {
        let route = &self.route;
        self.refused(refused);
        let rule_name = rule.map(|r| r.name.as_str());
        let suppressed = self.http.refusals_log.allow();
        if let Some(suppressed) = suppressed {
            warn!(
                route = %route.name,
                remote = %self.remote,
                app = %self.peer.app,
                rule = rule_name.unwrap_or("-"),
                reason = refused.as_str(),
                status = refused.status().as_u16(),
                suppressed,
                "request refused"
            );
        }
        let response = problem(refused, rule_name, retry_after);
        finish.record.status = response.status().as_u16();
        finish.record.reason = Some(refused.as_str());
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, Tracked::new(Full::new(body), finish).boxed_unsync())
    }
}

/// A path and a query as one.
fn with_query(path: &str, query: Option<&str>) -> Result<PathAndQuery, ()> {
    let text = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    PathAndQuery::try_from(text).map_err(|_| ())
}

/// Replaces a request's path (keeping its query).
fn set_path<B>(request: &mut Request<B>, path: &str) -> Result<(), ()> {
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(with_query(path, request.uri().query())?);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| ())?;
    Ok(())
}

/// Whether an I/O error is a TLS alert from the peer, as a rustls error or
/// as its text.
fn is_tls_alert(e: &std::io::Error) -> bool {
    match guichet_tls::refusal::tls_error(e) {
        Some(tls) => matches!(tls, rustls::Error::AlertReceived(_)),
        None => {
            e.kind() == std::io::ErrorKind::InvalidData
                && e.to_string().starts_with("received fatal alert")
        }
    }
}

/// A request head's size as HTTP/2 counts it against a header list limit:
/// each field's name and value plus 32 bytes, pseudo-headers included.
fn head_size<B>(request: &Request<B>) -> usize {
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    let uri = request.uri();
    let pseudo = request.method().as_str().len()
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + 5
        + 4 * 32;
    fields + pseudo
}

/// Reads and discards what is left of a refused request's body, within
/// bounds, so the client can finish sending and read the answer: without
/// it HTTP/2 resets the stream and HTTP/1.1 closes the connection under a
/// client still uploading.
pub(crate) fn drain(mut body: Incoming, heads: Option<&Arc<HeadClock>>) {
    use http_body::Body as _;
    if body.is_end_stream() {
        return;
    }
    // The connection is still busy with this request while its body comes
    // in: its bytes are no new request head.
    let busy = heads.map(|h| {
        h.inflight.fetch_add(1, Ordering::Relaxed);
        h.clone()
    });
    tokio::spawn(async move {
        let mut left: u64 = DRAIN_BYTES;
        let reading = async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                match left.checked_sub(n) {
                    Some(rest) => left = rest,
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
        if let Some(heads) = busy {
            heads.response();
        }
    });
}

/// At most this much of a refused body is read before giving up on it.
const DRAIN_BYTES: u64 = 4 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// What went wrong talking to the upstream.
fn classify(error: &hyper_util::client::legacy::Error) -> Refused {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(connect) = e.downcast_ref::<ConnectError>() {
            return match connect {
                ConnectError::Unavailable(_) => Refused::UpstreamUnavailable,
                ConnectError::Tls(_) => Refused::UpstreamTls,
            };
        }
        if e.downcast_ref::<TooLarge>().is_some() {
            return Refused::BodyTooLarge;
        }
        if e.downcast_ref::<ClientBody>().is_some() {
            return Refused::BadRequestBody;
        }
        // With TLS 1.3 an upstream refusing guichet's certificate says so
        // in an alert on the first read after the handshake; by then the
        // rustls error has become the text of an I/O error.
        if e.downcast_ref::<std::io::Error>().is_some_and(is_tls_alert) {
            return Refused::UpstreamTls;
        }
        source = e.source();
    }
    if error.is_connect() {
        Refused::UpstreamUnavailable
    } else {
        Refused::UpstreamError
    }
}

/// The authority a request is for: the URI's (HTTP/2 `:authority`, or an
/// absolute-form request) or the Host header. When both are given they
/// must agree (RFC 9113 §8.3.1, RFC 9112 §3.2.2): the rule is chosen on
/// one and the upstream told the other otherwise. `Err` on a mismatch, a
/// Host header that is no authority, or more than one Host header.
fn request_authority<B>(request: &Request<B>) -> Result<Option<http::uri::Authority>, ()> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        // RFC 9112 §3.2: more than one Host is a 400.
        return Err(());
    }
    let header = match first {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<http::uri::Authority>().ok())
                .ok_or(())?,
        ),
        None => None,
    };
    match (request.uri().authority(), header) {
        (Some(uri), Some(header)) => {
            if uri.host().eq_ignore_ascii_case(header.host()) && uri.port_u16() == header.port_u16()
            {
                Ok(Some(uri.clone()))
            } else {
                Err(())
            }
        }
        (Some(uri), None) => Ok(Some(uri.clone())),
        (None, header) => Ok(header),
    }
}

/// The host part of an authority, lower case, for rule matching and logs.
fn host_of(authority: &http::uri::Authority) -> String {
    authority.host().trim_end_matches('.').to_ascii_lowercase()
}

/// The host a request is for, lower case and without port (see
/// `request_host` for when there is none or it is ambiguous).
#[cfg(test)]
fn request_host<B>(request: &Request<B>) -> Option<String> {
    request_authority(request)
        .ok()
        .flatten()
        .as_ref()
        .map(host_of)
}

/// The path guichet matches and forwards, or `None` when it cannot be
/// matched safely. Percent-encoded unreserved characters are decoded
/// (`/ror/%69nternal` is `/ror/internal`), so the rule chosen is the one
/// the upstream's own decoding would choose; what stays refused is what an
/// upstream could read as structure: dot segments, empty segments, `;`
/// parameters (`..;`), backslashes, and encoded `/`, `\`, `%`, `;` or
/// control characters.
pub fn normalize_path(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let bytes = path.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let decoded = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.get_or_insert_with(|| bytes[..i].to_vec()).push(decoded);
                i += 3;
                continue;
            }
            if decoded < 0x20 || decoded == 0x7f || b"/\\%;".contains(&decoded) {
                return None;
            }
        }
        if let Some(out) = out.as_mut() {
            out.push(b);
        }
        i += 1;
    }
    let normalized = match out {
        Some(decoded) => std::borrow::Cow::Owned(String::from_utf8(decoded).ok()?),
        None => std::borrow::Cow::Borrowed(path),
    };
    let unsafe_shape = has_dot_segment(&normalized)
        || normalized.contains("//")
        || normalized.contains(['\\', ';']);
    (!unsafe_shape).then_some(normalized)
}

/// Whether `normalize_path` accepts a path.
pub fn is_plain_path(path: &str) -> bool {
    normalize_path(path).is_some()
}

/// The rule for a request: host-specific rules first, then the longest
/// path prefix.
fn find_rule<'s>(
    spec: &'s HttpSpec,
    host: Option<&str>,
    path: &str,
) -> Option<(usize, &'s HttpRule)> {
    let best = |with_host: bool| {
        spec.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| match (&r.host, with_host) {
                (Some(h), true) => host == Some(h.as_str()),
                (None, false) => true,
                _ => false,
            })
            .filter(|(_, r)| r.takes_path(path))
            .max_by_key(|(_, r)| r.path.len())
    };
    best(true).or_else(|| best(false))
}

/// The path on the upstream: unchanged, or with the rule's prefix replaced
/// by the upstream URL's path.
fn rewrite_path(rule: &HttpRule, path: &str) -> String {
    let Some(base) = &rule.upstream.base_path else {
        return path.to_string();
    };
    let rest = path.strip_prefix(rule.path.as_str()).unwrap_or("");
    match (base.ends_with('/'), rest.starts_with('/')) {
        (true, true) => format!("{base}{}", &rest[1..]),
        (false, false) if !rest.is_empty() => format!("{base}/{rest}"),
        _ => format!("{base}{rest}"),
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests;
