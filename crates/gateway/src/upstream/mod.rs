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
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Upstream;
use crate::dial::{connect, DialError};
use crate::stream::Stream;

mod pool;
mod token;

pub(crate) use pool::PooledBody;
pub use token::TokenSource;

/// The TLS ALPN protocols an `http` listener offers and an https upstream
/// is asked for, in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// One rule's upstream: where, and its connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    /// Plain HTTP/1.1 upstreams: connections driven by the requests'
    /// own tasks.
    pool: Option<Arc<pool::Pool>>,
    /// TLS upstreams (HTTP/2 or HTTP/1.1 by ALPN): hyper's pool.
    client: Client<Connector, Body>,
    /// Where its access tokens come from, when it asks for them.
    token: Option<Arc<TokenSource>>,
    /// Parsed once: every request's URI is built from them.
    scheme: Scheme,
    authority: Authority,
    /// `authority` as a Host header, for plain upstreams' requests.
    host: Option<http::HeaderValue>,
}

/// Why no connection to the upstream could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
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
        let pool = upstream
            .tls
            .is_none()
            .then(|| pool::Pool::new(upstream.host.clone(), upstream.port, connect_timeout));
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
            pool,
            client,
            scheme: if upstream.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            host: http::HeaderValue::from_str(authority.as_str()).ok(),
            authority,
            token: None,
        })
    }

    /// The same upstream, sending the access tokens of `token`.
    pub fn with_token(mut self, token: Arc<TokenSource>) -> Self {
        self.token = Some(token);
        self
    }

    /// Sets the request's access token when this upstream asks for one.
    pub async fn authorize<B>(
        &self,
        request: &mut http::Request<B>,
        timeout: Duration,
    ) -> Result<(), CallError> {
        if let Some(token) = &self.token {
            token::authorize(request, token.bearer(timeout).await?);
        }
        Ok(())
    }

    /// Whether requests to this upstream carry guichet's access token.
    pub fn asks_for_tokens(&self) -> bool {
        self.token.is_some()
    }

    /// Forgets the token a request carried when the upstream answered it
    /// 401: the next request asks for a new one.
    pub async fn refused_token(&self, sent: Option<&http::HeaderValue>) {
        if let (Some(token), Some(bearer)) = (&self.token, sent) {
            token.forget(bearer).await;
        }
    }

    /// A request guichet itself sends (its body in memory, its answer read
    /// whole, up to `MAX_ANSWER`), with the access token; on 401 once
    /// more with a new token.
    pub async fn call(&self, call: Call<'_>) -> Result<Answer, CallError> {
        let first = self.call_once(&call).await?;
        if first.status != http::StatusCode::UNAUTHORIZED || self.token.is_none() {
            return Ok(first);
        }
        self.refused_token(first.sent.as_ref()).await;
        self.call_once(&call).await
    }

    async fn call_once(&self, call: &Call<'_>) -> Result<Answer, CallError> {
        let uri = self
            .uri(call.path.clone())
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(uri)
            .header(http::header::CONTENT_TYPE, call.content_type);
        for (name, value) in &call.headers {
            builder = builder.header(*name, *value);
        }
        let body = http_body_util::Full::new(call.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = builder
            .body(body)
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        self.authorize(&mut request, call.timeout).await?;
        let sent = request.headers().get(http::header::AUTHORIZATION).cloned();
        let exchange = async {
            let response = self.request(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("the answer could not be read: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(call.timeout, exchange).await {
            Err(_) => Err(CallError::Unavailable(format!(
                "no answer within {:?}",
                call.timeout
            ))),
            Ok(Err(e)) => Err(CallError::Unavailable(e)),
            Ok(Ok((status, body))) => Ok(Answer { status, body, sent }),
        }
    }

    /// The absolute URI of `path_and_query` on this upstream.
    pub fn uri(&self, path_and_query: PathAndQuery) -> Result<Uri, http::Error> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Ok(Uri::from_parts(parts)?)
    }

    /// Sends `request` and gives the answer's head, its body to stream.
    pub(crate) async fn request(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<AnswerBody>, UpstreamError> {
        match &self.pool {
            Some(pool) => Ok(pool
                .send(origin_form(request, self.host.as_ref()))
                .await?
                .map(AnswerBody::Pooled)),
            None => match self.client.request(request).await {
                Ok(response) => Ok(response.map(AnswerBody::Shared)),
                Err(e) => Err(UpstreamError::Client(e)),
            },
        }
    }
}

/// A request as sent on a connection of its own: the path and query
/// only, the authority in its Host header (as hyper's pool sends it).
/// `host` is the upstream's authority as a header, made once.
fn origin_form(
    mut request: http::Request<Body>,
    host: Option<&http::HeaderValue>,
) -> http::Request<Body> {
    let uri = request.uri();
    if !request.headers().contains_key(http::header::HOST) {
        let host = match host {
            Some(host) if uri.authority().is_some() => Some(host.clone()),
            _ => uri
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()),
        };
        if let Some(host) = host {
            request.headers_mut().insert(http::header::HOST, host);
        }
    }
    if let Some(path) = request.uri().path_and_query().cloned() {
        *request.uri_mut() = Uri::from(path);
    }
    request
}

/// Why an exchange with an upstream failed: each shown as its cause.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// From hyper's pool (TLS upstreams).
    #[error(transparent)]
    Client(hyper_util::client::legacy::Error),
    /// No connection could be opened.
    #[error(transparent)]
    Connect(ConnectError),
    /// The connection failed before or during the answer's head.
    #[error(transparent)]
    Exchange(hyper::Error),
    /// A new connection ended before it could take the request.
    #[error("connection closed before the request was sent")]
    Closed,
}

/// An upstream answer's body, from either kind of connection.
pub(crate) enum AnswerBody {
    Shared(hyper::body::Incoming),
    Pooled(PooledBody),
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            AnswerBody::Shared(body) => Pin::new(body).poll_frame(cx),
            AnswerBody::Pooled(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Shared(body) => body.is_end_stream(),
            AnswerBody::Pooled(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            AnswerBody::Shared(body) => body.size_hint(),
            AnswerBody::Pooled(body) => body.size_hint(),
        }
    }
}

/// The most of an answer to [`UpstreamClient::call`] that is read.
const MAX_ANSWER: usize = 1024 * 1024;

/// A request of guichet's own to an upstream.
pub struct Call<'a> {
    pub method: http::Method,
    pub path: PathAndQuery,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, &'a str)>,
    pub body: Bytes,
    /// For the token, then for the whole exchange.
    pub timeout: Duration,
}

/// The upstream's answer to a [`Call`].
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub body: Bytes,
    /// The access token the request went with.
    sent: Option<http::HeaderValue>,
}

/// Why a [`Call`] got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Not reached, not answered in time, or the answer was cut.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// No access token could be had.
    #[error("no access token from {0}")]
    Token(String),
}

/// An error and its causes, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
