//! Opening the forward side: resolving and connecting within a deadline,
//! then the TLS handshake with the receiver when the route asks for one.
//! Used by the dispatcher, the store-and-forward worker and the HTTP
//! upstream pools alike.

use std::net::SocketAddr;
use std::time::Duration;

use guichet_tls::{ClientTls, Refusal};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::RouteSpec;
use crate::metrics::{HandshakeLabels, Metrics, Side};
use crate::stream::Stream;

/// Records how long a TLS handshake took, on either side of a route.
pub(crate) fn observe_handshake(metrics: &Metrics, route: &str, side: Side, started: Instant) {
    metrics
        .handshake_seconds
        .get_or_create(&HandshakeLabels {
            route: route.to_string(),
            side,
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Why no TCP connection could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    /// The route has no `forward` (an `http` route dials its rules'
    /// upstreams instead).
    #[error("this route has no forward target")]
    NoTarget,
    #[error("cannot resolve {host}: {error}")]
    Resolve { host: String, error: std::io::Error },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    /// Every address refused; the last one's error.
    #[error("{addr}: {error}")]
    Refused {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("no connection within {}s", .deadline.as_secs_f32())]
    Timeout { deadline: Duration },
}

/// Why the forward side could not be opened.
pub(crate) enum ForwardError {
    /// No TCP connection (resolution, refusal, timeout).
    Unavailable(DialError),
    /// The receiver's TLS handshake failed (name, CA, revoked...).
    Tls(Refusal),
}

/// Connects to the route's forward target, with TLS when configured.
/// Also returns when the TLS handshake started, for its metric.
pub(crate) async fn open_forward(
    spec: &RouteSpec,
    client: Option<&ClientTls>,
) -> Result<(Stream, Option<Instant>), ForwardError> {
    let limits = spec.limits;
    let forward = spec
        .forward
        .as_ref()
        .ok_or(ForwardError::Unavailable(DialError::NoTarget))?;
    let tcp = connect(&forward.host, forward.port, limits.connect_timeout)
        .await
        .map_err(ForwardError::Unavailable)?;
    match (client, &spec.forward_tls) {
        (Some(tls), Some(forward)) => {
            let started = Instant::now();
            tls.connect(forward.server_name.clone(), tcp, limits.handshake_timeout)
                .await
                .map(|stream| (Stream::TlsClient(Box::new(stream)), Some(started)))
                .map_err(ForwardError::Tls)
        }
        _ => Ok((Stream::Plain(tcp), None)),
    }
}

/// Resolves and connects within `deadline`, trying each address in turn.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    deadline: Duration,
) -> Result<TcpStream, DialError> {
    let attempt = async {
        let mut last = None;
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| DialError::Resolve {
                host: host.to_string(),
                error,
            })?;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(error) => last = Some(DialError::Refused { addr, error }),
            }
        }
        Err(last.unwrap_or_else(|| DialError::NoAddress {
            host: host.to_string(),
        }))
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(DialError::Timeout { deadline }),
    }
}
