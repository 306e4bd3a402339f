//! Pooled connections to a rule's upstream: plain HTTP/1.1, or TLS (with
//! guichet's client certificate when the profile has one) negotiating
//! HTTP/2 or HTTP/1.1 by ALPN.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use guichet_tls::{ClientTls, Refusal, ServerName};
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Upstream;
use crate::connection::connect;
use crate::stream::Stream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// One rule's upstream: where, and its connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, Body>,
    /// `http` or `https`.
    scheme: &'static str,
    authority: String,
}

/// Why no connection to the upstream could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Unavailable(String),
    #[error("TLS: {0}")]
    Tls(Refusal),
}

impl UpstreamClient {
    pub fn new(
        upstream: &Upstream,
        tls: Option<ClientTls>,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Self {
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
        UpstreamClient {
            client,
            scheme: if upstream.tls.is_some() {
                "https"
            } else {
                "http"
            },
            authority: upstream.authority(),
        }
    }

    /// The absolute URI of `path_and_query` on this upstream.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme)
            .authority(self.authority.as_str())
            .path_and_query(path_and_query)
            .build()
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
    type Response = TokioIo<UpstreamIo>;
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
                return Ok(TokioIo::new(UpstreamIo {
                    stream: Stream::Plain(tcp),
                    h2: false,
                }));
            };
            let stream = tls
                .connect(name, tcp, this.handshake_timeout)
                .await
                .map_err(ConnectError::Tls)?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(TokioIo::new(UpstreamIo {
                stream: Stream::TlsClient(Box::new(stream)),
                h2,
            }))
        })
    }
}

/// A connection to an upstream, and whether it speaks HTTP/2.
pub struct UpstreamIo {
    stream: Stream,
    h2: bool,
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
