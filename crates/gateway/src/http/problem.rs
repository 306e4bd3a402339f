//! Error answers as `application/problem+json` (RFC 9457). They name the
//! rule concerned, never the allowlist, the certificate or the request.

use bytes::Bytes;
use guichet_ror::rules::Violation;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// Why guichet answered itself instead of the upstream; also the `reason`
/// label of `guichet_http_refusals_total` and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    BadPath,
    BadRequest,
    /// Two `Host` headers, a Host that is no authority, or a Host that
    /// disagrees with the HTTP/2 `:authority` (RFC 9112 §3.2, RFC 9113
    /// §8.3.1): the rule would be chosen on one and the upstream told
    /// another.
    BadHost,
    /// The client's request body could not be read: malformed chunked
    /// encoding, or cut before its end. The client's fault, not the
    /// upstream's: it must not feed the failing-upstream alert.
    BadRequestBody,
    /// The request head did not arrive within `header_timeout` (hyper
    /// closes the connection; counted and logged).
    HeaderTimeout,
    /// The request head is over `max_header_bytes` (hyper answers 431).
    HeaderTooLarge,
    NoRule,
    NotAdmitted,
    /// The certificate was revoked after this connection's handshake.
    Revoked,
    RateLimited,
    BodyTooLarge,
    UpstreamUnavailable,
    /// The route's `max_upstream_requests` are all in flight.
    UpstreamBusy,
    UpstreamTls,
    UpstreamTimeout,
    UpstreamError,
    /// A validating rule's document breaks rules of severity error.
    InvalidDocument,
    /// A validating rule's body came compressed (`Content-Encoding`): it
    /// judges documents as sent, and never sends on what it did not judge.
    EncodedBody,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::BadPath => "bad_path",
            Refused::BadRequest => "bad_request",
            Refused::BadHost => "bad_host",
            Refused::BadRequestBody => "bad_request_body",
            Refused::HeaderTimeout => "header_timeout",
            Refused::HeaderTooLarge => "header_too_large",
            Refused::NoRule => "no_rule",
            Refused::NotAdmitted => "not_admitted",
            Refused::Revoked => "revoked",
            Refused::RateLimited => "rate_limited",
            Refused::BodyTooLarge => "body_too_large",
            Refused::UpstreamUnavailable => "upstream_unavailable",
            Refused::UpstreamBusy => "upstream_busy",
            Refused::UpstreamTls => "upstream_tls",
            Refused::UpstreamTimeout => "upstream_timeout",
            Refused::UpstreamError => "upstream_error",
            Refused::InvalidDocument => "invalid_document",
            Refused::EncodedBody => "encoded_body",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Refused::BadPath | Refused::BadRequest | Refused::BadHost | Refused::BadRequestBody => {
                StatusCode::BAD_REQUEST
            }
            Refused::HeaderTimeout => StatusCode::REQUEST_TIMEOUT,
            Refused::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refused::NoRule => StatusCode::NOT_FOUND,
            Refused::NotAdmitted | Refused::Revoked => StatusCode::FORBIDDEN,
            Refused::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refused::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::UpstreamUnavailable | Refused::UpstreamTls | Refused::UpstreamError => {
                StatusCode::BAD_GATEWAY
            }
            Refused::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refused::UpstreamBusy => StatusCode::SERVICE_UNAVAILABLE,
            Refused::InvalidDocument => StatusCode::UNPROCESSABLE_ENTITY,
            Refused::EncodedBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    /// A validating rule's findings: code, severity, path, message.
    #[serde(skip_serializing_if = "Option::is_none")]
    violations: Option<&'a [Violation]>,
}

/// The problem answer for a refusal; `rule` is the matched rule's name,
/// `violations` a validating rule's findings.
pub fn problem(
    refused: Refused,
    rule: Option<&str>,
    retry_after: Option<u64>,
    violations: Option<&[Violation]>,
) -> Response<Bytes> {
    let status = refused.status();
    let detail = detail(refused, rule);
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        rule,
        violations,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Bytes::from(json));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// What went wrong, for the client: the rule named where one matched.
fn detail(refused: Refused, rule: Option<&str>) -> String {
    let named = |what: &str| match rule {
        Some(rule) => format!("{what} (rule \"{rule}\")"),
        None => what.to_string(),
    };
    match refused {
        Refused::BadPath => {
            "the path holds dot segments or encoded separators; send it normalised".to_string()
        }
        Refused::BadRequest => "the request has no usable host or path".to_string(),
        Refused::BadHost => {
            "the request names its host more than once, or in two ways that disagree (Host and :authority); send one Host".to_string()
        }
        Refused::BadRequestBody => {
            named("the request body could not be read (malformed chunked encoding, or cut before its end)")
        }
        Refused::HeaderTimeout => "the request head did not arrive in time".to_string(),
        Refused::HeaderTooLarge => "the request head is over the size accepted".to_string(),
        Refused::NoRule => "no rule of this gateway serves this host and path".to_string(),
        Refused::NotAdmitted => match rule {
            Some(rule) => format!("your application is not admitted by rule \"{rule}\""),
            None => "your application is not admitted".to_string(),
        },
        Refused::Revoked => "your certificate has been revoked".to_string(),
        Refused::RateLimited => named("request rate over your application's limit; retry later"),
        Refused::BodyTooLarge => named("request body over the size this gateway accepts"),
        Refused::UpstreamUnavailable => named("the service behind this gateway is unreachable"),
        Refused::UpstreamBusy => named("this gateway has too many requests in flight; retry later"),
        Refused::UpstreamTls => named(
            "the TLS session between this gateway and the service behind it failed (certificate refused on either side)",
        ),
        Refused::UpstreamTimeout => named("the service behind this gateway did not answer in time"),
        Refused::UpstreamError => named("the service behind this gateway broke the exchange"),
        Refused::InvalidDocument => named(
            "the document breaks the rules this gateway checks; it was not sent on (see violations)",
        ),
        Refused::EncodedBody => named(
            "the document is checked as sent: send it without Content-Encoding (not compressed)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_the_rule_only() {
        let response = problem(Refused::NotAdmitted, Some("ror-internal"), None, None);
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["rule"], "ror-internal");
        assert_eq!(body["status"], 403);
        assert!(body["detail"].as_str().unwrap().contains("ror-internal"));
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }

    #[test]
    fn rate_limited_says_when_to_retry() {
        let response = problem(Refused::RateLimited, Some("r"), Some(2), None);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "2");
    }
}
