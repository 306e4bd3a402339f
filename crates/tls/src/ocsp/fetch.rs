//! Asking a responder: one HTTP POST (RFC 6960 appendix A) with a deadline.
//!
//! Responders are reached over plain HTTP, as RFC 6960 and every public CA
//! publish them: the answer is signed, so the transport needs no TLS (and
//! TLS to the responder would need OCSP for the responder's own
//! certificate).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpStream;

use crate::http1::ExchangeError;

/// A response bigger than this is not an OCSP response for one certificate.
const MAX_RESPONSE: usize = 64 * 1024;

/// A responder address, checked once: `http://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderUrl {
    host: String,
    port: u16,
    /// `host[:port]` as the Host header carries it.
    authority: String,
    path: String,
}

/// Why a text is not a responder address; each message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponderUrlError {
    /// Responders are asked over plain HTTP only: their answers are
    /// signed, and an `https://` responder would need a trust of its own.
    #[error("{0:?}: OCSP responders are queried over plain http:// (the answer is signed)")]
    NotHttp(String),
    /// The host or the port cannot be read.
    #[error("{0:?}: expected http://host[:port]/path")]
    Malformed(String),
}

impl ResponderUrl {
    /// Parses an `http://` URL; anything else is refused with the reason.
    pub fn parse(url: &str) -> Result<Self, ResponderUrlError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ResponderUrlError::NotHttp(url.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| ResponderUrlError::Malformed(url.to_string()))?;
        Ok(ResponderUrl {
            host,
            port,
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }
}

fn split_host_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 80,
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    valid.then(|| (host.to_string(), port))
}

impl fmt::Display for ResponderUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Why a responder gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("OCSP responder {url} did not answer within {secs}s")]
    Timeout { url: String, secs: f32 },
    #[error("OCSP responder {url}: {error}")]
    Io { url: String, error: String },
    #[error("OCSP responder {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// POSTs `request` and returns the response body, all within `deadline`.
pub async fn post(
    url: &ResponderUrl,
    request: Vec<u8>,
    deadline: Duration,
) -> Result<Vec<u8>, FetchError> {
    match tokio::time::timeout(deadline, exchange(url, request)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout {
            url: url.to_string(),
            secs: deadline.as_secs_f32(),
        }),
    }
}

async fn exchange(url: &ResponderUrl, request: Vec<u8>) -> Result<Vec<u8>, FetchError> {
    let io = |error: String| FetchError::Io {
        url: url.to_string(),
        error,
    };
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| io(e.to_string()))?;
    let request = http::Request::post(url.path.as_str())
        .header(http::header::HOST, url.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/ocsp-request")
        .header(http::header::ACCEPT, "application/ocsp-response")
        .body(Full::new(Bytes::from(request)))
        .map_err(|e| io(e.to_string()))?;
    match crate::http1::exchange(tcp, request, MAX_RESPONSE).await {
        Ok(body) => Ok(body.to_vec()),
        Err(ExchangeError::Status(status)) => Err(FetchError::Status {
            url: url.to_string(),
            status,
        }),
        Err(e) => Err(io(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responder_urls() {
        let u = ResponderUrl::parse("http://ocsp.example.org/ca1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("ocsp.example.org", 80, "/ca1")
        );
        let u = ResponderUrl::parse("http://127.0.0.1:8888").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8888, "/")
        );
        let u = ResponderUrl::parse("http://[::1]:99/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 99));
        assert!(ResponderUrl::parse("https://ocsp.example.org/").is_err());
        assert!(ResponderUrl::parse("http://host:notaport/").is_err());
        assert!(ResponderUrl::parse("http:///path").is_err());
    }
}
