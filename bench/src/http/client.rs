//! A minimal HTTP/1.1 client over TLS with a client certificate: what the
//! load generator and the allowlist check speak to the gateways.
//!
//! Hand-written on tokio-rustls rather than hyper's client so that the
//! load generator, which shares the machine's cores with the gateway it
//! measures, spends as little CPU per request as it can: one constant
//! request (a GET, or a POST of one document), one buffer reused across
//! responses, headers parsed in place.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Longest wait for a connection, a handshake or one response.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The name every gateway's certificate carries and the request's Host.
pub const SERVER_NAME: &str = "localhost";
/// The path requested: under the one rule (location, route) of each gateway.
pub const PATH: &str = "/ror/beds";
/// Most headers a response may carry.
const MAX_HEADERS: usize = 32;

/// The client's identity, its trust and its target: shared by every
/// connection.
#[derive(Clone)]
pub struct Client {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    target: SocketAddr,
    requests: Requests,
}

/// The two requests, written once, head and body.
#[derive(Clone)]
struct Requests {
    keep_alive: Bytes,
    close: Bytes,
}

/// One TLS connection and what it has read but not yet parsed.
pub struct Connection {
    stream: TlsStream<TcpStream>,
    input: BytesMut,
    requests: Requests,
}

/// A response, its body decoded.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// Where a response ends, once its head is parsed.
enum Framing {
    Length(usize),
    Chunked,
}

/// Which request is sent: on a kept-alive connection, or the only one of
/// its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    KeepAlive,
    Close,
}

impl Client {
    /// A client of `target` presenting `cert`/`key`, trusting `ca`.
    /// Without `resume`, every connection is a full handshake.
    pub fn new(
        target: SocketAddr,
        ca: &Path,
        cert: &Path,
        key: &Path,
        resume: bool,
    ) -> anyhow::Result<Client> {
        let config = config(ca, cert, key, resume)?;
        Ok(Client {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(SERVER_NAME)?,
            target,
            requests: Requests::to(target, None),
        })
    }

    /// The same client sending `body` as a POST (an XML document) instead
    /// of a GET.
    pub fn posting(self, body: &[u8]) -> Client {
        Client {
            requests: Requests::to(self.target, Some(body)),
            ..self
        }
    }

    /// TCP connect and TLS handshake.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let open = async {
            let tcp = TcpStream::connect(self.target).await.context("connect")?;
            tcp.set_nodelay(true)?;
            let stream = self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await
                .context("TLS handshake")?;
            anyhow::Ok(stream)
        };
        let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, open)
            .await
            .map_err(|_| anyhow::anyhow!("no connection within {EXCHANGE_TIMEOUT:?}"))??;
        Ok(Connection {
            stream,
            input: BytesMut::with_capacity(8 * 1024),
            requests: self.requests.clone(),
        })
    }
}

impl Requests {
    /// A GET, or a POST of `body`. `Host` names the port, as a browser's
    /// would (Caddy picks the site's access log by it).
    fn to(target: SocketAddr, body: Option<&[u8]>) -> Requests {
        let (method, entity) = match body {
            Some(body) => (
                "POST",
                format!(
                    "Content-Type: application/xml\r\nContent-Length: {}\r\n",
                    body.len()
                ),
            ),
            None => ("GET", String::new()),
        };
        let request = |extra: &str| {
            let head = format!(
                "{method} {PATH} HTTP/1.1\r\nHost: {SERVER_NAME}:{port}\r\nUser-Agent: guichet-bench\r\n\
                 Accept: application/json\r\n{entity}{extra}\r\n",
                port = target.port()
            );
            Bytes::from([head.as_bytes(), body.unwrap_or_default()].concat())
        };
        Requests {
            keep_alive: request(""),
            close: request("Connection: close\r\n"),
        }
    }

    fn bytes(&self, request: Request) -> &[u8] {
        match request {
            Request::KeepAlive => &self.keep_alive,
            Request::Close => &self.close,
        }
    }
}

impl Connection {
    /// Sends `request` and reads its whole response.
    pub async fn exchange(&mut self, request: Request) -> anyhow::Result<Response> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange_now(request))
            .await
            .map_err(|_| anyhow::anyhow!("no response within {EXCHANGE_TIMEOUT:?}"))?
    }

    async fn exchange_now(&mut self, request: Request) -> anyhow::Result<Response> {
        self.stream.write_all(self.requests.bytes(request)).await?;
        self.stream.flush().await?;
        loop {
            if let Some(response) = parse(&mut self.input)? {
                return Ok(response);
            }
            self.input.reserve(4096);
            if self.stream.read_buf(&mut self.input).await? == 0 {
                bail!("connection closed before the whole response");
            }
        }
    }

    /// `TLSv1_3, TLS13_AES_256_GCM_SHA384, X25519, Full handshake`.
    pub fn describe_tls(&self) -> String {
        let (_, session) = self.stream.get_ref();
        let kind = session
            .handshake_kind()
            .map_or("?".to_owned(), |k| format!("{k:?}"));
        let version = session
            .protocol_version()
            .map_or("?".to_owned(), |v| format!("{v:?}"));
        let suite = session
            .negotiated_cipher_suite()
            .map_or("?".to_owned(), |s| format!("{:?}", s.suite()));
        let group = session
            .negotiated_key_exchange_group()
            .map_or("?".to_owned(), |g| format!("{:?}", g.name()));
        format!("{version}, {suite}, {group}, {kind} handshake")
    }
}

fn config(ca: &Path, cert: &Path, key: &Path, resume: bool) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("{}", ca.display()))? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("{}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(config)
}

/// The first whole response in `input`, removed from it; `None` while
/// incomplete.
fn parse(input: &mut BytesMut) -> anyhow::Result<Option<Response>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(input).context("bad response head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = head.code.unwrap_or_default();
    let framing = framing(head.headers)?;
    match framing {
        Framing::Length(length) => {
            if input.len() < head_len + length {
                return Ok(None);
            }
            input.advance(head_len);
            let body = input.split_to(length).freeze();
            Ok(Some(Response { status, body }))
        }
        Framing::Chunked => {
            let Some((body, used)) = dechunk(&input[head_len..])? else {
                return Ok(None);
            };
            input.advance(head_len + used);
            Ok(Some(Response {
                status,
                body: body.into(),
            }))
        }
    }
}

fn framing(headers: &[httparse::Header<'_>]) -> anyhow::Result<Framing> {
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(header.value)?.trim().parse()?;
            return Ok(Framing::Length(length));
        }
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Ok(Framing::Chunked);
        }
    }
    bail!("a response without Content-Length or Transfer-Encoding (read to close is not supported)")
}

/// A chunked body and the bytes it took (trailers included), or `None`
/// while incomplete.
fn dechunk(mut data: &[u8]) -> anyhow::Result<Option<(Vec<u8>, usize)>> {
    let total = data.len();
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find_crlf(data) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end])?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = find_crlf(data) else {
                    return Ok(None);
                };
                data = &data[end + 2..];
                if end == 0 {
                    return Ok(Some((body, total - data.len())));
                }
            }
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &[u8]) -> (Option<Response>, usize) {
        let mut input = BytesMut::from(text);
        let response = parse(&mut input).unwrap();
        (response, input.len())
    }

    #[test]
    fn a_response_with_a_length_is_parsed_and_the_next_one_kept() {
        let (response, left) =
            parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1");
        let response = response.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(&response.body[..], b"hello");
        assert_eq!(left, "HTTP/1.1".len());
    }

    #[test]
    fn a_chunked_response_is_decoded() {
        let (response, left) = parse_all(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        let response = response.unwrap();
        assert_eq!(response.status, 403);
        assert_eq!(&response.body[..], b"abcde");
        assert_eq!(left, 0);
    }

    #[test]
    fn a_post_carries_its_length_then_its_body() {
        let target = SocketAddr::from(([127, 0, 0, 1], 8443));
        let requests = Requests::to(target, Some(b"<doc/>"));
        let text = String::from_utf8(requests.bytes(Request::KeepAlive).to_vec()).unwrap();
        assert!(text.starts_with("POST /ror/beds HTTP/1.1\r\nHost: localhost:8443\r\n"));
        assert!(text.ends_with("Content-Length: 6\r\n\r\n<doc/>"), "{text}");
        let close = requests.bytes(Request::Close);
        assert!(close.ends_with(b"Connection: close\r\n\r\n<doc/>"));
    }

    #[test]
    fn an_incomplete_response_waits_for_more() {
        assert!(
            parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
                .0
                .is_none()
        );
        assert!(parse_all(b"HTTP/1.1 200 OK\r\nContent-Le").0.is_none());
        assert!(
            parse_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                .0
                .is_none()
        );
    }
}
