//! A validating rule's step (`validate = "bed-availability"`): the
//! request's body read whole, within `max_body_bytes`, checked by the
//! ror crate's rules; an invalid document is answered 422 with its
//! violations and never goes upstream; a valid one goes on as received,
//! or converted (`convert`).

use std::sync::Arc;

use bytes::Bytes;
use guichet_ror::fhir::{self, Coding};
use guichet_ror::model::Document;
use guichet_ror::rules::Violation;
use guichet_ror::{xml, Keep};
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tracing::warn;

use super::access::ValidationRecord;
use super::body::{TooLarge, Tracked};
use super::conn::Conn;
use super::outcome::Finish;
use super::problem::Refused;
use crate::config::{Convert, HttpRule, Validation};
use crate::metrics::ViolationLabels;
use crate::national::{NationalRor, Sent};
use crate::upstream::{Body, UpstreamClient};

/// What goes on once the document is judged valid.
// Returned once per request and matched at once: a box for the larger
// variant would cost an allocation and save nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Checked {
    /// The request, its body as received or converted.
    Forward(Request<Body>),
    /// The document, to be sent record by record to the national ROR.
    Patch(Document),
}

/// Why a validating rule does not send a request on.
pub(super) enum Invalid {
    /// The body could not be read whole (too large, cut).
    Refused(Refused),
    /// The document breaks rules of severity error.
    Document(Vec<Violation>),
}

impl Conn {
    /// The request as it goes upstream once its body is judged valid.
    pub(super) async fn validate(
        &self,
        request: Request<Body>,
        validation: &Arc<Validation>,
        rule: &HttpRule,
        finish: &mut Finish,
    ) -> Result<Checked, Invalid> {
        let (mut parts, body) = request.into_parts();
        // Read whole even when refused: an answer before the body's end
        // resets an HTTP/2 stream the client is still sending on.
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<TooLarge>() => return Err(Invalid::Refused(Refused::BodyTooLarge)),
            Err(_) => return Err(Invalid::Refused(Refused::BadRequestBody)),
        };
        let encoded = parts
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            return Err(Invalid::Refused(Refused::EncodedBody));
        }
        // The document is needed only to convert it: one sent on as
        // received is judged without being built.
        let keep = match validation.convert {
            Some(_) => Keep::Document,
            None => Keep::Violations,
        };
        let verdict = validation.clone().judge_apart(bytes.clone(), keep).await;
        let valid = verdict.valid();
        let word = if valid { "valid" } else { "invalid" };
        self.count_verdict(rule, word, &verdict.violations);
        finish.record.validation = Some(ValidationRecord {
            verdict: word,
            violations: verdict.violations.iter().map(|v| v.code).collect(),
        });
        if !valid {
            return Err(Invalid::Document(verdict.violations));
        }
        let (body, content_type) = match (validation.convert, verdict.document) {
            (Some(Convert::Patch), Some(document)) => return Ok(Checked::Patch(document)),
            (Some(Convert::Fhir), Some(document)) => {
                let json = fhir::write(&document, Coding::default()).to_string();
                (Bytes::from(json), Some("application/fhir+json"))
            }
            (Some(Convert::Xml), Some(document)) => {
                (Bytes::from(xml::write(&document)), Some("application/xml"))
            }
            _ => (bytes, None),
        };
        if let Some(content_type) = content_type {
            parts
                .headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        let body = Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync();
        Ok(Checked::Forward(Request::from_parts(parts, body)))
    }

    /// Sends a valid document to the national ROR behind `upstream`, record
    /// by record, and answers the client with the ROR's answers as a
    /// `batch-response` Bundle: 200 when every record was accepted, else
    /// the status of the first refusal; 502 when the ROR is unavailable.
    pub(super) async fn patch(
        &self,
        mut finish: Finish,
        rule: &HttpRule,
        upstream: &UpstreamClient,
        timeout: Duration,
        document: &Document,
    ) -> Response<Body> {
        let ror = NationalRor {
            upstream,
            base: rule.upstream.base_path.as_deref().unwrap_or("/"),
            timeout,
            key: None,
        };
        let sent = ror.send(document).await;
        let status = match &sent {
            Sent::Accepted(_) => StatusCode::OK,
            Sent::Refused(status, _) => *status,
            Sent::Unavailable(why, _) => {
                warn!(
                    route = %self.route.name,
                    rule = %rule.name,
                    upstream = %rule.upstream.origin,
                    "national ROR unavailable: {why}"
                );
                return self.refuse(finish, Refused::UpstreamUnavailable, Some(rule), None);
            }
        };
        finish.record.status = status.as_u16();
        let body = Bytes::from(sent.bundle().to_string());
        let mut response = Response::new(Tracked::new(Full::new(body), finish).boxed_unsync());
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        );
        response
    }

    fn count_verdict(&self, rule: &HttpRule, verdict: &'static str, violations: &[Violation]) {
        self.verdict_counter(&rule.name, verdict).inc();
        if violations.is_empty() {
            return;
        }
        let metrics = &self.route.metrics;
        let (route, rule) = (self.route.name.to_string(), rule.name.to_string());
        for violation in violations {
            metrics
                .http_violations
                .get_or_create(&ViolationLabels {
                    route: route.clone(),
                    rule: rule.clone(),
                    code: violation.code,
                })
                .inc();
        }
    }
}
