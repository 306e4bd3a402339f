//! One HTTP/1.1 request on a connection opened by the caller, and its
//! body within a size bound: what fetching an OCSP answer or a CRL needs.
//! No redirect is followed: both name the resource itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why an exchange gave no body.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection or the request failed.
    #[error("{0}")]
    Io(String),
    /// The server answered with a status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body was larger than the bound.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Sends `request` on `io` and returns the body of a 200 answer, at most
/// `limit` bytes. The connection ends with the exchange.
pub async fn exchange<IO, B>(
    io: IO,
    request: http::Request<B>,
    limit: usize,
) -> Result<Bytes, ExchangeError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io_error = |e: hyper::Error| ExchangeError::Io(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(io_error)?;
    // The connection is driven beside the request and ends with it.
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(request).await.map_err(io_error)?;
        if response.status() != http::StatusCode::OK {
            return Err(ExchangeError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => ExchangeError::TooLarge(limit),
                Err(e) => ExchangeError::Io(e.to_string()),
            })?;
        Ok(body.to_bytes())
    }
    .await;
    driver.abort();
    result
}
