//! Driving a client connection: HTTP/1.1 or HTTP/2 by ALPN, until the
//! client closes, stays idle, stalls a request head, or shutdown asks it
//! to finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use guichet_tls::PeerApp;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::clock::HeadWatch;
use super::conn::Conn;
use super::problem::Refused;
use super::runtime::HttpRuntime;
use crate::route::RouteRuntime;
use crate::state::RouteState;
use crate::stream::Stream;
use crate::tcp::{Activity, Metered, PumpEnd};

/// The client at the other end of a connection: its address and the
/// application its certificate was recognised as.
pub(crate) struct Client {
    pub remote: SocketAddr,
    pub peer: PeerApp,
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
    client: Client,
    shutdown: CancellationToken,
) -> (PumpEnd, u64) {
    let Client { remote, peer } = client;
    let idle = state.spec.limits.idle_timeout;
    let Some(spec) = state.spec.http() else {
        return (PumpEnd::Closed, 0);
    };
    let h2 = io.get_ref().alpn() == Some(b"h2".as_slice());
    let conn = Arc::new(Conn::new(route, http, remote, peer, h2));
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
    let end = ended(&counted, result, header_timeout);
    (end, counted.requests.load(Ordering::Relaxed))
}

/// How the connection ends for the dispatcher; a stalled or oversized
/// request head is refused like a request: counted and said once.
fn ended(conn: &Conn, result: Driven, header_timeout: Duration) -> PumpEnd {
    match result {
        Driven::Idle => PumpEnd::Idle,
        Driven::HeadTimeout => {
            conn.refused(Refused::HeaderTimeout);
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
            conn.refused(Refused::HeaderTooLarge);
            warn!(
                reason = Refused::HeaderTooLarge.as_str(),
                "request head over max_header_bytes; connection closed"
            );
            PumpEnd::Closed
        }
        Driven::Ended(Err(e)) => PumpEnd::Error(std::io::Error::other(e)),
    }
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
