//! One request's path: prepared (one authority, a safe path, a live
//! certificate), admitted (rule, application, rate, size), sent to the
//! rule's upstream with the client's identity, and its answer streamed
//! back.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use guichet_tls::AppName;
use http::header::{HeaderValue, AUTHORIZATION, HOST};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::warn;

use super::access::AccessRecord;
use super::body::{self, ClientBody, TooLarge, Tracked};
use super::conn::Conn;
use super::headers;
use super::outcome::{Abandoned, Denied, Finish};
use super::problem::Refused;
use super::rules::{
    find_rule, host_of, normalize_path, request_authority, rewrite_path, set_path, with_query,
};
use super::validate::{Checked, Invalid};
use crate::config::{HttpRule, HttpSpec, RouteSpec};
use crate::state::HttpState;
use crate::upstream::{error_chain, Body, ConnectError, TlsFailure, UpstreamClient, UpstreamError};

impl Conn {
    pub(super) async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.heads.request();
        let state = self.route.current();
        let authority = request_authority(&request);
        let mut finish = self.begin(&request, &authority, &state.spec, started);
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
            match self.upstream_request(request, spec, rule, &app, upstream, &mut finish) {
                Ok(pair) => pair,
                Err(()) => return self.refuse(finish, Refused::BadRequest, Some(rule), None),
            };
        self.forward(finish, spec, rule, upstream, forwarded, sent)
            .await
    }

    /// Sends an admitted request on: judged first on a validating rule
    /// (refused, forwarded, or sent to the national ROR as PATCHes), with
    /// the upstream's access token when it asks for one.
    async fn forward(
        &self,
        mut finish: Finish,
        spec: &HttpSpec,
        rule: &HttpRule,
        upstream: &UpstreamClient,
        forwarded: Request<Body>,
        sent: body::Sent,
    ) -> Response<Body> {
        let mut forwarded = match &rule.validation {
            None => forwarded,
            Some(validation) => match self
                .validate(forwarded, validation, rule, &mut finish)
                .await
            {
                Ok(Checked::Forward(checked)) => checked,
                Ok(Checked::Patch(document)) => {
                    let timeout = spec.response_timeout;
                    return self.patch(finish, rule, upstream, timeout, &document).await;
                }
                Err(Invalid::Refused(refused)) => {
                    return self.refuse(finish, refused, Some(rule), None)
                }
                Err(Invalid::Document(violations)) => {
                    return self.refuse_document(finish, rule, &violations)
                }
            },
        };
        if let Err(e) = upstream
            .authorize(&mut forwarded, spec.response_timeout)
            .await
        {
            warn!(route = %self.route.name, rule = %rule.name, "{e}");
            return self.refuse(finish, Refused::UpstreamUnavailable, Some(rule), None);
        }
        self.exchange(finish, spec, rule, upstream, forwarded, sent)
            .await
    }

    /// What the access log and the metrics will need of a request, begun
    /// before anything may refuse it.
    fn begin(
        self: &Arc<Self>,
        request: &Request<Incoming>,
        authority: &Result<Option<http::uri::Authority>, ()>,
        spec: &RouteSpec,
        started: Instant,
    ) -> Finish {
        let host = authority
            .as_ref()
            .ok()
            .and_then(|a| a.as_ref())
            .map(host_of);
        let path = request.uri().path();
        let logged_path = match request.uri().query() {
            Some(query) if spec.http().is_some_and(|h| h.query_in_log) => {
                clip(&format!("{path}?{query}")).to_string()
            }
            Some(_) => format!("{}?REDACTED", clip(path)),
            None => clip(path).to_string(),
        };
        Finish {
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
                validation: None,
            },
            conn: self.clone(),
            slot: None,
            started,
            bytes_in: None,
        }
    }

    /// Sends an admitted request to its upstream and streams the answer
    /// back, or refuses it when the upstream fails or is late.
    async fn exchange(
        &self,
        finish: Finish,
        spec: &HttpSpec,
        rule: &HttpRule,
        upstream: &UpstreamClient,
        forwarded: Request<Body>,
        sent: body::Sent,
    ) -> Response<Body> {
        // Should the client go away while the upstream works, the request
        // is still logged and counted (499, client_closed).
        let waiting = Abandoned(Some(finish));
        // `response_timeout` runs once the request's body is sent: a large
        // upload on a slow link is no slow upstream.
        let late = async {
            sent.wait().await;
            tokio::time::sleep(spec.response_timeout).await;
        };
        // Kept only when this upstream's tokens may need forgetting.
        let bearer = upstream
            .asks_for_tokens()
            .then(|| forwarded.headers().get(AUTHORIZATION).cloned())
            .flatten();
        let answer = tokio::select! {
            answer = upstream.request(forwarded) => Ok(answer),
            () = late => Err(()),
        };
        let mut finish = waiting.disarm();
        let response = match answer {
            Err(_) => return self.refuse(finish, Refused::UpstreamTimeout, Some(rule), None),
            Ok(Err(e)) => return self.upstream_failed(finish, rule, &e),
            Ok(Ok(response)) => response,
        };
        if response.status() == StatusCode::UNAUTHORIZED {
            // The next request asks for a new token.
            upstream.refused_token(bearer.as_ref()).await;
        }
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::default();
        finish.record.status = parts.status.as_u16();
        Response::from_parts(parts, Tracked::new(body, finish).boxed_unsync())
    }

    /// Refuses a request whose upstream exchange failed, logging the
    /// failure unless it was the client's.
    fn upstream_failed(
        &self,
        finish: Finish,
        rule: &HttpRule,
        e: &UpstreamError,
    ) -> Response<Body> {
        let refused = classify(e);
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
            error_chain(e)
        );
        self.refuse(finish, refused, Some(rule), None)
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
        if !host_is(request, authority.as_ref()) {
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
        finish: &mut Finish,
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
            rule: &rule.name_header,
            client: &self.headers,
            host: original_host.as_ref(),
            forms: spec.identity_headers,
        }
        .apply(&mut parts.headers);
        let seen = || finish.bytes_in.get_or_insert_with(Arc::default).clone();
        let (body, sent) = body::forwarded(body, spec.max_body_bytes, seen, &self.heads);
        Ok((Request::from_parts(parts, body), sent))
    }
}

/// Whether the request's Host header is already `authority` as the
/// upstream is told it: `host[:port]`, no userinfo, no empty port. Most
/// HTTP/1.1 requests' is, and is then kept as it came (no new value).
fn host_is<B>(request: &Request<B>, authority: Option<&http::uri::Authority>) -> bool {
    let Some(authority) = authority else {
        return !request.headers().contains_key(HOST);
    };
    let text = authority.as_str();
    !text.contains('@')
        && !text.ends_with(':')
        && request
            .headers()
            .get(HOST)
            .is_some_and(|host| host.as_bytes() == text.as_bytes())
}

/// At most this much of a path goes to the access log: a line stays a
/// line, and the log's queue stays bounded in bytes.
pub(super) const LOGGED_PATH: usize = 2048;

/// The start of `path`, cut on a character boundary at `LOGGED_PATH`.
pub(super) fn clip(path: &str) -> &str {
    if path.len() <= LOGGED_PATH {
        return path;
    }
    let mut end = LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// Whether an I/O error is a TLS alert from the peer: by the rustls error
/// it carries (HTTP/1.1), or else by the one its connection recorded
/// (HTTP/2 passes on only the kind and text of an I/O error).
fn is_tls_alert(e: &std::io::Error, connection: Option<&rustls::Error>) -> bool {
    guichet_tls::refusal::tls_error(e)
        .or(connection)
        .is_some_and(|tls| matches!(tls, rustls::Error::AlertReceived(_)))
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

/// What went wrong talking to the upstream.
fn classify(error: &UpstreamError) -> Refused {
    match error {
        UpstreamError::Connect(e) => connect_refusal(e),
        UpstreamError::Exchange(e) => classify_chain(e, None).unwrap_or(Refused::UpstreamError),
        UpstreamError::Closed => Refused::UpstreamError,
        UpstreamError::Client(e) => match classify_chain(e, TlsFailure::of(e).as_ref()) {
            Some(refused) => refused,
            None if e.is_connect() => Refused::UpstreamUnavailable,
            None => Refused::UpstreamError,
        },
    }
}

fn connect_refusal(error: &ConnectError) -> Refused {
    match error {
        ConnectError::Unavailable(_) => Refused::UpstreamUnavailable,
        ConnectError::Tls(_) => Refused::UpstreamTls,
    }
}

/// The refusal an error or one of its causes names, if any; `connection`
/// is the TLS error its connection recorded.
fn classify_chain(
    error: &(dyn std::error::Error + 'static),
    connection: Option<&rustls::Error>,
) -> Option<Refused> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(connect) = e.downcast_ref::<ConnectError>() {
            return Some(connect_refusal(connect));
        }
        if e.downcast_ref::<TooLarge>().is_some() {
            return Some(Refused::BodyTooLarge);
        }
        if e.downcast_ref::<ClientBody>().is_some() {
            return Some(Refused::BadRequestBody);
        }
        // With TLS 1.3 an upstream refusing guichet's certificate says so
        // in an alert on the first read after the handshake, as an I/O
        // error of the exchange.
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| is_tls_alert(io, connection))
        {
            return Some(Refused::UpstreamTls);
        }
        source = e.source();
    }
    None
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}
