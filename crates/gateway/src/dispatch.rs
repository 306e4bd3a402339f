//! One accepted connection, from handshake to close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use guichet_tls::{PeerApp, RefusalReason};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, field, info, info_span, warn, Instrument, Span};

use crate::budget::{Admission, HandshakeTicket, OverBudget};
use crate::config::{ForwardPolicy, RouteKind};
use crate::dial::{observe_handshake, open_forward, ForwardError};
use crate::http::HttpRuntime;
use crate::metrics::{BytesLabels, Direction, Metrics, Outcome, RouteLabel, Side};
use crate::mllp::ingest::Ingest;
use crate::mllp::relay::{relay, Peer};
use crate::observe::{FlowEnds, Party, Seen, IN, RELAY};
use crate::refuse::{over_budget, refuse};
use crate::route::{RouteRuntime, StoreForward};
use crate::state::RouteState;
use crate::stream::Stream;
use crate::tcp::{pump, Activity, Metered, PumpEnd};

/// Serves one connection until it ends or `force` (end of drain) fires.
/// The admission (slot and source count) is held for the connection's
/// whole life; its place among handshakes only until the TLS handshake is
/// over.
pub(crate) async fn handle(
    route: Arc<RouteRuntime>,
    http: Option<Arc<HttpRuntime>>,
    tcp: TcpStream,
    remote: SocketAddr,
    mut admission: Admission,
    shutdown: CancellationToken,
    force: CancellationToken,
) {
    let state = route.current();
    let span = info_span!("conn", route = %state.spec.name, remote = %remote, app = field::Empty);
    let conn = Conn { remote, span };
    let name = state.spec.name.as_str();
    let _open = OpenGuard::new(&route.metrics, name);
    let handshake = admission.take_handshake();
    let outcome = tokio::select! {
        outcome = serve(&route, http, &state, tcp, &conn, handshake, shutdown) => outcome,
        () = force.cancelled() => {
            conn.span.in_scope(|| info!("closed at the end of the shutdown drain period"));
            Outcome::Drained
        }
    };
    route.metrics.ended(name, outcome);
    drop(admission);
}

/// Who a connection is with, and the span its log lines go under. The
/// span is entered around what logs, not at each poll of the connection's
/// task: an `mllp` relay is polled several times a message, and its
/// message lines carry the route, address and application themselves.
struct Conn {
    remote: SocketAddr,
    span: Span,
}

/// Keeps the open-connections gauge right on every exit path.
struct OpenGuard(Gauge);

impl OpenGuard {
    fn new(metrics: &Metrics, route: &str) -> Self {
        let gauge = metrics
            .connections_open
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .clone();
        gauge.inc();
        OpenGuard(gauge)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves an admitted connection: its listener's side first, then by the
/// route's kind and delivery, the HTTP gateway, the store-and-forward
/// journal, or the receiver.
async fn serve(
    route_rt: &Arc<RouteRuntime>,
    http: Option<Arc<HttpRuntime>>,
    state: &RouteState,
    tcp: TcpStream,
    conn: &Conn,
    handshake: Option<HandshakeTicket>,
    shutdown: CancellationToken,
) -> Outcome {
    let spec = &state.spec;
    let limits = spec.limits;
    let (remote, span) = (conn.remote, &conn.span);
    // Small HL7 messages and their ACKs must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    // The handshakes are boxed: their state is large and short-lived, and
    // held inline it would size the task of every established connection.
    let accepting = Box::pin(accept_tls(route_rt, state, tcp, remote, handshake));
    let (inbound, peer_app) = match accepting.instrument(span.clone()).await {
        Ok(accepted) => accepted,
        Err(outcome) => return outcome,
    };
    if let (RouteKind::Http(_), Some(peer), Some(http)) = (&spec.kind, &peer_app, http) {
        let activity = Activity::new();
        let metered = bytes(&route_rt.metrics, spec.name.as_str(), Direction::Upstream);
        let client = Metered::new(inbound, activity.clone(), metered);
        let (end, requests) = crate::http::serve(
            route_rt.clone(),
            http,
            state,
            client,
            activity,
            crate::http::Client {
                remote,
                peer: peer.clone(),
            },
            shutdown,
        )
        .instrument(span.clone())
        .await;
        return span.in_scope(|| ended(end, Traffic::Requests(requests), limits.idle_timeout));
    }
    let stored = route_rt
        .store_forward
        .as_ref()
        .zip(spec.store_and_forward());
    let peer = Peer {
        route: spec.name.clone(),
        remote,
        app: peer_app.map(|p| p.app),
        ends: FlowEnds::of(spec),
        direction: if stored.is_some() { IN } else { RELAY },
        span: span.clone(),
    };
    match stored {
        // Store-and-forward: the receiver is the delivery worker's business.
        Some((sf, policy)) => {
            ingest(route_rt, state, inbound, peer, sf, policy)
                .instrument(span.clone())
                .await
        }
        None => {
            // A tunnel is observed per connection; an mllp relay per message.
            let tunnel = matches!(spec.kind, RouteKind::Tcp).then(|| peer.app.clone());
            let opening = Box::pin(open_outbound(route_rt, state, remote));
            let outcome = match opening.instrument(span.clone()).await {
                Ok(outbound) => forward(route_rt, state, inbound, outbound, peer).await,
                Err(outcome) => {
                    close(inbound, limits.handshake_timeout)
                        .instrument(span.clone())
                        .await;
                    outcome
                }
            };
            if let Some(app) = tunnel {
                observe_tunnel(route_rt, state, app.as_ref(), outcome);
            }
            outcome
        }
    }
}

/// Counts a tunnel's connection among the route's flows: from the
/// client's application to the route's target, by how it ended.
fn observe_tunnel(
    route_rt: &RouteRuntime,
    state: &RouteState,
    app: Option<&guichet_tls::AppName>,
    outcome: Outcome,
) {
    if !route_rt.observer.enabled() {
        return;
    }
    let spec = &state.spec;
    let application = app.map_or("", guichet_tls::AppName::as_str);
    let target = spec.forward_label();
    let seen = Seen {
        route: spec.name.as_str(),
        direction: RELAY,
        ends: FlowEnds::of(spec),
        application,
        source: Party(application, ""),
        target: Party(&target, ""),
        message_type: "",
    };
    let at = std::time::SystemTime::now();
    route_rt.observer.record(&seen, outcome.as_str(), at);
}

/// The listener's side: plain, or a TLS handshake within the route's
/// deadline and its place among handshakes. Gives the stream and the
/// client's application when a certificate was asked for, or how the
/// connection ended.
async fn accept_tls(
    route_rt: &RouteRuntime,
    state: &RouteState,
    tcp: TcpStream,
    remote: SocketAddr,
    handshake: Option<HandshakeTicket>,
) -> Result<(Stream, Option<PeerApp>), Outcome> {
    let Some(tls) = &state.server else {
        return Ok((Stream::Plain(tcp), None));
    };
    let started = Instant::now();
    // Never cancelled when the listener took no handshake place.
    let evicted = handshake
        .as_ref()
        .map_or_else(CancellationToken::new, HandshakeTicket::evicted);
    // A refusal is counted and logged when it happens, before the
    // client is given a moment to read its alert.
    let timeout = state.spec.limits.handshake_timeout;
    let handshaking = tls.accept_reporting(tcp, timeout, |refusal| {
        refuse(route_rt, remote, Side::Listen, refusal)
    });
    let accepted = tokio::select! {
        accepted = handshaking => accepted,
        () = evicted.cancelled() => {
            over_budget(route_rt, remote, OverBudget::Handshakes);
            return Err(Outcome::RefusedLimit);
        }
    };
    // Admitted or refused, this connection no longer counts
    // against max_handshakes.
    drop(handshake);
    let (stream, peer) = accepted.map_err(|_| Outcome::RefusedTls)?;
    let route = state.spec.name.as_str();
    observe_handshake(&route_rt.metrics, route, Side::Listen, started);
    if let Some(peer) = &peer {
        Span::current().record("app", peer.app.as_str());
        debug!(subject = %peer.identity.subject, "client certificate admitted");
    }
    Ok((Stream::TlsServer(Box::new(stream)), peer))
}

/// The route's byte counter for one direction.
fn bytes(metrics: &Metrics, route: &str, direction: Direction) -> Counter {
    metrics
        .bytes
        .get_or_create(&BytesLabels {
            route: route.to_string(),
            direction,
        })
        .clone()
}

/// The receiver's side, or how the connection ends when it cannot be
/// opened (counted and logged here; the caller closes the client).
async fn open_outbound(
    route_rt: &RouteRuntime,
    state: &RouteState,
    remote: SocketAddr,
) -> Result<Stream, Outcome> {
    let spec = &state.spec;
    match open_forward(spec, state.client.as_ref()).await {
        Ok((stream, handshake)) => {
            if let Some(started) = handshake {
                observe_handshake(
                    &route_rt.metrics,
                    spec.name.as_str(),
                    Side::Forward,
                    started,
                );
            }
            Ok(stream)
        }
        Err(ForwardError::Unavailable(reason)) => {
            warn!(target_addr = %spec.forward_label(), "forward target unavailable: {reason}; closing the client connection");
            Err(Outcome::UpstreamUnavailable)
        }
        Err(ForwardError::Tls(refusal)) => {
            refuse(route_rt, remote, Side::Forward, &refusal);
            Err(Outcome::UpstreamTls)
        }
    }
}

/// Carries a connection to its receiver: frame by frame on an `mllp`
/// route, as bytes otherwise.
async fn forward(
    route_rt: &RouteRuntime,
    state: &RouteState,
    inbound: Stream,
    outbound: Stream,
    peer: Peer,
) -> Outcome {
    let spec = &state.spec;
    let (route, idle) = (spec.name.as_str(), spec.limits.idle_timeout);
    let activity = Activity::new();
    let up = bytes(&route_rt.metrics, route, Direction::Upstream);
    let mut client = Metered::new(inbound, activity.clone(), up);
    let down = bytes(&route_rt.metrics, route, Direction::Downstream);
    let mut server = Metered::new(outbound, activity.clone(), down);
    let span = peer.span.clone();
    let end = match &spec.kind {
        // The relay enters the span to log (see `Conn`).
        RouteKind::Mllp(settings) => {
            let (client, server) = (&mut client, &mut server);
            relay(client, server, activity, idle, peer, *settings, route_rt).await
        }
        RouteKind::Tcp | RouteKind::Http(_) => {
            pump(&mut client, &mut server, idle)
                .instrument(span.clone())
                .await
        }
    };
    let traffic = Traffic::Bytes {
        up: client.total,
        down: server.total,
    };
    span.in_scope(|| ended(end, traffic, idle))
}

/// Journals what a store-and-forward route's sender sends, acknowledged
/// once stored; the route's worker delivers it.
async fn ingest(
    route_rt: &RouteRuntime,
    state: &RouteState,
    inbound: Stream,
    peer: Peer,
    sf: &StoreForward,
    policy: ForwardPolicy,
) -> Outcome {
    // A stored route is always mllp.
    let RouteKind::Mllp(settings) = &state.spec.kind else {
        return Outcome::Error;
    };
    let idle = state.spec.limits.idle_timeout;
    let activity = Activity::new();
    let up = bytes(
        &route_rt.metrics,
        state.spec.name.as_str(),
        Direction::Upstream,
    );
    let mut client = Metered::new(inbound, activity.clone(), up);
    let ingest = Ingest {
        peer,
        settings: *settings,
        policy,
        route: route_rt,
        journal: &sf.journal,
        stored: &sf.stored,
    };
    let end = ingest.serve(&mut client, activity, idle).await;
    let traffic = Traffic::Bytes {
        up: client.total,
        down: 0,
    };
    ended(end, traffic, idle)
}

/// What a connection carried, for its last log line.
enum Traffic {
    Bytes {
        up: u64,
        down: u64,
    },
    /// `http` routes: requests served (their bytes are in the access log).
    Requests(u64),
}

/// Logs a connection's end with its traffic as fields (`bytes_up` and
/// `bytes_down`, or `requests`).
macro_rules! log_end {
    ($level:ident, $traffic:expr, $($rest:tt)*) => {
        match $traffic {
            Traffic::Bytes { up, down } => $level!(bytes_up = up, bytes_down = down, $($rest)*),
            Traffic::Requests(n) => $level!(requests = n, $($rest)*),
        }
    };
}

/// Logs how a connection ended and says it for the metrics.
fn ended(end: PumpEnd, traffic: Traffic, idle: Duration) -> Outcome {
    match end {
        PumpEnd::Closed => {
            log_end!(info, traffic, "connection closed");
            Outcome::Closed
        }
        PumpEnd::Idle => {
            log_end!(info, traffic, idle = ?idle, "idle timeout: connection closed");
            Outcome::IdleTimeout
        }
        PumpEnd::Frame { reason, detail } => {
            log_end!(warn, traffic, reason, "connection closed: {detail}");
            if reason == crate::mllp::relay::FRAME_TIMEOUT {
                Outcome::FrameTimeout
            } else {
                Outcome::FrameError
            }
        }
        PumpEnd::Error(e) => match end_reason(&e) {
            PEER_CLOSED => {
                log_end!(
                    info,
                    traffic,
                    reason = PEER_CLOSED,
                    "connection closed by the peer without TLS close_notify"
                );
                Outcome::PeerClosed
            }
            reason => {
                log_end!(warn, traffic, reason, "connection ended: {e}");
                Outcome::Error
            }
        },
    }
}

/// Log reason of an end without close_notify.
const PEER_CLOSED: &str = "peer_closed";

/// Why a connection ended on an I/O error, as a fixed log label. Only an
/// error that carries a TLS alert or protocol error is named after the
/// TLS reason (with TLS 1.3 a peer refusing our certificate says so on
/// the first read after the handshake); a reset or a missing close_notify
/// is not a handshake failure.
fn end_reason(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return RefusalReason::from_io_error(e).as_str();
    }
    match e.kind() {
        K::UnexpectedEof => PEER_CLOSED,
        K::ConnectionReset | K::ConnectionAborted => "connection_reset",
        K::BrokenPipe => "broken_pipe",
        K::TimedOut => "timed_out",
        _ => "io_error",
    }
}

/// Ends a client connection that has nothing to be forwarded to with TLS
/// close_notify (then FIN), so the client reads a clean end of stream
/// rather than a truncation error.
async fn close(mut inbound: Stream, deadline: Duration) {
    let _ = tokio::time::timeout(deadline, inbound.shutdown()).await;
}
