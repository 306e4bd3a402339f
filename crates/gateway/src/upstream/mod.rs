//! Pooled connections to a rule's upstream: plain HTTP/1.1, or TLS (with
//! guichet's client certificate when the profile has one) negotiating
//! HTTP/2 or HTTP/1.1 by ALPN.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use guichet_tls::{ClientTls, Refusal, ServerName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Upstream;
use crate::dial::{connect, DialError};
use crate::stream::Stream;

/// The TLS ALPN protocols an `http` listener offers and an https upstream
/// is asked for, in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// One rule's upstream: where, and its connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, Body>,
    /// Parsed once: every request's URI is built from them.
    scheme: Scheme,
    authority: Authority,
}

/// Why no connection to the upstream could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Unavailable(DialError),
    #[error("TLS: {0}")]
    Tls(Refusal),
}

impl UpstreamClient {
    pub fn new(
        upstream: &Upstream,
        tls: Option<ClientTls>,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Result<Self, http::uri::InvalidUri> {
        let authority: Authority = upstream.authority().parse()?;
        let server_name = upstream.tls.as_ref().map(|t| t.server_name.clone());
        let connector = Connector {
            host: upstream.host.clone(),
            port: upstream.port,
            tls: tls.zip(server_name),
            connect_timeout,
            handshake_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(UpstreamClient {
            client,
            scheme: if upstream.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority,
        })
    }

    /// The absolute URI of `path_and_query` on this upstream.
    pub fn uri(&self, path_and_query: PathAndQuery) -> Result<Uri, http::Error> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Ok(Uri::from_parts(parts)?)
    }

    pub fn request(
        &self,
        request: http::Request<Body>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.client.request(request)
    }
}

/// Opens connections for the pool: always to the rule's configured
/// address, whatever the request says.
#[derive(Clone)]
struct Connector {
    host: String,
    port: u16,
    tls: Option<(ClientTls, ServerName<'static>)>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = connect(&this.host, this.port, this.connect_timeout)
                .await
                .map_err(ConnectError::Unavailable)?;
            let Some((tls, name)) = this.tls else {
                return Ok(TokioIo::new(UpstreamStream::new(Stream::Plain(tcp))));
            };
            let stream = tls
                .connect(name, tcp, this.handshake_timeout)
                .await
                .map_err(ConnectError::Tls)?;
            let stream = Stream::TlsClient(Box::new(stream));
            Ok(TokioIo::new(UpstreamStream::new(stream)))
        })
    }
}

/// The first TLS error of one upstream connection. HTTP/2 keeps only the
/// kind and text of the I/O error that ends a connection, not the rustls
/// error inside it; the connection's own stream records that error here,
/// and hyper hands the slot back with an exchange's error (its
/// `connect_info`).
#[derive(Clone, Default)]
pub(crate) struct TlsFailure(Arc<OnceLock<rustls::Error>>);

impl TlsFailure {
    /// Keeps `error`'s rustls error if it carries one and none came
    /// before.
    fn record(&self, error: &io::Error) {
        if let Some(tls) = guichet_tls::refusal::tls_error(error) {
            let _ = self.0.set(tls.clone());
        }
    }

    /// The TLS error recorded on the connection an exchange failed on.
    pub(crate) fn of(error: &hyper_util::client::legacy::Error) -> Option<rustls::Error> {
        let mut extras = http::Extensions::new();
        error.connect_info()?.get_extras(&mut extras);
        extras.get::<TlsFailure>()?.0.get().cloned()
    }
}

/// An upstream connection's stream, recording the first TLS error it
/// reads or writes.
pub(crate) struct UpstreamStream {
    stream: Stream,
    tls_failure: TlsFailure,
}

impl UpstreamStream {
    fn new(stream: Stream) -> Self {
        UpstreamStream {
            stream,
            tls_failure: TlsFailure::default(),
        }
    }

    /// Records the TLS error `poll` may carry, and passes it on.
    fn watch<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &poll {
            self.tls_failure.record(e);
        }
        poll
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.watch(poll)
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.watch(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// hyper's pool learns from ALPN whether a connection speaks HTTP/2; the
/// connection's TLS failure slot goes with it.
impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(self.tls_failure.clone());
        if self.stream.alpn() == Some(b"h2".as_slice()) {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}
