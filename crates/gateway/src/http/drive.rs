//! Driving a client connection: HTTP/1.1 or HTTP/2 by ALPN, until the
//! client closes, stays idle, stalls a request head, or shutdown asks it
//! to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

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
        // Each made once for the connection's life and polled only when
        // its own timer or token woke it (see `Gated`).
        let mut cancelled = Gated::new($shutdown.cancelled());
        let mut idle = Gated::new($activity.idle_for($idle));
        let mut overdue = Gated::new($heads.overdue($timeout));
        loop {
            tokio::select! {
                biased;
                result = $served.as_mut() => break Driven::Ended(result),
                () = &mut cancelled, if !draining => {
                    draining = true;
                    $served.as_mut().graceful_shutdown();
                }
                () = &mut idle => break Driven::Idle,
                () = &mut overdue => break Driven::HeadTimeout,
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

/// A future polled only when it woke its task itself (and on the first
/// poll), however often the task is woken for something else.
///
/// A connection's task wakes for every read and write of every request;
/// `select!` polls each of its branches on every wake. Polling the idle
/// and head timers and the shutdown token each time cost about 2,500
/// instructions per request; through this gate a branch costs a flag.
struct Gated<'a> {
    inner: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    gate: Arc<Gate>,
    /// Wakes `gate`: the waker `inner` registers with its timer or token.
    waker: Waker,
}

/// Whether the gated future woke since it was last polled, and the task
/// to wake when it does.
struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<'a> Gated<'a> {
    fn new(inner: impl Future<Output = ()> + Send + 'a) -> Self {
        let gate = Arc::new(Gate {
            // Polled the first time, which registers its waker.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Gated {
            inner: Box::pin(inner),
            waker: Waker::from(gate.clone()),
            gate,
        }
    }
}

impl Future for Gated<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Registered before the flag is read: a wake in between is seen
        // on the next poll.
        this.gate.task.register(cx.waker());
        if !this.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut inner_cx = Context::from_waker(&this.waker);
        this.inner.as_mut().poll(&mut inner_cx)
    }
}
