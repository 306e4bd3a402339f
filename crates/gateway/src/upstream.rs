//! Pooled connections to a rule's upstream: plain HTTP/1.1, or TLS (with
//! guichet's client certificate when the profile has one) negotiating
//! HTTP/2 or HTTP/1.1 by ALPN.

use std::future::Future;
use std::pin::Pin;
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
    type Response = TokioIo<Stream>;
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
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            };
            let stream = tls
                .connect(name, tcp, this.handshake_timeout)
                .await
                .map_err(ConnectError::Tls)?;
            Ok(TokioIo::new(Stream::TlsClient(Box::new(stream))))
        })
    }
}

/// hyper's pool learns from ALPN whether a connection speaks HTTP/2.
impl Connection for Stream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.alpn() == Some(b"h2".as_slice()) {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}
