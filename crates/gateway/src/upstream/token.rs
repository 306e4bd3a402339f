//! An upstream's access token: OAuth2 client credentials, guichet
//! authenticated by its client certificate (RFC 8705), asked for once and
//! kept until shortly before it expires; dropped when the upstream
//! answers 401 with it.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{CallError, UpstreamClient};

/// The longest a token is kept, whatever its `expires_in` says.
const MAX_LIFE: u64 = 24 * 3600;

/// A token answer larger than this is refused.
const MAX_ANSWER: usize = 64 * 1024;

/// A token is renewed this long before its `expires_in` runs out, at most
/// a tenth of its life.
const MARGIN: Duration = Duration::from_secs(30);

/// Where tokens come from, and the one in use.
pub struct TokenSource {
    client: UpstreamClient,
    path: PathAndQuery,
    origin: String,
    current: Mutex<Option<Held>>,
}

struct Held {
    header: HeaderValue,
    until: Instant,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct Granted {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(client: UpstreamClient, path: PathAndQuery, origin: String) -> TokenSource {
        TokenSource {
            client,
            path,
            origin,
            current: Mutex::new(None),
        }
    }

    /// The `Authorization` value to send: the token held while it is
    /// good, else a new one.
    pub async fn bearer(&self, timeout: Duration) -> Result<HeaderValue, CallError> {
        let mut current = self.current.lock().await;
        if let Some(held) = current.as_ref().filter(|h| h.until > Instant::now()) {
            return Ok(held.header.clone());
        }
        let held = self.ask(timeout).await?;
        let header = held.header.clone();
        *current = Some(held);
        Ok(header)
    }

    /// Forgets `refused`, which the upstream answered 401 to, unless a
    /// newer token already replaced it.
    pub async fn forget(&self, refused: &HeaderValue) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|h| h.header == refused) {
            *current = None;
        }
    }

    async fn ask(&self, timeout: Duration) -> Result<Held, CallError> {
        let failed = |why: String| CallError::Token(format!("{}: {why}", self.origin));
        let uri = self
            .client
            .uri(self.path.clone())
            .map_err(|e| failed(e.to_string()))?;
        let form = Full::new(Bytes::from_static(b"grant_type=client_credentials"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .map_err(|e| failed(e.to_string()))?;
        let asked = Instant::now();
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| failed(format!("no answer within {timeout:?}")))?
            .map_err(|e| failed(super::error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| failed(format!("the answer could not be read: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(failed(format!("answered {status}")));
        }
        let granted: Granted = serde_json::from_slice(&body)
            .map_err(|e| failed(format!("not a token answer: {e}")))?;
        held(granted, asked).map_err(failed)
    }
}

/// What to keep of a granted token.
fn held(granted: Granted, asked: Instant) -> Result<Held, String> {
    if !granted.token_type.eq_ignore_ascii_case("bearer") {
        return Err(format!("token type {:?} is not Bearer", granted.token_type));
    }
    let header = HeaderValue::try_from(format!("Bearer {}", granted.access_token))
        .map_err(|_| "the token is not a valid header value".to_string())?;
    // Without `expires_in`, an hour; a 401 ends it sooner.
    let life = Duration::from_secs(granted.expires_in.unwrap_or(3600).min(MAX_LIFE));
    let until = asked + life.saturating_sub(MARGIN.min(life / 10));
    Ok(Held { header, until })
}

/// Sets `request`'s `Authorization`.
pub fn authorize<B>(request: &mut Request<B>, bearer: HeaderValue) {
    request.headers_mut().insert(AUTHORIZATION, bearer);
}
