//! One delivery attempt of a stored file: as received, converted, or as
//! PATCHes to the national ROR.

use std::time::SystemTime;

use bytes::Bytes;
use guichet_journal::{Claimed, Outcome};
use guichet_ror::fhir::{self, Coding};
use guichet_ror::xml;
use guichet_ror::Form;
use http::uri::PathAndQuery;
use http::Method;

use crate::certs::unix_ms;
use crate::config::{Convert, FolderSpec};
use crate::national::{unavailable, NationalRor, Sent, Step};
use crate::upstream::{Call, CallError, UpstreamClient};

/// Sends `message` once; its outcome for the journal, and what was sent.
pub(super) async fn attempt(
    spec: &FolderSpec,
    upstream: &UpstreamClient,
    message: &Claimed,
) -> (Outcome, Sent) {
    let key = format!("{}:{}", spec.name, message.id);
    let sent = send(spec, upstream, &message.body, &key).await;
    let now = unix_ms(SystemTime::now());
    let last = sent.steps().last().map(|s| s.status.as_u16().to_string());
    let outcome = match &sent {
        Sent::Accepted(_) => Outcome::Delivered {
            ack_code: last.unwrap_or_default(),
            at_ms: now,
        },
        Sent::Refused(status, _) => Outcome::Dead {
            error: format!("the upstream refused it: {status}"),
            ack_code: Some(status.as_u16().to_string()),
            at_ms: now,
        },
        Sent::Unavailable(why, _) => Outcome::Retry {
            error: why.clone(),
            ack_code: last,
            next_attempt_at_ms: now + spec.backoff(message.attempts + 1).as_millis() as i64,
        },
    };
    (outcome, sent)
}

async fn send(spec: &FolderSpec, upstream: &UpstreamClient, body: &[u8], key: &str) -> Sent {
    let convert = spec.validation.as_ref().and_then(|v| v.convert);
    let (form, document) = guichet_ror::read(body);
    let document = match (convert, document) {
        (None, _) => None,
        (Some(_), Ok(document)) => Some(document),
        // Judged valid when taken: only a changed rule set gets here.
        (Some(_), Err(why)) => {
            let error = format!("cannot be converted: {}", why.code);
            return Sent::Refused(http::StatusCode::UNPROCESSABLE_ENTITY, vec![local(error)]);
        }
    };
    let base = spec.upstream.base_path.as_deref().unwrap_or("/");
    let (bytes, content_type) = match (convert, document) {
        (Some(Convert::Patch), Some(document)) => {
            let ror = NationalRor {
                upstream,
                base,
                timeout: spec.response_timeout,
                key: Some(key),
            };
            return ror.send(&document).await;
        }
        (Some(Convert::Fhir), Some(document)) => (
            fhir::write(&document, Coding::default())
                .to_string()
                .into_bytes(),
            "application/fhir+json",
        ),
        (Some(Convert::Xml), Some(document)) => {
            (xml::write(&document).into_bytes(), "application/xml")
        }
        _ => (body.to_vec(), content_type(form)),
    };
    post(upstream, base, spec, Bytes::from(bytes), content_type, key).await
}

/// POSTs the file's body to the upstream URL.
async fn post(
    upstream: &UpstreamClient,
    base: &str,
    spec: &FolderSpec,
    body: Bytes,
    content_type: &'static str,
    key: &str,
) -> Sent {
    let Ok(path) = base.parse::<PathAndQuery>() else {
        return Sent::Unavailable(format!("{base:?} is not a URL path"), Vec::new());
    };
    let call = Call {
        method: Method::POST,
        path,
        content_type,
        headers: vec![("idempotency-key", key)],
        body,
        timeout: spec.response_timeout,
    };
    let answer = match upstream.call(call).await {
        Ok(answer) => answer,
        Err(CallError::Unavailable(why) | CallError::Token(why)) => {
            return Sent::Unavailable(why, Vec::new())
        }
    };
    let status = answer.status;
    let step = Step {
        unit: base.to_string(),
        op: "POST",
        status,
        outcome: (!status.is_success())
            .then(|| serde_json::from_slice(&answer.body).ok())
            .flatten(),
    };
    match status {
        s if s.is_success() => Sent::Accepted(vec![step]),
        s if unavailable(s) => Sent::Unavailable(format!("the upstream answered {s}"), vec![step]),
        s => Sent::Refused(s, vec![step]),
    }
}

/// A step for a file refused before anything was sent.
fn local(error: String) -> Step {
    Step {
        unit: String::new(),
        op: "convert",
        status: http::StatusCode::UNPROCESSABLE_ENTITY,
        outcome: Some(serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid", "diagnostics": error}],
        })),
    }
}

fn content_type(form: Option<Form>) -> &'static str {
    match form {
        Some(Form::Xml) => "application/xml",
        Some(Form::Fhir) => "application/fhir+json",
        None => "application/octet-stream",
    }
}
